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
// A Writer costs little while its connection is quiet: its buffer starts
// at 4 KiB and grows, up to Options.BufferSize, only while it fills
// within a second; the goroutine runs only while there is something to
// write, and exits, letting its buffers go, once a second has passed
// without a full buffer (the package doc has the figures).
//
// A Writer is safe for concurrent use: its hooks are called one at a time
// (they serve one connection), Close and Err from any goroutine.
type Writer struct {
	start time.Time
	opts  Options
	size  int // hand a buffer over once it holds this many bytes
	max   int // a buffer grows to at most this capacity

	mu       sync.Mutex
	buf      []byte    // lines not yet handed over; guarded by mu
	first    time.Time // when buf's first line happened; guarded by mu
	spare    []byte    // a written buffer kept for the next; guarded by mu
	pending  [][]byte  // handed over, oldest first: at most 2; guarded by mu
	flushing bool      // the goroutine runs; guarded by mu
	ended    bool      // no more events; guarded by mu

	kick    chan struct{} // a buffer was handed over, or the end came; capacity 1
	written chan struct{} // the goroutine wrote a buffer; capacity 1
	done    chan struct{} // closed when everything is written after the end
	dst     io.Writer
	closer  io.Closer // closed after the last write (a Dir's file); may be nil

	failed atomic.Bool // err is set: events are no longer encoded
	errMu  sync.Mutex
	err    error // the first error writing or closing; guarded by errMu
}

const (
	// startBuffer is the capacity of a Writer's first buffer, and of the
	// first after the goroutine let its buffers go.
	startBuffer = 4 << 10
	// lineRoom is the room a line needs: a buffer with less is handed
	// over or grown (a longer line, a NAK of many ranges, grows it by
	// appending).
	lineRoom = 512
	// growWithin is how fast a buffer must fill to grow: a connection
	// that takes longer hands over small buffers instead.
	growWithin = time.Second
	// flushIdle is how long the goroutine waits for another full buffer
	// before it writes the partial one, lets the buffers go and exits.
	flushIdle = time.Second
)

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
		// Room past size for the line that crosses it.
		max:     opts.BufferSize + 4096,
		pending: make([][]byte, 0, 2),
		kick:    make(chan struct{}, 1), written: make(chan struct{}, 1), done: make(chan struct{}),
		dst: dst, closer: closer,
	}
	w.buf = appendHeader(make([]byte, 0, min(startBuffer, w.max)), info, opts)
	w.first = info.Start
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
// full, or once it is out of room and filled too slowly to grow. w.mu
// held.
func (w *Writer) appendLocked(at time.Time, e *Event) {
	if w.ended || w.failed.Load() {
		return
	}
	if w.buf == nil {
		w.buf, w.spare = w.spare, nil
		if w.buf == nil {
			w.buf = make([]byte, 0, min(startBuffer, w.max))
		}
	}
	if len(w.buf) == 0 {
		w.first = at
	}
	e.T = at.Sub(w.start)
	w.buf = appendEvent(w.buf, e)
	switch {
	case len(w.buf) >= w.size:
		w.handOverLocked()
	case cap(w.buf)-len(w.buf) < lineRoom:
		if cap(w.buf) >= w.max || at.Sub(w.first) >= growWithin {
			w.handOverLocked()
			return
		}
		b := make([]byte, len(w.buf), min(2*cap(w.buf), w.max))
		copy(b, w.buf)
		w.buf = b
	}
}

// handOverLocked hands buf to the goroutine, starting it if need be.
// It waits, w.mu released, while the goroutine is still writing the
// buffer handed over before: then the file is a buffer behind. w.mu held.
func (w *Writer) handOverLocked() {
	for len(w.pending) > 0 {
		w.mu.Unlock()
		<-w.written
		w.mu.Lock()
		if w.ended || len(w.buf) == 0 { // Close or the goroutine took buf meanwhile
			return
		}
	}
	w.pending = append(w.pending, w.buf)
	w.buf, w.spare = w.spare, nil
	w.wakeLocked()
}

// wakeLocked tells the goroutine there is something to write, or starts
// it. w.mu held.
func (w *Writer) wakeLocked() {
	if w.flushing {
		select {
		case w.kick <- struct{}{}:
		default:
		}
		return
	}
	w.flushing = true
	go w.flush()
}

// endLocked hands the last lines over and lets the goroutine finish.
// w.mu held.
func (w *Writer) endLocked() {
	if w.ended {
		return
	}
	w.ended = true
	if len(w.buf) > 0 {
		w.pending = append(w.pending, w.buf) // a hook waiting in handOverLocked leaves room
	}
	w.buf, w.spare = nil, nil
	w.wakeLocked()
}

// flush is the Writer's goroutine while there is something to write. It
// writes each buffer handed over and keeps one for the hooks. After
// flushIdle without another it writes the partial buffer too and exits,
// letting its buffers go. After the end it closes closer and done.
func (w *Writer) flush() {
	idle := time.NewTimer(flushIdle)
	defer idle.Stop()
	quiet := false // flushIdle passed without a buffer handed over
	for {
		w.mu.Lock()
		partial := len(w.pending) == 0 && quiet && len(w.buf) > 0
		if partial {
			w.pending = append(w.pending, w.buf)
			w.buf = nil
		}
		if len(w.pending) == 0 {
			switch {
			case w.ended:
				w.mu.Unlock()
				w.finish()
				return
			case quiet:
				w.flushing, w.spare = false, nil
				w.mu.Unlock()
				return
			}
			w.mu.Unlock()
			idle.Reset(flushIdle)
			select {
			case <-w.kick:
			case <-idle.C:
				quiet = true
			}
			continue
		}
		b := w.pending[0]
		w.mu.Unlock()
		if !w.failed.Load() {
			if _, err := w.dst.Write(b); err != nil {
				w.setErr(err)
			}
		}
		quiet = quiet && partial // a buffer handed over: not quiet after all
		w.mu.Lock()
		n := copy(w.pending, w.pending[1:])
		w.pending[n] = nil
		w.pending = w.pending[:n]
		if !w.ended && !quiet && w.spare == nil {
			w.spare = b[:0]
		}
		w.mu.Unlock()
		select {
		case w.written <- struct{}{}:
		default:
		}
	}
}

// finish closes closer after the last write, and done.
func (w *Writer) finish() {
	if w.closer != nil {
		if err := w.closer.Close(); err != nil {
			w.setErr(err)
		}
	}
	close(w.done)
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
