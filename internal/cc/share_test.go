package cc

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMinFilterForgets(t *testing.T) {
	var f minFilter
	t0 := time.Unix(0, 0)
	const window = 80 * time.Second
	f.add(t0, 50*time.Millisecond, window)
	f.add(t0.Add(time.Second), 70*time.Millisecond, window)
	require.Equal(t, 50*time.Millisecond, f.get())
	// Still within the window: the old minimum stands.
	f.add(t0.Add(60*time.Second), 90*time.Millisecond, window)
	require.Equal(t, 50*time.Millisecond, f.get())
	// Past it: only what came since counts.
	f.add(t0.Add(window+15*time.Second), 100*time.Millisecond, window)
	require.Equal(t, 90*time.Millisecond, f.get())
	// Idle for longer than the window.
	f.add(t0.Add(10*window), 120*time.Millisecond, window)
	require.Equal(t, 120*time.Millisecond, f.get())
}

func TestShareCapFollowsCubic(t *testing.T) {
	var s shareCap
	require.False(t, s.active())
	require.True(t, math.IsInf(s.rate(), 1))
	t0 := time.Unix(0, 0)
	rtt := 100 * time.Millisecond
	// Congestion while getting 8,000 packets/s: the window was 800.
	s.cut(t0, 8000, rtt)
	require.True(t, s.active())
	require.InDelta(t, 560, s.w, 1e-9)
	require.InDelta(t, 5600, s.rate(), 1e-6)
	k := math.Cbrt(800 * (1 - cubicBeta) / cubicC)
	// It grows back to where it was cut in about K seconds (acknowledging
	// the rate's worth of packets every 10 ms), no sooner, and beyond.
	now := t0
	reached := time.Duration(0)
	for now.Sub(t0) < 20*time.Second {
		now = now.Add(10 * time.Millisecond)
		s.grow(now, s.rate()/100, rtt)
		if reached == 0 && s.w >= 799 {
			reached = now.Sub(t0)
		}
	}
	// The Reno-friendly estimate (half a packet more each round trip)
	// brings it back a little sooner than CUBIC's curve alone.
	require.InDelta(t, k, reached.Seconds(), 0.2*k, "back at the cut after %v, K %.2f s", reached, k)
	require.Less(t, reached.Seconds(), k+0.1)
	require.Greater(t, s.w, 900.0, "convex growth past the old maximum")
	// A queue that doubles the round trip halves the rate.
	r := s.rate()
	s.grow(now, 0, 2*rtt)
	require.InDelta(t, r/2, s.rate(), r*0.01)
	s.lift()
	require.False(t, s.active())
}

func TestShareCapFastConvergence(t *testing.T) {
	var s shareCap
	t0 := time.Unix(0, 0)
	rtt := 100 * time.Millisecond
	s.cut(t0, 8000, rtt)
	require.InDelta(t, 800, s.wMax, 1e-9)
	// Cut again below the last maximum: the flow gives up more.
	s.cut(t0.Add(5*time.Second), 6000, rtt)
	require.InDelta(t, 560*(1+cubicBeta)/2, s.wMax, 1e-9, "cut from min(600, w=560)")
	require.InDelta(t, 560*cubicBeta, s.w, 1e-9)
}

// startModel returns a model started at the Unix epoch on a path of
// 1500-byte packets with a flow window that never binds, and its inputs.
func startModel() (*Model, time.Time, Inputs) {
	m := NewModel()
	now := time.Unix(0, 0)
	in := Inputs{MSS: 1500, MaxWindow: 1 << 20}
	m.Init(now, in)
	return m, now, in
}

// modelRun feeds m ACKs every 10 ms for d: the receiver's RTT rtt, the
// sender's own round trip base, rate packets/s arriving and sent, and a
// loss of lossEvery-th packet (0: none).
func modelRun(m *Model, now time.Time, d time.Duration, base, rtt time.Duration, rate float64, lossEvery int, in *Inputs) time.Time {
	return modelRunShared(m, now, d, base, rtt, rate, rate, lossEvery, in)
}

// modelRunShared is modelRun on a link whose capacity, as the receiver
// estimates it, is capacity packets/s: others take what rate leaves.
func modelRunShared(m *Model, now time.Time, d time.Duration, base, rtt time.Duration, rate, capacity float64, lossEvery int, in *Inputs) time.Time {
	for end := now.Add(d); now.Before(end); {
		now = now.Add(10 * time.Millisecond)
		n := uint64(rate / 100)
		in.Sent += n
		in.Delivered += n
		if lossEvery > 0 {
			in.Lost += in.Sent/uint64(lossEvery) - (in.Sent-n)/uint64(lossEvery)
		}
		in.AckRTT, in.ArrivedRTT, in.RTTSample, in.RTT = base, base, rtt, rtt
		in.RateSample = int(rate)
		in.Bandwidth = int(capacity)
		m.OnACK(now, 0, *in)
	}
	return now
}

func TestModelRandomLossIsNotCongestion(t *testing.T) {
	m, now, in := startModel()
	base := 100 * time.Millisecond
	// One packet in a hundred lost, no queue: the share cap stays off.
	now = modelRun(m, now, 20*time.Second, base, base, 8000, 100, &in)
	require.False(t, m.share.active(), "random loss cut the share cap")
	require.Greater(t, 1e9/float64(m.PacketPeriod()), 7000.0)
	// Loss while a queue stands (the round trip 1.8 times the path's):
	// congestion.
	modelRun(m, now, 2*time.Second, base, base*18/10, 8000, 100, &in)
	require.True(t, m.share.active(), "loss with a standing queue did not cut")
	require.Less(t, m.share.rate(), 8000.0*cubicBeta*1.01)
}

// TestModelQueueLossWithoutBackground: on a path without random loss any
// loss while a queue stands is congestion.
func TestModelQueueLossWithoutBackground(t *testing.T) {
	m, now, in := startModel()
	base := 100 * time.Millisecond
	now = modelRun(m, now, 20*time.Second, base, base, 8000, 0, &in)
	require.False(t, m.share.active())
	modelRun(m, now, 2*time.Second, base, base*18/10, 8000, 2000, &in)
	require.True(t, m.share.active(), "loss with a standing queue did not cut")
}

// TestModelRateSampleBounds checks the arrival rates the model takes: none
// until rateSpan packets are acknowledged (4.11's receiver reports its
// filter's initial 2 packets/s, then 0), and none above twice the rate we
// sent at (a burst timed when the receiver read it).
func TestModelRateSampleBounds(t *testing.T) {
	m, now, in := startModel()
	in.Delivered, in.RateSample = rateSpan, 2
	_, ok := m.rateSample(now, in)
	require.False(t, ok, "a sample before %d packets were acknowledged", rateSpan)
	in.Delivered++
	r, ok := m.rateSample(now, in)
	require.True(t, ok)
	require.Equal(t, 2.0, r)

	// 1,000 packets/s sent for a second; the receiver reports 10^6.
	base := 100 * time.Millisecond
	now = modelRun(m, now, time.Second, base, base, 1000, 0, &in)
	m.state = modelStartup
	in.RateSample = 1_000_000
	r, ok = m.rateSample(now, in)
	require.True(t, ok)
	require.InDelta(t, 2000, r, 100, "a burst's rate in startup, bounded by twice the send rate")
	m.OnACK(now.Add(10*time.Millisecond), 0, in)
	require.Less(t, m.filteredBw(), 2100.0)
}

// TestModelRoundOutlier checks that a round of outlierSamples samples or
// more counts its second greatest: one sample a receiver timed late (a
// C++ receiver's thread) does not set the estimate for ten rounds, and a
// round of fewer samples (a short round on loopback) counts its greatest.
func TestModelRoundOutlier(t *testing.T) {
	m, _, _ := startModel()
	for _, r := range []float64{1000, 1010, 990, 13000, 1005} {
		m.addBwSample(r)
	}
	require.Equal(t, 1010.0, m.filteredBw(), "one outlier among five samples")
	m.bwRounds++
	for _, r := range []float64{1000, 1900} {
		m.addBwSample(r)
	}
	require.Equal(t, 1900.0, m.filteredBw(), "a round of two samples")
}

// TestModelStartupThroughRepairs checks startup under random loss, where
// the connection gives no RTT sample of its own for an ACK that waited at
// a hole (AckRTT 0): startup goes on, its window covers a repair's round
// trip, and the receiver's RTT, which holes do not lengthen, ends it once
// a queue builds.
func TestModelStartupThroughRepairs(t *testing.T) {
	m, now, in := startModel()
	base := 100 * time.Millisecond
	rate := 500.0
	round := func(rtt time.Duration) {
		for range 10 {
			now = now.Add(10 * time.Millisecond)
			n := uint64(rate / 100)
			in.Sent += n
			in.Delivered += n
			in.Lost = in.Sent / 20
			in.AckRTT = 0 // waited at a hole: no sample
			if in.Sent == n {
				in.AckRTT = base
			}
			in.RTTSample, in.RTT = rtt, rtt
			in.RateSample, in.Bandwidth = int(rate), int(rate)
			m.OnACK(now, 0, in)
		}
	}
	for i := range 6 {
		round(base)
		require.Equal(t, modelStartup, m.state, "round %d: startup ended at %.0f packets/s", i, rate)
		rate *= 2
	}
	require.GreaterOrEqual(t, float64(m.Window()), startupGain*m.bw()*2*base.Seconds(),
		"the startup window covers a repair")
	round(base + 10*time.Millisecond)
	require.NotEqual(t, modelStartup, m.state, "a queue built and startup went on")
}

// TestModelSlowFlowRounds checks that a flow paced at a few hundred
// packets a second stretches its rounds to carry 2·rateSpan packets, so
// that a probe shows in the receiver's median of the last rateSpan
// arrival intervals: on a 1 ms path it grows out of 500 packets/s within
// seconds, where 10 ms phases of 5 packets never moved the median.
func TestModelSlowFlowRounds(t *testing.T) {
	m, now, in := startModel()
	rtt := time.Millisecond
	// Leave startup at 500 packets/s, as a flow that meets a queue does.
	now = modelRun(m, now, 300*time.Millisecond, rtt, rtt, 500, 0, &in)
	m.leaveStartup()
	// Then every packet leaves at the model's pacing (the path would carry
	// 50,000 packets/s) and arrives a millisecond later; each 10 ms ACK
	// reports the median of the last rateSpan arrival intervals.
	var gaps []time.Duration
	next, last := now, time.Time{}
	for end := now.Add(5 * time.Second); now.Before(end); {
		now = now.Add(10 * time.Millisecond)
		for ; next.Before(now); next = next.Add(max(m.PacketPeriod(), 20*time.Microsecond)) {
			if !last.IsZero() {
				gaps = append(gaps, next.Sub(last))
			}
			last = next
			in.Sent++
			in.Delivered++
		}
		if len(gaps) > rateSpan {
			gaps = gaps[len(gaps)-rateSpan:]
		}
		sorted := slices.Clone(gaps)
		slices.Sort(sorted)
		in.RateSample = 0
		if len(sorted) == rateSpan {
			in.RateSample = int(1e9 / float64(sorted[rateSpan/2]))
		}
		in.AckRTT, in.ArrivedRTT, in.RTTSample, in.RTT = rtt, rtt, rtt, rtt
		m.OnACK(now, 0, in)
	}
	require.Greater(t, m.filteredBw(), 5000.0, "stuck near its floor")
}

// TestModelNoProbeAboveCap checks that while the share cap binds the model
// paces at the cap, not a probe's gain above it: the cap probes along its
// own curve, and a probe above it would only fill the shared queue.
func TestModelNoProbeAboveCap(t *testing.T) {
	m, now, in := startModel()
	base := 100 * time.Millisecond
	// The flow holds 8,000 of a link of 9,600 packets/s; others hold the
	// rest.
	const capacity = 9600
	now = modelRunShared(m, now, 10*time.Second, base, base, 8000, capacity, 0, &in)
	// Loss while a queue stands: the cap is cut below the estimate, from
	// half the link (see fairRate).
	now = modelRunShared(m, now, 2*time.Second, base, base*18/10, 8000, capacity, 100, &in)
	require.True(t, m.share.active())
	// The queue drains after the cut (the others cut too), and the cap
	// binds.
	checked := 0
	for end := now.Add(3 * time.Second); now.Before(end); {
		now = modelRunShared(m, now, 10*time.Millisecond, base, base, 8000, capacity, 0, &in)
		if m.share.rate() >= m.filteredBw() {
			continue
		}
		checked++
		pace := probeSpacing * 1e9 / float64(m.PacketPeriod())
		require.LessOrEqual(t, pace, m.share.rate()*1.001, "paced above the binding cap")
	}
	require.Greater(t, checked, 250, "the cap seldom bound")
}

// TestModelWithoutArrivalRates checks a receiver that never reports an
// arrival rate (4.11's filter reports 0 for arrivals it finds scattered):
// the rate the ACKs deliver at stands in, the estimate follows the path,
// and startup ends.
func TestModelWithoutArrivalRates(t *testing.T) {
	m, now, in := startModel()
	rtt := 20 * time.Millisecond
	const path = 10000.0 // packets/s
	for end := now.Add(5 * time.Second); now.Before(end); {
		now = now.Add(10 * time.Millisecond)
		rate := path
		if p := m.PacketPeriod(); p > time.Microsecond {
			rate = min(probeSpacing*1e9/float64(p), path)
		}
		n := uint64(rate / 100)
		in.Sent += n
		in.Delivered += n
		in.AckRTT, in.ArrivedRTT, in.RTTSample, in.RTT = rtt, rtt, rtt, rtt
		m.OnACK(now, 0, in)
	}
	require.NotEqual(t, modelStartup, m.state, "startup never ended")
	require.InEpsilon(t, path, m.filteredBw(), 0.3)
}

// TestModelDeliveryRateBeyondWakeups checks that the model grows when the
// receiver's arrival rate reports the sender's wake-ups rather than its
// packets: a sender woken every 2 ms on a loaded machine sends what fell
// due in a burst, and 4.11's filter drops the burst's short intervals, so
// every report says 500 packets/s whatever the pace. The delivery rate
// over spans without loss counts beside it.
func TestModelDeliveryRateBeyondWakeups(t *testing.T) {
	m, now, in := startModel()
	rtt := 200 * time.Microsecond
	now = modelRun(m, now, 300*time.Millisecond, rtt, rtt, 500, 0, &in)
	m.leaveStartup()
	// Packets leave at the model's pace, in bursts every 2 ms, and each
	// is acknowledged on arrival, as a 4.11 receiver does at these rates.
	next := now
	for end := now.Add(5 * time.Second); now.Before(end); {
		now = now.Add(2 * time.Millisecond)
		for ; !next.After(now); next = next.Add(m.PacketPeriod()) {
			in.Sent++
			in.Delivered++
			in.RateSample = 500
			in.AckRTT, in.ArrivedRTT, in.RTTSample, in.RTT = rtt, rtt, rtt, rtt
			m.OnACK(now.Add(rtt), 0, in)
		}
	}
	// Spans of 50 ms or more (deliverySpan) see a probe of one 64 ms phase
	// in eight in part: a threefold growth in 5 s, where the arrival rates
	// alone hold it at 500.
	require.Greater(t, m.filteredBw(), 1500.0, "held at the wake-up rate")
}

// TestShareCapUndo: undoing a cut puts the window back where the cut
// started and grows it on as past a peak; a window that has grown past it
// is left be.
func TestShareCapUndo(t *testing.T) {
	var s shareCap
	t0 := time.Unix(0, 0)
	rtt := 100 * time.Millisecond
	s.undo(t0) // no bound: nothing to undo
	require.False(t, s.active())
	s.cut(t0, 8000, rtt)
	require.InDelta(t, 560, s.w, 1e-9)
	s.undo(t0.Add(time.Second))
	require.InDelta(t, 800, s.w, 1e-9)
	s.grow(t0.Add(1100*time.Millisecond), 800, rtt)
	require.Greater(t, s.w, 800.0)
	w := s.w
	s.undo(t0.Add(2 * time.Second))
	require.Equal(t, w, s.w)
}

// TestModelRateSampleBoundAfterStartup: past startup a burst is bounded by
// a probe's gain over the send rate, not startup's doubling.
func TestModelRateSampleBoundAfterStartup(t *testing.T) {
	m, now, in := startModel()
	base := 100 * time.Millisecond
	now = modelRun(m, now, time.Second, base, base, 1000, 0, &in)
	m.state = modelProbeBW
	m.dlvRate = 0 // no delivery rate to bound it (see deliveryBound)
	in.RateSample = 1_000_000
	r, ok := m.rateSample(now, in)
	require.True(t, ok)
	require.InDelta(t, cycleGains[0]*m.sendRate, r, 1e-9)
	require.Less(t, r, 1300.0)
	m.OnACK(now.Add(10*time.Millisecond), 0, in)
	require.Less(t, m.filteredBw(), 1300.0)
}

// TestModelStartupEndsOnLossReports checks that in startup a loss report's
// round trip (Inputs.LossRTT) is a HyStart sample: while the ACK point
// waits at holes no ACK comes and no round ends, and three reports in a
// row whose packets met a queue end startup; reports of packets that met
// none, or without a sample, do not.
func TestModelStartupEndsOnLossReports(t *testing.T) {
	m, now, in := startModel()
	base := 300 * time.Millisecond
	// A round of ACKs sets the least RTT HyStart compares with.
	for range 10 {
		now = now.Add(30 * time.Millisecond)
		in.Sent += 20
		in.Delivered += 20
		in.AckRTT, in.ArrivedRTT, in.RTTSample = base, base, base
		in.RateSample, in.Bandwidth = 600, 600
		m.OnACK(now, 0, in)
	}
	now = now.Add(base)
	in.Delivered += 20
	m.OnACK(now, 0, in) // the next round begins
	require.Equal(t, modelStartup, m.state)
	period := m.PacketPeriod()

	in.AckRTT = 0
	for range 5 {
		now = now.Add(20 * time.Millisecond)
		in.LossRTT = base + time.Millisecond // no queue
		m.OnLoss(now, 0, in)
		in.LossRTT = 0 // a re-report: no sample
		m.OnLoss(now, 0, in)
	}
	require.Equal(t, modelStartup, m.state, "reports of packets that met no queue")
	for i := range 3 {
		require.Equal(t, modelStartup, m.state, "after %d samples", i)
		now = now.Add(20 * time.Millisecond)
		in.LossRTT = base + 40*time.Millisecond
		m.OnLoss(now, 0, in)
	}
	require.Equal(t, modelDrain, m.state, "three reports of packets that met a queue")
	require.Greater(t, m.PacketPeriod(), period, "the drain paces at once")
}

// TestModelBaseRTTFromOwnSamples: a flow that starts just before others'
// queue builds has only its own round-trip samples to show the path's
// round trip (0.1 ms here); the receiver's, smoothed from its 100 ms
// guess, meet the queue (2.5 ms) before they come down. Loss at that
// queue is congestion, and the share cap is cut. With the path's round
// trip learnt from the receiver's samples alone, the flow took 2.5 ms for
// the path, saw no queue, and never cut.
func TestModelBaseRTTFromOwnSamples(t *testing.T) {
	m, now, in := startModel()
	path, queue := 100*time.Microsecond, 2500*time.Microsecond
	smoothed := 100 * time.Millisecond
	const rate = 8000.0
	for end := now.Add(3 * time.Second); now.Before(end); {
		now = now.Add(10 * time.Millisecond)
		rtt := path
		if now.Sub(time.Unix(0, 0)) > 100*time.Millisecond {
			rtt = path + queue
			in.Lost++ // one in 80
		}
		smoothed = (7*smoothed + rtt) / 8
		in.Sent += rate / 100
		in.Delivered += rate / 100
		in.AckRTT, in.ArrivedRTT, in.RTTSample, in.RTT = rtt, rtt, smoothed, smoothed
		in.RateSample, in.Bandwidth = int(rate), int(rate)
		m.OnACK(now, 0, in)
	}
	require.Equal(t, path, m.baseRTT.get(), "the path's round trip")
	require.True(t, m.share.active(), "loss at a standing queue did not cut")
}

// TestModelWindowStarvedHoldsEstimate: rate samples of packets sent while
// a window held new data back, in rounds that sent under half the pace,
// count only where they raise the estimate (a window full behind holes
// that a 4.11 receiver reported once: only the stall recovery's
// retransmissions go, a few dozen a second); samples of rounds that the
// window held back less, or of a sender that no window held, lower it.
func TestModelWindowStarvedHoldsEstimate(t *testing.T) {
	base := 100 * time.Millisecond
	for _, tc := range []struct {
		name    string
		limited bool
		rate    float64 // packets/s sent and arriving after the first 5 s
		min     float64 // the least estimate allowed after
		max     float64 // the greatest
	}{
		{"window full, starved", true, 45, 7500, 8500},
		{"no window held", false, 45, 0, 100},
		{"window full, paced", true, 6000, 5500, 6500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, now, in := startModel()
			now = modelRun(m, now, 5*time.Second, base, base, 8000, 0, &in)
			require.InDelta(t, 8000, m.filteredBw(), 400)
			in.WindowLimited = tc.limited
			modelRun(m, now, 5*time.Second, base, base, tc.rate, 0, &in)
			require.GreaterOrEqual(t, m.filteredBw(), tc.min)
			require.LessOrEqual(t, m.filteredBw(), tc.max)
		})
	}
}

// TestModelArrivalsBoundByDelivery: past startup, on a path whose round
// trip holds a delivery span, arrival rates above arrivalOverDelivery times
// the latest delivery rate (a 4.11 receiver timing bursts of late reads)
// count no higher, losses or not (arrivals are counted past the holes the
// loss reports name); on a path too short for a span they stand alone.
func TestModelArrivalsBoundByDelivery(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rtt       time.Duration
		lossEvery int
		bounded   bool
	}{
		{"lossless, 100 ms", 100 * time.Millisecond, 0, true},
		{"a loss every 50 packets", 100 * time.Millisecond, 50, true},
		{"1 ms path", time.Millisecond, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, now, in := startModel()
			now = modelRun(m, now, 5*time.Second, tc.rtt, tc.rtt, 8000, tc.lossEvery, &in)
			require.Equal(t, modelProbeBW, m.state)
			// The path delivers 8,000 packets/s; the receiver reports 12,000.
			for end := now.Add(3 * time.Second); now.Before(end); {
				now = now.Add(10 * time.Millisecond)
				in.Sent += 80
				in.Delivered += 80
				if tc.lossEvery > 0 {
					in.Lost += in.Sent/uint64(tc.lossEvery) - (in.Sent-80)/uint64(tc.lossEvery)
				}
				in.AckRTT, in.ArrivedRTT, in.RTTSample, in.RTT = tc.rtt, tc.rtt, tc.rtt, tc.rtt
				in.RateSample, in.Bandwidth = 12000, 12000
				m.OnACK(now, 0, in)
			}
			if tc.bounded {
				require.LessOrEqual(t, m.filteredBw(), arrivalOverDelivery*8000*1.01)
			} else {
				require.Greater(t, m.filteredBw(), 9000.0)
			}
		})
	}
}

// TestModelProbeEndsOnLossReports: a probe whose phase is over ends at the
// next loss report when no ACK comes, as a 4.11 receiver waiting at a hole
// sends none; a loss report during the cruise changes nothing.
func TestModelProbeEndsOnLossReports(t *testing.T) {
	m, now, in := startModel()
	base := 100 * time.Millisecond
	now = modelRun(m, now, 5*time.Second, base, base, 8000, 0, &in)
	require.Equal(t, modelProbeBW, m.state)
	// Run ACKs until the probe phase starts.
	for i := 0; m.pacingGain <= 1 && i < 1000; i++ {
		now = modelRun(m, now, 10*time.Millisecond, base, base, 8000, 0, &in)
	}
	require.Greater(t, m.pacingGain, 1.0, "no probe within 10 s")
	probing := m.PacketPeriod()
	// Loss reports every 10 ms, no ACK: the probe lasts its phase.
	start := m.cycleStart
	for now.Sub(start) < m.roundLength() {
		now = now.Add(10 * time.Millisecond)
		in.Lost++
		m.OnLoss(now, 0, in)
		if now.Sub(start) < m.roundLength() {
			require.Equal(t, probing, m.PacketPeriod(), "the probe ended early")
		}
	}
	require.Less(t, m.pacingGain, 1.0, "the probe outlasted its phase")
	require.Greater(t, m.PacketPeriod(), probing)
	// In the cruise that follows, loss reports leave the phase be.
	cruise, gain := m.cycleIdx, m.pacingGain
	for range 50 {
		now = now.Add(10 * time.Millisecond)
		in.Lost++
		m.OnLoss(now, 0, in)
	}
	require.Equal(t, cruise, m.cycleIdx)
	require.Equal(t, gain, m.pacingGain)
}

// TestModelStartupGrowsWithDeliveries: on a long path, startup goes on
// while the delivery rate doubles, though the receiver's arrival rates (a
// 4.11 receiver timing its thread's wake-ups) stay flat after one burst
// and random losses keep the delivery rates out of the bandwidth filter.
func TestModelStartupGrowsWithDeliveries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		arrivals bool // count arrivals past the ACK point as Arrived
		startup  bool // still in startup after the run
	}{
		{"deliveries grow", true, true},
		{"deliveries flat", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, now, in := startModel()
			base := 100 * time.Millisecond
			rate := 200.0
			burst := true
			for range 8 { // eight rounds, the send rate doubling each
				for end := now.Add(base); now.Before(end); {
					now = now.Add(10 * time.Millisecond)
					n := uint64(rate / 100)
					in.Sent += n
					in.Delivered += n
					if !tc.arrivals {
						in.Delivered -= n / 2 // deliveries stay behind
					}
					in.Arrived = in.Delivered
					if in.Sent%100 < n {
						in.Lost++ // 1 % random loss
					}
					in.AckRTT, in.ArrivedRTT, in.RTTSample, in.RTT = base, base, base, base
					in.RateSample = 300
					if burst {
						in.RateSample, burst = 20000, false
					}
					m.OnACK(now, 0, in)
				}
				if tc.arrivals {
					rate *= 2
				}
			}
			require.Equal(t, tc.startup, m.state == modelStartup, "state %d", m.state)
		})
	}
}
