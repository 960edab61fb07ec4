package integrationtests

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/harness"
)

// selfShareLink is the bottleneck of BenchmarkTunSelfShare, and
// selfShareFlows the numbers of flows sharing it.
var (
	selfShareLink  = tunLink{rate: 100e6, rtt: 40 * time.Millisecond}
	selfShareFlows = []int{2, 4, 8}
)

// jain is Jain's fairness index of xs: 1 when all are equal, 1/n when one
// has everything.
func jain(xs []float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(xs)) * sq)
}

// selfShareSample is what n flows got over one window: each flow's
// goodput as its receiver read it, in Mbit/s, and the bottleneck's counters.
type selfShareSample struct {
	rates []float64
	w     tunWindow
}

func (s selfShareSample) sum() float64 {
	var t float64
	for _, r := range s.rates {
		t += r
	}
	return t
}

// leastMost is the least flow's goodput over the most's.
func (s selfShareSample) leastMost() float64 { return slices.Min(s.rates) / slices.Max(s.rates) }

// tunSelfShare starts n default-controller flows, one after the other
// (each dial takes a round trip), across a fresh path of link l and
// measures what each receiver reads.
func tunSelfShare(tb testing.TB, l tunLink, seed uint64, n int, warm, window time.Duration) selfShareSample {
	tb.Helper()
	p := l.path(tb, seed)
	defer func() { require.NoError(tb, p.Close()) }()
	var rcvs []*flow
	for range n {
		f := tunUDT(tb, p, udt.Config{})
		defer f.stop()
		rcvs = append(rcvs, f.rcv)
	}
	// No seqMeter: it follows one UDT flow; the receivers count here.
	w := tunMeasure(p, &seqMeter{}, rcvs, warm, window)
	return selfShareSample{rates: w.rcv, w: w}
}

// selfShareWindows are BenchmarkTunSelfShare's warm-up and window: the
// second half of 60 s unless UDT_TUN_WARMUP or UDT_TUN_WINDOW say
// otherwise (see tunWindows).
func selfShareWindows(tb testing.TB) (warm, window time.Duration, rounds int) {
	warm, window, rounds = tunWindows(tb)
	if os.Getenv("UDT_TUN_WARMUP") == "" {
		warm = 30 * time.Second
	}
	if os.Getenv("UDT_TUN_WINDOW") == "" {
		window = 30 * time.Second
	}
	return warm, window, rounds
}

// selfShareTable renders BenchmarkTunSelfShare's results as a Markdown
// table: per number of flows, Jain's index, the least flow over the most,
// and what they moved together, as medians over rounds with their ranges.
func selfShareTable(l tunLink, res map[int][]selfShareSample, rounds int, warm, window time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Default-controller flows started together across one bottleneck (%s, one-BDP drop-tail queue), "+
		"goodput as each receiver read it over %v after %v, median of %d round(s) (range):\n\n", l.label(), window, warm, rounds)
	b.WriteString("| flows | Jain's index | least / most | together, % of the link | each flow, Mbit/s (median round) |\n")
	b.WriteString("| --- | --- | --- | --- | --- |\n")
	for _, n := range selfShareFlows {
		ss := res[n]
		if len(ss) == 0 {
			continue
		}
		var j, lm, tot []float64
		for _, s := range ss {
			j = append(j, jain(s.rates))
			lm = append(lm, s.leastMost())
			tot = append(tot, s.sum()/l.mbps()*100)
		}
		mid := slices.SortedFunc(slices.Values(ss), func(a, b selfShareSample) int {
			return cmp.Compare(jain(a.rates), jain(b.rates))
		})[len(ss)/2]
		var each []string
		for _, r := range mid.rates {
			each = append(each, fmt.Sprintf("%.1f", r))
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", n, spreadN(j, 3), spreadN(lm, 2), spreadN(tot, 1), strings.Join(each, ", "))
	}
	return b.String()
}

// BenchmarkTunSelfShare measures how default-controller flows share one
// bottleneck among themselves: 2, 4 and 8 flows started together across a
// TUN-emulated 100 Mbit/s, 40 ms link between two network namespaces,
// each flow's goodput counted by its receiver over the second half of
// 60 s, and Jain's fairness index of those. It runs UDT_TUN_ROUNDS rounds,
// each on paths seeded alike, and prints a table of medians (see
// selfShareTable), or writes it to the file UDT_TUN_OUT names
// (bench/selfshare.sh). Select flow counts with -bench, e.g.
// -bench 'TunSelfShare/flows=8'.
//
// It needs root (network namespaces and TUN devices): one minute per flow
// count and round.
func BenchmarkTunSelfShare(b *testing.B) {
	harness.RequireTun(b)
	warm, window, rounds := selfShareWindows(b)
	l := selfShareLink
	report := newTunReport(b)
	res := map[int][]selfShareSample{}
	for _, n := range selfShareFlows {
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			for b.Loop() {
				for round := range rounds {
					s := tunSelfShare(b, l, uint64(round+1)*1000, n, warm, window)
					var each []string
					for _, r := range s.rates {
						each = append(each, fmt.Sprintf("%.2f", r))
					}
					report.add(b, "%s, %d flows, round %d: Jain's index %.3f, least/most %.2f, together %.2f Mbit/s (%s); bottleneck %.2f Mbit/s of IP packets, %d queue drops",
						l.label(), n, round+1, jain(s.rates), s.leastMost(), s.sum(), strings.Join(each, ", "), s.w.link, s.w.queue)
					res[n] = append(res[n], s)
				}
			}
			var j []float64
			for _, s := range res[n] {
				j = append(j, jain(s.rates))
			}
			b.ReportMetric(median(j), "jain")
		})
	}
	if len(res) == 0 {
		return
	}
	report.finish(b, selfShareTable(l, res, rounds, warm, window))
}
