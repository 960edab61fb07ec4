// Package interop runs cpeer, our small C++ client and server built on the
// reference UDT library (libudt 4.11), so tests can check the Go
// implementation against it, and generates the data both sides exchange.
//
// [BuildPeer] compiles cpeer/cpeer.cpp with g++ once per test binary;
// [Start] runs it and reads its output lines (LISTEN, ACCEPTED, CONNECTED,
// BOUND, MSS, RESULT; see the top of cpeer.cpp). Without libudt-dev and g++
// the tests that need cpeer are skipped, unless UDT_INTEROP=require, which
// CI sets.
//
// Test data is the xorshift64 stream of [PatternReader]; both sides report
// a SHA-256 of what they sent or received, to compare with [SHA256Pattern].
package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

//go:embed cpeer/cpeer.cpp
var cpeerSource []byte

// Header is the libudt header whose presence [Available] checks.
const Header = "/usr/include/udt/udt.h"

// RequireEnv is the environment variable that, set to "require", turns a
// missing libudt into a test failure instead of a skip.
const RequireEnv = "UDT_INTEROP"

// Available reports whether cpeer can be built: nil if [Header] exists and
// g++ is on PATH, otherwise an error naming what is missing.
func Available() error {
	var missing []string
	if _, err := os.Stat(Header); err != nil {
		missing = append(missing, fmt.Sprintf("libudt header %s (%v)", Header, err))
	}
	if _, err := exec.LookPath("g++"); err != nil {
		missing = append(missing, fmt.Sprintf("g++ (%v)", err))
	}
	if len(missing) > 0 {
		return fmt.Errorf("interop: missing %s", strings.Join(missing, " and "))
	}
	return nil
}

var built struct {
	once sync.Once
	path string
	err  error
}

// BuildPeer returns the path of the cpeer binary, compiling it on the first
// call in this test binary; later calls return the cached path. The binary
// lives in a directory from [os.MkdirTemp] that is left in place, since the
// process cannot know which test is its last user.
//
// If [Available] reports a problem, BuildPeer skips the test, or fails it
// when UDT_INTEROP=require. A compile error always fails the test.
// BuildPeer is safe for concurrent use.
func BuildPeer(tb testing.TB) string {
	tb.Helper()
	if err := Available(); err != nil {
		why := strings.TrimPrefix(err.Error(), "interop: ")
		if os.Getenv(RequireEnv) == "require" {
			tb.Fatalf("interop: %s=require but cpeer cannot be built: %s", RequireEnv, why)
		}
		tb.Skipf("interop: libudt not installed (apt-get install libudt-dev g++): %s", why)
	}
	built.once.Do(func() { built.path, built.err = buildPeer() })
	if built.err != nil {
		tb.Fatalf("interop: %v", built.err)
	}
	return built.path
}

func buildPeer() (string, error) {
	dir, err := os.MkdirTemp("", "udt-cpeer-")
	if err != nil {
		return "", fmt.Errorf("building cpeer: %w", err)
	}
	src := filepath.Join(dir, "cpeer.cpp")
	bin := filepath.Join(dir, "cpeer")
	if err := os.WriteFile(src, cpeerSource, 0o644); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("building cpeer: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "g++", "-O2", "-o", bin, src, "-ludt", "-lpthread").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("building cpeer: g++ -O2 -o cpeer cpeer.cpp -ludt -lpthread: %w\n%s", err, out)
	}
	return bin, nil
}

// Peer is a running cpeer process. Its methods are safe for concurrent use,
// except those taking a timeout and calling tb.Fatalf ([Peer.ListenPort]),
// which must run on the test's goroutine.
type Peer struct {
	tb     testing.TB
	name   string // "cpeer server", for messages
	cancel context.CancelFunc

	exited chan struct{} // closed once the process has exited and its output is read
	err    error         // from exec.Cmd.Wait; written before exited is closed

	mu      sync.Mutex
	lines   []string      // complete stdout lines, guarded by mu
	taken   []bool        // lines already returned by WaitLine, guarded by mu
	partial []byte        // stdout after the last newline, guarded by mu
	changed chan struct{} // closed and replaced when lines grows, guarded by mu
	stderr  bytes.Buffer  // guarded by mu
}

// Start runs cpeer with args (for example "server", "-port", "0") after
// building it with [BuildPeer], and reads its output in the background.
// The process is killed, if still running, when the test ends; if the test
// failed, its output is logged then.
func Start(tb testing.TB, args ...string) *Peer {
	tb.Helper()
	return start(tb, nil, args)
}

// StartWrapped is [Start] for a cpeer that another program runs: wrap
// returns the command that runs the cpeer binary bin with args, such as
// netsim's TunPath.Command, which runs it inside a network namespace. The
// wrapper must become cpeer's process (ip netns exec does, by exec), so
// that killing the command kills cpeer.
func StartWrapped(tb testing.TB, wrap func(bin string, args ...string) *exec.Cmd, args ...string) *Peer {
	tb.Helper()
	return start(tb, wrap, args)
}

func start(tb testing.TB, wrap func(bin string, args ...string) *exec.Cmd, args []string) *Peer {
	tb.Helper()
	bin := BuildPeer(tb)
	ctx, cancel := context.WithCancel(context.Background())
	var cmd *exec.Cmd
	if wrap == nil {
		cmd = exec.CommandContext(ctx, bin, args...)
	} else {
		// The same command under ctx, so that Kill and the end of the
		// test kill it.
		w := wrap(bin, args...)
		if w.Err != nil {
			cancel()
			tb.Fatalf("interop: starting cpeer %s: %v", strings.Join(args, " "), w.Err)
		}
		cmd = exec.CommandContext(ctx, w.Path, w.Args[1:]...)
		cmd.Env, cmd.Dir = w.Env, w.Dir
	}
	cmd.WaitDelay = 5 * time.Second
	p := &Peer{
		tb:      tb,
		name:    "cpeer",
		cancel:  cancel,
		exited:  make(chan struct{}),
		changed: make(chan struct{}),
	}
	if len(args) > 0 {
		p.name += " " + args[0]
	}
	cmd.Stdout = stdoutWriter{p}
	cmd.Stderr = stderrWriter{p}
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("interop: starting %s: %v", p.name, err)
	}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if len(p.partial) > 0 {
			p.addLineLocked(string(p.partial))
			p.partial = nil
		}
		p.err = err
		p.mu.Unlock()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		cancel()
		<-p.exited
		if tb.Failed() {
			p.mu.Lock()
			tb.Logf("cpeer %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "),
				strings.Join(p.lines, "\n"), p.stderr.String())
			p.mu.Unlock()
		}
	})
	return p
}

type stdoutWriter struct{ p *Peer }

func (w stdoutWriter) Write(b []byte) (int, error) {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	rest := append(p.partial, b...)
	for {
		line, after, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			break
		}
		p.addLineLocked(string(bytes.TrimSuffix(line, []byte("\r"))))
		rest = after
	}
	p.partial = bytes.Clone(rest) // drop the consumed lines' storage
	return len(b), nil
}

type stderrWriter struct{ p *Peer }

func (w stderrWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

func (p *Peer) addLineLocked(line string) {
	p.lines = append(p.lines, line)
	p.taken = append(p.taken, false)
	close(p.changed)
	p.changed = make(chan struct{})
}

// takeLocked returns the first line starting with prefix not yet returned.
func (p *Peer) takeLocked(prefix string) (string, bool) {
	for i, line := range p.lines {
		if !p.taken[i] && strings.HasPrefix(line, prefix) {
			p.taken[i] = true
			return line, true
		}
	}
	return "", false
}

// Stderr returns what the process has written to stderr so far.
func (p *Peer) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *Peer) stderrNote() string {
	if s := strings.TrimSpace(p.Stderr()); s != "" {
		return "; stderr: " + s
	}
	return ""
}

// WaitLine returns the first stdout line starting with prefix that no
// earlier WaitLine call returned, waiting up to timeout for it. It fails if
// the process exits without printing one; the error includes its stderr.
func (p *Peer) WaitLine(prefix string, timeout time.Duration) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		line, ok := p.takeLocked(prefix)
		changed := p.changed
		p.mu.Unlock()
		if ok {
			return line, nil
		}
		select {
		case <-changed:
		case <-p.exited:
			// The output is complete now: look once more.
			p.mu.Lock()
			line, ok := p.takeLocked(prefix)
			p.mu.Unlock()
			if ok {
				return line, nil
			}
			return "", fmt.Errorf("interop: %s exited (%v) without printing %q%s", p.name, exitStatus(p.err), prefix, p.stderrNote())
		case <-timer.C:
			return "", fmt.Errorf("interop: %s printed no %q within %v%s", p.name, prefix, timeout, p.stderrNote())
		}
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// ListenPort waits up to timeout for the server's "LISTEN <port>" line and
// returns the port, failing the test if none comes.
func (p *Peer) ListenPort(timeout time.Duration) int {
	p.tb.Helper()
	line, err := p.WaitLine("LISTEN ", timeout)
	if err != nil {
		p.tb.Fatal(err)
	}
	port, err := strconv.Atoi(strings.TrimPrefix(line, "LISTEN "))
	if err != nil || port <= 0 || port > 65535 {
		p.tb.Fatalf("interop: %s: bad line %q", p.name, line)
	}
	return port
}

// Result is one RESULT line: what a connection sent or received.
type Result struct {
	Index  int     // connection index, from 0
	Bytes  int64   // bytes sent or received
	SHA256 string  // hex SHA-256 of those bytes, "-" if the peer ran with -nohash
	Secs   float64 // duration of the transfer
	Mbps   float64 // Bytes*8/Secs/1e6
}

// ParseResult parses "RESULT <i> bytes=<n> sha256=<hex> secs=<f> mbps=<f>".
func ParseResult(line string) (Result, error) {
	var r Result
	_, err := fmt.Sscanf(line, "RESULT %d bytes=%d sha256=%s secs=%g mbps=%g", &r.Index, &r.Bytes, &r.SHA256, &r.Secs, &r.Mbps)
	if err != nil {
		return Result{}, fmt.Errorf("interop: bad RESULT line %q: %w", line, err)
	}
	return r, nil
}

// Results waits up to timeout in total for n RESULT lines not yet returned
// and returns them ordered by connection index.
func (p *Peer) Results(n int, timeout time.Duration) ([]Result, error) {
	deadline := time.Now().Add(timeout)
	var rs []Result
	for len(rs) < n {
		line, err := p.WaitLine("RESULT ", time.Until(deadline))
		if err != nil {
			return rs, err
		}
		r, err := ParseResult(line)
		if err != nil {
			return rs, err
		}
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b Result) int { return a.Index - b.Index })
	return rs, nil
}

// RequireDone waits for the peer's one RESULT line and its exit, and fails
// tb unless it exited cleanly having moved wantBytes (unless negative)
// whose SHA-256 is wantSHA, in hex. It returns the result.
func (p *Peer) RequireDone(tb testing.TB, wantSHA string, wantBytes int64) Result {
	tb.Helper()
	rs, err := p.Results(1, 60*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	r := rs[0]
	if wantBytes >= 0 && r.Bytes != wantBytes {
		tb.Fatalf("interop: %s moved %d bytes, want %d", p.name, r.Bytes, wantBytes)
	}
	if r.SHA256 != wantSHA {
		tb.Fatalf("interop: %s's bytes have SHA-256 %s, want %s", p.name, r.SHA256, wantSHA)
	}
	if err := p.Wait(10 * time.Second); err != nil {
		tb.Fatal(err)
	}
	return r
}

// ParseConnected parses a client's "CONNECTED <i> <ms>" line into the
// connection index and how long UDT::connect took.
func ParseConnected(line string) (int, time.Duration, error) {
	var i int
	var ms float64
	if _, err := fmt.Sscanf(line, "CONNECTED %d %g", &i, &ms); err != nil {
		return 0, 0, fmt.Errorf("interop: bad CONNECTED line %q: %w", line, err)
	}
	return i, time.Duration(ms * float64(time.Millisecond)), nil
}

// Kill kills the process if it is still running. [Peer.Wait] then reports
// the kill.
func (p *Peer) Kill() { p.cancel() }

// Wait waits up to timeout for the process to exit. It returns nil for exit
// status 0; otherwise, or if the process had to be killed at the timeout, an
// error that includes the process's stderr.
func (p *Peer) Wait(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		p.cancel()
		<-p.exited
		return fmt.Errorf("interop: %s did not exit within %v, killed%s", p.name, timeout, p.stderrNote())
	}
	if p.err != nil {
		return fmt.Errorf("interop: %s: %w%s", p.name, p.err, p.stderrNote())
	}
	return nil
}

// PatternReader returns a reader of the n-byte test stream for seed, the
// same bytes cpeer sends with -seed: starting from x = seed, each 8 bytes
// are x ^= x<<13; x ^= x>>7; x ^= x<<17, then x in little-endian order; the
// last word is cut to length. seed must not be 0.
func PatternReader(seed uint64, n int64) io.Reader {
	if seed == 0 {
		panic("interop: PatternReader seed 0 would give only zeros")
	}
	return &patternReader{x: seed, off: 8, left: n}
}

type patternReader struct {
	x    uint64
	word [8]byte // the last word generated
	off  int     // bytes of word already read
	left int64   // bytes not yet read
}

func (r *patternReader) next() uint64 {
	r.x ^= r.x << 13
	r.x ^= r.x >> 7
	r.x ^= r.x << 17
	return r.x
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := copy(p, r.word[r.off:])
	r.off += n
	for ; len(p)-n >= 8; n += 8 {
		binary.LittleEndian.PutUint64(p[n:], r.next())
	}
	if n < len(p) {
		binary.LittleEndian.PutUint64(r.word[:], r.next())
		r.off = copy(p[n:], r.word[:])
		n += r.off
	}
	r.left -= int64(n)
	return n, nil
}

// SHA256Pattern returns the hex SHA-256 of PatternReader(seed, n), as cpeer
// prints it in RESULT lines.
func SHA256Pattern(seed uint64, n int64) string {
	h := sha256.New()
	if _, err := io.CopyBuffer(h, PatternReader(seed, n), make([]byte, 1<<20)); err != nil {
		panic(err) // neither side of the copy fails
	}
	return hex.EncodeToString(h.Sum(nil))
}

// CppThroughput sends bytes from a C++ client to a C++ server over
// 127.0.0.1 and returns the rate the receiver measured, in Mbit/s, from
// accept to the last byte: the reference to put beside the Go figures. Both
// sides run with -nohash, since a plain SHA-256 is slower than libudt over
// loopback; the byte count is still checked.
func CppThroughput(tb testing.TB, bytes int64) (mbps float64) {
	tb.Helper()
	// Generous: at least 10 MiB/s, on top of start-up.
	timeout := 30*time.Second + time.Duration(bytes/(10<<20))*time.Second
	srv := Start(tb, "server", "-host", "127.0.0.1", "-port", "0", "-mode", "recv", "-nohash")
	port := srv.ListenPort(10 * time.Second)
	cli := Start(tb, "client", "-host", "127.0.0.1", "-port", strconv.Itoa(port),
		"-mode", "send", "-bytes", strconv.FormatInt(bytes, 10), "-nohash")
	rs, err := srv.Results(1, timeout)
	if err == nil {
		err = errors.Join(cli.Wait(timeout), srv.Wait(10*time.Second))
	}
	if err != nil {
		tb.Fatal(err)
	}
	if rs[0].Bytes != bytes {
		tb.Fatalf("interop: C++ server received %d bytes, want %d", rs[0].Bytes, bytes)
	}
	return rs[0].Mbps
}

// TestMessage returns test message i for seed, as cpeer's msgsend mode
// sends it with -maxmsg maxmsg: s = splitmix64(seed + (i+1)·φ64); 1 + s mod
// maxmsg bytes of the pattern stream seeded with s|1, the first 4 of them
// (if there are 4) replaced by i in little-endian order.
func TestMessage(seed uint64, i, maxmsg int) []byte {
	z := seed + uint64(i+1)*0x9E3779B97F4A7C15
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	z ^= z >> 31
	b := make([]byte, 1+int(z%uint64(maxmsg)))
	if _, err := io.ReadFull(PatternReader(z|1, int64(len(b))), b); err != nil {
		panic(err) // the pattern has as many bytes as asked
	}
	if len(b) >= 4 {
		binary.LittleEndian.PutUint32(b, uint32(i))
	}
	return b
}

// MessageIndex returns the index a test message carries, or -1 if b is
// too short to carry one.
func MessageIndex(b []byte) int {
	if len(b) < 4 {
		return -1
	}
	return int(binary.LittleEndian.Uint32(b))
}

// Fields parses the key=value words after a line's first word, as in
// cpeer's MSGS and MSGSENT lines, into integers.
func Fields(line string) (map[string]int64, error) {
	words := strings.Fields(line)
	m := make(map[string]int64, len(words))
	for _, w := range words[min(1, len(words)):] {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			return nil, fmt.Errorf("interop: bad field %q in %q", w, line)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("interop: bad field %q in %q: %w", w, line, err)
		}
		m[k] = n
	}
	return m, nil
}
