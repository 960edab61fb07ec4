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
		// until its reader has made room, and they are sent again at the
		// next timeout or stall resend (both of them, from the stall that
		// repeats: it takes overdue retransmissions along, for a peer that
		// never repeats a loss report), or reported missing once later
		// packets pass them.
		// Those are the only packets lost or dropped, and no timeout
		// slows the sender (the controller is not told of them).
		c.mu.Lock()
		expiries, stalls, period := c.stats.expiries, c.stats.stallResent, c.cc.period
		c.mu.Unlock()
		t.Logf("sender: %d timeouts, %d stall resends; sending period at the end %v", expiries, stalls, period)
		assert.LessOrEqual(t, rs.PktRecvDropped, 2*(expiries+stalls)+rs.PktRcvLoss, "dropped beyond the probes")
		assert.LessOrEqual(t, rs.PktRcvLoss, uint64(32), "found missing")
		require.Equal(t, size, got, "bytes read")
		require.Less(t, took, bound, "virtual time")
	})
}
