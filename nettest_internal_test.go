package udt

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/udt-go/udt/internal/netsim"
)

// TestNettestLossyLink runs x/net's net.Conn conformance suite on stream
// connections across an emulated link with 2% loss each way and a 20 ms
// round trip. It runs in real time: nettest calls t.Run, which a synctest
// bubble does not allow, and its timeouts are real timers.
func TestNettestLossyLink(t *testing.T) {
	link := netsim.LinkConfig{Delay: 10 * time.Millisecond, Loss: 0.02}
	// Smaller buffers than the default 8192 packets bound what the writers
	// of FutureTimeout and CloseTimeout queue before their deadline, which
	// the echo then carries back through the lossy link: about a MiB
	// rather than 8, seconds rather than tens within nettest's minute.
	cfg := Config{SendBuffer: 1024, ReceiveBuffer: 1024}
	seed := uint64(0)
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		seed++
		return netsimPipe(link, cfg, seed)
	})
}

// netsimPipe connects a client and a server across an emulated link in
// real time, for nettest's MakePipe; stop closes both ends at once and the
// listener. Unlike simPair it leaves waiting for the closed connections'
// goroutines to TestMain's leak check.
func netsimPipe(link netsim.LinkConfig, cfg Config, seed uint64) (c1, c2 net.Conn, stop func(), err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, nil, nil, err
	}
	a, b := netsim.NewPacketPipe(link, link, seed)
	ma := newMultiplexer(netPacketConn{c: a})
	ma.start()
	mb := newMultiplexer(netPacketConn{c: b})
	mb.start()
	ln, err := listenOn(mb, cfg)
	if err != nil {
		ma.release()
		mb.release()
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialOn(ctx, ma, cfg, mb.laddr)
	if err != nil {
		ln.Close()
		return nil, nil, nil, err
	}
	s, err := ln.AcceptUDT()
	if err != nil {
		c.Close()
		ln.Close()
		return nil, nil, nil, err
	}
	stop = func() {
		// Each end's Close may linger until the other stops reading.
		var wg sync.WaitGroup
		wg.Go(func() { c.Close() })
		wg.Go(func() { s.Close() })
		wg.Wait()
		ln.Close()
	}
	return c, s, stop, nil
}
