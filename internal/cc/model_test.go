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
// over; the hold doubles with each futile cut in a row.
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
