package interop_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/testenv"

	"github.com/udt-go/udt/internal/interop"
)

// TestMain fails the run if goroutines outlive the tests (the output
// readers of cpeer processes, above all).
func TestMain(m *testing.M) {
	base := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > base {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "%d goroutines leaked (%d before the tests):\n%s\n", n-base, base, buf[:runtime.Stack(buf, true)])
			code = 1
		}
	}
	os.Exit(code)
}

// pattern is the generator spelled out word by word, to check PatternReader.
func pattern(seed uint64, n int) []byte {
	var b []byte
	x := seed
	for len(b) < n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b[:n]
}

func TestPatternReader(t *testing.T) {
	first, err := io.ReadAll(interop.PatternReader(1, 16))
	require.NoError(t, err)
	require.Equal(t, "41208240000000004114010c06410010", fmt.Sprintf("%x", first))

	for _, n := range []int{0, 1, 7, 8, 9, 1003, 4096} {
		for _, seed := range []uint64{1, 0x9e3779b97f4a7c15} {
			require.NoError(t, iotest.TestReader(interop.PatternReader(seed, int64(n)), pattern(seed, n)), "seed %d n %d", seed, n)
		}
	}

	// Odd read sizes give the same stream.
	r := interop.PatternReader(7, 100_003)
	var got bytes.Buffer
	for size := 1; ; size = size%997 + 3 {
		buf := make([]byte, size)
		k, err := r.Read(buf)
		got.Write(buf[:k])
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	require.Equal(t, pattern(7, 100_003), got.Bytes())

	require.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", interop.SHA256Pattern(1, 0))
	require.Panics(t, func() { interop.PatternReader(0, 1) })
}

func TestParse(t *testing.T) {
	r, err := interop.ParseResult("RESULT 3 bytes=67108864 sha256=abc123 secs=1.250000 mbps=429.497")
	require.NoError(t, err)
	require.Equal(t, interop.Result{Index: 3, Bytes: 67108864, SHA256: "abc123", Secs: 1.25, Mbps: 429.497}, r)
	_, err = interop.ParseResult("RESULT x")
	require.Error(t, err)

	i, d, err := interop.ParseConnected("CONNECTED 4 1.500")
	require.NoError(t, err)
	require.Equal(t, 4, i)
	require.Equal(t, 1500*time.Microsecond, d)
}

func TestSelftest(t *testing.T) {
	p := interop.Start(t, "selftest")
	_, err := p.WaitLine("SELFTEST ok", 10*time.Second)
	require.NoError(t, err)
	require.NoError(t, p.Wait(10*time.Second))
}

// TestPatternMatchesCpeer checks that the C++ generator, fed in odd piece
// sizes, hashes like PatternReader.
func TestPatternMatchesCpeer(t *testing.T) {
	for _, n := range []int64{0, 1, 7, 8, 9, 4099, 1<<20 + 3} {
		for _, seed := range []uint64{1, 0xfedcba9876543210} {
			p := interop.Start(t, "pattern", "-bytes", strconv.FormatInt(n, 10), "-seed", strconv.FormatUint(seed, 10))
			line, err := p.WaitLine("PATTERN ", 10*time.Second)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("PATTERN bytes=%d sha256=%s", n, interop.SHA256Pattern(seed, n)), line)
			require.NoError(t, p.Wait(10*time.Second))
		}
	}
}

// TestCppToCpp runs the C++ peer against itself: the harness and cpeer's
// modes, before any Go UDT code is involved.
func TestCppToCpp(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name       string
		host       string
		serverArgs []string
		clientArgs []string
		bytes      int64
		seed       uint64
	}{
		{name: "client sends 64MiB", host: "127.0.0.1", serverArgs: []string{"-mode", "recv"}, clientArgs: []string{"-mode", "send"}, bytes: 64 * mib, seed: 1},
		{name: "server sends 32MiB", host: "127.0.0.1", serverArgs: []string{"-mode", "send"}, clientArgs: []string{"-mode", "recv"}, bytes: 32 * mib, seed: 2},
		{name: "echo 8MiB", host: "127.0.0.1", serverArgs: []string{"-mode", "echo"}, clientArgs: []string{"-mode", "echo"}, bytes: 8*mib + 5, seed: 3},
		{name: "dgram 16MiB", host: "127.0.0.1", serverArgs: []string{"-mode", "recv", "-dgram", "-endack"}, clientArgs: []string{"-mode", "send", "-dgram", "-endack", "-msgsize", "10000"}, bytes: 16*mib + 1, seed: 4},
		{name: "mss 1052", host: "127.0.0.1", serverArgs: []string{"-mode", "recv"}, clientArgs: []string{"-mode", "send", "-mss", "1052"}, bytes: 8 * mib, seed: 5},
		{name: "ipv6 16MiB", host: "::1", serverArgs: []string{"-mode", "recv"}, clientArgs: []string{"-mode", "send"}, bytes: 16 * mib, seed: 6},
		{name: "ipv6 server sends", host: "::1", serverArgs: []string{"-mode", "send"}, clientArgs: []string{"-mode", "recv"}, bytes: 4 * mib, seed: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.host, ":") {
				testenv.NeedIPv6(t)
			}
			n := strconv.FormatInt(tt.bytes, 10)
			seed := strconv.FormatUint(tt.seed, 10)
			srv := interop.Start(t, append([]string{"server", "-host", tt.host, "-port", "0", "-bytes", n, "-seed", seed}, tt.serverArgs...)...)
			port := srv.ListenPort(10 * time.Second)
			cli := interop.Start(t, append([]string{"client", "-host", tt.host, "-port", strconv.Itoa(port), "-bytes", n, "-seed", seed}, tt.clientArgs...)...)

			want := interop.SHA256Pattern(tt.seed, tt.bytes)
			for _, side := range []struct {
				name string
				p    *interop.Peer
			}{{"client", cli}, {"server", srv}} {
				rs, err := side.p.Results(1, 30*time.Second)
				require.NoError(t, err, side.name)
				require.Equal(t, 0, rs[0].Index, side.name)
				require.Equal(t, tt.bytes, rs[0].Bytes, side.name)
				require.Equal(t, want, rs[0].SHA256, side.name)
				t.Logf("%s: %.1f Mbit/s in %.3f s", side.name, rs[0].Mbps, rs[0].Secs)
			}
			require.NoError(t, cli.Wait(10*time.Second))
			require.NoError(t, srv.Wait(10*time.Second))
		})
	}
}

// TestCppConcurrentClients has one server thread per connection.
func TestCppConcurrentClients(t *testing.T) {
	const clients, n = 3, 4 << 20
	srv := interop.Start(t, "server", "-host", "127.0.0.1", "-port", "0", "-conns", strconv.Itoa(clients))
	port := strconv.Itoa(srv.ListenPort(10 * time.Second))
	want := map[string]bool{}
	var cls []*interop.Peer
	for i := range clients {
		seed := uint64(100 + i)
		want[interop.SHA256Pattern(seed, n)] = true
		cls = append(cls, interop.Start(t, "client", "-host", "127.0.0.1", "-port", port,
			"-bytes", strconv.Itoa(n), "-seed", strconv.FormatUint(seed, 10)))
	}
	rs, err := srv.Results(clients, 30*time.Second)
	require.NoError(t, err)
	got := map[string]bool{}
	for i, r := range rs {
		require.Equal(t, i, r.Index)
		require.EqualValues(t, n, r.Bytes)
		got[r.SHA256] = true
	}
	require.Equal(t, want, got)
	for _, c := range cls {
		require.NoError(t, c.Wait(10*time.Second))
	}
	require.NoError(t, srv.Wait(10*time.Second))
}

// TestCppCloseMode connects and closes 20 times in a row; the server closes
// each accepted socket at once. The server runs until killed: libudt may
// accept one client connection twice (see mode close in cpeer.cpp), so it
// counts the distinct peer addresses (each client socket has its own port).
func TestCppCloseMode(t *testing.T) {
	const count = 20
	srv := interop.Start(t, "server", "-host", "127.0.0.1", "-port", "0", "-mode", "close", "-conns", "0")
	port := srv.ListenPort(10 * time.Second)
	// -retry: see mode close in cpeer.cpp (a connect to a server that closes
	// each connection at once can fail in 4.11; no Go code takes part here).
	cli := interop.Start(t, "client", "-host", "127.0.0.1", "-port", strconv.Itoa(port), "-count", strconv.Itoa(count), "-retry", "2")
	var total time.Duration
	for i := range count {
		line, err := cli.WaitLine("CONNECTED ", 10*time.Second)
		require.NoError(t, err)
		idx, d, err := interop.ParseConnected(line)
		require.NoError(t, err)
		require.Equal(t, i, idx)
		total += d
	}
	rs, err := cli.Results(count, 10*time.Second)
	require.NoError(t, err)
	for _, r := range rs {
		require.Zero(t, r.Bytes)
	}
	require.NoError(t, cli.Wait(20*time.Second))

	// Server threads print in any order.
	peers := map[string]int{}
	indexes := map[int]bool{}
	for len(peers) < count {
		line, err := srv.WaitLine("ACCEPTED ", 10*time.Second)
		require.NoError(t, err)
		var i int
		var peer string
		_, err = fmt.Sscanf(line, "ACCEPTED %d %s", &i, &peer)
		require.NoError(t, err, line)
		require.False(t, indexes[i], "index %d twice", i)
		indexes[i] = true
		peers[peer]++
	}
	srv.Kill()
	require.Error(t, srv.Wait(10*time.Second))
	dups := 0
	for _, k := range peers {
		dups += k - 1
	}
	t.Logf("mean connect time %v; %d duplicate accepts", total/count, dups)
}

func TestCppThroughput(t *testing.T) {
	mbps := interop.CppThroughput(t, 64<<20)
	require.Positive(t, mbps)
	t.Logf("C++ -> C++ over 127.0.0.1: %.1f Mbit/s", mbps)
}

// TestPeerErrors checks how the harness reports a failing or hanging cpeer.
func TestPeerErrors(t *testing.T) {
	t.Run("bad flag", func(t *testing.T) {
		p := interop.Start(t, "server", "-bogus", "1")
		_, err := p.WaitLine("LISTEN ", 10*time.Second)
		require.ErrorContains(t, err, "unknown flag -bogus")
		require.ErrorContains(t, p.Wait(10*time.Second), "exit status 2")
	})
	t.Run("nobody listening", func(t *testing.T) {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0") // a port that answers nothing
		require.NoError(t, err)
		defer c.Close()
		port := strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port)
		p := interop.Start(t, "client", "-host", "127.0.0.1", "-port", port)
		err = p.Wait(20 * time.Second)
		require.ErrorContains(t, err, "exit status 1")
		require.ErrorContains(t, err, "ERROR connect: ")
	})
	t.Run("hang", func(t *testing.T) {
		p := interop.Start(t, "server", "-host", "127.0.0.1", "-port", "0")
		p.ListenPort(10 * time.Second)
		_, err := p.WaitLine("RESULT ", 100*time.Millisecond)
		require.ErrorContains(t, err, "printed no")
		require.ErrorContains(t, p.Wait(100*time.Millisecond), "did not exit")
	})
}
