package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/trace"
)

// TestTraceBothEnds runs a test with -trace on both ends, into a
// directory that does not exist yet: each end writes a file per stream,
// and the server's files count the bytes it reported, the hellos besides.
func TestTraceBothEnds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "traces")
	so, err := parseArgs([]string{"-s", "-p", "0", "-trace", dir})
	require.NoError(t, err)
	sdir, err := openTrace(so)
	require.NoError(t, err)
	srv := startTracedServer(t, tracerOf(sdir))

	r := runGoClient(t, srv.port, "-t", "0.5", "-P", "2", "-trace", dir)
	checkRun(t, r, 2, 0)
	// Lean traces: no data packets.
	lean := filepath.Join(t.TempDir(), "lean")
	r2 := runGoClient(t, srv.port, "-t", "0.3", "-trace", lean, "-trace-packets=false")
	srv.stop()
	require.NoError(t, sdir.Close())

	byRole := map[udt.TraceRole][]*trace.Trace{}
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	require.NoError(t, err)
	require.Len(t, files, 5, "a file per stream on each end; the server's of the lean test too")
	for _, f := range files {
		tr, err := trace.ReadFile(f)
		require.NoError(t, err)
		byRole[tr.Header.Role] = append(byRole[tr.Header.Role], tr)
	}
	require.Len(t, byRole[udt.RoleClient], 2)
	require.Len(t, byRole[udt.RoleServer], 3)
	var sent, taken int64
	for _, tr := range byRole[udt.RoleClient] {
		sent += newBytes(t, tr, trace.PacketSent)
	}
	for _, tr := range byRole[udt.RoleServer] {
		taken += newBytes(t, tr, trace.PacketReceived)
	}
	require.Equal(t, r.sum.BytesSent+2*helloSize, sent, "written, and the hellos")
	require.Equal(t, r.sum.Bytes+r2.sum.Bytes+3*helloSize, taken, "read by the server, and the hellos")

	leanFiles, err := filepath.Glob(filepath.Join(lean, "client-*.jsonl"))
	require.NoError(t, err)
	require.Len(t, leanFiles, 1)
	tr, err := trace.ReadFile(leanFiles[0])
	require.NoError(t, err)
	require.True(t, tr.Header.NoPackets)
	require.Zero(t, newBytes(t, tr, trace.PacketSent))
}

// newBytes adds up the payload of tr's data packets of kind k, each
// counted once: sent, without the retransmissions; received, without the
// discarded. The trace must end with its connection.
func newBytes(t *testing.T, tr *trace.Trace, k trace.Kind) (n int64) {
	t.Helper()
	require.NotEmpty(t, tr.Events)
	require.Equal(t, trace.Closed, tr.Events[len(tr.Events)-1].Kind, "%s %d", tr.Header.Role, tr.Header.SocketID)
	for _, e := range tr.Events {
		if e.Kind == k && e.Discarded == "" && !(k == trace.PacketSent && e.Retransmit) {
			n += int64(e.Size)
		}
	}
	return n
}
