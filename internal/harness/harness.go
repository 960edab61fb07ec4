// Package harness makes pairs of connections for the tests that use the
// library through its public API: over loopback (Pair), in rendezvous
// (RendezvousPair), across the netsim link emulator (Relayed), and between
// two network namespaces joined by an emulated TUN path (TunPath). Each
// registers its cleanup with the test.
//
// The package's own tests (package udt) reach the connection's internals
// and use the internal helpers of the root package instead; a package the
// library's own tests import cannot import the library.
package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/netsim"
)

// Listen returns a listener on 127.0.0.1 with cfg, on a port of its own.
func Listen(t testing.TB, cfg udt.Config) *udt.Listener {
	t.Helper()
	lc := udt.ListenConfig{Config: cfg}
	ln, err := lc.ListenUDT(t.Context(), "udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Pair returns a listener on 127.0.0.1 with cfg, a connection dialed to
// it with cfg, and the connection the listener accepted.
func Pair(t testing.TB, cfg udt.Config) (ln *udt.Listener, c, s *udt.Conn) {
	t.Helper()
	ln = Listen(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	d := udt.Dialer{Config: cfg}
	c, err := d.DialUDT(ctx, "udp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s, err = ln.AcceptUDT()
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return ln, c, s
}

// FreePort returns a UDP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	require.NoError(t, pc.Close())
	return port
}

// Local is the address of port on 127.0.0.1.
func Local(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// RendezvousPair dials a rendezvous between two fresh loopback ports, B
// starting after A by delay. A port found free may be taken by another
// program before the dial binds it; the pair is then dialed again on
// other ports.
func RendezvousPair(t testing.TB, cfgA, cfgB udt.Config, delay time.Duration) (a, b *udt.Conn, portA int) {
	t.Helper()
	for range 5 {
		pa, pb := FreePort(t), FreePort(t)
		a, b, errA, errB := DialRendezvousPair(t, cfgA, cfgB, pa, pb, delay)
		if errors.Is(errA, syscall.EADDRINUSE) || errors.Is(errB, syscall.EADDRINUSE) {
			t.Logf("a port was taken (A: %v, B: %v); trying others", errA, errB)
			for _, c := range []*udt.Conn{a, b} {
				if c != nil {
					c.Close()
				}
			}
			continue
		}
		if a != nil {
			t.Cleanup(func() { a.Close() })
		}
		if b != nil {
			t.Cleanup(func() { b.Close() })
		}
		require.NoError(t, errA, "A")
		require.NoError(t, errB, "B")
		return a, b, pa
	}
	t.Fatal("no two free ports in five tries")
	return nil, nil, 0
}

// DialRendezvousPair dials a rendezvous from port pa to pb and back, B
// starting after A by delay; a failure of either ends the other's dial.
func DialRendezvousPair(t testing.TB, cfgA, cfgB udt.Config, pa, pb int, delay time.Duration) (a, b *udt.Conn, errA, errB error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	type result struct {
		c   *udt.Conn
		err error
	}
	ra := make(chan result, 1)
	go func() {
		d := udt.Dialer{Config: cfgA}
		c, err := d.DialRendezvous(ctx, "udp", Local(pa), Local(pb))
		if err != nil {
			cancel()
		}
		ra <- result{c, err}
	}()
	time.Sleep(delay)
	d := udt.Dialer{Config: cfgB}
	b, errB = d.DialRendezvous(ctx, "udp", Local(pb), Local(pa))
	if errB != nil {
		cancel()
	}
	resA := <-ra
	return resA.c, b, resA.err, errB
}

// Swap writes n bytes each way at once and checks what arrives, within
// 30 s.
func Swap(t testing.TB, a, b net.Conn, n int) {
	t.Helper()
	for _, c := range []net.Conn{a, b} {
		require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	}
	defer func() {
		for _, c := range []net.Conn{a, b} {
			_ = c.SetDeadline(time.Time{})
		}
	}()
	da, db := make([]byte, n), make([]byte, n)
	for i := range da {
		da[i], db[i] = byte(i*3+i>>10), byte(i*5^i>>7)
	}
	errs := make(chan error, 4)
	for _, w := range []struct {
		c    net.Conn
		data []byte
	}{{a, da}, {b, db}} {
		go func() {
			_, err := w.c.Write(w.data)
			errs <- err
		}()
	}
	for _, r := range []struct {
		c    net.Conn
		want []byte
	}{{b, da}, {a, db}} {
		go func() {
			got := make([]byte, len(r.want))
			_, err := io.ReadFull(r.c, got)
			if err == nil && !bytes.Equal(got, r.want) {
				err = errors.New("delivered bytes differ from those sent")
			}
			errs <- err
		}()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
}

// Relayed returns a relay on 127.0.0.1 that forwards to target across an
// emulated link of the given rate (bits/s) and round trip, with random
// loss (0-1) on the way to target, its random draws seeded by the clock.
func Relayed(tb testing.TB, target *net.UDPAddr, rate int64, rtt time.Duration, loss float64) *netsim.Relay {
	tb.Helper()
	fwd := netsim.LinkConfig{Rate: rate, Delay: rtt / 2, Loss: loss}
	back := netsim.LinkConfig{Rate: rate, Delay: rtt / 2}
	r, err := netsim.NewRelay(target, fwd, back, uint64(time.Now().UnixNano()))
	require.NoError(tb, err)
	tb.Cleanup(func() { r.Close() })
	return r
}

// RequireTun skips the test when this machine cannot build a TUN path
// between network namespaces, or fails it with UDT_NETNS=require, as CI
// sets it.
func RequireTun(tb testing.TB) {
	tb.Helper()
	if err := netsim.TunAvailable(); err != nil {
		if os.Getenv("UDT_NETNS") == "require" {
			tb.Fatal(err)
		}
		tb.Skipf("%v (set UDT_NETNS=require to make this a failure)", err)
	}
}

// TunPath builds an emulated path between two network namespaces with l
// both ways, or skips when this machine cannot (see RequireTun).
func TunPath(tb testing.TB, l netsim.LinkConfig) *netsim.TunPath {
	tb.Helper()
	RequireTun(tb)
	p, err := netsim.NewTunPath(l, l, 1)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, p.Close()) })
	return p
}

// TracedTransfer moves n random bytes from a dialed connection to the
// listener's, both with tracer, across a relay of the given rate, round
// trip and loss (see Relayed), checks they arrive whole, and returns the
// two connections once both have ended and their tracers seen Closed.
func TracedTransfer(t testing.TB, tracer func(udt.TraceInfo) *udt.ConnTracer, rate int64, rtt time.Duration, loss float64, n int) (c, s *udt.Conn) {
	t.Helper()
	var closed sync.WaitGroup
	closed.Add(2)
	cfg := udt.Config{Tracer: func(info udt.TraceInfo) *udt.ConnTracer {
		ct := tracer(info)
		last := ct.Closed
		ct.Closed = func(e udt.TraceClose) {
			if last != nil {
				last(e)
			}
			closed.Done()
		}
		return ct
	}}
	ln := Listen(t, cfg)
	relay := Relayed(t, ln.Addr().(*net.UDPAddr), rate, rtt, loss)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := udt.Dialer{Config: cfg}
	c, err := d.DialUDT(ctx, "udp", relay.Addr().String())
	require.NoError(t, err)
	s, err = ln.AcceptUDT()
	require.NoError(t, err)
	data := make([]byte, n)
	_, _ = rand.Read(data)
	go func() { _, _ = c.Write(data); _ = c.Close() }()
	got, err := io.ReadAll(s)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "the bytes delivered differ from those sent")
	require.NoError(t, s.Close())
	closed.Wait()
	return c, s
}
