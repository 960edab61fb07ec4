// Package lossl keeps UDT4 loss lists — the sender's list of packets to
// retransmit (docs/protocol.md §11.3) and the receiver's list of packets
// still missing (§10.4) — as ordered runs of sequence numbers, and encodes and
// decodes the loss list carried in a NAK (control type 3, §7.2).
//
// A [List] is plain data owned by one goroutine; it is not safe for concurrent
// use. Its operations do not allocate once its backing array has grown to the
// number of ranges it holds.
package lossl

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/udt-go/udt/internal/seq"
)

// Range is an inclusive run of sequence numbers, First not after Last.
type Range struct{ First, Last seq.Num }

// List is an ordered set of sequence numbers kept as disjoint, non-adjacent
// ranges sorted by [seq.Cmp]. All members must lie within 2^30 of each other,
// which callers guarantee by keeping them inside the flow window. Numbers
// above [seq.Max] are never members: operations given one do nothing.
//
// The zero value is an empty list with no bound on its number of ranges.
// A List is not safe for concurrent use.
type List struct {
	// buf is the backing array; the ranges are buf[head : head+n], leaving
	// free slots on both sides so that work at either end is O(1).
	buf   []Range
	head  int
	n     int
	count int // numbers held
	max   int // bound on ranges Insert may create; 0 means none
}

// New returns an empty List that holds at most maxRanges ranges: an Insert
// that would need a new range beyond that is refused. Removals are never
// refused; a removal that splits a range of a full list takes it past
// maxRanges by one range (an allocation), so size maxRanges to half the
// window plus one, which no set of numbers in the window exceeds. The
// backing array never grows past 2*maxRanges ranges otherwise. If maxRanges
// is zero or negative the list is unbounded, like the zero value.
func New(maxRanges int) *List {
	if maxRanges < 0 {
		maxRanges = 0
	}
	return &List{max: maxRanges}
}

// Len returns how many sequence numbers l holds.
func (l *List) Len() int { return l.count }

// NumRanges returns how many ranges l holds.
func (l *List) NumRanges() int { return l.n }

// Ranges returns the ranges of l in order. The slice aliases l's storage:
// the caller must not modify it, and it is valid only until l next changes.
func (l *List) Ranges() []Range {
	return l.buf[l.head : l.head+l.n : l.head+l.n]
}

// Clear empties l, keeping its storage.
func (l *List) Clear() {
	l.n, l.count = 0, 0
	l.head = len(l.buf) / 2
}

// First returns the smallest member of l, or false if l is empty.
func (l *List) First() (seq.Num, bool) {
	if l.n == 0 {
		return 0, false
	}
	return l.buf[l.head].First, true
}

// PopFirst removes and returns the smallest member of l, or false if l is
// empty.
func (l *List) PopFirst() (seq.Num, bool) {
	if l.n == 0 {
		return 0, false
	}
	r := &l.buf[l.head]
	s := r.First
	if s == r.Last {
		l.head++
		l.n--
		if l.n == 0 {
			l.head = len(l.buf) / 2
		}
	} else {
		r.First = s.Inc()
	}
	l.count--
	return s, true
}

// Contains reports whether s is a member of l.
func (l *List) Contains(s seq.Num) bool {
	if s > seq.Max {
		return false
	}
	i := l.searchLast(0, s)
	return i < l.n && seq.Cmp(l.buf[l.head+i].First, s) <= 0
}

// Insert adds the numbers first … last to l, merging them with the ranges
// they overlap or touch, and returns how many were not already members.
// It adds nothing and returns 0 when first comes after last, when either is
// above [seq.Max], or when l is bounded, already holds its maximum number of
// ranges and the numbers would need a new one.
func (l *List) Insert(first, last seq.Num) int {
	if first > seq.Max || last > seq.Max || seq.Cmp(first, last) > 0 {
		return 0
	}
	// Common case: at or past the end of the list.
	if l.n == 0 || seq.Cmp(first, l.buf[l.head+l.n-1].Last.Inc()) > 0 {
		return l.insertNew(l.n, first, last)
	}
	lo, hi := first.Dec(), last.Inc()
	// Ranges [i, j) overlap [first, last] or are adjacent to it.
	i := l.searchLast(0, lo)
	j := l.searchFirstAfter(i, hi)
	if i == j {
		return l.insertNew(i, first, last)
	}
	live := l.buf[l.head : l.head+l.n]
	had := 0
	for _, r := range live[i:j] {
		had += seq.Len(r.First, r.Last)
	}
	m := Range{live[i].First, live[j-1].Last}
	if seq.Cmp(first, m.First) < 0 {
		m.First = first
	}
	if seq.Cmp(last, m.Last) > 0 {
		m.Last = last
	}
	live[i] = m
	l.closeGap(i+1, j)
	added := seq.Len(m.First, m.Last) - had
	l.count += added
	return added
}

// insertNew puts [first, last], which touches no range, at index i.
func (l *List) insertNew(i int, first, last seq.Num) int {
	if l.max > 0 && l.n >= l.max {
		return 0
	}
	l.buf[l.openGap(i)] = Range{first, last}
	c := seq.Len(first, last)
	l.count += c
	return c
}

// Remove removes s from l and reports whether it was a member.
func (l *List) Remove(s seq.Num) bool {
	if s > seq.Max || l.n == 0 {
		return false
	}
	i := 0
	if seq.Cmp(l.buf[l.head].Last, s) < 0 {
		i = l.searchLast(1, s)
		if i == l.n {
			return false
		}
	}
	r := &l.buf[l.head+i]
	switch {
	case seq.Cmp(r.First, s) > 0:
		return false
	case r.First == r.Last:
		l.closeGap(i, i+1)
	case s == r.First:
		r.First = s.Inc()
	case s == r.Last:
		r.Last = s.Dec()
	default:
		last := r.Last
		r.Last = s.Dec()
		l.buf[l.openGap(i+1)] = Range{s.Inc(), last}
	}
	l.count--
	return true
}

// RemoveRange removes the members from first to last inclusive and returns
// how many there were. It removes nothing when first comes after last or
// either is above [seq.Max].
func (l *List) RemoveRange(first, last seq.Num) int {
	if first > seq.Max || last > seq.Max || l.n == 0 || seq.Cmp(first, last) > 0 {
		return 0
	}
	i := l.searchLast(0, first)
	j := l.searchFirstAfter(i, last)
	if i >= j {
		return 0
	}
	live := l.buf[l.head : l.head+l.n]
	had := 0
	for _, r := range live[i:j] {
		had += seq.Len(r.First, r.Last)
	}
	a, b := live[i], live[j-1]
	keepLeft := seq.Cmp(a.First, first) < 0
	keepRight := seq.Cmp(b.Last, last) > 0
	kept := 0
	k := i
	if keepLeft {
		live[k] = Range{a.First, first.Dec()}
		kept += seq.Len(a.First, first.Dec())
		k++
	}
	if keepRight {
		r := Range{last.Inc(), b.Last}
		kept += seq.Len(r.First, r.Last)
		if k == j {
			// One range split in two.
			l.buf[l.openGap(j)] = r
		} else {
			live[k] = r
		}
		k++
	}
	if k < j {
		l.closeGap(k, j)
	}
	l.count -= had - kept
	return had - kept
}

// RemoveBefore removes every member that comes before s and returns how many
// there were.
func (l *List) RemoveBefore(s seq.Num) int {
	if s > seq.Max || l.n == 0 {
		return 0
	}
	live := l.buf[l.head : l.head+l.n]
	removed := 0
	i := 0
	for ; i < len(live) && seq.Cmp(live[i].Last, s) < 0; i++ {
		removed += seq.Len(live[i].First, live[i].Last)
	}
	if i < len(live) && seq.Cmp(live[i].First, s) < 0 {
		removed += seq.Len(live[i].First, s.Dec())
		live[i].First = s
	}
	l.closeGap(0, i)
	l.count -= removed
	return removed
}

// searchLast returns the smallest index i ≥ from whose range ends at or after
// s, or l.n if there is none.
func (l *List) searchLast(from int, s seq.Num) int {
	live := l.buf[l.head : l.head+l.n]
	lo, hi := from, len(live)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if seq.Cmp(live[m].Last, s) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// searchFirstAfter returns the smallest index i ≥ from whose range starts
// after s, or l.n if there is none.
func (l *List) searchFirstAfter(from int, s seq.Num) int {
	live := l.buf[l.head : l.head+l.n]
	lo, hi := from, len(live)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if seq.Cmp(live[m].First, s) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// openGap makes room for one range at index i of the list, moving whichever
// side is shorter, and returns its position in buf. The new slot's contents
// are undefined; the caller fills it.
func (l *List) openGap(i int) int {
	size := len(l.buf)
	free := size - l.n
	if free == 0 || (4*(l.n+1) > 3*size && (l.max == 0 || size < 2*l.max)) {
		newSize := max(2*size, 8)
		if l.max > 0 && newSize > 2*l.max && 2*l.max > l.n {
			newSize = 2 * l.max
		}
		nb := make([]Range, newSize)
		h := (newSize - l.n - 1) / 2
		copy(nb[h:], l.buf[l.head:l.head+i])
		copy(nb[h+i+1:], l.buf[l.head+i:l.head+l.n])
		l.buf, l.head = nb, h
		l.n++
		return h + i
	}
	var h int
	switch {
	case 2*i >= l.n && l.head+l.n < size:
		h = l.head // shift the tail right
	case 2*i < l.n && l.head > 0:
		h = l.head - 1 // shift the front left
	default:
		h = (free - 1) / 2 // recentre
	}
	l.move(h, i)
	l.n++
	return h + i
}

// move relocates the ranges so that the list starts at h with a hole at
// index i: ranges before i go to buf[h:], the rest to buf[h+i+1:].
func (l *List) move(h, i int) {
	left := l.buf[l.head : l.head+i]
	right := l.buf[l.head+i : l.head+l.n]
	if h < l.head {
		copy(l.buf[h:], left)
		copy(l.buf[h+i+1:], right)
	} else {
		copy(l.buf[h+i+1:], right)
		copy(l.buf[h:], left)
	}
	l.head = h
}

// closeGap deletes the ranges at indexes [i, j), moving whichever side is
// shorter.
func (l *List) closeGap(i, j int) {
	k := j - i
	if k <= 0 {
		return
	}
	if i < l.n-j {
		copy(l.buf[l.head+k:], l.buf[l.head:l.head+i])
		l.head += k
	} else {
		copy(l.buf[l.head+i:], l.buf[l.head+j:l.head+l.n])
	}
	l.n -= k
	if l.n == 0 {
		l.head = len(l.buf) / 2
	}
}

// rangeFlag marks the first word of a two-word range in a NAK body.
const rangeFlag = 0x80000000

// AppendNAK appends the NAK loss-list encoding of ranges to b and returns the
// extended slice: a single number as one big-endian word with bit 31 clear,
// a run of two or more as First|0x80000000 followed by Last, as the C++ 4.11
// library does (it encodes a run of two as a range too). Numbers are taken
// modulo 2^31; ranges must be valid, as those of a [List] are.
func AppendNAK(b []byte, ranges []Range) []byte {
	for _, r := range ranges {
		b = appendEntry(b, r)
	}
	return b
}

// AppendNAKLimit is like [AppendNAK] but appends at most maxBytes, stopping
// before the first entry that does not fit whole. It returns the extended
// slice and how many ranges it encoded.
func AppendNAKLimit(b []byte, ranges []Range, maxBytes int) ([]byte, int) {
	for k, r := range ranges {
		w := entrySize(r)
		if maxBytes < w {
			return b, k
		}
		maxBytes -= w
		b = appendEntry(b, r)
	}
	return b, len(ranges)
}

// AppendNAKThrough is like [AppendNAKLimit] but encodes only the members of
// ranges up to and including through: ranges that start after it are left
// out and one that straddles it is cut short. It returns the extended slice
// and how many sequence numbers it encoded.
func AppendNAKThrough(b []byte, ranges []Range, through seq.Num, maxBytes int) ([]byte, int) {
	n := 0
	for _, r := range ranges {
		if seq.Cmp(r.First, through) > 0 {
			break
		}
		if seq.Cmp(r.Last, through) > 0 {
			r.Last = through
		}
		w := entrySize(r)
		if maxBytes < w {
			break
		}
		maxBytes -= w
		b = appendEntry(b, r)
		n += seq.Off(r.First, r.Last) + 1
	}
	return b, n
}

// entrySize is the length of r's NAK encoding: one word or two.
func entrySize(r Range) int {
	if r.First == r.Last {
		return 4
	}
	return 8
}

func appendEntry(b []byte, r Range) []byte {
	if r.First == r.Last {
		return binary.BigEndian.AppendUint32(b, uint32(r.First&seq.Max))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(r.First&seq.Max)|rangeFlag)
	return binary.BigEndian.AppendUint32(b, uint32(r.Last&seq.Max))
}

var (
	errNAKEmpty    = errors.New("udt: NAK loss list is empty")
	errNAKOpen     = errors.New("udt: NAK loss list ends with a range start")
	errNAKRangeEnd = errors.New("udt: NAK range end has bit 31 set")
)

// ParseNAK decodes the loss list of a NAK body and calls fn for each entry in
// order, a single number as a Range with First == Last, until fn returns
// false. The whole body is checked before fn is first called, so fn sees
// nothing from a malformed body. ParseNAK does not allocate unless it
// returns an error: for an empty body or one whose length is not a multiple
// of 4, a range start as the last word, a range end with bit 31 set, or a
// range whose first number comes after its last.
func ParseNAK(body []byte, fn func(Range) bool) error {
	if len(body) == 0 {
		return errNAKEmpty
	}
	if len(body)%4 != 0 {
		return fmt.Errorf("udt: NAK body length %d is not a multiple of 4", len(body))
	}
	for p := 0; p < len(body); p += 4 {
		w := binary.BigEndian.Uint32(body[p:])
		if w&rangeFlag == 0 {
			continue
		}
		p += 4
		if p == len(body) {
			return errNAKOpen
		}
		e := binary.BigEndian.Uint32(body[p:])
		if e&rangeFlag != 0 {
			return errNAKRangeEnd
		}
		if f := seq.Num(w &^ rangeFlag); seq.Cmp(f, seq.Num(e)) > 0 {
			return fmt.Errorf("udt: NAK range %#x…%#x is inverted", uint32(f), e)
		}
	}
	for p := 0; p < len(body); p += 4 {
		w := binary.BigEndian.Uint32(body[p:])
		r := Range{seq.Num(w), seq.Num(w)}
		if w&rangeFlag != 0 {
			p += 4
			r = Range{seq.Num(w &^ rangeFlag), seq.Num(binary.BigEndian.Uint32(body[p:]))}
		}
		if !fn(r) {
			return nil
		}
	}
	return nil
}
