package integrationtests

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/harness"
	"github.com/udt-go/udt/internal/interop"
)

// coexistLinks are the links of BenchmarkTunCoexist: the two lossless
// links on which TCP cubic must keep its share, and the two lossy ones on
// which it keeps at least what it keeps beside TCP BBR.
var coexistLinks = []tunLink{
	{rate: 100e6, rtt: 100 * time.Millisecond},
	{rate: 50e6, rtt: 40 * time.Millisecond},
	{rate: 100e6, rtt: 100 * time.Millisecond, loss: 0.001},
	{rate: 100e6, rtt: 100 * time.Millisecond, loss: 0.01},
}

// coexistPair is two senders started together across one bottleneck.
type coexistPair struct {
	first, second tunSender
}

func (p coexistPair) String() string { return p.first.name + " + " + p.second.name }

// coexistPairs: TCP cubic beside each kind of sender, and TCP BBR beside
// the default controller.
var coexistPairs = []coexistPair{
	{tunCubic, tunCubic},
	{tunCubic, tunBBR},
	{tunCubic, tunCpp},
	{tunCubic, tunGoDAIMD},
	{tunCubic, tunGoDefault},
	{tunBBR, tunGoDefault},
}

// coexistSample is what each flow of a pair got over the window, in
// Mbit/s of goodput, and the bottleneck's counters.
type coexistSample struct {
	first, second float64
	w             tunWindow
}

// flowGoodput returns the goodput of flow f, the i-th of the pair, over
// window w: what its receiver read where the receiver is in this process,
// else (a C++ flow) the new UDT payload that crossed the bottleneck.
func flowGoodput(f *tunFlow, w tunWindow, i int) float64 {
	if f.rcv == nil {
		return w.udt
	}
	return w.rcv[i]
}

// tunPair starts both senders of p together across a fresh path of link l
// and measures them.
func tunPair(tb testing.TB, l tunLink, seed uint64, p coexistPair, warm, window time.Duration) coexistSample {
	tb.Helper()
	path := l.path(tb, seed)
	defer func() { require.NoError(tb, path.Close()) }()
	m := &seqMeter{}
	path.Observe(0, m.observe)
	f1 := p.first.start(tb, path)
	defer f1.stop()
	f2 := p.second.start(tb, path)
	defer f2.stop()
	var rcvs []*flow
	for _, f := range []*tunFlow{f1, f2} {
		if f.rcv != nil {
			rcvs = append(rcvs, f.rcv)
		} else {
			rcvs = append(rcvs, &flow{}) // keeps the index; reads nothing
		}
	}
	w := tunMeasure(path, m, rcvs, warm, window)
	return coexistSample{first: flowGoodput(f1, w, 0), second: flowGoodput(f2, w, 1), w: w}
}

// coexistTable renders the results of BenchmarkTunCoexist as a Markdown
// table: per link and pair, the median over rounds of each flow's goodput
// and share of the link, with their range.
func coexistTable(links []tunLink, res map[string]map[string][]coexistSample, rounds int, warm, window time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Two flows started together across one bottleneck (one-BDP drop-tail queue), goodput by the reader "+
		"(C++: new payload at the bottleneck), median of %d round(s) (range), the order of pairs rotated each round, %v warm-up, %v window:\n\n",
		rounds, warm, window)
	b.WriteString("| link | first + second | first (Mbit/s) | second (Mbit/s) | first's share | second / first |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, l := range links {
		for _, p := range coexistPairs {
			ss := res[l.String()][p.String()]
			if len(ss) == 0 {
				continue
			}
			var f, s, share, ratio []float64
			for _, x := range ss {
				f, s = append(f, x.first), append(s, x.second)
				share = append(share, x.first/l.mbps()*100)
				ratio = append(ratio, x.second/x.first)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s %% | %s |\n", l.label(), p, spreadN(f, 1), spreadN(s, 1), spreadN(share, 1), spreadN(ratio, 2))
		}
	}
	return b.String()
}

// spreadN renders the median of xs with prec decimals, and their range if
// there are several.
func spreadN(xs []float64, prec int) string {
	m := fmt.Sprintf("%.*f", prec, median(xs))
	if len(xs) > 1 {
		m += fmt.Sprintf(" (%.*f–%.*f)", prec, slices.Min(xs), prec, slices.Max(xs))
	}
	return m
}

// coexistSelected returns the pairs UDT_TUN_PAIRS names (comma-separated,
// each as the table heads its row, "TCP cubic + Go default"), or all of
// coexistPairs if it is unset.
func coexistSelected(tb testing.TB) []coexistPair {
	env := os.Getenv("UDT_TUN_PAIRS")
	if env == "" {
		return coexistPairs
	}
	var sel []coexistPair
	for name := range strings.SplitSeq(env, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(coexistPairs, func(p coexistPair) bool { return p.String() == name })
		if i < 0 {
			var names []string
			for _, p := range coexistPairs {
				names = append(names, p.String())
			}
			tb.Fatalf("UDT_TUN_PAIRS: no pair %q; the pairs are %q", name, names)
		}
		sel = append(sel, coexistPairs[i])
	}
	return sel
}

// BenchmarkTunCoexist measures how flows share a bottleneck: TCP cubic
// started together with a second flow (TCP cubic, TCP BBR, UDT C++ 4.11,
// UDT-Go with DAIMD, UDT-Go with the default controller), and TCP BBR
// beside the default controller, across the links of coexistLinks between
// two network namespaces. Each pair gets a fresh path, warms up, then
// counts for a window each flow's goodput as its receiver reads it. It runs
// UDT_TUN_ROUNDS rounds with the order of the pairs rotated, and prints a
// table of medians (see coexistTable), or writes it to the file
// UDT_TUN_OUT names (bench/coexist.sh). Select links with -bench, e.g.
// -bench 'TunCoexist/50Mbit'.
//
// It needs root (network namespaces and TUN devices), libudt-dev and g++:
// six pairs a link and round, each the warm-up plus the window long
// (UDT_TUN_WARMUP, UDT_TUN_WINDOW).
func BenchmarkTunCoexist(b *testing.B) {
	harness.RequireTun(b)
	interop.BuildPeer(b)
	warm, window, rounds := tunWindows(b)
	pairs := coexistSelected(b)
	report := newTunReport(b)
	res := map[string]map[string][]coexistSample{}
	var links []tunLink
	for _, l := range coexistLinks {
		b.Run(l.String(), func(b *testing.B) {
			row := map[string][]coexistSample{}
			for b.Loop() {
				for round := range rounds {
					seed := uint64(round+1) * 1000
					k := round % len(pairs)
					order := append(slices.Clone(pairs[k:]), pairs[:k]...)
					for _, p := range order {
						s := tunPair(b, l, seed, p, warm, window)
						report.add(b, "%s, round %d, %v: %.2f + %.2f Mbit/s; bottleneck %.2f Mbit/s of IP packets, %d lost, %d queue drops",
							l.label(), round+1, p, s.first, s.second, s.w.link, s.w.lost, s.w.queue)
						row[p.String()] = append(row[p.String()], s)
					}
				}
			}
			for _, p := range coexistPairs {
				if ss := row[p.String()]; len(ss) > 0 {
					var f []float64
					for _, x := range ss {
						f = append(f, x.first/l.mbps()*100)
					}
					unit := strings.NewReplacer(" ", "", "+", "-", "C++4.11", "cpp").Replace(p.String())
					b.ReportMetric(median(f), unit+"-first-%link")
				}
			}
			res[l.String()] = row
			links = append(links, l)
		})
	}
	if len(links) == 0 {
		return
	}
	report.finish(b, coexistTable(links, res, rounds, warm, window))
}
