package udt

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawClient speaks handshakes by hand to a listener.
type rawClient struct {
	t    *testing.T
	conn *net.UDPConn
	to   *net.UDPAddr
}

func newRawClient(t *testing.T, to net.Addr) *rawClient {
	t.Helper()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { uc.Close() })
	return &rawClient{t: t, conn: uc, to: to.(*net.UDPAddr)}
}

func (r *rawClient) send(h *handshake) {
	r.t.Helper()
	_, err := r.conn.WriteToUDP(appendHandshakePacket(nil, 0, h), r.to)
	require.NoError(r.t, err)
}

// recv returns the next handshake, or false after the timeout.
func (r *rawClient) recv(timeout time.Duration) (packet, handshake, bool) {
	r.t.Helper()
	buf := make([]byte, 2048)
	_ = r.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		n, err := r.conn.Read(buf)
		if err != nil {
			return packet{}, handshake{}, false
		}
		p, err := parsePacket(buf[:n])
		require.NoError(r.t, err)
		if !p.control || p.typ != ctrlHandshake {
			continue
		}
		h, err := parseHandshake(p.body)
		require.NoError(r.t, err)
		return p, h, true
	}
}

func (r *rawClient) request(id uint32) handshake {
	h := handshake{version: udtVersion, sockType: sockStream, isn: 12345, mss: 1500, window: 8192, reqType: reqInduction, socketID: id}
	putPeerIP(&h.peerIP, netip.MustParseAddr("127.0.0.1"))
	return h
}

func TestHandshakeCookieReplyKeepsNoState(t *testing.T) {
	ln := listenRaw(t, Config{})
	r := newRawClient(t, ln.Addr())
	req := r.request(77)
	r.send(&req)
	p, h, ok := r.recv(2 * time.Second)
	require.True(t, ok)
	require.Equal(t, uint32(77), p.dst, "the reply goes to the client's socket ID")
	require.Equal(t, int32(reqInduction), h.reqType, "the cookie reply keeps type 1")
	require.NotZero(t, h.cookie)
	want := req
	want.cookie = h.cookie
	require.Equal(t, want, h, "the reply is the request echoed with the cookie")
	require.NoError(t, ln.SetDeadline(time.Now().Add(100*time.Millisecond)))
	_, err := ln.Accept()
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "no connection exists before the cookie returns")
}

func TestHandshakeDuplicateRequestAnsweredFromConnection(t *testing.T) {
	ln := listenRaw(t, Config{})
	r := newRawClient(t, ln.Addr())
	req := r.request(78)
	r.send(&req)
	_, reply, ok := r.recv(2 * time.Second)
	require.True(t, ok)
	req.reqType, req.cookie = reqConclusion, reply.cookie
	r.send(&req)
	_, first, ok := r.recv(2 * time.Second)
	require.True(t, ok)
	require.Equal(t, int32(reqConclusion), first.reqType)
	require.Equal(t, req.isn, first.isn, "the response echoes the client's ISN")
	r.send(&req)
	_, second, ok := r.recv(2 * time.Second)
	require.True(t, ok)
	require.Equal(t, first, second, "a repeated request gets the same answer")

	c, err := ln.AcceptUDT()
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, ln.SetDeadline(time.Now().Add(100*time.Millisecond)))
	_, err = ln.Accept()
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "only one connection was made")
}

func TestHandshakeBadCookieDropped(t *testing.T) {
	ln := listenRaw(t, Config{})
	r := newRawClient(t, ln.Addr())
	req := r.request(79)
	req.reqType, req.cookie = reqConclusion, 0xdeadbeef
	r.send(&req)
	_, _, ok := r.recv(300 * time.Millisecond)
	require.False(t, ok, "a forged cookie gets no answer")

	// A cookie issued to another address is no good either.
	other := newRawClient(t, ln.Addr())
	oreq := other.request(80)
	other.send(&oreq)
	_, reply, ok := other.recv(2 * time.Second)
	require.True(t, ok)
	req.cookie = reply.cookie
	r.send(&req)
	_, _, ok = r.recv(300 * time.Millisecond)
	require.False(t, ok)
}

func TestHandshakeRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		patch func(*handshake)
	}{
		{"version", func(h *handshake) { h.version = 3 }},
		{"socket type", func(h *handshake) { h.sockType = sockDgram }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := listenRaw(t, Config{})
			r := newRawClient(t, ln.Addr())
			req := r.request(81)
			r.send(&req)
			_, reply, ok := r.recv(2 * time.Second)
			require.True(t, ok)
			req.reqType, req.cookie = reqConclusion, reply.cookie
			tc.patch(&req)
			r.send(&req)
			_, h, ok := r.recv(2 * time.Second)
			require.True(t, ok)
			require.Equal(t, int32(reqRefused), h.reqType)
		})
	}
}

func TestDialRefusedWhenBacklogFull(t *testing.T) {
	ln := listenRaw(t, Config{Backlog: 1})
	d := Dialer{}
	c1, err := d.DialUDT(context.Background(), "udp", ln.Addr().String())
	require.NoError(t, err)
	defer c1.Close()
	_, err = d.DialUDT(context.Background(), "udp", ln.Addr().String())
	require.ErrorIs(t, err, ErrConnRefused)
	var op *net.OpError
	require.True(t, errors.As(err, &op))
	require.Equal(t, "dial", op.Op)
}

func TestDialTimeoutAndContext(t *testing.T) {
	// A UDP socket that never answers.
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer uc.Close()

	d := Dialer{Config: Config{ConnectTimeout: 300 * time.Millisecond}}
	start := time.Now()
	_, err = d.DialUDT(context.Background(), "udp", uc.LocalAddr().String())
	require.ErrorIs(t, err, ErrHandshakeTimeout)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout())
	require.Less(t, time.Since(start), 3*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err = Dial("udp", "bad address")
	require.Error(t, err)
	_, err = (&Dialer{}).DialUDT(ctx, "udp", uc.LocalAddr().String())
	require.ErrorIs(t, err, context.Canceled)
}

func TestConfigErrorsNameTheOption(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{MSS: 40}, "Config.MSS"},
		{Config{MSS: 70000}, "Config.MSS"},
		{Config{FlowWindow: -1}, "Config.FlowWindow"},
		{Config{SendBuffer: 1}, "Config.SendBuffer"},
		{Config{ReceiveBuffer: -5}, "Config.ReceiveBuffer"},
		{Config{UDPSendBuffer: 10}, "Config.UDPSendBuffer"},
		{Config{ConnectTimeout: -1}, "Config.ConnectTimeout"},
		{Config{Backlog: -1}, "Config.Backlog"},
		{Config{Backlog: 1 << 17}, "Config.Backlog"},
		{Config{MaxConns: -1}, "Config.MaxConns"},
		{Config{FlowWindow: 1<<20 + 1}, "Config.FlowWindow"},
		{Config{SendBuffer: 1 << 30}, "Config.SendBuffer"},
		{Config{ReceiveBuffer: 1 << 21}, "Config.ReceiveBuffer"},
		{Config{PeerIdleTimeout: -1}, "Config.PeerIdleTimeout"},
	} {
		_, err := (&Dialer{Config: tc.cfg}).DialUDT(context.Background(), "udp", "127.0.0.1:1")
		require.ErrorContains(t, err, tc.want)
		_, err = (&ListenConfig{Config: tc.cfg}).ListenUDT(context.Background(), "udp", "127.0.0.1:0")
		require.ErrorContains(t, err, tc.want)
	}
	_, err := Listen("tcp", "127.0.0.1:0")
	require.Error(t, err)
}

// TestDialContextCancelIsPrompt cancels a dial to a port that never
// answers 100 ms in: the dial returns at once (well before its next
// handshake resend, 150 ms later) with an error wrapping context.Canceled,
// its socket ID is out of the multiplexer, and no goroutine is left.
func TestDialContextCancelIsPrompt(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer silent.Close()
	// A listener keeps the dial's multiplexer open afterwards, to look into.
	ln := listenRaw(t, Config{})
	m := ln.m
	goroutines := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	canceled := make(chan time.Time, 1)
	time.AfterFunc(100*time.Millisecond, func() {
		canceled <- time.Now()
		cancel()
	})
	d := Dialer{LocalAddr: ln.Addr().(*net.UDPAddr)}
	_, err = d.DialUDT(ctx, "udp", silent.LocalAddr().String())
	returned := time.Now()
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, ErrHandshakeTimeout)
	var op *net.OpError
	require.ErrorAs(t, err, &op)
	require.Equal(t, "dial", op.Op)
	late := returned.Sub(<-canceled)
	t.Logf("returned %v after the cancel", late)
	require.Less(t, late, 100*time.Millisecond, "the dial waited for its next resend")

	m.idMu.Lock()
	ids := len(m.ids)
	m.idMu.Unlock()
	require.Zero(t, ids, "the dial's socket ID is still in use")
	// The tables change on the receive worker before its next datagram.
	tables := make(chan int, 1)
	m.apply(func() { tables <- len(m.connectors) + len(m.socks) })
	_, err = silent.WriteToUDP([]byte{0}, ln.Addr().(*net.UDPAddr))
	require.NoError(t, err)
	select {
	case n := <-tables:
		require.Zero(t, n, "the dial is still registered")
	case <-time.After(5 * time.Second):
		t.Fatal("the receive worker did not run")
	}

	// A dial from no local address has a multiplexer of its own, whose
	// workers end with it.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = DialContext(ctx, "udp", silent.LocalAddr().String())
	require.ErrorIs(t, err, context.Canceled)

	settle := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(settle) {
		time.Sleep(10 * time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), goroutines, "goroutines left by the canceled dials")
}

// Conclusions with a good cookie but fields out of range: each is dropped
// (no answer, no connection, counted) or refused (version, socket type),
// and the listener takes a well-formed request from the same client
// afterwards. A huge flow window is accepted and capped.
func TestHostileHandshakes(t *testing.T) {
	ln := listenRaw(t, Config{})
	r := newRawClient(t, ln.Addr())
	id := uint32(100)
	// conclude sends the cookie request and a conclusion patched by f.
	conclude := func(f func(*handshake)) (handshake, bool) {
		id++
		req := r.request(id)
		r.send(&req)
		_, reply, ok := r.recv(2 * time.Second)
		require.True(t, ok, "no cookie")
		req.reqType, req.cookie = reqConclusion, reply.cookie
		f(&req)
		r.send(&req)
		_, h, ok := r.recv(300 * time.Millisecond)
		return h, ok
	}
	for _, tc := range []struct {
		name  string
		patch func(*handshake)
	}{
		{"MSS 0", func(h *handshake) { h.mss = 0 }},
		{"MSS 75", func(h *handshake) { h.mss = 75 }},
		{"MSS 65537", func(h *handshake) { h.mss = 65537 }},
		{"MSS 2^32-1", func(h *handshake) { h.mss = 1<<32 - 1 }},
		{"flow window 0", func(h *handshake) { h.window = 0 }},
		{"ISN 2^31", func(h *handshake) { h.isn = 1 << 31 }},
		{"ISN 2^32-1", func(h *handshake) { h.isn = 1<<32 - 1 }},
		{"socket ID 0", func(h *handshake) { h.socketID = 0 }},
		{"socket ID top bit", func(h *handshake) { h.socketID |= 1 << 31 }},
		{"request type 5", func(h *handshake) { h.reqType = 5 }},
		{"request type -3", func(h *handshake) { h.reqType = -3 }},
		{"request type 1002", func(h *handshake) { h.reqType = reqRefused }},
	} {
		dropped := ln.Metrics().Dropped.Malformed
		_, answered := conclude(tc.patch)
		require.False(t, answered, "%s: answered", tc.name)
		require.Greater(t, ln.Metrics().Dropped.Malformed, dropped, "%s: not counted", tc.name)
	}
	for _, tc := range []struct {
		name  string
		patch func(*handshake)
	}{
		{"version 0", func(h *handshake) { h.version = 0 }},
		{"version 5", func(h *handshake) { h.version = 5 }},
		{"socket type 7", func(h *handshake) { h.sockType = 7 }},
	} {
		h, answered := conclude(tc.patch)
		require.True(t, answered, tc.name)
		require.Equal(t, int32(reqRefused), h.reqType, tc.name)
	}
	require.Empty(t, ln.accept, "a bad handshake made a connection")

	// A huge flow window is taken, capped.
	h, ok := conclude(func(h *handshake) { h.window = 1<<32 - 1 })
	require.True(t, ok)
	require.Equal(t, int32(reqConclusion), h.reqType)
	s, err := ln.AcceptUDT()
	require.NoError(t, err)
	defer s.Close()
	s.mu.Lock()
	window := s.snd.flowWindow
	s.mu.Unlock()
	require.LessOrEqual(t, window, 1<<30)
}
