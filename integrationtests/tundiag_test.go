package integrationtests

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/harness"
	"github.com/udt-go/udt/internal/interop"
	"github.com/udt-go/udt/internal/netsim"
)

// BenchmarkTunDiag runs one UDT-Go flow across one TUN-emulated link and
// prints a table with a row per bin of time (a second by default): what
// the sender's tracer saw beside what the bottleneck delivered. It is a
// diagnostic for congestion-control work, to see when and why a flow
// slows down, not a measurement to compare (BenchmarkTunLinks is).
// bench/diag.sh runs it; the environment picks the run:
//
//	UDT_DIAG_MBIT      bottleneck rate, Mbit/s of IP packets, both ways [100]
//	UDT_DIAG_RTT       round trip [100ms]
//	UDT_DIAG_LOSS      random loss of the data direction, in % [1]
//	UDT_DIAG_PEER      the receiver: go (UDT-Go) or cpp (libudt 4.11 in cpeer) [go]
//	UDT_DIAG_CC        the sender's controller: default, model or daimd [default]
//	UDT_DIAG_BIN       width of a row [1s]
//	UDT_DIAG_DURATION  how long the flow runs [30s]
//	UDT_DIAG_SEED      seed of the link's random loss [7]
//	UDT_DIAG_BESIDE    a kernel TCP flow started with ours across the same
//	                   bottleneck: cubic, bbr or none [none]
//
// The columns, per bin. From the sender's tracer: data packets sent and
// of them retransmitted; the payload sent for the first time, Mbit/s;
// packets taken for lost on a NAK, a stall or a timeout; NAKs and full
// ACKs received, EXP timeouts; and the last metrics event's RTT, sending
// period, window, the peer's flow window, packets in flight, receive
// rate and bandwidth estimate (packets a second) reported by the peer.
// From the bottleneck (A→B): IP Mbit/s delivered, the payload of data
// packets delivered for the first time (Mbit/s), data packets delivered
// again, packets lost at random and dropped at the full queue; and what
// the receiving application read, Mbit/s (Go receiver only); with a TCP
// flow beside, what its receiving application read, Mbit/s, and at the
// end of the bin its sender's congestion window (segments), smoothed RTT
// and the segments it retransmitted during the bin (TCP_INFO, Linux).
//
// The hooks take a lock shared with the path's observer, which costs
// the sender a little; it needs root (network namespaces and TUN
// devices), and libudt-dev and g++ for the C++ receiver.
func BenchmarkTunDiag(b *testing.B) {
	harness.RequireTun(b)
	o := diagOptionsFromEnv(b)
	if o.cpp {
		interop.BuildPeer(b)
	}
	for b.Loop() {
		r := runDiag(b, o)
		fmt.Print("\n" + r.table(o) + "\n")
		tot := r.total()
		b.ReportMetric(mbitPerSec(tot.good, o.duration), "good-Mbit/s")
		b.ReportMetric(100*float64(tot.retrans)/float64(max(tot.sent, 1)), "retrans-%")
		b.ReportMetric(float64(tot.dups), "dups")
	}
}

// diagOptions is a BenchmarkTunDiag run.
type diagOptions struct {
	link     tunLink
	cpp      bool                  // the receiver is libudt (cpeer), not UDT-Go
	cc       udt.CongestionControl // the sender's controller
	bin      time.Duration         // width of a row
	duration time.Duration         // how long the flow runs
	seed     uint64                // the link's random loss
	beside   string                // the congestion control of a TCP flow beside ours; "" for none
}

// String describes the run.
func (o diagOptions) String() string {
	rcv := "UDT-Go"
	if o.cpp {
		rcv = "UDT-C++ 4.11"
	}
	beside := ""
	if o.beside != "" {
		beside = ", beside TCP " + o.beside
	}
	return fmt.Sprintf("UDT-Go (%v controller) → %s across %s (seed %d)%s: %v, rows of %v",
		o.cc, rcv, o.link.label(), o.seed, beside, o.duration, o.bin)
}

// diagOptionsFromEnv reads the UDT_DIAG_ variables (see BenchmarkTunDiag).
func diagOptionsFromEnv(tb testing.TB) diagOptions {
	tb.Helper()
	o := diagOptions{link: tunLink{rate: 100e6, rtt: 100 * time.Millisecond, loss: 0.01},
		bin: time.Second, duration: 30 * time.Second, seed: 7}
	num := func(env string, set func(float64)) {
		if s := os.Getenv(env); s != "" {
			v, err := strconv.ParseFloat(s, 64)
			require.NoError(tb, err, env)
			require.False(tb, v < 0 || math.IsInf(v, 0), "%s=%s: not a number from 0 up", env, s)
			set(v)
		}
	}
	dur := func(env string, d *time.Duration) {
		if s := os.Getenv(env); s != "" {
			v, err := time.ParseDuration(s)
			require.NoError(tb, err, env)
			require.Positive(tb, v, env)
			*d = v
		}
	}
	num("UDT_DIAG_MBIT", func(v float64) { o.link.rate = int64(v * 1e6) })
	num("UDT_DIAG_LOSS", func(v float64) { o.link.loss = v / 100 })
	num("UDT_DIAG_SEED", func(v float64) { o.seed = uint64(v) })
	dur("UDT_DIAG_RTT", &o.link.rtt)
	dur("UDT_DIAG_BIN", &o.bin)
	dur("UDT_DIAG_DURATION", &o.duration)
	require.Positive(tb, o.link.rate, "UDT_DIAG_MBIT")
	require.LessOrEqual(tb, o.link.loss, 1.0, "UDT_DIAG_LOSS")
	switch s := os.Getenv("UDT_DIAG_PEER"); s {
	case "", "go":
	case "cpp":
		o.cpp = true
	default:
		tb.Fatalf("UDT_DIAG_PEER=%s: want go or cpp", s)
	}
	switch s := os.Getenv("UDT_DIAG_CC"); s {
	case "", "default":
	case "model":
		o.cc = udt.CongestionModel
	case "daimd":
		o.cc = udt.CongestionDAIMD
	default:
		tb.Fatalf("UDT_DIAG_CC=%s: want default, model or daimd", s)
	}
	switch s := os.Getenv("UDT_DIAG_BESIDE"); s {
	case "", "none":
	case "cubic", "bbr":
		o.beside = s
	default:
		tb.Fatalf("UDT_DIAG_BESIDE=%s: want cubic, bbr or none", s)
	}
	return o
}

// diagBin is what happened during one bin of a BenchmarkTunDiag run.
type diagBin struct {
	// What the sender's tracer saw.
	sent, retrans                   int              // data packets sent, of them retransmissions
	fresh                           int64            // payload bytes sent for the first time
	lostNAK, lostStall, lostTimeout int              // packets taken for lost, by reason
	naks, acks, timeouts            int              // NAKs and full ACKs received, EXP timeouts
	metrics                         udt.TraceMetrics // the bin's last; Time zero if none

	// What crossed the bottleneck A→B, and what the receiver read.
	link        int64  // IP bytes delivered
	good        int64  // payload bytes of data packets delivered for the first time
	dups        int    // data packets delivered again
	lost, queue uint64 // packets lost at random, dropped at the full queue
	read        int64  // bytes the receiving application read; -1 if out of reach (C++)
	tcp         int64  // bytes the TCP flow beside read; -1 if there is none
	tcpState    tcpState
	tcpRetrans  uint32 // segments the TCP flow beside retransmitted
	tcpKnown    bool   // tcpState and tcpRetrans were read
}

// diagRun collects the bins of a run. The sender's hooks, the path's
// observer and the sampler add to them, one at a time under mu.
type diagRun struct {
	bin time.Duration

	mu   sync.Mutex
	t0   time.Time       // the sender's connection start; guarded by mu
	bins []diagBin       // one past the run's: what comes after; guarded by mu
	seen map[uint32]bool // sequence numbers of the data delivered; guarded by mu
}

// atLocked returns the bin of time ts: the first for what came before,
// the extra one for what came after. r.mu held.
func (r *diagRun) atLocked(ts time.Time) *diagBin {
	i := int(ts.Sub(r.t0) / r.bin)
	return &r.bins[min(max(i, 0), len(r.bins)-1)]
}

// tracer traces the sender, the client: with a Go receiver, its
// connection in this process has the same Config.
func (r *diagRun) tracer(info udt.TraceInfo) *udt.ConnTracer {
	if info.Role != udt.RoleClient {
		return nil
	}
	r.mu.Lock()
	r.t0 = info.Start
	r.mu.Unlock()
	return &udt.ConnTracer{
		PacketSent:      r.packetSent,
		PacketsLost:     r.packetsLost,
		ControlReceived: r.controlReceived,
		TimedOut:        r.timedOut,
		MetricsUpdated:  r.metricsUpdated,
	}
}

func (r *diagRun) packetSent(e udt.TracePacket) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.atLocked(e.Time)
	b.sent++
	if e.Retransmit {
		b.retrans++
	} else {
		b.fresh += int64(e.Size)
	}
}

func (r *diagRun) packetsLost(e udt.TraceLoss) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.atLocked(e.Time)
	n := int(e.Last-e.First)&(1<<31-1) + 1 // across sequence wrap
	switch e.Reason {
	case "nak":
		b.lostNAK += n
	case "stall":
		b.lostStall += n
	case "timeout":
		b.lostTimeout += n
	}
}

func (r *diagRun) controlReceived(e udt.TraceControl) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.atLocked(e.Time)
	switch e.Type {
	case "nak":
		b.naks++
	case "ack":
		b.acks++
	}
}

func (r *diagRun) timedOut(e udt.TraceTimeout) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.atLocked(e.Time).timeouts++
}

func (r *diagRun) metricsUpdated(e udt.TraceMetrics) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.atLocked(e.Time).metrics = e
}

// observe is the path's observer of the data direction: it counts the IP
// bytes delivered and the UDT data packets delivered first and again.
func (r *diagRun) observe(pkt []byte) {
	now := time.Now()
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return
	}
	ihl, total := int(pkt[0]&15)*4, int(binary.BigEndian.Uint16(pkt[2:]))
	if ihl < 20 || total < ihl || total > len(pkt) {
		return
	}
	body := pkt[ihl:total]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.t0.IsZero() {
		return // before the sender's connection
	}
	b := r.atLocked(now)
	b.link += int64(total)
	if pkt[9] != ipProtoUDP || len(body) < 8+udtHeader {
		return
	}
	h := binary.BigEndian.Uint32(body[8:])
	if h>>31 != 0 {
		return // a control packet
	}
	if r.seen[h] {
		b.dups++
		return
	}
	r.seen[h] = true
	b.good += int64(len(body) - 8 - udtHeader)
}

// sample records at the end of each bin the path's losses in the data
// direction, what rcv read (nil: out of reach) and what the TCP flow
// beside read (tcp; nil: none) during the bin.
func (r *diagRun) sample(p *netsim.TunPath, rcv *flow, tcp *tunFlow) {
	r.mu.Lock()
	t0, n := r.t0, len(r.bins)-1
	r.mu.Unlock()
	var prev netsim.LinkStats
	var prevRead, prevTCP int64
	var prevRetrans uint32
	for i := range n {
		time.Sleep(time.Until(t0.Add(time.Duration(i+1) * r.bin)))
		st, _ := p.Stats()
		read := int64(-1)
		if rcv != nil {
			total := rcv.n.Load()
			read, prevRead = total-prevRead, total
		}
		beside := int64(-1)
		var ts tcpState
		var known bool
		if tcp != nil {
			total := tcp.rcv.n.Load()
			beside, prevTCP = total-prevTCP, total
			ts, known = readTCPState(tcp.snd)
		}
		r.mu.Lock()
		b := &r.bins[i]
		b.lost, b.queue, b.read, b.tcp = st.Dropped-prev.Dropped, st.QueueDrops-prev.QueueDrops, read, beside
		if known {
			b.tcpState, b.tcpRetrans, b.tcpKnown = ts, ts.retrans-prevRetrans, true
			prevRetrans = ts.retrans
		}
		r.mu.Unlock()
		prev = st
	}
}

// runDiag runs the flow of o and returns its bins.
func runDiag(tb testing.TB, o diagOptions) *diagRun {
	tb.Helper()
	p := o.link.path(tb, o.seed)
	defer func() { require.NoError(tb, p.Close()) }()
	n := int((o.duration + o.bin - 1) / o.bin)
	r := &diagRun{bin: o.bin, bins: make([]diagBin, n+1), seen: map[uint32]bool{}}
	p.Observe(0, r.observe)
	defer p.Observe(0, nil)
	cfg := udt.Config{Congestion: o.cc, Tracer: r.tracer}
	var tcp *tunFlow
	if o.beside != "" {
		tcp = tunTCP(tb, p, o.beside)
		defer tcp.stop()
	}
	var f *tunFlow
	if o.cpp {
		f = tunGoToCppWith(tb, p, cfg)
	} else {
		f = tunUDT(tb, p, cfg)
	}
	defer f.stop()
	r.sample(p, f.rcv, tcp) // returns at the end of the last bin
	return r
}

// mbitPerSec is bytes over d in Mbit/s.
func mbitPerSec(bytes int64, d time.Duration) float64 {
	return float64(bytes) * 8 / 1e6 / d.Seconds()
}

// total sums the run's bins, the one after the run left out.
func (r *diagRun) total() diagBin {
	r.mu.Lock()
	defer r.mu.Unlock()
	var t diagBin
	for _, b := range r.bins[:len(r.bins)-1] {
		t.sent, t.retrans, t.fresh = t.sent+b.sent, t.retrans+b.retrans, t.fresh+b.fresh
		t.lostNAK, t.lostStall, t.lostTimeout = t.lostNAK+b.lostNAK, t.lostStall+b.lostStall, t.lostTimeout+b.lostTimeout
		t.naks, t.acks, t.timeouts = t.naks+b.naks, t.acks+b.acks, t.timeouts+b.timeouts
		t.link, t.good, t.dups = t.link+b.link, t.good+b.good, t.dups+b.dups
		t.lost, t.queue = t.lost+b.lost, t.queue+b.queue
		if b.read < 0 || t.read < 0 {
			t.read = -1
		} else {
			t.read += b.read
		}
		if b.tcp < 0 || t.tcp < 0 {
			t.tcp = -1
		} else {
			t.tcp += b.tcp
		}
		t.tcpRetrans += b.tcpRetrans
	}
	return t
}

// table formats the run's bins, then their sum over the run.
func (r *diagRun) table(o diagOptions) string {
	tot := r.total()
	var sb strings.Builder
	fmt.Fprintf(&sb, "%v\n", o)
	tw := tabwriter.NewWriter(&sb, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "t\tsent\tretr\tnew Mbit/s\tlost nak\tstall\ttimeout\tNAKs\tACKs\tEXP\t"+
		"RTT ms\tperiod µs\twindow\tflow\tin flight\trecv rate\tbandwidth\t|\t"+
		"link Mbit/s\tgood Mbit/s\tdup\trandom loss\tqueue drop\tread Mbit/s\tTCP Mbit/s\tcwnd\tRTT ms\tretr\t")
	r.mu.Lock()
	for i, b := range r.bins[:len(r.bins)-1] {
		fmt.Fprintf(tw, "%v\t", time.Duration(i+1)*o.bin)
		writeDiagRow(tw, b, o.bin)
	}
	r.mu.Unlock()
	fmt.Fprint(tw, "all\t")
	writeDiagRow(tw, tot, o.duration)
	_ = tw.Flush() // into a strings.Builder: no error
	fmt.Fprintf(&sb, "retransmitted %.2f %% of the packets sent; %d delivered twice or more\n",
		100*float64(tot.retrans)/float64(max(tot.sent, 1)), tot.dups)
	return sb.String()
}

// writeDiagRow writes the columns of b, which spans d, after the first.
func writeDiagRow(tw *tabwriter.Writer, b diagBin, d time.Duration) {
	fmt.Fprintf(tw, "%d\t%d\t%.1f\t%d\t%d\t%d\t%d\t%d\t%d\t", b.sent, b.retrans, mbitPerSec(b.fresh, d),
		b.lostNAK, b.lostStall, b.lostTimeout, b.naks, b.acks, b.timeouts)
	if m := b.metrics; !m.Time.IsZero() {
		fmt.Fprintf(tw, "%.1f\t%.1f\t%d\t%d\t%d\t%d\t%d\t|\t", float64(m.RTT)/1e6, float64(m.Period)/1e3,
			m.Window, m.FlowWindow, m.InFlight, m.RecvRate, m.Bandwidth)
	} else {
		fmt.Fprint(tw, "-\t-\t-\t-\t-\t-\t-\t|\t")
	}
	rate := func(n int64) string {
		if n < 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", mbitPerSec(n, d))
	}
	fmt.Fprintf(tw, "%.1f\t%.1f\t%d\t%d\t%d\t%s\t%s\t", mbitPerSec(b.link, d), mbitPerSec(b.good, d),
		b.dups, b.lost, b.queue, rate(b.read), rate(b.tcp))
	switch {
	case b.tcpKnown:
		fmt.Fprintf(tw, "%d\t%.1f\t%d\t\n", b.tcpState.cwnd, float64(b.tcpState.rtt)/1e6, b.tcpRetrans)
	case b.tcp >= 0 && b.tcpRetrans > 0: // the run's sum
		fmt.Fprintf(tw, "-\t-\t%d\t\n", b.tcpRetrans)
	default:
		fmt.Fprint(tw, "-\t-\t-\t\n")
	}
}
