package udt

import (
	"context"
	"net"
	"testing"
	"time"
)

// connectAcceptRig makes sequential connect+accept pairs on loopback: one
// listener, and dials from one local port (Dialer.LocalAddr), so they
// share one multiplexer, held open by a listener of its own.
type connectAcceptRig struct {
	ln, hold *Listener
	d        Dialer
	addr     string
}

func newConnectAcceptRig(tb testing.TB) *connectAcceptRig {
	tb.Helper()
	cfg := Config{Linger: -1}
	ln, err := (&ListenConfig{Config: cfg}).ListenUDT(context.Background(), "udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	// The dialers' shared socket, held open by a listener of its own.
	hold, err := (&ListenConfig{Config: cfg}).ListenUDT(context.Background(), "udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { hold.Close() })
	return &connectAcceptRig{
		ln:   ln,
		hold: hold,
		d:    Dialer{Config: cfg, LocalAddr: hold.Addr().(*net.UDPAddr)},
		addr: ln.Addr().String(),
	}
}

// pair dials, accepts, and closes both ends.
func (r *connectAcceptRig) pair(tb testing.TB) {
	c, err := r.d.DialUDT(context.Background(), "udp", r.addr)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := r.ln.AcceptUDT()
	if err != nil {
		tb.Fatal(err)
	}
	_ = c.Close()
	_ = s.Close()
}

// run makes n pairs and returns how long they took.
func (r *connectAcceptRig) run(tb testing.TB, n int) time.Duration {
	start := time.Now()
	for range n {
		r.pair(tb)
	}
	return time.Since(start)
}

// BenchmarkConnectAccept measures sequential connect+accept pairs on
// loopback, the dials sharing one multiplexer (Dialer.LocalAddr), each
// connection closed before the next dial; it reports connections a
// second.
func BenchmarkConnectAccept(b *testing.B) {
	r := newConnectAcceptRig(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.pair(b)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
}
