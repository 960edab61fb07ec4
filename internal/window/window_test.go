package window

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/seq"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func at(us int) time.Time { return t0.Add(time.Duration(us) * time.Microsecond) }

func TestACKHistoryStoreAcknowledge(t *testing.T) {
	var h ACKHistory
	_, _, ok := h.Acknowledge(1, at(0))
	require.False(t, ok, "empty history")

	h.Store(1, 100, at(0))
	h.Store(2, 150, at(10_000))
	h.Store(3, 200, at(20_000))

	ack, rtt, ok := h.Acknowledge(2, at(13_500))
	require.True(t, ok)
	require.Equal(t, seq.Num(150), ack)
	require.Equal(t, 3500*time.Microsecond, rtt)

	_, _, ok = h.Acknowledge(2, at(14_000))
	require.False(t, ok, "a second ACK2 for the same ACK yields no sample")
	_, _, ok = h.Acknowledge(1, at(14_000))
	require.False(t, ok, "older entries are dropped with the match")
	_, _, ok = h.Acknowledge(9, at(14_000))
	require.False(t, ok, "unknown")

	ack, rtt, ok = h.Acknowledge(3, at(21_000))
	require.True(t, ok)
	require.Equal(t, seq.Num(200), ack)
	require.Equal(t, time.Millisecond, rtt)
	_, _, ok = h.Acknowledge(3, at(21_000))
	require.False(t, ok)
}

func TestACKHistoryOverwrite(t *testing.T) {
	var h ACKHistory
	for i := 1; i <= historySize+10; i++ {
		h.Store(seq.Ack(i), seq.Num(i*10), at(i))
	}
	for i := 1; i <= 10; i++ {
		_, _, ok := h.Acknowledge(seq.Ack(i), at(5000))
		require.False(t, ok, "ACK %d was overwritten", i)
	}
	ack, rtt, ok := h.Acknowledge(11, at(5000))
	require.True(t, ok, "oldest surviving entry")
	require.Equal(t, seq.Num(110), ack)
	require.Equal(t, (5000-11)*time.Microsecond, rtt)

	ack, _, ok = h.Acknowledge(historySize+10, at(5000))
	require.True(t, ok, "newest entry")
	require.Equal(t, seq.Num((historySize+10)*10), ack)
}

func TestACKHistoryWrap(t *testing.T) {
	var h ACKHistory
	// ACK sequence numbers wrap from 0x7FFFFFFF to 0; the data ACK numbers
	// from seq.Max to 0; the ring index wraps several times meanwhile.
	a := seq.Ack(seq.Max - 2500)
	n := seq.Max - 100
	for i := range 3000 {
		h.Store(a, n, at(i*10))
		if i%7 == 2 {
			got, rtt, ok := h.Acknowledge(a, at(i*10+250))
			require.True(t, ok, "i=%d", i)
			require.Equal(t, n, got)
			require.Equal(t, 250*time.Microsecond, rtt)
		}
		a = a.Next()
		n = n.Inc()
	}
	require.Equal(t, seq.Ack(3000-2501), a)

	// The last 1024 stored minus those consumed by the last Acknowledge.
	got, _, ok := h.Acknowledge(a-1, at(40_000))
	require.True(t, ok)
	require.Equal(t, n.Dec(), got)
}

func TestRTTUpdate(t *testing.T) {
	r := NewRTT()
	require.Equal(t, 100*time.Millisecond, r.RTT)
	require.Equal(t, 50*time.Millisecond, r.Var)

	// The first sample replaces the initial guess.
	r.Update(100 * time.Millisecond)
	require.Equal(t, 100*time.Millisecond, r.RTT)
	require.Equal(t, 50*time.Millisecond, r.Var)

	// Then 4.11's arithmetic: Var = (3·50000 + |20000 − 100000|) >> 2 =
	// 57500; RTT = (7·100000 + 20000) >> 3 = 90000.
	r.Update(20 * time.Millisecond)
	require.Equal(t, 90_000*time.Microsecond, r.RTT)
	require.Equal(t, 57_500*time.Microsecond, r.Var)

	// Truncating integer arithmetic: (7·90000 + 1234) >> 3 = 78904 (78904.25);
	// (3·57500 + 88766) >> 2 = 65316 (65316.5).
	r.Update(1234*time.Microsecond + 999*time.Nanosecond)
	require.Equal(t, 78_904*time.Microsecond, r.RTT)
	require.Equal(t, 65_316*time.Microsecond, r.Var)

	// Converges on a steady sample.
	for range 200 {
		r.Update(300 * time.Microsecond)
	}
	require.InDelta(t, 300, r.RTT.Microseconds(), 8)
	require.Less(t, r.Var.Microseconds(), int64(8))
}

func TestRTTFirstSample(t *testing.T) {
	r := NewRTT()
	r.Update(2 * time.Millisecond)
	require.Equal(t, 2*time.Millisecond, r.RTT)
	require.Equal(t, time.Millisecond, r.Var)
}

func TestArrivalsInitial(t *testing.T) {
	a := NewArrivals()
	require.Equal(t, 1, a.ReceiveRate(), "captures: first ACKs report 1")
	require.Equal(t, 1000, a.Bandwidth(), "captures: first ACKs report 1000")
}

func TestArrivalsSteadyRate(t *testing.T) {
	a := NewArrivals()
	us := 0
	for i := range 20 {
		a.OnData(at(us), seq.Num(i+2)) // never a probe pair
		us += 10
	}
	require.Equal(t, 100_000, a.ReceiveRate())
	require.Equal(t, 1000, a.Bandwidth(), "no probes yet")
}

func TestArrivalsRateNeedsMoreThanHalf(t *testing.T) {
	a := NewArrivals()
	// 8 fresh 10 µs intervals, 8 slots still at 1 s: the median is one of the
	// two clusters and only 8 samples sit within a factor 8 of it.
	for i := range 9 {
		a.OnData(at(i*10), seq.Num(i+2))
	}
	require.Equal(t, 0, a.ReceiveRate())
}

func TestArrivalsOutliersFiltered(t *testing.T) {
	a := NewArrivals()
	us := 0
	for i := range 40 {
		gap := 100
		switch i % 8 {
		case 3:
			gap = 5000 // a stall: > 8 × median
		case 6:
			gap = 5 // a burst: < median / 8
		}
		us += gap
		a.OnData(at(us), seq.Num(i+2))
	}
	// 12 of 16 intervals are 100 µs; the 2 stalls and 2 bursts are dropped.
	require.Equal(t, 10_000, a.ReceiveRate())
}

func TestArrivalsRateRounding(t *testing.T) {
	a := NewArrivals()
	// 8 intervals of 3 µs and 8 of 4 µs: ⌊56/16⌋ = 3, ⌈10^6/3⌉ = 333334.
	us := 0
	for i := range 17 {
		a.OnData(at(us), seq.Num(i+2))
		us += 3 + i%2
	}
	require.Equal(t, 333_334, a.ReceiveRate())
}

func TestArrivalsProbeGaps(t *testing.T) {
	a := NewArrivals()
	us := 0
	s := seq.Num(0)
	for range 64 {
		a.OnData(at(us), s) // s mod 16 = 0: probe start
		us += 20
		a.OnData(at(us), s.Inc()) // its partner 20 µs later
		us += 1000
		s = s.Add(16)
	}
	require.Equal(t, 50_000, a.Bandwidth())
}

func TestArrivalsProbeOutliersFiltered(t *testing.T) {
	a := NewArrivals()
	us := 0
	s := seq.Num(32)
	for i := range 64 {
		gap := 20
		if i%10 == 0 {
			gap = 400 // partner queued behind cross traffic: > 8 × median
		}
		a.OnData(at(us), s)
		us += gap
		a.OnData(at(us), s.Inc())
		us += 500
		s = s.Add(16)
	}
	// The 7 outliers are dropped; the mean of 57 gaps of 20 and the median
	// once more is 20.
	require.Equal(t, 50_000, a.Bandwidth())
}

func TestArrivalsProbeNeedsStart(t *testing.T) {
	a := NewArrivals()
	// s mod 16 = 1 without a preceding s mod 16 = 0, and a second s mod 16 = 1
	// (a retransmission) after the pair: neither records a gap.
	a.OnData(at(0), 1)
	a.OnData(at(100), 16)
	a.OnData(at(110), 17)
	a.OnData(at(5000), 17)
	// A partner that is not the next arrival measures no gap: lost and
	// retransmitted after later packets, or preceded by a retransmission.
	a.OnData(at(6000), 32)
	a.OnData(at(6010), 34)
	a.OnData(at(9000), 33)
	a.OnData(at(10000), 48)
	a.OnData(at(10010), 7)
	a.OnData(at(10020), 49)
	require.Equal(t, int64(10), a.probe[0])
	for _, v := range a.probe[1:] {
		require.Equal(t, int64(initialProbe), v)
	}
}

func TestArrivalsSameInstant(t *testing.T) {
	a := NewArrivals()
	// A batch stamped with one now: every interval and gap is 0 µs.
	for i := range 2000 {
		a.OnData(at(0), seq.Num(i))
	}
	require.Equal(t, 0, a.ReceiveRate())
	require.Equal(t, 1_000_000, a.Bandwidth())
}

func TestNthMatchesSort(t *testing.T) {
	s := []int64{9, 3, 7, 1, 8, 2, 6, 4, 5, 0, 11, 10, 14, 13, 12}
	require.Equal(t, int64(8), nth(s, 8))
	require.IsNonDecreasing(t, s)
}

func BenchmarkArrivals(b *testing.B) {
	a := NewArrivals()
	now := t0
	s := seq.Num(0)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(10 * time.Microsecond)
		a.OnData(now, s)
		s = s.Inc()
		_ = a.ReceiveRate()
	}
}

func BenchmarkBandwidth(b *testing.B) {
	a := NewArrivals()
	b.ReportAllocs()
	for b.Loop() {
		_ = a.Bandwidth()
	}
}

func BenchmarkACKHistory(b *testing.B) {
	var h ACKHistory
	now := t0
	n := seq.Ack(1)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(10 * time.Millisecond)
		h.Store(n, seq.Num(n), now)
		_, _, _ = h.Acknowledge(n, now.Add(time.Millisecond))
		n = n.Next()
	}
}

func TestSpanRate(t *testing.T) {
	a := NewArrivals()
	t0 := time.Unix(1000, 0)
	// 8 packets: too few for a span.
	for i := range 8 {
		a.OnData(t0.Add(time.Duration(i)*100*time.Microsecond), seq.Num(i))
	}
	require.Zero(t, a.SpanRate())
	// Then bursts of 8 back to back every 800 µs: about 10,000 packets/s
	// (71 gaps over 6.407 ms with the first packets), while the median
	// gap says 1 µs.
	at := t0
	for i := 8; i < 8+64; i++ {
		if i%8 == 0 {
			at = t0.Add(time.Duration(i/8) * 800 * time.Microsecond)
		} else {
			at = at.Add(time.Microsecond)
		}
		a.OnData(at, seq.Num(i))
	}
	r := a.SpanRate()
	require.InEpsilon(t, 71/6.407e-3, float64(r), 0.001)
	require.Greater(t, a.ReceiveRate(), 10*r, "the median measures the bursts")
	// The next span starts at the last arrival.
	require.Zero(t, a.SpanRate())
}

// TestSpanRateSkipsIdle checks that a sender's pause (its window full while
// a loss is repaired) does not count as time the span's packets took.
func TestSpanRateSkipsIdle(t *testing.T) {
	a := NewArrivals()
	t0 := time.Unix(1000, 0)
	at := t0
	// 1,000 packets/s: 20 packets, a 90 ms pause, 20 more.
	for i := range 40 {
		a.OnData(at, seq.Num(i))
		at = at.Add(time.Millisecond)
		if i == 19 {
			at = at.Add(90 * time.Millisecond)
		}
	}
	// 39 gaps: 38 of 1 ms and one of 91 ms, left out.
	require.InEpsilon(t, 38/38e-3, float64(a.SpanRate()), 0.001)
}

// TestACKHistoryGrows: the ring starts small and grows, oldest entries
// kept in order, while ACKs go unanswered; answered ones keep it small.
func TestACKHistoryGrows(t *testing.T) {
	var h ACKHistory
	require.Nil(t, h.ring, "no memory before the first ACK")
	for i := 1; i <= 100; i++ {
		h.Store(seq.Ack(i), seq.Num(i), at(i))
		_, _, ok := h.Acknowledge(seq.Ack(i), at(i+5))
		require.True(t, ok)
	}
	require.Len(t, h.ring, 16, "answered ACKs need no room")
	for i := 1; i <= 300; i++ {
		h.Store(seq.Ack(1000+i), seq.Num(i), at(1000+i))
	}
	require.Len(t, h.ring, 512)
	ack, rtt, ok := h.Acknowledge(1001, at(2000))
	require.True(t, ok, "the oldest unanswered ACK survives the growth")
	require.Equal(t, seq.Num(1), ack)
	require.Equal(t, 999*time.Microsecond, rtt)
}
