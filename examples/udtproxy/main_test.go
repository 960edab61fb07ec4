package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
)

// logLines collects a proxy's log.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// count returns how many lines contain s.
func (l *logLines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// waitCount waits until n lines contain s.
func (l *logLines) waitCount(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.count(s) < n {
		if time.Now().After(deadline) {
			got := l.count(s)
			l.mu.Lock()
			all := strings.Join(l.lines, "\n")
			l.mu.Unlock()
			t.Fatalf("%d lines containing %q, want %d; log:\n%s", got, s, n, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tcpService serves handle on a TCP listener on 127.0.0.1, closed with the
// test after its connections have ended.
func tcpService(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// echo copies what it reads back until EOF.
func echo(c net.Conn) { _, _ = io.Copy(c, c) }

// proxies starts a server-side proxy in front of target and a client-side
// proxy in front of it, and returns the client side's TCP address and the
// log both write to. Both stop with the test, after their tunnels.
func proxies(t *testing.T, target string, drain time.Duration) (string, *logLines) {
	t.Helper()
	logs := &logLines{}
	uln, err := udt.Listen("udp", "127.0.0.1:0")
	require.NoError(t, err)
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	server, client := &proxy{logf: logs.logf}, &proxy{logf: logs.logf}
	done := make(chan error, 2)
	go func() { done <- server.serveUDT(uln, target) }()
	go func() { done <- client.serveTCP(tln, uln.Addr().String(), drain) }()
	t.Cleanup(func() {
		tln.Close()
		uln.Close()
		for range 2 {
			require.NoError(t, <-done)
		}
		if t.Failed() {
			t.Logf("proxy log:\n%s", strings.Join(logs.lines, "\n"))
		}
	})
	return tln.Addr().String(), logs
}

func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// roundTrip sends data through the TCP connection to addr, reads as much
// back and checks it.
func roundTrip(addr string, data []byte) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Minute)); err != nil {
		return err
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		wrote <- err
	}()
	got := sha256.New()
	if _, err := io.CopyN(got, c, int64(len(data))); err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if err := <-wrote; err != nil {
		return err
	}
	if want := sha256.Sum256(data); string(got.Sum(nil)) != string(want[:]) {
		return fmt.Errorf("the %d bytes read back differ", len(data))
	}
	return nil
}

// TestProxyRoundTrip sends 16 MiB through client proxy, UDT and server
// proxy to a TCP echo service and reads them back.
func TestProxyRoundTrip(t *testing.T) {
	const size = 16 << 20
	addr, logs := proxies(t, tcpService(t, echo), time.Second)
	start := time.Now()
	require.NoError(t, roundTrip(addr, randomBytes(size, 1)))
	t.Logf("%d bytes each way in %v", size, time.Since(start).Round(time.Millisecond))
	// The server proxy closes once the client proxy has, a drain time after
	// the app stopped sending.
	logs.waitCount(t, fmt.Sprintf(": %d bytes TCP to UDT, %d bytes UDT to TCP", size, size), 2)
}

// TestProxyConcurrent runs 8 tunnels at once, 2 MiB each way on each.
func TestProxyConcurrent(t *testing.T) {
	const conns, size = 8, 2 << 20
	addr, logs := proxies(t, tcpService(t, echo), time.Second)
	var wg sync.WaitGroup
	errs := make([]error, conns)
	for i := range conns {
		wg.Go(func() { errs[i] = roundTrip(addr, randomBytes(size, byte(10+i))) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "connection %d", i)
	}
	logs.waitCount(t, fmt.Sprintf(": %d bytes TCP to UDT, %d bytes UDT to TCP", size, size), 2*conns)
}

// TestProxyHalfClose has the app shut down writing and read to EOF: the
// reply drains, then the client proxy closes and the app reads EOF after
// every byte.
func TestProxyHalfClose(t *testing.T) {
	const size = 1 << 20
	addr, _ := proxies(t, tcpService(t, echo), 5*time.Second)
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(2*time.Minute)))
	data := randomBytes(size, 2)
	_, err = c.Write(data)
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	require.Equal(t, sha256.Sum256(data), sha256.Sum256(got), "%d bytes read back of %d", len(got), size)
}

// TestProxyServiceCloses has the service send 1 MiB and close: the app
// reads it all and EOF without waiting for the client proxy's drain time.
func TestProxyServiceCloses(t *testing.T) {
	const size = 1 << 20
	data := randomBytes(size, 3)
	addr, _ := proxies(t, tcpService(t, func(c net.Conn) { _, _ = c.Write(data) }), 10*time.Minute)
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(time.Minute)))
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	require.Equal(t, sha256.Sum256(data), sha256.Sum256(got), "%d bytes read of %d", len(got), size)
}

// TestProxyHalfCloseCarried: between two udtproxy ends the app's
// half-close reaches the service: a service that answers only after the
// app's EOF is reached (it sums what it got), and a 5-byte round trip with
// a half-close takes milliseconds, not the drain time.
func TestProxyHalfCloseCarried(t *testing.T) {
	summer := func(c net.Conn) {
		b, err := io.ReadAll(c) // until the app's half-close
		if err == nil {
			_, _ = fmt.Fprintf(c, "%d bytes", len(b))
		}
	}
	addr, logs := proxies(t, tcpService(t, summer), time.Minute)
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	start := time.Now()
	_, err = c.Write([]byte("hello"))
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	took := time.Since(start)
	require.Equal(t, "5 bytes", string(got))
	t.Logf("round trip with half-close: %v", took.Round(time.Millisecond))
	require.Less(t, took, 5*time.Second, "the drain (a minute here) was not waited out")
	logs.waitCount(t, ": 5 bytes TCP to UDT, 7 bytes UDT to TCP", 1) // the client proxy
	logs.waitCount(t, ": 7 bytes TCP to UDT, 5 bytes UDT to TCP", 1) // the server proxy
}

// A client proxy with -plain in front of a UDT service that is not
// udtproxy: the plain stream and the drain, as before the framing.
func TestProxyPlainFarEnd(t *testing.T) {
	uln, err := udt.Listen("udp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			c, err := uln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	logs := &logLines{}
	client := &proxy{logf: logs.logf, plain: true}
	done := make(chan error, 1)
	go func() { done <- client.serveTCP(tln, uln.Addr().String(), 200*time.Millisecond) }()
	defer func() {
		tln.Close()
		require.NoError(t, <-done)
		uln.Close()
		<-served
	}()
	require.NoError(t, roundTrip(tln.Addr().String(), randomBytes(1<<20, 4)))
}

// A UDT client that is not udtproxy reaches the server proxy's service:
// its first bytes are not hello, and they reach the service as they are.
func TestProxyServerPlainClient(t *testing.T) {
	target := tcpService(t, echo)
	uln, err := udt.Listen("udp", "127.0.0.1:0")
	require.NoError(t, err)
	server := &proxy{logf: (&logLines{}).logf}
	done := make(chan error, 1)
	go func() { done <- server.serveUDT(uln, target) }()
	defer func() {
		uln.Close()
		require.NoError(t, <-done)
	}()
	c, err := udt.Dial("udp", uln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	msg := []byte("plain UDT bytes, not a hello")
	_, err = c.Write(msg)
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, msg, got)
}
