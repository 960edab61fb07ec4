package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// freePort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// A file crosses from send to recv through the rendezvous server, all on
// loopback, and arrives whole with its digest checked.
func TestCopyOverLoopback(t *testing.T) {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- serveOn(uc, io.Discard) }()
	defer func() {
		uc.Close()
		require.NoError(t, <-served)
	}()

	dir := t.TempDir()
	src := filepath.Join(dir, "data.bin")
	data := make([]byte, 8<<20+123)
	_, _ = rand.Read(data)
	require.NoError(t, os.WriteFile(src, data, 0o644))
	dst := filepath.Join(dir, "copy.bin")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	opts := func(role string) peerOptions {
		return peerOptions{role: role, server: uc.LocalAddr().String(), session: "t1", port: freePort(t), timeout: 20 * time.Second}
	}
	sent := make(chan error, 1)
	var sendLog bytes.Buffer
	go func() { sent <- send(ctx, opts("send"), src, &sendLog) }()
	var recvLog bytes.Buffer
	require.NoError(t, recv(ctx, opts("recv"), dst, &recvLog))
	require.NoError(t, <-sent)
	got, err := os.ReadFile(dst)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "the copy differs")
	require.Contains(t, recvLog.String(), "SHA-256")
	require.Contains(t, recvLog.String(), "checked")
}

func TestParseRegister(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		name string
		role int
		ok   bool
	}{
		{"p2pcopy register s1 send", "s1", 0, true},
		{"p2pcopy register s1 recv", "s1", 1, true},
		{"p2pcopy register s1 both", "", 0, false},
		{"p2pcopy register  send", "", 0, false},
		{"p2pcopy peer 1.2.3.4:5", "", 0, false},
		{"", "", 0, false},
	} {
		name, role, ok := parseRegister(tc.msg)
		require.Equal(t, tc.ok, ok, tc.msg)
		require.Equal(t, tc.name, name, tc.msg)
		require.Equal(t, tc.role, role, tc.msg)
	}
}
