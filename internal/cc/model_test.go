package cc

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// cutRig drives Model.endRound round by round on a 100 ms path, as OnACK
// does, with the queue and the losses each round meets.
type cutRig struct {
	m   *Model
	in  Inputs
	now time.Time
}

func newCutRig() *cutRig {
	r := &cutRig{m: NewModel(), now: time.Unix(0, 0)}
	r.in.MaxWindow = 100000
	r.m.Init(r.now, r.in)
	r.m.state = modelProbeBW
	r.m.pacingGain, r.m.cwndGain = 1, 2
	r.m.minRTT = 100 * time.Millisecond
	r.m.baseRTT.add(r.now, 100*time.Millisecond, baseRTTWindow)
	r.m.btlBw[0] = 8000 // packets/s, in the filter's current slot
	r.m.round = 100
	return r
}

// round ends a round of 800 packets sent that met a queue of q and lost
// lost packets.
func (r *cutRig) round(q time.Duration, lost uint64) {
	r.now = r.now.Add(100*time.Millisecond + q)
	r.m.round++
	r.m.roundMinRTT = 100*time.Millisecond + q
	r.in.Sent += 800
	r.in.Delivered += 800 - lost
	r.in.Lost += lost
	r.m.endRound(r.now, r.in)
}

// TestModelFutileCut: a cut after which the queue keeps standing (a
// competitor that takes what the cut freed, as TCP BBR v1 does) is futile;
// from the second in a row on, it is taken back (the cap returns to where
// the cut started), and congestion does not cut again until the hold is
// over; the hold doubles with each futile cut in a row, and from the third
// the cap is lifted.
func TestModelFutileCut(t *testing.T) {
	r := newCutRig()
	m := r.m
	settle := func() {
		for range 2 + settleRounds {
			r.round(70*time.Millisecond, 0)
		}
	}
	r.round(80*time.Millisecond, 3)
	require.True(t, m.share.active(), "loss at a standing queue cuts")
	cut, from := m.cutRound, m.share.wCut
	require.InDelta(t, cubicBeta*from, m.share.w, 1e-9)
	settle()
	require.Equal(t, 1, m.futileCuts)
	require.False(t, m.futileCut, "one futile cut is not acted on")
	require.Less(t, m.share.w, from)
	r.round(80*time.Millisecond, 3)
	require.Greater(t, m.cutRound, cut, "so the next congestion cuts")
	cut, from = m.cutRound, m.share.wCut
	settle()
	require.Equal(t, 2, m.futileCuts)
	require.True(t, m.futileCut, "the second in a row is")
	require.GreaterOrEqual(t, m.share.w, from, "a futile cut is taken back")
	require.Equal(t, uint64(4*(1+settleRounds)), m.holdRounds())
	for m.round < cut+m.holdRounds() {
		r.round(80*time.Millisecond, 3)
		require.Equal(t, cut, m.cutRound, "round %d: cut within the hold", m.round-cut)
	}
	r.round(80*time.Millisecond, 3)
	require.Greater(t, m.cutRound, cut, "congestion after the hold cuts again")
	cut = m.cutRound
	settle()
	require.Equal(t, 3, m.futileCuts)
	require.False(t, m.share.active(), "the third in a row lifts the cap")
	require.Equal(t, uint64(8*(1+settleRounds)), m.holdRounds())
	for m.round < cut+m.holdRounds() {
		r.round(80*time.Millisecond, 3)
		require.Equal(t, cut, m.cutRound)
	}
}

// TestModelCutMet: a cut after which the queue drains for a few rounds (a
// competitor that gives way to loss cut too) stands, shortens the next
// hold, and the next congestion after the settling rounds cuts again; a
// queue that drains for one round only (BBR's ProbeRTT) does not count.
func TestModelCutMet(t *testing.T) {
	r := newCutRig()
	m := r.m
	m.futileCuts = 3
	r.round(80*time.Millisecond, 3)
	require.True(t, m.share.active())
	cut := m.cutRound
	r.round(60*time.Millisecond, 0)
	for range 3 {
		r.round(30*time.Millisecond, 0) // under 45 % of 80 ms
	}
	for range settleRounds - 2 {
		r.round(60*time.Millisecond, 0)
	}
	require.Less(t, m.share.w, m.share.wCut, "a met cut stands")
	require.False(t, m.futileCut)
	require.Equal(t, 2, m.futileCuts)
	r.round(80*time.Millisecond, 3)
	require.Greater(t, m.cutRound, cut, "the next congestion cuts")

	cut = m.cutRound
	r.round(0, 0)
	r.round(0, 0)
	for range settleRounds {
		r.round(70*time.Millisecond, 0)
	}
	require.True(t, m.futileCut, "two drained rounds in nine")
	require.Equal(t, 3, m.futileCuts)
	require.Equal(t, cut, m.cutRound)
}

// TestModelCutQueueUnknown: a cut with no queue measure (no receiver RTT
// in its round) is not judged futile.
func TestModelCutQueueUnknown(t *testing.T) {
	r := newCutRig()
	m := r.m
	r.round(80*time.Millisecond, 3)
	m.cutQueue = -1
	for range 2 + settleRounds {
		r.round(70*time.Millisecond, 0)
	}
	require.Less(t, m.share.w, m.share.wCut)
	require.False(t, m.futileCut)
}

// TestModelCutNotJudgedOnShortPaths: under futileMinRTT (a LAN, loopback)
// the queue is the receiving host's, and a cut it stands through stays.
func TestModelCutNotJudgedOnShortPaths(t *testing.T) {
	r := newCutRig()
	m := r.m
	m.baseRTT = minFilter{}
	m.baseRTT.add(r.now, time.Millisecond, baseRTTWindow)
	m.futileCuts = futileToAct
	r.round(80*time.Millisecond, 3)
	require.True(t, m.share.active())
	for range 2 + settleRounds {
		r.round(70*time.Millisecond, 0)
	}
	require.False(t, m.futileCut)
	require.Less(t, m.share.w, m.share.wCut)
}

// TestModelProbeAgainWhenPaid: a probe that raised the bandwidth estimate
// by probePaid or more is followed, after its drain phase, by another at
// once; one that did not is followed by the cruise.
func TestModelProbeAgainWhenPaid(t *testing.T) {
	r := newCutRig()
	m := r.m
	m.cycleIdx, m.cycleStart = len(cycleGains)-1, r.now
	phase := func() {
		r.now = r.now.Add(m.roundLength())
		m.advanceState(r.now, r.in)
	}
	phase()
	require.Equal(t, 0, m.cycleIdx, "the cycle's probe")
	require.Equal(t, cycleGains[0], m.pacingGain)
	m.btlBw[0] = 8000 * 1.2 // the probe paid
	phase()
	require.Equal(t, 1, m.cycleIdx, "its drain")
	phase()
	require.Equal(t, 0, m.cycleIdx, "a paid probe is followed by another")
	require.Equal(t, cycleGains[0], m.pacingGain)
	m.btlBw[0] = 8000 * 1.25 // raised, but by less than probePaid
	phase()
	phase()
	require.Equal(t, 2, m.cycleIdx, "an unpaid one by the cruise")
	require.Equal(t, cycleGains[2], m.pacingGain)
}

// TestModelCutFromBindingCap: a cut starts from the share cap where the
// cap binds, though the flow got less through the round (a competitor's
// standing queue stretches the round trip the cap is read through), and
// from what the flow got where the cap does not bind.
func TestModelCutFromBindingCap(t *testing.T) {
	for _, binding := range []bool{true, false} {
		r := newCutRig()
		m := r.m
		w := 400.0 // 4000 packets/s through 100 ms, under the filter's 8000
		if !binding {
			w = 1000
		}
		m.share = shareCap{w: w, wMax: w, wLast: w, wEst: w, rtt: 100 * time.Millisecond, epoch: r.now}
		m.roundRate, m.roundRates = 2000, 1 // what arrived
		r.round(80*time.Millisecond, 3)
		require.Equal(t, m.round, m.cutRound)
		if binding {
			require.InDelta(t, w, m.share.wCut, 1e-9, "from the binding cap")
		} else {
			require.InDelta(t, 2000*0.1, m.share.wCut, 1e-9, "from what arrived")
		}
		require.InDelta(t, cubicBeta*m.share.wCut, m.share.w, 1e-9)
	}
}

// TestModelNoDrainWhileHolding: a standing queue brings the drain gain to
// the cruise, except while a futile cut holds (the queue is a
// competitor's that does not give way).
func TestModelNoDrainWhileHolding(t *testing.T) {
	for _, hold := range []bool{false, true} {
		r := newCutRig()
		m := r.m
		if hold {
			m.futileCut, m.futileCuts, m.cutRound = true, futileToAct, m.round
		}
		m.queued = true
		m.cycleIdx, m.cycleStart = 2, r.now
		r.now = r.now.Add(m.roundLength())
		m.advanceState(r.now, r.in)
		require.Equal(t, 3, m.cycleIdx)
		if hold {
			require.Equal(t, cycleGains[3], m.pacingGain, "no drain while holding")
		} else {
			require.Equal(t, drainGain, m.pacingGain, "a standing queue is drained")
		}
	}
}

// TestModelEvenShareWhileContesting: once a futile cut is acted on (a
// competitor that does not give way to loss keeps its queue standing), the
// model paces for half the link's capacity, raised by its recent loss
// rate so that half arrives, whatever its own bandwidth filter has fallen
// to; before that, and once a cut is met again, it paces as the cap and the
// filter say.
func TestModelEvenShareWhileContesting(t *testing.T) {
	r := newCutRig()
	m := r.m
	m.capacity, m.capSamples = 8000, capacityWarmup
	pace := func() float64 {
		m.update(r.now, r.in)
		return probeSpacing * float64(time.Second) / float64(m.PacketPeriod())
	}
	settle := func() {
		for range 2 + settleRounds {
			r.round(80*time.Millisecond, 160) // a fifth of our packets lost
		}
	}
	r.round(80*time.Millisecond, 160)
	settle()
	require.Equal(t, 1, m.futileCuts)
	require.False(t, m.contesting())
	require.Less(t, pace(), 0.9*m.share.wCut/m.minRTT.Seconds(), "the first cut holds the pace down")
	r.round(80*time.Millisecond, 160)
	// The filter forgets the 8000 packets/s it began with.
	m.btlBw = [bwWindow]float64{2500}
	settle()
	require.True(t, m.contesting(), "the second futile cut in a row")
	loss := m.recentLost / m.recentSent
	require.InDelta(t, 0.2, loss, 0.01)
	require.InDelta(t, 4000/(1-loss), pace(), 1, "half the capacity arrives")
	require.GreaterOrEqual(t, m.Window(), int(2*4000*m.windowSpan(r.in).Seconds()), "the window covers the pace")

	// Heavier loss is made up for up to evenLossMax.
	for range 16 {
		r.round(80*time.Millisecond, 200)
	}
	require.True(t, m.contesting())
	require.InDelta(t, 4000/(1-evenLossMax), pace(), 20)
	// More loss than that is not one competitor's doing but more flows
	// than the path holds, each pacing for half of it: the contest ends
	// with a cut, and the count of futile cuts starts again.
	r.round(80*time.Millisecond, 600)
	require.False(t, m.contesting(), "overloaded")
	require.Zero(t, m.futileCuts)
	require.Equal(t, m.round, m.cutRound, "the overloaded round cuts")
	m.futileCut, m.futileCuts = true, futileToAct // hold again, for what follows
	m.cutRound = m.round

	// The hold ends; the next cut is met (the queue drains: the
	// competitor gave way), and the pace follows the cap again.
	for m.holding() {
		r.round(80*time.Millisecond, 0)
	}
	r.round(80*time.Millisecond, 3)
	for range 2 + settleRounds {
		r.round(10*time.Millisecond, 0)
	}
	require.False(t, m.contesting())
	require.Less(t, pace(), 3000.0)
}

// TestModelFairRate: a cut starts from half the link only where the
// receiver's capacity estimate leaves others a share beside the most the
// flow has seen delivered, not beside what a lossy round delivered: a
// lone Go -> C++ flow over a 100 Mbit/s, 100 ms TUN link (8,300 packets/s)
// that delivered 7,600 in a round with losses, beside a 4.11 receiver's
// estimate of 9,215, was cut from 4,600 to 40 % of the link.
func TestModelFairRate(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		filter, capacity, r, from float64
		samples                   int // capacity samples taken
	}{
		{"lone flow, estimate 10 % high", 8300, 9215, 7600, 7600, capacityWarmup},
		{"lone flow, exact estimate", 8000, 8000, 7900, 7900, capacityWarmup},
		{"others hold a quarter", 7200, 9600, 7000, 4800, capacityWarmup},
		{"others hold over half", 4000, 9600, 4000, 4000, capacityWarmup},
		{"estimate not warm", 7200, 9600, 7000, 7000, capacityWarmup - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewModel()
			m.btlBw[0] = tc.filter
			m.capacity, m.capSamples = tc.capacity, tc.samples
			require.InDelta(t, tc.from, m.fairRate(tc.r), 1e-9)
		})
	}
}
