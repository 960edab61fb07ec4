package udt_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/interop"
	"github.com/udt-go/udt/internal/netsim"
)

// tunLink is one emulated path of BenchmarkTunLinks between two network
// namespaces: the bottleneck rate in bits per second of IP packets, the
// round trip, and the random loss of the data direction (the way back
// loses nothing). Both directions queue one bandwidth-delay product at
// the bottleneck, netsim's default.
type tunLink struct {
	rate int64
	rtt  time.Duration
	loss float64
}

func (l tunLink) String() string {
	return fmt.Sprintf("%dMbit/rtt=%v/loss=%g%%", l.rate/1e6, l.rtt, l.loss*100)
}

// label is the link as the table shows it.
func (l tunLink) label() string {
	return fmt.Sprintf("%d Mbit/s, %v, %g %%", l.rate/1e6, l.rtt, l.loss*100)
}

// mbps is the link rate in Mbit/s.
func (l tunLink) mbps() float64 { return float64(l.rate) / 1e6 }

// path builds the link's path, seeded with seed; the caller closes it.
func (l tunLink) path(tb testing.TB, seed uint64) *netsim.TunPath {
	tb.Helper()
	requireTun(tb)
	fwd := netsim.LinkConfig{Rate: l.rate, Delay: l.rtt / 2, Loss: l.loss}
	back := netsim.LinkConfig{Rate: l.rate, Delay: l.rtt / 2}
	p, err := netsim.NewTunPath(fwd, back, seed)
	require.NoError(tb, err)
	return p
}

// tunLinks are the links of BenchmarkTunLinks.
var tunLinks = []tunLink{
	{rate: 100e6, rtt: 100 * time.Millisecond},
	{rate: 100e6, rtt: 100 * time.Millisecond, loss: 0.001},
	{rate: 100e6, rtt: 100 * time.Millisecond, loss: 0.01},
	{rate: 20e6, rtt: 300 * time.Millisecond, loss: 0.005},
}

// tcpBuffers is the kernel buffer size, each way, of the TCP sockets on TUN
// paths: over four times the largest bandwidth-delay product there
// (100 Mbit/s × 200 ms with the queue full is 2.5 MB), which a
// namespace's default tcp_wmem (4 MiB, counting the kernel's overhead per
// segment) would not hold.
const tcpBuffers = 16 << 20

// tunFlow is one bulk flow from side A of a TUN path to side B.
type tunFlow struct {
	rcv  *flow  // what the receiving application read; nil when out of reach (C++)
	stop func() // ends the flow and waits until its goroutines or processes have
}

// tunSender is one kind of sender of BenchmarkTunLinks.
type tunSender struct {
	name  string // column heading
	start func(tb testing.TB, p *netsim.TunPath) *tunFlow
}

var (
	tunGoDefault = tunSender{"Go default", func(tb testing.TB, p *netsim.TunPath) *tunFlow {
		return tunUDT(tb, p, udt.Config{})
	}}
	tunGoModel = tunSender{"Go model", func(tb testing.TB, p *netsim.TunPath) *tunFlow {
		return tunUDT(tb, p, udt.Config{Congestion: udt.CongestionModel})
	}}
	tunCpp   = tunSender{"C++ 4.11", tunCppFlow}
	tunCubic = tunSender{"TCP cubic", func(tb testing.TB, p *netsim.TunPath) *tunFlow {
		return tunTCP(tb, p, "cubic")
	}}
	tunBBR = tunSender{"TCP BBR", func(tb testing.TB, p *netsim.TunPath) *tunFlow {
		return tunTCP(tb, p, "bbr")
	}}
	tunSenders = []tunSender{tunGoDefault, tunGoModel, tunCpp, tunCubic, tunBBR}
)

// tunStart starts a bulk flow from A to B: listen runs in B and dial in A,
// each given the address to use. The flow runs until its stop.
func tunStart(tb testing.TB, p *netsim.TunPath, listen func(addr string) (net.Listener, error), dial func(addr string) (net.Conn, error)) *tunFlow {
	tb.Helper()
	var ln net.Listener
	require.NoError(tb, p.Do(1, func() (err error) {
		ln, err = listen(netip.AddrPortFrom(p.Addr(1), 0).String())
		return err
	}))
	var c net.Conn
	if err := p.Do(0, func() (err error) {
		c, err = dial(ln.Addr().String())
		return err
	}); err != nil {
		ln.Close()
		tb.Fatal(err)
	}
	// The dial returned once the listener had the connection queued.
	s, err := ln.Accept()
	ln.Close()
	if err != nil {
		c.Close()
		tb.Fatal(err)
	}
	f := &flow{}
	done := make(chan struct{}, 2)
	go func() {
		f.drain(s)
		done <- struct{}{}
	}()
	go func() {
		send(c)
		done <- struct{}{}
	}()
	return &tunFlow{rcv: f, stop: func() {
		for _, c := range []net.Conn{c, s} {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // reset, do not drain megabytes into a closing path
			}
			c.Close()
		}
		timeout := time.After(10 * time.Second)
		for range 2 {
			select {
			case <-done:
			case <-timeout:
				tb.Errorf("flow %v → %v: sender or receiver still running 10 s after Close", c.LocalAddr(), c.RemoteAddr())
				return
			}
		}
	}}
}

// tunUDT starts a UDT flow with cfg, except that the sender does not
// linger when it is stopped.
func tunUDT(tb testing.TB, p *netsim.TunPath, cfg udt.Config) *tunFlow {
	tb.Helper()
	return tunStart(tb, p, func(addr string) (net.Listener, error) {
		lc := udt.ListenConfig{Config: cfg}
		return lc.ListenUDT(context.Background(), "udp4", addr)
	}, func(addr string) (net.Conn, error) {
		dcfg := cfg
		dcfg.Linger = -1 // the flow is cut off, not drained, once measured
		d := udt.Dialer{Config: dcfg, LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Addr(0), 0))}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return d.DialContext(ctx, "udp4", addr)
	})
}

// tunTCP starts a TCP flow whose sender uses the kernel's congestion
// control cc, with buffers of tcpBuffers on both ends.
func tunTCP(tb testing.TB, p *netsim.TunPath, cc string) *tunFlow {
	tb.Helper()
	return tunStart(tb, p, func(addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			return nil, err
		}
		// Set before the client connects, so the window scale fits.
		if err := netsim.ForceSocketBuffers(ln.(*net.TCPListener), tcpBuffers); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	}, func(addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.Dial("tcp4", addr)
		if err != nil {
			return nil, err
		}
		tc := c.(*net.TCPConn)
		if err := netsim.SetTCPCongestion(tc, cc); err != nil {
			c.Close()
			return nil, err
		}
		if err := netsim.ForceSocketBuffers(tc, tcpBuffers); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	})
}

// tunCppFlow starts a C++ flow: a cpeer client in A sends without end to a
// cpeer server in B, both with libudt's defaults.
func tunCppFlow(tb testing.TB, p *netsim.TunPath) *tunFlow {
	tb.Helper()
	in := func(side int) func(string, ...string) *exec.Cmd {
		return func(bin string, args ...string) *exec.Cmd { return p.Command(side, bin, args...) }
	}
	host := p.Addr(1).String()
	srv := interop.StartWrapped(tb, in(1), "server", "-host", host, "-port", "0", "-mode", "recv", "-nohash")
	port := srv.ListenPort(10 * time.Second)
	cli := interop.StartWrapped(tb, in(0), "client", "-host", host, "-port", strconv.Itoa(port),
		"-mode", "send", "-bytes", strconv.FormatInt(1<<50, 10), "-nohash")
	stop := func() {
		cli.Kill()
		srv.Kill()
		_ = cli.Wait(10 * time.Second) // killed: an error, as expected
		_ = srv.Wait(10 * time.Second)
	}
	if _, err := cli.WaitLine("CONNECTED ", 10*time.Second); err != nil {
		stop()
		tb.Fatal(err)
	}
	return &tunFlow{stop: stop}
}

// tunWindows returns how long each measurement on a TUN path warms up and
// then measures, and how many rounds BenchmarkTunLinks runs:
// UDT_TUN_WARMUP (default 5s), UDT_TUN_WINDOW (default 20s) and
// UDT_TUN_ROUNDS (default 1).
func tunWindows(tb testing.TB) (warm, window time.Duration, rounds int) {
	tb.Helper()
	warm, window, rounds = 5*time.Second, 20*time.Second, 1
	for _, v := range []struct {
		env string
		d   *time.Duration
	}{{"UDT_TUN_WARMUP", &warm}, {"UDT_TUN_WINDOW", &window}} {
		if s := os.Getenv(v.env); s != "" {
			d, err := time.ParseDuration(s)
			require.NoError(tb, err, v.env)
			require.Positive(tb, d, v.env)
			*v.d = d
		}
	}
	if s := os.Getenv("UDT_TUN_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(tb, err, "UDT_TUN_ROUNDS")
		require.Positive(tb, n, "UDT_TUN_ROUNDS")
		rounds = n
	}
	return warm, window, rounds
}

// tunSample is what one flow did over a measurement window, in Mbit/s.
type tunSample struct {
	link   float64 // IP bytes the bottleneck delivered (retransmissions included)
	rcv    float64 // bytes the receiving application read; NaN when out of reach
	minSec float64 // the least the bottleneck delivered in one second of the window
	stalls int     // seconds of the window in which it delivered under a tenth of its mean
	lost   uint64  // packets the link lost at random in the window
	queue  uint64  // packets dropped at the full bottleneck queue in the window
}

func (s tunSample) String() string {
	rcv := "-"
	if !math.IsNaN(s.rcv) {
		rcv = fmt.Sprintf("%.2f", s.rcv)
	}
	return fmt.Sprintf("bottleneck %.2f Mbit/s, receiver %s Mbit/s, slowest second %.2f Mbit/s, %d stalled seconds, %d lost, %d queue drops",
		s.link, rcv, s.minSec, s.stalls, s.lost, s.queue)
}

// tunMeasure waits out the warm-up, then counts for the window what the
// bottleneck of p delivered from A to B, second by second, and what rcv
// read (if not nil).
func tunMeasure(p *netsim.TunPath, rcv *flow, warm, window time.Duration) tunSample {
	time.Sleep(warm)
	st0, _ := p.Stats()
	var r0 int64
	if rcv != nil {
		r0 = rcv.n.Load()
	}
	t0 := time.Now()
	s := tunSample{minSec: math.Inf(1), rcv: math.NaN()}
	var perSec []float64
	prev, prevT := st0, t0
	for end := t0.Add(window); ; {
		next := prevT.Add(time.Second)
		if next.After(end) {
			next = end
		}
		time.Sleep(time.Until(next))
		st, _ := p.Stats()
		now := time.Now()
		if dt := now.Sub(prevT).Seconds(); dt >= 0.5 {
			perSec = append(perSec, float64(st.Bytes-prev.Bytes)*8/1e6/dt)
		}
		prev, prevT = st, now
		if !now.Before(end) {
			break
		}
	}
	secs := prevT.Sub(t0).Seconds()
	s.link = float64(prev.Bytes-st0.Bytes) * 8 / 1e6 / secs
	s.lost = prev.Dropped - st0.Dropped
	s.queue = prev.QueueDrops - st0.QueueDrops
	for _, r := range perSec {
		s.minSec = min(s.minSec, r)
		if r < s.link/10 {
			s.stalls++
		}
	}
	if rcv != nil {
		s.rcv = float64(rcv.n.Load()-r0) * 8 / 1e6 / secs
	}
	return s
}

// tunAlone runs sender s alone across a fresh path of link l seeded with
// seed and returns its sample.
func tunAlone(tb testing.TB, l tunLink, seed uint64, s tunSender, warm, window time.Duration) tunSample {
	tb.Helper()
	p := l.path(tb, seed)
	defer func() { require.NoError(tb, p.Close()) }()
	f := s.start(tb, p)
	defer f.stop()
	return tunMeasure(p, f.rcv, warm, window)
}

// tunShare runs a TCP cubic flow and a UDT flow with cfg together across
// a fresh path of link l, and returns the bottleneck's sample with, as rcv,
// what each receiver read over the window.
func tunShare(tb testing.TB, l tunLink, seed uint64, cfg udt.Config, warm, window time.Duration) (cubic, udtS tunSample) {
	tb.Helper()
	p := l.path(tb, seed)
	defer func() { require.NoError(tb, p.Close()) }()
	tf := tunTCP(tb, p, "cubic")
	defer tf.stop()
	uf := tunUDT(tb, p, cfg)
	defer uf.stop()
	time.Sleep(warm)
	t0, u0, tm := tf.rcv.n.Load(), uf.rcv.n.Load(), time.Now()
	st := tunMeasure(p, nil, 0, window)
	secs := time.Since(tm).Seconds()
	cubic, udtS = st, st
	cubic.rcv = float64(tf.rcv.n.Load()-t0) * 8 / 1e6 / secs
	udtS.rcv = float64(uf.rcv.n.Load()-u0) * 8 / 1e6 / secs
	return cubic, udtS
}

// tunSharers are the UDT flows of BenchmarkTunLinks's sharing runs, each
// beside one TCP cubic flow.
var tunSharers = []struct {
	name string
	cfg  udt.Config
}{{"default", udt.Config{}}, {"model", udt.Config{Congestion: udt.CongestionModel}}}

// tunRow is one link's results over all rounds.
type tunRow struct {
	link    tunLink
	alone   map[string][]tunSample // by sender name, one per round
	cubicSh map[string][]tunSample // by tunSharers name, cubic beside that UDT flow: rcv is cubic's
	udtSh   map[string][]tunSample // by tunSharers name, that UDT flow beside cubic: rcv is UDT's
}

// median returns the median of xs, NaN if there are none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// share returns the median over rounds of f(sample) as a share of the link, in percent.
func (r *tunRow) share(ss []tunSample, f func(tunSample) float64) float64 {
	var xs []float64
	for _, s := range ss {
		xs = append(xs, f(s)/r.link.mbps()*100)
	}
	return median(xs)
}

func bottleneck(s tunSample) float64 { return s.link }
func received(s tunSample) float64   { return s.rcv }

// ratios returns a's rates over b's, paired by round, taken by f.
func ratios(a, b []tunSample, f func(tunSample) float64) []float64 {
	var xs []float64
	for i := range min(len(a), len(b)) {
		xs = append(xs, f(a[i])/f(b[i]))
	}
	return xs
}

// ratio returns the median over rounds of a's bottleneck rate over b's,
// paired by round.
func (r *tunRow) ratio(a, b string) float64 {
	return median(ratios(r.alone[a], r.alone[b], bottleneck))
}

// spread renders the median of xs, and their range if there are several.
func spread(xs []float64) string {
	m := fmt.Sprintf("%.2f", median(xs))
	if len(xs) > 1 {
		m += fmt.Sprintf(" (%.2f–%.2f)", slices.Min(xs), slices.Max(xs))
	}
	return m
}

// tunTable renders the rows as two Markdown tables: each sender alone, and
// cubic beside UDT.
func tunTable(rows []*tunRow, rounds int, warm, window time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Each sender alone: share of the link the bottleneck delivered (IP bytes), median of %d round(s), %v warm-up, %v window\n\n", rounds, warm, window)
	b.WriteString("| link | Go default | Go model | C++ 4.11 | TCP cubic | TCP BBR | default/BBR | model/BBR | default/C++ | model/C++ |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |", r.link.label())
		for _, s := range tunSenders {
			fmt.Fprintf(&b, " %.1f %% |", r.share(r.alone[s.name], bottleneck))
		}
		for _, p := range [][2]string{{tunGoDefault.name, tunBBR.name}, {tunGoModel.name, tunBBR.name}, {tunGoDefault.name, tunCpp.name}, {tunGoModel.name, tunCpp.name}} {
			fmt.Fprintf(&b, " %s |", spread(ratios(r.alone[p[0]], r.alone[p[1]], bottleneck)))
		}
		b.WriteString("\n")
	}
	b.WriteString("\nTCP cubic beside one UDT-Go flow: share of the link each receiver read (payload), median; " +
		"cubic's rate beside UDT over its rate alone, paired by round\n\n")
	b.WriteString("| link | UDT-Go | cubic alone | cubic beside UDT | UDT beside cubic | cubic beside / alone | cubic keeps ≥ 1/4 |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		for _, u := range tunSharers {
			c := r.share(r.cubicSh[u.name], received)
			keeps := "yes"
			if !(c >= 25) {
				keeps = "no"
			}
			fmt.Fprintf(&b, "| %s | %s | %.1f %% | %.1f %% | %.1f %% | %s | %s |\n", r.link.label(), u.name,
				r.share(r.alone[tunCubic.name], received), c, r.share(r.udtSh[u.name], received),
				spread(ratios(r.cubicSh[u.name], r.alone[tunCubic.name], received)), keeps)
		}
	}
	return b.String()
}

// BenchmarkTunLinks runs UDT-Go (the default controller and
// CongestionModel), UDT-C++ (libudt 4.11, cpeer processes), TCP cubic and
// TCP BBR, each alone in turn, across the same emulated links between two
// network namespaces (see tunLinks), then TCP cubic beside one UDT-Go flow,
// once with the default controller and once with CongestionModel. Each
// measurement gets a fresh path, warms up, then counts for a window (see
// tunWindows) what the bottleneck delivered, the same way for every sender
// alone; flows sharing the path are told apart at their receivers. It runs
// UDT_TUN_ROUNDS rounds, the order of the senders rotated each round, and
// reports medians: each sender's share of the link, the default and model
// controllers over BBR and over C++ (paired by round), and cubic's share
// beside UDT. The table is printed, or written to the file UDT_TUN_OUT
// names (bench/tunlinks.sh prints it at the end). Select links with -bench,
// e.g. -bench 'TunLinks/100Mbit/rtt=100ms/loss=1%'.
//
// It needs root (network namespaces and TUN devices), libudt-dev and g++,
// and about 3 minutes per link and round with the default windows.
func BenchmarkTunLinks(b *testing.B) {
	requireTun(b)
	interop.BuildPeer(b)
	warm, window, rounds := tunWindows(b)
	var rows []*tunRow
	for _, l := range tunLinks {
		b.Run(l.String(), func(b *testing.B) {
			row := &tunRow{link: l, alone: map[string][]tunSample{}, cubicSh: map[string][]tunSample{}, udtSh: map[string][]tunSample{}}
			for b.Loop() {
				for round := range rounds {
					seed := uint64(len(row.alone[tunCubic.name])+1) * 1000
					order := append(slices.Clone(tunSenders[round%len(tunSenders):]), tunSenders[:round%len(tunSenders)]...)
					for _, s := range order {
						smp := tunAlone(b, l, seed, s, warm, window)
						b.Logf("round %d, %s alone: %v", round+1, s.name, smp)
						row.alone[s.name] = append(row.alone[s.name], smp)
					}
					for _, u := range tunSharers {
						c, g := tunShare(b, l, seed, u.cfg, warm, window)
						b.Logf("round %d, cubic %.2f Mbit/s beside UDT %s %.2f Mbit/s (bottleneck %.2f Mbit/s, %d stalled seconds, %d lost, %d queue drops)",
							round+1, c.rcv, u.name, g.rcv, c.link, c.stalls, c.lost, c.queue)
						row.cubicSh[u.name] = append(row.cubicSh[u.name], c)
						row.udtSh[u.name] = append(row.udtSh[u.name], g)
					}
				}
			}
			for _, s := range []struct {
				name, unit string
			}{{tunGoDefault.name, "default-%link"}, {tunGoModel.name, "model-%link"}, {tunCpp.name, "cpp-%link"},
				{tunCubic.name, "cubic-%link"}, {tunBBR.name, "bbr-%link"}} {
				b.ReportMetric(row.share(row.alone[s.name], bottleneck), s.unit)
			}
			b.ReportMetric(row.ratio(tunGoDefault.name, tunBBR.name), "default/bbr")
			b.ReportMetric(row.ratio(tunGoModel.name, tunBBR.name), "model/bbr")
			b.ReportMetric(row.ratio(tunGoDefault.name, tunCpp.name), "default/cpp")
			b.ReportMetric(row.ratio(tunGoModel.name, tunCpp.name), "model/cpp")
			for _, u := range tunSharers {
				b.ReportMetric(row.share(row.cubicSh[u.name], received), "cubic-beside-"+u.name+"-%link")
			}
			rows = append(rows, row)
		})
	}
	if len(rows) == 0 {
		return
	}
	table := tunTable(rows, rounds, warm, window)
	if out := os.Getenv("UDT_TUN_OUT"); out != "" {
		require.NoError(b, os.WriteFile(out, []byte(table), 0o644))
		return
	}
	// Printed, not logged: a parent benchmark's log shows only with -v.
	fmt.Print("\n" + table + "\n")
}

// TestTunLinksShort is the CI form of BenchmarkTunLinks: one link
// (100 Mbit/s, 100 ms, 1 % loss), 2 s of warm-up and 3 s of measurement
// each for UDT-Go with CongestionModel, TCP BBR and UDT-C++. It checks only
// that every flow moves data and the run completes; the rates go to the log.
func TestTunLinksShort(t *testing.T) {
	if testing.Short() {
		t.Skip("18 s on emulated paths; skipped in -short mode")
	}
	requireTun(t)
	l := tunLink{rate: 100e6, rtt: 100 * time.Millisecond, loss: 0.01}
	for _, s := range []tunSender{tunGoModel, tunBBR, tunCpp} {
		t.Run(strings.ReplaceAll(s.name, " ", "-"), func(t *testing.T) {
			if s.name == tunCpp.name {
				interop.BuildPeer(t)
			}
			smp := tunAlone(t, l, 1, s, 2*time.Second, 3*time.Second)
			t.Logf("%s on %s: %v", s.name, l.label(), smp)
			require.Positive(t, smp.link, "nothing crossed the bottleneck")
			if !math.IsNaN(smp.rcv) {
				require.Positive(t, smp.rcv, "the receiver read nothing")
			}
		})
	}
}
