package udt_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
)

// pair returns a listener and a dialed connection with its accepted peer.
func pair(t *testing.T) (net.Listener, net.Conn, net.Conn) {
	t.Helper()
	ln, err := udt.Listen("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := udt.DialContext(ctx, "udp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s := <-accepted
	require.NotNil(t, s)
	t.Cleanup(func() { s.Close() })
	return ln, c, s
}

func TestStreamBothWays(t *testing.T) {
	_, c, s := pair(t)
	data := make([]byte, 8<<20)
	_, _ = rand.Read(data)
	want := sha256.Sum256(data)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		errc <- err
	}()
	got := make([]byte, len(data))
	_, err := io.ReadFull(s, got)
	require.NoError(t, err)
	require.NoError(t, <-errc)
	require.Equal(t, want, sha256.Sum256(got))

	// And back.
	go func() {
		_, err := s.Write(data[:1<<20])
		errc <- err
	}()
	_, err = io.ReadFull(c, got[:1<<20])
	require.NoError(t, err)
	require.NoError(t, <-errc)
	require.True(t, bytes.Equal(data[:1<<20], got[:1<<20]))
}

func TestCloseGivesEOF(t *testing.T) {
	_, c, s := pair(t)
	msg := []byte("hello, udt")
	_, err := c.Write(msg)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	got, err := io.ReadAll(s)
	require.NoError(t, err)
	require.Equal(t, msg, got)
}
