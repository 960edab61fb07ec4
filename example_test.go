package udt_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"sync/atomic"
	"time"

	"github.com/udt-go/udt"
)

// A listener accepts UDT connections like a TCP listener; here it echoes.
func ExampleListen() {
	ln, err := udt.Listen("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()

	c, err := udt.Dial("udp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("echo me")); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(c, buf); err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(buf))
	// Output: echo me
}

// A Dialer carries options; its context bounds the handshake.
func ExampleDialer() {
	ln, err := udt.Listen("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Write([]byte("hi"))
			_ = c.Close()
		}
	}()

	d := udt.Dialer{Config: udt.Config{MSS: 1400, Congestion: udt.CongestionModel}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.DialUDT(ctx, "udp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	b, err := io.ReadAll(c) // until the server's shutdown
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
	// Output: hi
}

// Stats reports the C++ library's performance-monitor figures.
func ExampleConn_Stats() {
	ln, err := udt.Listen("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.Copy(io.Discard, c)
			_ = c.Close()
		}
	}()
	c, err := (&udt.Dialer{}).DialUDT(context.Background(), "udp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Write(make([]byte, 1<<20)); err != nil {
		log.Fatal(err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	st := c.Stats()
	fmt.Println(st.Total.PktSent >= 721, st.Total.ACKRecv > 0)
	// Output: true true
}

// A listener's Metrics are the figures of its UDP socket as a whole:
// counters kept as the socket works, cheap enough to poll every second.
func ExampleListener_Metrics() {
	ln, err := (&udt.ListenConfig{}).ListenUDT(context.Background(), "udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.Copy(io.Discard, c)
			_ = c.Close()
		}
	}()
	c, err := udt.Dial("udp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Write(make([]byte, 1<<20)); err != nil {
		log.Fatal(err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	<-done
	m := ln.Metrics()
	fmt.Println(m.Accepted, m.BytesIn >= 1<<20, m.Refused.BacklogFull, m.Dropped.Malformed)
	// Output: 1 true 0 0
}

// windowCap wraps a controller: it caps the congestion window and counts
// the data packets sent.
type windowCap struct {
	udt.CongestionController
	max  int
	sent atomic.Int64 // read by other goroutines
}

func (w *windowCap) OnPktSent(now time.Time, p udt.CongestionPacket) {
	w.sent.Add(1)
	w.CongestionController.OnPktSent(now, p)
}

func (w *windowCap) Params() udt.CongestionParams {
	p := w.CongestionController.Params()
	if p.Window <= 0 || p.Window > w.max {
		p.Window = w.max
	}
	return p
}

// A custom congestion controller, here the native one with its window
// capped at 64 packets, is made per connection by Config.NewController.
func ExampleCongestionController() {
	ln, err := udt.Listen("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.Copy(io.Discard, c)
			_ = c.Close()
		}
	}()

	var ctl *windowCap
	d := udt.Dialer{Config: udt.Config{NewController: func() udt.CongestionController {
		ctl = &windowCap{CongestionController: udt.NewDAIMD(), max: 64}
		return ctl
	}}}
	c, err := d.DialUDT(context.Background(), "udp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Write(make([]byte, 1<<20)); err != nil {
		log.Fatal(err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	st := c.Stats()
	fmt.Println(st.CongestionWindow <= 64, ctl.sent.Load() == int64(st.Total.PktSent))
	// Output: true true
}

// A message connection keeps message boundaries; each message may have a
// time to live and be delivered in order or as soon as it is complete.
func ExampleConn_WriteMessage() {
	lc := udt.ListenConfig{Config: udt.Config{Type: udt.TypeMessage}}
	ln, err := lc.ListenUDT(context.Background(), "udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	d := udt.Dialer{Config: udt.Config{Type: udt.TypeMessage}}
	c, err := d.DialUDT(context.Background(), "udp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	s, err := ln.AcceptUDT()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	for _, m := range []string{"first", "second message", "3"} {
		if _, err := c.WriteMessage([]byte(m), time.Second, true); err != nil {
			log.Fatal(err)
		}
	}
	buf := make([]byte, 100)
	for range 3 {
		n, err := s.ReadMessage(buf)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%q\n", buf[:n])
	}
	// Output:
	// "first"
	// "second message"
	// "3"
}
