package netsim

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// tcpCalLink is each direction of the calibration path: 100 Mbit/s, 50 ms
// one way, a drop-tail queue of one bandwidth-delay product.
var tcpCalLink = LinkConfig{Rate: 100e6, Delay: 50 * time.Millisecond}

// tcpCalDuration is how long each calibration run sends.
const tcpCalDuration = 30 * time.Second

// calFlow is one flow's goodput in a calibration run, in Mbit/s.
type calFlow struct {
	whole  float64 // over the whole run
	second float64 // over its second half
}

// calFigures are the flows of one calibration run, the one with the larger
// goodput over the whole run first.
type calFigures []calFlow

func (f calFigures) String() string {
	var b strings.Builder
	for i, c := range f {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%.1f Mbit/s over the run, %.1f over its second half", c.whole, c.second)
	}
	return b.String()
}

// calFiguresOf returns the figures of a run from the bytes each flow's
// receiver had at the end of each second.
func calFiguresOf(read [][]int64) calFigures {
	var f calFigures
	for _, r := range read {
		n := len(r)
		half := n / 2
		mbps := func(b int64, secs int) float64 { return float64(b) * 8 / 1e6 / float64(secs) }
		f = append(f, calFlow{whole: mbps(r[n-1], n), second: mbps(r[n-1]-r[half-1], n-half)})
	}
	slices.SortFunc(f, func(a, b calFlow) int {
		switch {
		case a.whole > b.whole:
			return -1
		case a.whole < b.whole:
			return 1
		}
		return 0
	})
	return f
}

// calMedian returns the median of each figure over runs with the same
// number of flows.
func calMedian(runs []calFigures) calFigures {
	if len(runs) == 0 {
		return nil
	}
	out := make(calFigures, len(runs[0]))
	for i := range out {
		var w, s []float64
		for _, r := range runs {
			w, s = append(w, r[i].whole), append(s, r[i].second)
		}
		out[i] = calFlow{whole: median(w), second: median(s)}
	}
	return out
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// calSeconds renders a flow's goodput second by second, in Mbit/s.
func calSeconds(read []int64) string {
	var b strings.Builder
	prev := int64(0)
	for i, r := range read {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.0f", float64(r-prev)*8/1e6)
		prev = r
	}
	return b.String()
}

// Kernel figures of TestTCPCalibration: Linux TCP cubic on the calibration
// link, measured by TestKernelTCPCalibration, medians in Mbit/s.
var (
	kernelAlone = calFlow{whole: 94.5, second: 96.5}
	kernelPair  = calFigures{{whole: 47.6}, {whole: 46.9}}
)

// tcpCalTolerance is how far the simulated flow's figures may be from the
// kernel's.
const tcpCalTolerance = 0.15

// TestTCPCalibration holds the simulated TCP cubic (StartTCP with the
// default TCPConfig) to the kernel's on the same link model: 100 Mbit/s
// and 50 ms each way, a one-BDP drop-tail queue, 1472-byte datagrams
// (1500-byte IP packets through the kernel), goodput of payload as the
// receiving application reads it, 30 s from the first byte sent; a pair is
// two flows started together, the one with more goodput first. Kernel:
// TestKernelTCPCalibration (Linux 6.18, cubic with HyStart, SACK, 16 MiB
// socket buffers, across a TunPath), medians (and range) of 13 rounds in
// three runs on 2026-12-04 on a 2-core machine; the sim is deterministic,
// one run:
//
//	Mbit/s                           kernel               sim
//	cubic alone, 30 s                94.5 (79.3–94.6)     94.5
//	cubic alone, second half         96.5 (89.2–96.5)     96.5
//	cubic beside cubic, the larger   47.6 (47.4–59.9)     51.6
//	cubic beside cubic, the smaller  46.9 (34.7–47.4)     43.3
//
// Another engineer's benchmarks loaded the machine through the second run
// (load average 4 to 7); the low ends of the ranges alone are from it, when
// the TUN path's forwarding fell behind (the kernel measured round trips
// of up to 380 ms on a path of 200 at most). The other runs had a load
// average of 1.4 to 1.8 and 2.3 to 3.4. The kernel's pair split evenly
// (within 1.5 Mbit/s) in 8 rounds of 13, and 60/35 at worst. The sim's pair splits the same way
// every run: without noise in its timing, the flows' bursts stay in
// blocks in the queue, the second flow's HyStart++ sees the first's burst
// as a rising round trip and leaves slow start a round early, and the
// split left by slow start lasts (a phase effect, as in any simulation
// without randomness).
//
// Alone, every option of the sim gives 94.5 and 96.5: slow start fills the
// link within 2 s and the link stays full, as the kernel's does. The pair
// chose the defaults: without HyStart++ the flows' slow starts overshoot
// further and the first keeps a larger lead (56.8 and 38.0), as with an
// ACK for every segment (58.6 and 36.3); without SACK, NewReno repairs
// slow start's hundreds of losses one a round trip, and a flow alone gets
// 47.2.
//
// It also checks what a cubic flow must do on this link: alone, fill it
// (over 90 Mbit/s in 30 s, no timeout); beside another started with it,
// fill it together and share it roughly fairly once slow start is over
// (each 35 to 65 % over the second half of a minute).
func TestTCPCalibration(t *testing.T) {
	within := func(t *testing.T, what string, kernel, sim float64) {
		t.Helper()
		require.InEpsilon(t, kernel, sim, tcpCalTolerance, "%s: kernel %.1f Mbit/s, sim %.1f", what, kernel, sim)
	}
	t.Run("alone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			got, st := simFlows(t, tcpCalLink, 1, tcpCalDuration, TCPConfig{})
			f := calFiguresOf(got)
			t.Logf("%v (kernel %v); each second %s; %+v", f, calFigures{kernelAlone}, calSeconds(got[0]), st[0])
			requireSound(t, got[0], st[0])
			within(t, "cubic alone over 30 s", kernelAlone.whole, f[0].whole)
			within(t, "cubic alone over the second half", kernelAlone.second, f[0].second)
			require.Greater(t, f[0].whole, 90.0)
			require.Zero(t, st[0].Timeouts)
		})
	})
	t.Run("beside cubic", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// The first 30 s are the calibration run; the minute, the
			// check of fairness.
			got, st := simFlows(t, tcpCalLink, 1, 2*tcpCalDuration, TCPConfig{}, TCPConfig{})
			f := calFiguresOf([][]int64{got[0][:30], got[1][:30]})
			a, b := mbps(got[0], 30, 60), mbps(got[1], 30, 60)
			t.Logf("first 30 s: %v (kernel %.1f and %.1f); second half of the minute: %.1f + %.1f Mbit/s; %+v; %+v",
				f, kernelPair[0].whole, kernelPair[1].whole, a, b, st[0], st[1])
			for i := range got {
				requireSound(t, got[i], st[i])
			}
			within(t, "the larger of two cubic flows over 30 s", kernelPair[0].whole, f[0].whole)
			within(t, "the smaller of two cubic flows over 30 s", kernelPair[1].whole, f[1].whole)
			require.Greater(t, a+b, 90.0)
			require.InDelta(t, 0.5, a/(a+b), 0.15, "share of the first flow")
		})
	})
}
