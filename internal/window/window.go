// Package window holds UDT4's measurement windows: the ACK history that turns
// ACK2 packets into RTT samples, the smoothed RTT estimator, and the receiver's
// arrival and packet-pair windows that feed words 5 and 6 of a full ACK
// (docs/protocol.md §7.1 and §10.5).
//
// Everything here is plain logic: no goroutines, no clock. Each method takes
// the caller's now. None of the types is safe for concurrent use; the
// connection calls them with its lock held.
package window

import (
	"math"
	"time"

	"github.com/udt-go/udt/internal/seq"
)

// historySize is the number of full/short ACKs remembered, as in 4.11.
const historySize = 1024

type sentACK struct {
	ackNo seq.Ack
	ack   seq.Num
	sent  time.Duration // since ACKHistory.base
}

// ACKHistory remembers the send time of the last 1024 full/short ACKs, keyed by
// ACK sequence number, so that the ACK2 answering one yields an RTT sample.
// Storing a 1025th ACK overwrites the oldest. The zero value is an empty
// history ready to use; it holds no memory until the first Store, and
// grows its ring as ACKs outstanding at once require, so an idle or
// short-RTT connection keeps a small one.
type ACKHistory struct {
	ring []sentACK
	base time.Time // the first Store's time: entries hold offsets from it
	head int       // index the next Store writes
	n    int       // live entries, the newest at head-1
}

// Store records that the full/short ACK with sequence number ackNo, carrying
// data ACK number ack, was sent at now.
func (h *ACKHistory) Store(ackNo seq.Ack, ack seq.Num, now time.Time) {
	if h.ring == nil {
		h.ring, h.base = make([]sentACK, 16), now
	}
	if h.n == len(h.ring) && len(h.ring) < historySize {
		// Full: double, oldest first, rather than overwrite.
		grown := make([]sentACK, 2*len(h.ring))
		for i := range h.n {
			grown[i] = h.ring[(h.head+i)%len(h.ring)]
		}
		h.ring, h.head = grown, h.n
	}
	h.ring[h.head] = sentACK{ackNo: ackNo, ack: ack, sent: now.Sub(h.base)}
	h.head = (h.head + 1) % len(h.ring)
	if h.n < len(h.ring) {
		h.n++
	}
}

// Acknowledge looks up the ACK with sequence number ackNo, answered by an ACK2
// arriving at now. It returns the data ACK number that ACK carried and
// rtt = now − its send time; ok is false if ackNo is unknown, was overwritten
// or was already acknowledged.
//
// As in 4.11, a match also forgets every older entry, so a duplicate or late
// ACK2 yields no second sample. 4.11 ignores samples ≤ 0 µs; that check is the
// caller's.
func (h *ACKHistory) Acknowledge(ackNo seq.Ack, now time.Time) (ack seq.Num, rtt time.Duration, ok bool) {
	// Newest first: the ACK2 usually answers the latest ACK.
	size := len(h.ring)
	for i := 1; i <= h.n; i++ {
		e := &h.ring[(h.head-i+size)%size]
		if e.ackNo != ackNo {
			continue
		}
		h.n = i - 1 // drop the match and everything older
		return e.ack, now.Sub(h.base) - e.sent, true
	}
	return 0, 0, false
}

// RTT is the smoothed round-trip time and its variation, updated with 4.11's
// integer microsecond arithmetic. Use [NewRTT] for the protocol's initial
// values; the zero value starts from 0.
type RTT struct {
	RTT, Var time.Duration
	sampled  bool // a sample has replaced the initial guess
}

// Initial RTT estimate: 100 ms (10 SYN intervals) and half that as variation.
const (
	initialRTT    = 100 * time.Millisecond
	initialRTTVar = 50 * time.Millisecond
)

// NewRTT returns the estimator's initial state: RTT 100 ms, Var 50 ms.
func NewRTT() RTT { return RTT{RTT: initialRTT, Var: initialRTTVar} }

// Seed takes d, a round trip measured before the first sample (the
// handshake's), as the estimate: RTT d and half that as variation, as a
// first measurement would set them; samples are then smoothed against it.
func (r *RTT) Seed(d time.Duration) {
	r.sampled = true
	r.RTT = d.Truncate(time.Microsecond)
	r.Var = (d / 2).Truncate(time.Microsecond)
}

// Sampled reports whether the estimate rests on a measurement (a sample,
// or a seed) rather than the initial guess.
func (r *RTT) Sampled() bool { return r.sampled }

// Update folds in one sample, in whole microseconds:
// Var = (3·Var + |sample − RTT|) >> 2 first (with the old RTT), then
// RTT = (7·RTT + sample) >> 3.
func (r *RTT) Update(sample time.Duration) {
	if !r.sampled {
		// The first measurement replaces the initial guess outright, as
		// TCP does (RFC 6298), instead of creeping from 100 ms towards it
		// at 1/8 per sample as 4.11 does. Nothing on the wire depends on
		// the difference but the RTT figures ACKs carry.
		r.sampled = true
		r.RTT = sample.Truncate(time.Microsecond)
		r.Var = (sample / 2).Truncate(time.Microsecond)
		return
	}
	s := sample.Microseconds()
	rtt := r.RTT.Microseconds()
	v := r.Var.Microseconds()
	d := s - rtt
	if d < 0 {
		d = -d
	}
	v = (3*v + d) >> 2
	rtt = (7*rtt + s) >> 3
	r.RTT = time.Duration(rtt) * time.Microsecond
	r.Var = time.Duration(v) * time.Microsecond
}

// Window sizes and initial contents, as in 4.11.
const (
	arrivalSize    = 16
	probeSize      = 64
	initialArrival = 1_000_000 // µs
	initialProbe   = 1000      // µs
)

// Arrivals is the receiver's pair of median-filtered windows (§10.5): the last
// 16 data-packet inter-arrival times, from which [Arrivals.ReceiveRate] is
// reported in ACK word 5, and the last 64 packet-pair gaps, from which
// [Arrivals.Bandwidth] is reported in word 6. Use [NewArrivals]; the zero value
// is not initialised.
type Arrivals struct {
	arrival  [arrivalSize]int64 // µs, ring
	arrPos   int
	probe    [probeSize]int64 // µs, ring
	probePos int

	last       time.Time // previous data packet's arrival
	haveLast   bool
	probeStart time.Time // arrival of the pending probe start (seq mod 16 = 0)
	probeSeq   seq.Num   // its sequence number
	haveProbe  bool      // a probe start was the last arrival

	// Arrivals since the last SpanRate, the last of them at last: the
	// first one's time and their count.
	spanFirst time.Time
	spanCount int
	spanIdle  time.Duration // gaps of more than spanIdleGap in the span: their sum
	spanIdleN int           // and their number
}

// spanIdleGap is the longest arrival gap SpanRate counts. A longer one is
// the sender pausing (its window full while a loss is repaired, or nothing
// to send), not a burst's spacing: counted, it would report a rate that
// the sender never sent at.
const spanIdleGap = 10 * time.Millisecond

// NewArrivals returns windows filled as 4.11 fills them: 16 arrival intervals
// of 1 s and 64 probe gaps of 1 ms, so that ReceiveRate reports 1 and
// Bandwidth 1000 until real samples replace them.
func NewArrivals() *Arrivals {
	a := &Arrivals{}
	for i := range a.arrival {
		a.arrival[i] = initialArrival
	}
	for i := range a.probe {
		a.probe[i] = initialProbe
	}
	return a
}

// OnData records the arrival at now of data packet s, retransmissions
// included: the interval since the previous data packet, and, for the packet
// pairs the sender makes, the probe start (s mod 16 = 0) or the probe gap
// (s mod 16 = 1, when a probe start is pending).
//
// Two differences from 4.11, neither visible on the wire beyond the samples:
// the first packet records no interval (4.11 measures from the window's
// creation), and a probe gap is recorded only when the partner, s+1, is the
// very next arrival after its start. 4.11 keeps the start and measures any
// later s mod 16 = 1 packet from it: when the partner was lost, or the
// sender put a retransmission or a window stall between the two, the "gap"
// is a send period or a round trip. Under heavy loss such samples
// outnumber true pairs, the capacity estimate falls to the send rate, and
// the rate control, stepped by that estimate, never climbs back.
func (a *Arrivals) OnData(now time.Time, s seq.Num) {
	if a.haveLast {
		gap := now.Sub(a.last)
		a.arrival[a.arrPos] = micros(gap)
		a.arrPos = (a.arrPos + 1) % arrivalSize
		if gap > spanIdleGap {
			a.spanIdle += gap
			a.spanIdleN++
		}
	}
	a.last, a.haveLast = now, true
	if a.spanCount == 0 {
		a.spanFirst = now
	}
	a.spanCount++

	if a.haveProbe && s == a.probeSeq.Inc() {
		a.probe[a.probePos] = micros(now.Sub(a.probeStart))
		a.probePos = (a.probePos + 1) % probeSize
	}
	a.haveProbe = s&0xF == 0
	if a.haveProbe {
		a.probeStart, a.probeSeq = now, s
	}
}

// micros converts d to whole microseconds, negative (a clock step) as 0.
func micros(d time.Duration) int64 {
	return max(d.Microseconds(), 0)
}

// ReceiveRate returns the packet arrival rate in packets/s for ACK word 5, or
// 0 when the samples are too scattered: the median interval, then the mean of
// the intervals strictly between median/8 and median·8, reported as
// ⌈10^6 / ⌊sum/count⌋⌉ if more than 8 intervals qualify.
//
// It copies 4.11's median exactly: element 8 of the sorted first 15 slots of
// the ring (4.11 partially sorts all but the last slot), which for 16 samples
// is the upper median or the one above it, depending on which slot is left
// out.
func (a *Arrivals) ReceiveRate() int {
	var scratch [arrivalSize - 1]int64
	copy(scratch[:], a.arrival[:arrivalSize-1])
	median := nth(scratch[:], arrivalSize/2)

	upper, lower := median<<3, median>>3
	var sum, count int64
	for _, v := range a.arrival {
		if v < upper && v > lower {
			sum += v
			count++
		}
	}
	if count <= arrivalSize>>1 {
		return 0
	}
	// Every counted v > lower ≥ 0, so the mean is at least 1.
	return int(math.Ceil(1e6 / float64(sum/count)))
}

// SpanRate returns the packets/s that arrived since the previous call, over
// the time from the first to the last of them, and starts a new span at
// the last. It returns 0, and keeps counting, while fewer than
// [arrivalSize] packets or less than a millisecond make up the span.
//
// Unlike ReceiveRate's median of single gaps, it does not read a burst of
// packets, such as a host that delivers them late and together hands the
// receiver, as a fast link; it reads low by the share of packets lost. Gaps
// longer than spanIdleGap are left out of the span's time: the sender was
// idle, and the rate is the one it sent at while it sent.
func (a *Arrivals) SpanRate() int {
	d := a.last.Sub(a.spanFirst) - a.spanIdle
	gaps := a.spanCount - 1 - a.spanIdleN
	if a.spanCount < arrivalSize || gaps < arrivalSize/2 || d < time.Millisecond {
		return 0
	}
	r := float64(gaps) / d.Seconds()
	a.spanFirst, a.spanCount, a.spanIdle, a.spanIdleN = a.last, 1, 0, 0
	return int(math.Ceil(r))
}

// Bandwidth returns the estimated link capacity in packets/s for ACK word 6:
// the median probe gap, then the mean of the gaps strictly between median/8
// and median·8 with the median counted once more, reported as
// ⌈10^6 / mean⌉. Like 4.11, the median is element 32 of the sorted first 63
// slots.
//
// Where 4.11 would divide by zero (a median gap of 0 µs, possible when a batch
// of packets is stamped with one now), Bandwidth reports 10^6, the rate of a
// 1 µs gap.
func (a *Arrivals) Bandwidth() int {
	var scratch [probeSize - 1]int64
	copy(scratch[:], a.probe[:probeSize-1])
	median := nth(scratch[:], probeSize/2)

	upper, lower := median<<3, median>>3
	sum, count := median, int64(1)
	for _, v := range a.probe {
		if v < upper && v > lower {
			sum += v
			count++
		}
	}
	if sum == 0 {
		return 1_000_000
	}
	return int(math.Ceil(1e6 / (float64(sum) / float64(count))))
}

// nth returns the value that would sit at index k if s were sorted, reordering
// s. Insertion sort: s holds at most 63 values and is on the caller's stack.
func nth(s []int64, k int) int64 {
	for i := 1; i < len(s); i++ {
		v := s[i]
		j := i
		for ; j > 0 && s[j-1] > v; j-- {
			s[j] = s[j-1]
		}
		s[j] = v
	}
	return s[k]
}
