package integrationtests

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/udt-go/udt"
)

// TestNettestLoopback runs x/net's net.Conn conformance suite on stream
// connections over loopback UDP.
func TestNettestLoopback(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		ln, err := udt.Listen("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, nil, err
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			accepted <- c
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c1, err = udt.DialContext(ctx, "udp", ln.Addr().String())
		if err != nil {
			ln.Close()
			<-accepted
			return nil, nil, nil, err
		}
		c2 = <-accepted
		return c1, c2, closeAll(c1, c2, ln), nil
	})
}

// closeAll closes the two ends one after the other, as a program that
// does not know its peer's state would, then the listener. A writer whose
// peer stopped reading (PresentTimeout, FutureTimeout) must not hold its
// Close: its write deadline has passed, and its peer's window is closed.
func closeAll(c1, c2 net.Conn, ln net.Listener) func() {
	return func() {
		c1.Close()
		c2.Close()
		ln.Close()
	}
}

// plainPacketConn hides *net.UDPConn behind net.PacketConn, so that a
// Transport on it takes the one-datagram-at-a-time path.
type plainPacketConn struct{ net.PacketConn }

// TestNettestTransportPlain runs the same suite on connections between
// two Transports on plain net.PacketConns (not *net.UDPConn): the path a
// socket of the caller's own kind takes.
func TestNettestTransportPlain(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		var socks []*net.UDPConn
		var trs []*udt.Transport
		cleanup := func() {
			for _, tr := range trs {
				tr.Close()
			}
			for _, s := range socks {
				s.Close()
			}
		}
		for range 2 {
			uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				cleanup()
				return nil, nil, nil, err
			}
			socks = append(socks, uc)
			tr, err := udt.NewTransport(plainPacketConn{uc})
			if err != nil {
				cleanup()
				return nil, nil, nil, err
			}
			trs = append(trs, tr)
		}
		ln, err := trs[1].Listen(udt.Config{})
		if err != nil {
			cleanup()
			return nil, nil, nil, err
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			accepted <- c
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := trs[0].Dial(ctx, socks[1].LocalAddr(), udt.Config{})
		if err != nil {
			ln.Close()
			<-accepted
			cleanup()
			return nil, nil, nil, err
		}
		c2 = <-accepted
		stop = func() {
			closeAll(c, c2, ln)()
			cleanup()
		}
		return c, c2, stop, nil
	})
}
