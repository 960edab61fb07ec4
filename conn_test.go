package udt_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/harness"
)

func TestStreamBothWays(t *testing.T) {
	_, c, s := harness.Pair(t, udt.Config{})
	data := make([]byte, 8<<20)
	_, _ = rand.Read(data)
	want := sha256.Sum256(data)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		errc <- err
	}()
	got := make([]byte, len(data))
	_, err := io.ReadFull(s, got)
	require.NoError(t, err)
	require.NoError(t, <-errc)
	require.Equal(t, want, sha256.Sum256(got))

	// And back.
	go func() {
		_, err := s.Write(data[:1<<20])
		errc <- err
	}()
	_, err = io.ReadFull(c, got[:1<<20])
	require.NoError(t, err)
	require.NoError(t, <-errc)
	require.True(t, bytes.Equal(data[:1<<20], got[:1<<20]))
}

func TestCloseGivesEOF(t *testing.T) {
	_, c, s := harness.Pair(t, udt.Config{})
	msg := []byte("hello, udt")
	_, err := c.Write(msg)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	got, err := io.ReadAll(s)
	require.NoError(t, err)
	require.Equal(t, msg, got)
}

func TestDeadlines(t *testing.T) {
	_, c, _ := harness.Pair(t, udt.Config{})
	require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	start := time.Now()
	_, err := c.Read(make([]byte, 10))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout())
	require.Less(t, time.Since(start), 2*time.Second)

	// A deadline moved while Read blocks takes effect.
	require.NoError(t, c.SetReadDeadline(time.Time{}))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, c.SetReadDeadline(time.Now()))
	select {
	case err := <-errc:
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	case <-time.After(2 * time.Second):
		t.Fatal("Read did not return after its deadline passed")
	}

	// Write blocks once the peer stops reading and both buffers fill up.
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(300*time.Millisecond)))
	big := make([]byte, 64<<20)
	n, err := c.Write(big)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.Less(t, n, len(big))
}

func TestUseAfterClose(t *testing.T) {
	_, c, s := harness.Pair(t, udt.Config{})
	require.NoError(t, c.Close())
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, net.ErrClosed)
	_, err = c.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed)
	require.ErrorIs(t, c.SetDeadline(time.Now()), net.ErrClosed)
	require.ErrorIs(t, c.Close(), net.ErrClosed)
	var op *net.OpError
	require.True(t, errors.As(err, &op))
	require.Equal(t, "udt", op.Net)

	// The peer sees EOF, then writing fails with ErrPeerClosed.
	_, err = s.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
	_, err = s.Write([]byte("x"))
	require.ErrorIs(t, err, udt.ErrPeerClosed)
}

func TestCloseUnblocksRead(t *testing.T) {
	_, c, _ := harness.Pair(t, udt.Config{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, c.Close())
	select {
	case err := <-errc:
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}

func TestAddrs(t *testing.T) {
	ln, c, s := harness.Pair(t, udt.Config{})
	require.Equal(t, ln.Addr().String(), c.RemoteAddr().String())
	require.Equal(t, c.LocalAddr().String(), s.RemoteAddr().String())
	require.Equal(t, ln.Addr().String(), s.LocalAddr().String())
	_, ok := c.LocalAddr().(*net.UDPAddr)
	require.True(t, ok)
}

func TestListenerClose(t *testing.T) {
	ln, c, s := harness.Pair(t, udt.Config{})
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, ln.Close())
	select {
	case err := <-errc:
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Accept")
	}
	_, err := ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed)

	// Accepted connections live on.
	_, err = c.Write([]byte("still here"))
	require.NoError(t, err)
	buf := make([]byte, 10)
	_, err = io.ReadFull(s, buf)
	require.NoError(t, err)
	require.Equal(t, "still here", string(buf))
}

// TestManyConnectionsOneMultiplexer opens 1,000 connections through one
// listener port (the clients share one port too), keeps them all open, and
// has each exchange 1 MiB each way. At most 10 transfers run at a time so
// the kernel's UDP buffer, not the protocol, stays out of the picture.
func TestManyConnectionsOneMultiplexer(t *testing.T) {
	n, size := 1000, 1<<20
	if testing.Short() {
		n = 100
	}
	ln, err := udt.Listen("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	wg.Go(func() {
		for range n {
			s, err := ln.Accept()
			if err != nil {
				errs <- err
				return
			}
			wg.Go(func() {
				defer s.Close()
				// Echo: read the client's MiB, then send it back.
				buf := make([]byte, size)
				if _, err := io.ReadFull(s, buf); err != nil {
					errs <- fmt.Errorf("server read: %w", err)
					return
				}
				if _, err := s.Write(buf); err != nil {
					errs <- fmt.Errorf("server write: %w", err)
				}
			})
		}
	})

	laddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	first, err := (&udt.Dialer{LocalAddr: laddr}).DialUDT(ctx, "udp", ln.Addr().String())
	require.NoError(t, err)
	d := udt.Dialer{LocalAddr: first.LocalAddr().(*net.UDPAddr)}
	conns := make([]*udt.Conn, n)
	conns[0] = first
	var dials sync.WaitGroup
	sem := make(chan struct{}, 100)
	for i := 1; i < n; i++ {
		dials.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := d.DialUDT(ctx, "udp", ln.Addr().String())
			if err != nil {
				errs <- fmt.Errorf("dial %d: %w", i, err)
				return
			}
			conns[i] = c
		})
	}
	dials.Wait()
	for _, c := range conns {
		require.NotNil(t, c)
		require.Equal(t, first.LocalAddr().String(), c.LocalAddr().String(), "clients share one port")
	}

	active := make(chan struct{}, 10)
	for i, c := range conns {
		wg.Go(func() {
			active <- struct{}{}
			defer func() { <-active }()
			defer c.Close()
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(i + j*7)
			}
			go func() { _, _ = c.Write(data) }()
			got := make([]byte, size)
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- fmt.Errorf("client %d read: %w", i, err)
				return
			}
			if !bytes.Equal(data, got) {
				errs <- fmt.Errorf("client %d: echoed data differs", i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// TestListenerAndDialsShareAPort: each of two peers listens on a port and
// dials the other from that same port; one UDP socket per peer carries it all.
func TestListenerAndDialsShareAPort(t *testing.T) {
	var lc udt.ListenConfig
	a, err := lc.ListenUDT(t.Context(), "udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer a.Close()
	b, err := lc.ListenUDT(t.Context(), "udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer b.Close()

	fromA := udt.Dialer{LocalAddr: a.Addr().(*net.UDPAddr)}
	fromB := udt.Dialer{LocalAddr: b.Addr().(*net.UDPAddr)}
	ab, err := fromA.DialUDT(t.Context(), "udp", b.Addr().String())
	require.NoError(t, err)
	defer ab.Close()
	ba, err := fromB.DialUDT(t.Context(), "udp", a.Addr().String())
	require.NoError(t, err)
	defer ba.Close()
	require.Equal(t, a.Addr().String(), ab.LocalAddr().String())
	require.Equal(t, b.Addr().String(), ba.LocalAddr().String())

	atB, err := b.AcceptUDT()
	require.NoError(t, err)
	defer atB.Close()
	atA, err := a.AcceptUDT()
	require.NoError(t, err)
	defer atA.Close()
	require.Equal(t, a.Addr().String(), atB.RemoteAddr().String())

	for _, p := range []struct {
		w, r net.Conn
		msg  string
	}{{ab, atB, "a to b"}, {ba, atA, "b to a"}, {atB, ab, "b back to a"}, {atA, ba, "a back to b"}} {
		_, err := p.w.Write([]byte(p.msg))
		require.NoError(t, err)
		buf := make([]byte, len(p.msg))
		_, err = io.ReadFull(p.r, buf)
		require.NoError(t, err)
		require.Equal(t, p.msg, string(buf))
	}

	// A second listener on a taken address is refused.
	_, err = lc.ListenUDT(t.Context(), "udp", a.Addr().String())
	require.Error(t, err)
}

// A dial to port 0 fails at once, naming the port, rather than waiting
// out the handshake's timeout.
func TestDialPortZero(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", ":0"} {
		start := time.Now()
		_, err := udt.Dial("udp", addr)
		require.ErrorContains(t, err, "port 0", addr)
		require.Less(t, time.Since(start), time.Second, addr)
	}
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer uc.Close()
	tr, err := udt.NewTransport(uc)
	require.NoError(t, err)
	defer tr.Close()
	_, err = tr.Dial(t.Context(), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, udt.Config{})
	require.ErrorContains(t, err, "port 0")
}

// A dial whose context's deadline passes first fails with an error that
// matches context.DeadlineExceeded, as net's dial errors do, and
// ErrHandshakeTimeout, and says it is a timeout.
func TestDialContextDeadline(t *testing.T) {
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer silent.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = udt.DialContext(ctx, "udp", silent.LocalAddr().String())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, udt.ErrHandshakeTimeout)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout())

	// Config.ConnectTimeout running out first: a timeout, not the
	// context's.
	d := udt.Dialer{Config: udt.Config{ConnectTimeout: 200 * time.Millisecond}}
	_, err = d.DialContext(t.Context(), "udp", silent.LocalAddr().String())
	require.ErrorIs(t, err, udt.ErrHandshakeTimeout)
	require.NotErrorIs(t, err, context.DeadlineExceeded)
}

var (
	_ io.ReaderFrom = (*udt.Conn)(nil)
	_ io.WriterTo   = (*udt.Conn)(nil)
)

// TestIOCopyBothEnds: io.Copy into a connection reads the source into its
// send buffer (ReadFrom), and io.Copy out of one hands the destination
// the received payloads (WriteTo), which ends with a nil error at the
// peer's shutdown.
func TestIOCopyBothEnds(t *testing.T) {
	_, c, s := harness.Pair(t, udt.Config{})
	data := make([]byte, 8<<20+12345)
	_, _ = rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		n, err := io.Copy(c, struct{ io.Reader }{bytes.NewReader(data)}) // Read only: ReadFrom, not WriteTo
		if err == nil && n != int64(len(data)) {
			err = fmt.Errorf("ReadFrom sent %d bytes of %d", n, len(data))
		}
		if err == nil {
			err = c.Close()
		}
		errc <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, s)
	require.NoError(t, err)
	require.NoError(t, <-errc)
	require.Equal(t, int64(len(data)), n)
	require.Equal(t, sha256.Sum256(data), [32]byte(h.Sum(nil)))
}

// TestReadFromSendsAsItComes: ReadFrom sends what a reader that trickles
// has given without waiting for more; WriteTo passes on a destination's
// error.
func TestReadFromSendsAsItComes(t *testing.T) {
	_, c, s := harness.Pair(t, udt.Config{})
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadFrom(pr)
		done <- err
	}()
	_, err := pw.Write([]byte("hello"))
	require.NoError(t, err)
	require.NoError(t, s.SetReadDeadline(time.Now().Add(5*time.Second)))
	got := make([]byte, 5)
	_, err = io.ReadFull(s, got)
	require.NoError(t, err, "the first bytes waited for more")
	require.Equal(t, "hello", string(got))
	boom := errors.New("boom")
	require.NoError(t, pw.CloseWithError(boom))
	require.ErrorIs(t, <-done, boom)

	// WriteTo: the destination fails.
	_, err = c.Write([]byte("more"))
	require.NoError(t, err)
	require.NoError(t, s.SetReadDeadline(time.Time{}))
	_, err = s.WriteTo(failingWriter{boom})
	require.ErrorIs(t, err, boom)
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// TestIOCopyMessages: on a message connection io.Copy sends each read of
// its source as a message and writes each message it receives whole.
func TestIOCopyMessages(t *testing.T) {
	_, c, s := harness.Pair(t, udt.Config{Type: udt.TypeMessage})
	msgs := [][]byte{[]byte("one"), bytes.Repeat([]byte("two"), 1000), []byte("three")}
	errc := make(chan error, 1)
	go func() {
		pr, pw := io.Pipe()
		go func() {
			for _, m := range msgs {
				_, _ = pw.Write(m) // each Write one Read of the pipe's reader
			}
			pw.Close()
		}()
		_, err := io.Copy(c, pr)
		if err == nil {
			err = c.Close()
		}
		errc <- err
	}()
	var got [][]byte
	_, err := io.Copy(writerFunc(func(b []byte) (int, error) {
		got = append(got, bytes.Clone(b))
		return len(b), nil
	}), s)
	require.NoError(t, err)
	require.NoError(t, <-errc)
	require.Equal(t, msgs, got)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
