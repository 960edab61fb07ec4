package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/udt-go/udt"
)

// The rendezvous protocol, one line per datagram:
//
//	peer → server: "p2pcopy register SESSION ROLE"   (ROLE: send or recv)
//	server → peer: "p2pcopy peer ADDR:PORT"           (the other's public address)
//
// A peer repeats its registration until the answer comes; the server
// answers every registration once both roles of the session are known,
// and forgets a session after sessionTTL.
const (
	registerPrefix = "p2pcopy register "
	peerPrefix     = "p2pcopy peer "
	sessionTTL     = 5 * time.Minute
	maxSessions    = 10000
	registerEvery  = 250 * time.Millisecond
)

// session is what the server knows of one.
type session struct {
	addrs [2]netip.AddrPort // by role: send, recv
	seen  time.Time
}

// serve runs the rendezvous server on listen until ctx ends.
func serve(ctx context.Context, listen string, log io.Writer) error {
	la, err := udpAddr(listen)
	if err != nil {
		return err
	}
	uc, err := net.ListenUDP("udp4", la)
	if err != nil {
		return err
	}
	fmt.Fprintln(log, "p2pcopy server on", uc.LocalAddr())
	go func() {
		<-ctx.Done()
		uc.Close()
	}()
	return serveOn(uc, log)
}

// serveOn answers registrations on uc until it is closed.
func serveOn(uc *net.UDPConn, log io.Writer) error {
	sessions := map[string]*session{}
	buf := make([]byte, 512)
	for {
		n, from, err := uc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		name, role, ok := parseRegister(string(buf[:n]))
		if !ok {
			continue
		}
		now := time.Now()
		s := sessions[name]
		if s == nil || now.Sub(s.seen) > sessionTTL {
			if len(sessions) >= maxSessions {
				for k, old := range sessions {
					if now.Sub(old.seen) > sessionTTL {
						delete(sessions, k)
					}
				}
				if len(sessions) >= maxSessions {
					continue
				}
			}
			s = &session{}
			sessions[name] = s
		}
		s.seen = now
		if s.addrs[role] != from {
			s.addrs[role] = from
			fmt.Fprintf(log, "session %q: %s at %v\n", name, roles[role], from)
		}
		if other := s.addrs[1-role]; other.IsValid() {
			_, _ = uc.WriteToUDPAddrPort([]byte(peerPrefix+other.String()), from)
		}
	}
}

var roles = [2]string{"send", "recv"}

// parseRegister decodes a registration.
func parseRegister(msg string) (name string, role int, ok bool) {
	rest, ok := strings.CutPrefix(msg, registerPrefix)
	if !ok {
		return "", 0, false
	}
	name, r, ok := strings.Cut(rest, " ")
	if !ok || name == "" || len(name) > 128 {
		return "", 0, false
	}
	switch r {
	case "send":
		return name, 0, true
	case "recv":
		return name, 1, true
	}
	return "", 0, false
}

// peerOptions are a peer's flags.
type peerOptions struct {
	role    string // send or recv
	server  string
	session string
	port    int
	timeout time.Duration
}

// connect opens the peer's socket, learns the other peer's public address
// from the server on it, and dials it in rendezvous on the same socket.
// The caller closes the connection, then calls release, which closes the
// Transport and the socket.
func connect(ctx context.Context, o peerOptions, log io.Writer) (release func(), c *udt.Conn, err error) {
	server, err := udpAddr(o.server)
	if err != nil {
		return nil, nil, err
	}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{Port: o.port})
	if err != nil {
		return nil, nil, err
	}
	tr, err := udt.NewTransport(uc)
	if err != nil {
		uc.Close()
		return nil, nil, err
	}
	release = func() {
		tr.Close()
		uc.Close()
	}
	fail := func(err error) (func(), *udt.Conn, error) {
		release()
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	peer, err := register(ctx, tr, server, o)
	if err != nil {
		return fail(fmt.Errorf("rendezvous server %v: %w", server, err))
	}
	fmt.Fprintf(log, "peer at %v; connecting\n", peer)
	c, err = tr.DialRendezvous(ctx, net.UDPAddrFromAddrPort(peer), udt.Config{ConnectTimeout: o.timeout})
	if err != nil {
		return fail(err)
	}
	return release, c, nil
}

// register repeats the registration until the server names the peer.
func register(ctx context.Context, tr *udt.Transport, server net.Addr, o peerOptions) (netip.AddrPort, error) {
	msg := []byte(registerPrefix + o.session + " " + o.role)
	buf := make([]byte, 512)
	for {
		if _, err := tr.WriteTo(msg, server); err != nil {
			return netip.AddrPort{}, err
		}
		rctx, cancel := context.WithTimeout(ctx, registerEvery)
		n, from, err := tr.ReadNonUDTPacket(rctx, buf)
		cancel()
		switch {
		case err == nil:
			if from.String() != server.String() {
				continue
			}
			if s, ok := strings.CutPrefix(string(buf[:n]), peerPrefix); ok {
				return netip.ParseAddrPort(s)
			}
		case ctx.Err() != nil:
			return netip.AddrPort{}, fmt.Errorf("no peer for session %q: %w", o.session, ctx.Err())
		}
	}
}
