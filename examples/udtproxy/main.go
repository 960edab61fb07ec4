// Command udtproxy carries TCP connections over UDT, so that TCP programs
// that know nothing of UDT can use it on a long or lossy path:
//
//	app ──TCP──▶ udtproxy client ══UDT══▶ udtproxy server ──TCP──▶ service
//
//	udtproxy server [-addr :9000] TARGET_TCP
//	udtproxy client [-addr :8080] [-plain] [-drain 5s] REMOTE_UDT
//
// The server side accepts UDT connections and forwards each to the TCP
// address TARGET_TCP; the client side accepts TCP connections and forwards
// each over a new UDT connection to the server side at REMOTE_UDT. Each
// prints "listening on udt|tcp ADDR" once it listens, and logs the bytes
// carried each way when a connection ends.
//
// # Half-close
//
// TCP can end one direction and keep the other (shutdown(SHUT_WR), what
// [net.TCPConn.CloseWrite] does); UDT cannot: Close ends both directions.
// Between two udtproxy ends the tunnel carries the half-close itself: the
// client sends a hello, the server answers it, and from then on each
// direction is a series of length-prefixed frames ended by an empty one
// when its TCP side stops sending; the far end then shuts down writing on
// its TCP connection, and the tunnel closes once both directions have
// ended. A request, a half-close and the reply take a round trip, and a
// service that waits for the app's EOF before it answers works.
//
// A client started with -plain talks to a UDT service that is not
// udtproxy: no hello, no frames. The half-close then cannot be forwarded;
// when the app stops sending, the reply keeps flowing until the service
// closes, or until nothing has arrived for the drain time (-drain), and
// then both connections are closed. A server proxy whose client sends no
// hello (within 5 s, or other bytes first) serves the plain stream the
// same way, the bytes it read first included.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/udt-go/udt"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	var addr string
	var drain time.Duration
	var plain bool
	switch os.Args[1] {
	case "server":
		fs.StringVar(&addr, "addr", ":9000", "UDP address to listen on")
	case "client":
		fs.StringVar(&addr, "addr", ":8080", "TCP address to listen on")
		fs.DurationVar(&drain, "drain", 5*time.Second, "with -plain: how long a reply may stay silent after the app stops sending")
		fs.BoolVar(&plain, "plain", false, "the far end is a UDT service, not udtproxy: no framing, and the drain")
	default:
		usage()
	}
	_ = fs.Parse(os.Args[2:])
	if fs.NArg() != 1 {
		usage()
	}

	server := os.Args[1] == "server"
	var ln net.Listener
	var err error
	if server {
		ln, err = udt.Listen("udp", addr)
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		log.Fatalf("udtproxy: %v", err)
	}
	if server {
		fmt.Println("listening on udt", ln.Addr())
	} else {
		fmt.Println("listening on tcp", ln.Addr())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		_ = ln.Close() // stop accepting; wait for open tunnels
		<-sig
		os.Exit(1)
	}()

	p := &proxy{logf: log.Printf, plain: plain}
	if server {
		err = p.serveUDT(ln, fs.Arg(0))
	} else {
		err = p.serveTCP(ln, fs.Arg(0), drain)
	}
	if err != nil {
		log.Fatalf("udtproxy: %v", err)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: udtproxy server [-addr :9000] TARGET_TCP\n       udtproxy client [-addr :8080] [-plain] [-drain 5s] REMOTE_UDT")
	os.Exit(2)
}

// proxy runs tunnels and waits for them when its listener closes.
type proxy struct {
	logf  func(format string, args ...any)
	plain bool // client: no framing (the far end is not udtproxy)
	wg    sync.WaitGroup
}

// serveTCP accepts TCP connections on ln and tunnels each over a new UDT
// connection to remote. It returns when ln is closed, after the tunnels
// have ended.
func (p *proxy) serveTCP(ln net.Listener, remote string, drain time.Duration) error {
	var d udt.Dialer
	return p.serve(ln, func(c net.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		uc, err := d.DialContext(ctx, "udp", remote)
		if err != nil {
			p.logf("%s: %v", c.RemoteAddr(), err)
			_ = c.Close()
			return
		}
		tc := c.(*net.TCPConn)
		if p.plain {
			p.tunnel(c.RemoteAddr(), tc, uc, drain)
			return
		}
		if _, err := io.WriteString(uc, hello); err != nil {
			p.logf("%s: %v", c.RemoteAddr(), err)
			_ = uc.Close()
			_ = c.Close()
			return
		}
		if got, ok := readHello(uc); !ok {
			// Not udtproxy: what came is the service's.
			p.tunnel(c.RemoteAddr(), tc, &prefixConn{uc, got}, drain)
			return
		}
		p.framedTunnel(c.RemoteAddr(), tc, uc)
	})
}

// serveUDT accepts UDT connections on ln and forwards each to the TCP
// address target. It returns when ln is closed, after the tunnels have
// ended.
func (p *proxy) serveUDT(ln net.Listener, target string) error {
	return p.serve(ln, func(uc net.Conn) {
		c, err := net.DialTimeout("tcp", target, 10*time.Second)
		if err != nil {
			p.logf("%s: %v", uc.RemoteAddr(), err)
			_ = uc.Close()
			return
		}
		got, ok := readHello(uc)
		if !ok {
			// Not a udtproxy client: what came is the app's.
			p.tunnel(uc.RemoteAddr(), c.(*net.TCPConn), &prefixConn{uc, got}, 0)
			return
		}
		if _, err := io.WriteString(uc, hello); err != nil {
			p.logf("%s: %v", uc.RemoteAddr(), err)
			_ = uc.Close()
			_ = c.Close()
			return
		}
		p.framedTunnel(uc.RemoteAddr(), c.(*net.TCPConn), uc)
	})
}

func (p *proxy) serve(ln net.Listener, handle func(net.Conn)) error {
	defer p.wg.Wait()
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		p.wg.Go(func() { handle(c) })
	}
}

// tunnel copies between tc and uc in both directions, then closes both.
// When tc stops sending (EOF), uc's data keeps flowing to tc until uc ends
// or stays silent for drain; with drain zero both close at once.
// from names the connection accepted, in the proxy's log.
func (p *proxy) tunnel(from net.Addr, tc *net.TCPConn, uc net.Conn, drain time.Duration) {
	var draining atomic.Bool
	type result struct {
		n   int64
		err error
	}
	upDone := make(chan result, 1)
	go func() {
		n, err := io.Copy(uc, tc)
		if err != nil {
			_ = uc.Close() // the app is gone: abort
		} else {
			draining.Store(true)
			_ = uc.SetReadDeadline(time.Now().Add(drain))
		}
		upDone <- result{n, err}
	}()

	down, derr := copyDraining(tc, uc, &draining, drain)
	if derr == nil {
		_ = tc.CloseWrite() // the other side closed: pass on the EOF
	}
	_ = uc.Close() // delivers what the up direction wrote
	_ = tc.Close()
	up := <-upDone

	p.logf("%s: %d bytes TCP to UDT, %d bytes UDT to TCP", from, up.n, down)
	for _, err := range []error{up.err, derr} {
		if err != nil && !errors.Is(err, net.ErrClosed) && !(draining.Load() && errors.Is(err, os.ErrDeadlineExceeded)) {
			p.logf("%s: %v", from, err)
		}
	}
}

// copyDraining copies src to dst until src's EOF (returning nil) or an
// error. Once draining is set, each read must come within drain.
func copyDraining(dst io.Writer, src net.Conn, draining *atomic.Bool, drain time.Duration) (int64, error) {
	buf := make([]byte, 64<<10)
	var n int64
	for {
		if draining.Load() {
			_ = src.SetReadDeadline(time.Now().Add(drain))
		}
		k, err := src.Read(buf)
		if k > 0 {
			w, werr := dst.Write(buf[:k])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
