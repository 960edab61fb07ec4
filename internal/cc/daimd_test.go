package cc

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/seq"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Millisecond))) }

const isn = seq.Num(1000)

func inputs() Inputs {
	return Inputs{
		MSS:        1500,
		MaxWindow:  8192,
		SndCurrSeq: isn.Dec(),
		RTT:        100 * time.Millisecond,
		RecvRate:   0,
		Bandwidth:  0,
	}
}

// afterSlowStart returns a controller out of slow start, pacing at periodUS,
// with no loss pending, as an early NAK with a known receive rate leaves it.
func afterSlowStart(t testing.TB, periodUS int) (*DAIMD, Inputs) {
	t.Helper()
	d := NewDAIMD(1)
	in := inputs()
	d.Init(t0, in)
	in.RecvRate = 1_000_000 / periodUS
	in.SndCurrSeq = isn.Add(50)
	d.OnLoss(ms(1), isn.Add(10), in)
	require.False(t, d.slowStart)
	require.False(t, d.loss)
	require.InDelta(t, float64(periodUS), d.period, 1e-9)
	return d, in
}

func TestInit(t *testing.T) {
	d := NewDAIMD(1)
	require.Equal(t, time.Microsecond, d.PacketPeriod())
	require.Equal(t, 16, d.Window())

	d.Init(t0, inputs())
	require.Equal(t, time.Microsecond, d.PacketPeriod())
	require.Equal(t, 16, d.Window())
	require.True(t, d.slowStart)
	require.Equal(t, isn.Dec(), d.lastAck)
	require.Equal(t, isn.Add(-2), d.lastDecSeq)
}

func TestSlowStartGrowth(t *testing.T) {
	d := NewDAIMD(1)
	in := inputs()
	in.MaxWindow = 100
	in.RecvRate = 5000
	d.Init(t0, in)

	// Inclusive count: ACK 1011 after last ACK 999 adds 13, not 12.
	d.OnACK(ms(10), isn.Add(11), in)
	require.Equal(t, 16+13, d.Window())
	require.Equal(t, time.Microsecond, d.PacketPeriod(), "no rate change in slow start")

	d.OnACK(ms(20), isn.Add(50), in)
	require.Equal(t, 29+40, d.Window())
	require.True(t, d.slowStart)

	// Passing MaxWindow ends slow start at the receive rate: 10^6/5000 = 200
	// µs; the same call then applies one increase (no bandwidth known: the
	// minimum, 0.01 packet).
	d.OnACK(ms(30), isn.Add(82), in)
	require.False(t, d.slowStart)
	require.Equal(t, 69+33, d.Window())
	want := 200.0 * 10_000 / (200*0.01 + 10_000)
	require.InDelta(t, want, d.period, 1e-9)
	require.Equal(t, time.Duration(want*1000), d.PacketPeriod())

	// From then on the window follows the receive rate: R·(RTT + 10 ms) + 16.
	d.OnACK(ms(40), isn.Add(90), in)
	require.Equal(t, 5000*110/1000+16, d.Window())
}

func TestSlowStartExitWithoutRate(t *testing.T) {
	d := NewDAIMD(1)
	in := inputs()
	in.MaxWindow = 20
	d.Init(t0, in)
	d.OnACK(ms(10), isn.Add(9), in) // W = 16 + 11 = 27 > 20
	require.False(t, d.slowStart)
	p := 110_000.0 / 27
	require.InDelta(t, p*10_000/(p*0.01+10_000), d.period, 1e-9)
}

func TestSlowStartAcrossWrap(t *testing.T) {
	d := NewDAIMD(1)
	in := inputs()
	in.SndCurrSeq = seq.Max - 5
	d.Init(t0, in)
	d.OnACK(ms(10), 4, in) // Max-5 … Max and 0 … 4 inclusive: 11
	require.Equal(t, 27, d.Window())
}

func TestOnACKWithinRCIntervalIgnored(t *testing.T) {
	d := NewDAIMD(1)
	in := inputs()
	d.Init(t0, in)

	d.OnACK(ms(9.999), isn.Add(100), in)
	require.Equal(t, 16, d.Window(), "first ACK less than 10 ms after Init")

	d.OnACK(ms(10), isn.Add(100), in)
	require.Equal(t, 16+102, d.Window())

	d.OnACK(ms(19.9), isn.Add(200), in)
	require.Equal(t, 118, d.Window(), "less than 10 ms after the last run")
	require.Equal(t, isn.Add(100), d.lastAck)

	d.OnACK(ms(20), isn.Add(200), in)
	require.Equal(t, 118+101, d.Window())

	// After slow start too.
	d, in = afterSlowStart(t, 100)
	in.Bandwidth = 100_000
	d.OnACK(ms(15), isn.Add(20), in)
	p := d.period
	d.OnACK(ms(24), isn.Add(30), in)
	require.Equal(t, p, d.period)
}

func TestOnLossInSlowStartWithRate(t *testing.T) {
	d := NewDAIMD(1)
	in := inputs()
	d.Init(t0, in)
	in.RecvRate = 25_000
	in.SndCurrSeq = isn.Add(40)
	d.OnLoss(ms(3), isn.Add(7), in)
	require.False(t, d.slowStart)
	require.False(t, d.loss, "no loss flag: the next ACK may increase")
	require.Equal(t, 40*time.Microsecond, d.PacketPeriod(), "10^6/R, no decrease")
	require.Equal(t, isn.Add(-2), d.lastDecSeq, "no congestion period opened")

	// The first tiny early-NAK case of §13: R still 16 → 62.5 ms per packet.
	d = NewDAIMD(1)
	d.Init(t0, in)
	in.RecvRate = 16
	d.OnLoss(ms(3), isn.Add(7), in)
	require.Equal(t, 62500*time.Microsecond, d.PacketPeriod())
}

func TestOnLossInSlowStartWithoutRate(t *testing.T) {
	d := NewDAIMD(1)
	in := inputs()
	d.Init(t0, in)
	in.SndCurrSeq = isn.Add(40)
	d.OnLoss(ms(3), isn.Add(7), in)
	require.False(t, d.slowStart)
	require.True(t, d.loss)
	// 4.11 quirk: P = W/(RTT+SYN) = 16/110000 µs, then ⌈P·1.125⌉ = 1 µs.
	require.Equal(t, time.Microsecond, d.PacketPeriod())
	require.Equal(t, 16.0/110_000, d.lastDecPeriod)
	require.Equal(t, isn.Add(40), d.lastDecSeq)
}

func TestOnLossNewPeriodDecrease(t *testing.T) {
	d, in := afterSlowStart(t, 200)
	in.SndCurrSeq = isn.Add(300)
	d.OnLoss(ms(5), isn.Add(120), in)
	require.Equal(t, 225*time.Microsecond, d.PacketPeriod(), "200 · 1.125")
	require.Equal(t, 200.0, d.lastDecPeriod)
	require.Equal(t, isn.Add(300), d.lastDecSeq)
	require.True(t, d.loss)

	// Rounded up to a whole µs: 225 · 1.125 = 253.125.
	in.SndCurrSeq = isn.Add(400)
	d.OnLoss(ms(6), isn.Add(301), in)
	require.Equal(t, 254*time.Microsecond, d.PacketPeriod())

	// The ACK after a loss clears the flag instead of increasing the rate,
	// but still updates the window.
	in.RecvRate = 4000
	in.Bandwidth = 100_000
	d.OnACK(ms(20), isn.Add(200), in)
	require.False(t, d.loss)
	require.Equal(t, 254*time.Microsecond, d.PacketPeriod())
	// The window covers RTT + SYN at the larger of the arrival rate and
	// the capacity estimate (windowRate).
	require.Equal(t, 100_000*110/1000+16, d.Window())
	in.Bandwidth = 1000
	d.OnACK(ms(40), isn.Add(210), in)
	require.Equal(t, 4000*110/1000+16, d.Window())
}

func TestAtMostFiveDecreasesPerPeriod(t *testing.T) {
	d, in := afterSlowStart(t, 200)
	in.SndCurrSeq = isn.Add(300)

	// First NAK of the first period: avgNAK = 0, so decRandom = 1 and every
	// NAK of the period is a decrease point, up to 5 decreases.
	want := []time.Duration{225, 254, 286, 322, 363, 363, 363, 363, 363, 363}
	for i, w := range want {
		d.OnLoss(ms(5+float64(i)), isn.Add(150+i), in) // all before lastDecSeq
		require.Equal(t, w*time.Microsecond, d.PacketPeriod(), "NAK %d", i+1)
		require.Equal(t, 1, d.decRandom)
	}
	require.Equal(t, 5, d.nakCount, "NAKs past the limit are not counted")

	// A loss beyond the last decrease opens a new period.
	in.SndCurrSeq = isn.Add(600)
	d.OnLoss(ms(20), isn.Add(301), in)
	require.Equal(t, 409*time.Microsecond, d.PacketPeriod(), "⌈363 · 1.125⌉")
	require.Equal(t, 1, d.avgNAK, "⌈0·0.875 + 5·0.125⌉")
	require.Equal(t, 1, d.decRandom)
	require.Equal(t, 1, d.nakCount)
	require.Equal(t, 1, d.decCount)
}

func TestDecRandomSpreadsDecreases(t *testing.T) {
	d, in := afterSlowStart(t, 100)
	d.avgNAK = 40 // as after many NAK-heavy periods
	d.nakCount = 40
	seen := map[int]bool{}
	for i := range 200 {
		in.SndCurrSeq = isn.Add(1000 * (i + 2))
		d.OnLoss(ms(float64(i)), isn.Add(1000*(i+1)+1), in)
		require.Equal(t, 1, d.nakCount)
		require.GreaterOrEqual(t, d.decRandom, 1)
		require.LessOrEqual(t, d.decRandom, d.avgNAK)
		seen[d.decRandom] = true
		d.period = 100
	}
	require.Greater(t, len(seen), 1, "decRandom varies")

	// Same seed, same draws.
	a, b := NewDAIMD(7), NewDAIMD(7)
	require.Equal(t, a.uniform(), b.uniform())
}

func TestRepeatedDecreaseAtDecRandom(t *testing.T) {
	d, in := afterSlowStart(t, 100)
	in.SndCurrSeq = isn.Add(300)
	d.OnLoss(ms(5), isn.Add(120), in) // opens the period: 113
	d.decRandom = 3                   // force the draw
	got := []time.Duration{}
	for i := range 6 {
		d.OnLoss(ms(6+float64(i)), isn.Add(130+i), in)
		got = append(got, d.PacketPeriod()/time.Microsecond)
	}
	// NAK counts 2, 3, 4, 5 are candidates (decCount 1→5); only 3 is a
	// multiple of decRandom. NAKs 6 and 7 are past the limit.
	require.Equal(t, []time.Duration{113, 128, 128, 128, 128, 128}, got)
}

func TestRateIncrease(t *testing.T) {
	d, in := afterSlowStart(t, 100) // 10 000 packets/s
	in.RecvRate = 10_000
	in.Bandwidth = 100_000

	// Spare B = 100 000 − 10 000, capped at B_w/9 = 11 111 while P is above
	// the last decrease period (1 after Init). 11 111·1500·8 ≈ 1.3·10^8 bits/s
	// → 10^9 · 1.5·10^-6 / 1500 = 1 packet per 10 ms.
	d.OnACK(ms(12), isn.Add(20), in)
	require.InDelta(t, 100.0*10_000/(100*1+10_000), d.period, 1e-9)
	require.Equal(t, 100_000*110/1000+16, d.Window())

	// Successive intervals keep raising the rate.
	prev := d.period
	for i := range 50 {
		d.OnACK(ms(22+10*float64(i)), isn.Add(30+i), in)
		require.Less(t, d.period, prev)
		prev = d.period
	}
}

func TestRateIncreaseSteps(t *testing.T) {
	cases := []struct {
		name          string
		period        float64 // µs
		lastDecPeriod float64
		bandwidth     int
		inc           float64
	}{
		{"no spare capacity", 100, 1, 5000, 0.01},
		{"no bandwidth estimate", 100, 1, 0, 0.01},
		{"capped at B_w/9", 50, 1, 1_000_000, 10},                  // 111 111·12 000 → 10^10
		{"below last decrease: uncapped", 50, 100, 1_000_000, 100}, // 980 000·12 000 → 10^11
		{"small spare: minimum", 1000, 1, 1010, 0.01},              // 10·12 000 → 10^6 · 1e-9
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, in := afterSlowStart(t, 100)
			d.period, d.lastDecPeriod = c.period, c.lastDecPeriod
			in.Bandwidth = c.bandwidth
			d.OnACK(ms(15), isn.Add(20), in)
			require.InDelta(t, c.period*10_000/(c.period*c.inc+10_000), d.period, 1e-9)
		})
	}
}

func TestOnTimeout(t *testing.T) {
	d := NewDAIMD(1)
	in := inputs()
	d.Init(t0, in)
	in.RecvRate = 2000
	d.OnTimeout(ms(300), in)
	require.False(t, d.slowStart)
	require.False(t, d.loss)
	require.Equal(t, 500*time.Microsecond, d.PacketPeriod())

	// After slow start a timeout changes nothing.
	in.RecvRate = 10
	d.OnTimeout(ms(600), in)
	require.Equal(t, 500*time.Microsecond, d.PacketPeriod())

	// Without a receive rate: the inverted W/(RTT+SYN).
	d = NewDAIMD(1)
	in.RecvRate = 0
	d.Init(t0, in)
	d.OnTimeout(ms(300), in)
	require.InDelta(t, 16.0/110_000, d.period, 1e-12)
}

func TestFloorPeriod(t *testing.T) {
	cases := []struct {
		p     time.Duration
		mss   int
		maxBW int64
		want  time.Duration
	}{
		{10 * time.Microsecond, 1500, -1, 10 * time.Microsecond},
		{10 * time.Microsecond, 1500, 0, 10 * time.Microsecond},
		{10 * time.Microsecond, 1500, 15_000_000, 100 * time.Microsecond},
		{200 * time.Microsecond, 1500, 15_000_000, 200 * time.Microsecond},
		{time.Microsecond, 1500, 1_000_000_000, 1500 * time.Nanosecond},
		{0, 1500, 1500, time.Second},
	}
	for _, c := range cases {
		require.Equal(t, c.want, FloorPeriod(c.p, c.mss, c.maxBW), "%+v", c)
	}
}

func BenchmarkOnACK(b *testing.B) {
	d, in := afterSlowStart(b, 100)
	in.RecvRate = 10_000
	in.Bandwidth = 100_000
	now := ms(10)
	ack := isn.Add(20)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(10 * time.Millisecond)
		ack = ack.Add(100)
		d.OnACK(now, ack, in)
		if d.period < 1 {
			d.period = 100
		}
	}
}

func BenchmarkOnLoss(b *testing.B) {
	d, in := afterSlowStart(b, 100)
	now := ms(10)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Millisecond)
		in.SndCurrSeq = in.SndCurrSeq.Add(100)
		d.OnLoss(now, in.SndCurrSeq.Add(-50), in)
		d.period = 100
	}
}
