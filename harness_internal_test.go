package udt

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/netsim"
)

// The package's own tests make their connections here: over loopback
// (listenRaw, internalPair), across the netsim emulator in virtual time
// (simPair), over loopback sockets that lose datagrams (lossyMux), and
// with no socket at all (testPeer, testpeer_internal_test.go). The batch
// I/O tests, Linux only, have theirs in batchio_linux_test.go (ioMux,
// ioPair); the public-API tests use internal/harness.

// listenRaw returns a listener on 127.0.0.1 with cfg.
func listenRaw(t *testing.T, cfg Config) *Listener {
	t.Helper()
	lc := ListenConfig{Config: cfg}
	ln, err := lc.ListenUDT(context.Background(), "udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// internalPair returns a dialed conn and its accepted peer.
func internalPair(t *testing.T, cfg Config) (*Conn, *Conn) {
	t.Helper()
	ln := listenRaw(t, cfg)
	d := Dialer{Config: cfg}
	c, err := d.DialUDT(context.Background(), "udp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s, err := ln.AcceptUDT()
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return c, s
}

// simPair connects a client and a server across an emulated link: a2b
// carries the client's datagrams, b2a the server's. Must run in a synctest
// bubble or with real time; everything is closed at the test's end.
func simPair(t *testing.T, a2b, b2a netsim.LinkConfig, cfg Config, seed uint64) (c, s *Conn, pa, pb *netsim.PipeConn) {
	t.Helper()
	// Runs last: closed connections linger for closeWait, so a bubble
	// waits that long (in virtual time) for their goroutines to end.
	t.Cleanup(func() { time.Sleep(closeWait + time.Second) })
	cfg, err := cfg.withDefaults()
	require.NoError(t, err)
	a, b := netsim.NewPacketPipe(a2b, b2a, seed)
	ma := newMultiplexer(netPacketConn{c: a})
	ma.start()
	mb := newMultiplexer(netPacketConn{c: b})
	mb.start()
	ln, err := listenOn(mb, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err = dialOn(ctx, ma, cfg, mb.laddr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s, err = ln.AcceptUDT()
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return c, s, a.(*netsim.PipeConn), b.(*netsim.PipeConn)
}

// transfer sends n bytes from c to s and checks them by SHA-256; it returns
// the goodput in Mbit/s of (virtual) time.
func transfer(t *testing.T, c, s *Conn, n int) float64 {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*31 + i>>11)
	}
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.Close()
		}
		werr <- err
	}()
	h := sha256.New()
	got, err := io.Copy(h, s)
	require.NoError(t, err)
	require.NoError(t, <-werr)
	require.Equal(t, int64(n), got)
	require.Equal(t, sha256.Sum256(data), [32]byte(h.Sum(nil)), "delivered bytes differ from those sent")
	return float64(n) * 8 / 1e6 / time.Since(start).Seconds()
}

// dropConn loses a seeded random fraction of the datagrams it sends.
type dropConn struct {
	packetConn
	mu   sync.Mutex
	rng  *rand.Rand
	loss float64
}

func (d *dropConn) WriteTo(b []byte, to netip.AddrPort) error {
	d.mu.Lock()
	drop := d.rng.Float64() < d.loss
	d.mu.Unlock()
	if drop {
		return nil
	}
	return d.packetConn.WriteTo(b, to)
}

// lossyMux makes a started multiplexer on a loopback socket whose sends
// are lost with probability loss.
func lossyMux(t *testing.T, loss float64, seed uint64) *multiplexer {
	t.Helper()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	_ = uc.SetReadBuffer(8 << 20)
	m := newMultiplexer(&dropConn{packetConn: udpConn{c: uc}, rng: rand.New(rand.NewPCG(seed, 1)), loss: loss})
	m.start()
	return m
}

// pattern is n bytes that differ at every offset modulo 2^32.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := 0; i+4 <= n; i += 4 {
		binary.LittleEndian.PutUint32(b[i:], uint32(i)*2654435761)
	}
	return b
}

// runAlone runs the calling test alone in a child process of the test
// binary and reports true, unless this is that child: then it reports false
// and the test goes on. For tests that count the process's allocations,
// which earlier tests' connections, timing out in the background, add to.
func runAlone(t *testing.T) bool {
	t.Helper()
	if os.Getenv("UDT_ALLOCS_CHILD") != "" {
		return false
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "UDT_ALLOCS_CHILD=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child process:\n%s", out)
	require.NoError(t, err, "%s in a process of its own", t.Name())
	return true
}
