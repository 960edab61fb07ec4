// Command p2pcopy copies a file between two hosts that may both be behind
// NATs, over a UDT rendezvous connection, in the manner of the tool of the
// same name.
//
//	p2pcopy server [-listen :3478]
//	p2pcopy send -server HOST:PORT -session NAME [-port 9000] FILE
//	p2pcopy recv -server HOST:PORT -session NAME [-port 9000] [-o FILE]
//
// The server, on a host both peers reach (a public address), pairs the
// sender and the receiver of a session and tells each the address the
// other's datagrams came from: the public address its NAT maps it to.
// Each peer talks to the server on its udt.Transport's own socket, so that
// the mapping the server sees is the one the rendezvous then uses; both
// dial each other at once (udt.Transport.DialRendezvous), which opens both
// NATs' mappings (hole punching). Endpoint-independent NATs (full and
// port-restricted cone, most home routers) can be crossed; a symmetric NAT
// maps each destination to its own port, and the rendezvous times out
// with an error that says so when it can tell.
//
// The sender then sends the file's name, size and bytes and their SHA-256;
// the receiver checks the digest, prints a progress line each second and
// exits non-zero if anything differs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "server":
		fs := flag.NewFlagSet("server", flag.ExitOnError)
		listen := fs.String("listen", ":3478", "UDP address to serve on")
		_ = fs.Parse(args)
		err = serve(ctx, *listen, os.Stdout)
	case "send", "recv":
		fs := flag.NewFlagSet(cmd, flag.ExitOnError)
		o := peerOptions{role: cmd}
		fs.StringVar(&o.server, "server", "", "the rendezvous server's HOST:PORT (required)")
		fs.StringVar(&o.session, "session", "", "a name both peers give (required)")
		fs.IntVar(&o.port, "port", 9000, "local UDP port")
		fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for the peer")
		out := fs.String("o", "", "recv: where to write the file (default: the name the sender gives, in the working directory)")
		_ = fs.Parse(args)
		if o.server == "" || o.session == "" || cmd == "send" && fs.NArg() != 1 {
			usage()
		}
		if cmd == "send" {
			err = send(ctx, o, fs.Arg(0), os.Stdout)
		} else {
			err = recv(ctx, o, *out, os.Stdout)
		}
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pcopy:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  p2pcopy server [-listen :3478]
  p2pcopy send -server HOST:PORT -session NAME [-port 9000] [-timeout 30s] FILE
  p2pcopy recv -server HOST:PORT -session NAME [-port 9000] [-timeout 30s] [-o FILE]
`)
	os.Exit(2)
}

// progress prints, each second, how much of total has gone through n.
type progress struct {
	w     io.Writer
	verb  string
	total int64
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, verb string, total int64) *progress {
	now := time.Now()
	return &progress{w: w, verb: verb, total: total, start: now, last: now}
}

func (p *progress) update(n int64, final bool) {
	now := time.Now()
	if !final && now.Sub(p.last) < time.Second {
		return
	}
	p.last = now
	secs := max(now.Sub(p.start).Seconds(), 1e-9)
	fmt.Fprintf(p.w, "%s %d of %d bytes (%.0f %%), %.1f Mbit/s\n", p.verb, n, p.total,
		100*float64(n)/float64(max(p.total, 1)), float64(n)*8/1e6/secs)
}

// udpAddr resolves a UDP address for flags.
func udpAddr(s string) (*net.UDPAddr, error) {
	a, err := net.ResolveUDPAddr("udp4", s)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", s, err)
	}
	return a, nil
}
