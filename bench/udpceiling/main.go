// Command udpceiling measures what raw UDP moves over loopback on this
// machine, the ceiling any UDT implementation's goodput is set against:
// one sender to one receiver on 127.0.0.1, each mode for -t seconds.
//
//	udpceiling [-size bytes] [-t secs] [-modes plain,mmsg,gso] [-buf bytes] [-json]
//
// The modes:
//
//	plain  one WriteTo and one ReadFrom per datagram (net.UDPConn)
//	mmsg   sendmmsg and recvmmsg, 64 datagrams a call at most
//	gso    UDP GSO on send (UDP_SEGMENT: runs of up to 64 datagrams,
//	       at most 65,507 bytes, in one buffer, several runs a sendmmsg)
//	       and UDP GRO on receive (UDP_GRO: the kernel hands over runs
//	       whole; the segment size in each run's control message gives
//	       the datagrams it holds)
//
// The sockets are the standard library's: the batch calls are made on
// their descriptors through syscall.RawConn and wait in Go's network
// poller, as the udt package's batch I/O does (batchio_linux.go). The
// sender sends to an unconnected socket's address, as udt does. Both
// ends run in this one process, a goroutine each; the CPU time is the
// process's (getrusage), both ends together, as CPU seconds per GB
// received. The receiver counts what it received: goodput is the UDP
// payload bits a second, from the end of its first read to the end of its
// last one. Socket buffers are set to -buf bytes, past the system's
// limits where the process may (SO_RCVBUFFORCE, SO_SNDBUFFORCE).
//
// -size is the UDP payload of a datagram: bench/compare.sh passes the UDT
// MSS less 28 bytes of IPv4 and UDP headers, 1472 for an MSS of 1500.
// Each mode ends within -t seconds and a tenth of a second of draining.
// mmsg and gso need Linux.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of the flags.
const (
	maxPayload = 65507 // the largest UDP payload over IPv4
	maxSecs    = 60
	minBuf     = 64 << 10
	maxBuf     = 1 << 30
)

// modes in the order they run.
var modes = []string{"plain", "mmsg", "gso"}

// drain is how long the receiver goes on reading after the sender stops.
const drain = 100 * time.Millisecond

// errUnsupported is the error of a mode this system lacks.
var errUnsupported = errors.New("not supported here")

// options are the parsed command line.
type options struct {
	size  int
	secs  float64
	modes []string
	buf   int
	json  bool
}

// parseArgs parses the command line (without the program name). Its errors
// name the flag at fault.
func parseArgs(args []string) (options, error) {
	o := options{}
	var list string
	fs := flag.NewFlagSet("udpceiling", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.IntVar(&o.size, "size", 1472, "UDP payload of a datagram in `bytes`")
	fs.Float64Var(&o.secs, "t", 2, "measure each mode for this many `seconds`")
	fs.StringVar(&list, "modes", strings.Join(modes, ","), "the `modes` to measure, comma-separated: plain, mmsg, gso")
	fs.IntVar(&o.buf, "buf", 16<<20, "socket send and receive buffer `bytes`")
	fs.BoolVar(&o.json, "json", false, "print JSON, one object per mode")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.modes, err = parseModes(list); err != nil {
		return o, err
	}
	switch {
	case o.size < 1 || o.size > maxPayload:
		return o, fmt.Errorf("-size %d: payload must be 1 to %d bytes", o.size, maxPayload)
	case !(o.secs > 0 && o.secs <= maxSecs):
		return o, fmt.Errorf("-t %g: seconds must be more than 0 and at most %d", o.secs, maxSecs)
	case o.buf < minBuf || o.buf > maxBuf:
		return o, fmt.Errorf("-buf %d: buffer must be %d to %d bytes", o.buf, minBuf, maxBuf)
	}
	return o, nil
}

// parseModes parses -modes: known names, each once, run in the order of
// modes whatever the order given.
func parseModes(list string) ([]string, error) {
	var got []string
	for m := range strings.SplitSeq(list, ",") {
		m = strings.TrimSpace(m)
		switch {
		case !slices.Contains(modes, m):
			return nil, fmt.Errorf("-modes %q: unknown mode %q (plain, mmsg, gso)", list, m)
		case slices.Contains(got, m):
			return nil, fmt.Errorf("-modes %q: %s twice", list, m)
		}
		got = append(got, m)
	}
	slices.SortFunc(got, func(a, b string) int { return slices.Index(modes, a) - slices.Index(modes, b) })
	return got, nil
}

// result is one mode's measurement, printed as one JSON object.
type result struct {
	Type        string  `json:"type"` // "ceiling"
	Mode        string  `json:"mode"`
	Size        int     `json:"size"`     // UDP payload bytes a datagram
	T           float64 `json:"t"`        // -t: the sender's seconds
	Secs        float64 `json:"secs"`     // the receiver's window
	Sent        int64   `json:"sent"`     // datagrams sent
	Received    int64   `json:"received"` // datagrams received
	Bytes       int64   `json:"bytes"`    // payload bytes received
	GoodputMbps float64 `json:"goodput_mbps"`
	DgramsPerS  float64 `json:"dgrams_per_s"`
	CPUSecs     float64 `json:"cpu_s"` // both ends
	CPUPerGB    float64 `json:"cpu_s_per_gb"`
	RcvBuf      int     `json:"rcvbuf"` // the receive buffer the kernel gave
	SndBuf      int     `json:"sndbuf"`
	Error       string  `json:"error,omitempty"`
}

// count is what the receiver counted: all of it, and the part within
// its window (after its first read) over the window's length.
type count struct {
	dgrams, bytes       int64 // all received
	winDgrams, winBytes int64 // received after the first read
	win                 time.Duration
}

// rates fills r's rates from the receiver's count c and the CPU seconds
// both ends used.
func (r *result) rates(c count, cpu float64) {
	r.Received, r.Bytes = c.dgrams, c.bytes
	r.Secs = c.win.Seconds()
	r.CPUSecs = cpu
	if r.Secs > 0 {
		r.GoodputMbps = float64(c.winBytes) * 8 / 1e6 / r.Secs
		r.DgramsPerS = float64(c.winDgrams) / r.Secs
	}
	if c.bytes > 0 {
		r.CPUPerGB = cpu / (float64(c.bytes) / 1e9)
	}
}

// counter is the receiver's tally; add is called after each read.
type counter struct {
	count
	first, last time.Time
}

func (c *counter) add(dgrams, bytes int) {
	now := time.Now()
	c.dgrams += int64(dgrams)
	c.bytes += int64(bytes)
	if c.first.IsZero() {
		c.first = now
	} else {
		c.winDgrams += int64(dgrams)
		c.winBytes += int64(bytes)
	}
	c.last = now
}

func (c *counter) result() count {
	r := c.count
	r.win = c.last.Sub(c.first)
	return r
}

// pair is a receiving and a sending socket on 127.0.0.1.
type pair struct {
	rx, tx *net.UDPConn
	dst    netip.AddrPort
}

func openPair(buf int) (*pair, error) {
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	rx, err := net.ListenUDP("udp4", lo)
	if err != nil {
		return nil, err
	}
	tx, err := net.ListenUDP("udp4", lo)
	if err != nil {
		rx.Close()
		return nil, err
	}
	p := &pair{rx: rx, tx: tx, dst: rx.LocalAddr().(*net.UDPAddr).AddrPort()}
	for _, c := range []*net.UDPConn{rx, tx} {
		if err := setBuffers(c, buf); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

func (p *pair) close() {
	p.rx.Close()
	p.tx.Close()
}

// measure runs one mode for d and returns its result; the error is a
// failure to set the mode up or of a socket call.
func measure(mode string, size int, d time.Duration, buf int) (result, error) {
	r := result{Type: "ceiling", Mode: mode, Size: size, T: d.Seconds()}
	p, err := openPair(buf)
	if err != nil {
		return r, err
	}
	defer p.close()
	r.RcvBuf, _ = buffers(p.rx)
	_, r.SndBuf = buffers(p.tx)

	var send func(stop func() bool) (int64, error)
	var recv func(c *counter) error
	switch mode {
	case "plain":
		send, recv = p.sendPlain(size), p.recvPlain(size)
	case "mmsg":
		send, recv, err = p.mmsg(size)
	case "gso":
		send, recv, err = p.gso(size)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return r, err
	}

	cpu0 := cpuSeconds()
	var wg sync.WaitGroup
	var c counter
	var rerr error
	wg.Go(func() {
		rerr = recv(&c)
		if errors.Is(rerr, os.ErrDeadlineExceeded) {
			rerr = nil // the drain is over
		}
	})
	end := time.Now().Add(d)
	var stopped atomic.Bool
	stop := func() bool { return stopped.Load() || time.Now().After(end) }
	// The receiver's deadline bounds the run if the sender stalls.
	_ = p.rx.SetReadDeadline(end.Add(drain))
	sent, serr := send(stop)
	r.Sent = sent
	_ = p.rx.SetReadDeadline(time.Now().Add(drain))
	wg.Wait()
	r.rates(c.result(), cpuSeconds()-cpu0)
	if serr != nil {
		return r, fmt.Errorf("send: %w", serr)
	}
	if rerr != nil {
		return r, fmt.Errorf("receive: %w", rerr)
	}
	return r, nil
}

func (p *pair) sendPlain(size int) func(stop func() bool) (int64, error) {
	return func(stop func() bool) (int64, error) {
		b := make([]byte, size)
		var n int64
		_ = p.tx.SetWriteDeadline(time.Now().Add(maxSecs * time.Second))
		for !stop() {
			for range 64 {
				if _, err := p.tx.WriteToUDPAddrPort(b, p.dst); err != nil {
					return n, err
				}
				n++
			}
		}
		return n, nil
	}
}

func (p *pair) recvPlain(size int) func(c *counter) error {
	return func(c *counter) error {
		b := make([]byte, size+1)
		for {
			n, _, err := p.rx.ReadFromUDPAddrPort(b)
			if err != nil {
				return err
			}
			c.add(1, n)
		}
	}
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run runs udpceiling and returns its exit status.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "udpceiling: %v\n", err)
		fmt.Fprintln(stderr, "usage: udpceiling [-size bytes] [-t secs] [-modes plain,mmsg,gso] [-buf bytes] [-json]")
		return 2
	}
	d := time.Duration(o.secs * float64(time.Second))
	if !o.json {
		fmt.Fprintf(stdout, "raw UDP over 127.0.0.1: %d B datagrams, %g s a mode, one sender and one receiver in one process\n", o.size, o.secs)
		fmt.Fprintf(stdout, "%-6s  %14s  %12s  %10s  %12s  %12s  %s\n", "mode", "goodput Mbit/s", "datagrams/s", "CPU-s/GB", "sent", "received", "buffers rcv/snd")
	}
	status := 0
	for _, m := range o.modes {
		r, err := measure(m, o.size, d, o.buf)
		if err != nil {
			r.Error = err.Error()
			if !errors.Is(err, errUnsupported) {
				status = 1
			}
		}
		if o.json {
			line, _ := json.Marshal(r)
			fmt.Fprintf(stdout, "%s\n", line)
			continue
		}
		if err != nil {
			fmt.Fprintf(stdout, "%-6s  %v\n", m, err)
			continue
		}
		fmt.Fprintf(stdout, "%-6s  %14.1f  %12.0f  %10.2f  %12d  %12d  %d/%d\n",
			m, r.GoodputMbps, r.DgramsPerS, r.CPUPerGB, r.Sent, r.Received, r.RcvBuf, r.SndBuf)
	}
	return status
}
