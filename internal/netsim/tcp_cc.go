package netsim

import (
	"math"
	"time"
)

// CUBIC's constants (RFC 9438 §4.1, §5): C in segments per second cubed,
// the multiplicative decrease factor, and the Reno-friendly additive
// increase that gives the same average window as Reno's (1, 0.5).
const (
	cubicC     = 0.4
	cubicBeta  = 0.7
	cubicAlpha = 3 * (1 - cubicBeta) / (1 + cubicBeta)
)

// HyStart++ constants (RFC 9406 §4.3); hsL is its L for a sender that
// does not pace.
const (
	hsMinRTTThresh = 4 * time.Millisecond
	hsMaxRTTThresh = 16 * time.Millisecond
	hsMinRTTDiv    = 8
	hsNRTTSample   = 8
	hsCSSDivisor   = 4
	hsCSSRounds    = 5
	hsL            = 8
)

// tcpCC is a flow's congestion window: slow start (with HyStart++ if on)
// and congestion avoidance by CUBIC or NewReno. The sender's loss
// recovery sets the window directly while it runs (setCwnd). Windows are
// in segments, fractional.
type tcpCC struct {
	cubic bool
	w     float64 // congestion window
	ss    float64 // slow start threshold; +Inf until the first reduction
	maxW  float64 // the receive window: w never exceeds it

	// CUBIC (RFC 9438 §4). epoch zero means the congestion avoidance
	// stage has not started yet; it starts on its first ACK.
	wMax       float64 // window before the last reduction; 0 undefined
	cwndPrior  float64
	timedOut   bool // the stage to start follows a timeout (§4.8)
	epoch      time.Time
	k          float64 // seconds from epoch to reach wMax
	cwndEpoch  float64
	wEst       float64 // Reno-friendly estimate
	hs         hystart
	hsDisabled bool
}

// hystart is the state of HyStart++ (RFC 9406) in the initial slow start.
type hystart struct {
	done        bool   // left the initial slow start
	windowEnd   uint64 // the round ends when this segment is acknowledged
	started     bool   // a round is under way
	lastMin     time.Duration
	curMin      time.Duration
	samples     int
	css         bool // in Conservative Slow Start
	cssBaseline time.Duration
	cssRounds   int
}

func newTCPCC(cfg TCPConfig) tcpCC {
	c := tcpCC{
		cubic: cfg.CC == "cubic",
		w:     float64(cfg.InitialWindow),
		ss:    math.Inf(1),
		maxW:  float64(cfg.MaxWindow),
	}
	c.hsDisabled = cfg.NoHyStart || !c.cubic
	c.hs.lastMin, c.hs.curMin = -1, -1
	return c
}

func (c *tcpCC) cwnd() float64     { return c.w }
func (c *tcpCC) ssthresh() float64 { return c.ss }

// setCwnd sets the window during a recovery, at least one segment.
func (c *tcpCC) setCwnd(w float64) { c.w = min(max(w, 1), c.maxW) }

// onACK grows the window for acked segments newly delivered outside a
// fast recovery at now. rtt is the ACK's round-trip sample or negative;
// una and nxt are the sender's first unacknowledged and next segment
// after the ACK, srtt its smoothed round trip.
func (c *tcpCC) onACK(now time.Time, acked int, rtt time.Duration, una, nxt uint64, srtt time.Duration) {
	if acked <= 0 {
		return
	}
	if c.w < c.ss {
		// Slow start stops at the threshold; what is left of the ACK
		// counts in congestion avoidance, as Linux does it.
		acked = c.slowStart(acked, rtt, una, nxt)
	}
	if acked > 0 && c.w >= c.ss {
		if c.cubic {
			c.cubicAvoid(now, acked, srtt)
		} else {
			c.w += float64(acked) / c.w
		}
	}
	c.w = min(c.w, c.maxW)
}

// slowStart grows the window by what was acknowledged (RFC 5681 with
// appropriate byte counting), or by a quarter of it in HyStart++'s
// Conservative Slow Start, which it may end. It returns the part of acked
// beyond the threshold.
func (c *tcpCC) slowStart(acked int, rtt time.Duration, una, nxt uint64) int {
	h := &c.hs
	if c.hsDisabled || h.done {
		n := min(float64(acked), c.ss-c.w)
		c.w += n
		return acked - int(n)
	}
	if !h.started || una >= h.windowEnd {
		// A new round.
		if h.started && h.css {
			h.cssRounds++
			if h.cssRounds >= hsCSSRounds {
				h.done = true
				c.ss = c.w
				return acked
			}
		}
		h.started = true
		h.windowEnd = nxt
		h.lastMin, h.curMin, h.samples = h.curMin, -1, 0
	}
	if rtt >= 0 {
		if h.curMin < 0 || rtt < h.curMin {
			h.curMin = rtt
		}
		h.samples++
	}
	if h.samples >= hsNRTTSample && h.curMin >= 0 {
		switch {
		case !h.css && h.lastMin >= 0:
			thresh := min(max(h.lastMin/hsMinRTTDiv, hsMinRTTThresh), hsMaxRTTThresh)
			if h.curMin >= h.lastMin+thresh {
				h.css, h.cssBaseline, h.cssRounds = true, h.curMin, 0
			}
		case h.css && h.curMin < h.cssBaseline:
			// The delay rise was spurious: back to slow start.
			h.css = false
		}
	}
	inc := float64(min(acked, hsL))
	if h.css {
		inc /= hsCSSDivisor
	}
	c.w += inc
	return 0
}

// cubicAvoid grows the window in congestion avoidance (RFC 9438 §4.2 to
// §4.5): towards W_cubic one round trip ahead, at most 1.5 times the
// window per round trip, and no slower than the Reno-friendly estimate.
func (c *tcpCC) cubicAvoid(now time.Time, acked int, srtt time.Duration) {
	if c.epoch.IsZero() {
		c.epoch, c.cwndEpoch, c.wEst = now, c.w, c.w
		switch {
		case c.wMax == 0 || c.timedOut:
			// No loss yet (HyStart++ ended slow start), or after a
			// timeout: grow from here (§4.8, §4.10).
			c.wMax, c.k = c.w, 0
			if c.cwndPrior == 0 {
				c.cwndPrior = c.w
			}
			c.timedOut = false
		case c.wMax > c.w:
			c.k = math.Cbrt((c.wMax - c.w) / cubicC)
		default:
			c.k = 0
		}
	}
	t := now.Sub(c.epoch).Seconds()
	alpha := cubicAlpha
	if c.wEst >= c.cwndPrior {
		alpha = 1
	}
	c.wEst += alpha * float64(acked) / c.w
	wCubic := func(t float64) float64 { d := t - c.k; return cubicC*d*d*d + c.wMax }
	if wCubic(t) < c.wEst {
		c.w = max(c.w, c.wEst)
		return
	}
	target := min(max(wCubic(t+srtt.Seconds()), c.w), 1.5*c.w)
	c.w += (target - c.w) / c.w * float64(acked)
}

// onCongestion reduces the threshold for a loss detected by duplicate
// ACKs, SACKs or a timeout; flight is the number of segments outstanding.
// It leaves the window to the recovery.
func (c *tcpCC) onCongestion(flight uint64) {
	c.hs.done = true
	if !c.cubic {
		c.ss = max(float64(flight)/2, 2)
		return
	}
	// Fast convergence (§4.7): a flow whose window fell since the last
	// reduction releases bandwidth to newer ones.
	if c.w < c.wMax {
		c.wMax = c.w * (1 + cubicBeta) / 2
	} else {
		c.wMax = c.w
	}
	c.cwndPrior = c.w
	c.ss = max(c.w*cubicBeta, 2)
	c.epoch = time.Time{}
}

// onTimeout restarts from one segment after a retransmission timeout.
func (c *tcpCC) onTimeout() {
	c.hs.done = true
	c.w = 1
	c.epoch = time.Time{}
	c.timedOut = true
}
