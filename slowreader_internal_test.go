package udt

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/netsim"
)

// TestSlowReaderFullBuffer reads a 4 MiB stream far slower than a lossless
// 100 Mbit/s link carries it, through a 64-packet receive buffer: 1 KiB
// every 20 ms, with one pause of 90 s after the first MiB, longer than the
// 46 s broken-connection timeout. Flow control alone must hold the sender:
// the buffer full, the sender's window closed, the connection alive through
// the pause, since the peer is heard all along. Every byte arrives in
// order, neither side sees an error, Close returns nil, the reader is never
// kept waiting (the transfer takes the reader's own time), and the only
// packets dropped are the sender's window probes.
func TestSlowReaderFullBuffer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			size    = 4 << 20
			chunk   = 1 << 10
			gap     = 20 * time.Millisecond
			pauseAt = 1 << 20
			pause   = 90 * time.Second
		)
		// The reader alone takes 172 s: size/chunk reads, a gap after
		// each but the one followed by the pause. With flow control
		// working the buffer never runs dry: a window update goes out
		// once half of it is free, and the sender refills it within a
		// round trip (20 ms) while the other half, about 0.9 s of
		// reading, remains. The reader waits for data only for the first
		// round trip; 10 s more is ample.
		floor := (size/chunk-1)*gap + pause
		bound := floor + 10*time.Second

		l := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
		cfg := Config{ReceiveBuffer: 64, SendBuffer: 128, Linger: bound}
		c, s, pa, pb := simPair(t, l, l, cfg, 11)
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*131 + i>>9)
		}

		start := time.Now()
		// Past the bound, blocked calls fail instead of waiting forever.
		require.NoError(t, c.SetWriteDeadline(start.Add(bound)))
		require.NoError(t, s.SetReadDeadline(start.Add(bound)))
		type result struct {
			err error
			at  time.Duration // since start
		}
		wrote := make(chan result, 1)
		go func() {
			_, err := c.Write(data)
			if err == nil {
				err = c.Close()
			}
			wrote <- result{err, time.Since(start)}
		}()

		buf := make([]byte, chunk)
		got := 0
		var pausedAt time.Duration // since start
		var rerr error
		for {
			n, err := s.Read(buf)
			if n > 0 {
				require.LessOrEqual(t, got+n, size, "more bytes than written")
				if !bytes.Equal(data[got:got+n], buf[:n]) {
					i := 0
					for data[got+i] == buf[i] {
						i++
					}
					t.Fatalf("byte %d is %#x, want %#x", got+i, buf[i], data[got+i])
				}
				got += n
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rerr = err
				break
			}
			if pausedAt == 0 && got >= pauseAt {
				pausedAt = time.Since(start)
				time.Sleep(pause)
				continue
			}
			time.Sleep(gap)
		}
		took := time.Since(start)
		// The checks below are independent: each failure tells its own part.
		w := <-wrote
		assert.NoError(t, rerr, "Read at byte %d, %v after the start", got, took)
		assert.NoError(t, w.err, "Write or Close, %v after the start; the reader paused at %v", w.at, pausedAt)
		t.Logf("%d of %d bytes read in %v virtual (the reader's own floor %v); the writer was done at %v",
			got, size, took.Round(time.Millisecond), floor, w.at.Round(time.Millisecond))
		for _, ls := range []netsim.LinkStats{pa.Link().Stats(), pb.Link().Stats()} {
			assert.Zero(t, ls.Dropped+ls.QueueDrops+ls.Overflow, "the link lost nothing")
		}
		rs, ss := s.Stats().Total, c.Stats().Total
		t.Logf("sender: %d data packets sent, %d retransmitted, %d reported lost or timed out; receiver: %d received, %d dropped, %d found missing",
			ss.PktSent, ss.PktRetrans, ss.PktSndLoss, rs.PktRecv, rs.PktRecvDropped, rs.PktRcvLoss)
		// A full buffer still offers a window of 2 packets (4.11's floor),
		// so the sender keeps 2 out as probes; the receiver drops them
		// until its reader has made room, answering them (see
		// answerProbeLocked), and they are sent again at each stall
		// resend, a round trip apart while answered (both of them, from
		// the stall that repeats: it takes overdue retransmissions along,
		// for a peer that never repeats a loss report), or reported
		// missing once later packets pass them: the reader here frees a
		// slot every 29 ms or so, and a new packet sent on the ACK that a
		// probe's acceptance draws can fill the next slot before the other
		// probe is resent (about 180 in this run, 3 when the probes went
		// only at timeouts, 300 ms or more apart).
		// Those are the only packets lost or dropped, and no timeout
		// slows the sender (the controller is not told of them).
		c.mu.Lock()
		expiries, stalls, period := c.stats.expiries, c.stats.stallResent, c.cc.period
		c.mu.Unlock()
		t.Logf("sender: %d timeouts, %d stall resends; sending period at the end %v", expiries, stalls, period)
		assert.LessOrEqual(t, rs.PktRecvDropped, 2*(expiries+stalls)+rs.PktRcvLoss, "dropped beyond the probes")
		assert.LessOrEqual(t, rs.PktRcvLoss, uint64(400), "found missing")
		require.Equal(t, size, got, "bytes read")
		require.Less(t, took, bound, "virtual time")
	})
}

// TestSlowReaderProbesAnswered pauses a reader for 10 s, ten times the
// sender's PeerIdleTimeout, with its 64-packet buffer full: the receiver
// answers the sender's probes (which it drops) with ACKs offering its
// window, so the sender hears it all through the pause. Were it silent, the
// sender would hear it only through keep-alives sent in the silences its
// backed-off probes leave, after its own EXP timer had expired. The
// connection survives, no timeout fires at the sender during the pause,
// the probes go at the steady pace of answered resends, and every byte
// arrives once the reader resumes.
func TestSlowReaderProbesAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			size  = 1 << 20
			pause = 10 * time.Second
		)
		l := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
		cfg := Config{ReceiveBuffer: 64, SendBuffer: 128, PeerIdleTimeout: time.Second, LingerStall: time.Minute}
		c, s, _, _ := simPair(t, l, l, cfg, 12)
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*131 + i>>9)
		}
		wrote := make(chan error, 1)
		go func() {
			_, err := c.Write(data)
			if err == nil {
				err = c.Close()
			}
			wrote <- err
		}()

		// Read a little, so the buffer has filled and the sender probes;
		// then pause, counting the sender's timeouts and stall resends
		// and the receiver's answers from a second into the pause.
		buf := make([]byte, 1<<10)
		_, err := io.ReadFull(s, buf)
		require.NoError(t, err)
		time.Sleep(time.Second)
		counts := func() (expiries, stalls, answers uint64) {
			c.mu.Lock()
			expiries, stalls = c.stats.expiries, c.stats.stallResent
			c.mu.Unlock()
			s.mu.Lock()
			answers = s.stats.probesAnswered
			s.mu.Unlock()
			return expiries, stalls, answers
		}
		e0, st0, a0 := counts()
		time.Sleep(pause)
		e1, st1, a1 := counts()
		t.Logf("in %v of the pause: %d timeouts, %d stall resends, %d probes answered", pause, e1-e0, st1-st0, a1-a0)

		got := append([]byte(nil), buf...)
		rest, err := io.ReadAll(s)
		require.NoError(t, err)
		got = append(got, rest...)
		require.NoError(t, <-wrote, "Write and Close")
		require.True(t, bytes.Equal(data, got), "bytes read: %d of %d, or not those written", len(got), size)

		assert.Zero(t, e1-e0, "timeouts at the sender during the pause")
		// A resend every RTT+4·RTTVar+2 SYN (about 40-60 ms here), each
		// answered: some 200 in 10 s, where backed-off ones (up to 64
		// times apart) would be a few dozen.
		assert.Greater(t, st1-st0, uint64(100), "stall resends during the pause")
		assert.Greater(t, a1-a0, uint64(100), "probes answered during the pause")
	})
}
