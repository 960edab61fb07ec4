package udt_test

import (
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
	return goGoodput(tb, udt.Config{Congestion: cc}, n, func(target *net.UDPAddr) string {
		return relayed(tb, target, rate, rtt, loss).Addr().String()
	})
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
