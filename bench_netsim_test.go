package udt_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/interop"
	"github.com/udt-go/udt/internal/netsim"
)

// relayed starts a relay to target whose forward path has the given loss.
func relayed(tb testing.TB, target *net.UDPAddr, rate int64, rtt time.Duration, loss float64) *netsim.Relay {
	tb.Helper()
	fwd := netsim.LinkConfig{Rate: rate, Delay: rtt / 2, Loss: loss}
	back := netsim.LinkConfig{Rate: rate, Delay: rtt / 2}
	r, err := netsim.NewRelay(target, fwd, back, 1)
	require.NoError(tb, err)
	tb.Cleanup(func() { r.Close() })
	return r
}

// goOverRelay moves n bytes from a Go client to a Go listener across an
// emulated link and returns the goodput in Mbit/s.
func goOverRelay(tb testing.TB, cc udt.CongestionControl, rate int64, rtt time.Duration, loss float64, n int64) float64 {
	tb.Helper()
	lc := udt.ListenConfig{Config: udt.Config{Congestion: cc}}
	ln, err := lc.ListenUDT(context.Background(), "udp", "127.0.0.1:0")
	require.NoError(tb, err)
	defer ln.Close()
	r := relayed(tb, ln.Addr().(*net.UDPAddr), rate, rtt, loss)
	done := make(chan float64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- 0
			return
		}
		defer c.Close()
		start := time.Now()
		buf := make([]byte, 1<<20)
		var got int64
		for {
			k, err := c.Read(buf)
			got += int64(k)
			if err != nil {
				break
			}
		}
		done <- float64(got) * 8 / 1e6 / time.Since(start).Seconds()
	}()
	d := udt.Dialer{Config: udt.Config{Congestion: cc}}
	c, err := d.DialUDT(context.Background(), "udp", r.Addr().String())
	require.NoError(tb, err)
	block := make([]byte, 1<<20)
	for left := n; left > 0; left -= int64(len(block)) {
		_, err := c.Write(block[:min(int64(len(block)), left)])
		require.NoError(tb, err)
	}
	require.NoError(tb, c.Close())
	return <-done
}

// cppOverRelay does the same between two C++ peers.
func cppOverRelay(tb testing.TB, rate int64, rtt time.Duration, loss float64, n int64) float64 {
	tb.Helper()
	srv := interop.Start(tb, "server", "-host", "127.0.0.1", "-port", "0", "-mode", "recv", "-nohash")
	port := srv.ListenPort(10 * time.Second)
	r := relayed(tb, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}, rate, rtt, loss)
	cli := interop.Start(tb, "client", "-host", "127.0.0.1", "-port", strconv.Itoa(r.Addr().Port),
		"-mode", "send", "-bytes", strconv.FormatInt(n, 10), "-nohash")
	rs, err := srv.Results(1, 10*time.Minute)
	require.NoError(tb, err)
	require.NoError(tb, cli.Wait(time.Minute))
	return rs[0].Mbps
}

// BenchmarkNetsimVsCpp runs Go (both controllers) and C++ transfers over
// the same emulated 100 Mbit/s links, one after the other, and reports each
// goodput as a share of the link and the Go DAIMD / C++ ratio.
func BenchmarkNetsimVsCpp(b *testing.B) {
	interop.BuildPeer(b)
	for _, l := range []struct {
		rtt  time.Duration
		loss float64
		n    int64
	}{
		{100 * time.Millisecond, 0, 64 << 20},
		{100 * time.Millisecond, 0.001, 16 << 20},
		{100 * time.Millisecond, 0.01, 8 << 20},
	} {
		const rate = 100e6
		b.Run(fmt.Sprintf("rtt=%v/loss=%.1f%%", l.rtt, l.loss*100), func(b *testing.B) {
			var daimd, model, cpp float64
			for b.Loop() {
				daimd += goOverRelay(b, udt.CongestionDAIMD, rate, l.rtt, l.loss, l.n)
				model += goOverRelay(b, udt.CongestionModel, rate, l.rtt, l.loss, l.n)
				cpp += cppOverRelay(b, rate, l.rtt, l.loss, l.n)
			}
			k := float64(b.N) * rate / 1e6 / 100
			b.ReportMetric(daimd/k, "daimd-%link")
			b.ReportMetric(model/k, "model-%link")
			b.ReportMetric(cpp/k, "cpp-%link")
			b.ReportMetric(daimd/cpp, "daimd/cpp")
		})
	}
}
