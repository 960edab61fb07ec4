package integrationtests

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/interop"
)

// goThroughput moves n bytes from a Go client to a Go listener over
// loopback and returns the receiver's goodput in Mbit/s, measured like the
// C++ peer measures it: from the first byte read to the connection's end.
func goThroughput(tb testing.TB, n int64, cfg udt.Config) float64 {
	tb.Helper()
	lc := udt.ListenConfig{Config: cfg}
	ln, err := lc.Listen(context.Background(), "udp", "127.0.0.1:0")
	require.NoError(tb, err)
	defer ln.Close()
	type result struct {
		n    int64
		secs float64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		k, err := c.Read(buf)
		start := time.Now()
		total := int64(k)
		for err == nil {
			k, err = c.Read(buf)
			total += int64(k)
		}
		if err == io.EOF {
			err = nil
		}
		done <- result{total, time.Since(start).Seconds(), err}
	}()
	d := udt.Dialer{Config: cfg}
	c, err := d.Dial("udp", ln.Addr().String())
	require.NoError(tb, err)
	block := make([]byte, 1<<20)
	for left := n; left > 0; left -= int64(len(block)) {
		_, err := c.Write(block[:min(int64(len(block)), left)])
		require.NoError(tb, err)
	}
	require.NoError(tb, c.Close())
	r := <-done
	require.NoError(tb, r.err)
	require.Equal(tb, n, r.n)
	return float64(n) * 8 / 1e6 / r.secs
}

// BenchmarkLoopbackVsCpp moves 1 GiB over loopback between two Go peers
// and between two C++ (libudt 4.11) peers, alternating, and reports both
// goodputs and their ratio. Run with -benchtime 1x -count 5.
func BenchmarkLoopbackVsCpp(b *testing.B) {
	interop.BuildPeer(b)
	const n = 1 << 30
	b.SetBytes(n)
	var goMbps, cppMbps float64
	for b.Loop() {
		goMbps += goThroughput(b, n, udt.Config{})
		cppMbps += interop.CppThroughput(b, n)
	}
	b.ReportMetric(goMbps/float64(b.N), "go-Mbit/s")
	b.ReportMetric(cppMbps/float64(b.N), "cpp-Mbit/s")
	b.ReportMetric(goMbps/cppMbps, "go/cpp")
}

// BenchmarkLoopbackStream moves b.N bytes over loopback from a Go client to
// a Go listener in this process, one stream at the default MSS. Its
// allocs/op, per byte moved, show the per-packet path's allocations;
// cpu-ns/pkt is the CPU time of both ends per data packet.
func BenchmarkLoopbackStream(b *testing.B) { loopbackStream(b, udt.Config{}) }

// BenchmarkLoopbackStreamTraced is BenchmarkLoopbackStream with both ends
// traced by hooks that do nothing: beside it, the tracer's cost per
// packet.
func BenchmarkLoopbackStreamTraced(b *testing.B) {
	noop := &udt.ConnTracer{
		HandshakeSent:     func(udt.TraceHandshake) {},
		HandshakeReceived: func(udt.TraceHandshake) {},
		PhaseChanged:      func(udt.TracePhase) {},
		PacketSent:        func(udt.TracePacket) {},
		PacketReceived:    func(udt.TracePacket) {},
		PacketsLost:       func(udt.TraceLoss) {},
		ControlSent:       func(udt.TraceControl) {},
		ControlReceived:   func(udt.TraceControl) {},
		MetricsUpdated:    func(udt.TraceMetrics) {},
		TimedOut:          func(udt.TraceTimeout) {},
		Closed:            func(udt.TraceClose) {},
	}
	loopbackStream(b, udt.Config{Tracer: func(udt.TraceInfo) *udt.ConnTracer { return noop }})
}

func loopbackStream(b *testing.B, cfg udt.Config) {
	b.ReportAllocs()
	n := int64(b.N)
	b.SetBytes(1)
	b.ResetTimer()
	cpu0 := cpuSeconds()
	mbps := goThroughput(b, n, cfg)
	b.ReportMetric(mbps, "Mbit/s")
	if cpu0 >= 0 {
		cpu := cpuSeconds() - cpu0
		b.ReportMetric(cpu/(float64(n)/1e9), "cpu-s/GB")
		b.ReportMetric(cpu*1e9/(float64(n)/1456), "cpu-ns/pkt")
	}
}
