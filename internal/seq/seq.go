// Package seq implements UDT4's wrapping sequence arithmetic: 31-bit packet
// sequence numbers, 29-bit message numbers and 31-bit ACK sequence numbers.
//
// Two sequence numbers are comparable when they are less than 2^30 apart,
// which the protocol guarantees by bounding every window far below that.
package seq

// Num is a 31-bit packet sequence number (0 … 0x7FFFFFFF, then 0 again).
type Num uint32

// Max is the largest sequence number.
const Max Num = 0x7FFFFFFF

// threshold is the distance beyond which two numbers are taken to straddle the wrap.
const threshold = 0x3FFFFFFF

// Valid reports whether n fits in 31 bits.
func (n Num) Valid() bool { return n <= Max }

// Add returns n advanced by d packets (d may be negative), wrapping at 2^31.
func (n Num) Add(d int) Num { return Num((int64(n) + int64(d)) & int64(Max)) }

// Inc returns the next sequence number.
func (n Num) Inc() Num { return (n + 1) & Max }

// Dec returns the previous sequence number.
func (n Num) Dec() Num { return (n - 1) & Max }

// Cmp orders a and b across the wrap: negative if a comes before b, zero if
// equal, positive if a comes after b.
func Cmp(a, b Num) int {
	d := int64(a) - int64(b)
	if d < -threshold || d > threshold {
		d = -d
	}
	switch {
	case d < 0:
		return -1
	case d > 0:
		return 1
	}
	return 0
}

// Less reports whether a comes before b.
func Less(a, b Num) bool { return Cmp(a, b) < 0 }

// Off returns the signed distance from a to b: b == a.Add(Off(a, b)).
func Off(a, b Num) int {
	d := int64(b) - int64(a)
	if d > threshold {
		d -= int64(Max) + 1
	} else if d < -threshold {
		d += int64(Max) + 1
	}
	return int(d)
}

// Len returns the number of sequence numbers from a to b inclusive, b not
// before a.
func Len(a, b Num) int {
	if a <= b {
		return int(b-a) + 1
	}
	return int(b) - int(a) + int(Max) + 2
}

// Msg is a 29-bit message number. UDT4 uses 1 … 0x1FFFFFFE and then 1 again.
type Msg uint32

// MsgMax is the largest value the 29-bit field holds.
const MsgMax Msg = 0x1FFFFFFF

// Next returns the message number that follows m, skipping 0 and MsgMax as
// the C++ library does.
func (m Msg) Next() Msg {
	m++
	if m >= MsgMax {
		m = 1
	}
	return m
}

// MsgCmp orders message numbers across their wrap, like Cmp.
func MsgCmp(a, b Msg) int {
	const th = 0x0FFFFFFF
	d := int64(a) - int64(b)
	if d < -th || d > th {
		d = -d
	}
	switch {
	case d < 0:
		return -1
	case d > 0:
		return 1
	}
	return 0
}

// Ack is a 31-bit ACK sequence number; the first full ACK is 1 and
// 0x7FFFFFFF is followed by 0.
type Ack uint32

// Next returns the ACK sequence number that follows a.
func (a Ack) Next() Ack { return (a + 1) & Ack(Max) }
