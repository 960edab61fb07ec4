// Command loopback moves data between a UDT listener and a UDT client in one
// process over the loopback interface, checks it with SHA-256 and reports
// the goodput. It is the quickest way to see the library work:
//
//	go run ./examples/loopback -bytes 1GiB
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/examples/internal/size"
)

func main() {
	sizeFlag := flag.String("bytes", "1GiB", "how much to send, e.g. 1GiB or 500MB")
	mss := flag.Int("mss", 0, "maximum packet size (0: the default 1500)")
	flag.Parse()
	n, err := size.Parse(*sizeFlag)
	if err != nil {
		log.Fatalf("loopback: -bytes: %v", err)
	}
	if err := run(n, udt.Config{MSS: *mss}); err != nil {
		log.Fatalf("loopback: %v", err)
	}
}

func run(n int64, cfg udt.Config) error {
	lc := udt.ListenConfig{Config: cfg}
	ln, err := lc.ListenUDT(context.Background(), "udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()

	type result struct {
		n   int64
		sum []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		h := sha256.New()
		got, err := io.Copy(h, c)
		done <- result{got, h.Sum(nil), err}
	}()

	d := udt.Dialer{Config: cfg}
	c, err := d.DialUDT(context.Background(), "udp", ln.Addr().String())
	if err != nil {
		return err
	}
	fmt.Printf("connected %s -> %s, sending %d bytes\n", c.LocalAddr(), c.RemoteAddr(), n)
	start := time.Now()
	stop := make(chan struct{})
	go report(c, stop)
	h := sha256.New()
	src := io.LimitReader(pattern{}, n)
	if _, err := io.Copy(io.MultiWriter(c, h), src); err != nil {
		return err
	}
	if err := c.Close(); err != nil {
		return err
	}
	close(stop)
	r := <-done
	secs := time.Since(start).Seconds()
	if r.err != nil {
		return r.err
	}
	if r.n != n || string(r.sum) != string(h.Sum(nil)) {
		return fmt.Errorf("received %d bytes, SHA-256 %x; sent %d, %x", r.n, r.sum, n, h.Sum(nil))
	}
	st := c.Stats()
	fmt.Printf("received %d bytes, SHA-256 %x matches\n", r.n, r.sum)
	fmt.Printf("%.2f s, %.1f Mbit/s, %d packets retransmitted\n", secs, float64(n)*8/1e6/secs, st.Total.PktRetrans)
	return nil
}

// report prints the client's per-second figures.
func report(c *udt.Conn, stop chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	fmt.Println("SendRate(Mb/s)\tRTT(ms)\tCWnd\tPktSndPeriod(us)\tRecvACK\tRecvNAK")
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s := c.Stats()
			fmt.Printf("%.2f\t\t%.3f\t%d\t%.3f\t\t\t%d\t%d\n", s.SendRate, float64(s.RTT.Microseconds())/1000,
				s.CongestionWindow, float64(s.PktSndPeriod.Nanoseconds())/1000, s.Interval.ACKRecv, s.Interval.NAKRecv)
		}
	}
}

// pattern is an endless stream of non-repeating bytes.
type pattern struct{}

func (pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(i*131 + i>>8)
	}
	return len(b), nil
}

func init() { log.SetFlags(0); log.SetOutput(os.Stderr) }
