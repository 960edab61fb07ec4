package udt_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/harness"
)

// plainConn hides *net.UDPConn behind net.PacketConn: the Transport's
// one-datagram-at-a-time path.
type plainConn struct{ net.PacketConn }

// udpSocket opens a UDP socket on 127.0.0.1, closed at the test's end.
func udpSocket(t *testing.T) *net.UDPConn {
	t.Helper()
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { uc.Close() })
	return uc
}

// newTransport makes a Transport on pc, closed at the test's end.
func newTransport(t *testing.T, pc net.PacketConn) *udt.Transport {
	t.Helper()
	tr, err := udt.NewTransport(pc)
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	return tr
}

// Connections between Transports on the caller's sockets, batched (a
// *net.UDPConn) or plain (any net.PacketConn): a listener and several
// dials share each socket, and data crosses both ways intact.
func TestTransportListenDial(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(*net.UDPConn) net.PacketConn
	}{
		{"batch", func(uc *net.UDPConn) net.PacketConn { return uc }},
		{"plain", func(uc *net.UDPConn) net.PacketConn { return plainConn{uc} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ta := newTransport(t, tc.wrap(udpSocket(t)))
			tb := newTransport(t, tc.wrap(udpSocket(t)))
			ln, err := tb.Listen(udt.Config{})
			require.NoError(t, err)
			defer ln.Close()
			// Each side listens and dials on its one socket.
			lnA, err := ta.Listen(udt.Config{})
			require.NoError(t, err)
			defer lnA.Close()
			for range 3 {
				c, err := ta.Dial(t.Context(), tb.LocalAddr(), udt.Config{})
				require.NoError(t, err)
				s, err := ln.AcceptUDT()
				require.NoError(t, err)
				require.Equal(t, ta.LocalAddr().String(), c.LocalAddr().String())
				harness.Swap(t, c, s, 1<<20)
				require.NoError(t, c.Close())
				require.NoError(t, s.Close())
			}
			c, err := tb.Dial(t.Context(), ta.LocalAddr(), udt.Config{})
			require.NoError(t, err)
			s, err := lnA.AcceptUDT()
			require.NoError(t, err)
			harness.Swap(t, c, s, 1<<20)
			require.NoError(t, c.Close())
			require.NoError(t, s.Close())
		})
	}
}

// Datagrams that are not UDT reach ReadNonUDTPacket, beside a connection
// on the same socket, and WriteTo sends the caller's own; a UDT
// handshake naming no connection does not reach the caller.
func TestTransportNonUDTPackets(t *testing.T) {
	ta := newTransport(t, udpSocket(t))
	tb := newTransport(t, udpSocket(t))
	ln, err := tb.Listen(udt.Config{})
	require.NoError(t, err)
	defer ln.Close()
	c, err := ta.Dial(t.Context(), tb.LocalAddr(), udt.Config{})
	require.NoError(t, err)
	defer c.Close()
	s, err := ln.AcceptUDT()
	require.NoError(t, err)
	defer s.Close()

	other := udpSocket(t)
	// A STUN binding request: type 0x0001, length 0, the magic cookie,
	// a transaction ID; and a datagram shorter than UDT's header.
	stun := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	// A UDT handshake (control type 0) to a socket ID nobody has.
	handshake := make([]byte, 64)
	handshake[0] = 0x80
	handshake[15] = 0x39
	for _, b := range [][]byte{handshake, stun, []byte("hi")} {
		_, err := other.WriteTo(b, ta.LocalAddr())
		require.NoError(t, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	buf := make([]byte, 1500)
	for _, want := range [][]byte{stun, []byte("hi")} {
		n, from, err := ta.ReadNonUDTPacket(ctx, buf)
		require.NoError(t, err)
		require.Equal(t, want, buf[:n])
		require.Equal(t, other.LocalAddr().String(), from.String())
	}
	// The connection on the same socket still carries data.
	harness.Swap(t, c, s, 256<<10)

	// The caller's own datagram, from the Transport's socket.
	_, err = ta.WriteTo([]byte("reply"), other.LocalAddr())
	require.NoError(t, err)
	require.NoError(t, other.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, from, err := other.ReadFrom(buf)
	require.NoError(t, err)
	require.Equal(t, "reply", string(buf[:n]))
	require.Equal(t, ta.LocalAddr().String(), from.String())

	// Nothing else is waiting: the handshake was dropped.
	short, cancelShort := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancelShort()
	_, _, err = ta.ReadNonUDTPacket(short, buf)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// The queue for ReadNonUDTPacket is bounded: datagrams beyond it are
// dropped and counted, and those kept are read in order.
func TestTransportNonUDTQueueBounded(t *testing.T) {
	uc := udpSocket(t)
	// Room in the kernel for all of them, however late the Transport's
	// worker reads: the drops counted are the queue's.
	require.NoError(t, uc.SetReadBuffer(4<<20))
	ta := newTransport(t, uc)
	other := udpSocket(t)
	const n = udt.NonUDTQueue + 100
	for i := range n {
		_, err := other.WriteTo([]byte{byte(i >> 8), byte(i)}, ta.LocalAddr())
		require.NoError(t, err)
		if i%32 == 31 {
			time.Sleep(time.Millisecond)
		}
	}
	require.Eventually(t, func() bool { return ta.NonUDTDropped() >= n-udt.NonUDTQueue },
		10*time.Second, time.Millisecond, "dropped: %d", ta.NonUDTDropped())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	buf := make([]byte, 16)
	for i := range udt.NonUDTQueue {
		k, _, err := ta.ReadNonUDTPacket(ctx, buf)
		require.NoError(t, err)
		require.Equal(t, []byte{byte(i >> 8), byte(i)}, buf[:k])
	}
	require.Equal(t, uint64(n-udt.NonUDTQueue), ta.NonUDTDropped())
}

// Closing a listener or a connection leaves the caller's socket open, and
// the Transport carries new ones; Close ends the Transport's connections
// with ErrTransportClosed and leaves the socket open and readable.
func TestTransportCloseLeavesSocket(t *testing.T) {
	ua := udpSocket(t)
	ta := newTransport(t, ua)
	tb := newTransport(t, udpSocket(t))
	ln, err := tb.Listen(udt.Config{})
	require.NoError(t, err)
	lnA, err := ta.Listen(udt.Config{})
	require.NoError(t, err)
	require.NoError(t, lnA.Close())
	c, err := ta.Dial(t.Context(), tb.LocalAddr(), udt.Config{})
	require.NoError(t, err)
	s, err := ln.AcceptUDT()
	require.NoError(t, err)
	defer s.Close()
	harness.Swap(t, c, s, 64<<10)
	require.NoError(t, c.Close())

	// Another dial on the same socket, after the close of the first.
	c, err = ta.Dial(t.Context(), tb.LocalAddr(), udt.Config{})
	require.NoError(t, err)
	s2, err := ln.AcceptUDT()
	require.NoError(t, err)
	defer s2.Close()
	harness.Swap(t, c, s2, 64<<10)

	// A Read blocked on the connection returns when the Transport closes.
	readErr := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(c)
		readErr <- err
	}()
	require.NoError(t, ta.Close())
	select {
	case err := <-readErr:
		require.ErrorIs(t, err, udt.ErrTransportClosed)
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Read blocked past the Transport's Close")
	}
	_, err = ta.Dial(t.Context(), tb.LocalAddr(), udt.Config{})
	require.ErrorIs(t, err, udt.ErrTransportClosed)
	_, err = ta.Listen(udt.Config{})
	require.ErrorIs(t, err, udt.ErrTransportClosed)
	_, _, err = ta.ReadNonUDTPacket(t.Context(), make([]byte, 8))
	require.ErrorIs(t, err, udt.ErrTransportClosed)
	require.NoError(t, c.Close())

	// The caller's socket is open and reads again, with no deadline left
	// (the peer's connection may still send it a late UDT packet or two).
	other := udpSocket(t)
	_, err = other.WriteTo([]byte("still here"), ua.LocalAddr())
	require.NoError(t, err)
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := ua.ReadFrom(buf)
			if err != nil {
				got <- err.Error()
				return
			}
			if from.String() == other.LocalAddr().String() {
				got <- string(buf[:n])
				return
			}
		}
	}()
	select {
	case b := <-got:
		require.Equal(t, "still here", b)
	case <-time.After(5 * time.Second):
		t.Fatal("the caller's socket does not read after Close")
	}
	_, err = ua.WriteTo([]byte("x"), other.LocalAddr())
	require.NoError(t, err)
}

// A rendezvous between two Transports, each on its caller's socket.
func TestTransportRendezvous(t *testing.T) {
	ta := newTransport(t, udpSocket(t))
	tb := newTransport(t, udpSocket(t))
	type result struct {
		c   *udt.Conn
		err error
	}
	ra := make(chan result, 1)
	go func() {
		c, err := ta.DialRendezvous(t.Context(), tb.LocalAddr(), udt.Config{ConnectTimeout: 10 * time.Second})
		ra <- result{c, err}
	}()
	b, err := tb.DialRendezvous(t.Context(), ta.LocalAddr(), udt.Config{ConnectTimeout: 10 * time.Second})
	require.NoError(t, err)
	defer b.Close()
	a := <-ra
	require.NoError(t, a.err)
	defer a.c.Close()
	harness.Swap(t, a.c, b, 1<<20)
}

// Bad arguments get clear errors.
func TestTransportArguments(t *testing.T) {
	_, err := udt.NewTransport(nil)
	require.ErrorContains(t, err, "nil net.PacketConn")
	ta := newTransport(t, udpSocket(t))
	_, err = ta.Dial(t.Context(), &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, udt.Config{})
	require.ErrorContains(t, err, "not a *net.UDPAddr")
	_, err = ta.DialRendezvous(t.Context(), &net.UDPAddr{IP: net.IPv4zero, Port: 9}, udt.Config{})
	require.ErrorContains(t, err, "names no peer host and port")
	_, err = ta.Listen(udt.Config{MSS: 10})
	require.ErrorContains(t, err, "Config.MSS")
	var opErr *net.OpError
	require.True(t, errors.As(err, &opErr))
	require.False(t, bytes.Equal(nil, []byte(opErr.Op)))
}

// Two Transports, each on its own *net.UDPConn, carry a UDT stream both
// ways while each sends the other a stream of datagrams of its own
// (STUN-shaped: the magic cookie, a transaction ID): every datagram read
// through ReadNonUDTPacket is one of those sent, each once, from the other
// Transport's socket; the UDT data arrives intact.
func TestTransportConcurrentTraffic(t *testing.T) {
	tr := [2]*udt.Transport{newTransport(t, udpSocket(t)), newTransport(t, udpSocket(t))}
	ln, err := tr[1].Listen(udt.Config{})
	require.NoError(t, err)
	defer ln.Close()
	c, err := tr[0].Dial(t.Context(), tr[1].LocalAddr(), udt.Config{})
	require.NoError(t, err)
	defer c.Close()
	s, err := ln.AcceptUDT()
	require.NoError(t, err)
	defer s.Close()

	const count = 3000
	stun := func(side, i int) []byte {
		b := []byte{0x01, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		b[8], b[9] = byte(side), 0x5a
		b[10], b[11] = byte(i>>8), byte(i)
		_, _ = rand.Read(b[12:20]) // the rest of the transaction ID
		b[20], b[21] = byte(i>>8), byte(i)
		return b
	}
	errs := make(chan error, 4)
	received := [2]map[int]bool{{}, {}}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// Each side has at most window datagrams unread at the other, so the
	// queue (NonUDTQueue) never overflows however slowly the reader runs;
	// a datagram the kernel lost costs its credit a second's wait.
	const window = 64
	var credit [2]chan struct{}
	var lost [2]int
	for side := range 2 {
		other := 1 - side
		credit[side] = make(chan struct{}, window)
		for range window {
			credit[side] <- struct{}{}
		}
		go func() { // side sends to other
			for i := range count {
				select {
				case <-credit[side]:
				case <-time.After(time.Second):
					lost[side]++
				}
				if _, err := tr[side].WriteTo(stun(side, i), tr[other].LocalAddr()); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
		go func() { // other reads what side sent
			buf := make([]byte, 1500)
			for len(received[other]) < count {
				rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
				n, from, err := tr[other].ReadNonUDTPacket(rctx, buf)
				rcancel()
				if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
					break // no more are coming: the kernel lost some
				}
				if err != nil {
					errs <- err
					return
				}
				b := buf[:n]
				if n != 24 || !bytes.Equal(b[4:8], []byte{0x21, 0x12, 0xa4, 0x42}) || b[8] != byte(side) || b[9] != 0x5a ||
					from.String() != tr[side].LocalAddr().String() {
					errs <- fmt.Errorf("side %d read a datagram that is not one the other sent: % x from %v", other, b, from)
					return
				}
				i := int(b[10])<<8 | int(b[11])
				if received[other][i] {
					errs <- fmt.Errorf("side %d read datagram %d twice", other, i)
					return
				}
				received[other][i] = true
				select {
				case credit[side] <- struct{}{}:
				default:
				}
			}
			errs <- nil
		}()
	}
	harness.Swap(t, c, s, 16<<20)
	for range 4 {
		require.NoError(t, <-errs)
	}
	for side := range 2 {
		got, dropped := len(received[side]), tr[side].NonUDTDropped()
		t.Logf("side %d: %d of %d datagrams read, %d dropped by the queue, %d credits waited out", side, got, count, dropped, lost[1-side])
		require.Zero(t, dropped, "the queue never held more than the window")
		require.GreaterOrEqual(t, got, count-count/100, "the kernel lost no more than 1 %")
	}
}
