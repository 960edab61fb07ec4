package examples_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/interop"
)

// build compiles the example packages into dir.
func build(t *testing.T, dir string, pkgs ...string) {
	t.Helper()
	for _, p := range pkgs {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, p), "./"+p).CombinedOutput()
		require.NoError(t, err, "go build %s: %s", p, out)
	}
}

// freePort returns a UDP port free on 127.0.0.1 a moment ago (see
// startServer).
func freePort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// proc is a running program whose output lines are collected.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
	err   error
}

func start(t *testing.T, ctx context.Context, name string, args ...string) *proc {
	t.Helper()
	return startIn(t, ctx, "", name, args...)
}

// startIn is start with the program's working directory set to dir.
func startIn(t *testing.T, ctx context.Context, dir, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.CommandContext(ctx, name, args...), done: make(chan struct{})}
	p.cmd.Dir = dir
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	p.cmd.Stderr = p.cmd.Stdout
	require.NoError(t, p.cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, strings.Join(p.output(), "\n"))
		}
	})
	return p
}

func (p *proc) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// waitFor waits until a line contains s.
func (p *proc) waitFor(t *testing.T, s string, timeout time.Duration) string {
	t.Helper()
	l, ok := p.lineWithin(s, timeout, false)
	if !ok {
		t.Fatalf("no line containing %q within %v", s, timeout)
	}
	return l
}

// lineWithin waits up to timeout for a line containing s; it gives up
// early if the program exits first and exitEnds is set.
func (p *proc) lineWithin(s string, timeout time.Duration, exitEnds bool) (string, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, l := range p.output() {
			if strings.Contains(l, s) {
				return l, true
			}
		}
		select {
		case <-p.done:
			if exitEnds {
				return "", false
			}
		default:
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", false
}

// startServer starts an appserver (ours or the C++ one) on a free port
// and waits until it is ready. A port found free may be taken by another
// program before the server binds it: the server then exits, and it is
// started again on another port.
func startServer(t *testing.T, ctx context.Context, bin string) (string, *proc) {
	t.Helper()
	return startServerIn(t, ctx, "", bin)
}

// startServerIn is startServer with the program's working directory set
// to dir.
func startServerIn(t *testing.T, ctx context.Context, dir, bin string) (string, *proc) {
	t.Helper()
	for range 5 {
		port := strconv.Itoa(freePort(t))
		srv := startIn(t, ctx, dir, bin, port)
		if _, ok := srv.lineWithin("server is ready at port: "+port, 10*time.Second, true); ok {
			return port, srv
		}
		select {
		case <-srv.done:
			t.Logf("%s exited on port %s (%v): %q; trying another port", filepath.Base(bin), port, srv.err, srv.output())
		default:
			t.Fatalf("%s not ready on port %s within 10 s", filepath.Base(bin), port)
		}
	}
	t.Fatalf("%s could not start on five ports", filepath.Base(bin))
	return "", nil
}

func TestAppClientToAppServer(t *testing.T) {
	dir := t.TempDir()
	build(t, dir, "appserver", "appclient")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	port, srv := startServer(t, ctx, filepath.Join(dir, "appserver"))

	cli := start(t, ctx, filepath.Join(dir, "appclient"), "-bytes", "20MiB", "127.0.0.1", port)
	<-cli.done
	require.NoError(t, cli.err)
	out := cli.output()
	require.Equal(t, "SendRate(Mb/s)\tRTT(ms)\tCWnd\tPktSndPeriod(us)\tRecvACK\tRecvNAK", out[0])
	require.Contains(t, out[len(out)-1], "sent 20971520 bytes in")
	srv.waitFor(t, "new connection: 127.0.0.1:", 5*time.Second)

	// A bad port is named, not only met with the usage.
	bad := start(t, ctx, filepath.Join(dir, "appclient"), "127.0.0.1", "notaport")
	<-bad.done
	require.Error(t, bad.err)
	require.Contains(t, strings.Join(bad.output(), "\n"), `server_port "notaport" is not a port number`)
}

// cppExample builds one of the C++ library's example programs.
func cppExample(t *testing.T, dir, name string) string {
	t.Helper()
	interop.BuildPeer(t) // skips, or fails under UDT_INTEROP=require, without libudt
	src := "/usr/share/doc/libudt-dev/examples"
	for _, f := range []string{name + ".cpp", "test_util.h", "cc.h"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if os.IsNotExist(err) {
			b, err = gunzip(filepath.Join(src, f+".gz"))
		}
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
	}
	bin := filepath.Join(dir, name)
	out, err := exec.Command("g++", "-O2", "-I/usr/include/udt", "-o", bin, filepath.Join(dir, name+".cpp"), "-ludt", "-lpthread").CombinedOutput()
	require.NoError(t, err, "g++ %s: %s", name, out)
	return bin
}

func gunzip(path string) ([]byte, error) {
	out, err := exec.Command("gzip", "-dc", path).Output()
	if err != nil {
		return nil, err
	}
	return out, nil
}

func TestGoAppClientToCppAppServer(t *testing.T) {
	dir := t.TempDir()
	cppServer := cppExample(t, dir, "appserver")
	build(t, dir, "appclient")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	port, srv := startServer(t, ctx, cppServer)

	cli := start(t, ctx, filepath.Join(dir, "appclient"), "-bytes", "20000000", "127.0.0.1", port)
	<-cli.done
	require.NoError(t, cli.err)
	out := cli.output()
	require.Contains(t, out[len(out)-1], "sent 20000000 bytes in")
	srv.waitFor(t, "new connection: 127.0.0.1:", 5*time.Second)
}

func TestCppAppClientToGoAppServer(t *testing.T) {
	dir := t.TempDir()
	cppClient := cppExample(t, dir, "appclient")
	build(t, dir, "appserver")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	port, srv := startServer(t, ctx, filepath.Join(dir, "appserver"))

	// The C++ client sends until killed; three seconds give three reports.
	cctx, ccancel := context.WithTimeout(ctx, 3500*time.Millisecond)
	defer ccancel()
	cli := start(t, cctx, cppClient, "127.0.0.1", port)
	<-cli.done
	out := cli.output()
	require.NotEmpty(t, out)
	require.Contains(t, out[0], "SendRate(Mb/s)")
	reports := 0
	for _, l := range out[1:] {
		if f := strings.Fields(l); len(f) == 6 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil && v > 0 {
				reports++
			}
		}
	}
	require.GreaterOrEqual(t, reports, 2, "the C++ client reported sending: %q", out)
	srv.waitFor(t, "new connection: 127.0.0.1:", 5*time.Second)
}
