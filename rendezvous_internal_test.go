package udt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/netsim"
	"github.com/udt-go/udt/internal/seq"
)

// rdvSide is one peer of a simulated rendezvous: its options and when it
// starts dialing.
type rdvSide struct {
	cfg   Config
	after time.Duration
}

// simRendezvous runs a rendezvous across an emulated link (a2b carries A's
// datagrams) with A and B starting at their offsets; it returns both
// connections, or fails the test. Must run in a synctest bubble.
func simRendezvous(t *testing.T, a2b, b2a netsim.LinkConfig, a, b rdvSide, seed uint64) (ca, cb *Conn, pa, pb *netsim.PipeConn) {
	t.Helper()
	t.Cleanup(func() { time.Sleep(closeWait + time.Second) })
	pca, pcb := netsim.NewPacketPipe(a2b, b2a, seed)
	ma := newMultiplexer(netPacketConn{c: pca})
	ma.start()
	mb := newMultiplexer(netPacketConn{c: pcb})
	mb.start()
	type result struct {
		c   *Conn
		err error
	}
	dial := func(m *multiplexer, side rdvSide, peer netip.AddrPort, out chan<- result) {
		time.Sleep(side.after)
		cfg, err := side.cfg.withDefaults()
		if err == nil {
			if side.cfg.ConnectTimeout == 0 {
				cfg.ConnectTimeout = DefaultRendezvousTimeout
			}
			var c *Conn
			c, err = dialRendezvousOn(t.Context(), m, cfg, peer)
			out <- result{c, err}
			return
		}
		m.release()
		out <- result{nil, err}
	}
	ra, rb := make(chan result, 1), make(chan result, 1)
	go dial(ma, a, mb.laddr, ra)
	go dial(mb, b, ma.laddr, rb)
	resA, resB := <-ra, <-rb
	for _, r := range []result{resA, resB} {
		if r.c != nil {
			t.Cleanup(func() { r.c.Close() })
		}
	}
	require.NoError(t, resA.err, "A")
	require.NoError(t, resB.err, "B")
	return resA.c, resB.c, pca.(*netsim.PipeConn), pcb.(*netsim.PipeConn)
}

// exchange moves na bytes from a to b and nb bytes from b to a at the same
// time and checks them.
func exchange(t *testing.T, a, b *Conn, na, nb int) {
	t.Helper()
	one := func(from, to *Conn, n int, salt byte, done chan<- error) {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*7+i>>9) ^ salt
		}
		werr := make(chan error, 1)
		go func() {
			_, err := from.Write(data)
			werr <- err
		}()
		got := make([]byte, n)
		_, err := io.ReadFull(to, got)
		if err == nil {
			err = <-werr
		}
		if err == nil && !bytes.Equal(data, got) {
			err = errors.New("delivered bytes differ from those sent")
		}
		done <- err
	}
	ab, ba := make(chan error, 1), make(chan error, 1)
	go one(a, b, na, 0x5a, ab)
	go one(b, a, nb, 0xa5, ba)
	require.NoError(t, <-ab, "A to B")
	require.NoError(t, <-ba, "B to A")
}

// checkPaired checks that a and b found each other: socket IDs crossed,
// each sending from its own ISN and receiving from the other's.
func checkPaired(t *testing.T, a, b *Conn, isnA, isnB seq.Num) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Equal(t, b.id, a.peerID)
	require.Equal(t, a.id, b.peerID)
	require.Equal(t, isnA, seq.Num(a.hs.ours.isn))
	require.Equal(t, isnB, seq.Num(b.hs.ours.isn))
	require.Equal(t, isnA, seq.Num(b.hs.peer.isn), "B receives from A's ISN")
	require.Equal(t, isnB, seq.Num(a.hs.peer.isn), "A receives from B's ISN")
}

func withISN(c Config, isn seq.Num) Config {
	c.isn = uint32(isn) + 1
	return c
}

func TestRendezvousSim(t *testing.T) {
	clean := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
	dropHS := func(n int) netsim.LinkConfig {
		l := clean
		l.Drop = dropControl(ctrlHandshake, n)
		return l
	}
	lossy := clean
	lossy.Loss = 0.10
	links := []struct {
		name     string
		a2b, b2a func() netsim.LinkConfig
		bound    time.Duration // after the later start
	}{
		{"clean", func() netsim.LinkConfig { return clean }, func() netsim.LinkConfig { return clean }, 100 * time.Millisecond},
		{"first 3 handshakes each way lost", func() netsim.LinkConfig { return dropHS(3) }, func() netsim.LinkConfig { return dropHS(3) }, 1500 * time.Millisecond},
		{"loss 10% both ways", func() netsim.LinkConfig { return lossy }, func() netsim.LinkConfig { return lossy }, 3 * time.Second},
	}
	offsets := []struct{ a, b time.Duration }{
		{0, 0}, {0, 300 * time.Millisecond}, {300 * time.Millisecond, 0}, {0, time.Second}, {time.Second, 0},
	}
	const isnA, isnB = seq.Num(1000), seq.Max - 100 // B's stream wraps
	for _, l := range links {
		for i, off := range offsets {
			t.Run(fmt.Sprintf("%s/A+%v,B+%v", l.name, off.a, off.b), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					start := time.Now()
					a := rdvSide{withISN(Config{}, isnA), off.a}
					b := rdvSide{withISN(Config{}, isnB), off.b}
					ca, cb, _, _ := simRendezvous(t, l.a2b(), l.b2a(), a, b, uint64(10+i))
					took := time.Since(start) - max(off.a, off.b)
					t.Logf("connected %v after the later start", took)
					require.Less(t, took, l.bound, "virtual time")
					checkPaired(t, ca, cb, isnA, isnB)
					exchange(t, ca, cb, 1<<20, 300<<10)
				})
			})
		}
	}
}

// TestRendezvousMSS: different MSS on the two sides; both settle on the
// smaller and data moves both ways in packets of that size.
func TestRendezvousMSS(t *testing.T) {
	for _, tc := range []struct{ a, b int }{{1500, 1400}, {1400, 1500}, {1500, 576}} {
		t.Run(fmt.Sprintf("%d-%d", tc.a, tc.b), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var biggest atomic.Int64
				l := netsim.LinkConfig{Rate: 100e6, Delay: 5 * time.Millisecond, Drop: func(b []byte, _ int) bool {
					if int64(len(b)) > biggest.Load() {
						biggest.Store(int64(len(b)))
					}
					return false
				}}
				ca, cb, _, _ := simRendezvous(t, l, l,
					rdvSide{Config{MSS: tc.a}, 0}, rdvSide{Config{MSS: tc.b}, 200 * time.Millisecond}, 20)
				want := min(tc.a, tc.b)
				for _, c := range []*Conn{ca, cb} {
					c.mu.Lock()
					require.Equal(t, want, c.mss)
					require.Equal(t, payloadSize(want), c.payload)
					c.mu.Unlock()
				}
				exchange(t, ca, cb, 512<<10, 512<<10)
				require.Equal(t, int64(want-28), biggest.Load(), "largest UDP payload on the link")
			})
		})
	}
}

// TestRendezvousTimeout: a rendezvous to a silent peer ends with
// ErrHandshakeTimeout at the documented bound, or the context's end.
func TestRendezvousTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		ctx     func(context.Context) (context.Context, context.CancelFunc)
		want    error
		elapsed time.Duration
	}{
		{"default 30 s", Config{}, nil, ErrHandshakeTimeout, DefaultRendezvousTimeout},
		{"ConnectTimeout 5 s", Config{ConnectTimeout: 5 * time.Second}, nil, ErrHandshakeTimeout, 5 * time.Second},
		{"context deadline 2 s", Config{}, func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 2*time.Second)
		}, ErrHandshakeTimeout, 2 * time.Second},
		{"context cancelled at 1 s", Config{}, func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(time.Second, cancel)
			return ctx, cancel
		}, context.Canceled, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var sent atomic.Int64
				l := netsim.LinkConfig{Delay: 5 * time.Millisecond, Drop: func([]byte, int) bool { sent.Add(1); return false }}
				pa, pb := netsim.NewPacketPipe(l, l, 1)
				defer pb.Close()
				m := newMultiplexer(netPacketConn{c: pa})
				m.start()
				cfg, err := tc.cfg.withDefaults()
				require.NoError(t, err)
				if tc.cfg.ConnectTimeout == 0 {
					cfg.ConnectTimeout = DefaultRendezvousTimeout
				}
				ctx := t.Context()
				if tc.ctx != nil {
					var cancel context.CancelFunc
					ctx, cancel = tc.ctx(ctx)
					defer cancel()
				}
				start := time.Now()
				c, err := dialRendezvousOn(ctx, m, cfg, pb.LocalAddr().(*net.UDPAddr).AddrPort())
				took := time.Since(start)
				require.Nil(t, c)
				require.ErrorIs(t, err, tc.want)
				require.Equal(t, tc.elapsed, took, "virtual time")
				// One type-0 request at once, then one every 250 ms (the
				// last tick and the end may come at the same instant).
				n := int64(tc.elapsed / handshakeResend)
				require.Contains(t, []int64{n, n + 1}, sent.Load(), "requests sent")
			})
		})
	}
}

// hsWatch records the request types of handshakes crossing a link, and
// drops the first dropKeepAlives keep-alives.
type hsWatch struct {
	mu             sync.Mutex
	types          []int32 // guarded by mu
	dropKeepAlives int     // guarded by mu
}

func (w *hsWatch) drop(b []byte, _ int) bool {
	p, err := parsePacket(b)
	if err != nil || !p.control {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch p.typ {
	case ctrlHandshake:
		if h, err := parseHandshake(p.body); err == nil {
			w.types = append(w.types, h.reqType)
		}
	case ctrlKeepAlive:
		if w.dropKeepAlives > 0 {
			w.dropKeepAlives--
			return true
		}
	}
	return false
}

func (w *hsWatch) seen() []int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.types)
}

// TestRendezvousMinus2 loses A's keep-alive after A connects, as in the
// rendezvous-minus2 capture: B, still waiting, repeats its −1 and completes
// on A's −2 reply.
func TestRendezvousMinus2(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A: 0 at 0 ms (lost: B is not up). B: 0 at 100 ms. A: −1 at once.
		// B: −1 at once. A connects; its keep-alive is lost. B: −1 again
		// at 350 ms; A answers −2 and B connects.
		fromA, fromB := &hsWatch{dropKeepAlives: 1}, &hsWatch{}
		a2b := netsim.LinkConfig{Delay: 5 * time.Millisecond, Drop: fromA.drop}
		b2a := netsim.LinkConfig{Delay: 5 * time.Millisecond, Drop: fromB.drop}
		start := time.Now()
		ca, cb, _, _ := simRendezvous(t, a2b, b2a, rdvSide{Config{}, 0}, rdvSide{Config{}, 100 * time.Millisecond}, 30)
		took := time.Since(start)
		require.Equal(t, []int32{reqRendezvous, reqConclusion, reqAgreement}, fromA.seen(), "A's handshakes")
		require.Equal(t, []int32{reqRendezvous, reqConclusion, reqConclusion}, fromB.seen(), "B's handshakes")
		require.Greater(t, took, 350*time.Millisecond, "B waited for its resend")
		require.Less(t, took, 400*time.Millisecond)
		exchange(t, ca, cb, 64<<10, 64<<10)
	})
}

// TestRendezvousCompletedByData: A dials first and connects first; its
// keep-alive is lost and it writes at once, so B completes on A's first data
// packet, which must be delivered, not lost.
func TestRendezvousCompletedByData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fromA := &hsWatch{dropKeepAlives: 1}
		a2b := netsim.LinkConfig{Delay: 5 * time.Millisecond, Drop: fromA.drop}
		b2a := netsim.LinkConfig{Delay: 5 * time.Millisecond}
		pca, pcb := netsim.NewPacketPipe(a2b, b2a, 31)
		t.Cleanup(func() { time.Sleep(closeWait + time.Second) })
		ma, mb := newMultiplexer(netPacketConn{c: pca}), newMultiplexer(netPacketConn{c: pcb})
		ma.start()
		mb.start()
		cfg, err := Config{ConnectTimeout: DefaultRendezvousTimeout}.withDefaults()
		require.NoError(t, err)
		msg := []byte("first packet")
		wrote := make(chan error, 1)
		go func() {
			ca, err := dialRendezvousOn(t.Context(), ma, cfg, mb.laddr)
			if err == nil {
				_, err = ca.Write(msg)
				time.Sleep(time.Second)
				if st := ca.Stats(); err == nil && st.Total.PktRetrans != 0 {
					err = fmt.Errorf("%d retransmissions: the completing data packet was lost", st.Total.PktRetrans)
				}
				ca.Close()
			}
			wrote <- err
		}()
		time.Sleep(100 * time.Millisecond) // A's first request is lost: B is not up
		cb, err := dialRendezvousOn(t.Context(), mb, cfg, ma.laddr)
		require.NoError(t, err)
		defer cb.Close()
		start := time.Now()
		buf := make([]byte, len(msg))
		_, err = io.ReadFull(cb, buf)
		require.NoError(t, err)
		require.Equal(t, msg, buf)
		require.Less(t, time.Since(start), 50*time.Millisecond, "the first packet came without a retransmission")
		require.NoError(t, <-wrote)
		require.NotContains(t, fromA.seen(), reqAgreement, "B completed on data, not on a −2")
	})
}

// TestRendezvousHostileHandshakes feeds a waiting rendezvous malformed and
// foreign handshakes: none completes it or panics, and a genuine peer still
// connects afterwards.
func TestRendezvousHostileHandshakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := netsim.LinkConfig{Delay: 5 * time.Millisecond}
		pa, pb := netsim.NewPacketPipe(l, l, 1)
		t.Cleanup(func() { time.Sleep(closeWait + time.Second) })
		ma := newMultiplexer(netPacketConn{c: pa})
		ma.start()
		cfg, err := Config{ConnectTimeout: DefaultRendezvousTimeout}.withDefaults()
		require.NoError(t, err)
		peer := pb.LocalAddr().(*net.UDPAddr).AddrPort()
		done := make(chan struct{})
		var ca *Conn
		var dialErr error
		go func() {
			defer close(done)
			ca, dialErr = dialRendezvousOn(t.Context(), ma, cfg, peer)
		}()
		time.Sleep(10 * time.Millisecond)
		id := func() uint32 {
			ma.idMu.Lock()
			defer ma.idMu.Unlock()
			for id := range ma.ids {
				return id
			}
			return 0
		}()
		good := handshake{version: udtVersion, sockType: sockStream, isn: 7, mss: 1500, window: 8192, reqType: reqConclusion, socketID: 1234}
		bad := []func(h *handshake){
			func(h *handshake) { h.socketID = 0 },
			func(h *handshake) { h.socketID = 0x80000001 },
			func(h *handshake) { h.mss = 40 },
			func(h *handshake) { h.mss = 1 << 30 },
			func(h *handshake) { h.window = 0 },
			func(h *handshake) { h.isn = 0x80000000 },
			func(h *handshake) { h.reqType = reqInduction },
			func(h *handshake) { h.reqType = reqRefused },
			func(h *handshake) { h.reqType = 12345 },
			func(h *handshake) { h.version = 5 },
			func(h *handshake) { h.sockType = sockDgram },
		}
		for _, dst := range []uint32{0, id} {
			for _, f := range bad {
				h := good
				f(&h)
				_, err := pb.WriteTo(appendHandshakePacket(nil, dst, &h), pa.LocalAddr())
				require.NoError(t, err)
			}
			// Short bodies and non-handshake control packets.
			_, _ = pb.WriteTo(appendControl(nil, ctrlHandshake, 0, dst, make([]byte, 20)), pa.LocalAddr())
			_, _ = pb.WriteTo(appendControl(nil, ctrlACK, 0, dst, make([]byte, 24)), pa.LocalAddr())
			// A keep-alive before any valid handshake cannot complete it.
			_, _ = pb.WriteTo(appendControl(nil, ctrlKeepAlive, 0, dst, nil), pa.LocalAddr())
		}
		time.Sleep(100 * time.Millisecond)
		select {
		case <-done:
			t.Fatalf("rendezvous ended on hostile input: %v", dialErr)
		default:
		}
		// Now the real peer arrives on pb.
		mb := newMultiplexer(netPacketConn{c: pb})
		mb.start()
		cb, err := dialRendezvousOn(t.Context(), mb, cfg, ma.laddr)
		require.NoError(t, err)
		defer cb.Close()
		<-done
		require.NoError(t, dialErr)
		defer ca.Close()
		exchange(t, ca, cb, 10<<10, 10<<10)
	})
}

// TestRendezvousPortRules: a rendezvous refuses a listening port and a
// second dial to the same peer, and Listen refuses a port with a rendezvous
// in progress.
func TestRendezvousPortRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := netsim.LinkConfig{Delay: 5 * time.Millisecond}
		pa, pb := netsim.NewPacketPipe(l, l, 1)
		defer pb.Close()
		m := newMultiplexer(netPacketConn{c: pa})
		m.start()
		registry.mu.Lock()
		m.refs = 4 // the listener and three rendezvous dials, each released once
		registry.mu.Unlock()
		cfg, err := Config{ConnectTimeout: time.Second}.withDefaults()
		require.NoError(t, err)
		peer := pb.LocalAddr().(*net.UDPAddr).AddrPort()

		ln, err := listenOn(m, cfg)
		require.NoError(t, err)
		_, err = dialRendezvousOn(t.Context(), m, cfg, peer)
		require.ErrorIs(t, err, errRendezvousListener)
		require.NoError(t, ln.Close())

		pending := make(chan error, 1)
		go func() {
			_, err := dialRendezvousOn(t.Context(), m, cfg, peer)
			pending <- err
		}()
		time.Sleep(10 * time.Millisecond)
		_, err = dialRendezvousOn(t.Context(), m, cfg, peer)
		require.ErrorIs(t, err, errRendezvousTwice)
		_, err = listenOn(m, cfg)
		require.ErrorIs(t, err, errRendezvousPending)
		require.ErrorIs(t, <-pending, ErrHandshakeTimeout)
	})
}
