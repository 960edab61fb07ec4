package netsim

import (
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// sharedPipe returns the ends of a pipe with links a2b and b2a and of one
// pair shared from it, at ports 20001 (A) and 20002 (B).
func sharedPipe(t *testing.T, a2b, b2a LinkConfig, seed uint64) (a, b, a2, b2 *PipeConn) {
	t.Helper()
	ca, cb := NewPacketPipe(a2b, b2a, seed)
	a, b = ca.(*PipeConn), cb.(*PipeConn)
	a2, b2, err := SharePipe(a, b, 20001, 20002)
	require.NoError(t, err)
	return a, b, a2, b2
}

// readOne reads one datagram from c within a second.
func readOne(t *testing.T, c net.PacketConn) (string, net.Addr) {
	t.Helper()
	buf := make([]byte, 2048)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Second)))
	n, from, err := c.ReadFrom(buf)
	require.NoError(t, err)
	return string(buf[:n]), from
}

func TestSharePipe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, a2, b2 := sharedPipe(t, LinkConfig{Delay: 10 * time.Millisecond}, LinkConfig{Delay: 20 * time.Millisecond}, 1)
		defer func() {
			for _, c := range []*PipeConn{a, b, a2, b2} {
				c.Close()
			}
		}()
		require.Equal(t, "127.0.0.1:20001", a2.LocalAddr().String())
		require.Equal(t, "127.0.0.1:20002", b2.LocalAddr().String())
		require.Same(t, a.Link(), a2.Link())
		require.Same(t, b.Link(), b2.Link())

		// Each datagram reaches the end it was written to, from its
		// sender's address, after its link's delay.
		start := time.Now()
		for _, w := range []struct {
			from, to *PipeConn
			msg      string
		}{{a, b, "a→b"}, {a2, b2, "a2→b2"}, {b2, a2, "b2→a2"}, {b, a, "b→a"}} {
			_, err := w.from.WriteTo([]byte(w.msg), w.to.LocalAddr())
			require.NoError(t, err)
		}
		for _, r := range []struct {
			at, from *PipeConn
			msg      string
			delay    time.Duration
		}{{b, a, "a→b", 10 * time.Millisecond}, {b2, a2, "a2→b2", 10 * time.Millisecond}, {a2, b2, "b2→a2", 20 * time.Millisecond}, {a, b, "b→a", 20 * time.Millisecond}} {
			msg, from := readOne(t, r.at)
			require.Equal(t, r.msg, msg)
			require.Equal(t, r.from.LocalAddr(), from)
			require.Equal(t, r.delay, time.Since(start))
		}
		// Nothing crossed over.
		for _, c := range []*PipeConn{a, b, a2, b2} {
			require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Second)))
			_, _, err := c.ReadFrom(make([]byte, 64))
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		}
		// One pair's end cannot reach the other pair's.
		_, err := a2.WriteTo([]byte("stray"), b.LocalAddr())
		require.NoError(t, err)
		st := a.Link().Stats()
		require.Equal(t, uint64(2), st.Sent, "a datagram to another pair's end went on the link")
		require.Equal(t, uint64(2), st.Delivered)
	})
}

func TestSharePipeErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, a2, b2 := sharedPipe(t, LinkConfig{}, LinkConfig{}, 1)
		defer func() {
			for _, c := range []*PipeConn{a, b, a2, b2} {
				c.Close()
			}
		}()
		for _, tc := range []struct {
			name         string
			x, y         *PipeConn
			portA, portB uint16
			want         error
		}{
			{"A's port taken", a, b, PipeAddrA.Port(), 30000, syscall.EADDRINUSE},
			{"B's port taken by a share", a, b, 30000, 20002, syscall.EADDRINUSE},
			{"port zero", a, b, 0, 30000, syscall.EADDRINUSE},
			{"from a shared pair", a2, b2, 20001, 30000, syscall.EADDRINUSE},
		} {
			_, _, err := SharePipe(tc.x, tc.y, tc.portA, tc.portB)
			require.ErrorIs(t, err, tc.want, tc.name)
		}
		_, _, err := SharePipe(a, b2, 30001, 30002)
		require.ErrorContains(t, err, "not peers")

		// Shares of shares share the same links; a closed end's address
		// is free again.
		a3, b3, err := SharePipe(a2, b2, 20003, 20004)
		require.NoError(t, err)
		require.Same(t, a.Link(), a3.Link())
		require.NoError(t, a3.Close())
		require.NoError(t, b3.Close())
		_, _, err = SharePipe(a3, b3, 20005, 20006)
		require.ErrorIs(t, err, net.ErrClosed)
		a4, b4, err := SharePipe(a, b, 20003, 20004)
		require.NoError(t, err)
		a4.Close()
		b4.Close()
	})
}

// TestSharePipeQueue: the pairs queue at one bottleneck, whose drop-tail
// limit binds the sum of their backlogs.
func TestSharePipeQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 1 byte/µs; 10,000 bytes hold ten datagrams of 1000.
		a, b, a2, b2 := sharedPipe(t, LinkConfig{Rate: 8e6, QueueBytes: 10_000, Delay: 5 * time.Millisecond}, LinkConfig{}, 2)
		defer func() {
			for _, c := range []*PipeConn{a, b, a2, b2} {
				c.Close()
			}
		}()
		for i := range 20 {
			_, err := a.WriteTo(payload(i, 1000), b.LocalAddr())
			require.NoError(t, err)
			_, err = a2.WriteTo(payload(100+i, 1000), b2.LocalAddr())
			require.NoError(t, err)
		}
		// Served alternately, one datagram a millisecond, after the delay.
		start := time.Now()
		for k := range 10 {
			c, want := b, k/2
			if k%2 == 1 {
				c, want = b2, 100+k/2
			}
			msg, _ := readOne(t, c)
			i, ok := index([]byte(msg))
			require.True(t, ok)
			require.Equal(t, want, i)
			require.Equal(t, 5*time.Millisecond+time.Duration(k+1)*time.Millisecond, time.Since(start))
		}
		for _, c := range []*PipeConn{b, b2} {
			got, _ := readAll(t, c, time.Second)
			require.Empty(t, got)
		}
		st := a.Link().Stats()
		require.Equal(t, uint64(40), st.Sent)
		require.Equal(t, uint64(30), st.QueueDrops)
		require.Equal(t, uint64(10), st.Delivered)
	})
}

// TestSharePipeClose: closing one pair discards only what is on the way
// to it and leaves the other pair working, whichever pair closes.
func TestSharePipeClose(t *testing.T) {
	for _, closeShared := range []bool{true, false} {
		name := "shared pair closes"
		if !closeShared {
			name = "first pair closes"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b, a2, b2 := sharedPipe(t, LinkConfig{Delay: 50 * time.Millisecond}, LinkConfig{Delay: 50 * time.Millisecond}, 3)
				gone, stay := [2]*PipeConn{a2, b2}, [2]*PipeConn{a, b}
				if !closeShared {
					gone, stay = stay, gone
				}
				defer stay[0].Close()
				defer stay[1].Close()
				for i := range 10 {
					_, err := stay[0].WriteTo(payload(i, 100), stay[1].LocalAddr())
					require.NoError(t, err)
					_, err = gone[0].WriteTo(payload(100+i, 100), gone[1].LocalAddr())
					require.NoError(t, err)
				}
				time.Sleep(10 * time.Millisecond)
				require.NoError(t, gone[1].Close())
				require.NoError(t, gone[0].Close())
				// Later datagrams to the closed end are not sent.
				_, err := stay[0].WriteTo(payload(10, 100), stay[1].LocalAddr())
				require.NoError(t, err)
				got, _ := readAll(t, stay[1], time.Second)
				require.Len(t, got, 11)
				for k, p := range got {
					i, ok := index(p)
					require.True(t, ok)
					require.Equal(t, k, i)
				}
				st := stay[0].Link().Stats()
				require.Equal(t, uint64(21), st.Sent)
				require.Equal(t, uint64(11), st.Delivered)
				require.Equal(t, uint64(10), st.Overflow, "what was on the way to the closed end")

				// The other direction works too.
				_, err = stay[1].WriteTo([]byte("back"), stay[0].LocalAddr())
				require.NoError(t, err)
				msg, _ := readOne(t, stay[0])
				require.Equal(t, "back", msg)
			})
		})
	}
}

// TestSharePipeConcurrent: two pairs writing both ways at once while one
// pair closes, under the race detector: no deadlock, no datagram to the
// wrong end, every datagram accounted for.
func TestSharePipeConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := LinkConfig{Rate: 50e6, Delay: time.Millisecond, Jitter: time.Millisecond, Loss: 0.01}
		a, b, a2, b2 := sharedPipe(t, l, l, 4)
		type flow struct {
			from, to *PipeConn
			base     int
		}
		flows := []flow{{a, b, 0}, {b, a, 10000}, {a2, b2, 20000}, {b2, a2, 30000}}
		const n = 2000
		var wg sync.WaitGroup
		got := make([]int, len(flows))
		for k, f := range flows {
			wg.Go(func() {
				for i := range n {
					_, _ = f.from.WriteTo(payload(f.base+i, 200), f.to.LocalAddr())
					time.Sleep(100 * time.Microsecond) // 16 Mbit/s
				}
			})
			wg.Go(func() {
				buf := make([]byte, 512)
				for {
					k2, _, err := f.to.ReadFrom(buf)
					if err != nil {
						return
					}
					i, ok := index(buf[:k2])
					if !ok || i < f.base || i >= f.base+n {
						t.Errorf("flow %d got datagram %d", k, i)
					}
					got[k]++
				}
			})
		}
		time.Sleep(5 * time.Millisecond)
		a2.Close()
		b2.Close()
		time.Sleep(time.Second)
		a.Close()
		b.Close()
		wg.Wait()
		require.Greater(t, got[0], n*9/10)
		require.Greater(t, got[1], n*9/10)
		for _, l := range []*Link{a.Link(), b.Link()} {
			st := l.Stats()
			require.Equal(t, st.Sent, st.Delivered+st.Dropped+st.QueueDrops+st.Overflow)
		}
	})
}
