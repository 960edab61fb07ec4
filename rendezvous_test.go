package udt_test

import (
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
	"github.com/udt-go/udt/internal/harness"
)

func TestRendezvousLoopback(t *testing.T) {
	a, b, portA := harness.RendezvousPair(t, udt.Config{}, udt.Config{}, 300*time.Millisecond)
	require.Equal(t, portA, a.LocalAddr().(*net.UDPAddr).Port)
	require.Equal(t, portA, b.RemoteAddr().(*net.UDPAddr).Port)
	harness.Swap(t, a, b, 4<<20)

	// The rendezvous port carries a regular dial too.
	ln := harness.Listen(t, udt.Config{})
	d := udt.Dialer{LocalAddr: a.LocalAddr().(*net.UDPAddr)}
	c, err := d.DialUDT(t.Context(), "udp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, portA, c.LocalAddr().(*net.UDPAddr).Port)
	s, err := ln.AcceptUDT()
	require.NoError(t, err)
	defer s.Close()
	harness.Swap(t, c, s, 256<<10)
	harness.Swap(t, a, b, 256<<10)
}

func TestRendezvousLoopbackMSS(t *testing.T) {
	a, b, _ := harness.RendezvousPair(t, udt.Config{MSS: 1400}, udt.Config{MSS: 1500}, 0)
	require.Equal(t, 1400, a.Stats().MSS)
	require.Equal(t, 1400, b.Stats().MSS)
	harness.Swap(t, a, b, 1<<20)
}

func TestRendezvousBadArguments(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct{ laddr, raddr, want string }{
		{"127.0.0.1:0", "127.0.0.1:9", `laddr "127.0.0.1:0"`},
		{"", "127.0.0.1:9", `laddr ""`},
		{"127.0.0.1", "127.0.0.1:9", `laddr "127.0.0.1"`},
		{harness.Local(harness.FreePort(t)), "127.0.0.1:0", `raddr "127.0.0.1:0"`},
		{harness.Local(harness.FreePort(t)), "0.0.0.0:9", `raddr "0.0.0.0:9"`},
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
	ln := harness.Listen(t, udt.Config{})
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
		pa, pb := harness.FreePort(t), harness.FreePort(t)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		go func() {
			c, err := udt.DialRendezvous(ctx, "udp", ":"+strconv.Itoa(pb), harness.Local(pa))
			if err == nil {
				_, err = c.Write([]byte("wildcard"))
				c.Close()
			} else {
				cancel()
			}
			errs <- err
		}()
		var err error
		c, err = udt.DialRendezvous(ctx, "udp", harness.Local(pa), harness.Local(pb))
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
