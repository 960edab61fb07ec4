package udt

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logQueue hands the log records of one connection or listener to its
// Logger's handler on a goroutine of the queue's own, in the order they
// were made.
//
// Records are made where the event happens, often on the socket's receive
// worker or a connection's timer with the connection's or the listener's
// lock held; the handler is user code, which may be slow or block. Calling
// it there would stall every connection of the UDP socket. A queue's
// goroutine runs only while records wait, and a handler that blocks holds
// up that connection's records alone: past maxQueuedLogs waiting, new ones
// are dropped and counted, and the count is logged once the handler
// catches up.
type logQueue struct {
	mu      sync.Mutex
	h       slog.Handler
	base    []slog.Attr   // what every record of the queue's owner carries
	recs    []slog.Record // guarded by mu
	dropped int           // records dropped since the last report; guarded by mu
	running bool          // a goroutine is emitting; guarded by mu
	idle    *sync.Cond    // signalled when running turns false (see wait)
}

// maxQueuedLogs bounds the records a queue holds while its handler is
// busy.
const maxQueuedLogs = 256

// add queues a record for h, which carries base among its attributes,
// and starts the queue's goroutine if it is not running. Any goroutine,
// any lock held.
func (q *logQueue) add(h slog.Handler, base []slog.Attr, r slog.Record) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.h, q.base = h, base
	if len(q.recs) >= maxQueuedLogs {
		q.dropped++
		return
	}
	q.recs = append(q.recs, r)
	if !q.running {
		q.running = true
		go q.emit()
	}
}

// emit hands the queued records to the handler until none are left.
func (q *logQueue) emit() {
	var batch []slog.Record
	for {
		q.mu.Lock()
		h, base, dropped := q.h, q.base, q.dropped
		batch, q.recs = q.recs, batch[:0]
		q.dropped = 0
		if len(batch) == 0 && dropped == 0 {
			q.running = false
			if q.idle != nil {
				q.idle.Broadcast()
			}
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		ctx := context.Background()
		for i, r := range batch {
			_ = h.Handle(ctx, r) // as slog.Logger does: a handler's error has nowhere to go
			batch[i] = slog.Record{}
		}
		if dropped > 0 {
			r := slog.NewRecord(time.Now(), slog.LevelWarn, "udt: log records dropped", 0)
			r.AddAttrs(base...)
			r.AddAttrs(slog.Int("count", dropped), slog.String("reason", "the handler fell behind"))
			_ = h.Handle(ctx, r)
		}
	}
}

// wait returns once every record queued so far has been handed to the
// handler.
func (q *logQueue) wait() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.idle == nil {
		q.idle = sync.NewCond(&q.mu)
	}
	for q.running {
		q.idle.Wait()
	}
}

// newLogRecord is a record made now, with the attributes base and attrs.
func newLogRecord(level slog.Level, msg string, base, attrs []slog.Attr) slog.Record {
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(base...)
	r.AddAttrs(attrs...)
	return r
}
