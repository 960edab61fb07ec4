// Command udtproxy carries TCP connections over UDT, so that TCP programs
// that know nothing of UDT can use it on a long or lossy path:
//
//	app ──TCP──▶ udtproxy client ══UDT══▶ udtproxy server ──TCP──▶ service
//
//	udtproxy server [-addr :9000] TARGET_TCP
//	udtproxy client [-addr :8080] [-drain 5s] REMOTE_UDT
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
// The proxy therefore never forwards a half-close. Instead, when the TCP
// side stops sending, the proxy stops that direction and lets the other one
// drain before it closes both connections:
//
//   - On the client side, a TCP app that half-closes usually still wants
//     the reply (send a request, shut down writing, read to EOF). The reply
//     keeps flowing until the server side closes, or until nothing has
//     arrived for the drain time (-drain); then both are closed and the app
//     reads EOF after everything sent to it. An app that closes outright
//     looks the same to the proxy, so its tunnel too stays open for the
//     drain time after the last reply bytes.
//   - On the server side, a service that closes has said everything; the
//     proxy closes the UDT connection at once (Close still delivers all it
//     was given), so the app sees EOF without waiting.
//
// When the UDT side ends (the other proxy closed), everything it sent has
// been written to TCP; the proxy then closes the TCP connection for writing
// and closes it. A service that waits for the app's EOF before it answers
// cannot be reached through this proxy: the app's half-close never
// reaches it.
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
	switch os.Args[1] {
	case "server":
		fs.StringVar(&addr, "addr", ":9000", "UDP address to listen on")
	case "client":
		fs.StringVar(&addr, "addr", ":8080", "TCP address to listen on")
		fs.DurationVar(&drain, "drain", 5*time.Second, "how long a reply may stay silent after the app stops sending")
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

	p := &proxy{logf: log.Printf}
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
	fmt.Fprintln(os.Stderr, "usage: udtproxy server [-addr :9000] TARGET_TCP\n       udtproxy client [-addr :8080] [-drain 5s] REMOTE_UDT")
	os.Exit(2)
}

// proxy runs tunnels and waits for them when its listener closes.
type proxy struct {
	logf func(format string, args ...any)
	wg   sync.WaitGroup
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
		p.tunnel(c.RemoteAddr(), c.(*net.TCPConn), uc, drain)
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
		p.tunnel(uc.RemoteAddr(), c.(*net.TCPConn), uc, 0)
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
