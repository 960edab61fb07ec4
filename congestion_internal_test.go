package udt

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/cc"
	"github.com/udt-go/udt/internal/netsim"
	"github.com/udt-go/udt/internal/seq"
	"github.com/udt-go/udt/internal/window"
)

// hookRecorder wraps a controller and records every call to it. The
// connection calls it under its lock; the test reads it under mu.
type hookRecorder struct {
	CongestionController
	override func(CongestionParams) CongestionParams // adjusts Params, if set

	mu         sync.Mutex
	inits      []CongestionInfo
	acks       []uint32
	lastACK    CongestionInfo // info of the latest OnACK
	losses     int
	lossErrs   []string // implausible loss reports
	lossWindow [][2]int // window before and after each OnLoss
	timeouts   int
	sent       int
	retrans    int
	firstSeqs  []uint32 // sequence numbers of first transmissions
	received   int
	recvBytes  int
}

func (r *hookRecorder) Init(now time.Time, info CongestionInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inits = append(r.inits, info)
	r.CongestionController.Init(now, info)
}

func (r *hookRecorder) OnACK(now time.Time, ack uint32, info CongestionInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acks = append(r.acks, ack)
	r.lastACK = info
	r.CongestionController.OnACK(now, ack, info)
}

func (r *hookRecorder) OnLoss(now time.Time, lost []LossRange, info CongestionInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.losses++
	if len(lost) == 0 {
		r.lossErrs = append(r.lossErrs, "empty loss list")
	}
	for _, l := range lost {
		if seq.Cmp(seq.Num(l.First), seq.Num(l.Last)) > 0 ||
			seq.Cmp(seq.Num(l.First), seq.Num(info.LastACK)) < 0 ||
			seq.Cmp(seq.Num(l.Last), seq.Num(info.LastSent)) > 0 {
			r.lossErrs = append(r.lossErrs, "range outside the unacknowledged packets")
		}
	}
	before := r.CongestionController.Params().Window
	r.CongestionController.OnLoss(now, lost, info)
	r.lossWindow = append(r.lossWindow, [2]int{before, r.CongestionController.Params().Window})
}

func (r *hookRecorder) OnTimeout(now time.Time, info CongestionInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timeouts++
	r.CongestionController.OnTimeout(now, info)
}

func (r *hookRecorder) OnPktSent(now time.Time, p CongestionPacket) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent++
	if p.Retransmission {
		r.retrans++
	} else {
		r.firstSeqs = append(r.firstSeqs, p.Seq)
	}
	r.CongestionController.OnPktSent(now, p)
}

func (r *hookRecorder) OnPktReceived(now time.Time, p CongestionPacket) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.received++
	r.recvBytes += p.Size
	r.CongestionController.OnPktReceived(now, p)
}

func (r *hookRecorder) Params() CongestionParams {
	p := r.CongestionController.Params()
	if r.override != nil {
		p = r.override(p)
	}
	return p
}

// recorders is a Config.NewController that wraps a new inner controller in
// a hookRecorder per connection and keeps them all.
type recorders struct {
	mu       sync.Mutex
	inner    func() CongestionController
	override func(CongestionParams) CongestionParams
	all      []*hookRecorder
}

func (rs *recorders) newController() CongestionController {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r := &hookRecorder{CongestionController: rs.inner(), override: rs.override}
	rs.all = append(rs.all, r)
	return r
}

// of returns the recorder of connection c.
func (rs *recorders) of(t *testing.T, c *Conn) *hookRecorder {
	t.Helper()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, r := range rs.all {
		r.mu.Lock()
		ok := len(r.inits) > 0 && r.inits[0].SocketID == c.id
		r.mu.Unlock()
		if ok {
			return r
		}
	}
	t.Fatalf("no controller for socket %d", c.id)
	return nil
}

// stream writes from c and discards at s until the end of the test.
func stream(c, s *Conn) {
	go func() { _, _ = io.Copy(io.Discard, s) }()
	go func() {
		block := make([]byte, 1<<20)
		for {
			if _, err := c.Write(block); err != nil {
				return
			}
		}
	}()
}

// sendRate streams from c to s for d of virtual time and returns c's send
// rate over the second half, Mbit/s of whole MSS-sized packets (what
// NewFixedRate counts), and s's goodput over it.
func sendRate(c, s *Conn, d time.Duration) (send, goodput float64) {
	stream(c, s)
	time.Sleep(d / 2)
	c.Stats()
	s.Stats()
	time.Sleep(d / 2)
	cs, ss := c.Stats(), s.Stats()
	send = float64(cs.Interval.PktSent) * float64(c.mss) * 8 / 1e6 / cs.Elapsed.Seconds()
	return send, ss.RecvRate
}

// TestFixedRateIgnoresLoss: the UDP-blast controller sends at the rate it
// was given on a clean and a lossy 100 Mbit/s path alike, where the native
// controller slows down at 1% loss.
func TestFixedRateIgnoresLoss(t *testing.T) {
	const mbps = 40
	for _, tc := range []struct {
		name string
		loss float64
		cc   func() CongestionController
		want func(t *testing.T, send, goodput float64)
	}{
		{"fixed/no loss", 0, func() CongestionController { return NewFixedRate(mbps * 1e6 / 8) }, func(t *testing.T, send, goodput float64) {
			require.InEpsilon(t, mbps, send, 0.02)
			require.Greater(t, goodput, 0.95*mbps)
		}},
		{"fixed/loss 1%", 0.01, func() CongestionController { return NewFixedRate(mbps * 1e6 / 8) }, func(t *testing.T, send, goodput float64) {
			require.InEpsilon(t, mbps, send, 0.02)
			require.Greater(t, goodput, 0.93*mbps)
		}},
		{"DAIMD/loss 1%", 0.01, NewDAIMD, func(t *testing.T, send, goodput float64) {
			require.Less(t, send, 0.6*mbps, "the native controller backs off")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fwd := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond, Loss: tc.loss}
				back := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
				c, s, _, _ := simPair(t, fwd, back, Config{NewController: tc.cc, Linger: -1}, 11)
				send, goodput := sendRate(c, s, 10*time.Second)
				st := c.Stats()
				t.Logf("sent %.2f Mbit/s (packets of MSS bytes), goodput %.2f Mbit/s, period %v, window %d",
					send, goodput, st.PktSndPeriod, st.CongestionWindow)
				tc.want(t, send, goodput)
			})
		})
	}
}

// TestTCPLikeHalvesOnLoss: the TCP-like controller does not pace, halves
// its window on each loss event, and on a lossy path gets a goodput of its
// own, unlike the native controller's.
func TestTCPLikeHalvesOnLoss(t *testing.T) {
	var tcpGoodput, daimdGoodput float64
	for _, tc := range []struct {
		name  string
		inner func() CongestionController
		out   *float64
	}{
		{"TCPLike", NewTCPLike, &tcpGoodput},
		{"DAIMD", NewDAIMD, &daimdGoodput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rs := &recorders{inner: tc.inner}
				fwd := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond, Loss: 0.005}
				back := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
				c, s, _, _ := simPair(t, fwd, back, Config{NewController: rs.newController, Linger: -1}, 12)
				var maxInFlight, maxWindow atomic.Int64
				go func() { // sample the sender every 5 ms
					for range 2000 {
						c.mu.Lock()
						inFlight := seq.Off(c.snd.lastAck, c.snd.currSeq) + 1
						w := c.cc.window
						c.mu.Unlock()
						maxInFlight.Store(max(maxInFlight.Load(), int64(inFlight)))
						maxWindow.Store(max(maxWindow.Load(), int64(w)))
						time.Sleep(5 * time.Millisecond)
					}
				}()
				_, *tc.out = sendRate(c, s, 10*time.Second)
				st := c.Stats()
				r := rs.of(t, c)
				r.mu.Lock()
				defer r.mu.Unlock()
				halved := 0
				for _, w := range r.lossWindow {
					if w[1] != w[0] {
						halved++
					}
				}
				t.Logf("goodput %.1f Mbit/s; %d NAKs, %d cut the window; largest window %d, in flight %d; period %v",
					*tc.out, r.losses, halved, maxWindow.Load(), maxInFlight.Load(), st.PktSndPeriod)
				require.NotZero(t, r.losses)
				if tc.name != "TCPLike" {
					return
				}
				require.Zero(t, st.PktSndPeriod, "no pacing")
				require.NotZero(t, halved)
				for _, w := range r.lossWindow {
					if w[1] != w[0] {
						require.Equal(t, max(w[0]/2, 2), w[1], "window %d after a loss at %d", w[1], w[0])
					}
				}
				require.LessOrEqual(t, maxInFlight.Load(), maxWindow.Load(), "in flight within the window")
				require.Less(t, maxWindow.Load(), int64(2000), "the window stays far below the flow window")
			})
		})
	}
	t.Logf("goodput at 0.5%% loss: TCP-like %.1f, DAIMD %.1f Mbit/s", tcpGoodput, daimdGoodput)
	require.Greater(t, max(tcpGoodput, daimdGoodput)/min(tcpGoodput, daimdGoodput), 1.2)
}

// TestCongestionHooksCalled records every call a connection makes to its
// controller over a lossy transfer with an outage, and checks each against
// the connection's own counters.
func TestCongestionHooksCalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rs := &recorders{inner: NewDAIMD}
		fwd := netsim.LinkConfig{Rate: 50e6, Delay: 10 * time.Millisecond, Loss: 0.01}
		back := netsim.LinkConfig{Rate: 50e6, Delay: 10 * time.Millisecond}
		c, s, pa, pb := simPair(t, fwd, back, Config{NewController: rs.newController, Linger: time.Minute}, 13)
		go func() { // an outage both ways: the sender's timer expires
			// (one way only, the receiver's periodic NAKs of a loss it
			// was still waiting for kept it from expiring in some runs)
			time.Sleep(time.Second)
			bf, bb := fwd, back
			bf.Blackhole, bb.Blackhole = true, true
			pa.Link().SetConfig(bf)
			pb.Link().SetConfig(bb)
			time.Sleep(time.Second)
			pa.Link().SetConfig(fwd)
			pb.Link().SetConfig(back)
		}()
		transfer(t, c, s, 8<<20)

		rs.mu.Lock()
		require.Len(t, rs.all, 2, "one controller per connection")
		rs.mu.Unlock()
		rc, rsv := rs.of(t, c), rs.of(t, s)

		for _, k := range []struct {
			conn *Conn
			r    *hookRecorder
		}{{c, rc}, {s, rsv}} {
			k.conn.mu.Lock() // no hook runs meanwhile
			k.r.mu.Lock()
			st := k.conn.stats
			require.Len(t, k.r.inits, 1)
			in := k.r.inits[0]
			require.Equal(t, k.conn.mss, in.MSS)
			require.Equal(t, 1500, in.MSS)
			require.Equal(t, 8192, in.FlowWindow, "the peer's handshake window")
			require.Equal(t, seq.Num(in.ISN).Dec(), seq.Num(in.LastSent))
			require.Equal(t, in.ISN, in.LastACK)
			require.Zero(t, in.InFlight)
			require.Equal(t, st.pktSent, uint64(k.r.sent), "OnPktSent per data packet sent")
			require.Equal(t, st.pktRetrans, uint64(k.r.retrans), "retransmissions")
			require.Equal(t, st.pktRecv, uint64(k.r.received), "OnPktReceived per data packet received")
			require.LessOrEqual(t, k.r.recvBytes, int(st.bytesRecv)+k.r.received*k.conn.payload)
			require.LessOrEqual(t, uint64(k.r.losses), st.nakRecv, "OnLoss at most once per NAK")
			require.LessOrEqual(t, uint64(k.r.timeouts), st.expiries)
			require.Empty(t, k.r.lossErrs)
			k.r.mu.Unlock()
			k.conn.mu.Unlock()
		}

		rc.mu.Lock()
		defer rc.mu.Unlock()
		isn := rc.inits[0].ISN
		n := len(rc.firstSeqs)
		require.Equal(t, 8<<20/c.payload+1, n, "each packet sent once first")
		for i, sq := range rc.firstSeqs {
			require.Equal(t, seq.Num(isn).Add(i), seq.Num(sq), "first transmissions in order")
		}
		require.NotZero(t, rc.retrans)
		require.NotZero(t, rc.losses, "NAKs on a lossy path")
		require.NotZero(t, rc.timeouts, "the outage")
		require.NotEmpty(t, rc.acks)
		for i := 1; i < len(rc.acks); i++ {
			require.Positive(t, seq.Cmp(seq.Num(rc.acks[i]), seq.Num(rc.acks[i-1])), "each OnACK advances")
		}
		require.Equal(t, seq.Num(isn).Add(n), seq.Num(rc.acks[len(rc.acks)-1]), "the last ACK covers everything")
		require.Positive(t, rc.lastACK.RTT)
		require.Positive(t, rc.lastACK.RecvRate)
		require.Equal(t, uint64(n), rc.lastACK.Delivered)
		require.Zero(t, rc.lastACK.InFlight)
		require.Zero(t, rsv.sent, "the receiver sent no data")
		t.Logf("client: %d sent (%d retransmitted), %d ACKs, %d loss reports, %d timeouts; server: %d received",
			rc.sent, rc.retrans, len(rc.acks), rc.losses, rc.timeouts, rsv.received)
	})
}

// countACKs returns a netsim Drop function that drops nothing and counts
// the full and light ACKs crossing the link.
func countACKs(full, light *atomic.Int64) func([]byte, int) bool {
	return func(b []byte, _ int) bool {
		p, err := parsePacket(b)
		if err == nil && p.control && p.typ == ctrlACK {
			if len(p.body) > 4 {
				full.Add(1)
			} else {
				light.Add(1)
			}
		}
		return false
	}
}

// TestACKIntervalFromController: a controller asking for an ACK every 4
// packets, or for a 5 ms or 50 ms ACK timer, changes how often the
// receiver acknowledges.
func TestACKIntervalFromController(t *testing.T) {
	for _, tc := range []struct {
		name      string
		override  func(CongestionParams) CongestionParams
		perSec    float64 // full ACKs per second of transfer
		perPacket float64 // full ACKs per data packet
		tolerance float64
	}{
		{"default", nil, 100, 0, 0.15},
		{"every 4 packets", func(p CongestionParams) CongestionParams { p.ACKEvery = 4; return p }, 0, 0.25, 0.1},
		{"5ms timer", func(p CongestionParams) CongestionParams { p.ACKPeriod = 5 * time.Millisecond; return p }, 200, 0, 0.15},
		{"50ms timer", func(p CongestionParams) CongestionParams { p.ACKPeriod = 50 * time.Millisecond; return p }, 20, 0, 0.15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rs := &recorders{inner: NewDAIMD, override: tc.override}
				l := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
				back := l
				var full, light atomic.Int64
				back.Drop = countACKs(&full, &light)
				c, s, _, _ := simPair(t, l, back, Config{NewController: rs.newController}, 14)
				full.Store(0) // the handshake sent none; start from the data
				start := time.Now()
				transfer(t, c, s, 8<<20)
				took := time.Since(start)
				st := s.Stats()
				perSec := float64(full.Load()) / took.Seconds()
				perPacket := float64(full.Load()) / float64(st.Total.PktRecv)
				t.Logf("%d full and %d light ACKs for %d packets in %v: %.1f full ACKs/s, %.3f per packet; receiver counted %d ACKs",
					full.Load(), light.Load(), st.Total.PktRecv, took.Round(time.Millisecond), perSec, perPacket, st.Total.ACKSent)
				require.Equal(t, uint64(full.Load()+light.Load()), st.Total.ACKSent)
				if tc.perSec > 0 {
					require.InEpsilon(t, tc.perSec, perSec, tc.tolerance)
				} else {
					require.InEpsilon(t, tc.perPacket, perPacket, tc.tolerance)
				}
			})
		})
	}
}

// TestBuiltinAdaptersMatchInternal drives the exported DAIMD and model
// controllers and internal/cc's with the same events: the adapter must
// change nothing.
func TestBuiltinAdaptersMatchInternal(t *testing.T) {
	const id = 77
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		exported CongestionController
		internal cc.Controller
	}{
		{"DAIMD", NewDAIMD(), cc.NewDAIMD(id)},
		{"model", NewModelBased(), cc.NewModel()},
		{"fixed", NewFixedRate(3e6), cc.NewFixedRate(3e6)},
		{"TCP-like", NewTCPLike(), cc.NewTCPLike()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := CongestionInfo{SocketID: id, MSS: 1500, ISN: 1000, FlowWindow: 8192, LastSent: 999, LastACK: 1000,
				RTT: 100 * time.Millisecond, RTTVar: 50 * time.Millisecond, RecvRate: 16, Bandwidth: 1}
			same := func(step string) {
				t.Helper()
				p := tc.exported.Params()
				require.Equal(t, tc.internal.Window(), p.Window, step)
				require.Equal(t, tc.internal.PacketPeriod(), p.Period, step)
				require.Zero(t, p.ACKEvery, step)
				require.Zero(t, p.ACKPeriod, step)
			}
			tc.exported.Init(t0, info)
			tc.internal.Init(t0, info.inputs())
			same("init")
			now := t0
			ack := uint32(1000)
			for i := range 400 {
				now = now.Add(5 * time.Millisecond)
				info.LastSent += uint32(10 + i%7)
				info.InFlight = int(info.LastSent - ack + 1)
				info.RecvRate = 1000 + 37*i
				info.Bandwidth = 8000 + i
				info.RateSample = info.RecvRate
				info.RTTSample = time.Duration(20+i%5) * time.Millisecond
				info.SenderRTT = info.RTTSample + time.Millisecond
				info.Delivered = uint64(ack - 1000)
				switch {
				case i%23 == 7:
					lost := []LossRange{{First: ack + 1, Last: ack + 2}}
					info.Lost += 2
					tc.exported.OnLoss(now, lost, info)
					tc.internal.OnLoss(now, seq.Num(lost[0].First), info.inputs())
				case i%97 == 50:
					tc.exported.OnTimeout(now, info)
					tc.internal.OnTimeout(now, info.inputs())
				default:
					ack += uint32(8 + i%5)
					info.LastACK = ack
					tc.exported.OnACK(now, ack, info)
					tc.internal.OnACK(now, seq.Num(ack), info.inputs())
				}
				tc.exported.OnPktSent(now, CongestionPacket{Seq: info.LastSent})
				tc.exported.OnPktReceived(now, CongestionPacket{Seq: ack})
				same(fmt.Sprintf("event %d", i))
			}
		})
	}
}

// TestNewControllerConfig: the factory is called once per connection, a
// nil controller means the default, and setting both options is an error
// naming them.
func TestNewControllerConfig(t *testing.T) {
	_, err := Config{NewController: NewTCPLike, Congestion: CongestionModel}.withDefaults()
	require.ErrorContains(t, err, "Config.NewController")
	require.ErrorContains(t, err, "Config.Congestion")

	cfg, err := Config{NewController: NewTCPLike}.withDefaults()
	require.NoError(t, err)
	cfg, err = cfg.withDefaults() // validated again by an accepting listener: still fine
	require.NoError(t, err)
	require.Equal(t, CongestionDefault, cfg.Congestion)

	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		l := netsim.LinkConfig{Rate: 100e6, Delay: 5 * time.Millisecond}
		c, s, _, _ := simPair(t, l, l, Config{NewController: func() CongestionController {
			calls.Add(1)
			return nil
		}}, 15)
		transfer(t, c, s, 1<<20)
		require.Equal(t, int32(2), calls.Load(), "the dialer's and the listener's")
		c.mu.Lock()
		defer c.mu.Unlock()
		b, ok := c.cc.ctl.(*builtinCC)
		require.True(t, ok)
		_, ok = b.c.(*cc.DAIMD)
		require.True(t, ok, "nil from the factory means the default controller")
	})
}

// A model-based sender that the application held to a trickle (1 KB
// every 100 ms for 4 s) is not left believing the path is that slow: the
// arrival rates of those packets are the application's, and the 1 MiB
// that follows goes at the link's rate, as on a fresh connection. It used
// to take 88 s at one packet per 129 ms.
func TestModelAfterApplicationLimitedSpell(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
		c, s, _, _ := simPair(t, l, l, Config{Congestion: CongestionModel, Linger: time.Minute}, 5)
		go func() { _, _ = io.Copy(io.Discard, s) }()
		send := func(n int) time.Duration {
			start := time.Now()
			_, err := c.Write(make([]byte, n))
			require.NoError(t, err)
			for {
				c.mu.Lock()
				done := c.snd.buf.Len() == 0
				c.mu.Unlock()
				if done {
					return time.Since(start)
				}
				time.Sleep(time.Millisecond)
			}
		}
		fresh := send(1 << 20)
		for range 40 {
			send(1000)
			time.Sleep(100 * time.Millisecond)
		}
		after := send(1 << 20)
		t.Logf("1 MiB: %v fresh, %v after the trickle", fresh.Round(time.Millisecond), after.Round(time.Millisecond))
		require.Less(t, after, 3*fresh+100*time.Millisecond)
	})
}

// TestArrivalRateOfBatches checks ACK word 5 when a batch read stamps
// packets with one time (loopback): 4.11's median finds the gaps too
// scattered and reports 0; the receiver reports the span rate instead,
// what arrived over the time it took.
func TestArrivalRateOfBatches(t *testing.T) {
	c := &Conn{rcv: receiver{arrivals: window.NewArrivals()}}
	now := time.Unix(0, 0)
	var s seq.Num
	// 32 packets every 100 µs: 320,000 packets/s.
	for range 100 {
		now = now.Add(100 * time.Microsecond)
		for range 32 {
			c.rcv.arrivals.OnData(now, s)
			s = s.Inc()
		}
	}
	require.Zero(t, c.rcv.arrivals.ReceiveRate(), "the median's verdict")
	require.InEpsilon(t, 320_000, c.rcv.arrivalRate(), 0.05)

	// Slow and scattered (three packets together every 10 ms): 0, as
	// 4.11 reports, which a 4.11 sender ignores.
	c.rcv.arrivalRate() // a new span
	for range 20 {
		now = now.Add(10 * time.Millisecond)
		for range 3 {
			c.rcv.arrivals.OnData(now, s)
			s = s.Inc()
		}
	}
	require.Zero(t, c.rcv.arrivalRate())

	// Clumps: of every four gaps, three of 1.3 ms and one of 100 µs (a
	// late packet and the one that caught up), 1,000 packets/s. The
	// filter leaves out the short gaps and reads 770; the span rate is
	// reported.
	c.rcv.arrivalRate()
	for i := range 200 {
		gap := 1300 * time.Microsecond
		if i%4 == 3 {
			gap = 100 * time.Microsecond
		}
		now = now.Add(gap)
		c.rcv.arrivals.OnData(now, s)
		s = s.Inc()
	}
	require.InEpsilon(t, 770, c.rcv.arrivals.ReceiveRate(), 0.02, "the median's verdict")
	require.InEpsilon(t, 1000, c.rcv.arrivalRate(), 0.02)

	// Evenly spaced at 1,000 packets/s: the median's own figure.
	c.rcv.arrivalRate()
	for range 100 {
		now = now.Add(time.Millisecond)
		c.rcv.arrivals.OnData(now, s)
		s = s.Inc()
	}
	require.Equal(t, 1000, c.rcv.arrivalRate())
}
