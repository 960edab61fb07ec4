package integrationtests

import (
	"context"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/harness"
)

// The tests in this file hold our Listener and Conn to what *net.TCPListener
// and *net.TCPConn do, running the same steps against both where TCP has
// the same case.

// transport is TCP or UDT behind the standard interfaces.
type transport struct {
	name   string // OpError.Net
	listen func() (net.Listener, error)
	dial   func(ctx context.Context, addr string) (net.Conn, error)
}

var transports = []transport{
	{
		name:   "tcp",
		listen: func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") },
		dial: func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
	},
	{
		name:   "udt",
		listen: func() (net.Listener, error) { return udt.Listen("udp", "127.0.0.1:0") },
		dial: func(ctx context.Context, addr string) (net.Conn, error) {
			return udt.DialContext(ctx, "udp", addr)
		},
	},
}

// deadlineListener is what *net.TCPListener and *udt.Listener have beyond net.Listener.
type deadlineListener interface {
	net.Listener
	SetDeadline(time.Time) error
}

// requireOpError checks that err is a *net.OpError with the given fields
// that wraps target.
func requireOpError(t *testing.T, err error, op, network string, source, addr net.Addr, target error) {
	t.Helper()
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, op, oe.Op, "Op of %v", err)
	require.Equal(t, network, oe.Net, "Net of %v", err)
	require.Equal(t, addrString(source), addrString(oe.Source), "Source of %v", err)
	require.Equal(t, addrString(addr), addrString(oe.Addr), "Addr of %v", err)
	require.ErrorIs(t, err, target)
}

func addrString(a net.Addr) string {
	if a == nil {
		return "<nil>"
	}
	return a.String()
}

// requireTimeout checks that err is a net.Error with Timeout true that
// wraps os.ErrDeadlineExceeded.
func requireTimeout(t *testing.T, err error) {
	t.Helper()
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout(), "Timeout() of %v", err)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
}

// acceptAsync runs one Accept and delivers its error (closing any conn).
func acceptAsync(ln net.Listener) <-chan error {
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	return errc
}

// within waits for errc up to d.
func within(t *testing.T, errc <-chan error, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(d):
		t.Fatalf("%s: no result within %v", what, d)
		return nil
	}
}

func TestListenerLikeTCP(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			l, err := tr.listen()
			require.NoError(t, err)
			defer l.Close()
			ln := l.(deadlineListener)
			addr := ln.Addr()

			// A passed deadline fails Accept at once with a timeout.
			require.NoError(t, ln.SetDeadline(time.Now().Add(-time.Second)))
			_, err = ln.Accept()
			requireOpError(t, err, "accept", tr.name, nil, addr, os.ErrDeadlineExceeded)
			requireTimeout(t, err)

			// The zero time clears it: Accept waits for a connection.
			require.NoError(t, ln.SetDeadline(time.Time{}))
			accepted := acceptAsync(ln)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := tr.dial(ctx, addr.String())
			require.NoError(t, err)
			require.NoError(t, within(t, accepted, 10*time.Second, "Accept with the deadline cleared"))
			c.Close()

			// A deadline set while Accept blocks takes effect.
			accepted = acceptAsync(ln)
			time.Sleep(50 * time.Millisecond) // let Accept block (if not, the check still holds)
			require.NoError(t, ln.SetDeadline(time.Now().Add(50*time.Millisecond)))
			err = within(t, accepted, 10*time.Second, "Accept after a deadline set while it blocked")
			requireOpError(t, err, "accept", tr.name, nil, addr, os.ErrDeadlineExceeded)
			requireTimeout(t, err)

			// Close unblocks a blocked Accept; later calls fail with net.ErrClosed.
			require.NoError(t, ln.SetDeadline(time.Time{}))
			accepted = acceptAsync(ln)
			time.Sleep(50 * time.Millisecond)
			require.NoError(t, ln.Close())
			err = within(t, accepted, 10*time.Second, "Accept blocked across Close")
			requireOpError(t, err, "accept", tr.name, nil, addr, net.ErrClosed)
			_, err = ln.Accept()
			requireOpError(t, err, "accept", tr.name, nil, addr, net.ErrClosed)
			err = ln.SetDeadline(time.Now())
			require.ErrorIs(t, err, net.ErrClosed)
			if tr.name == "udt" { // *net.TCPListener's is not wrapped
				requireOpError(t, err, "set", tr.name, nil, addr, net.ErrClosed)
			}
			requireOpError(t, ln.Close(), "close", tr.name, nil, addr, net.ErrClosed)
		})
	}
}

// TestConnErrorsLikeTCP: deadline, end-of-stream and use-after-Close
// errors have the fields and the wrapped errors a *net.TCPConn gives.
func TestConnErrorsLikeTCP(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ln, err := tr.listen()
			require.NoError(t, err)
			defer ln.Close()
			type result struct {
				c   net.Conn
				err error
			}
			accepted := make(chan result, 1)
			go func() {
				c, err := ln.Accept()
				accepted <- result{c, err}
			}()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := tr.dial(ctx, ln.Addr().String())
			require.NoError(t, err)
			defer c.Close()
			r := <-accepted
			require.NoError(t, r.err)
			s := r.c
			defer s.Close()
			la, ra := c.LocalAddr(), c.RemoteAddr()

			require.NoError(t, c.SetReadDeadline(time.Now().Add(-time.Second)))
			_, err = c.Read(make([]byte, 1))
			requireOpError(t, err, "read", tr.name, la, ra, os.ErrDeadlineExceeded)
			requireTimeout(t, err)
			require.NoError(t, c.SetWriteDeadline(time.Now().Add(-time.Second)))
			n, err := c.Write([]byte("x"))
			require.Zero(t, n)
			requireOpError(t, err, "write", tr.name, la, ra, os.ErrDeadlineExceeded)
			requireTimeout(t, err)
			require.NoError(t, c.SetDeadline(time.Time{}))

			// The peer's Close is a bare io.EOF once its data is read.
			_, err = s.Write([]byte("bye"))
			require.NoError(t, err)
			require.NoError(t, s.Close())
			got, err := io.ReadAll(c)
			require.NoError(t, err)
			require.Equal(t, "bye", string(got))
			n, err = c.Read(make([]byte, 1))
			require.Zero(t, n)
			require.Equal(t, io.EOF, err)

			require.NoError(t, c.Close())
			_, err = c.Read(make([]byte, 1))
			requireOpError(t, err, "read", tr.name, la, ra, net.ErrClosed)
			_, err = c.Write([]byte("x"))
			requireOpError(t, err, "write", tr.name, la, ra, net.ErrClosed)
			requireOpError(t, c.Close(), "close", tr.name, la, ra, net.ErrClosed)
			for _, set := range []func(time.Time) error{c.SetDeadline, c.SetReadDeadline, c.SetWriteDeadline} {
				requireOpError(t, set(time.Now()), "set", tr.name, nil, la, net.ErrClosed)
			}
		})
	}
}

// TestDialErrorsDistinguishable: a refused dial (the listener answers
// 1002, here for a socket-type mismatch) and an unanswered one are told
// apart by errors.Is and by Timeout.
func TestDialErrorsDistinguishable(t *testing.T) {
	lc := udt.ListenConfig{Config: udt.Config{Type: udt.TypeMessage}}
	ln, err := lc.ListenUDT(t.Context(), "udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = udt.DialContext(ctx, "udp", ln.Addr().String())
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, "dial", oe.Op)
	require.Equal(t, "udt", oe.Net)
	require.NotNil(t, oe.Source)
	require.Equal(t, ln.Addr().String(), oe.Addr.String())
	require.ErrorIs(t, err, udt.ErrConnRefused)
	require.NotErrorIs(t, err, udt.ErrHandshakeTimeout)
	require.False(t, oe.Timeout(), "a refusal is no timeout")

	// A UDP socket that never answers.
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer silent.Close()
	d := udt.Dialer{Config: udt.Config{ConnectTimeout: 300 * time.Millisecond}}
	_, err = d.DialContext(ctx, "udp", silent.LocalAddr().String())
	require.ErrorAs(t, err, &oe)
	require.Equal(t, "dial", oe.Op)
	require.NotNil(t, oe.Source)
	require.Equal(t, silent.LocalAddr().String(), oe.Addr.String())
	require.ErrorIs(t, err, udt.ErrHandshakeTimeout)
	require.NotErrorIs(t, err, udt.ErrConnRefused)
	require.True(t, oe.Timeout())
}

// TestEveryBlockedCallWakes: an end of the connection reaches every
// blocked Read and Write, not just one of them, and Close wakes blocked
// calls before it lingers; a linger that the peer's Close ends reports
// the data the peer, its buffer full, never took.
func TestEveryBlockedCallWakes(t *testing.T) {
	const n = 3
	t.Run("peer close wakes all readers", func(t *testing.T) {
		_, c, s := harness.Pair(t, udt.Config{})
		errs := make(chan error, n)
		for range n {
			go func() {
				_, err := c.Read(make([]byte, 1))
				errs <- err
			}()
		}
		time.Sleep(50 * time.Millisecond)
		require.NoError(t, s.Close())
		for range n {
			require.Equal(t, io.EOF, within(t, errs, 10*time.Second, "blocked Read after the peer's Close"))
		}
	})
	t.Run("close wakes all writers", func(t *testing.T) {
		cfg := udt.Config{SendBuffer: 32, ReceiveBuffer: 32}
		_, c, s := harness.Pair(t, cfg)
		errs := make(chan error, n)
		for range n {
			go func() {
				_, err := c.Write(make([]byte, 1<<20)) // far beyond both buffers: the peer does not read
				errs <- err
			}()
		}
		time.Sleep(100 * time.Millisecond)
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }() // lingers: the peer does not read
		for range n {
			err := within(t, errs, 10*time.Second, "blocked Write across Close")
			require.ErrorIs(t, err, net.ErrClosed)
		}
		require.NoError(t, s.Close()) // the peer's shutdown ends the linger
		// What the peer, its buffer full, never took is lost, and
		// Close says so, with the peer's shutdown that ended the
		// connection.
		err := within(t, closed, 10*time.Second, "Close")
		require.ErrorIs(t, err, udt.ErrUnacknowledged)
		require.ErrorIs(t, err, udt.ErrPeerClosed)
		var ue *udt.UnacknowledgedError
		require.ErrorAs(t, err, &ue)
		require.Positive(t, ue.Bytes)
		require.LessOrEqual(t, ue.Bytes, cfg.SendBuffer*udt.DefaultMSS, "no more than the send buffer held")
	})
	t.Run("freed space reaches all writers", func(t *testing.T) {
		cfg := udt.Config{SendBuffer: 32, ReceiveBuffer: 32}
		_, c, s := harness.Pair(t, cfg)
		const size = 256 << 10
		errs := make(chan error, n)
		for range n {
			go func() {
				_, err := c.Write(make([]byte, size))
				errs <- err
			}()
		}
		read := make(chan error, 1)
		go func() {
			_, err := io.ReadFull(s, make([]byte, n*size))
			read <- err
		}()
		require.NoError(t, within(t, read, 30*time.Second, "reading what the writers wrote"))
		for range n {
			require.NoError(t, within(t, errs, 10*time.Second, "Write"))
		}
	})
}
