package trace

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udt-go/udt"
)

// A Writer writes the events of one connection to an [io.Writer], one
// JSON line each (see the package doc). Its Tracer's hooks encode each
// event into a buffer; a goroutine of the Writer's writes the full
// buffers out, so the socket's workers, on which the hooks run, do not
// wait for the file unless it falls a buffer behind. The Closed event
// writes out what is left; Close waits for it.
//
// A Writer is safe for concurrent use: its hooks are called one at a time
// (they serve one connection), Close and Err from any goroutine.
type Writer struct {
	start time.Time
	opts  Options
	size  int // hand a buffer over once it holds this many bytes

	mu    sync.Mutex
	buf   []byte // lines not yet handed over; guarded by mu
	ended bool   // no more events; full is closed; guarded by mu

	// Two buffers go round: one is buf, the other waits in free or is
	// being written from full.
	free   chan []byte
	full   chan []byte
	done   chan struct{} // closed when the goroutine has written everything
	dst    io.Writer
	closer io.Closer // closed after the last write (a Dir's file); may be nil

	failed atomic.Bool // err is set: events are no longer encoded
	errMu  sync.Mutex
	err    error // the first error writing or closing; guarded by errMu
}

// NewWriter returns a Writer of the events of the connection info
// describes to w; it writes the header at once. The Writer's goroutine
// writes to w until Close or the connection's Closed event; w is not
// closed. A write to w that blocks for good blocks the connection's hooks
// too, once both buffers are full.
func NewWriter(w io.Writer, info udt.TraceInfo, opts Options) *Writer {
	return newWriter(w, nil, info, opts)
}

func newWriter(dst io.Writer, closer io.Closer, info udt.TraceInfo, opts Options) *Writer {
	if opts.BufferSize <= 0 {
		opts.BufferSize = defaultBufferSize
	}
	w := &Writer{
		start: info.Start, opts: opts, size: opts.BufferSize,
		free: make(chan []byte, 2), full: make(chan []byte, 2), done: make(chan struct{}),
		dst: dst, closer: closer,
	}
	// Room past size for the line that crosses it: a buffer grows only
	// for the rare long line (a NAK of many ranges), once.
	w.buf = appendHeader(make([]byte, 0, w.size+4096), info, opts)
	w.free <- make([]byte, 0, w.size+4096)
	go w.flush()
	return w
}

// Tracer returns the hooks that write the connection's events; a
// [udt.Config] Tracer returns them for the connection the Writer was
// made for. With Options.NoPackets, PacketSent and PacketReceived are nil.
func (w *Writer) Tracer() *udt.ConnTracer {
	t := &udt.ConnTracer{
		HandshakeSent:     func(e udt.TraceHandshake) { w.handshake(HandshakeSent, e) },
		HandshakeReceived: func(e udt.TraceHandshake) { w.handshake(HandshakeReceived, e) },
		PhaseChanged: func(e udt.TracePhase) {
			w.write(e.Time, &Event{Kind: Phase, From: e.From, To: e.To})
		},
		PacketsLost: func(e udt.TraceLoss) {
			w.write(e.Time, &Event{Kind: PacketsLost, First: e.First, Last: e.Last, Reason: e.Reason})
		},
		ControlSent:     func(e udt.TraceControl) { w.control(ControlSent, e) },
		ControlReceived: func(e udt.TraceControl) { w.control(ControlReceived, e) },
		MetricsUpdated: func(e udt.TraceMetrics) {
			w.write(e.Time, &Event{
				Kind: Metrics, RTT: e.RTT, RTTVar: e.RTTVar, Period: e.Period, Window: e.Window,
				FlowWindow: e.FlowWindow, InFlight: e.InFlight, RecvRate: e.RecvRate, Bandwidth: e.Bandwidth,
			})
		},
		TimedOut: func(e udt.TraceTimeout) {
			w.write(e.Time, &Event{Kind: Timeout, Count: e.Count, Unacked: e.Unacked})
		},
		Closed: w.closed,
	}
	if !w.opts.NoPackets {
		t.PacketSent = func(e udt.TracePacket) { w.packet(PacketSent, e) }
		t.PacketReceived = func(e udt.TracePacket) { w.packet(PacketReceived, e) }
	}
	return t
}

func (w *Writer) handshake(k Kind, e udt.TraceHandshake) {
	w.write(e.Time, &Event{
		Kind: k, Version: e.Version, SocketType: e.Type, ISN: e.ISN, MSS: e.MSS, FlowWindow: e.FlowWindow,
		ReqType: e.ReqType, SocketID: e.SocketID, Cookie: e.Cookie,
	})
}

func (w *Writer) packet(k Kind, e udt.TracePacket) {
	w.write(e.Time, &Event{Kind: k, Seq: e.Seq, Msg: e.Msg, Size: e.Size, Retransmit: e.Retransmit, Discarded: e.Discarded})
}

// control writes e, whose Loss is valid only during the call: it is
// encoded before the call returns.
func (w *Writer) control(k Kind, e udt.TraceControl) {
	w.write(e.Time, &Event{
		Kind: k, Type: e.Type, AckNo: e.AckNo, Seq: e.Seq, Last: e.Last, Msg: e.Msg,
		RTT: e.RTT, RTTVar: e.RTTVar, Window: e.Window, RecvRate: e.RecvRate, Bandwidth: e.Bandwidth, Loss: e.Loss,
	})
}

// closed writes the last event and hands everything to the goroutine.
func (w *Writer) closed(e udt.TraceClose) {
	ev := Event{Kind: Closed, By: e.By, Unacked: e.Unacked}
	if e.Err != nil {
		ev.Error = e.Err.Error()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.appendLocked(e.Time, &ev)
	w.endLocked()
}

// write appends event e, which happened at at.
func (w *Writer) write(at time.Time, e *Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.appendLocked(at, e)
}

// appendLocked appends e's line and hands the buffer over once it is
// full, taking the other: this waits only if the goroutine is still
// writing the other. w.mu held.
func (w *Writer) appendLocked(at time.Time, e *Event) {
	if w.ended || w.failed.Load() {
		return
	}
	e.T = at.Sub(w.start)
	w.buf = appendEvent(w.buf, e)
	if len(w.buf) >= w.size {
		w.full <- w.buf
		w.buf = <-w.free
	}
}

// endLocked hands the last lines over and lets the goroutine finish.
// w.mu held.
func (w *Writer) endLocked() {
	if w.ended {
		return
	}
	w.ended = true
	w.full <- w.buf
	w.buf = nil
	close(w.full)
}

// flush is the Writer's goroutine: it writes each full buffer and hands
// it back, closes closer after the last, and lets the buffers go.
func (w *Writer) flush() {
	defer close(w.done)
	for b := range w.full {
		if !w.failed.Load() {
			if _, err := w.dst.Write(b); err != nil {
				w.setErr(err)
			}
		}
		w.free <- b[:0] // never blocks: there are two buffers and room for two
	}
	if w.closer != nil {
		if err := w.closer.Close(); err != nil {
			w.setErr(err)
		}
	}
	for len(w.free) > 0 {
		<-w.free
	}
}

func (w *Writer) setErr(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err == nil {
		w.err = err
		w.failed.Store(true)
	}
}

// Err returns the first error writing the events (or closing a [Dir]'s
// file), nil if none. Events after it are dropped.
func (w *Writer) Err() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

// Close stops the writing of events, if the connection's Closed event
// has not, and waits until everything before is written; it returns Err.
// Events after Close are dropped. Close is idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	w.endLocked()
	w.mu.Unlock()
	<-w.done
	return w.Err()
}
