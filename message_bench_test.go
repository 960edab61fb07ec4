package udt

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/udt-go/udt/internal/netsim"
	"github.com/udt-go/udt/internal/seq"
)

// BenchmarkMessageReceive measures the receive path's work per packet of
// one large out-of-order message, as the receive worker does it (storing
// each packet and deciding whether its message is complete), then reading
// the message: with every packet in order, and with the first one
// arriving last (the message completes only with its last arrival). The
// cost per packet (ns/pkt) must not grow with the message: it stays flat
// from 1,000 to 64,000 packets, gap or not.
func BenchmarkMessageReceive(b *testing.B) {
	for _, n := range []int{1000, 8000, 64000} {
		for _, gap := range []bool{false, true} {
			name := fmt.Sprintf("pkts=%d/first-last=%v", n, gap)
			b.Run(name, func(b *testing.B) {
				c := benchMessageReceiver(b, n+16)
				body := make([]byte, c.payload)
				out := make([]byte, n*c.payload)
				order := make([]int, n)
				for i := range order {
					order[i] = i
				}
				if gap {
					order = append(order[1:], 0)
				}
				var ob outbox
				c.mu.Lock()
				defer c.mu.Unlock()
				b.ResetTimer()
				for k := range b.N {
					first := c.rcv.readSeq
					msg := seq.Msg(k%1000 + 1)
					now := time.Now()
					for _, i := range order {
						pos := posMiddle
						switch i {
						case 0:
							pos = posFirst
						case n - 1:
							pos = posLast
						}
						c.onDataLocked(&packet{seq: first.Add(i), pos: pos, msg: msg, body: body}, now, &ob)
						ob.b, ob.ends = ob.b[:0], ob.ends[:0]
					}
					off, slots, size, ok := c.nextMessageLocked()
					if !ok || off != 0 || slots != n || size != len(out) {
						b.Fatalf("message not readable: %d packets at %d, %d bytes, %v", slots, off, size, ok)
					}
					c.takeMessageLocked(out, off, slots)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/pkt")
			})
		}
	}
}

// benchMessageReceiver returns an established message-mode connection of
// window packets whose receive side the caller drives directly (see
// fuzzReceiver).
func benchMessageReceiver(b *testing.B, window int) *Conn {
	a, p := netsim.NewPacketPipe(netsim.LinkConfig{}, netsim.LinkConfig{}, 1)
	b.Cleanup(func() { a.Close(); p.Close() })
	m := newMultiplexer(netPacketConn{c: a})
	cfg, err := Config{Type: TypeMessage, ReceiveBuffer: window, FlowWindow: window}.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	c := newConn(m, cfg, netip.MustParseAddrPort("127.0.0.1:9"))
	c.mu.Lock()
	c.establishLocked(time.Now(), 7, DefaultMSS, window, 100, seq.Num(seq.Max-20))
	c.live.timer.Stop()
	c.mu.Unlock()
	return c
}
