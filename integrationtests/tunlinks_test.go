package integrationtests

import (
	"context"
	"errors"
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
	"github.com/udt-go/udt/internal/harness"
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
	harness.RequireTun(tb)
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

	snd, dst net.Conn // sending and receiving ends; nil for C++
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
	tunGoDAIMD = tunSender{"Go DAIMD", func(tb testing.TB, p *netsim.TunPath) *tunFlow {
		return tunUDT(tb, p, udt.Config{Congestion: udt.CongestionDAIMD})
	}}
	tunCpp   = tunSender{"C++ 4.11", tunCppFlow}
	tunCubic = tunSender{"TCP cubic", func(tb testing.TB, p *netsim.TunPath) *tunFlow {
		return tunTCP(tb, p, "cubic")
	}}
	tunBBR = tunSender{"TCP BBR", func(tb testing.TB, p *netsim.TunPath) *tunFlow {
		return tunTCP(tb, p, "bbr")
	}}
	tunGoToCpp = tunSender{"Go → C++", tunGoToCppFlow}
	tunSenders = []tunSender{tunGoDefault, tunGoDAIMD, tunCpp, tunCubic, tunBBR, tunGoToCpp}
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
	return &tunFlow{rcv: f, snd: c, dst: s, stop: func() {
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

// udtNote sums up a UDT flow's counters since it started.
func udtNote(f *tunFlow) string {
	snd := f.snd.(*udt.Conn).Stats()
	t := snd.Total
	note := fmt.Sprintf("sender: %d packets, %d retransmitted, %d reported lost, RTT %v, window %d, bandwidth %.0f Mbit/s",
		t.PktSent, t.PktRetrans, t.PktSndLoss, snd.RTT.Round(time.Millisecond), snd.CongestionWindow, snd.Bandwidth)
	if c, ok := f.dst.(*udt.Conn); ok {
		r := c.Stats().Total
		note += fmt.Sprintf("; receiver: %d packets, %d discarded, %d found missing", r.PktRecv, r.PktRecvDropped, r.PktRcvLoss)
	}
	return note
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
// cpeer server in B, both with libudt's defaults. Each prints the library's
// figures every second (-perfmon), which the test's log shows if it fails.
func tunCppFlow(tb testing.TB, p *netsim.TunPath) *tunFlow {
	tb.Helper()
	in := func(side int) func(string, ...string) *exec.Cmd {
		return func(bin string, args ...string) *exec.Cmd { return p.Command(side, bin, args...) }
	}
	host := p.Addr(1).String()
	srv := interop.StartWrapped(tb, in(1), "server", "-host", host, "-port", "0", "-mode", "recv", "-nohash", "-perfmon")
	port := srv.ListenPort(10 * time.Second)
	cli := interop.StartWrapped(tb, in(0), "client", "-host", host, "-port", strconv.Itoa(port),
		"-mode", "send", "-bytes", strconv.FormatInt(1<<50, 10), "-nohash", "-perfmon")
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

// tunGoToCppFlow starts a UDT-Go sender (default controller) in A that
// sends without end to a cpeer server in B (libudt's defaults): the C++
// library as the receiver of our flow.
func tunGoToCppFlow(tb testing.TB, p *netsim.TunPath) *tunFlow {
	tb.Helper()
	return tunGoToCppWith(tb, p, udt.Config{})
}

// tunGoToCppWith is tunGoToCppFlow with the sender's cfg, except that
// the sender does not linger when it is stopped.
func tunGoToCppWith(tb testing.TB, p *netsim.TunPath, cfg udt.Config) *tunFlow {
	tb.Helper()
	cfg.Linger = -1 // the flow is cut off, not drained, once measured
	host := p.Addr(1).String()
	srv := interop.StartWrapped(tb, func(bin string, args ...string) *exec.Cmd { return p.Command(1, bin, args...) },
		"server", "-host", host, "-port", "0", "-mode", "recv", "-nohash")
	port := srv.ListenPort(10 * time.Second)
	var c net.Conn
	if err := p.Do(0, func() (err error) {
		d := udt.Dialer{Config: cfg, LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Addr(0), 0))}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err = d.DialContext(ctx, "udp4", net.JoinHostPort(host, strconv.Itoa(port)))
		return err
	}); err != nil {
		srv.Kill()
		_ = srv.Wait(10 * time.Second)
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		send(c)
		close(done)
	}()
	return &tunFlow{snd: c, stop: func() {
		c.Close()
		srv.Kill()
		_ = srv.Wait(10 * time.Second) // killed: an error, as expected
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			tb.Errorf("Go → C++ flow: sender still running 10 s after Close")
		}
	}}
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

// tunReport collects a TUN benchmark's measurements and writes its report:
// to the file UDT_TUN_OUT names, each measurement appended as it is taken
// (a run cut short keeps what it measured), then, at the end, the table
// followed by every measurement in the order taken; without UDT_TUN_OUT,
// the table is printed. A benchmark's log shows only part of a long run,
// so the file is where every round's figures are kept.
type tunReport struct {
	path  string
	lines []string
}

func newTunReport(tb testing.TB) *tunReport {
	tb.Helper()
	r := &tunReport{path: os.Getenv("UDT_TUN_OUT")}
	if r.path != "" {
		require.NoError(tb, os.WriteFile(r.path, []byte("Measurements so far, in the order taken (the table follows at the end of the run):\n\n"), 0o644))
	}
	return r
}

// add logs one measurement and keeps it for the report.
func (r *tunReport) add(tb testing.TB, format string, args ...any) {
	tb.Helper()
	line := fmt.Sprintf(format, args...)
	tb.Log(line)
	r.lines = append(r.lines, line)
	if r.path == "" {
		return
	}
	f, err := os.OpenFile(r.path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(tb, err)
	_, err = fmt.Fprintf(f, "    %s\n", strings.ReplaceAll(line, "\n", "\n    "))
	require.NoError(tb, errors.Join(err, f.Close()))
}

// finish writes the table, then every measurement.
func (r *tunReport) finish(tb testing.TB, table string) {
	tb.Helper()
	if r.path == "" {
		// Printed, not logged: a parent benchmark's log shows only with -v.
		fmt.Print("\n" + table + "\n")
		return
	}
	var b strings.Builder
	b.WriteString(table)
	b.WriteString("\nEvery measurement, in the order taken:\n\n")
	for _, l := range r.lines {
		fmt.Fprintf(&b, "    %s\n", strings.ReplaceAll(l, "\n", "\n    "))
	}
	require.NoError(tb, os.WriteFile(r.path, []byte(b.String()), 0o644))
}

// tunWindow is what crossed a path's bottleneck from A to B over a
// measurement window, in Mbit/s.
type tunWindow struct {
	tcp, udt float64   // new payload (see seqMeter)
	link     float64   // IP bytes delivered, retransmissions and headers included
	rcv      []float64 // bytes each receiving application read
	minSec   float64   // the least new payload delivered in one second
	stalls   int       // seconds with under a tenth of the window's mean of new payload
	lost     uint64    // packets lost at random
	queue    uint64    // packets dropped at the full bottleneck queue
	meter    string    // what the meter made of the window's packets, then of all it saw (see seqMeter.String)
}

// tunMeasure waits out the warm-up, then counts for the window what the
// bottleneck of p delivered from A to B as m counts it, second by second,
// and what the receivers rcvs read.
func tunMeasure(p *netsim.TunPath, m *seqMeter, rcvs []*flow, warm, window time.Duration) tunWindow {
	time.Sleep(warm)
	good := func() uint64 { return m.tcp.Load() + m.udt.Load() }
	st0, _ := p.Stats()
	tcp0, udt0, c0 := m.tcp.Load(), m.udt.Load(), m.counts()
	r0 := make([]int64, len(rcvs))
	for i, f := range rcvs {
		r0[i] = f.n.Load()
	}
	t0 := time.Now()
	var perSec []float64
	prev, prevT := good(), t0
	for end := t0.Add(window); ; {
		next := prevT.Add(time.Second)
		if next.After(end) {
			next = end
		}
		time.Sleep(time.Until(next))
		g, now := good(), time.Now()
		if dt := now.Sub(prevT).Seconds(); dt >= 0.5 {
			perSec = append(perSec, float64(g-prev)*8/1e6/dt)
		}
		prev, prevT = g, now
		if !now.Before(end) {
			break
		}
	}
	st, _ := p.Stats()
	mbps := func(n uint64) float64 { return float64(n) * 8 / 1e6 / prevT.Sub(t0).Seconds() }
	w := tunWindow{
		tcp:    mbps(m.tcp.Load() - tcp0),
		udt:    mbps(m.udt.Load() - udt0),
		link:   mbps(st.Bytes - st0.Bytes),
		minSec: math.Inf(1),
		lost:   st.Dropped - st0.Dropped,
		queue:  st.QueueDrops - st0.QueueDrops,
		meter:  fmt.Sprintf("over the window %v; %v", m.counts().sub(c0), m),
	}
	for i, f := range rcvs {
		w.rcv = append(w.rcv, mbps(uint64(f.n.Load()-r0[i])))
	}
	for _, r := range perSec {
		w.minSec = min(w.minSec, r)
		if r < (w.tcp+w.udt)/10 {
			w.stalls++
		}
	}
	return w
}

// tunSample is what one flow did over a measurement window, in Mbit/s.
type tunSample struct {
	tunWindow         // the whole bottleneck's
	good      float64 // the flow's new payload at the bottleneck
	read      float64 // what its receiver read; NaN when out of reach (C++)
	note      string  // the flow's own counters, if it has some (UDT-Go)
	retrans   float64 // its retransmitted packets over packets sent; NaN when out of reach
}

func (s tunSample) String() string {
	read := "-"
	if !math.IsNaN(s.read) {
		read = fmt.Sprintf("%.2f", s.read)
	}
	str := fmt.Sprintf("goodput %.2f Mbit/s (receiver read %s), bottleneck %.2f Mbit/s of IP packets, slowest second %.2f Mbit/s, %d stalled seconds, %d lost, %d queue drops",
		s.good, read, s.link, s.minSec, s.stalls, s.lost, s.queue)
	if s.note != "" {
		str += "\n\t" + s.note
	}
	return str
}

// tunAlone runs sender s alone across a fresh path of link l seeded with
// seed and returns its sample.
func tunAlone(tb testing.TB, l tunLink, seed uint64, s tunSender, warm, window time.Duration) tunSample {
	tb.Helper()
	p := l.path(tb, seed)
	defer func() { require.NoError(tb, p.Close()) }()
	m := &seqMeter{}
	p.Observe(0, m.observe)
	f := s.start(tb, p)
	defer f.stop()
	var rcvs []*flow
	if f.rcv != nil {
		rcvs = append(rcvs, f.rcv)
	}
	w := tunMeasure(p, m, rcvs, warm, window)
	smp := tunSample{tunWindow: w, good: w.tcp + w.udt, read: math.NaN(), retrans: math.NaN()}
	if f.rcv != nil {
		smp.read = w.rcv[0]
	}
	if c, ok := f.snd.(*udt.Conn); ok {
		smp.note = udtNote(f)
		if t := c.Stats().Total; t.PktSent > 0 {
			smp.retrans = float64(t.PktRetrans) / float64(t.PktSent)
		}
	}
	return smp
}

// tunShare runs a TCP cubic flow and a UDT flow with cfg together across
// a fresh path of link l, and returns each one's sample.
func tunShare(tb testing.TB, l tunLink, seed uint64, cfg udt.Config, warm, window time.Duration) (cubic, udtS tunSample) {
	tb.Helper()
	p := l.path(tb, seed)
	defer func() { require.NoError(tb, p.Close()) }()
	m := &seqMeter{}
	p.Observe(0, m.observe)
	tf := tunTCP(tb, p, "cubic")
	defer tf.stop()
	uf := tunUDT(tb, p, cfg)
	defer uf.stop()
	w := tunMeasure(p, m, []*flow{tf.rcv, uf.rcv}, warm, window)
	return tunSample{tunWindow: w, good: w.tcp, read: w.rcv[0]}, tunSample{tunWindow: w, good: w.udt, read: w.rcv[1], note: udtNote(uf)}
}

// tunSharers are the UDT flows of BenchmarkTunLinks's sharing runs, each
// beside one TCP cubic flow.
var tunSharers = []struct {
	name string
	cfg  udt.Config
}{{"default", udt.Config{}}, {"DAIMD", udt.Config{Congestion: udt.CongestionDAIMD}}}

// tunRow is one link's results over all rounds.
type tunRow struct {
	link    tunLink
	alone   map[string][]tunSample // by sender name, one per round
	cubicSh map[string][]tunSample // by tunSharers name: cubic beside that UDT flow
	udtSh   map[string][]tunSample // by tunSharers name: that UDT flow beside cubic
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

func goodput(s tunSample) float64 { return s.good }

// ratios returns a's rates over b's, paired by round, taken by f.
func ratios(a, b []tunSample, f func(tunSample) float64) []float64 {
	var xs []float64
	for i := range min(len(a), len(b)) {
		xs = append(xs, f(a[i])/f(b[i]))
	}
	return xs
}

// ratio returns the median over rounds of a's goodput over b's,
// paired by round.
func (r *tunRow) ratio(a, b string) float64 {
	return median(ratios(r.alone[a], r.alone[b], goodput))
}

// slowest returns the slowest second over the samples, in Mbit/s; NaN if
// there are none.
func slowest(ss []tunSample) float64 {
	w := math.NaN()
	for _, s := range ss {
		if math.IsNaN(w) || s.minSec < w {
			w = s.minSec
		}
	}
	return w
}

// retransShares returns the samples' retransmitted shares, in percent,
// leaving out those that have none.
func retransShares(ss []tunSample) []float64 {
	var xs []float64
	for _, s := range ss {
		if !math.IsNaN(s.retrans) {
			xs = append(xs, s.retrans*100)
		}
	}
	return xs
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
	fmt.Fprintf(&b, "Goodput (new payload bytes through the bottleneck, retransmissions and headers not counted) as a share of the link rate, "+
		"median of %d round(s), %v warm-up, %v window. Each sender alone; ratios paired by round:\n\n", rounds, warm, window)
	b.WriteString("| link | Go default (model) | Go DAIMD | C++ 4.11 | TCP cubic | TCP BBR | Go → C++ | default/BBR | DAIMD/BBR | default/C++ | DAIMD/C++ | Go→C++ / Go→Go |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |", r.link.label())
		for _, s := range tunSenders {
			fmt.Fprintf(&b, " %.1f %% |", r.share(r.alone[s.name], goodput))
		}
		for _, p := range [][2]string{{tunGoDefault.name, tunBBR.name}, {tunGoDAIMD.name, tunBBR.name}, {tunGoDefault.name, tunCpp.name}, {tunGoDAIMD.name, tunCpp.name}, {tunGoToCpp.name, tunGoDefault.name}} {
			fmt.Fprintf(&b, " %s |", spread(ratios(r.alone[p[0]], r.alone[p[1]], goodput)))
		}
		b.WriteString("\n")
	}
	b.WriteString("\nStalls and waste, each sender alone: the slowest second of its new payload at the bottleneck, " +
		"the least over rounds (Mbit/s; a stall is a second under a quarter of the link); " +
		"packets retransmitted over packets sent (UDT-Go senders, median over rounds; the bound is the link's loss rate plus 1 %):\n\n")
	b.WriteString("| link | a quarter | slowest second: Go default | TCP BBR | Go → C++ | C++ 4.11 | retransmitted: Go default | Go → C++ | bound |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.1f |", r.link.label(), r.link.mbps()/4)
		for _, s := range []tunSender{tunGoDefault, tunBBR, tunGoToCpp, tunCpp} {
			fmt.Fprintf(&b, " %.1f |", slowest(r.alone[s.name]))
		}
		for _, s := range []tunSender{tunGoDefault, tunGoToCpp} {
			fmt.Fprintf(&b, " %.2f %% |", median(retransShares(r.alone[s.name])))
		}
		fmt.Fprintf(&b, " %.2f %% |\n", (r.link.loss+0.01)*100)
	}
	b.WriteString("\nTCP cubic beside one UDT-Go flow, each flow's goodput as a share of the link, median; " +
		"cubic's goodput beside UDT over its goodput alone, paired by round:\n\n")
	b.WriteString("| link | UDT-Go | cubic alone | cubic beside UDT | UDT beside cubic | cubic beside / alone | cubic keeps ≥ 1/4 |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		for _, u := range tunSharers {
			c := r.share(r.cubicSh[u.name], goodput)
			keeps := "yes"
			if !(c >= 25) {
				keeps = "no"
			}
			fmt.Fprintf(&b, "| %s | %s | %.1f %% | %.1f %% | %.1f %% | %s | %s |\n", r.link.label(), u.name,
				r.share(r.alone[tunCubic.name], goodput), c, r.share(r.udtSh[u.name], goodput),
				spread(ratios(r.cubicSh[u.name], r.alone[tunCubic.name], goodput)), keeps)
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
// tunWindows) each flow's goodput where the bottleneck delivers it: the
// payload bytes of data not delivered before (see seqMeter), the same way
// for every sender. It runs UDT_TUN_ROUNDS rounds, the order of the
// senders rotated each round, and reports medians: each sender's share of
// the link, the default and model controllers over BBR and over C++
// (paired by round), and cubic's share beside UDT. The table is printed,
// or written to the file UDT_TUN_OUT names (bench/tunlinks.sh prints it
// at the end). The log has each measurement, with what the receiver read
// where it is in this process (all but C++). Select links with -bench,
// e.g. -bench 'TunLinks/100Mbit/rtt=100ms/loss=1%'.
//
// It needs root (network namespaces and TUN devices), libudt-dev and g++,
// and about 3 minutes per link and round with the default windows.
func BenchmarkTunLinks(b *testing.B) {
	harness.RequireTun(b)
	interop.BuildPeer(b)
	warm, window, rounds := tunWindows(b)
	report := newTunReport(b)
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
						report.add(b, "%s, round %d, %s alone: %v", l.label(), round+1, s.name, smp)
						row.alone[s.name] = append(row.alone[s.name], smp)
					}
					for _, u := range tunSharers {
						c, g := tunShare(b, l, seed, u.cfg, warm, window)
						report.add(b, "%s, round %d, cubic %.2f Mbit/s (read %.2f) beside UDT %s %.2f Mbit/s (read %.2f); bottleneck %.2f Mbit/s of IP packets, %d stalled seconds, %d lost, %d queue drops\n\tUDT %s",
							l.label(), round+1, c.good, c.read, u.name, g.good, g.read, c.link, c.stalls, c.lost, c.queue, g.note)
						row.cubicSh[u.name] = append(row.cubicSh[u.name], c)
						row.udtSh[u.name] = append(row.udtSh[u.name], g)
					}
				}
			}
			for _, s := range []struct {
				name, unit string
			}{{tunGoDefault.name, "default-%link"}, {tunGoDAIMD.name, "daimd-%link"}, {tunCpp.name, "cpp-%link"},
				{tunCubic.name, "cubic-%link"}, {tunBBR.name, "bbr-%link"}} {
				b.ReportMetric(row.share(row.alone[s.name], goodput), s.unit)
			}
			b.ReportMetric(row.ratio(tunGoDefault.name, tunBBR.name), "default/bbr")
			b.ReportMetric(row.ratio(tunGoDAIMD.name, tunBBR.name), "daimd/bbr")
			b.ReportMetric(row.ratio(tunGoDefault.name, tunCpp.name), "default/cpp")
			b.ReportMetric(row.ratio(tunGoDAIMD.name, tunCpp.name), "daimd/cpp")
			for _, u := range tunSharers {
				b.ReportMetric(row.share(row.cubicSh[u.name], goodput), "cubic-beside-"+u.name+"-%link")
			}
			rows = append(rows, row)
		})
	}
	if len(rows) == 0 {
		return
	}
	report.finish(b, tunTable(rows, rounds, warm, window))
}

// TestTunLinksShort is the CI form of BenchmarkTunLinks: one link
// (100 Mbit/s, 100 ms, 1 % loss), 2 s of warm-up and 3 s of measurement
// each for UDT-Go with CongestionModel, TCP BBR and UDT-C++. It checks only
// that every flow moves data and the run completes; the rates go to the log.
func TestTunLinksShort(t *testing.T) {
	if testing.Short() {
		t.Skip("18 s on emulated paths; skipped in -short mode")
	}
	harness.RequireTun(t)
	l := tunLink{rate: 100e6, rtt: 100 * time.Millisecond, loss: 0.01}
	for _, s := range []tunSender{tunGoDefault, tunBBR, tunCpp} {
		t.Run(strings.ReplaceAll(s.name, " ", "-"), func(t *testing.T) {
			if s.name == tunCpp.name {
				interop.BuildPeer(t)
			}
			smp := tunAlone(t, l, 1, s, 2*time.Second, 3*time.Second)
			t.Logf("%s on %s: %v\n\tmeter: %s", s.name, l.label(), smp, smp.meter)
			require.Positive(t, smp.good, "no new data crossed the bottleneck; meter: %s", smp.meter)
			if !math.IsNaN(smp.read) {
				require.Positive(t, smp.read, "the receiver read nothing")
			}
		})
	}
}
