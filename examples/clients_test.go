package examples_test

import (
	"context"
	"crypto/sha256"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// addrAfter returns the address that ends a line after prefix.
func addrAfter(t *testing.T, line, prefix string) string {
	t.Helper()
	_, addr, ok := strings.Cut(line, prefix)
	require.True(t, ok, "%q has no %q", line, prefix)
	_, _, err := net.SplitHostPort(addr)
	require.NoError(t, err, "address in %q", line)
	return addr
}

// TestHTTPUDTProgram serves a directory with httpudt serve and fetches a
// file from it, and a missing one, with httpudt get.
func TestHTTPUDTProgram(t *testing.T) {
	const size = 4 << 20
	bin := t.TempDir()
	build(t, bin, "httpudt")
	served := t.TempDir()
	want := writeRandomFile(t, filepath.Join(served, "data.bin"), size, 4)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	httpudt := filepath.Join(bin, "httpudt")
	srv := start(t, ctx, httpudt, "serve", "-addr", "127.0.0.1:0", "-dir", served)
	addr := addrAfter(t, srv.waitFor(t, "serving ", 10*time.Second), " on udt ")

	local := filepath.Join(t.TempDir(), "copy.bin")
	cli := start(t, ctx, httpudt, "get", "-o", local, "http://"+addr+"/data.bin")
	<-cli.done
	require.NoError(t, cli.err, "httpudt get: %q", cli.output())
	require.Equal(t, []string{"HTTP/1.1 200 OK: " + strconv.Itoa(size) + " bytes"}, cli.output())
	require.Equal(t, want, fileSum(t, local), "the copy differs")

	cli = start(t, ctx, httpudt, "get", "-o", local, "http://"+addr+"/missing")
	<-cli.done
	require.Error(t, cli.err)
	require.Contains(t, strings.Join(cli.output(), "\n"), "404 Not Found")
}

// TestUDTProxyProgram puts udtproxy server in front of a TCP echo service
// and udtproxy client in front of it, and sends 4 MiB through them.
func TestUDTProxyProgram(t *testing.T) {
	const size = 4 << 20
	bin := t.TempDir()
	build(t, bin, "udtproxy")
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	udtproxy := filepath.Join(bin, "udtproxy")
	srv := start(t, ctx, udtproxy, "server", "-addr", "127.0.0.1:0", echo.Addr().String())
	remote := addrAfter(t, srv.waitFor(t, "listening on udt ", 10*time.Second), "listening on udt ")
	cli := start(t, ctx, udtproxy, "client", "-addr", "127.0.0.1:0", "-drain", "1s", remote)
	local := addrAfter(t, cli.waitFor(t, "listening on tcp ", 10*time.Second), "listening on tcp ")

	c, err := net.DialTimeout("tcp", local, 10*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(time.Minute)))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		wrote <- err
	}()
	got := sha256.New()
	_, err = io.CopyN(got, c, size)
	require.NoError(t, err)
	require.NoError(t, <-wrote)
	sum := sha256.Sum256(data)
	require.Equal(t, sum[:], got.Sum(nil), "the echo differs")
	require.NoError(t, c.Close())

	n := strconv.Itoa(size)
	cli.waitFor(t, ": "+n+" bytes TCP to UDT, "+n+" bytes UDT to TCP", 30*time.Second)
	srv.waitFor(t, ": "+n+" bytes TCP to UDT, "+n+" bytes UDT to TCP", 30*time.Second)
}
