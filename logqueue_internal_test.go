package udt

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// gateHandler records like recorder; in its first record it says so on
// started, then waits for gate to close.
type gateHandler struct {
	recorder
	once    sync.Once
	gate    chan struct{}
	started chan struct{}
}

func (h *gateHandler) Handle(ctx context.Context, r slog.Record) error {
	h.once.Do(func() {
		close(h.started)
		<-h.gate
	})
	return h.recorder.Handle(ctx, r)
}

// A queue whose handler is stuck keeps maxQueuedLogs records, counts the
// rest, and says how many it dropped once the handler catches up; the
// records it kept come in the order made.
func TestLogQueueBounded(t *testing.T) {
	h := &gateHandler{gate: make(chan struct{}), started: make(chan struct{})}
	var q logQueue
	base := []slog.Attr{slog.Uint64("id", 7)}
	q.add(h, base, newLogRecord(slog.LevelInfo, "first", base, nil))
	<-h.started // the handler is in "first", stuck
	const more = maxQueuedLogs + 44
	for i := range more {
		q.add(h, base, newLogRecord(slog.LevelInfo, fmt.Sprint(i), base, nil))
	}
	close(h.gate)
	q.wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(t, h.records, 1+maxQueuedLogs+1)
	for i, r := range h.records[1 : 1+maxQueuedLogs] {
		require.Equal(t, fmt.Sprint(i), r.msg)
		require.Equal(t, "7", r.attrs["id"])
	}
	last := h.records[len(h.records)-1]
	require.Equal(t, "udt: log records dropped", last.msg)
	require.Equal(t, slog.LevelWarn, last.level)
	require.Equal(t, "44", last.attrs["count"])
	require.Equal(t, "7", last.attrs["id"])
}
