package udt

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWriteAheadBounded writes 8 MiB toward a peer that does not read yet,
// through its 256-packet receive buffer: the sender's window closes, and a
// stream Write may queue no more than writeAhead packets the sender has
// not sent, though the send buffer has room for thousands more; the Write
// waits, and its deadline ends it. Once the peer reads, the writer, woken
// by the sender as it catches up, queues the rest, and every byte arrives
// in order.
func TestWriteAheadBounded(t *testing.T) {
	cfg := Config{ReceiveBuffer: 256, FlowWindow: 256}
	c, s := internalPair(t, cfg)
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}

	require.NoError(t, c.SetWriteDeadline(time.Now().Add(time.Second)))
	n, err := c.Write(data)
	require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "Write: %v", err)
	c.mu.Lock()
	unsent, queued, limit := c.snd.unsentLocked(), c.snd.buf.Len(), c.snd.buf.Limit()
	c.mu.Unlock()
	t.Logf("Write took %d bytes before its deadline: %d packets queued, %d of them not sent", n, queued, unsent)
	require.LessOrEqual(t, unsent, writeAhead, "packets queued and not sent")
	require.Less(t, queued, limit/2, "the send buffer holds what the window and writeAhead allow, no more")
	// What the Write took: what the peer's buffer holds, what is in
	// flight, and writeAhead packets not sent.
	require.LessOrEqual(t, n, (cfg.ReceiveBuffer+writeAhead+writeChunk)*c.payload, "bytes the Write took")

	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(s, int64(len(data))))
		got <- b
	}()
	require.NoError(t, c.SetWriteDeadline(time.Time{}))
	m, err := c.Write(data[n:])
	require.NoError(t, err)
	require.Equal(t, len(data)-n, m)
	select {
	case b := <-got:
		require.True(t, bytes.Equal(data, b), "the stream arrived changed: %d of %d bytes", len(b), len(data))
	case <-time.After(30 * time.Second):
		t.Fatal("the reader did not get the whole stream within 30 s")
	}
}
