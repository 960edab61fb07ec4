package udt_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
)

// freePort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	require.NoError(t, pc.Close())
	return port
}

func local(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// rendezvousPair dials a rendezvous between two fresh loopback ports, B
// starting after A by delay. A port found free may be taken by another
// program before the dial binds it; the pair is then dialed again on
// other ports.
func rendezvousPair(t *testing.T, cfgA, cfgB udt.Config, delay time.Duration) (a, b *udt.Conn, portA int) {
	t.Helper()
	for range 5 {
		pa, pb := freePort(t), freePort(t)
		a, b, errA, errB := dialRendezvousPair(t, cfgA, cfgB, pa, pb, delay)
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

// dialRendezvousPair dials a rendezvous from port pa to pb and back, B
// starting after A by delay; a failure of either ends the other's dial.
func dialRendezvousPair(t *testing.T, cfgA, cfgB udt.Config, pa, pb int, delay time.Duration) (a, b *udt.Conn, errA, errB error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	type result struct {
		c   *udt.Conn
		err error
	}
	ra := make(chan result, 1)
	go func() {
		d := udt.Dialer{Config: cfgA}
		c, err := d.DialRendezvous(ctx, "udp", local(pa), local(pb))
		if err != nil {
			cancel()
		}
		ra <- result{c, err}
	}()
	time.Sleep(delay)
	d := udt.Dialer{Config: cfgB}
	b, errB = d.DialRendezvous(ctx, "udp", local(pb), local(pa))
	if errB != nil {
		cancel()
	}
	resA := <-ra
	return resA.c, b, resA.err, errB
}

// swap writes n bytes each way at once and checks what arrives.
func swap(t *testing.T, a, b net.Conn, n int) {
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

func TestRendezvousLoopback(t *testing.T) {
	a, b, portA := rendezvousPair(t, udt.Config{}, udt.Config{}, 300*time.Millisecond)
	require.Equal(t, portA, a.LocalAddr().(*net.UDPAddr).Port)
	require.Equal(t, portA, b.RemoteAddr().(*net.UDPAddr).Port)
	swap(t, a, b, 4<<20)

	// The rendezvous port carries a regular dial too.
	ln := listenLocal(t)
	d := udt.Dialer{LocalAddr: a.LocalAddr().(*net.UDPAddr)}
	c, err := d.DialUDT(t.Context(), "udp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, portA, c.LocalAddr().(*net.UDPAddr).Port)
	s, err := ln.AcceptUDT()
	require.NoError(t, err)
	defer s.Close()
	swap(t, c, s, 256<<10)
	swap(t, a, b, 256<<10)
}

func TestRendezvousLoopbackMSS(t *testing.T) {
	a, b, _ := rendezvousPair(t, udt.Config{MSS: 1400}, udt.Config{MSS: 1500}, 0)
	require.Equal(t, 1400, a.Stats().MSS)
	require.Equal(t, 1400, b.Stats().MSS)
	swap(t, a, b, 1<<20)
}

func TestRendezvousBadArguments(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct{ laddr, raddr, want string }{
		{"127.0.0.1:0", "127.0.0.1:9", `laddr "127.0.0.1:0"`},
		{"", "127.0.0.1:9", `laddr ""`},
		{"127.0.0.1", "127.0.0.1:9", `laddr "127.0.0.1"`},
		{local(freePort(t)), "127.0.0.1:0", `raddr "127.0.0.1:0"`},
		{local(freePort(t)), "0.0.0.0:9", `raddr "0.0.0.0:9"`},
	} {
		c, err := udt.DialRendezvous(ctx, "udp", tc.laddr, tc.raddr)
		require.Nil(t, c)
		var op *net.OpError
		require.ErrorAs(t, err, &op)
		require.Equal(t, "dial", op.Op)
		require.ErrorContains(t, err, tc.want)
	}
	_, err := udt.DialRendezvous(ctx, "tcp", "127.0.0.1:1", "127.0.0.1:9")
	require.Error(t, err)
	_, err = (&udt.Dialer{Config: udt.Config{MSS: 10}}).DialRendezvous(ctx, "udp", "127.0.0.1:1", "127.0.0.1:9")
	require.ErrorContains(t, err, "Config.MSS")

	// A listening port cannot rendezvous.
	ln := listenLocal(t)
	_, err = udt.DialRendezvous(ctx, "udp", ln.Addr().String(), "127.0.0.1:9")
	require.ErrorContains(t, err, "listener")
}

// TestRendezvousWildcardLaddr: a laddr with no host binds every address;
// the peer's packets, which reach it as IPv4-mapped addresses on a
// dual-stack socket, still find the rendezvous.
func TestRendezvousWildcardLaddr(t *testing.T) {
	var c *udt.Conn
	errs := make(chan error, 1)
	for try := 0; c == nil; try++ {
		require.Less(t, try, 5, "no two free ports in five tries")
		pa, pb := freePort(t), freePort(t)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		go func() {
			c, err := udt.DialRendezvous(ctx, "udp", ":"+strconv.Itoa(pb), local(pa))
			if err == nil {
				_, err = c.Write([]byte("wildcard"))
				c.Close()
			} else {
				cancel()
			}
			errs <- err
		}()
		var err error
		c, err = udt.DialRendezvous(ctx, "udp", local(pa), local(pb))
		if err != nil {
			cancel()
			if errB := <-errs; errors.Is(err, syscall.EADDRINUSE) || errors.Is(errB, syscall.EADDRINUSE) {
				t.Logf("a port was taken (%v, %v); trying others", err, errB)
				continue
			}
		}
		require.NoError(t, err)
	}
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	require.Equal(t, "wildcard", string(got))
	require.NoError(t, <-errs)
}
