package udt

import (
	"math"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sinkConn is a packetConn that never delivers a datagram and counts what
// it is given to send.
type sinkConn struct {
	mu      sync.Mutex
	written int // guarded by mu
	closed  chan struct{}
	once    sync.Once
}

func newSinkConn() *sinkConn { return &sinkConn{closed: make(chan struct{})} }

func (s *sinkConn) ReadFrom([]byte) (int, netip.AddrPort, error) {
	<-s.closed
	return 0, netip.AddrPort{}, net.ErrClosed
}

func (s *sinkConn) WriteTo([]byte, netip.AddrPort) error {
	s.mu.Lock()
	s.written++
	s.mu.Unlock()
	return nil
}

func (s *sinkConn) LocalAddrPort() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:9000") }

func (s *sinkConn) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (s *sinkConn) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}

// TestListenerHandshakeAllocs checks that the receive worker allocates
// nothing for a handshake request until its cookie checks out: cookie
// requests (each answered), conclusions with forged cookies, conclusions
// with a cookie issued to another address, and malformed requests, each
// from a fresh address and socket ID. The test plays the receive worker:
// it calls dispatch, the worker's per-datagram step from the parsed header
// on, on a multiplexer whose workers do not run. A genuine conclusion,
// which creates the connection, does allocate: the control that the count
// works.
func TestListenerHandshakeAllocs(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	require.NoError(t, err)
	sink := newSinkConn()
	m := newMultiplexer(sink)
	ln, err := listenOn(m, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	m.runPending() // installs the listener, as the worker would
	require.Same(t, ln, m.listener)

	const runs = 2000
	froms := make([]netip.AddrPort, runs+1)
	for i := range froms {
		froms[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), uint16(1024+i))
	}
	build := func(reqType int32, cookie uint32, id int) []byte {
		h := handshake{version: udtVersion, sockType: sockStream, isn: uint32(id) * 7919, mss: 1500, window: 8192,
			reqType: reqType, socketID: uint32(1 + id), cookie: cookie}
		putPeerIP(&h.peerIP, netip.MustParseAddr("127.0.0.1"))
		return appendHandshakePacket(nil, 0, &h)
	}
	now := time.Now()
	requests := make([][]byte, len(froms))
	forged := make([][]byte, len(froms))
	stolen := make([][]byte, len(froms)) // a genuine cookie, but another address's
	for i := range froms {
		requests[i] = build(reqInduction, 0, i)
		forged[i] = build(reqConclusion, uint32(i)*2654435761, i)
		other := ln.cookies.issue(froms[(i+1)%len(froms)], now)
		stolen[i] = build(reqConclusion, other, i)
	}
	short := requests[0][:len(requests[0])-4]
	badType := build(7, 0, 0)

	for _, tc := range []struct {
		name    string
		packets [][]byte
		answers bool // each is answered (the cookie reply)
	}{
		{"cookie request", requests, true},
		{"conclusion with a forged cookie", forged, false},
		{"conclusion with another address's cookie", stolen, false},
		{"truncated request", [][]byte{short}, false},
		{"unknown request type", [][]byte{badType}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Forged cookies are counted apart from the other drops.
			dropped := func() uint64 { s := m.metrics(); return s.Dropped.Malformed + s.CookiesRejected }
			written, before := sink.count(), dropped()
			i := 0
			allocs := testing.AllocsPerRun(runs, func() {
				m.dispatch(tc.packets[i%len(tc.packets)], froms[i], time.Time{}, nil)
				i++
			})
			calls := i // AllocsPerRun adds a warm-up call
			require.Zero(t, allocs, "allocations per request")
			if tc.answers {
				require.Equal(t, calls, sink.count()-written, "cookie replies sent")
			} else {
				require.Equal(t, uint64(calls), dropped()-before, "requests dropped")
				require.Equal(t, written, sink.count(), "replies sent")
			}
			require.Empty(t, ln.known, "handshakes remembered")
			require.Empty(t, m.socks, "sockets created")
		})
	}

	t.Run("genuine conclusion (control)", func(t *testing.T) {
		i := 0
		allocs := testing.AllocsPerRun(20, func() {
			cookie := ln.cookies.issue(froms[i], time.Now())
			m.dispatch(build(reqConclusion, cookie, i), froms[i], time.Time{}, nil)
			i++
		})
		require.Positive(t, allocs, "a connection is made without allocating: the count is broken")
		require.Len(t, m.socks, i, "connections made")
		for len(ln.accept) > 0 {
			c := <-ln.accept
			_ = c.Close()
		}
	})
	runtime.KeepAlive(sink)
}

// TestListenerHandshakeAllocsOverUDP sends cookie requests, each after a
// conclusion with a forged cookie, to a listener on a real loopback socket
// and counts the process's allocations meanwhile: the whole receive path
// (the socket read with its timestamp, dispatch, the reply's write) must
// allocate nothing per request. The bound, 0.05 a request, leaves room for
// the runtime's own; one allocation a request would count 1. The count is
// the process's, so the least of five phases of 2,000 requests counts: a
// burst from elsewhere in the process falls in one (CI, its processors
// busy with another package's tests, once counted 0.11 a request over a
// single phase of 10,000; never reproduced here), where an allocation per
// request would show in every phase. The test runs alone in a child
// process of the test binary (runAlone): in the full suite, connections
// that earlier tests closed allocate as they time out, and once counted
// 0.15 a request in the least of the five phases.
func TestListenerHandshakeAllocsOverUDP(t *testing.T) {
	if runAlone(t) {
		return
	}
	ln := listenRaw(t, Config{})
	to := ln.Addr().(*net.UDPAddr).AddrPort()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { uc.Close() })

	const pairs, batch = 5000, 50
	var reqs, forged [batch][]byte
	for i := range batch {
		h := handshake{version: udtVersion, sockType: sockStream, isn: uint32(i) * 7919, mss: 1500, window: 8192,
			reqType: reqInduction, socketID: uint32(1 + i)}
		putPeerIP(&h.peerIP, netip.MustParseAddr("127.0.0.1"))
		reqs[i] = appendHandshakePacket(nil, 0, &h)
		h.reqType, h.cookie = reqConclusion, uint32(i)*2654435761
		forged[i] = appendHandshakePacket(nil, 0, &h)
	}
	buf := make([]byte, 2048)
	round := func() {
		for i := range batch {
			_, err := uc.WriteToUDPAddrPort(forged[i], to)
			require.NoError(t, err)
			_, err = uc.WriteToUDPAddrPort(reqs[i], to)
			require.NoError(t, err)
		}
		require.NoError(t, uc.SetReadDeadline(time.Now().Add(5*time.Second)))
		for range batch {
			_, _, err := uc.ReadFromUDPAddrPort(buf)
			require.NoError(t, err, "a cookie reply is missing")
		}
	}
	round() // warm-up: the worker's buffers, the socket's poller
	dropped := ln.Metrics().CookiesRejected
	const phases = 5
	perRequest := math.Inf(1)
	for range phases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range pairs / batch / phases {
			round()
		}
		runtime.ReadMemStats(&after)
		n := after.Mallocs - before.Mallocs
		t.Logf("%d requests (half forged conclusions): %d allocations in the process, %.4f a request",
			2*pairs/phases, n, float64(n)/(2*pairs/phases))
		perRequest = min(perRequest, float64(n)/(2*pairs/phases))
	}
	require.Equal(t, uint64(pairs), ln.Metrics().CookiesRejected-dropped, "forged conclusions dropped")
	if raceEnabled {
		// The race detector makes sync.Pool drop a quarter of what is put
		// in it, and the batch reads take their buffers from one.
		return
	}
	require.Less(t, perRequest, 0.05, "allocations per handshake request")
}
