package main

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/udt-go/udt"
)

// useTransport is -transport: the Go side opens its UDP sockets itself
// and carries UDT on them through a udt.Transport, as a program that owns
// its socket does, instead of letting Dial and Listen open theirs. Its
// name in reports is "gotr".
var useTransport bool

// ownSocket is a UDP socket of ours under a Transport.
type ownSocket struct {
	uc *net.UDPConn
	tr *udt.Transport
}

// openTransport opens a UDP socket on laddr (nil: any) and a Transport
// on it, retrying for a moment while the address is in use (see
// retryInUse).
func openTransport(ctx context.Context, network string, laddr *net.UDPAddr) (*ownSocket, error) {
	uc, err := retryInUse(ctx, func() (*net.UDPConn, error) { return net.ListenUDP(network, laddr) })
	if err != nil {
		return nil, err
	}
	tr, err := udt.NewTransport(uc)
	if err != nil {
		uc.Close()
		return nil, err
	}
	return &ownSocket{uc: uc, tr: tr}, nil
}

// retryInUse calls open until it succeeds, fails other than with the
// address in use, or two seconds pass: the previous test's last connection
// may be closing the socket.
func retryInUse[T any](ctx context.Context, open func() (T, error)) (T, error) {
	until := time.Now().Add(2 * time.Second)
	for {
		v, err := open()
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(until) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// close ends the Transport, then closes the socket.
func (s *ownSocket) close() {
	if s != nil {
		s.tr.Close()
		s.uc.Close()
	}
}

// dialUDT dials addr with cfg: through a Transport on a socket of its own
// with -transport (the returned socket, to close after the connection),
// else as udt.Dialer does.
func dialUDT(ctx context.Context, cfg udt.Config, addr string) (*udt.Conn, *ownSocket, error) {
	if !useTransport {
		d := udt.Dialer{Config: cfg}
		c, err := d.DialUDT(ctx, "udp", addr)
		return c, nil, err
	}
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, nil, err
	}
	network := "udp4"
	if raddr.IP.To4() == nil {
		network = "udp6"
	}
	s, err := openTransport(ctx, network, nil)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.tr.Dial(ctx, raddr, cfg)
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return c, s, nil
}
