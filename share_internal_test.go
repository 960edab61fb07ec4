package udt

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/netsim"
)

// simBesideTCP runs a UDT flow with cfg and netsim's reference TCP flow
// (tcp) through one emulated bottleneck (the pipe's links, shared: one
// drop-tail queue), both started together, for d of virtual time; it
// returns each one's goodput over the second half, in Mbit/s.
func simBesideTCP(t *testing.T, cfg Config, tcp netsim.TCPConfig, fwd, back netsim.LinkConfig, d time.Duration, seed uint64) (u, tc float64) {
	synctest.Test(t, func(t *testing.T) {
		cfg.Linger = -1
		c, s, pa, pb := simPair(t, fwd, back, cfg, seed)
		ta, tb, err := netsim.SharePipe(pa, pb, 20001, 20002)
		require.NoError(t, err)
		f, err := netsim.StartTCP(ta, tb, tcp)
		require.NoError(t, err)
		defer func() {
			require.NoError(t, f.Close())
			ta.Close()
			tb.Close()
		}()
		var got atomic.Int64
		bulk(c, s, &got)
		time.Sleep(d / 2)
		u0, t0 := got.Load(), f.Delivered()
		time.Sleep(d / 2)
		secs := (d / 2).Seconds()
		u = float64(got.Load()-u0) * 8 / 1e6 / secs
		tc = float64(f.Delivered()-t0) * 8 / 1e6 / secs
		_ = c.Close()
		_ = s.Close()
	})
	return u, tc
}

// TestModelSharesWithCubic is the CI form of the sharing check: the
// default controller and a CUBIC flow (netsim's reference TCP, calibrated
// against the kernel's) started together through a 100 Mbit/s, 100 ms
// bottleneck with a one-BDP drop-tail queue; over the second half of
// 60 s of virtual time CUBIC keeps 30 % of the link or more (on the same
// link over TUN paths with the kernel's cubic it keeps 40-50 %, see
// BenchmarkTunCoexist), and the two keep it busy.
func TestModelSharesWithCubic(t *testing.T) {
	if raceEnabled {
		t.Skip("60 s of simulation, a minute under -race; CI runs it without")
	}
	const mbps = 100
	fwd := netsim.LinkConfig{Rate: mbps * 1e6, Delay: 50 * time.Millisecond}
	u, tc := simBesideTCP(t, Config{}, netsim.TCPConfig{CC: "cubic"}, fwd, fwd, 60*time.Second, 5)
	t.Logf("UDT default %.1f Mbit/s, CUBIC %.1f Mbit/s on a %d Mbit/s, 100 ms link", u, tc, mbps)
	require.GreaterOrEqual(t, tc, 0.30*mbps, "CUBIC starved")
	require.Greater(t, u+tc, 0.85*mbps, "link idle")
}

// TestModelBesideBBR runs the default controller beside netsim's
// reference TCP BBR v1 flow (calibrated against the kernel's BBR, see
// TestTCPBBRCalibration) through the 100 Mbit/s, 100 ms bottleneck with a
// one-BDP queue, three times. BBR does not give way to loss, so the model's
// cuts there are futile: they are taken back, and while the hold lasts
// the model paces for an even split (see cc.Model's judgeCut and
// evenShare). Cutting at every loss, the model ratcheted down to 0.10-0.14
// of BBR's goodput here; taking futile cuts back, 0.18-1.59; with the even
// split, 0.84-1.04 in nine runs. Netsim's BBR gives way more than the
// kernel's: over TUN beside the kernel's BBR (BenchmarkTunCoexist) the
// model got 0.2-0.4 without the even split. The target is 0.5-2
// there; this checks the mean of the three against it, both ways.
func TestModelBesideBBR(t *testing.T) {
	if raceEnabled {
		t.Skip("three runs of 60 s of simulation, minutes under -race; CI runs it without")
	}
	const mbps = 100
	fwd := netsim.LinkConfig{Rate: mbps * 1e6, Delay: 50 * time.Millisecond}
	var sum float64
	seeds := []uint64{5, 6, 7}
	for _, seed := range seeds {
		u, b := simBesideTCP(t, Config{}, netsim.TCPConfig{CC: "bbr"}, fwd, fwd, 60*time.Second, seed)
		t.Logf("UDT default %.1f Mbit/s, BBR %.1f Mbit/s on a %d Mbit/s, 100 ms link: %.2f of BBR's", u, b, mbps, u/b)
		require.Greater(t, u+b, 0.85*mbps, "link idle")
		sum += u / b
	}
	mean := sum / float64(len(seeds))
	require.GreaterOrEqual(t, mean, 0.5, "starved beside BBR")
	require.LessOrEqual(t, mean, 2.0, "BBR starved")
}

// TestPacingJitter: the pacing gap is drawn from [p/2, 3p/2] and averages
// p, so the jitter that breaks phase locking at a shared queue (see
// jitter) leaves the rate as the controller set it.
func TestPacingJitter(t *testing.T) {
	require.Equal(t, time.Duration(0), jitter(0))
	require.Equal(t, time.Duration(1), jitter(1))
	const p = 240 * time.Microsecond
	const n = 100000
	var sum time.Duration
	lo, hi := p, p
	for range n {
		g := jitter(p)
		require.GreaterOrEqual(t, g, p/2)
		require.LessOrEqual(t, g, p+p/2)
		sum += g
		lo, hi = min(lo, g), max(hi, g)
	}
	mean := sum / n
	require.InDelta(t, float64(p), float64(mean), 0.01*float64(p), "mean gap %v", mean)
	require.Less(t, lo, p*6/10, "the gaps do not spread")
	require.Greater(t, hi, p*14/10, "the gaps do not spread")
}
