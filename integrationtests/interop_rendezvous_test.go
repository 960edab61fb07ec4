package integrationtests

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/harness"
	"github.com/udt-go/udt/internal/interop"
)

// cppRendezvous starts a C++ rendezvous peer dialing back to goPort with
// the extra args, and returns it with its bound port.
func cppRendezvous(t *testing.T, goPort int, args ...string) (*interop.Peer, int) {
	t.Helper()
	p := interop.Start(t, append([]string{"rendezvous", "-host", "127.0.0.1", "-port", "0", "-peerport", strconv.Itoa(goPort)}, args...)...)
	line, err := p.WaitLine("BOUND ", 10*time.Second)
	require.NoError(t, err)
	port, err := strconv.Atoi(strings.TrimPrefix(line, "BOUND "))
	require.NoError(t, err, line)
	return p, port
}

// cppMSS reads the C++ peer's "MSS <n>" line.
func cppMSS(t *testing.T, p *interop.Peer) int {
	t.Helper()
	line, err := p.WaitLine("MSS ", 40*time.Second)
	require.NoError(t, err)
	mss, err := strconv.Atoi(strings.TrimPrefix(line, "MSS "))
	require.NoError(t, err, line)
	return mss
}

// transferBound bounds each rendezvous transfer: a few MiB take well under
// a second on loopback.
const transferBound = 60 * time.Second

// echoPattern writes n pattern bytes to c while reading n bytes back, then
// closes c; it returns the hash of what came back.
func echoPattern(t *testing.T, c *udt.Conn, seed uint64, n int64) string {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(transferBound)))
	werr := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, interop.PatternReader(seed, n))
		werr <- err
	}()
	h := sha256.New()
	got, err := io.CopyN(h, c, n)
	require.NoError(t, err, "read %d of %d echoed bytes", got, n)
	require.NoError(t, <-werr)
	require.NoError(t, c.Close())
	return hex.EncodeToString(h.Sum(nil))
}

// TestInteropRendezvous meets the C++ library in rendezvous mode, each side
// starting first, and moves data both ways. The C++ side's first packets
// after it connects may be lost (§6.8); nothing here depends on them.
func TestInteropRendezvous(t *testing.T) {
	interop.BuildPeer(t)
	const n = 16 << 20
	want := interop.SHA256Pattern(5, n)

	t.Run("cpp first, echoes", func(t *testing.T) {
		goPort := harness.FreePort(t)
		p, cport := cppRendezvous(t, goPort, "-mode", "echo")
		time.Sleep(300 * time.Millisecond) // the C++ side's requests go unanswered
		c, err := udt.DialRendezvous(t.Context(), "udp", harness.Local(goPort), harness.Local(cport))
		require.NoError(t, err)
		require.Equal(t, want, echoPattern(t, c, 5, n))
		p.RequireDone(t, want, int64(n))
		require.Equal(t, 1500, cppMSS(t, p))
	})
	t.Run("go first, cpp sends", func(t *testing.T) {
		goPort := harness.FreePort(t)
		p, cport := cppRendezvous(t, goPort, "-mode", "send", "-bytes", strconv.Itoa(n), "-seed", "5", "-wait", "500")
		start := time.Now()
		c, err := udt.DialRendezvous(t.Context(), "udp", harness.Local(goPort), harness.Local(cport))
		require.NoError(t, err)
		t.Logf("connected after %v", time.Since(start).Round(time.Millisecond))
		require.NoError(t, c.SetDeadline(time.Now().Add(transferBound)))
		got, sum := recvAll(t, c)
		require.NoError(t, c.Close())
		require.Equal(t, int64(n), got)
		require.Equal(t, want, sum)
		p.RequireDone(t, want, -1)
	})
	t.Run("go first, cpp receives", func(t *testing.T) {
		goPort := harness.FreePort(t)
		p, cport := cppRendezvous(t, goPort, "-mode", "recv", "-wait", "200")
		c, err := udt.DialRendezvous(t.Context(), "udp", harness.Local(goPort), harness.Local(cport))
		require.NoError(t, err)
		require.NoError(t, c.SetDeadline(time.Now().Add(transferBound)))
		require.Equal(t, want, sendPattern(t, c, 5, n))
		p.RequireDone(t, want, int64(n))
	})
}

// TestInteropRendezvousMSS: the C++ peer is configured with another MSS
// than ours. We use the smaller (4.11 would adopt the peer's); data moves
// both ways, which a 1400-byte C++ peer receiving 1500-byte packets would
// not allow.
func TestInteropRendezvousMSS(t *testing.T) {
	interop.BuildPeer(t)
	const n = 8 << 20
	want := interop.SHA256Pattern(9, n)
	for _, tc := range []struct {
		goMSS, cppMSS int
		goFirst       bool
	}{
		{1500, 1400, false}, {1500, 1400, true}, {1400, 1500, false}, {1400, 1500, true},
	} {
		t.Run(fmt.Sprintf("go %d cpp %d go first %v", tc.goMSS, tc.cppMSS, tc.goFirst), func(t *testing.T) {
			goPort := harness.FreePort(t)
			args := []string{"-mode", "echo", "-mss", strconv.Itoa(tc.cppMSS)}
			if tc.goFirst {
				args = append(args, "-wait", "300")
			}
			p, cport := cppRendezvous(t, goPort, args...)
			if !tc.goFirst {
				time.Sleep(300 * time.Millisecond)
			}
			d := udt.Dialer{Config: udt.Config{MSS: tc.goMSS}}
			c, err := d.DialRendezvous(t.Context(), "udp", harness.Local(goPort), harness.Local(cport))
			require.NoError(t, err)
			smaller := min(tc.goMSS, tc.cppMSS)
			require.Equal(t, smaller, c.Stats().MSS, "our MSS")
			require.Equal(t, want, echoPattern(t, c, 9, n))
			p.RequireDone(t, want, -1)
			// 4.11 adopts the MSS of the handshake it completes on; ours
			// after the first exchange announce the smaller.
			t.Logf("C++ peer settled on MSS %d", cppMSS(t, p))
		})
	}
}

// forwarder relays datagrams between a Go side (which sends to goFacing)
// and a C++ side (which sends to cppFacing), letting drop see and discard
// the Go side's datagrams and watch see the C++ side's. It stops when the
// test ends.
type forwarder struct {
	goFacing, cppFacing *net.UDPConn
}

func newForwarder(t *testing.T, cppAddr *net.UDPAddr, drop func([]byte) bool, watch func([]byte)) *forwarder {
	t.Helper()
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	g, err := net.ListenUDP("udp4", lo)
	require.NoError(t, err)
	c, err := net.ListenUDP("udp4", lo)
	require.NoError(t, err)
	f := &forwarder{goFacing: g, cppFacing: c}
	var goAddr atomic.Pointer[net.UDPAddr]
	var wg sync.WaitGroup
	t.Cleanup(func() {
		g.Close()
		c.Close()
		wg.Wait()
	})
	wg.Go(func() { // Go side to C++ side
		buf := make([]byte, 65536)
		for {
			n, from, err := g.ReadFromUDP(buf)
			if err != nil {
				return
			}
			goAddr.Store(from)
			if !drop(buf[:n]) {
				_, _ = c.WriteToUDP(buf[:n], cppAddr)
			}
		}
	})
	wg.Go(func() { // C++ side to Go side
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			watch(buf[:n])
			if to := goAddr.Load(); to != nil {
				_, _ = g.WriteToUDP(buf[:n], to)
			}
		}
	})
	return f
}

// TestInteropRendezvousMinus2: we connect first, and the C++ peer, still
// waiting, must complete on our −2 reply and then send its data. So our
// keep-alives are lost until the −2 has gone, and so are our −1 requests
// once the C++ peer has sent its own −1 (it would complete on one). One
// race remains: our −1 and the peer's may cross, and the peer then
// completes on ours. Such an attempt moves the data but proves nothing
// about the −2, and the test tries again, up to five times.
func TestInteropRendezvousMinus2(t *testing.T) {
	interop.BuildPeer(t)
	for attempt := 1; attempt <= 5; attempt++ {
		if rendezvousOnMinus2(t) {
			return
		}
		t.Logf("attempt %d: the C++ peer completed on our crossing −1; again", attempt)
	}
	t.Fatal("the C++ peer never had to complete on our −2 reply")
}

// rendezvousOnMinus2 runs one attempt of TestInteropRendezvousMinus2 and
// reports whether the C++ peer completed on our −2. Either way 4 MiB
// must arrive intact.
func rendezvousOnMinus2(t *testing.T) bool {
	const n = 4 << 20
	var sawMinus2, cppMinus1 atomic.Bool
	reqType := func(b []byte) (int32, bool) {
		if len(b) < 64 || b[0]&0x80 == 0 || binary.BigEndian.Uint16(b[0:2])&0x7FFF != 0 {
			return 0, false
		}
		return int32(binary.BigEndian.Uint32(b[36:40])), true
	}
	drop := func(b []byte) bool {
		if len(b) < 16 || b[0]&0x80 == 0 {
			return false // data
		}
		if rt, ok := reqType(b); ok {
			switch rt {
			case -2:
				sawMinus2.Store(true)
			case -1:
				return cppMinus1.Load()
			}
			return false
		}
		typ := binary.BigEndian.Uint16(b[0:2]) & 0x7FFF
		return typ == 1 && !sawMinus2.Load() // keep-alives until our −2 has gone
	}
	watch := func(b []byte) {
		if rt, ok := reqType(b); ok && rt == -1 {
			cppMinus1.Store(true)
		}
	}
	goPort := harness.FreePort(t)
	cppListenPort := harness.FreePort(t)
	f := newForwarder(t, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: cppListenPort}, drop, watch)
	cppFacing := f.cppFacing.LocalAddr().(*net.UDPAddr).Port
	p := interop.Start(t, "rendezvous", "-host", "127.0.0.1", "-port", strconv.Itoa(cppListenPort),
		"-peerport", strconv.Itoa(cppFacing), "-mode", "send", "-bytes", strconv.Itoa(n), "-seed", "11", "-wait", "300")
	_, err := p.WaitLine("BOUND ", 10*time.Second)
	require.NoError(t, err)
	goFacing := f.goFacing.LocalAddr().(*net.UDPAddr).Port
	c, err := udt.DialRendezvous(t.Context(), "udp", harness.Local(goPort), harness.Local(goFacing))
	require.NoError(t, err)
	require.NoError(t, c.SetDeadline(time.Now().Add(transferBound)))
	got, sum := recvAll(t, c)
	require.NoError(t, c.Close())
	require.Equal(t, int64(n), got)
	require.Equal(t, interop.SHA256Pattern(11, n), sum)
	p.RequireDone(t, sum, -1)
	return sawMinus2.Load()
}
