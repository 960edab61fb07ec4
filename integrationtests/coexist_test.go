package integrationtests

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/harness"
	"github.com/udt-go/udt/internal/netsim"
)

// flow counts what one receiver reads.
type flow struct{ n atomic.Int64 }

func (f *flow) drain(r io.Reader) {
	buf := make([]byte, 1<<20)
	for {
		k, err := r.Read(buf)
		f.n.Add(int64(k))
		if err != nil {
			return
		}
	}
}

func send(w io.Writer) {
	block := make([]byte, 1<<20)
	for {
		if _, err := w.Write(block); err != nil {
			return
		}
	}
}

// startFlow starts a bulk flow from namespace A to B: listen runs in B and
// dial in A, each given the address to use.
func startFlow(tb testing.TB, p *netsim.TunPath, listen func(addr string) (net.Listener, error), dial func(addr string) (net.Conn, error)) *flow {
	tb.Helper()
	var ln net.Listener
	require.NoError(tb, p.Do(1, func() (err error) {
		ln, err = listen(netip.AddrPortFrom(p.Addr(1), 0).String())
		return err
	}))
	tb.Cleanup(func() { ln.Close() })
	var c net.Conn
	require.NoError(tb, p.Do(0, func() (err error) {
		c, err = dial(ln.Addr().String())
		return err
	}))
	tb.Cleanup(func() { c.Close() })
	s, err := ln.Accept()
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close() })
	f := &flow{}
	go f.drain(s)
	go send(c)
	return f
}

// startTCP starts a bulk TCP flow from A to B with the kernel's congestion
// control cc.
func startTCP(tb testing.TB, p *netsim.TunPath, cc string) *flow {
	tb.Helper()
	return startFlow(tb, p, func(addr string) (net.Listener, error) {
		return net.Listen("tcp4", addr)
	}, func(addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.Dial("tcp4", addr)
		if err != nil {
			return nil, err
		}
		if err := netsim.SetTCPCongestion(c.(*net.TCPConn), cc); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	})
}

// startUDT starts a bulk UDT flow from A to B with controller cc.
func startUDT(tb testing.TB, p *netsim.TunPath, cc udt.CongestionControl) *flow {
	tb.Helper()
	cfg := udt.Config{Congestion: cc, Linger: -1}
	return startFlow(tb, p, func(addr string) (net.Listener, error) {
		lc := udt.ListenConfig{Config: cfg}
		return lc.ListenUDT(context.Background(), "udp4", addr)
	}, func(addr string) (net.Conn, error) {
		d := udt.Dialer{Config: cfg, LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Addr(0), 0))}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return d.DialContext(ctx, "udp4", addr)
	})
}

// shares runs a UDT flow with controller cc and a TCP flow with kernel
// congestion control tcp through one bottleneck for d, and returns each
// one's goodput over the second half, in Mbit/s.
func shares(tb testing.TB, cc udt.CongestionControl, tcp string, rate int64, rtt, d time.Duration) (u, t float64) {
	p := harness.TunPath(tb, netsim.LinkConfig{Rate: rate, Delay: rtt / 2})
	tf := startTCP(tb, p, tcp)
	uf := startUDT(tb, p, cc)
	time.Sleep(d / 2)
	u0, t0 := uf.n.Load(), tf.n.Load()
	time.Sleep(d / 2)
	secs := (d / 2).Seconds()
	return float64(uf.n.Load()-u0) * 8 / 1e6 / secs, float64(tf.n.Load()-t0) * 8 / 1e6 / secs
}

// TestModelCoexistsWithTCP: a CongestionModel flow and a TCP cubic flow
// share a 50 Mbit/s, 40 ms bottleneck (real sockets in two network
// namespaces, the kernel's TCP); the TCP flow keeps a fair part of it, 30 %
// at least. On an idle machine cubic keeps 42-51 % (median 48.6 % of five
// rounds of bench/coexist.sh, 2026-12-06); the bounds allow for a loaded
// one. It skips under -race, where the emulated path, both flows' readers
// and the UDT flow share two cores with the race detector and every other
// package's tests (cubic kept 26 % in one such CI run): .ci/run runs it
// in its pass without -race.
func TestModelCoexistsWithTCP(t *testing.T) {
	if raceEnabled {
		t.Skip("the sharing check runs without -race (.ci/run's second pass)")
	}
	u, tc := shares(t, udt.CongestionModel, "cubic", 50e6, 40*time.Millisecond, 30*time.Second)
	t.Logf("UDT model %.1f Mbit/s, TCP cubic %.1f Mbit/s on a 50 Mbit/s link", u, tc)
	require.Greater(t, tc, 0.3*50, "TCP starved")
	require.Greater(t, u, 0.25*50, "UDT starved")
	require.Greater(t, u+tc, 0.8*50, "link idle")
}

// BenchmarkTCPCoexistence reports how each UDT controller shares a
// bottleneck with each TCP congestion control (Mbit/s of each flow).
func BenchmarkTCPCoexistence(b *testing.B) {
	for _, cc := range []udt.CongestionControl{udt.CongestionDAIMD, udt.CongestionModel} {
		for _, tcp := range []string{"cubic", "bbr"} {
			b.Run(fmt.Sprintf("%v/%s", cc, tcp), func(b *testing.B) {
				var u, t float64
				for b.Loop() {
					du, dt := shares(b, cc, tcp, 100e6, 40*time.Millisecond, 30*time.Second)
					u, t = u+du, t+dt
				}
				b.ReportMetric(u/float64(b.N), "udt-Mbit/s")
				b.ReportMetric(t/float64(b.N), "tcp-Mbit/s")
			})
		}
	}
}
