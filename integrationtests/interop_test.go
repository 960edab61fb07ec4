package integrationtests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/harness"
	"github.com/udt-go/udt/internal/interop"
)

const interopBytes = 64 << 20

// sendPattern writes n pattern bytes to c and closes it, returning the hash.
func sendPattern(t *testing.T, c net.Conn, seed uint64, n int64) string {
	t.Helper()
	h := sha256.New()
	_, err := io.Copy(io.MultiWriter(c, h), interop.PatternReader(seed, n))
	require.NoError(t, err)
	require.NoError(t, c.Close())
	return hex.EncodeToString(h.Sum(nil))
}

// recvAll reads c to EOF, returning the byte count and hash.
func recvAll(t *testing.T, c net.Conn) (int64, string) {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, c)
	require.NoError(t, err)
	return n, hex.EncodeToString(h.Sum(nil))
}

func TestInteropGoClientCppServer(t *testing.T) {
	interop.BuildPeer(t)
	want := interop.SHA256Pattern(1, interopBytes)

	t.Run("go sends", func(t *testing.T) {
		srv := interop.Start(t, "server", "-port", "0", "-mode", "recv")
		port := srv.ListenPort(10 * time.Second)
		c, err := udt.Dial("udp", "127.0.0.1:"+strconv.Itoa(port))
		require.NoError(t, err)
		require.Equal(t, want, sendPattern(t, c, 1, interopBytes))
		srv.RequireDone(t, want, int64(interopBytes))
	})
	t.Run("go receives", func(t *testing.T) {
		srv := interop.Start(t, "server", "-port", "0", "-mode", "send", "-bytes", strconv.Itoa(interopBytes))
		port := srv.ListenPort(10 * time.Second)
		c, err := udt.Dial("udp", "127.0.0.1:"+strconv.Itoa(port))
		require.NoError(t, err)
		n, sum := recvAll(t, c)
		require.NoError(t, c.Close())
		require.Equal(t, int64(interopBytes), n)
		require.Equal(t, want, sum)
		srv.RequireDone(t, want, -1)
	})
}

func portOf(a net.Addr) string { return strconv.Itoa(a.(*net.UDPAddr).Port) }

func TestInteropCppClientGoServer(t *testing.T) {
	interop.BuildPeer(t)
	want := interop.SHA256Pattern(1, interopBytes)

	t.Run("cpp sends", func(t *testing.T) {
		ln := harness.Listen(t, udt.Config{})
		cli := interop.Start(t, "client", "-host", "127.0.0.1", "-port", portOf(ln.Addr()), "-mode", "send", "-bytes", strconv.Itoa(interopBytes))
		c, err := ln.Accept()
		require.NoError(t, err)
		n, sum := recvAll(t, c)
		require.NoError(t, c.Close())
		require.Equal(t, int64(interopBytes), n)
		require.Equal(t, want, sum)
		cli.RequireDone(t, want, -1)
	})
	t.Run("cpp receives", func(t *testing.T) {
		ln := harness.Listen(t, udt.Config{})
		cli := interop.Start(t, "client", "-host", "127.0.0.1", "-port", portOf(ln.Addr()), "-mode", "recv")
		c, err := ln.Accept()
		require.NoError(t, err)
		require.Equal(t, want, sendPattern(t, c, 1, interopBytes))
		cli.RequireDone(t, want, int64(interopBytes))
	})
}

// TestInteropCppJoinsBusyListener has a C++ client dial a Go listener
// whose port already carries 50 open Go connections, all still working.
func TestInteropCppJoinsBusyListener(t *testing.T) {
	interop.BuildPeer(t)
	ln := harness.Listen(t, udt.Config{})
	const goConns = 50
	var wg sync.WaitGroup
	defer wg.Wait()
	var goClients []net.Conn
	for range goConns {
		c, err := udt.Dial("udp", ln.Addr().String())
		require.NoError(t, err)
		goClients = append(goClients, c)
		s, err := ln.Accept()
		require.NoError(t, err)
		wg.Go(func() {
			defer s.Close()
			_, _ = io.Copy(s, s) // echo until the client closes
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for i, c := range goClients {
		wg.Go(func() {
			defer c.Close()
			msg := []byte(fmt.Sprintf("ping %d", i))
			buf := make([]byte, len(msg))
			for ctx.Err() == nil {
				if _, err := c.Write(msg); err != nil {
					t.Errorf("go client %d: %v", i, err)
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != string(msg) {
					t.Errorf("go client %d: echo %q, %v", i, buf, err)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}

	const n = 8 << 20
	cli := interop.Start(t, "client", "-host", "127.0.0.1", "-port", portOf(ln.Addr()), "-mode", "send", "-bytes", strconv.Itoa(n), "-seed", "7")
	c, err := ln.Accept()
	require.NoError(t, err)
	got, sum := recvAll(t, c)
	require.NoError(t, c.Close())
	require.Equal(t, int64(n), got)
	require.Equal(t, interop.SHA256Pattern(7, n), sum)
	require.NoError(t, cli.Wait(30*time.Second))
	cancel()
}

// TestInteropSequentialDialsClosedAtOnce: 200 C++ dials in a row to a Go
// listener that closes every accepted connection at once. Every dial
// completes, and none waits for a timeout.
func TestInteropSequentialDialsClosedAtOnce(t *testing.T) {
	interop.BuildPeer(t)
	ln := harness.Listen(t, udt.Config{})
	const dials = 200
	var wg sync.WaitGroup
	defer wg.Wait()
	// A failed check ends the test at once: the listener's close ends the
	// accept loop that wg waits for.
	defer ln.Close()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	})
	cli := interop.Start(t, "client", "-host", "127.0.0.1", "-port", portOf(ln.Addr()), "-count", strconv.Itoa(dials))
	var slowest time.Duration
	for i := range dials {
		line, err := cli.WaitLine("CONNECTED ", 10*time.Second)
		require.NoError(t, err, "dial %d", i)
		_, took, err := interop.ParseConnected(line)
		require.NoError(t, err)
		slowest = max(slowest, took)
	}
	require.NoError(t, cli.Wait(30*time.Second))
	require.Less(t, slowest, time.Second, "a dial waited for a retransmission or timeout")
	t.Logf("%d dials, slowest %v", dials, slowest)
	require.NoError(t, ln.Close())
}

// TestInteropIPv6 runs both directions over ::1: the handshake's 16-byte
// peer-IP field must be right for the C++ library to connect.
func TestInteropIPv6(t *testing.T) {
	interop.BuildPeer(t)
	const n = 8 << 20
	want := interop.SHA256Pattern(3, n)

	t.Run("go dials", func(t *testing.T) {
		srv := interop.Start(t, "server", "-host", "::1", "-port", "0", "-mode", "recv")
		port := srv.ListenPort(10 * time.Second)
		c, err := udt.Dial("udp6", "[::1]:"+strconv.Itoa(port))
		require.NoError(t, err)
		require.Equal(t, want, sendPattern(t, c, 3, n))
		srv.RequireDone(t, want, -1)
	})
	t.Run("cpp dials", func(t *testing.T) {
		var lc udt.ListenConfig
		ln, err := lc.ListenUDT(t.Context(), "udp6", "[::1]:0")
		require.NoError(t, err)
		defer ln.Close()
		cli := interop.Start(t, "client", "-host", "::1", "-port", portOf(ln.Addr()), "-mode", "send", "-bytes", strconv.Itoa(n), "-seed", "3")
		c, err := ln.Accept()
		require.NoError(t, err)
		got, sum := recvAll(t, c)
		require.NoError(t, c.Close())
		require.Equal(t, int64(n), got)
		require.Equal(t, want, sum)
		require.NoError(t, cli.Wait(30*time.Second))
	})
}

// TestInteropTransport: a Go Transport on the caller's socket talks to the
// C++ library both ways on that one socket: it dials a C++ server and
// sends, and its listener takes a C++ client that sends, at once.
func TestInteropTransport(t *testing.T) {
	interop.BuildPeer(t)
	const n = 16 << 20
	want := interop.SHA256Pattern(1, n)
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer uc.Close()
	tr, err := udt.NewTransport(uc)
	require.NoError(t, err)
	defer tr.Close()
	ln, err := tr.Listen(udt.Config{})
	require.NoError(t, err)
	defer ln.Close()

	srv := interop.Start(t, "server", "-port", "0", "-mode", "recv")
	cli := interop.Start(t, "client", "-host", "127.0.0.1", "-port", portOf(uc.LocalAddr()), "-mode", "send", "-bytes", strconv.Itoa(n))
	port := srv.ListenPort(10 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := tr.Dial(ctx, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}, udt.Config{})
	require.NoError(t, err)
	type result struct {
		sum string
		err error
	}
	sent := make(chan result, 1)
	go func() {
		h := sha256.New()
		_, err := io.Copy(io.MultiWriter(c, h), interop.PatternReader(1, n))
		if cerr := c.Close(); err == nil {
			err = cerr
		}
		sent <- result{hex.EncodeToString(h.Sum(nil)), err}
	}()
	s, err := ln.Accept()
	require.NoError(t, err)
	got, sum := recvAll(t, s)
	require.NoError(t, s.Close())
	require.Equal(t, int64(n), got)
	require.Equal(t, want, sum, "from the C++ client")
	r := <-sent
	require.NoError(t, r.err)
	require.Equal(t, want, r.sum)
	srv.RequireDone(t, want, -1)
	cli.RequireDone(t, want, -1)
}

// TestInteropSlowCppReader has a C++ receiver with a 32-packet buffer stop
// reading for 6 s, three times the Go sender's PeerIdleTimeout of 2 s: its
// buffer fills, the Go sender probes it with the floor window's two
// packets, and the C++ receiver drops them. 4.11 sends no ACK whose number
// an ACK2 has confirmed, so it answers nothing; it is heard only through
// its keep-alives, which it sends once it has not heard from us for its EXP
// interval (at least 300 ms). The sender must leave it such silences, and
// the connection outlive the pause with every byte delivered.
func TestInteropSlowCppReader(t *testing.T) {
	interop.BuildPeer(t)
	const size = 4 << 20
	want := interop.SHA256Pattern(1, size)
	srv := interop.Start(t, "server", "-port", "0", "-mode", "recv", "-rcvbuf", "1", "-pauseat", "1", "-pause", "6000")
	port := srv.ListenPort(10 * time.Second)
	d := udt.Dialer{Config: udt.Config{PeerIdleTimeout: 2 * time.Second, LingerStall: 30 * time.Second}}
	c, err := d.Dial("udp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err)
	start := time.Now()
	require.Equal(t, want, sendPattern(t, c, 1, size))
	srv.RequireDone(t, want, size)
	took := time.Since(start)
	require.Greater(t, took, 6*time.Second, "the reader paused")
	t.Logf("%d bytes through a 6 s pause in %v", size, took.Round(time.Millisecond))
}
