package examples_test

import (
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fileSize is the size of the file the sendfile/recvfile tests move.
const fileSize = 50 << 20

// writeRandomFile writes n seeded random bytes to path and returns their
// SHA-256.
func writeRandomFile(t *testing.T, path string, n int, seed uint64) [32]byte {
	t.Helper()
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = rng.Read(b)
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return sha256.Sum256(b)
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return sha256.Sum256(b)
}

// fetch runs a recvfile program for remote into local and returns its
// output and exit error.
func fetch(t *testing.T, ctx context.Context, recvfile, port, remote, local string) ([]string, error) {
	t.Helper()
	cli := start(t, ctx, recvfile, "127.0.0.1", port, remote, local)
	<-cli.done
	return cli.output(), cli.err
}

func TestSendfileRecvfile(t *testing.T) {
	bin := t.TempDir()
	build(t, bin, "sendfile", "recvfile")
	served := t.TempDir()
	want := writeRandomFile(t, filepath.Join(served, "data.bin"), fileSize, 1)
	// Outside the served directory: never handed out.
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(served), "secret"), []byte("x"), 0o600))
	t.Cleanup(func() { os.Remove(filepath.Join(filepath.Dir(served), "secret")) })
	require.NoError(t, os.Symlink(filepath.Join(filepath.Dir(served), "secret"), filepath.Join(served, "link")))

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	port, srv := startServerIn(t, ctx, served, filepath.Join(bin, "sendfile"))

	local := filepath.Join(t.TempDir(), "copy.bin")
	out, err := fetch(t, ctx, filepath.Join(bin, "recvfile"), port, "data.bin", local)
	require.NoError(t, err, "recvfile: %q", out)
	require.Equal(t, want, fileSum(t, local), "the copy differs")
	require.Contains(t, out[len(out)-1], "received "+local+": "+strconv.Itoa(fileSize)+" bytes in")
	srv.waitFor(t, "sent data.bin: "+strconv.Itoa(fileSize)+" bytes", 10*time.Second)

	for _, name := range []string{"missing", "../secret", filepath.Join(filepath.Dir(served), "secret"), "link", "."} {
		out, err := fetch(t, ctx, filepath.Join(bin, "recvfile"), port, name, filepath.Join(t.TempDir(), "x"))
		require.Error(t, err, "recvfile %q", name)
		require.Equal(t, "no such file "+name+" on the server", strings.Join(out, "\n"), "recvfile %q", name)
	}
}

// crossFile serves a fresh random file with the sendfile program server,
// fetches it with the recvfile program client, checks the copy, and returns
// the server's process.
func crossFile(t *testing.T, ctx context.Context, server, client string, seed uint64) *proc {
	t.Helper()
	served := t.TempDir()
	want := writeRandomFile(t, filepath.Join(served, "data.bin"), fileSize, seed)
	port, srv := startServerIn(t, ctx, served, server)

	local := filepath.Join(t.TempDir(), "copy.bin")
	out, err := fetch(t, ctx, client, port, "data.bin", local)
	require.NoError(t, err, "%s: %q", filepath.Base(client), out)
	require.Equal(t, want, fileSum(t, local), "the copy differs")
	return srv
}

func TestCppSendfileToGoRecvfile(t *testing.T) {
	dir := t.TempDir()
	cppServer := cppExample(t, dir, "sendfile")
	build(t, dir, "recvfile")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	srv := crossFile(t, ctx, cppServer, filepath.Join(dir, "recvfile"), 2)
	srv.waitFor(t, "speed = ", 10*time.Second)
}

func TestGoSendfileToCppRecvfile(t *testing.T) {
	dir := t.TempDir()
	cppClient := cppExample(t, dir, "recvfile")
	build(t, dir, "sendfile")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	srv := crossFile(t, ctx, filepath.Join(dir, "sendfile"), cppClient, 3)
	srv.waitFor(t, "sent data.bin: "+strconv.Itoa(fileSize)+" bytes", 10*time.Second)
}
