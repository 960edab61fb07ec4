package udt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/netsim"
	"github.com/udt-go/udt/internal/seq"
)

func TestLossyLinks(t *testing.T) {
	const size = 32 << 20
	link := func(rate int64, delay time.Duration) netsim.LinkConfig {
		return netsim.LinkConfig{Rate: rate, Delay: delay}
	}
	for _, tc := range []struct {
		name  string
		a2b   netsim.LinkConfig
		b2a   netsim.LinkConfig
		bound time.Duration // virtual time, loss-tolerant controller
	}{
		{"no loss", link(100e6, 10*time.Millisecond), link(100e6, 10*time.Millisecond), 10 * time.Second},
		{"loss 1%", with(link(100e6, 10*time.Millisecond), func(l *netsim.LinkConfig) { l.Loss = 0.01 }), link(100e6, 10*time.Millisecond), 20 * time.Second},
		{"loss 5%", with(link(100e6, 10*time.Millisecond), func(l *netsim.LinkConfig) { l.Loss = 0.05 }), link(100e6, 10*time.Millisecond), 30 * time.Second},
		{"loss 10% both ways", with(link(100e6, 10*time.Millisecond), func(l *netsim.LinkConfig) { l.Loss = 0.10 }), with(link(100e6, 10*time.Millisecond), func(l *netsim.LinkConfig) { l.Loss = 0.10 }), 120 * time.Second},
		{"loss 30% both ways", with(link(100e6, 10*time.Millisecond), func(l *netsim.LinkConfig) { l.Loss = 0.30 }), with(link(100e6, 10*time.Millisecond), func(l *netsim.LinkConfig) { l.Loss = 0.30 }), 600 * time.Second},
		{"bursty loss", with(link(100e6, 10*time.Millisecond), func(l *netsim.LinkConfig) {
			l.Burst = &netsim.GilbertElliott{PGoodToBad: 0.002, PBadToGood: 0.2, LossBad: 1}
		}), link(100e6, 10*time.Millisecond), 120 * time.Second},
		{"reorder 1% jitter 5ms", with(link(100e6, 10*time.Millisecond), func(l *netsim.LinkConfig) { l.Reorder = 0.01; l.Jitter = 5 * time.Millisecond }), link(100e6, 10*time.Millisecond), 120 * time.Second},
		{"duplication 1%", with(link(100e6, 10*time.Millisecond), func(l *netsim.LinkConfig) { l.Duplicate = 0.01 }), with(link(100e6, 10*time.Millisecond), func(l *netsim.LinkConfig) { l.Duplicate = 0.01 }), 60 * time.Second},
		{"200ms RTT 50Mbit", link(50e6, 100*time.Millisecond), link(50e6, 100*time.Millisecond), 120 * time.Second},
	} {
		for _, cc := range []CongestionControl{CongestionDAIMD, CongestionModel} {
			t.Run(fmt.Sprintf("%s/%v", tc.name, cc), func(t *testing.T) {
				t.Parallel() // each case is bounded; together they take a minute under -race
				synctest.Test(t, func(t *testing.T) {
					// The native controller reads every loss as congestion
					// and crawls on lossy links, like the C++ library's: 30%
					// both ways takes it about 7 minutes.
					bound := tc.bound
					if cc == CongestionDAIMD {
						bound = 12 * time.Minute
					}
					c, s, _, _ := simPair(t, tc.a2b, tc.b2a, Config{Congestion: cc, Linger: bound}, 1)
					start := time.Now()
					mbps := transfer(t, c, s, size)
					took := time.Since(start)
					require.Less(t, took, bound, "virtual time")
					st := s.Stats()
					t.Logf("%.1f Mbit/s in %v virtual; receiver saw %d losses", mbps, took.Round(time.Millisecond), st.Total.PktRcvLoss)
				})
			})
		}
	}
}

func with(l netsim.LinkConfig, f func(*netsim.LinkConfig)) netsim.LinkConfig {
	f(&l)
	return l
}

func TestBlackholeThenRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
		c, s, pa, _ := simPair(t, l, l, Config{Congestion: CongestionModel}, 2)
		const n = 16 << 20
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 13)
		}
		go func() {
			time.Sleep(200 * time.Millisecond)
			bh := l
			bh.Blackhole = true
			pa.Link().SetConfig(bh)
			time.Sleep(2 * time.Second)
			pa.Link().SetConfig(l)
		}()
		go func() {
			_, _ = c.Write(data)
			_ = c.Close()
		}()
		h := sha256.New()
		got, err := io.Copy(h, s)
		require.NoError(t, err)
		require.Equal(t, int64(n), got)
		require.Equal(t, sha256.Sum256(data), [32]byte(h.Sum(nil)))
	})
}

func TestBlackholeForever(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		bound time.Duration
	}{
		{"C++ rule", Config{}, 60 * time.Second},
		{"PeerIdleTimeout", Config{PeerIdleTimeout: 5 * time.Second}, 7 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
				c, s, pa, _ := simPair(t, l, l, tc.cfg, 3)
				_, err := c.Write(make([]byte, 1<<20))
				require.NoError(t, err)
				_, err = io.ReadFull(s, make([]byte, 1<<20))
				require.NoError(t, err)

				// The client's datagrams vanish for good: the server hears
				// nothing, the client hears no ACKs.
				bh := l
				bh.Blackhole = true
				pa.Link().SetConfig(bh)
				start := time.Now()
				wrote := make(chan error, 1)
				go func() {
					_, err := c.Write(make([]byte, 1<<20))
					if err == nil {
						_, err = c.Read(make([]byte, 1))
					}
					wrote <- err
				}()
				read := make(chan error, 1)
				go func() {
					_, err := s.Read(make([]byte, 1))
					read <- err
				}()
				for _, ch := range []chan error{wrote, read} {
					select {
					case err := <-ch:
						require.ErrorIs(t, err, ErrConnLost)
					case <-time.After(tc.bound):
						t.Fatalf("no error within %v", tc.bound)
					}
				}
				t.Logf("both sides lost the connection after %v", time.Since(start).Round(time.Millisecond))
			})
		})
	}
}

// TestSequenceWrap starts a connection just below the 31-bit wrap, with loss
// in both directions, so data, ACKs, NAK ranges and loss lists cross it.
func TestSequenceWrap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := netsim.LinkConfig{Rate: 100e6, Delay: 5 * time.Millisecond, Loss: 0.02}
		cfg := Config{Congestion: CongestionModel}
		cfg.isn = uint32(seq.Max-500) + 1
		c, s, _, _ := simPair(t, l, l, cfg, 4)
		c.mu.Lock()
		require.Equal(t, seq.Max-500, c.snd.lastAck)
		c.mu.Unlock()
		transfer(t, c, s, 8<<20) // about 5,800 packets: well past the wrap
		s.mu.Lock()
		defer s.mu.Unlock()
		require.Less(t, uint32(s.rcv.lastSeq), uint32(10000), "the receiver's sequence wrapped")
	})
}

// dropControl drops the first n control packets of type typ.
func dropControl(typ ctrlType, n int) func([]byte, int) bool {
	dropped := 0
	return func(b []byte, _ int) bool {
		p, err := parsePacket(b)
		if err != nil || !p.control || p.typ != typ || dropped >= n {
			return false
		}
		dropped++
		return true
	}
}

// TestLostShutdownIsRepeated loses both copies of the client's shutdown:
// the server still reads EOF promptly, because the closed client answers
// the server's next packet with another shutdown.
func TestLostShutdownIsRepeated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := netsim.LinkConfig{Rate: 100e6, Delay: 5 * time.Millisecond}
		lossy := l
		lossy.Drop = dropControl(ctrlShutdown, 2)
		c, s, pa, _ := simPair(t, lossy, l, Config{}, 5)
		start := time.Now()
		transfer(t, c, s, 1<<20)
		require.Less(t, time.Since(start), 3*time.Second, "EOF came by the repeated shutdown, not the 46 s timeout")
		require.Equal(t, uint64(2), pa.Link().Stats().Dropped)
	})
}

// TestHandshakeLosses drops the first request, the first cookie reply and
// the first response: the dial still completes by retransmission.
func TestHandshakeLosses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := netsim.LinkConfig{Delay: 5 * time.Millisecond}
		toServer, toClient := l, l
		toServer.Drop = dropControl(ctrlHandshake, 1)
		toClient.Drop = dropControl(ctrlHandshake, 2) // the cookie reply and the first response
		start := time.Now()
		c, s, _, _ := simPair(t, toServer, toClient, Config{}, 6)
		require.Less(t, time.Since(start), 2*time.Second)
		transfer(t, c, s, 64<<10)
	})
}

// TestCorruptionCaughtByChecksum: on a real path the receiving host's UDP
// checksum drops nearly every datagram corrupted on the wire, so to the
// transport corruption is loss. 32 MiB arrive intact through 1% of
// corrupted datagrams each way.
func TestCorruptionCaughtByChecksum(t *testing.T) {
	for _, cc := range []CongestionControl{CongestionDAIMD, CongestionModel} {
		t.Run(cc.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond, Corrupt: 0.01, ChecksumCovered: true}
				c, s, a, b := simPair(t, l, l, Config{Congestion: cc, Linger: 20 * time.Minute}, 3)
				transfer(t, c, s, 32<<20)
				require.NotZero(t, a.Link().Stats().Corrupted)
				require.NotZero(t, b.Link().Stats().Corrupted)
			})
		})
	}
}

// TestCorruptedControlPackets: UDT has no checksum of its own, so what the
// UDP checksum misses (corruption in a host or a middlebox) reaches the
// transport. Control packets corrupted on the way back to the sender
// (ACK, NAK, keep-alive; one in ten) must be dropped when malformed, never crash the
// connection's loop, and never make the receiver deliver other bytes than
// those sent: the transfer completes intact, or fails with an error.
func TestCorruptedControlPackets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fwd := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
		back := fwd
		back.Corrupt = 0.1
		c, s, _, b := simPair(t, fwd, back, Config{Linger: time.Minute, PeerIdleTimeout: 5 * time.Second}, 4)
		const n = 32 << 20
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*7 + i>>13)
		}
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			if _, err := c.Write(data); err == nil {
				c.Close()
			}
		}()
		// A corrupted ACK number that lands inside the window makes the
		// sender drop data the receiver never got (UDT has no checksum of
		// its own); the receiver then fails with ErrConnLost, and the
		// writer's Close lingers until its bound. Wait for it either way.
		defer func() { <-wrote }()
		got, err := io.ReadAll(s)
		require.LessOrEqual(t, len(got), n)
		require.True(t, bytes.Equal(data[:len(got)], got), "delivered bytes differ from those sent")
		if err == nil {
			require.Len(t, got, n)
		}
		st := c.Stats()
		t.Logf("received %d of %d bytes (err %v); %d corrupted control packets, sender dropped %d as malformed",
			len(got), n, err, b.Link().Stats().Corrupted, st.Total.Dropped)
		require.NotZero(t, b.Link().Stats().Corrupted)
	})
}

// TestLostRetransmissionReReported drops one data packet and its first
// retransmission on a link that keeps losing other packets, so a new gap
// opens every few tens of milliseconds: the periodic NAK must re-report the
// hole within about one interval all the same, rather than wait until the
// sender runs out of window and the stream falls silent.
func TestLostRetransmissionReReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rtt = 100 * time.Millisecond
		var (
			target   = seq.Num(0)
			picked   bool
			seen     int
			offers   [3]time.Time // first send and the first two retransmissions of target
			trickles int
		)
		fwd := netsim.LinkConfig{Rate: 20e6, Delay: rtt / 2, Drop: func(p []byte, n int) bool {
			if len(p) < 16 || p[0]&0x80 != 0 {
				return false // control packet
			}
			s := seq.Num(binary.BigEndian.Uint32(p)) & seq.Max
			if !picked && n >= 3000 {
				target, picked = s, true
			}
			if picked && s == target {
				if seen < len(offers) {
					offers[seen] = time.Now()
				}
				seen++
				return seen <= 2
			}
			// 2% loss elsewhere, every 50th packet: a gap per 25 ms.
			if n%50 == 0 {
				trickles++
				return true
			}
			return false
		}}
		back := netsim.LinkConfig{Rate: 20e6, Delay: rtt / 2}
		c, s, _, _ := simPair(t, fwd, back, Config{Congestion: CongestionModel, Linger: time.Minute}, 4)
		transfer(t, c, s, 16<<20)
		require.GreaterOrEqual(t, seen, 3, "the target packet was not retransmitted twice")
		wait := offers[2].Sub(offers[1])
		st := s.Stats()
		t.Logf("second retransmission %v after the first; %d other packets dropped; receiver RTT %v, var %v", wait, trickles, st.RTT, st.RTTVar)
		// The receiver re-reports a loss one to two NAK intervals (RTT +
		// 4·RTTVar) after finding it; a starved timer left the hole until
		// the sender ran out of window, over 900 ms here.
		require.Less(t, wait, 5*rtt, "lost retransmission re-reported too late")
	})
}

// TestForgedRateWordsBounded sends the sender a full ACK whose arrival-rate
// and capacity words claim 2^28 packets/s, as a corrupted or forged ACK can
// (UDT has no checksum of its own): the running averages the controller
// sizes its rate and window by stay near their values, instead of leaping a
// millionfold and letting the sender burst without bound. Warm (dozens of
// full ACKs in), they stay within twice their values; cold (among the
// first full ACKs, whose averages have not settled), within a few times
// what the link carries.
func TestForgedRateWordsBounded(t *testing.T) {
	const linkRate = 100e6
	linkPackets := int(linkRate) / 8 / DefaultMSS
	for _, warm := range []bool{true, false} {
		name := map[bool]string{true: "warm", false: "cold"}[warm]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := netsim.LinkConfig{Rate: linkRate, Delay: 50 * time.Millisecond}
				c, s, pa, pb := simPair(t, l, l, Config{}, 5)
				go io.Copy(io.Discard, s)
				if warm {
					_, err := c.Write(make([]byte, 8<<20))
					require.NoError(t, err)
					time.Sleep(2 * time.Second) // the averages are warm: dozens of full ACKs
					_, err = c.Write(make([]byte, 64<<10))
					require.NoError(t, err)
					time.Sleep(time.Millisecond) // sent; the peer's ACK of it is 100 ms away
				} else {
					go c.Write(make([]byte, 8<<20))
					for {
						time.Sleep(time.Millisecond)
						c.mu.Lock()
						n := c.cc.rateSamples
						c.mu.Unlock()
						if n >= 2 {
							break
						}
					}
				}

				c.mu.Lock()
				rate, bw := c.cc.rate, c.cc.bandwidth
				if warm {
					require.Greater(t, c.cc.rateSamples, rateWarmup)
				} else {
					require.LessOrEqual(t, c.cc.rateSamples, 2)
				}
				forged := ackBody{ack: c.snd.currSeq.Inc(), rtt: 100_000, rttVar: 1000, avail: 8000, rate: 1 << 28, bandwidth: 1 << 28, words: 6}
				id := c.id
				c.mu.Unlock()
				_, err := pb.WriteTo(appendControl(nil, ctrlACK, 1, id, forged.append(nil)), pa.LocalAddr())
				require.NoError(t, err)
				time.Sleep(60 * time.Millisecond) // across the 50 ms link

				c.mu.Lock()
				defer c.mu.Unlock()
				require.Equal(t, forged.ack, c.snd.dataAck, "the forged ACK was taken")
				t.Logf("arrival rate %d -> %d, capacity %d -> %d packets/s (the link carries %d)",
					rate, c.cc.rate, bw, c.cc.bandwidth, linkPackets)
				if warm {
					require.Less(t, c.cc.rate, 2*rate, "arrival-rate average")
					require.Less(t, c.cc.bandwidth, 2*bw, "capacity average")
				} else {
					require.Less(t, c.cc.rate, 8*linkPackets, "arrival-rate average")
					require.Less(t, c.cc.bandwidth, 8*linkPackets, "capacity average")
				}
			})
		})
	}
}

// TestCloseReportsUnacknowledged: a Close whose linger runs out with data
// unacknowledged says how much, since the peer cannot tell.
func TestCloseReportsUnacknowledged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
		c, _, pa, _ := simPair(t, l, l, Config{Linger: 500 * time.Millisecond}, 3)
		bh := l
		bh.Blackhole = true
		pa.Link().SetConfig(bh)
		_, err := c.Write(make([]byte, 100_000))
		require.NoError(t, err)
		start := time.Now()
		err = c.Close()
		require.ErrorIs(t, err, ErrUnacknowledged)
		var ue *UnacknowledgedError
		require.ErrorAs(t, err, &ue)
		require.Equal(t, 100_000, ue.Bytes)
		require.InDelta(t, 500*time.Millisecond, time.Since(start), float64(20*time.Millisecond), "Close waited out the linger")
	})
}

// TestCloseReportsUnacknowledgedAfterLoss: a connection lost with written
// data unacknowledged, before Close or during its linger, makes Close say
// so, with the loss error: the Writes had returned nil, and Close returned
// nil too, the data silently lost. With everything acknowledged before the
// loss, Close returns nil, and a second Close net.ErrClosed.
func TestCloseReportsUnacknowledgedAfterLoss(t *testing.T) {
	const idle = 3 * time.Second
	for _, tc := range []struct {
		name  string
		acked bool // all written data acknowledged before the link dies
		early bool // Close once the connection is lost, not before
	}{
		{"lost before Close", false, true},
		{"lost during the linger", false, false},
		{"all acknowledged, lost before Close", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
				c, s, pa, pb := simPair(t, l, l, Config{PeerIdleTimeout: idle}, 5)
				const n = 200_000
				if tc.acked {
					_, err := c.Write(make([]byte, n))
					require.NoError(t, err)
					_, err = io.ReadFull(s, make([]byte, n))
					require.NoError(t, err)
					time.Sleep(100 * time.Millisecond) // the last ACK comes back
				}
				// The link dies both ways: nothing more is acknowledged,
				// and the peer hears nothing of our shutdown.
				bh := l
				bh.Blackhole = true
				pa.Link().SetConfig(bh)
				pb.Link().SetConfig(bh)
				if !tc.acked {
					_, err := c.Write(make([]byte, n))
					require.NoError(t, err, "the send buffer takes it all")
				}
				start := time.Now()
				if tc.early {
					_, err := c.Read(make([]byte, 1))
					require.ErrorIs(t, err, ErrConnLost)
				}
				err := c.Close()
				t.Logf("Close after %v: %v", time.Since(start), err)
				require.Less(t, time.Since(start), idle+2*time.Second)
				if tc.acked {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, ErrConnLost)
					require.ErrorIs(t, err, ErrUnacknowledged)
					var ue *UnacknowledgedError
					require.ErrorAs(t, err, &ue)
					require.Equal(t, n, ue.Bytes)
					require.ErrorIs(t, ue.Err, ErrConnLost)
					require.Equal(t, ue.Err.Error(), ue.Reason)
				}
				require.ErrorIs(t, c.Close(), net.ErrClosed)
			})
		})
	}
}

// TestCloseReportsUnacknowledgedAfterPeerShutdown: a peer that shuts the
// connection down while data we wrote is unacknowledged makes our Close
// report it, with ErrPeerClosed (which Write reports then). A peer that
// reads everything and closes at once acknowledges it first, though the
// last packets were full ones (a short one draws an ACK at once) and its
// ACK timer had not fired: our Close returns nil.
func TestCloseReportsUnacknowledgedAfterPeerShutdown(t *testing.T) {
	for _, tc := range []struct {
		name string
		read bool // the peer reads all we wrote before it closes
	}{
		{"peer got nothing", false},
		{"peer read all", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
				c, s, pa, _ := simPair(t, l, l, Config{}, 6)
				n := 100 * c.payload
				if !tc.read {
					// Our data never arrives; the peer's packets do.
					bh := l
					bh.Blackhole = true
					pa.Link().SetConfig(bh)
				}
				_, err := c.Write(make([]byte, n))
				require.NoError(t, err)
				if tc.read {
					_, err = io.ReadFull(s, make([]byte, n))
					require.NoError(t, err)
				} else {
					time.Sleep(50 * time.Millisecond)
				}
				require.NoError(t, s.Close())
				_, err = c.Read(make([]byte, 1))
				require.ErrorIs(t, err, io.EOF, "the peer's shutdown arrived")
				err = c.Close()
				t.Logf("Close: %v", err)
				if tc.read {
					require.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, ErrPeerClosed)
				var ue *UnacknowledgedError
				require.ErrorAs(t, err, &ue)
				require.Equal(t, n, ue.Bytes)
				require.ErrorIs(t, c.Close(), net.ErrClosed)
			})
		})
	}
}

// TestCloseAcknowledgesAllBeforeShutdown: a reader closes as soon as it
// has read the last packet, and the writer never got the ACK that packet
// drew. The reader's Close acknowledges it again before its shutdown,
// though that repeats the last ACK it sent, within a round trip; the
// writer's Close returns nil. Here the ACK is lost; on loopback
// (TestTransportListenDial) it was still in the receive worker's outbox,
// to be written once the lock was released, while the woken reader read,
// closed and sent its shutdown ahead of it.
func TestCloseAcknowledgesAllBeforeShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const tail = 100 // the last packet's size: a short one draws an ACK at once
		var (
			end     atomic.Int64 // the ACK number covering the short packet; -1 before it is sent
			dropped atomic.Int32 // ACKs of end dropped
		)
		end.Store(-1)
		fwd := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
		fwd.Drop = func(b []byte, _ int) bool {
			if p, err := parsePacket(b); err == nil && !p.control && len(p.body) == tail {
				end.Store(int64(p.seq.Inc()))
			}
			return false
		}
		back := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
		back.Drop = func(b []byte, _ int) bool {
			p, err := parsePacket(b)
			if err != nil || !p.control || p.typ != ctrlACK || dropped.Load() > 0 {
				return false
			}
			a, err := parseACK(p.body)
			if err != nil || int64(a.ack) != end.Load() {
				return false
			}
			dropped.Add(1)
			return true // the first ACK of all that was written
		}
		c, s, _, _ := simPair(t, fwd, back, Config{}, 7)
		n := 100*c.payload + tail
		_, err := c.Write(make([]byte, n))
		require.NoError(t, err)
		_, err = io.ReadFull(s, make([]byte, n))
		require.NoError(t, err)
		require.NoError(t, s.Close())
		require.Equal(t, int32(1), dropped.Load(), "the ACK of the last packet was not dropped")
		_, err = c.Read(make([]byte, 1))
		require.ErrorIs(t, err, io.EOF, "the peer's shutdown arrived")
		require.NoError(t, c.Close(), "the peer read all, and acknowledged it before its shutdown")
	})
}

// TestNoSpuriousTimeoutLongPath checks that a transfer over a long lossy
// path does not time out while its queue grows at the end of start-up: the
// receiver holds back its unchanged ACK for the RTT and variation it
// measures, which run ahead of the sender's smoothed copy, and an EXP
// timer set by the copy expired first and sent every packet in flight
// again (2,400-3,000 packets, 4-6 % of a 30 s transfer, in a quarter of the
// seeds of 20 Mbit/s, 300 ms, 0.5 % loss; most of the others timed out
// once, at the start, on the first ACK of a 300 ms path). No timeout may
// expire, and the receiver must get few packets twice: under 0.5 % of
// those sent, where random loss alone duplicates almost none.
func TestNoSpuriousTimeoutLongPath(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				fwd := netsim.LinkConfig{Rate: 20e6, Delay: 150 * time.Millisecond, Loss: 0.005}
				back := netsim.LinkConfig{Rate: 20e6, Delay: 150 * time.Millisecond}
				c, s, _, _ := simPair(t, fwd, back, Config{Congestion: CongestionModel, Linger: -1}, seed+1)
				var got atomic.Int64
				bulk(c, s, &got)
				time.Sleep(20 * time.Second)
				sent, dup := c.Stats().Total.PktSent, s.Stats().Total.PktRecvDropped
				c.mu.Lock()
				expiries := c.stats.expiries
				c.mu.Unlock()
				t.Logf("%d packets sent, %d received twice, %d timeouts", sent, dup, expiries)
				require.Zero(t, expiries, "timeouts")
				require.Less(t, float64(dup), 0.005*float64(sent))
				_ = c.Close()
				_ = s.Close()
			})
		})
	}
}

// lossRTTRecorder paces at a fixed period and records the LossRTT of each
// loss report.
type lossRTTRecorder struct {
	period  time.Duration
	samples []time.Duration
	reports int
}

func (r *lossRTTRecorder) Init(time.Time, CongestionInfo)            {}
func (r *lossRTTRecorder) OnACK(time.Time, uint32, CongestionInfo)   {}
func (r *lossRTTRecorder) OnTimeout(time.Time, CongestionInfo)       {}
func (r *lossRTTRecorder) OnPktSent(time.Time, CongestionPacket)     {}
func (r *lossRTTRecorder) OnPktReceived(time.Time, CongestionPacket) {}
func (r *lossRTTRecorder) Params() CongestionParams                  { return CongestionParams{Period: r.period} }
func (r *lossRTTRecorder) OnLoss(_ time.Time, _ []LossRange, info CongestionInfo) {
	r.reports++
	if info.LossRTT > 0 {
		r.samples = append(r.samples, info.LossRTT)
	}
}

// TestLossRTT checks the round trip a loss report measures
// (CongestionInfo.LossRTT): over a 100 ms path with 1 % random loss and no
// queue (paced at half its rate), the first report of each loss gives the
// path's round trip, from the sending of the packet whose arrival showed
// the gap; re-reports give none.
func TestLossRTT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &lossRTTRecorder{period: 233 * time.Microsecond} // 50 Mbit/s of 1456-byte payloads
		fwd := netsim.LinkConfig{Rate: 100e6, Delay: 50 * time.Millisecond, Loss: 0.01}
		back := netsim.LinkConfig{Rate: 100e6, Delay: 50 * time.Millisecond}
		c, s, _, _ := simPair(t, fwd, back, Config{NewController: func() CongestionController { return rec }, Linger: -1}, 3)
		var got atomic.Int64
		bulk(c, s, &got)
		time.Sleep(5 * time.Second)
		c.mu.Lock()
		samples, reports := slices.Clone(rec.samples), rec.reports
		c.mu.Unlock()
		_ = c.Close()
		_ = s.Close()
		lost := s.Stats().Total.PktRcvLoss
		t.Logf("%d losses, %d reports, %d samples", lost, reports, len(samples))
		require.Greater(t, len(samples), int(lost)*8/10, "most first reports give a sample")
		for _, d := range samples {
			require.GreaterOrEqual(t, d, 100*time.Millisecond)
			require.Less(t, d, 105*time.Millisecond)
		}
	})
}

// TestForgedRTTWordBounded sends the sender, mid-transfer, a full ACK whose
// RTT words claim 2^30 µs (18 minutes), as a corrupted or forged ACK can:
// the sample is bounded by what the sender timed itself, and dead-peer
// detection, once the path goes dark, comes within a second of when it
// comes without the forged ACK (taken whole, the sample put the EXP
// interval, and the detection with it, at days).
func TestForgedRTTWordBounded(t *testing.T) {
	lost := func(forge bool) (d time.Duration) {
		synctest.Test(t, func(t *testing.T) {
			l := netsim.LinkConfig{Rate: 100e6, Delay: 5 * time.Millisecond}
			c, s, pa, pb := simPair(t, l, l, Config{Linger: -1}, 5)
			go io.Copy(io.Discard, s)
			_, err := c.Write(make([]byte, 1<<20))
			require.NoError(t, err)
			time.Sleep(time.Second)
			_, err = c.Write(make([]byte, 64<<10))
			require.NoError(t, err)
			time.Sleep(time.Millisecond) // sent; the peer's ACK of it is 10 ms away
			c.mu.Lock()
			forged := ackBody{ack: c.snd.currSeq.Inc(), rtt: 1 << 30, rttVar: 1 << 30, avail: 8000, rate: 1000, bandwidth: 1000, words: 6}
			id := c.id
			c.mu.Unlock()
			if forge {
				_, err = pb.WriteTo(appendControl(nil, ctrlACK, 1, id, forged.append(nil)), pa.LocalAddr())
				require.NoError(t, err)
			}
			time.Sleep(6 * time.Millisecond) // across the link, before the peer's own ACK
			c.mu.Lock()
			rtt := c.cc.rtt.RTT
			taken := c.snd.dataAck == forged.ack
			c.mu.Unlock()
			require.Less(t, rtt, 50*time.Millisecond, "RTT estimate")
			if forge {
				require.True(t, taken, "the forged ACK was taken")
			}
			dark := l
			dark.Blackhole = true
			pa.Link().SetConfig(dark)
			pb.Link().SetConfig(dark)
			start := time.Now()
			_, err = c.Read(make([]byte, 1))
			require.ErrorIs(t, err, ErrConnLost)
			d = time.Since(start)
		})
		return d
	}
	plain, forged := lost(false), lost(true)
	t.Logf("peer lost %v after the path went dark; %v with the forged RTT", plain, forged)
	require.Less(t, plain, time.Minute)
	require.InDelta(t, plain.Seconds(), forged.Seconds(), 1)
}

// TestHandshakeSeedsRTT checks that a dial takes its conclusion's round
// trip as its first RTT measurement, which the samples of ACKs are then
// smoothed against, rather than the first of them replacing the initial
// guess of 100 ms.
func TestHandshakeSeedsRTT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := netsim.LinkConfig{Rate: 100e6, Delay: 150 * time.Millisecond}
		c, _, _, _ := simPair(t, l, l, Config{Linger: -1}, 5)
		c.mu.Lock()
		defer c.mu.Unlock()
		require.True(t, c.cc.rtt.Sampled())
		require.GreaterOrEqual(t, c.cc.rtt.RTT, 300*time.Millisecond)
		require.Less(t, c.cc.rtt.RTT, 310*time.Millisecond)
	})
}

// lingerPair connects a client and a server across a 100 Mbit/s, 10 ms path
// with cfg, and has the client write n bytes in the background; the server
// reads nothing until the caller makes it.
func lingerPair(t *testing.T, cfg Config, n int) (c, s *Conn) {
	t.Helper()
	l := netsim.LinkConfig{Rate: 100e6, Delay: 5 * time.Millisecond}
	c, s, _, _ = simPair(t, l, l, cfg, 11)
	go func() { _, _ = c.Write(make([]byte, n)) }()
	return c, s
}

// TestCloseNonReadingPeer: a client that wrote 23 MB to a peer that never
// reads, then closed, is held no longer than Config.LingerStall after the
// peer's window closed (it was held for all of Linger's 180 s), and Close
// says what was left unacknowledged and why.
func TestCloseNonReadingPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := lingerPair(t, Config{}, 23<<20)
		time.Sleep(3 * time.Second) // the peer's buffer fills and its window closes
		start := time.Now()
		err := c.Close()
		held := time.Since(start)
		var ue *UnacknowledgedError
		require.ErrorAs(t, err, &ue)
		require.Positive(t, ue.Bytes)
		require.Contains(t, ue.Reason, "LingerStall")
		t.Logf("Close held %v: %v", held, err)
		require.GreaterOrEqual(t, held, DefaultLingerStall-3*time.Second)
		require.LessOrEqual(t, held, DefaultLingerStall+100*time.Millisecond)
	})
}

// TestCloseSlowReaderDeliversAll: a client writes 64 MiB and closes at once
// while its peer reads slowly (64 KiB every 10 ms, about 6.5 MB/s): Close
// lingers until all of it is acknowledged, and the peer reads it all.
func TestCloseSlowReaderDeliversAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 64 << 20
		l := netsim.LinkConfig{Rate: 100e6, Delay: 5 * time.Millisecond}
		c, s, _, _ := simPair(t, l, l, Config{}, 11)
		read := make(chan int64, 1)
		go func() {
			buf := make([]byte, 64<<10)
			var got int64
			for {
				k, err := s.Read(buf)
				got += int64(k)
				if err != nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			read <- got
		}()
		_, err := c.Write(make([]byte, n))
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, c.Close())
		t.Logf("Close lingered %v", time.Since(start))
		require.Equal(t, int64(n), <-read)
	})
}

// TestCloseLingerBounds: a write deadline that had passed before Close
// leaves nothing to linger for, one set at Close (as crypto/tls does) does
// not end the linger; the context of CloseContext ends it; a negative
// LingerStall lingers for all of Linger, as the C++ library does.
func TestCloseLingerBounds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		close func(c *Conn) error
		held  time.Duration
		why   string
	}{
		{"write deadline passed before", Config{}, func(c *Conn) error {
			require.NoError(t, c.SetWriteDeadline(time.Now().Add(-time.Second)))
			return c.Close()
		}, 0, "write deadline had passed 1s before Close"},
		{"write deadline at Close, as crypto/tls sets it", Config{}, func(c *Conn) error {
			require.NoError(t, c.SetWriteDeadline(time.Now()))
			return c.Close()
		}, DefaultLingerStall, "LingerStall"},
		{"context", Config{}, func(c *Conn) error {
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			return c.CloseContext(ctx)
		}, 1500 * time.Millisecond, "context"},
		{"no stall bound", Config{Linger: 8 * time.Second, LingerStall: -1}, (*Conn).Close, 8 * time.Second, "Config.Linger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, _ := lingerPair(t, tc.cfg, 23<<20)
				time.Sleep(3 * time.Second)
				start := time.Now()
				err := tc.close(c)
				var ue *UnacknowledgedError
				require.ErrorAs(t, err, &ue)
				require.Contains(t, ue.Reason, tc.why)
				require.Equal(t, tc.held, time.Since(start))
			})
		})
	}
}
