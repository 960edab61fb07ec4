package cc

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/udt-go/udt/internal/seq"
)

// DAIMD constants, as in 4.11's CUDTCC.
const (
	rcInterval   = 10 * time.Millisecond // rate-control interval, = SYN
	rcIntervalUS = 10_000                // the same in µs, for the formulas
	beta         = 1.5e-6                // rate increase parameter
	minInc       = 0.01                  // minimum increase, packets per RC interval
	decFactor    = 1.125                 // period × 9/8: rate decreased by 1/9
	maxDecreases = 5                     // decreases per congestion period
)

// DAIMD is UDT's native congestion control, 4.11's CUDTCC (§13): slow start
// doubling a window, then a rate-based additive increase by a step that grows
// with the spare link capacity, and a multiplicative decrease by 1/9 on loss,
// repeated at randomised NAK counts at most 5 times per congestion period.
//
// Create it with [NewDAIMD] and call Init before anything else. It is not safe
// for concurrent use.
type DAIMD struct {
	period float64 // µs between packets
	cwnd   float64 // packets

	lastRC        time.Time // last time OnACK ran
	slowStart     bool
	lastAck       seq.Num // highest ACK seen in slow start
	loss          bool    // a NAK came since the last rate increase
	lastDecSeq    seq.Num // send sequence at the last decrease: ends a congestion period
	lastDecPeriod float64 // period before the last new-period decrease
	nakCount      int     // NAKs in this congestion period
	avgNAK        int     // EWMA of nakCount over periods
	decRandom     int     // decrease at every decRandom-th NAK of a period
	decCount      int     // decreases in this congestion period

	rng rand.PCG
}

var _ Controller = (*DAIMD)(nil)

// NewDAIMD returns a native controller whose randomised decrease points are
// drawn from a generator seeded with seed. Until Init it reports a period of
// 1 µs and a window of 16, the values Init sets.
func NewDAIMD(seed uint64) *DAIMD {
	d := &DAIMD{period: 1, cwnd: 16}
	d.rng.Seed(seed, 0x5544_5434_4441_494d) // "UDT4DAIM"
	return d
}

// Init starts slow start: period 1 µs, window 16, rate control timed from now.
func (d *DAIMD) Init(now time.Time, in Inputs) {
	d.lastRC = now
	d.slowStart = true
	d.lastAck = in.SndCurrSeq
	d.loss = false
	d.lastDecSeq = d.lastAck.Dec()
	d.lastDecPeriod = 1
	d.avgNAK = 0
	d.nakCount = 0
	d.decCount = 0
	d.decRandom = 1
	d.cwnd = 16
	d.period = 1
}

// OnACK runs at most once per 10 ms rate-control interval; ACKs in between
// are ignored. In slow start the window grows by the inclusive count from the
// last ACK to ack (newly acknowledged + 1, as in 4.11) until it passes
// in.MaxWindow; afterwards the window covers RTT + 10 ms at [windowRate] and
// the rate grows by inc packets per interval, unless a NAK came since the
// last run.
func (d *DAIMD) OnACK(now time.Time, ack seq.Num, in Inputs) {
	if now.Sub(d.lastRC) < rcInterval {
		return
	}
	d.lastRC = now

	if d.slowStart {
		d.cwnd += float64(seq.Len(d.lastAck, ack))
		d.lastAck = ack
		if d.cwnd > float64(in.MaxWindow) {
			d.slowStart = false
			// The path carried the window in a round trip without a
			// loss: start no slower than that. 4.11 takes the receive
			// rate alone, which reads far too low when the receiver
			// measured a flow-controlled trickle or coalesced (GRO)
			// arrivals, and then takes seconds to climb back.
			d.period = float64(rttUS(in)+rcIntervalUS) / d.cwnd
			if in.RecvRate > 0 {
				d.period = min(d.period, 1e6/float64(in.RecvRate))
			}
		}
	} else {
		d.cwnd = float64(windowRate(in))/1e6*float64(rttUS(in)+rcIntervalUS) + 16
	}

	if d.slowStart { // no rate increase during slow start
		return
	}
	if d.loss {
		d.loss = false
		return
	}

	// Spare capacity, packets/s; capped at B_w/9 while the rate is below
	// where it was last cut.
	b := int64(float64(in.Bandwidth) - 1e6/d.period)
	if d.period > d.lastDecPeriod && int64(in.Bandwidth/9) < b {
		b = int64(in.Bandwidth / 9)
	}
	inc := minInc
	if b > 0 && in.MSS > 0 {
		// 10^⌈log10(B·MSS·8)⌉ · β / MSS: one step per decade of spare bits/s.
		inc = max(minInc, math.Pow(10, math.Ceil(math.Log10(float64(b*int64(in.MSS))*8)))*beta/float64(in.MSS))
	}
	d.period = d.period * rcIntervalUS / (d.period*inc + rcIntervalUS)
}

// OnLoss ends slow start and, on the first NAK of a congestion period (firstLost
// beyond the send sequence at the last decrease), raises the period by 1/8;
// later NAKs of the period raise it again at every decRandom-th NAK, at most 5
// decreases in all.
//
// Two 4.11 quirks are kept: leaving slow start with a known receive rate sets
// the period to 10^6/in.RecvRate and returns without a decrease, and without
// one the period becomes W/(RTT + 10 ms), units inverted, so far below 1 µs
// that the decrease that follows rounds it up to 1 µs.
func (d *DAIMD) OnLoss(now time.Time, firstLost seq.Num, in Inputs) {
	if d.slowStart {
		d.slowStart = false
		if in.RecvRate > 0 {
			d.period = 1e6 / float64(in.RecvRate)
			return
		}
		d.period = d.cwnd / float64(rttUS(in)+rcIntervalUS) // sic
	}

	d.loss = true

	if seq.Cmp(firstLost&seq.Max, d.lastDecSeq) > 0 {
		// A new congestion period.
		d.lastDecPeriod = d.period
		d.period = math.Ceil(d.period * decFactor)
		d.avgNAK = int(math.Ceil(float64(d.avgNAK)*0.875 + float64(d.nakCount)*0.125))
		d.nakCount = 1
		d.decCount = 1
		d.lastDecSeq = in.SndCurrSeq
		// Spread the repeated decreases of competing flows (4.11 draws with
		// rand() seeded by the send sequence).
		d.decRandom = max(1, int(math.Ceil(float64(d.avgNAK)*d.uniform())))
		return
	}
	// A later NAK of the same period. As in 4.11 only the period's NAKs 2 to
	// 5 are counted, and those whose count is a multiple of decRandom
	// decrease again: with the one that opened the period, at most 5.
	if d.decCount >= maxDecreases {
		return
	}
	d.decCount++
	d.nakCount++
	if d.nakCount%d.decRandom == 0 {
		d.period = math.Ceil(d.period * decFactor)
		d.lastDecSeq = in.SndCurrSeq
	}
}

// OnTimeout ends slow start the way OnLoss does, without a decrease; after
// slow start it does nothing (4.11 has the doubling commented out).
func (d *DAIMD) OnTimeout(now time.Time, in Inputs) {
	if !d.slowStart {
		return
	}
	d.slowStart = false
	if in.RecvRate > 0 {
		d.period = 1e6 / float64(in.RecvRate)
	} else {
		d.period = d.cwnd / float64(rttUS(in)+rcIntervalUS) // sic, as in OnLoss
	}
}

// PacketPeriod returns the inter-packet interval, to the nanosecond.
func (d *DAIMD) PacketPeriod() time.Duration {
	return time.Duration(d.period * float64(time.Microsecond))
}

// Window returns the congestion window, whole packets.
func (d *DAIMD) Window() int { return int(d.cwnd) }

// uniform returns a float64 in [0, 1).
func (d *DAIMD) uniform() float64 {
	return float64(d.rng.Uint64()>>11) / (1 << 53)
}

// windowRate is the rate, packets/s, that sizes the window after slow start:
// the larger of the receiver's arrival rate and its link-capacity estimate.
//
// 4.11 takes the arrival rate alone: the median of the receiver's last 16
// arrival gaps. Its sender does not pace evenly (measured with Debian's
// 4.11 on Linux): packets leave in bursts, cross a bottleneck at the link's
// spacing, and that median reads the link's capacity. On an emulated
// 100 Mbit/s, 100 ms path at 1 % loss a 4.11 sender ran with a window of
// about 950 packets while sending 700 a second (our C++ peer's -perfmon).
// Our sender paces evenly and the median reads what it sends: the window
// would shrink tenfold, stall at every loss until its repair and lose a
// fifth of 4.11's goodput on long paths. The capacity estimate restores
// the window 4.11 in effect runs with.
func windowRate(in Inputs) int { return max(in.RecvRate, in.Bandwidth) }

// rttUS is the RTT in whole µs, as 4.11's int m_iRTT.
func rttUS(in Inputs) int64 { return in.RTT.Microseconds() }
