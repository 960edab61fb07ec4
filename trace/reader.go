package trace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/udt-go/udt"
)

// ErrFormat is the error, matched with [errors.Is], of a file that is not
// a udt-trace/1 file: no header, or another format's.
var ErrFormat = errors.New("trace: not a " + Format + " file")

// A LineError is a malformed line. A [Reader] can go on past it.
type LineError struct {
	Line int // from 1
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("trace: line %d: %v", e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// maxLine bounds a line: a NAK of 1,024 ranges takes about 25 KB.
const maxLine = 1 << 20

// A Reader reads a trace one event at a time, for files too large to
// hold whole. It is not safe for concurrent use.
type Reader struct {
	br     *bufio.Reader
	buf    []byte // the line read last
	header Header
	line   int // the number of the line read last
	raw    rawEvent
}

// NewReader reads the header of the trace in r. A first line that is not
// a udt-trace/1 header fails with an error matching [ErrFormat].
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{br: bufio.NewReaderSize(r, 64<<10)}
	b, err := rd.next()
	var le *LineError
	switch {
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%w: the file is empty", ErrFormat)
	case errors.As(err, &le):
		return nil, fmt.Errorf("%w: its first line: %v", ErrFormat, le.Err)
	case err != nil:
		return nil, err
	}
	if rd.header, err = parseHeader(b); err != nil {
		if errors.Is(err, ErrFormat) {
			return nil, err
		}
		return nil, rd.lineError(err)
	}
	return rd, nil
}

// Header returns the trace's header.
func (r *Reader) Header() Header { return r.header }

// Next returns the next event; io.EOF after the last. A malformed line
// fails with a [*LineError], and Next goes on with the line after it;
// another error (from the underlying reader) ends the reading.
func (r *Reader) Next() (Event, error) {
	b, err := r.next()
	if err != nil {
		return Event{}, err
	}
	e, err := r.parseEvent(b)
	if err != nil {
		return Event{}, r.lineError(err)
	}
	return e, nil
}

// next returns the next line that is not blank, without its end; a
// *LineError for a line too long; io.EOF after the last line.
func (r *Reader) next() ([]byte, error) {
	for {
		b, err := r.readLine()
		if err != nil {
			return nil, err
		}
		if b = bytes.TrimSpace(b); len(b) > 0 {
			return b, nil
		}
	}
}

// readLine reads the next line. One longer than maxLine is read to its
// end and reported.
func (r *Reader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	long := false
	for {
		chunk, err := r.br.ReadSlice('\n')
		if long = long || len(r.buf)+len(chunk) > maxLine; !long {
			r.buf = append(r.buf, chunk...)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(r.buf) == 0 && !long:
			return nil, io.EOF
		case err != nil && !errors.Is(err, io.EOF):
			return nil, fmt.Errorf("trace: after line %d: %w", r.line, err)
		}
		r.line++
		if long {
			return nil, r.lineError(fmt.Errorf("longer than %d bytes", maxLine))
		}
		return r.buf, nil
	}
}

func (r *Reader) lineError(err error) error {
	return &LineError{Line: r.line, Err: err}
}

// Read reads a whole trace. On a malformed line it returns the header
// and the events before that line, with an error naming the line: the
// last line of a trace whose program was killed may be cut short.
func Read(r io.Reader) (*Trace, error) {
	rd, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	t := &Trace{Header: rd.Header()}
	for {
		e, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return t, nil
		}
		if err != nil {
			return t, err
		}
		t.Events = append(t.Events, e)
	}
}

// ReadFile reads the trace in the file at path (see [Read]).
func ReadFile(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := Read(f)
	if err != nil {
		err = fmt.Errorf("%s: %w", path, err)
	}
	return t, err
}

// rawHeader is a header line as JSON has it.
type rawHeader struct {
	Format    *string `json:"format"`
	Role      string  `json:"role"`
	SocketID  uint32  `json:"socket_id"`
	Local     string  `json:"local"`
	Remote    string  `json:"remote"`
	Start     string  `json:"start"`
	NoPackets bool    `json:"no_packets"`
}

func parseHeader(b []byte) (Header, error) {
	var raw rawHeader
	if err := json.Unmarshal(b, &raw); err != nil || raw.Format == nil {
		return Header{}, fmt.Errorf("%w: its first line is not a header", ErrFormat)
	}
	if *raw.Format != Format {
		return Header{}, fmt.Errorf("%w: its format is %q", ErrFormat, *raw.Format)
	}
	h := Header{Format: Format, SocketID: raw.SocketID, Local: raw.Local, Remote: raw.Remote, NoPackets: raw.NoPackets}
	var ok bool
	if h.Role, ok = roleOf(raw.Role); !ok {
		return Header{}, fmt.Errorf("header: unknown role %q", raw.Role)
	}
	start, err := time.Parse(time.RFC3339Nano, raw.Start)
	if err != nil {
		return Header{}, fmt.Errorf("header: start: %w", err)
	}
	// A writer writes it back in UTC, within RFC 3339's years.
	if y := start.UTC().Year(); y < 0 || y > 9999 {
		return Header{}, fmt.Errorf("header: start %q is out of range in UTC", raw.Start)
	}
	h.Start = start
	return h, nil
}

func roleOf(s string) (udt.TraceRole, bool) {
	// 0 is "unknown": a TraceInfo made without a role.
	for _, r := range []udt.TraceRole{0, udt.RoleClient, udt.RoleServer, udt.RoleRendezvous} {
		if r.String() == s {
			return r, true
		}
	}
	return 0, false
}

// rawEvent is an event line as JSON has it: the union of the fields.
type rawEvent struct {
	T          *int64     `json:"t"`
	Ev         string     `json:"ev"`
	Version    uint32     `json:"version"`
	SocketType string     `json:"socket_type"`
	ISN        uint32     `json:"isn"`
	MSS        int        `json:"mss"`
	FlowWindow int        `json:"flow_window"`
	ReqType    int32      `json:"req_type"`
	SocketID   uint32     `json:"socket_id"`
	Cookie     uint32     `json:"cookie"`
	From       string     `json:"from"`
	To         string     `json:"to"`
	Seq        uint32     `json:"seq"`
	Msg        uint32     `json:"msg"`
	Size       int        `json:"size"`
	Retransmit bool       `json:"retransmit"`
	Discarded  string     `json:"discarded"`
	First      uint32     `json:"first"`
	Last       uint32     `json:"last"`
	Reason     string     `json:"reason"`
	Type       string     `json:"type"`
	AckNo      uint32     `json:"ack_no"`
	RTT        int64      `json:"rtt"`
	RTTVar     int64      `json:"rtt_var"`
	Window     int        `json:"window"`
	RecvRate   int        `json:"recv_rate"`
	Bandwidth  int        `json:"bandwidth"`
	Loss       [][]uint32 `json:"loss"`
	Period     int64      `json:"period"`
	InFlight   int        `json:"in_flight"`
	Count      int        `json:"count"`
	Unacked    int        `json:"unacked"`
	By         string     `json:"by"`
	Error      string     `json:"error"`
}

// parseEvent decodes an event line.
func (r *Reader) parseEvent(b []byte) (Event, error) {
	r.raw = rawEvent{}
	raw := &r.raw
	if err := json.Unmarshal(b, raw); err != nil {
		return Event{}, err
	}
	kind, ok := kindOf(raw.Ev)
	switch {
	case raw.Ev == "":
		return Event{}, errors.New(`no "ev"`)
	case !ok:
		return Event{}, fmt.Errorf("unknown event %q", raw.Ev)
	case raw.T == nil:
		return Event{}, errors.New(`no "t"`)
	}
	e := Event{
		Kind: kind, Version: raw.Version, ISN: raw.ISN, MSS: raw.MSS, FlowWindow: raw.FlowWindow,
		ReqType: raw.ReqType, SocketID: raw.SocketID, Cookie: raw.Cookie,
		Seq: raw.Seq, Msg: raw.Msg, Size: raw.Size, Retransmit: raw.Retransmit, Discarded: raw.Discarded,
		First: raw.First, Last: raw.Last, Reason: raw.Reason,
		Type: raw.Type, AckNo: raw.AckNo, Window: raw.Window, RecvRate: raw.RecvRate, Bandwidth: raw.Bandwidth,
		InFlight: raw.InFlight, Count: raw.Count, Unacked: raw.Unacked, By: raw.By, Error: raw.Error,
	}
	return e, raw.finish(&e)
}

// finish converts the fields of raw that need checking into e's.
func (raw *rawEvent) finish(e *Event) error {
	var err error
	durs := []struct {
		name string
		us   int64
		d    *time.Duration
	}{{"t", *raw.T, &e.T}, {"rtt", raw.RTT, &e.RTT}, {"rtt_var", raw.RTTVar, &e.RTTVar}, {"period", raw.Period, &e.Period}}
	for _, f := range durs {
		if *f.d, err = micros(f.name, f.us); err != nil {
			return err
		}
	}
	if raw.SocketType != "" || e.Kind == HandshakeSent || e.Kind == HandshakeReceived {
		if e.SocketType, err = socketTypeOf(raw.SocketType); err != nil {
			return err
		}
	}
	if raw.From != "" || raw.To != "" || e.Kind == Phase {
		if e.From, err = phaseOf("from", raw.From); err != nil {
			return err
		}
		if e.To, err = phaseOf("to", raw.To); err != nil {
			return err
		}
	}
	return raw.finishLoss(e)
}

func (raw *rawEvent) finishLoss(e *Event) error {
	if len(raw.Loss) == 0 {
		return nil
	}
	e.Loss = make([]udt.LossRange, len(raw.Loss))
	for i, r := range raw.Loss {
		if len(r) != 2 {
			return fmt.Errorf("loss: range %d has %d numbers, want 2", i, len(r))
		}
		e.Loss[i] = udt.LossRange{First: r[0], Last: r[1]}
	}
	return nil
}

// micros converts a field of microseconds to a Duration.
func micros(name string, us int64) (time.Duration, error) {
	if us > math.MaxInt64/1000 || us < math.MinInt64/1000 {
		return 0, fmt.Errorf("%s: %d µs is out of range", name, us)
	}
	return time.Duration(us) * time.Microsecond, nil
}

func socketTypeOf(s string) (udt.SocketType, error) {
	for _, t := range []udt.SocketType{udt.TypeStream, udt.TypeMessage} {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown socket_type %q", s)
}

func phaseOf(name, s string) (udt.ConnPhase, error) {
	for _, p := range []udt.ConnPhase{udt.PhaseConnecting, udt.PhaseConnected, udt.PhaseClosing, udt.PhaseClosed} {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%s: unknown phase %q", name, s)
}
