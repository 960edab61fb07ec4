package udt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/testenv"
	"golang.org/x/sys/unix"
)

// ioMux is a multiplexer on a new UDP socket bound to addr, doing its I/O
// in mode: "batch", "nooffload" or "plain". edit, if not nil, may change
// the batch I/O state before the workers start.
func ioMux(t *testing.T, network, addr, mode string, edit func(*batchIO)) *multiplexer {
	t.Helper()
	la, err := net.ResolveUDPAddr(network, addr)
	require.NoError(t, err)
	uc, err := net.ListenUDP(network, la)
	require.NoError(t, err)
	cfg, err := Config{}.withDefaults()
	require.NoError(t, err)
	_ = uc.SetReadBuffer(cfg.UDPReceiveBuffer) // as acquireMux does
	_ = uc.SetWriteBuffer(cfg.UDPSendBuffer)
	u := udpConn{c: uc, stamped: enableStamps(uc)}
	switch mode {
	case "batch":
		u.io = newBatchIO(uc, false)
		require.NotNil(t, u.io)
	case "nooffload":
		u.io = newBatchIO(uc, true)
		require.NotNil(t, u.io)
	}
	if edit != nil && u.io != nil {
		edit(u.io)
	}
	m := newMultiplexer(u)
	m.start()
	return m
}

// ioPair connects a dialer on one multiplexer to a listener on another.
// The listener and the connection take over the multiplexers' references.
func ioPair(t *testing.T, cfg Config, srv, cli *multiplexer, dialTo netip.AddrPort) (c, s *Conn) {
	t.Helper()
	cfg, err := cfg.withDefaults()
	require.NoError(t, err)
	ln, err := listenOn(srv, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	c, err = dialOn(t.Context(), cli, cfg, dialTo)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s, err = ln.AcceptUDT()
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return c, s
}

// moveStream writes data on c and checks s reads exactly it.
func moveStream(t *testing.T, c, s *Conn, data []byte) {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(data))
		_ = s.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, _ := io.ReadFull(s, b)
		got <- b[:n]
	}()
	_, err := c.Write(data)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, <-got), "the stream arrived altered")
}

// Every I/O mode, on IPv4, IPv6 and a dual-stack socket, and each mode
// against the others, moves a stream intact, and messages of mixed sizes,
// which make GSO runs end early and split where sizes change.
func TestSocketIOModes(t *testing.T) {
	modes := []string{"batch", "nooffload", "plain"}
	families := []struct {
		name, network, addr string
		dial                func(port uint16) netip.AddrPort
	}{
		{"ipv4", "udp4", "127.0.0.1:0", func(p uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p) }},
		{"ipv6", "udp6", "[::1]:0", func(p uint16) netip.AddrPort { return netip.AddrPortFrom(netip.IPv6Loopback(), p) }},
		// A socket bound to "udp" ":0" is AF_INET6 and reaches IPv4
		// peers through v4-mapped addresses.
		{"dualstack", "udp", ":0", func(p uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p) }},
	}
	data := pattern(4 << 20)
	for _, fam := range families {
		for _, sm := range modes {
			for _, cm := range modes {
				t.Run(fam.name+"/"+cm+"-to-"+sm, func(t *testing.T) {
					if fam.name == "ipv6" {
						testenv.NeedIPv6(t)
					}
					srv := ioMux(t, fam.network, fam.addr, sm, nil)
					cli := ioMux(t, fam.network, fam.addr, cm, nil)
					c, s := ioPair(t, Config{}, srv, cli, fam.dial(srv.laddr.Port()))
					moveStream(t, c, s, data)
					moveStream(t, s, c, data[:1<<20])
				})
			}
		}
	}
	t.Run("messages", func(t *testing.T) {
		for _, mode := range modes {
			t.Run(mode, func(t *testing.T) {
				srv := ioMux(t, "udp4", "127.0.0.1:0", mode, nil)
				cli := ioMux(t, "udp4", "127.0.0.1:0", mode, nil)
				c, s := ioPair(t, Config{Type: TypeMessage}, srv, cli, srv.laddr)
				payload := c.payload
				sizes := []int{1, 100, payload, payload + 1, 2 * payload, 3*payload - 7, 1000, payload, 40 * payload}
				const rounds = 40
				done := make(chan error, 1)
				go func() {
					buf := make([]byte, 64*payload)
					_ = s.SetReadDeadline(time.Now().Add(30 * time.Second))
					for r := range rounds {
						for i, n := range sizes {
							k, err := s.ReadMessage(buf)
							if err != nil {
								done <- err
								return
							}
							if want := message(r, i, n); !bytes.Equal(buf[:k], want) {
								done <- errors.New("a message arrived altered")
								return
							}
						}
					}
					done <- nil
				}()
				for r := range rounds {
					for i, n := range sizes {
						_, err := c.WriteMessage(message(r, i, n), 0, true)
						require.NoError(t, err)
					}
				}
				require.NoError(t, <-done)
			})
		}
	})
}

func message(r, i, n int) []byte {
	b := pattern(n + 8)[8:]
	for k := range b {
		b[k] ^= byte(r*31 + i)
	}
	return b
}

// When the kernel refuses a GSO send, the socket stops using GSO and the
// packets of that batch go out one by one: nothing is lost.
func TestGSORefusedFallsBack(t *testing.T) {
	for _, errno := range []unix.Errno{unix.EIO, unix.EINVAL} {
		t.Run(errno.Error(), func(t *testing.T) {
			var refused, gsoSends atomic.Int64
			refuse := func(b *batchIO) {
				b.gso.Store(true)
				b.sendmmsg = func(fd uintptr, hs []unix.Mmsghdr) (int, unix.Errno) {
					if hs[0].Hdr.Controllen != 0 {
						gsoSends.Add(1)
						refused.Add(1)
						return 0, errno
					}
					return sendmmsg(fd, hs)
				}
			}
			srv := ioMux(t, "udp4", "127.0.0.1:0", "batch", nil)
			cli := ioMux(t, "udp4", "127.0.0.1:0", "batch", refuse)
			c, s := ioPair(t, Config{}, srv, cli, srv.laddr)
			moveStream(t, c, s, pattern(2<<20))
			require.Equal(t, int64(1), refused.Load(), "GSO was tried after the kernel refused it")
			require.False(t, cli.conn.(udpConn).io.gso.Load())
			c.mu.Lock()
			retrans := c.stats.pktRetrans
			c.mu.Unlock()
			require.Zero(t, retrans, "the refused batch's packets were lost, not resent at once")
		})
	}
}

// A transient send error loses only the datagram it names; the batch goes
// on and retransmission covers the loss.
func TestBatchSendErrorSkipsOne(t *testing.T) {
	var calls, failed atomic.Int64
	flaky := func(b *batchIO) {
		b.sendmmsg = func(fd uintptr, hs []unix.Mmsghdr) (int, unix.Errno) {
			if calls.Add(1)%4 == 0 {
				failed.Add(1)
				return 0, unix.ENOBUFS
			}
			return sendmmsg(fd, hs)
		}
	}
	srv := ioMux(t, "udp4", "127.0.0.1:0", "batch", nil)
	cli := ioMux(t, "udp4", "127.0.0.1:0", "batch", flaky)
	c, s := ioPair(t, Config{}, srv, cli, srv.laddr)
	moveStream(t, c, s, pattern(1<<20))
	require.Greater(t, failed.Load(), int64(2), "too few sends failed")
	// Each refused datagram is counted once the batch it was in is done.
	require.Eventually(t, func() bool { return cli.metrics().SendErrors == uint64(failed.Load()) },
		5*time.Second, time.Millisecond, "send errors counted: %d of %d", cli.metrics().SendErrors, failed.Load())
}

// A batch-reading multiplexer whose socket is closed from outside ends its
// connections with a SocketError, as the plain one does.
func TestBatchSocketClosedUnderneath(t *testing.T) {
	srv := ioMux(t, "udp4", "127.0.0.1:0", "batch", nil)
	cli := ioMux(t, "udp4", "127.0.0.1:0", "batch", nil)
	_, s := ioPair(t, Config{Linger: -1}, srv, cli, srv.laddr)
	readErr, _ := blockedCalls(s)
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, srv.conn.(udpConn).c.Close())
	requireSocketError(t, readErr, 2*time.Second, net.ErrClosed)
}

// The receive worker splits a GRO buffer at its segment size and reads
// arrival times, and a malformed control buffer reads as neither.
func TestParseOOB(t *testing.T) {
	stamp := time.Unix(1700000000, 123456789)
	var b []byte
	b = appendCmsg(b, unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, func() []byte {
		ts := unix.NsecToTimespec(stamp.UnixNano())
		return unsafe.Slice((*byte)(unsafe.Pointer(&ts)), unsafe.Sizeof(ts))
	}())
	seg := make([]byte, 4)
	binary.NativeEndian.PutUint32(seg, 1456)
	b = appendCmsg(b, unix.IPPROTO_UDP, unix.UDP_GRO, seg)
	at, n := parseOOB(b)
	require.True(t, at.Equal(stamp))
	require.Equal(t, 1456, n)

	at, n = parseOOB(b[:len(b)-5]) // the GRO message cut short
	require.True(t, at.Equal(stamp), "the whole first message still reads")
	require.Zero(t, n)
	for i := range len(b) {
		parseOOB(b[:i]) // never reads past the buffer
	}
}

func appendCmsg(b []byte, level, typ int, data []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, unix.CmsgSpace(len(data)))...)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[start]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[start+unix.CmsgLen(0):], data)
	return b
}

// FuzzParseOOB: no control buffer makes parseOOB read out of bounds or
// report a negative segment size that the splitter would loop on.
func FuzzParseOOB(f *testing.F) {
	f.Add(appendCmsg(nil, unix.IPPROTO_UDP, unix.UDP_GRO, []byte{0xb0, 0x05, 0, 0}))
	f.Add(appendCmsg(nil, unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, make([]byte, 16)))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseOOB(b)
	})
}

// In steady state the data path allocates nothing per packet: a warm
// connection moves 64 MiB, about 46,000 packets, with fewer allocations
// than one per thousand packets (the runtime's own, timers, the GC). The
// least of five such phases counts: the buffer pool gives back, once a
// second, the buffers its low mark says went unused (pktbuf.TrimInterval),
// and a phase that a trim falls in refills it, thousands of buffers once,
// as does one where a burst of retransmissions outruns the peak the pool
// had kept (on a loaded machine, up to three phases in a row did), where
// an allocation per packet would show in every phase.
//
// The count is the process's, so the test runs alone in a child process
// of the test binary: connections that earlier tests closed still linger
// and time out in the background, and in a full run they added 1,300 to
// 3,200 allocations to every phase.
func TestSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	if runAlone(t) {
		return
	}
	const phases = 5
	for _, mode := range []string{"batch", "nooffload"} {
		t.Run(mode, func(t *testing.T) {
			srv := ioMux(t, "udp4", "127.0.0.1:0", mode, nil)
			cli := ioMux(t, "udp4", "127.0.0.1:0", mode, nil)
			c, s := ioPair(t, Config{}, srv, cli, srv.laddr)
			block := make([]byte, 1<<20)
			const total = (1 + phases) * 64 << 20
			done := make(chan int64, 1)
			go func() {
				buf := make([]byte, 1<<20)
				var n int64
				_ = s.SetReadDeadline(time.Now().Add(60 * time.Second))
				for n < total {
					k, err := s.Read(buf)
					n += int64(k)
					if err != nil {
						break
					}
				}
				done <- n
			}()
			for range 64 { // warm-up: pools, windows, maps
				_, err := c.Write(block)
				require.NoError(t, err)
			}
			c.mu.Lock()
			pkts := float64(64<<20) / float64(c.payload)
			c.mu.Unlock()
			least := math.Inf(1)
			for range phases {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for range 64 {
					_, err := c.Write(block)
					require.NoError(t, err)
				}
				runtime.ReadMemStats(&after)
				allocs := float64(after.Mallocs - before.Mallocs)
				t.Logf("%s: %.0f allocations over %.0f packets (%.4f a packet)", mode, allocs, pkts, allocs/pkts)
				least = min(least, allocs/pkts)
			}
			require.Equal(t, int64(total), <-done)
			require.Less(t, least, 0.001)
		})
	}
}

// TestReadBatchesSurviveGC reads a datagram, lets the socket find nothing
// more to read (which gives its read batch back), collects garbage twice
// and reads again: the batch and its buffers come back from the free lists
// without an allocation. Kept in a sync.Pool, they were lost to the
// collections (and, on a machine with many processors, to the private slot
// of the processor the worker last ran on), and every wake-up of a quiet
// socket allocated its megabyte of buffers anew.
//
// The count is the process's, so the test runs alone in a child process
// of the test binary, as TestSteadyStateAllocs does: in the full suite,
// connections that earlier tests closed allocate as they time out.
func TestReadBatchesSurviveGC(t *testing.T) {
	if runAlone(t) {
		return
	}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { uc.Close() })
	b := newBatchIO(uc, false)
	require.NotNil(t, b)
	snd, err := net.DialUDP("udp4", nil, uc.LocalAddr().(*net.UDPAddr))
	require.NoError(t, err)
	t.Cleanup(func() { snd.Close() })

	msg := []byte("one datagram")
	got := 0
	count := func([]byte, netip.AddrPort, time.Time, *rxBlock) { got++ }
	readIdle := func(fd uintptr) { b.doRead(fd) }
	cycle := func() {
		_, err := snd.Write(msg)
		require.NoError(t, err)
		require.NoError(t, b.read())
		b.each(count)
		// The next read finds nothing: the batch goes back while waiting.
		require.NoError(t, b.rc.Control(readIdle))
		require.Nil(t, b.rx, "an idle socket holds no read batch")
	}
	cycle() // the first batch and buffers are allocated here
	allocs := testing.AllocsPerRun(20, func() {
		runtime.GC()
		runtime.GC()
		cycle()
	})
	require.Equal(t, 22, got, "datagrams read") // AllocsPerRun runs it once more to warm up
	require.Zero(t, allocs, "allocations per wake-up of a quiet socket")
}

// The sendmmsg headers' free list (Linux only) keeps what it holds across
// collections, as TestFreeListsSurviveGC checks for the others.
func TestWriteHeadersSurviveGC(t *testing.T) {
	f := freeList[txMsgs]{max: 4, new: txMsgsFree.new}
	checkSurvivesGC(t, func() any { return f.get() }, func(v any) { f.put(v.(*txMsgs)) })
}
