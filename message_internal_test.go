package udt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/netsim"
	"github.com/udt-go/udt/internal/seq"
)

// testMessage returns message i of a sequence: an 12-byte header (index,
// length, a checksum of the rest) and deterministic filler, n bytes in
// all (n ≥ 12).
func testMessage(i, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint32(b, uint32(i))
	binary.BigEndian.PutUint32(b[4:], uint32(n))
	for j := 12; j < n; j++ {
		b[j] = byte(i*7 + j*13)
	}
	sum := sha256.Sum256(b[12:])
	copy(b[8:12], sum[:4])
	return b
}

// checkMessage returns the index of a message made by testMessage, failing
// the test if it is not one, whole and intact.
func checkMessage(t *testing.T, b []byte) int {
	t.Helper()
	require.GreaterOrEqual(t, len(b), 12, "message too short for its header")
	i := int(binary.BigEndian.Uint32(b))
	require.Equal(t, int(binary.BigEndian.Uint32(b[4:])), len(b), "message %d: length differs from the one sent", i)
	require.True(t, bytes.Equal(testMessage(i, len(b)), b), "message %d: content differs from the one sent", i)
	return i
}

// messageSizes returns n sizes from 12 bytes to max, skewed to the small
// (the cube of a uniform variable) so that small and large both occur.
func messageSizes(seed uint64, n, max int) []int {
	r := rand.New(rand.NewPCG(seed, 1))
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = 12 + int(float64(max-12)*r.Float64()*r.Float64()*r.Float64())
	}
	return sizes
}

func TestMessageBoundariesKept(t *testing.T) {
	c, s := internalPair(t, Config{Type: TypeMessage})
	sizes := messageSizes(1, 1000, 64<<10)
	sizes[0], sizes[1] = 1, payloadSize(DefaultMSS) // one byte, one full packet
	go func() {
		for i, n := range sizes {
			var msg []byte
			if n < 12 {
				msg = []byte{byte(i)}
			} else {
				msg = testMessage(i, n)
			}
			if _, err := c.WriteMessage(msg, 0, true); err != nil {
				t.Errorf("WriteMessage %d: %v", i, err)
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for i, want := range sizes {
		require.NoError(t, s.SetReadDeadline(time.Now().Add(20*time.Second)))
		n, err := s.ReadMessage(buf)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, want, n, "message %d: size", i)
		if n >= 12 {
			require.Equal(t, i, checkMessage(t, buf[:n]), "messages out of order")
		}
	}
}

func TestMessageReadWriteAreWholeMessages(t *testing.T) {
	c, s := internalPair(t, Config{Type: TypeMessage})
	for i, n := range []int{5, 3000, 1} {
		_, err := c.Write(bytes.Repeat([]byte{byte('a' + i)}, n))
		require.NoError(t, err)
	}
	buf := make([]byte, 4096)
	for i, n := range []int{5, 3000, 1} {
		got, err := s.Read(buf)
		require.NoError(t, err)
		require.Equal(t, bytes.Repeat([]byte{byte('a' + i)}, n), buf[:got])
	}
}

func TestMessageShortBufferKeepsMessage(t *testing.T) {
	c, s := internalPair(t, Config{Type: TypeMessage})
	first, second := testMessage(1, 5000), testMessage(2, 20)
	_, err := c.WriteMessage(first, 0, true)
	require.NoError(t, err)
	_, err = c.WriteMessage(second, 0, true)
	require.NoError(t, err)

	require.NoError(t, s.SetReadDeadline(time.Now().Add(5*time.Second)))
	small := make([]byte, 100)
	_, err = s.ReadMessage(small)
	require.ErrorIs(t, err, io.ErrShortBuffer)
	var se *MessageSizeError
	require.ErrorAs(t, err, &se)
	require.Equal(t, 5000, se.Size)
	require.Contains(t, err.Error(), "5000")

	buf := make([]byte, se.Size)
	n, err := s.ReadMessage(buf)
	require.NoError(t, err)
	require.Equal(t, first, buf[:n])
	n, err = s.ReadMessage(buf)
	require.NoError(t, err)
	require.Equal(t, second, buf[:n])
}

func TestMessageLimits(t *testing.T) {
	c, s := internalPair(t, Config{Type: TypeMessage, SendBuffer: 40})
	max := c.MaxMessageSize()
	require.Equal(t, 40*payloadSize(DefaultMSS), max)
	_, err := c.WriteMessage(make([]byte, max+1), 0, true)
	var tl *MessageTooLargeError
	require.ErrorAs(t, err, &tl)
	require.Equal(t, max+1, tl.Size)
	require.Equal(t, max, tl.Max)

	// The largest message goes through whole; the empty one sends nothing.
	n, err := c.WriteMessage(testMessage(7, max), 0, true)
	require.NoError(t, err)
	require.Equal(t, max, n)
	n, err = c.WriteMessage(nil, 0, true)
	require.NoError(t, err)
	require.Zero(t, n)
	buf := make([]byte, max)
	require.NoError(t, s.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, err = s.ReadMessage(buf)
	require.NoError(t, err)
	require.Equal(t, 7, checkMessage(t, buf[:n]))

	// The peer's receive buffer bounds it too.
	c2, _ := internalPair(t, Config{Type: TypeMessage, ReceiveBuffer: 64})
	require.Equal(t, 63*payloadSize(DefaultMSS), c2.MaxMessageSize())
}

func TestMessageCallsOnStreamRefused(t *testing.T) {
	c, s := internalPair(t, Config{})
	_, err := c.WriteMessage([]byte("x"), 0, true)
	require.ErrorIs(t, err, ErrNotMessageMode)
	_, err = s.ReadMessage(make([]byte, 10))
	require.ErrorIs(t, err, ErrNotMessageMode)
}

func TestSocketTypeMismatchRefused(t *testing.T) {
	for _, tc := range []struct{ listen, dial SocketType }{{TypeMessage, TypeStream}, {TypeStream, TypeMessage}} {
		ln := listenRaw(t, Config{Type: tc.listen})
		d := Dialer{Config: Config{Type: tc.dial}}
		_, err := d.DialUDT(context.Background(), "udp", ln.Addr().String())
		require.ErrorIs(t, err, ErrConnRefused, "%v dial to a %v listener", tc.dial, tc.listen)
	}
	_, err := (&Dialer{Config: Config{Type: 5}}).DialUDT(context.Background(), "udp", "127.0.0.1:1")
	require.ErrorContains(t, err, "Config.Type")
	_, err = (&Dialer{Config: Config{MessageTTL: -time.Second}}).DialUDT(context.Background(), "udp", "127.0.0.1:1")
	require.ErrorContains(t, err, "Config.MessageTTL")
}

// lossyMessages sends the messages of sizes from c to s across a lossy
// link, one each gap (if not zero), and returns the indices s read, in the
// order it read them. Every message read is checked whole.
func lossyMessages(t *testing.T, c, s *Conn, sizes []int, ttl time.Duration, inOrder bool, gap time.Duration) []int {
	t.Helper()
	werr := make(chan error, 1)
	go func() {
		for i, n := range sizes {
			if _, err := c.WriteMessage(testMessage(i, n), ttl, inOrder); err != nil {
				werr <- err
				return
			}
			time.Sleep(gap)
		}
		werr <- c.Close()
	}()
	var got []int
	buf := make([]byte, 64<<10)
	for {
		n, err := s.ReadMessage(buf)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		got = append(got, checkMessage(t, buf[:n]))
	}
	require.NoError(t, <-werr)
	return got
}

func lossyLink(loss float64) netsim.LinkConfig {
	return netsim.LinkConfig{Rate: 50e6, Delay: 10 * time.Millisecond, Loss: loss}
}

func TestMessagesInOrderAt5PercentLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _, _ := simPair(t, lossyLink(0.05), lossyLink(0.05), Config{Type: TypeMessage}, 11)
		sizes := messageSizes(2, 1000, 64<<10)
		got := lossyMessages(t, c, s, sizes, 0, true, 0)
		require.Len(t, got, len(sizes), "every message delivered")
		for i, g := range got {
			require.Equal(t, i, g, "delivered out of order")
		}
		st := s.Stats()
		require.Positive(t, st.Total.PktRcvLoss, "the link lost packets")
		t.Logf("%d messages, %d packets lost and repaired", len(got), st.Total.PktRcvLoss)
	})
}

func TestMessagesOutOfOrderAt5PercentLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _, _ := simPair(t, lossyLink(0.05), lossyLink(0.05), Config{Type: TypeMessage}, 12)
		sizes := messageSizes(3, 1000, 64<<10)
		got := lossyMessages(t, c, s, sizes, 0, false, 0)
		require.Len(t, got, len(sizes), "every message delivered")
		seen := make([]bool, len(sizes))
		early := 0
		for j, g := range got {
			require.False(t, seen[g], "message %d delivered twice", g)
			seen[g] = true
			if j > 0 && g < got[j-1] {
				early++
			}
		}
		// A message complete behind a hole is read before the ones the
		// hole holds up.
		require.Positive(t, early, "no message was delivered ahead of an earlier one")
		t.Logf("%d of %d messages read ahead of an earlier one", early, len(got))
	})
}

func TestMessageTTLAt5PercentLoss(t *testing.T) {
	for _, inOrder := range []bool{true, false} {
		t.Run(map[bool]string{true: "in order", false: "out of order"}[inOrder], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// 20 ms RTT: a message that loses a packet needs more
				// than its 15 ms TTL to repair. Messages are written at
				// about 6.5 Mbit/s, which the loss-tolerant controller
				// sustains at 5% loss (the native one crawls there), so
				// that those that lose nothing arrive in time.
				c, s, _, _ := simPair(t, lossyLink(0.05), lossyLink(0.05), Config{Type: TypeMessage, Congestion: CongestionModel}, 13)
				sizes := messageSizes(4, 1000, 16<<10)
				got := lossyMessages(t, c, s, sizes, 15*time.Millisecond, inOrder, 5*time.Millisecond)
				seen := make([]bool, len(sizes))
				for j, g := range got {
					require.False(t, seen[g], "message %d delivered twice", g)
					seen[g] = true
					if inOrder && j > 0 {
						require.Greater(t, g, got[j-1], "in-order messages delivered out of order")
					}
				}
				cs, ss := c.Stats(), s.Stats()
				t.Logf("%d of %d messages delivered; %d drop requests sent, %d received", len(got), len(sizes), cs.Total.DropReqSent, ss.Total.DropReqRecv)
				require.Less(t, len(got), len(sizes), "no message expired")
				require.Greater(t, len(got), len(sizes)/4, "nearly every message expired")
				require.Positive(t, cs.Total.DropReqSent)
				require.Positive(t, ss.Total.DropReqRecv)
			})
		})
	}
}

// TestMessageTTLLongEnough checks that messages whose TTL covers their
// repair are all delivered: expiry is not taken for loss.
func TestMessageTTLLongEnough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _, _ := simPair(t, lossyLink(0.05), lossyLink(0.05), Config{Type: TypeMessage}, 14)
		sizes := messageSizes(5, 300, 64<<10)
		got := lossyMessages(t, c, s, sizes, time.Minute, true, 0)
		require.Len(t, got, len(sizes))
		require.Zero(t, c.Stats().Total.DropReqSent)
	})
}

// receiverAt feeds the accepted conn s data packets and drop requests
// directly, as its receive worker would.
type receiverAt struct {
	t   *testing.T
	s   *Conn
	isn seq.Num
}

func (r receiverAt) data(off int, msg seq.Msg, pos msgPos, body string) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	p := &packet{seq: r.isn.Add(off), msg: msg, pos: pos, inOrder: true, body: []byte(body)}
	var ob outbox
	r.s.onDataLocked(p, time.Now(), &ob)
}

// drop delivers a drop request: info is the additional-info word.
func (r receiverAt) drop(info uint32, first, last int) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	d := dropBody{first: r.isn.Add(first), last: r.isn.Add(last)}
	r.s.onDropRequestLocked(&packet{control: true, typ: ctrlDropReq, info: info, body: d.append(nil)}, time.Now())
}

func (r receiverAt) lost(off int) bool {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.s.rcv.loss.Contains(r.isn.Add(off))
}

// read returns the next message, or "" if none is readable within 100 ms.
func (r receiverAt) read() string {
	r.t.Helper()
	buf := make([]byte, 100)
	require.NoError(r.t, r.s.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	n, err := r.s.ReadMessage(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ""
	}
	require.NoError(r.t, err)
	return string(buf[:n])
}

func newReceiverAt(t *testing.T) receiverAt {
	_, s := internalPair(t, Config{Type: TypeMessage})
	s.mu.Lock()
	isn := s.rcv.readSeq
	s.mu.Unlock()
	return receiverAt{t: t, s: s, isn: isn}
}

// TestDropRequestOnePastTheEnd replays 4.11's drop request, whose range
// ends one packet past the message: the next message's first packet,
// missing when the request comes, must still be asked for and delivered.
func TestDropRequestOnePastTheEnd(t *testing.T) {
	r := newReceiverAt(t)
	// Message 1 is packets 0-2, message 2 packets 3-4. 1 and 3 are lost.
	r.data(0, 1, posFirst, "a0")
	r.data(2, 1, posLast, "a2")
	r.data(4, 2, posLast, "b4")
	require.True(t, r.lost(1))
	require.True(t, r.lost(3))
	require.Equal(t, "", r.read())

	r.drop(1, 1, 3) // 4.11: 1 … 3 for a message that ends at 2
	require.False(t, r.lost(1), "the dropped message's packet is still asked for")
	require.True(t, r.lost(3), "the next message's packet is no longer asked for")
	require.Equal(t, "", r.read(), "a dropped message, or half a message, was delivered")

	r.data(3, 2, posFirst, "b3")
	require.Equal(t, "b3b4", r.read())
	require.Equal(t, "", r.read())
}

// TestDropRequestExact is our own sender's drop request, marked as naming
// the message's last packet, before that packet arrived.
func TestDropRequestExact(t *testing.T) {
	r := newReceiverAt(t)
	r.data(0, 1, posFirst, "a0")
	r.drop(1|dropExact, 0, 2) // packets 1 and 2 never came
	require.Equal(t, "", r.read())
	r.data(2, 1, posLast, "a2") // resent after the drop: discarded
	r.data(1, 1, posMiddle, "a1")
	r.data(3, 2, posSolo, "b3")
	require.Equal(t, "b3", r.read())
	require.Equal(t, "", r.read())
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	require.Equal(t, r.isn.Add(4), r.s.rcv.contig(), "the window moved past the dropped message")
	require.Zero(t, r.s.rcv.loss.Len())
}

// TestDropRequestAheadOfData has the drop request overtake the packets
// sent before it.
func TestDropRequestAheadOfData(t *testing.T) {
	r := newReceiverAt(t)
	r.data(0, 1, posSolo, "a0")
	r.drop(3|dropExact, 2, 3) // message 3 is 2-3; message 2 (packet 1) still on its way
	require.True(t, r.lost(1))
	require.Equal(t, "a0", r.read())
	r.data(1, 2, posSolo, "b1")
	r.data(3, 3, posLast, "c3")
	r.data(4, 4, posSolo, "d4")
	require.Equal(t, "b1", r.read())
	require.Equal(t, "d4", r.read())
}

// TestDropRequestIgnoredOnStream: a stream has no messages to drop; a
// drop request must not open a hole in it.
func TestDropRequestIgnoredOnStream(t *testing.T) {
	c, s := internalPair(t, Config{})
	s.mu.Lock()
	isn := s.rcv.readSeq
	d := dropBody{first: isn, last: isn.Add(3)}
	s.onDropRequestLocked(&packet{control: true, typ: ctrlDropReq, info: 1, body: d.append(nil)}, time.Now())
	require.Equal(t, isn, s.rcv.contig())
	s.mu.Unlock()
	_, err := c.Write([]byte("stream"))
	require.NoError(t, err)
	buf := make([]byte, 6)
	_, err = io.ReadFull(s, buf)
	require.NoError(t, err)
	require.Equal(t, "stream", string(buf))
}
