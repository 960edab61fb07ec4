package netsim

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// skipBBRUnderRace skips a test of BBR's figures, 30 s on the 100 Mbit/s
// calibration link, when the race detector makes each simulated second
// ten times dearer; TestTCPBBRPacing and TestTCPBBRClose run BBR under it.
func skipBBRUnderRace(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("BBR's figures on a 100 Mbit/s link; run without -race")
	}
}

func TestBBRMaxFilter(t *testing.T) {
	type step struct {
		round uint64
		v     float64
		want  float64
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a new maximum replaces all", []step{{0, 5, 5}, {1, 3, 5}, {2, 7, 7}, {3, 1, 7}}},
		{"the maximum holds through the window", []step{{0, 9, 9}, {1, 4, 9}, {5, 4, 9}, {10, 4, 9}}},
		{"past the window, the best of the rest", []step{{0, 9, 9}, {3, 6, 9}, {6, 5, 9}, {11, 2, 6}, {14, 1, 5}}},
		{"nothing left in the window", []step{{0, 9, 9}, {30, 2, 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f bbrMaxFilter
			for _, s := range tc.steps {
				f.update(bbrBWRounds, s.round, s.v)
				require.Equal(t, s.want, f.get(), "after %v in round %d", s.v, s.round)
			}
		})
	}
}

func TestTCPPacer(t *testing.T) {
	var p tcpPacer
	ms := time.Millisecond
	// The first ten segments leave as they come.
	p.onSend(0, 9, 1000)
	require.Zero(t, p.next)
	// From the tenth on, what leaves at once holds the next send back by
	// its length at the rate: here 1000 a second.
	p.onSend(0, 1, 1000)
	require.Equal(t, ms, p.next)
	p.onSend(ms, 4, 1000)
	require.Equal(t, 5*ms, p.next)
	// A send 1 ms late is forgiven that millisecond, but at most half of
	// its length.
	p.onSend(6*ms, 4, 1000)
	require.Equal(t, 9*ms, p.next)
	p.onSend(19*ms, 4, 1000)
	require.Equal(t, 21*ms, p.next)
	// A faster rate shortens it.
	p.onSend(21*ms, 2, 4000)
	require.Equal(t, 21*ms+500*time.Microsecond, p.next)
}

// TestBBRRateSample: the delivery-rate sample of an ACK starts at the
// latest segment it delivered, and spans the longer of its send and ACK
// phases.
func TestBBRRateSample(t *testing.T) {
	cfg, err := TCPConfig{CC: "bbr"}.withDefaults()
	require.NoError(t, err)
	b := newTCPBBR(cfg)
	ms := time.Millisecond
	segs := make([]tcpSegRate, 21)
	// Ten segments a millisecond apart, each delivered 100 ms later with
	// an ACK of its own.
	for i := range 10 {
		b.sent(&segs[i], time.Duration(i)*ms, uint64(i), i == 0)
	}
	for i := range 10 {
		now := 100*ms + time.Duration(i)*ms
		b.startACK(10-i, 0)
		b.deliveredSeg(&segs[i], uint64(i), time.Duration(i)*ms)
		b.onACK(now, bbrACK{newly: 1, rtt: 100 * ms, inFlight: 9 - i, state: tcpOpen, srtt: 100 * ms, minRTT: 100 * ms})
		require.EqualValues(t, i+1, b.rs.delivered, "ACK %d", i)
		require.Equal(t, now, b.rs.interval, "ACK %d: the ACK phase from the start", i)
		require.True(t, b.rs.appLimited, "the first flight")
	}
	// The next ten, sent 2 ms apart from 110 ms, come back in one ACK at
	// 205 ms, compressed: the sample counts the ten delivered since the
	// last of them was sent, and its send phase, from the sending of the
	// latest segment delivered before (9 ms) to the last of these (128
	// ms), is longer than its ACK phase (from 109 ms).
	for i := 10; i < 20; i++ {
		b.sent(&segs[i], 110*ms+time.Duration(2*(i-10))*ms, uint64(i), false)
	}
	b.startACK(10, 0)
	for i := 10; i < 20; i++ {
		b.deliveredSeg(&segs[i], uint64(i), 110*ms+time.Duration(2*(i-10))*ms)
	}
	b.onACK(205*ms, bbrACK{newly: 10, rtt: 87 * ms, state: tcpOpen, srtt: 100 * ms, minRTT: 10 * ms})
	require.EqualValues(t, 10, b.rs.delivered)
	require.Equal(t, 128*ms-9*ms, b.rs.interval)
	require.False(t, b.rs.appLimited)
	// A sample over less than the least round trip is none.
	b.sent(&segs[20], 210*ms, 20, false)
	b.startACK(1, 0)
	b.deliveredSeg(&segs[20], 20, 210*ms)
	b.onACK(260*ms, bbrACK{newly: 1, rtt: 50 * ms, state: tcpOpen, srtt: 100 * ms, minRTT: 100 * ms})
	require.Negative(t, b.rs.interval)
}

// TestBBRRecoveryWindow: a recovery cuts the window to what is in flight
// and holds it there, packet for packet, through its first round; its end
// restores the window from before it, up to BBR's target.
func TestBBRRecoveryWindow(t *testing.T) {
	cfg, err := TCPConfig{CC: "bbr"}.withDefaults()
	require.NoError(t, err)
	b := newTCPBBR(cfg)
	b.mode, b.fullBWReached, b.minRTT = bbrProbeBW, true, 100*time.Millisecond
	b.cycleIdx = 2 // a cruising phase
	b.bw.reset(0, 500)
	b.pacingRate = 500
	target := 106 // twice the 50-segment product, three send quanta of 2
	b.cwnd = target
	ack := func(newly, lost, inFlight, state int) int {
		t.Helper()
		b.startACK(inFlight, b.lost)
		b.onACK(time.Second, bbrACK{newly: newly, rtt: -1, lost: b.lost + uint64(lost), inFlight: inFlight, state: state})
		return b.cwnd
	}
	require.Equal(t, target, ack(2, 0, 104, tcpOpen), "no more than the target")
	b.onRecovery()
	require.Equal(t, 62, ack(2, 3, 60, tcpRecovery), "the flight and what the ACK delivered")
	require.Equal(t, 62, ack(2, 0, 58, tcpRecovery), "no more sent than delivered")
	require.Equal(t, 61, ack(1, 1, 60, tcpRecovery), "one lost: one less")
	require.Equal(t, 61, ack(0, 0, 61, tcpRecovery), "nothing delivered, nothing changes")
	require.Equal(t, target, ack(2, 0, 61, tcpOpen), "restored")
}

// TestTCPBBRAlone: a BBR flow alone on the calibration link (100 Mbit/s,
// 100 ms, one-BDP queue) fills it, keeps its queue short, and measures
// the round trip again every 10 s (PROBE_RTT, which costs about a third of
// that second). TestTCPBBRCalibration checks its figures against the
// kernel's.
func TestTCPBBRAlone(t *testing.T) {
	skipBBRUnderRace(t)
	synctest.Test(t, func(t *testing.T) {
		got, st := simFlows(t, tcpCalLink, 1, tcpCalDuration, TCPConfig{CC: "bbr"})
		t.Logf("%.1f Mbit/s over 30 s, %.1f over the second half; each second %s; %+v",
			mbps(got[0], 0, 30), mbps(got[0], 15, 30), calSeconds(got[0]), st[0])
		requireSound(t, got[0], st[0])
		require.Greater(t, mbps(got[0], 0, 30), 90.0)
		require.Zero(t, st[0].Timeouts)
		require.EqualValues(t, 2, st[0].ProbeRTTs)
		require.Equal(t, "probe_bw", st[0].BBRMode)
		require.InEpsilon(t, 8492, st[0].Bandwidth, 0.02, "segments a second: 100 Mbit/s of 1472-byte datagrams")
		require.Less(t, st[0].SRTT, 130*time.Millisecond, "a short queue")
	})
}

// TestTCPBBRLoss: 1 % random loss does not slow BBR v1 down, as it does
// CUBIC (TestTCPLoss): it keeps over 80 % of the link, its recoveries
// holding the window only for their first round.
func TestTCPBBRLoss(t *testing.T) {
	skipBBRUnderRace(t)
	lossy := tcpCalLink
	lossy.Loss = 0.01
	synctest.Test(t, func(t *testing.T) {
		got, st := simFlows(t, lossy, 7, tcpCalDuration, TCPConfig{CC: "bbr"})
		t.Logf("%.1f Mbit/s; each second %s; %+v", mbps(got[0], 0, 30), calSeconds(got[0]), st[0])
		requireSound(t, got[0], st[0])
		require.Greater(t, mbps(got[0], 0, 30), 80.0)
		require.Positive(t, st[0].FastRecoveries)
	})
}

// TestTCPBBRPacing: a BBR sender spaces its sends at its pacing rate, at
// most 1.25 times the link's in PROBE_BW; at 10 Mbit/s each send is a
// quantum of two segments, so no three segments leave within one gap at
// 1.4 times the link's rate, where CUBIC sends its window in bursts. In
// virtual time, with nothing but the pipe and the read deadline to wait
// on: a busy loop would stop the bubble's clock.
func TestTCPBBRPacing(t *testing.T) {
	const rate = 10_000_000                                       // bits per second
	gap := DefaultTCPSegment * 8 * 10 * time.Second / (14 * rate) // a segment at 1.4 times the rate
	for _, tc := range []struct {
		cc    string
		paced bool
	}{
		{"bbr", true},
		{"cubic", false},
	} {
		t.Run(tc.cc, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var sent []time.Time
				l := LinkConfig{Rate: rate, Delay: 20 * time.Millisecond}
				l.Drop = func(p []byte, _ int) bool {
					if len(p) == DefaultTCPSegment && p[4] == tcpKindData {
						mu.Lock()
						sent = append(sent, time.Now())
						mu.Unlock()
					}
					return false
				}
				back := LinkConfig{Delay: 20 * time.Millisecond}
				a, b := NewPacketPipe(l, back, 1)
				f, err := StartTCP(a, b, TCPConfig{CC: tc.cc})
				require.NoError(t, err)
				time.Sleep(5 * time.Second)
				st := f.Stats()
				require.NoError(t, f.Close())
				t.Logf("%+v", st)
				mu.Lock()
				defer mu.Unlock()
				start := time.Now().Add(-3 * time.Second) // past STARTUP and DRAIN
				bunched := 0
				for i := range len(sent) - 2 {
					if sent[i].After(start) && sent[i+2].Sub(sent[i]) < gap {
						bunched++
					}
				}
				t.Logf("%d of %d segments sent with the next but one closer than %v", bunched, len(sent), gap)
				if tc.paced {
					require.Zero(t, bunched, "segments closer than pacing allows")
					require.Equal(t, "probe_bw", st.BBRMode)
					require.Greater(t, float64(st.Delivered)*8/5, 0.8*rate)
				} else {
					require.Positive(t, bunched, "CUBIC does not pace")
				}
			})
		})
	}
}
