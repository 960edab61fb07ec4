package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udt-go/udt"
)

// serve runs tests for the clients of the control listener ln, one at a
// time, until ctx ends; it closes ln. A client that comes during a test is
// told the server is busy. Each test's UDT listener binds the same port
// number on ln's address, for the test's length; tracer, if not nil,
// traces its connections.
func serve(ctx context.Context, ln net.Listener, out *output, tracer func(udt.TraceInfo) *udt.ConnTracer) error {
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	addr := ln.Addr().(*net.TCPAddr)
	host := ""
	if !addr.IP.IsUnspecified() {
		host = addr.IP.String()
	}
	s := &perfServer{udtAddr: net.JoinHostPort(host, strconv.Itoa(addr.Port)), out: out, tracer: tracer,
		busy: make(chan struct{}, 1)}
	// Each test binds the UDP port anew: one taken by another program
	// fails here, before the server says it is listening, not when the
	// first client comes.
	if err := checkUDPPort(s.udtAddr); err != nil {
		return err
	}
	out.listening(addr.Port)
	defer s.wg.Wait()
	for {
		c, err := accept(ctx, ln)
		if c == nil {
			return err
		}
		s.handle(ctx, c)
	}
}

// accept returns ln's next connection; nil and nil once ctx has ended, nil
// and the error once ln is closed otherwise.
func accept(ctx context.Context, ln net.Listener) (net.Conn, error) {
	for {
		c, err := ln.Accept()
		switch {
		case err == nil:
			return c, nil
		case ctx.Err() != nil:
			return nil, nil
		case errors.Is(err, net.ErrClosed):
			return nil, err
		}
		// Out of file descriptors, say: wait a little, as net/http does.
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// perfServer is what serve's control connections share.
type perfServer struct {
	udtAddr string // where each test's UDT listener binds
	out     *output
	tracer  func(udt.TraceInfo) *udt.ConnTracer // may be nil
	busy    chan struct{}                       // holds a token while a test runs; capacity 1
	wg      sync.WaitGroup                      // the connections' goroutines
}

// handle runs a test on the control connection c, on a goroutine of its
// own, or tells the client the server is busy.
func (s *perfServer) handle(ctx context.Context, c net.Conn) {
	peer := c.RemoteAddr().String()
	select {
	case s.busy <- struct{}{}:
		s.wg.Go(func() {
			release := sync.OnceFunc(func() { <-s.busy })
			defer release()
			defer c.Close()
			// The next test may start once this one has sent its result.
			err := runTest(ctx, c, s.udtAddr, s.tracer, func(rep serverTestReport) {
				rep.Peer = peer
				s.out.serverTest(rep)
				release()
			}, release)
			if err != nil {
				s.out.serverError(peer, err)
			}
		})
	default:
		s.wg.Go(func() {
			defer c.Close()
			ct := newControl(c)
			_ = ct.write("ERROR reason=busy with another test\n")
		})
	}
}

// serverStream is one UDT connection of a test.
type serverStream struct {
	c        *udt.Conn
	expected atomic.Int64 // bytes the client sent on it; -1 until its SENT line

	// Owned by the stream's reader until it returns.
	bytes, msgs int64
	first, last time.Time // first and last data read
	err         error
}

// read counts what arrives until the client's count is reached, the
// stream ends, or hard passes. A deadline in the past (see wake) makes it
// look at expected again.
func (s *serverStream) read(buf []byte, message bool, hard time.Time) {
	_ = s.c.SetReadDeadline(hard)
	for {
		n, err := s.c.Read(buf)
		if n > 0 {
			now := time.Now()
			if s.bytes == 0 {
				s.first = now
			}
			s.last = now
			s.bytes += int64(n)
			if message {
				s.msgs++
			}
		}
		if exp := s.expected.Load(); exp >= 0 && s.bytes >= exp {
			return
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(hard):
			_ = s.c.SetReadDeadline(hard)
		case errors.Is(err, io.EOF):
			return
		default:
			s.err = err
			return
		}
	}
}

// wake makes a blocked read look at expected.
func (s *serverStream) wake() { _ = s.c.SetReadDeadline(time.Now()) }

func closeStreams(streams []*serverStream) {
	var wg sync.WaitGroup
	for _, s := range streams {
		if s != nil {
			wg.Go(func() { _ = s.c.Close() })
		}
	}
	wg.Wait()
}

// parseParams checks a client's UDTPERF line.
func parseParams(m message) (params, error) {
	var p params
	v, err := m.int("version", 0, 1<<31)
	if err != nil {
		return p, err
	}
	if v != protoVersion {
		return p, fmt.Errorf("protocol version %d, this server speaks %d", v, protoVersion)
	}
	n, err := m.int("streams", 1, maxStreams)
	if err != nil {
		return p, err
	}
	p.streams = int(n)
	if p.secs, err = m.float("secs"); err != nil {
		return p, err
	}
	if p.secs <= 0 || p.secs > maxSecs {
		return p, fmt.Errorf("secs=%g: must be more than 0 and at most %d", p.secs, maxSecs)
	}
	if n, err = m.int("mss", minMSS, maxMSS); err != nil {
		return p, err
	}
	p.mss = int(n)
	if n, err = m.int("msg", 0, maxMessageSize); err != nil {
		return p, err
	}
	p.msg = int(n)
	p.impl = m.fields["impl"]
	if p.impl == "" {
		p.impl = "?"
	}
	return p, nil
}

// runTest serves one test on the control connection ctlConn. Once it has
// sent the result it calls done with its report, then waits for the
// client to hang up. A test that fails calls release, with its sockets
// closed, before it tells the client why: the server takes the next test
// from then on. tracer, if not nil, traces the test's connections.
func runTest(ctx context.Context, ctlConn net.Conn, udtAddr string, tracer func(udt.TraceInfo) *udt.ConnTracer,
	done func(serverTestReport), release func()) error {
	// Ending ctx ends the test: control reads fail at once.
	stop := context.AfterFunc(ctx, func() { _ = ctlConn.SetDeadline(time.Now()) })
	defer stop()
	t := &serverTest{ct: newControl(ctlConn), release: release}
	m, err := t.ct.expect("UDTPERF", time.Now().Add(ctlTimeout))
	if err != nil {
		return t.fail(err)
	}
	p, err := parseParams(m)
	if err != nil {
		return t.fail(err)
	}
	sock, err := t.listen(ctx, p, udtAddr, tracer)
	if err != nil {
		return t.fail(err)
	}
	defer sock.close() // after the streams' close, deferred below
	stopLn := context.AfterFunc(ctx, func() { _ = t.ln.Close() })
	defer stopLn()

	cpu0 := cpuSeconds()
	if err := t.acceptStreams(p); err != nil {
		return t.fail(err)
	}
	defer closeStreams(t.streams)
	_ = t.ln.Close() // every stream is in: no more connections for this test

	doneBy := t.startReaders(p)
	if err := t.awaitCounts(p, doneBy); err != nil {
		return t.fail(err)
	}
	if err := t.drain(ctx); err != nil {
		return t.fail(err)
	}
	rep := serverTestReport{Client: p.impl, Mode: modeName(p.msg), Streams: p.streams}
	err = t.sendResult(p, cpuSeconds()-cpu0, &rep)
	if err == nil {
		// Before END, which lets the client go on to its next test.
		done(rep)
		err = t.ct.write("END\n")
	}
	if err != nil {
		return t.fail(err)
	}
	t.awaitHangUp()
	return nil
}

// serverTest is the state of one test on the server, which fail undoes.
// It belongs to runTest's goroutine.
type serverTest struct {
	ct       *control
	release  func() // lets the next test start
	ln       *udt.Listener
	streams  []*serverStream
	readDone chan struct{} // closed when the readers have returned
}

// fail closes the test's listener and streams, waits for the readers,
// releases the server and tells the client why the test failed; it
// returns err.
func (t *serverTest) fail(err error) error {
	if t.ln != nil {
		_ = t.ln.Close()
	}
	closeStreams(t.streams)
	if t.readDone != nil {
		<-t.readDone
	}
	t.release()
	_ = t.ct.write("ERROR reason=" + strings.ReplaceAll(err.Error(), "\n", " ") + "\n")
	return err
}

// listen opens the test's UDT listener on udtAddr; with -transport it
// returns the socket of its own, to close after the streams.
func (t *serverTest) listen(ctx context.Context, p params, udtAddr string, tracer func(udt.TraceInfo) *udt.ConnTracer) (*ownSocket, error) {
	cfg := udt.Config{MSS: p.mss, Tracer: tracer}
	if p.msg > 0 {
		cfg.Type = udt.TypeMessage
	}
	ln, sock, err := listenUDT(ctx, cfg, udtAddr)
	if err != nil {
		return nil, err
	}
	t.ln = ln
	return sock, nil
}

// acceptStreams tells the client the test's id and accepts its streams.
func (t *serverTest) acceptStreams(p params) error {
	id := rand.Uint32()
	if err := t.ct.write(fmt.Sprintf("READY id=%d impl=%s\n", id, impl)); err != nil {
		return err
	}
	streams, err := acceptStreams(t.ln, id, p, time.Now().Add(acceptTimeout))
	if err != nil {
		return err
	}
	t.streams = streams
	return nil
}

// startReaders starts a reader on each stream and returns when the
// client's counts are due: within its time plus a margin. The reads get
// the drain time on top.
func (t *serverTest) startReaders(p params) (doneBy time.Time) {
	secs := time.Duration(p.secs * float64(time.Second))
	doneBy = time.Now().Add(secs + ctlTimeout + drainTimeout)
	hard := doneBy.Add(drainTimeout)
	var readers sync.WaitGroup
	for _, s := range t.streams {
		buf := make([]byte, max(p.msg, 1<<20))
		readers.Go(func() { s.read(buf, p.msg > 0, hard) })
	}
	t.readDone = make(chan struct{})
	go func() {
		readers.Wait()
		close(t.readDone)
	}()
	return doneBy
}

// awaitCounts reads the client's SENT lines, handing each count to its
// stream's reader, until DONE.
func (t *serverTest) awaitCounts(p params, doneBy time.Time) error {
	for {
		m, err := t.ct.read(doneBy)
		if err != nil {
			return fmt.Errorf("waiting for the client's counts: %w", err)
		}
		switch m.verb {
		case "SENT":
			idx, err := m.int("index", 0, int64(p.streams-1))
			if err != nil {
				return err
			}
			n, err := m.int("bytes", 0, 1<<62)
			if err != nil {
				return err
			}
			t.streams[idx].expected.Store(n)
			t.streams[idx].wake()
		case "DONE":
			return nil
		default:
			return fmt.Errorf("control: got %s, want SENT or DONE", m.verb)
		}
	}
}

// drain waits for the readers to have everything the client sent, for
// drainTimeout at most: then it closes the streams, to report what came.
func (t *serverTest) drain(ctx context.Context) error {
	timer := time.NewTimer(drainTimeout)
	defer timer.Stop()
	select {
	case <-t.readDone:
	case <-timer.C:
		closeStreams(t.streams) // short: report what came
		<-t.readDone
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// sendResult fills rep with what the streams read and the CPU seconds
// cpu, and sends the client the RESULT and STREAM lines.
func (t *serverTest) sendResult(p params, cpu float64, rep *serverTestReport) error {
	var first, last time.Time
	for _, s := range t.streams {
		if s.bytes == 0 {
			continue
		}
		if first.IsZero() || s.first.Before(first) {
			first = s.first
		}
		if s.last.After(last) {
			last = s.last
		}
	}
	rep.Duration = last.Sub(first).Seconds()
	err := t.ct.write(fmt.Sprintf("RESULT streams=%d secs=%.6f cpu=%.6f impl=%s\n", p.streams, rep.Duration, cpu, impl))
	for i, s := range t.streams {
		if err == nil {
			err = t.ct.write(fmt.Sprintf("STREAM index=%d bytes=%d msgs=%d secs=%.6f\n", i, s.bytes, s.msgs, s.last.Sub(s.first).Seconds()))
		}
		rep.Bytes += s.bytes
		rep.Messages += s.msgs
	}
	rep.GoodputMbps = mbps(rep.Bytes, rep.Duration)
	if rep.Duration > 0 {
		rep.MsgsPerSec = float64(rep.Messages) / rep.Duration
	}
	rep.CPU, rep.CPUPerGB = cpu, perGB(cpu, rep.Bytes)
	return err
}

// awaitHangUp waits for the client to hang up: it takes its last figures
// from its streams first, and closing them before would end its
// connections under it.
func (t *serverTest) awaitHangUp() {
	for until := time.Now().Add(ctlTimeout); ; {
		if _, err := t.ct.read(until); err != nil {
			return
		}
	}
}

// acceptStreams accepts the test's p.streams connections by deadline,
// each with a hello for test id; it closes connections with another.
func acceptStreams(ln *udt.Listener, id uint32, p params, deadline time.Time) ([]*serverStream, error) {
	streams := make([]*serverStream, p.streams)
	_ = ln.SetDeadline(deadline)
	b := make([]byte, helloSize)
	for got := 0; got < p.streams; {
		c, err := ln.AcceptUDT()
		if err != nil {
			closeStreams(streams)
			return nil, fmt.Errorf("accepting stream %d of %d: %w", got+1, p.streams, err)
		}
		helloBy := time.Now().Add(ctlTimeout)
		if deadline.Before(helloBy) {
			helloBy = deadline
		}
		_ = c.SetReadDeadline(helloBy)
		var n int
		if p.msg > 0 {
			n, err = c.Read(b) // one message
		} else {
			n, err = io.ReadFull(c, b)
		}
		gotID, idx, ok := parseHello(b[:n])
		if err != nil || !ok || gotID != id || idx >= p.streams || streams[idx] != nil {
			_ = c.Close()
			continue
		}
		_ = c.SetReadDeadline(time.Time{})
		streams[idx] = &serverStream{c: c}
		streams[idx].expected.Store(-1)
		got++
	}
	return streams, nil
}

// checkUDPPort reports an error if the UDP address addr cannot be bound.
func checkUDPPort(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("UDP port for the UDT data: %w", err)
	}
	return pc.Close()
}

// listenUDT listens on addr, retrying for a moment while the address is in
// use: the previous test's last connection may be closing the socket. With
// -transport it listens through a Transport on a socket of its own, which
// it returns, to close after the connections.
func listenUDT(ctx context.Context, cfg udt.Config, addr string) (*udt.Listener, *ownSocket, error) {
	if useTransport {
		la, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		s, err := openTransport(ctx, "udp", la)
		if err != nil {
			return nil, nil, err
		}
		ln, err := s.tr.Listen(cfg)
		if err != nil {
			s.close()
			return nil, nil, err
		}
		return ln, s, nil
	}
	lc := udt.ListenConfig{Config: cfg}
	ln, err := retryInUse(ctx, func() (*udt.Listener, error) { return lc.ListenUDT(ctx, "udp", addr) })
	return ln, nil, err
}
