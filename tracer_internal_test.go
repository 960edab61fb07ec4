package udt

import (
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/netsim"
)

// traceRecorder keeps what a ConnTracer sees, by hook.
type traceRecorder struct {
	mu     sync.Mutex
	info   TraceInfo
	order  []string // hook names, in the order called
	times  []time.Time
	hsSent []TraceHandshake
	hsRecv []TraceHandshake
	phases []TracePhase
	sent   []TracePacket
	recv   []TracePacket
	lost   []TraceLoss
	ctlOut []TraceControl
	ctlIn  []TraceControl
	m      []TraceMetrics
	tmo    []TraceTimeout
	closed []TraceClose
}

func (r *traceRecorder) note(hook string, at time.Time) {
	r.order = append(r.order, hook)
	r.times = append(r.times, at)
}

func (r *traceRecorder) tracer() *ConnTracer {
	rec := func(hook string, at time.Time, f func()) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.note(hook, at)
		f()
	}
	return &ConnTracer{
		HandshakeSent: func(e TraceHandshake) { rec("hs-sent", e.Time, func() { r.hsSent = append(r.hsSent, e) }) },
		HandshakeReceived: func(e TraceHandshake) {
			rec("hs-recv", e.Time, func() { r.hsRecv = append(r.hsRecv, e) })
		},
		PhaseChanged:   func(e TracePhase) { rec("phase", e.Time, func() { r.phases = append(r.phases, e) }) },
		PacketSent:     func(e TracePacket) { rec("sent", e.Time, func() { r.sent = append(r.sent, e) }) },
		PacketReceived: func(e TracePacket) { rec("recv", e.Time, func() { r.recv = append(r.recv, e) }) },
		PacketsLost:    func(e TraceLoss) { rec("lost", e.Time, func() { r.lost = append(r.lost, e) }) },
		ControlSent: func(e TraceControl) {
			e.Loss = append([]LossRange(nil), e.Loss...) // valid only during the call
			rec("ctl-sent", e.Time, func() { r.ctlOut = append(r.ctlOut, e) })
		},
		ControlReceived: func(e TraceControl) {
			e.Loss = append([]LossRange(nil), e.Loss...)
			rec("ctl-recv", e.Time, func() { r.ctlIn = append(r.ctlIn, e) })
		},
		MetricsUpdated: func(e TraceMetrics) { rec("metrics", e.Time, func() { r.m = append(r.m, e) }) },
		TimedOut:       func(e TraceTimeout) { rec("timeout", e.Time, func() { r.tmo = append(r.tmo, e) }) },
		Closed:         func(e TraceClose) { rec("closed", e.Time, func() { r.closed = append(r.closed, e) }) },
	}
}

// traceRecorders makes a recorder for each connection a Config's Tracer
// is asked for, by role.
type traceRecorders struct {
	mu   sync.Mutex
	byID map[TraceRole]*traceRecorder
}

func (rs *traceRecorders) tracer(info TraceInfo) *ConnTracer {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.byID == nil {
		rs.byID = make(map[TraceRole]*traceRecorder)
	}
	r := &traceRecorder{info: info}
	rs.byID[info.Role] = r
	return r.tracer()
}

func (rs *traceRecorders) get(role TraceRole) *traceRecorder {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.byID[role]
}

func countCtl(es []TraceControl, typ string) (n uint64) {
	for _, e := range es {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// TestTracerSeesConnection traces both ends of a transfer across a lossy
// emulated link and checks the events against the connections' own
// counters: every packet, loss report, ACK and phase is seen, in time
// order, and Closed comes last.
func TestTracerSeesConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rs traceRecorders
		l := netsim.LinkConfig{Rate: 50e6, Delay: 10 * time.Millisecond, Loss: 0.02}
		c, s, _, _ := simPair(t, l, l, Config{Tracer: rs.tracer, Linger: time.Minute}, 21)
		transfer(t, c, s, 4<<20)
		time.Sleep(closeWait + time.Second) // both ends done
		cs, ss := c.Stats().Total, s.Stats().Total

		cr, sr := rs.get(RoleClient), rs.get(RoleServer)
		require.NotNil(t, cr)
		require.NotNil(t, sr)
		cr.mu.Lock()
		defer cr.mu.Unlock()
		sr.mu.Lock()
		defer sr.mu.Unlock()

		assert.Equal(t, c.id, cr.info.SocketID)
		assert.Equal(t, s.RemoteAddr().String(), sr.info.RemoteAddr.String())
		for _, r := range []*traceRecorder{cr, sr} {
			require.NotEmpty(t, r.order)
			assert.Equal(t, "closed", r.order[len(r.order)-1], "Closed is the last event")
			for i := 1; i < len(r.times); i++ {
				require.False(t, r.times[i].Before(r.times[i-1]), "event %d (%s) before the one preceding it", i, r.order[i])
			}
			require.Len(t, r.closed, 1)
		}

		// The handshake: the client's induction and conclusion, and
		// the answers; the server's conclusion and response.
		require.GreaterOrEqual(t, len(cr.hsSent), 2)
		assert.Equal(t, int32(reqInduction), cr.hsSent[0].ReqType)
		assert.Equal(t, int32(reqConclusion), cr.hsSent[len(cr.hsSent)-1].ReqType)
		require.GreaterOrEqual(t, len(cr.hsRecv), 2)
		assert.NotZero(t, cr.hsRecv[0].Cookie)
		require.Len(t, sr.hsRecv, 1)
		require.Len(t, sr.hsSent, 1)
		assert.Equal(t, c.id, sr.hsRecv[0].SocketID)
		assert.Equal(t, s.id, sr.hsSent[0].SocketID)

		phases := func(r *traceRecorder) (ps []ConnPhase) {
			for _, p := range r.phases {
				ps = append(ps, p.To)
			}
			return ps
		}
		assert.Equal(t, []ConnPhase{PhaseConnected, PhaseClosing, PhaseClosed}, phases(cr))
		assert.Equal(t, []ConnPhase{PhaseConnected, PhaseClosed}, phases(sr))
		assert.Equal(t, "local", cr.closed[0].By)
		assert.Equal(t, "peer", sr.closed[0].By)
		assert.NoError(t, cr.closed[0].Err)

		// Packets, as the connections counted them.
		var retrans uint64
		for _, p := range cr.sent {
			if p.Retransmit {
				retrans++
			}
		}
		assert.Equal(t, cs.PktSent, uint64(len(cr.sent)))
		assert.Equal(t, cs.PktRetrans, retrans)
		assert.NotZero(t, retrans, "2 % loss and no retransmission")
		var taken, discarded, late uint64
		for _, p := range sr.recv {
			switch {
			case p.Discarded != "":
				discarded++
			case p.Retransmit:
				late++
				taken++
			default:
				taken++
			}
		}
		assert.Equal(t, ss.PktRecv, uint64(len(sr.recv)))
		assert.NotZero(t, late)
		assert.Equal(t, uint64(4<<20), func() (n uint64) {
			for _, p := range sr.recv {
				if p.Discarded == "" {
					n += uint64(p.Size)
				}
			}
			return n
		}(), "bytes taken")

		// Losses and their reports: each gap the server found is a NAK
		// it sent and the client received.
		var gaps, naks int
		for _, l := range sr.lost {
			assert.Equal(t, "gap", l.Reason)
			gaps++
		}
		for _, l := range cr.lost {
			if l.Reason == "nak" {
				naks++
			}
		}
		assert.NotZero(t, gaps)
		assert.NotZero(t, naks)
		assert.Equal(t, ss.NAKSent, countCtl(sr.ctlOut, "nak"))
		assert.Equal(t, cs.NAKRecv, countCtl(cr.ctlIn, "nak"))
		for _, e := range sr.ctlOut {
			if e.Type == "nak" {
				require.NotEmpty(t, e.Loss)
			}
		}
		assert.Equal(t, ss.ACKSent, countCtl(sr.ctlOut, "ack")+countCtl(sr.ctlOut, "light-ack"))
		assert.Equal(t, cs.ACKRecv, countCtl(cr.ctlIn, "ack")+countCtl(cr.ctlIn, "light-ack"))
		assert.Equal(t, countCtl(cr.ctlIn, "ack"), countCtl(cr.ctlOut, "ack2"))
		assert.NotZero(t, countCtl(sr.ctlIn, "ack2"))
		assert.Equal(t, uint64(1), countCtl(sr.ctlIn, "shutdown"))

		// The estimates: the RTT settles near the path's 20 ms.
		require.NotEmpty(t, cr.m)
		last := cr.m[len(cr.m)-1]
		assert.InDelta(t, 20*time.Millisecond, last.RTT, float64(15*time.Millisecond))
		assert.Positive(t, last.Period)
		assert.Positive(t, last.RecvRate)
	})
}

// TestTracerPartialHooks traces with one hook set, and with a Tracer that
// declines some connections: nothing else is called, nothing breaks.
func TestTracerPartialHooks(t *testing.T) {
	var mu sync.Mutex
	var closed []TraceClose
	traced := 0
	cfg := Config{Tracer: func(info TraceInfo) *ConnTracer {
		mu.Lock()
		defer mu.Unlock()
		if info.Role == RoleServer {
			return nil
		}
		traced++
		return &ConnTracer{Closed: func(e TraceClose) {
			mu.Lock()
			closed = append(closed, e)
			mu.Unlock()
		}}
	}}
	c, s := internalPair(t, cfg)
	_, err := c.Write(pattern(1 << 20))
	require.NoError(t, err)
	buf := make([]byte, 1<<20)
	for n := 0; n < len(buf); {
		k, err := s.Read(buf[n:])
		require.NoError(t, err)
		n += k
	}
	require.NoError(t, c.Close())
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1, traced)
	require.Len(t, closed, 1)
	assert.Equal(t, "local", closed[0].By)
}

// TestTracerFailedDial sees a dial that nobody answers end with its
// handshake's error.
func TestTracerFailedDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rs traceRecorders
		l := netsim.LinkConfig{Rate: 10e6, Delay: time.Millisecond, Loss: 1}
		a, b := netsim.NewPacketPipe(l, l, 1)
		defer b.Close()
		ma := newMultiplexer(netPacketConn{c: a})
		ma.start()
		cfg, err := Config{Tracer: rs.tracer, ConnectTimeout: time.Second}.withDefaults()
		require.NoError(t, err)
		_, err = dialOn(t.Context(), ma, cfg, netip.MustParseAddrPort("10.0.0.2:9000"))
		require.Error(t, err)
		r := rs.get(RoleClient)
		r.mu.Lock()
		defer r.mu.Unlock()
		assert.GreaterOrEqual(t, len(r.hsSent), 3, "requests repeated")
		require.Len(t, r.closed, 1)
		assert.Equal(t, "dial", r.closed[0].By)
		assert.ErrorIs(t, r.closed[0].Err, err)
		time.Sleep(closeWait)
	})
}
