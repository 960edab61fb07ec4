package udt

import (
	"context"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSYNFlood sends 200,000 handshake requests, from 64 source ports at
// full speed, at a listener: cookie requests (type 1) and conclusions with
// forged cookies (type −1), each with a fresh socket ID and ISN. The
// listener must keep no state for any of them, and legitimate dials during
// the flood must still connect.
func TestSYNFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods loopback for a few seconds")
	}
	ln := listenRaw(t, Config{})
	target := ln.Addr().(*net.UDPAddr)
	const (
		senders  = 64
		requests = 200_000
		dials    = 20
	)
	socks := make([]*net.UDPConn, senders)
	for i := range socks {
		uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		t.Cleanup(func() { uc.Close() })
		socks[i] = uc
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	seenBefore, badBefore := ln.handshakes.Load(), ln.badCookieDrops.Load()
	mBefore := ln.Metrics()

	var sent atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i, uc := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 3))
			var buf []byte
			for range requests / senders {
				h := handshake{version: udtVersion, sockType: sockStream, isn: r.Uint32() & uint32(maxSeqForTest),
					mss: 1500, window: 8192, reqType: reqInduction, socketID: 1 + r.Uint32()>>1}
				if r.IntN(2) == 0 {
					h.reqType, h.cookie = reqConclusion, r.Uint32()
				}
				buf = appendHandshakePacket(buf[:0], 0, &h)
				if _, err := uc.WriteToUDP(buf, target); err == nil {
					sent.Add(1)
				}
			}
		}()
	}

	// Legitimate dials, all at once, while the flood runs.
	var ok atomic.Int64
	var dialers sync.WaitGroup
	for range dials {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := (&Dialer{}).DialUDT(ctx, "udp", target.String())
			if err != nil {
				t.Logf("dial during the flood: %v", err)
				return
			}
			defer c.Close()
			if _, err := c.Write([]byte("ping")); err == nil {
				ok.Add(1)
			}
		}()
	}
	for range dials {
		s, err := ln.AcceptUDT()
		require.NoError(t, err)
		b := make([]byte, 4)
		require.NoError(t, s.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err = s.Read(b)
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
	wg.Wait()
	floodTime := time.Since(start)
	dialers.Wait()

	// Let closed connections unregister (closeWait) and the worker drain
	// its socket, then measure.
	time.Sleep(closeWait + time.Second)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)

	known := make(chan int, 1)
	ln.m.apply(func() { known <- len(ln.known) })
	// The worker runs queued work before its next packet: wake it.
	waker, err := net.DialUDP("udp4", nil, target)
	require.NoError(t, err)
	defer waker.Close()
	_, _ = waker.Write([]byte{0})
	remembered := <-known
	seen, bad := ln.handshakes.Load()-seenBefore, ln.badCookieDrops.Load()-badBefore
	t.Logf("%d requests in %v (%.0f/s); the listener handled %d handshakes (the kernel dropped the rest at the socket), %d of them conclusions with a forged cookie, and remembers %d; heap %+d bytes; %d of %d dials connected",
		sent.Load(), floodTime.Round(time.Millisecond), float64(sent.Load())/floodTime.Seconds(), seen, bad, remembered, growth, ok.Load(), dials)
	require.Equal(t, int64(dials), ok.Load(), "legitimate dials failed during the flood")
	require.LessOrEqual(t, remembered, dials, "the listener kept state for flood requests")
	// The flood reached the listener: a fair part of it, half of that
	// conclusions (each forged, each dropped), besides the dials' own
	// handshakes (two or more each).
	require.Greater(t, seen, uint64(requests/100), "handshakes that reached the listener")
	require.InDelta(t, float64(seen-uint64(2*dials))/2, float64(bad), float64(seen)/10, "forged conclusions dropped, of the handshakes handled")
	require.Less(t, growth, int64(4<<20), "heap grew with the flood")

	// The socket's metrics say the same, by reason: every forged
	// conclusion a rejected cookie, the dials accepted, the requests
	// answered with a cookie.
	m := ln.Metrics()
	t.Logf("metrics: %+v", m)
	require.Equal(t, bad, m.CookiesRejected-mBefore.CookiesRejected, "cookies rejected")
	require.Equal(t, uint64(dials), m.Accepted-mBefore.Accepted, "accepted")
	require.Greater(t, m.Inductions-mBefore.Inductions, uint64(requests/400), "cookie requests answered")
	require.GreaterOrEqual(t, m.PacketsIn-mBefore.PacketsIn, seen, "datagrams read")
	require.Zero(t, m.Refused, "refusals")
}

// maxSeqForTest is the largest ISN a request may carry.
const maxSeqForTest = 1<<31 - 1
