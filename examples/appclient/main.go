// Command appclient is the Go counterpart of the C++ library's appclient
// example: it connects to a UDT server, sends 100,000-byte blocks and prints
// the connection's figures every second.
//
//	appclient [-bytes N] [-duration D] [-q] server_ip server_port
//
// Without -bytes or -duration it sends until interrupted, like the C++ one.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/examples/internal/size"
)

const blockSize = 100000

func main() {
	var limit size.Bytes
	flag.Var(&limit, "bytes", "stop after sending this `size`, e.g. 1GiB or 500MB (0: no limit)")
	duration := flag.Duration("duration", 0, "stop after this long (0: no limit)")
	quiet := flag.Bool("q", false, "do not print the per-second report")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: appclient [flags] server_ip server_port")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(1)
	}
	if p, err := strconv.Atoi(flag.Arg(1)); err != nil || p <= 0 || p > 65535 {
		fmt.Fprintf(flag.CommandLine.Output(), "appclient: server_port %q is not a port number (1-65535)\n", flag.Arg(1))
		flag.Usage()
		os.Exit(1)
	}
	if *duration < 0 {
		fmt.Println("appclient: -duration must not be negative")
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	var d udt.Dialer
	c, err := d.DialUDT(ctx, "udp", flag.Arg(0)+":"+flag.Arg(1))
	if err != nil {
		fmt.Println("connect:", err)
		os.Exit(1)
	}
	if !*quiet {
		go monitor(ctx, c)
	}

	start := time.Now()
	sent, err := send(ctx, c, int64(limit))
	if err != nil {
		fmt.Println("send:", err)
		_ = c.Close()
		os.Exit(1)
	}
	// Close waits for everything sent to be acknowledged.
	if err := c.Close(); err != nil {
		fmt.Println("close:", err)
		os.Exit(1)
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("sent %d bytes in %.2f s: %.2f Mb/s\n", sent, secs, float64(sent)*8/1e6/secs)
}

// send writes blocks until the limit, the context's end or an error.
func send(ctx context.Context, c *udt.Conn, limit int64) (int64, error) {
	block := make([]byte, blockSize)
	var sent int64
	for ctx.Err() == nil && (limit == 0 || sent < limit) {
		n := int64(len(block))
		if limit > 0 {
			n = min(n, limit-sent)
		}
		// A deadline lets a blocked Write notice the end of ctx.
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetWriteDeadline(dl)
		}
		k, err := c.Write(block[:n])
		sent += int64(k)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return sent, err
		}
	}
	return sent, nil
}

// monitor prints the C++ appclient's per-second report.
func monitor(ctx context.Context, c *udt.Conn) {
	fmt.Println("SendRate(Mb/s)\tRTT(ms)\tCWnd\tPktSndPeriod(us)\tRecvACK\tRecvNAK")
	c.Stats() // start the first interval now
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := c.Stats()
		fmt.Printf("%.4g\t\t%.4g\t%d\t%.4g\t\t\t%d\t%d\n",
			s.SendRate, float64(s.RTT.Microseconds())/1000, s.CongestionWindow,
			float64(s.PktSndPeriod.Nanoseconds())/1000, s.Interval.ACKRecv, s.Interval.NAKRecv)
	}
}
