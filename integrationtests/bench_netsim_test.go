package integrationtests

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/harness"
	"github.com/udt-go/udt/internal/interop"
	"github.com/udt-go/udt/internal/netsim"
)

// steadyLink is one emulated path of the benchmark grid.
type steadyLink struct {
	rate int64
	rtt  time.Duration
	loss float64
}

func (l steadyLink) String() string {
	return fmt.Sprintf("%dMbit/rtt=%v/loss=%g%%", l.rate/1e6, l.rtt, l.loss*100)
}

// steadyWindows returns how long a steady-state measurement warms up and
// then measures: UDT_STEADY_WARMUP and UDT_STEADY_WINDOW override the
// defaults of 10 s and 20 s.
func steadyWindows(tb testing.TB) (warm, window time.Duration) {
	warm, window = 10*time.Second, 20*time.Second
	for _, v := range []struct {
		env string
		d   *time.Duration
	}{{"UDT_STEADY_WARMUP", &warm}, {"UDT_STEADY_WINDOW", &window}} {
		if s := os.Getenv(v.env); s != "" {
			d, err := time.ParseDuration(s)
			require.NoError(tb, err, v.env)
			*v.d = d
		}
	}
	return warm, window
}

// measureSteady waits out the warm-up, then returns the rate at which the
// relay's forward link delivered bytes during the window, in Mbit/s. Both
// Go and C++ flows are measured this way, at the same point of the path,
// so slow start and the end of a transfer do not weigh in.
func measureSteady(r *netsim.Relay, warm, window time.Duration) float64 {
	time.Sleep(warm)
	s0, _ := r.Stats()
	t0 := time.Now()
	time.Sleep(window)
	s1, _ := r.Stats()
	return float64(s1.Bytes-s0.Bytes) * 8 / 1e6 / time.Since(t0).Seconds()
}

// goSteady runs a Go sender without end across l and returns its
// steady-state rate in Mbit/s.
func goSteady(tb testing.TB, cc udt.CongestionControl, l steadyLink, warm, window time.Duration) float64 {
	tb.Helper()
	cfg := udt.Config{Congestion: cc}
	lc := udt.ListenConfig{Config: cfg}
	ln, err := lc.ListenUDT(context.Background(), "udp", "127.0.0.1:0")
	require.NoError(tb, err)
	defer ln.Close()
	r := harness.Relayed(tb, ln.Addr().(*net.UDPAddr), l.rate, l.rtt, l.loss)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(io.Discard, c)
	}()
	dcfg := cfg
	dcfg.Linger = -1 // the flow is cut off, not drained, once measured
	d := udt.Dialer{Config: dcfg}
	c, err := d.DialUDT(context.Background(), "udp", r.Addr().String())
	require.NoError(tb, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		send(c)
	}()
	mbps := measureSteady(r, warm, window)
	c.Close()
	<-done
	return mbps
}

// cppSteady does the same between two C++ peers.
func cppSteady(tb testing.TB, l steadyLink, warm, window time.Duration) float64 {
	tb.Helper()
	srv := interop.Start(tb, "server", "-host", "127.0.0.1", "-port", "0", "-mode", "recv", "-nohash")
	port := srv.ListenPort(10 * time.Second)
	r := harness.Relayed(tb, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}, l.rate, l.rtt, l.loss)
	cli := interop.Start(tb, "client", "-host", "127.0.0.1", "-port", strconv.Itoa(r.Addr().Port),
		"-mode", "send", "-bytes", strconv.FormatInt(1<<40, 10), "-nohash")
	mbps := measureSteady(r, warm, window)
	cli.Kill()
	srv.Kill()
	cli.Wait(10 * time.Second)
	srv.Wait(10 * time.Second)
	return mbps
}

// BenchmarkNetsimVsCpp measures the steady-state rate of Go (both
// controllers) and C++ senders across the same emulated links, one after
// the other in one run, and reports each as a share of the link and the Go
// DAIMD / C++ ratio. Each measurement warms up, then counts what the
// bottleneck delivered (see steadyWindows). Select links with -bench, e.g.
// -bench 'NetsimVsCpp/100Mbit/rtt=100ms'.
func BenchmarkNetsimVsCpp(b *testing.B) {
	interop.BuildPeer(b)
	warm, window := steadyWindows(b)
	for _, rtt := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond} {
		for _, loss := range []float64{0, 0.001, 0.01} {
			l := steadyLink{rate: 100e6, rtt: rtt, loss: loss}
			b.Run(l.String(), func(b *testing.B) {
				var daimd, model, cpp float64
				for b.Loop() {
					daimd += goSteady(b, udt.CongestionDAIMD, l, warm, window)
					model += goSteady(b, udt.CongestionModel, l, warm, window)
					cpp += cppSteady(b, l, warm, window)
				}
				k := float64(b.N) * float64(l.rate) / 1e6 / 100
				b.ReportMetric(daimd/k, "daimd-%link")
				b.ReportMetric(model/k, "model-%link")
				b.ReportMetric(cpp/k, "cpp-%link")
				b.ReportMetric(daimd/cpp, "daimd/cpp")
			})
		}
	}
}
