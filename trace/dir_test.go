package trace

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
)

// TestDirFiles: one file per connection, named by role, start and
// socket ID; Close ends the traces still open; a connection after Close
// is not traced.
func TestDirFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traces", "run1")
	d, err := NewDir(path, Options{NoPackets: true})
	require.NoError(t, err)
	a := d.Tracer(testInfo)
	b := d.Tracer(testInfo) // the same connection again: a file of its own
	server := testInfo
	server.Role = udt.RoleServer
	s := d.Tracer(server)
	require.Nil(t, a.PacketSent)
	a.PhaseChanged(udt.TracePhase{Time: at(1), To: udt.PhaseConnected})
	a.Closed(udt.TraceClose{Time: at(2), By: "local"})
	b.TimedOut(udt.TraceTimeout{Time: at(3), Count: 1})
	s.PhaseChanged(udt.TracePhase{Time: at(4), To: udt.PhaseConnected})
	require.NoError(t, d.Close())
	require.NoError(t, d.Close())
	require.Nil(t, d.Tracer(testInfo), "after Close")
	s.TimedOut(udt.TraceTimeout{Time: at(5)}) // after Close: dropped

	files := d.Files()
	require.Equal(t, []string{
		filepath.Join(path, "client-20260102T150405.123456Z-3120573629.jsonl"),
		filepath.Join(path, "client-20260102T150405.123456Z-3120573629-2.jsonl"),
		filepath.Join(path, "server-20260102T150405.123456Z-3120573629.jsonl"),
	}, files)
	var kinds [][]Kind
	for _, f := range files {
		tr, err := ReadFile(f)
		require.NoError(t, err)
		require.True(t, tr.Header.NoPackets)
		var ks []Kind
		for _, e := range tr.Events {
			ks = append(ks, e.Kind)
		}
		kinds = append(kinds, ks)
	}
	require.Equal(t, [][]Kind{{Phase, Closed}, {Timeout}, {Phase}}, kinds)
}

// TestDirError: a file that cannot be created leaves its connection
// untraced, and Close says why.
func TestDirError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traces")
	d, err := NewDir(path, Options{})
	require.NoError(t, err)
	require.NoError(t, os.Remove(path))
	require.NoError(t, os.WriteFile(path, nil, 0o644)) // a file where the directory was
	require.Nil(t, d.Tracer(testInfo))
	require.ErrorContains(t, d.Close(), "trace: open "+path)
	require.Empty(t, d.Files())

	_, err = NewDir(filepath.Join(path, "sub"), Options{})
	require.ErrorContains(t, err, "trace: mkdir")
}

// TestDirLetsWritersGo: a Dir keeps no Writer whose trace is written,
// only its path.
func TestDirLetsWritersGo(t *testing.T) {
	d, err := NewDir(t.TempDir(), Options{})
	require.NoError(t, err)
	const n = 100
	for i := range n {
		info := testInfo
		info.SocketID = uint32(i)
		ct := d.Tracer(info)
		d.mu.Lock()
		w := d.writers[len(d.writers)-1]
		d.mu.Unlock()
		ct.Closed(udt.TraceClose{Time: at(1), By: "local"})
		<-w.done
	}
	d.mu.Lock()
	kept := len(d.writers)
	d.mu.Unlock()
	require.LessOrEqual(t, kept, 1, "Writers kept")
	require.Len(t, d.Files(), n)
	require.NoError(t, d.Close())
}
