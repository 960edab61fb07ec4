// Command recvfile is the Go counterpart of the C++ library's recvfile
// example: it asks a sendfile server (../sendfile or the C++ sendfile) for a
// file and writes it to a local file, printing a progress line with the
// rate and the time left each second.
//
//	recvfile server_ip server_port remote_filename local_filename
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/udt-go/udt"
)

func main() {
	if len(os.Args) != 5 {
		usage()
	}
	if p, err := strconv.Atoi(os.Args[2]); err != nil || p <= 0 || p > 65535 {
		usage()
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4]); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
}

func run(host, port, remote, local string) error {
	if len(remote) == 0 || len(remote) > 1023 {
		return fmt.Errorf("remote_filename: length %d out of range 1..1023", len(remote))
	}
	c, err := udt.Dial("udp", net.JoinHostPort(host, port))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	req := binary.LittleEndian.AppendUint32(nil, uint32(len(remote)))
	if _, err := c.Write(append(req, remote...)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	var size int64
	if err := binary.Read(c, binary.LittleEndian, &size); err != nil {
		return fmt.Errorf("recv: %w", err)
	}
	if size < 0 {
		return fmt.Errorf("no such file %s on the server", remote)
	}
	f, err := os.Create(local)
	if err != nil {
		return err
	}
	var got atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	go progress(&got, size, start, done)
	n, err := io.Copy(f, io.TeeReader(io.LimitReader(c, size), counter{&got}))
	close(done)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("recvfile: %w", err)
	}
	if n < size {
		return fmt.Errorf("recvfile: %w after %d of %d bytes", io.ErrUnexpectedEOF, n, size)
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("received %s: %d bytes in %.2f s, %.1f Mb/s\n", local, n, secs, float64(n)*8/1e6/max(secs, 1e-9))
	return nil
}

// counter adds what passes through it to n.
type counter struct{ n *atomic.Int64 }

func (w counter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// progress prints, each second until done, how much has arrived, the rate
// over the last second and the time left at that rate.
func progress(got *atomic.Int64, size int64, start time.Time, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastAt := int64(0), start
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			n := got.Load()
			fmt.Println(progressLine(n, size, float64(n-last)/now.Sub(lastAt).Seconds()))
			last, lastAt = n, now
		}
	}
}

// progressLine reports n of size bytes received at rate bytes/s.
func progressLine(n, size int64, rate float64) string {
	eta := "--"
	if rate > 0 {
		eta = time.Duration(float64(size-n) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100.0
	if size > 0 {
		pct = float64(n) * 100 / float64(size)
	}
	return fmt.Sprintf("%5.1f%%  %d/%d bytes  %.1f Mb/s  ETA %s", pct, n, size, rate*8/1e6, eta)
}

func usage() {
	fmt.Println("usage: recvfile server_ip server_port remote_filename local_filename")
	os.Exit(1)
}
