package udt

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/netsim"
)

// recorder is a slog.Handler that keeps every record, attributes flattened
// to strings.
type recorder struct {
	mu      sync.Mutex
	records []logged
}

type logged struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	l := logged{level: rec.Level, msg: rec.Message, attrs: map[string]string{}}
	rec.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	r.records = append(r.records, l)
	r.mu.Unlock()
	return nil
}

// find returns the records with message msg.
func (r *recorder) find(msg string) []logged {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []logged
	for _, l := range r.records {
		if l.msg == msg {
			out = append(out, l)
		}
	}
	return out
}

func TestLoggerConnectionLife(t *testing.T) {
	var cl, sl recorder
	ln := listenRaw(t, Config{Logger: slog.New(&sl)})
	d := Dialer{Config: Config{Logger: slog.New(&cl)}}
	c, err := d.DialUDT(context.Background(), "udp", ln.Addr().String())
	require.NoError(t, err)
	s, err := ln.AcceptUDT()
	require.NoError(t, err)
	_, err = c.Write([]byte("hello"))
	require.NoError(t, err)
	require.NoError(t, c.Close())
	_, err = io.ReadAll(s)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	c.logs.wait()
	s.logs.wait()

	up := cl.find("udt: connected")
	require.Len(t, up, 1)
	require.Equal(t, "dialed", up[0].attrs["role"])
	require.Equal(t, "1500", up[0].attrs["mss"])
	require.Equal(t, c.RemoteAddr().String(), up[0].attrs["remote"])
	up = sl.find("udt: connected")
	require.Len(t, up, 1)
	require.Equal(t, "accepted", up[0].attrs["role"])

	down := cl.find("udt: closed")
	require.Len(t, down, 1)
	require.Equal(t, "local", down[0].attrs["by"])
	require.Equal(t, "1", down[0].attrs["pkt_sent"])
	down = sl.find("udt: closed")
	require.Len(t, down, 1, "the server's record of the peer's shutdown")
	require.Equal(t, "peer", down[0].attrs["by"])
}

func TestLoggerRefusedDial(t *testing.T) {
	var cl, sl recorder
	ln := listenRaw(t, Config{Type: TypeMessage, Logger: slog.New(&sl)})
	d := Dialer{Config: Config{Logger: slog.New(&cl)}}
	_, err := d.DialUDT(context.Background(), "udp", ln.Addr().String())
	require.ErrorIs(t, err, ErrConnRefused)
	require.Eventually(t, func() bool { return len(cl.find("udt: dial refused")) > 0 }, 5*time.Second, time.Millisecond)
	require.Len(t, cl.find("udt: dial refused"), 1)
	ln.logs.wait()
	refused := sl.find("udt: handshake refused")
	require.NotEmpty(t, refused)
	require.Contains(t, refused[0].attrs["reason"], "socket type 1")
	require.Equal(t, slog.LevelInfo, refused[0].level)
}

func TestLoggerLostPeer(t *testing.T) {
	var rec recorder
	c, s := internalPair(t, Config{PeerIdleTimeout: 500 * time.Millisecond, Linger: -1, Logger: slog.New(&rec)})
	_ = s
	require.NoError(t, s.m.conn.Close()) // the peer falls silent
	buf := make([]byte, 1)
	_, err := c.Read(buf)
	require.ErrorIs(t, err, ErrConnLost)
	c.logs.wait()
	var lost []logged
	for _, l := range rec.find("udt: connection lost") {
		if l.attrs["remote"] == c.RemoteAddr().String() {
			lost = append(lost, l)
		}
	}
	require.Len(t, lost, 1)
	require.Equal(t, slog.LevelWarn, lost[0].level)
	require.True(t, strings.Contains(lost[0].attrs["error"], "connection lost"), lost[0].attrs["error"])
}

// TestLoggerRetransmissionBursts cuts the path both ways for 3 s: the
// sender's timeouts are logged, at most one a second. (Cut one way only,
// the receiver's repeated ACKs and keep-alives are heard, and the sender
// resends the packet its ACK waits at without ever timing out.)
func TestLoggerRetransmissionBursts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		l := netsim.LinkConfig{Rate: 50e6, Delay: 10 * time.Millisecond}
		c, s, pa, pb := simPair(t, l, l, Config{Logger: slog.New(&rec)}, 5)
		go func() {
			time.Sleep(300 * time.Millisecond)
			bh := l
			bh.Blackhole = true
			pa.Link().SetConfig(bh)
			pb.Link().SetConfig(bh)
			time.Sleep(3 * time.Second)
			pa.Link().SetConfig(l)
			pb.Link().SetConfig(l)
		}()
		transfer(t, c, s, 8<<20)
		c.logs.wait()
		s.logs.wait()
		var bursts []time.Duration
		for _, r := range rec.find("udt: retransmission burst") {
			if r.attrs["cause"] == "timeout" {
				bursts = append(bursts, 0)
			}
		}
		require.NotEmpty(t, bursts, "no timeout logged")
		require.LessOrEqual(t, len(bursts), 4, "timeouts over 3 s are logged at most once a second")
	})
}

// TestLoggerFreeWhenUnset: with no Logger the event paths allocate nothing.
func TestLoggerFreeWhenUnset(t *testing.T) {
	c, _ := internalPair(t, Config{})
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	allocs := testing.AllocsPerRun(100, func() {
		c.logConnectedLocked()
		c.logClosedLocked(slog.LevelInfo, "local", nil)
		c.logRetransmissionLocked(now, "timeout", 100)
		c.logf(slog.LevelInfo, "udt: dial refused")
	})
	require.Zero(t, allocs)
}

// TestLoggerBadCookiesAggregated floods a listener with 200 conclusions
// whose cookie is forged: they are logged as one record, a second later,
// that counts them, rather than one record each; what is counted when the
// listener closes is logged then.
func TestLoggerBadCookiesAggregated(t *testing.T) {
	var rec recorder
	ln := listenRaw(t, Config{Logger: slog.New(&rec)})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	forged := handshake{version: udtVersion, sockType: TypeStream.wire(), isn: 7, mss: DefaultMSS, window: 8192,
		reqType: reqConclusion, socketID: 1234, cookie: 0xdeadbeef}
	send := func(n int) {
		for range n {
			_, err := pc.WriteTo(appendHandshakePacket(nil, 0, &forged), ln.Addr())
			require.NoError(t, err)
		}
	}
	send(200)
	require.Eventually(t, func() bool { return len(rec.find("udt: handshakes dropped")) > 0 }, 3*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	got := rec.find("udt: handshakes dropped")
	require.Len(t, got, 1)
	require.Equal(t, "200", got[0].attrs["count"])
	require.Equal(t, pc.LocalAddr().String(), got[0].attrs["last_remote"])

	send(5)
	require.Eventually(t, func() bool { return ln.Metrics().CookiesRejected >= 205 }, 3*time.Second, time.Millisecond)
	require.NoError(t, ln.Close())
	got = rec.find("udt: handshakes dropped")
	require.Len(t, got, 2, "logged at Close")
	require.Equal(t, "5", got[1].attrs["count"])
}

// blockingHandler blocks for hold in its first "udt: closed" record, and
// says when it entered and left.
type blockingHandler struct {
	recorder
	hold          time.Duration
	once          sync.Once
	entered, left chan time.Time
}

func (h *blockingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "udt: closed" {
		h.once.Do(func() {
			h.entered <- time.Now()
			time.Sleep(h.hold)
			h.left <- time.Now()
		})
	}
	return h.recorder.Handle(ctx, r)
}

// TestLoggerBlockingHandler: a log handler that blocks for 1 s in one
// connection's record holds up no other connection of the UDP socket.
// The listener's connection A records its peer's shutdown on the receive
// worker, with A's lock held; connection B, on the same socket, keeps
// moving data all the while.
func TestLoggerBlockingHandler(t *testing.T) {
	h := &blockingHandler{hold: time.Second, entered: make(chan time.Time, 1), left: make(chan time.Time, 1)}
	ln := listenRaw(t, Config{Logger: slog.New(h)})
	var d Dialer
	a, err := d.DialUDT(t.Context(), "udp", ln.Addr().String())
	require.NoError(t, err)
	defer a.Close()
	b, err := d.DialUDT(t.Context(), "udp", ln.Addr().String())
	require.NoError(t, err)
	defer b.Close()
	var sb *Conn
	for range 2 {
		s, err := ln.AcceptUDT()
		require.NoError(t, err)
		defer s.Close()
		if s.RemoteAddr().String() == b.LocalAddr().String() {
			sb = s
		}
	}
	require.NotNil(t, sb)

	stop := make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		block := make([]byte, 64<<10)
		for {
			select {
			case <-stop:
				wrote <- nil
				return
			default:
			}
			if _, err := b.Write(block); err != nil {
				wrote <- err
				return
			}
		}
	}()
	defer func() {
		close(stop)
		require.NoError(t, <-wrote)
	}()

	// B's reader notes when each read returned.
	type read struct {
		at time.Time
		n  int
	}
	reads := make(chan read, 1<<16)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := sb.Read(buf)
			if err != nil {
				close(reads)
				return
			}
			select {
			case reads <- read{time.Now(), n}:
			default: // the test has what it needs
			}
		}
	}()
	for got := 0; got < 4<<20; {
		r, ok := <-reads
		require.True(t, ok, "B's stream ended")
		got += r.n
	}

	require.NoError(t, a.Close()) // A's peer shuts down: the handler blocks
	var in, out time.Time
	select {
	case in = <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("A's shutdown was not logged")
	}
	out = <-h.left
	// What B's reader got while the handler was blocked.
	var bytes, gapMax int64
	last := in
	for r := range reads {
		if r.at.Before(in) {
			continue
		}
		if r.at.After(out) {
			break
		}
		bytes += int64(r.n)
		gapMax = max(gapMax, int64(r.at.Sub(last)))
		last = r.at
	}
	gapMax = max(gapMax, int64(out.Sub(last)))
	t.Logf("handler blocked %v; B read %d KiB meanwhile, longest pause %v", out.Sub(in).Round(time.Millisecond), bytes>>10, time.Duration(gapMax).Round(time.Millisecond))
	require.Greater(t, bytes, int64(1<<20), "B moved under 1 MiB while A's log handler blocked")
	require.Less(t, time.Duration(gapMax), 300*time.Millisecond, "B's reader paused while A's log handler blocked")
}
