package cc

import (
	"math"
	"time"
)

// shareCap is the part of [Model] that shares a bottleneck with other
// flows: a bound on the pacing rate that behaves as TCP CUBIC's window
// does (RFC 9438), so that a flow of ours and a TCP flow that meet at a
// queue converge to like shares. It is held in packets per round trip (a
// window, w) and read as a rate through the current round-trip time: a
// queue that grows slows the flow as it slows a window-based one.
//
// A congestion event cuts w to β of the rate the flow was getting; w then
// grows along CUBIC's curve, in wall time, back to where it was cut and
// beyond, and the bound is lifted once it no longer binds. Random loss is
// not congestion and does not cut it (the caller judges).
type shareCap struct {
	w     float64       // the bound, packets per round trip; 0: none
	wMax  float64       // w where the last congestion event struck
	wLast float64       // wMax before fast convergence
	wEst  float64       // the Reno-friendly estimate (RFC 9438 §4.3)
	k     float64       // seconds from the epoch's start to wMax
	epoch time.Time     // the last cut
	rtt   time.Duration // round-trip time the bound is read through
	wCut  float64       // the window the last cut started from
}

const (
	cubicC    = 0.4 // packets/s³
	cubicBeta = 0.7
	// renoAlpha is the additive increase of the Reno-friendly estimate,
	// packets per round trip. RFC 9438 takes 3(1-β)/(1+β), 0.53, which
	// matches Reno's average window; with it the model kept a median 36 %
	// of 50 Mbit/s, 40 ms beside the kernel's cubic over TUN (six runs),
	// 34 % beside netsim's, where a window keeps about half. Our cut
	// starts from the rate that arrived, a few percent under the window a
	// TCP flow cuts from, and at these windows the estimate, not the
	// curve, sets the growth. With 1, netsim's CUBIC keeps 48-56 % on that
	// link (65 % before), the kernel's 48-67 % (median 54 % of six runs,
	// 61 % before), the 100 Mbit/s, 100 ms link is as before (the curve
	// governs there), and flows of ours that start unequal converge:
	// equal additive growth after each shared cut, where the curve takes
	// each back to its own peak.
	renoAlpha = 1.0
)

// active reports whether the bound is in force.
func (s *shareCap) active() bool { return s.w > 0 }

// rate returns the bound in packets/s, or +Inf when none is in force.
func (s *shareCap) rate() float64 {
	if s.w <= 0 || s.rtt <= 0 {
		return math.Inf(1)
	}
	return s.w / s.rtt.Seconds()
}

// cut starts a new epoch at now: the flow was getting rate packets/s over a
// round trip of rtt when congestion struck.
func (s *shareCap) cut(now time.Time, rate float64, rtt time.Duration) {
	w := rate * rtt.Seconds()
	if s.w > 0 {
		w = min(w, s.w)
	}
	w = max(w, minCwnd)
	// Fast convergence: a flow cut below its previous peak gives up
	// more, so that a newcomer gains.
	if w < s.wLast {
		s.wLast = w
		s.wMax = w * (1 + cubicBeta) / 2
	} else {
		s.wLast = w
		s.wMax = w
	}
	s.wCut = w
	s.w = max(w*cubicBeta, minCwnd)
	s.wEst = s.w
	s.k = math.Cbrt(s.wMax * (1 - cubicBeta) / cubicC)
	s.epoch = now
	s.rtt = rtt
}

// grow advances the bound to now, acked packets having been acknowledged
// since the last call, with rtt the current round-trip time.
func (s *shareCap) grow(now time.Time, acked float64, rtt time.Duration) {
	if s.w <= 0 {
		return
	}
	if rtt > 0 {
		s.rtt = rtt
	}
	t := now.Sub(s.epoch).Seconds() + s.rtt.Seconds()
	target := cubicC*math.Pow(t-s.k, 3) + s.wMax
	// At most half again per round trip (RFC 9438 §4.2).
	target = min(target, 1.5*s.w)
	if target > s.w {
		s.w += (target - s.w) * min(acked/s.w, 1)
	}
	s.wEst += renoAlpha * acked / s.w
	s.w = max(s.w, s.wEst)
}

// undo takes the last cut back at now: w returns to the window the cut
// started from (unless it has grown past it) and grows on from there as
// past a peak, along the convex part of the curve.
func (s *shareCap) undo(now time.Time) {
	if s.w <= 0 || s.w >= s.wCut {
		return
	}
	s.w, s.wMax, s.wLast, s.wEst = s.wCut, s.wCut, s.wCut, s.wCut
	s.k, s.epoch = 0, now
}

// lift removes the bound.
func (s *shareCap) lift() { s.w = 0 }

// minFilter is a windowed minimum of durations, kept in minFilterBuckets
// buckets of a window's share each, so that it forgets old samples
// without holding them all.
type minFilter struct {
	b     [minFilterBuckets]time.Duration
	start time.Time // the newest bucket's start
	idx   int
}

const minFilterBuckets = 8

// add records sample d at now, in a filter spanning window.
func (f *minFilter) add(now time.Time, d time.Duration, window time.Duration) {
	span := window / minFilterBuckets
	if f.start.IsZero() {
		f.start = now
	}
	for n := 0; now.Sub(f.start) >= span && n < minFilterBuckets; n++ {
		f.idx = (f.idx + 1) % minFilterBuckets
		f.b[f.idx] = 0
		f.start = f.start.Add(span)
	}
	if now.Sub(f.start) >= span {
		f.start = now // idle longer than the window
	}
	if f.b[f.idx] == 0 || d < f.b[f.idx] {
		f.b[f.idx] = d
	}
}

// get returns the minimum over the window, 0 if there is no sample.
func (f *minFilter) get() time.Duration {
	var m time.Duration
	for _, d := range f.b {
		if d > 0 && (m == 0 || d < m) {
			m = d
		}
	}
	return m
}
