package udt

import (
	"context"
	"net"
	"testing"
)

// BenchmarkConnectAccept measures sequential connect+accept pairs on
// loopback, the dials sharing one multiplexer (Dialer.LocalAddr), each
// connection closed before the next dial; it reports connections a
// second.
func BenchmarkConnectAccept(b *testing.B) {
	cfg := Config{Linger: -1}
	ln, err := (&ListenConfig{Config: cfg}).ListenUDT(context.Background(), "udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	// The dialers' shared socket, held open by a listener of its own.
	hold, err := (&ListenConfig{Config: cfg}).ListenUDT(context.Background(), "udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer hold.Close()
	d := Dialer{Config: cfg, LocalAddr: hold.Addr().(*net.UDPAddr)}
	addr := ln.Addr().String()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c, err := d.DialUDT(context.Background(), "udp", addr)
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.AcceptUDT()
		if err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
		_ = s.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
}
