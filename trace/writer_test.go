package trace

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/leaktest"
)

// TestMain fails the run when goroutines outlive the tests: a Writer's
// goroutine ends with its trace.
func TestMain(m *testing.M) { leaktest.Main(m) }

var (
	testStart = time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC)
	testInfo  = udt.TraceInfo{
		Role: udt.RoleClient, SocketID: 3120573629, Start: testStart,
		LocalAddr:  &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9000},
		RemoteAddr: &net.UDPAddr{IP: net.IPv6loopback, Port: 5201},
	}
)

// at is the time of an event us microseconds and 789 ns after testStart:
// the file keeps whole microseconds.
func at(us int64) time.Time {
	return testStart.Add(time.Duration(us)*time.Microsecond + 789)
}

// callEvery calls each hook of t once with every field set, and some
// hooks again with their optional fields zero; it returns the events a
// reader should find, in order.
func callEvery(t *udt.ConnTracer) []Event {
	hs := udt.TraceHandshake{Time: at(1), Version: 4, Type: udt.TypeMessage, ISN: 77, MSS: 1500,
		FlowWindow: 25600, ReqType: -1, SocketID: 42, Cookie: 0xdeadbeef}
	t.HandshakeSent(hs)
	hs.Time, hs.Type, hs.ReqType = at(2), udt.TypeStream, 1002
	t.HandshakeReceived(hs)
	t.PhaseChanged(udt.TracePhase{Time: at(3), From: udt.PhaseConnecting, To: udt.PhaseConnected})
	t.PacketSent(udt.TracePacket{Time: at(4), Seq: 1<<31 - 1, Msg: 1<<29 - 1, Size: 1456, Retransmit: true})
	t.PacketSent(udt.TracePacket{Time: at(5)})
	t.PacketReceived(udt.TracePacket{Time: at(6), Seq: 9, Msg: 3, Size: 100, Retransmit: true, Discarded: "duplicate"})
	t.PacketsLost(udt.TraceLoss{Time: at(7), First: 10, Last: 20, Reason: "nak"})
	loss := []udt.LossRange{{First: 10, Last: 20}, {First: 30, Last: 30}}
	t.ControlSent(udt.TraceControl{Time: at(8), Type: "nak", Loss: loss})
	ack := udt.TraceControl{Time: at(9), Type: "ack", AckNo: 5, Seq: 100, RTT: 20123 * time.Microsecond,
		RTTVar: 5 * time.Millisecond, Window: 8192, RecvRate: 80000, Bandwidth: 90000}
	t.ControlReceived(ack)
	t.ControlSent(udt.TraceControl{Time: at(10), Type: "drop", Seq: 40, Last: 45, Msg: 7})
	t.MetricsUpdated(udt.TraceMetrics{Time: at(11), RTT: 21 * time.Millisecond, RTTVar: 2 * time.Millisecond,
		Period: 11500 * time.Nanosecond, Window: 1000, FlowWindow: 8000, InFlight: 300, RecvRate: 70000, Bandwidth: 95000})
	t.TimedOut(udt.TraceTimeout{Time: at(12), Count: 2, Unacked: 17})
	t.PhaseChanged(udt.TracePhase{Time: at(13), From: udt.PhaseConnected, To: udt.PhaseClosed})
	t.Closed(udt.TraceClose{Time: at(14), By: "error", Err: errors.New("udt: \"lost\"\n\tbadly é \xff"), Unacked: 3})

	hsWant := Event{T: 1 * time.Microsecond, Kind: HandshakeSent, Version: 4, SocketType: udt.TypeMessage, ISN: 77,
		MSS: 1500, FlowWindow: 25600, ReqType: -1, SocketID: 42, Cookie: 0xdeadbeef}
	hsRecv := hsWant
	hsRecv.T, hsRecv.Kind, hsRecv.SocketType, hsRecv.ReqType = 2*time.Microsecond, HandshakeReceived, udt.TypeStream, 1002
	us := func(n int64) time.Duration { return time.Duration(n) * time.Microsecond }
	return []Event{
		hsWant, hsRecv,
		{T: us(3), Kind: Phase, From: udt.PhaseConnecting, To: udt.PhaseConnected},
		{T: us(4), Kind: PacketSent, Seq: 1<<31 - 1, Msg: 1<<29 - 1, Size: 1456, Retransmit: true},
		{T: us(5), Kind: PacketSent},
		{T: us(6), Kind: PacketReceived, Seq: 9, Msg: 3, Size: 100, Retransmit: true, Discarded: "duplicate"},
		{T: us(7), Kind: PacketsLost, First: 10, Last: 20, Reason: "nak"},
		{T: us(8), Kind: ControlSent, Type: "nak", Loss: loss},
		{T: us(9), Kind: ControlReceived, Type: "ack", AckNo: 5, Seq: 100, RTT: us(20123), RTTVar: us(5000),
			Window: 8192, RecvRate: 80000, Bandwidth: 90000},
		{T: us(10), Kind: ControlSent, Type: "drop", Seq: 40, Last: 45, Msg: 7},
		{T: us(11), Kind: Metrics, RTT: us(21000), RTTVar: us(2000), Period: us(11), Window: 1000, FlowWindow: 8000,
			InFlight: 300, RecvRate: 70000, Bandwidth: 95000},
		{T: us(12), Kind: Timeout, Count: 2, Unacked: 17},
		{T: us(13), Kind: Phase, From: udt.PhaseConnected, To: udt.PhaseClosed},
		{T: us(14), Kind: Closed, By: "error", Error: "udt: \"lost\"\n\tbadly é \ufffd", Unacked: 3},
	}
}

// TestWriterRoundTrip writes every kind of event with every field set
// and reads back the same values.
func TestWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, testInfo, Options{})
	want := callEvery(w.Tracer())
	require.NoError(t, w.Close())

	tr, err := Read(&buf)
	require.NoError(t, err)
	require.Equal(t, Header{Format: Format, Role: udt.RoleClient, SocketID: 3120573629,
		Local: "127.0.0.1:9000", Remote: "[::1]:5201", Start: testStart}, tr.Header)
	require.Equal(t, want, tr.Events)
}

// TestWriterLines pins the text of a few lines, as docs/trace-format.md
// shows them.
func TestWriterLines(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, testInfo, Options{})
	ct := w.Tracer()
	ct.PacketSent(udt.TracePacket{Time: at(1520), Seq: 8812, Msg: 3, Size: 1456, Retransmit: true})
	ct.PacketReceived(udt.TracePacket{Time: at(1521), Seq: 8813, Size: 1456})
	ct.PhaseChanged(udt.TracePhase{Time: at(-2), To: udt.PhaseConnected})
	ct.ControlReceived(udt.TraceControl{Time: at(1600), Type: "nak", Loss: []udt.LossRange{{First: 1, Last: 5}, {First: 9, Last: 9}}})
	ct.Closed(udt.TraceClose{Time: at(2000), By: "local"})
	require.NoError(t, w.Close())
	require.Equal(t, `{"format":"udt-trace/1","role":"client","socket_id":3120573629,"local":"127.0.0.1:9000","remote":"[::1]:5201","start":"2026-01-02T15:04:05.123456789Z"}
{"t":1520,"ev":"packet_sent","seq":8812,"msg":3,"size":1456,"retransmit":true}
{"t":1521,"ev":"packet_received","seq":8813,"size":1456}
{"t":-1,"ev":"phase","from":"connecting","to":"connected"}
{"t":1600,"ev":"control_received","type":"nak","loss":[[1,5],[9,9]]}
{"t":2000,"ev":"closed","by":"local"}
`, buf.String())
}

// TestWriterNoPackets leaves out the data packets and keeps the rest.
func TestWriterNoPackets(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, testInfo, Options{NoPackets: true})
	ct := w.Tracer()
	require.Nil(t, ct.PacketSent)
	require.Nil(t, ct.PacketReceived)
	ct.PacketSent = func(udt.TracePacket) {} // the library's no-op
	ct.PacketReceived = func(udt.TracePacket) {}
	want := callEvery(ct)
	require.NoError(t, w.Close())
	tr, err := Read(&buf)
	require.NoError(t, err)
	require.True(t, tr.Header.NoPackets)
	var rest []Event
	for _, e := range want {
		if e.Kind != PacketSent && e.Kind != PacketReceived {
			rest = append(rest, e)
		}
	}
	require.Equal(t, rest, tr.Events)
}

// slowWriter takes a moment over each write and keeps what it got.
type slowWriter struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
	fail   error
}

func (s *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(100 * time.Microsecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.fail != nil {
		return 0, s.fail
	}
	return s.b.Write(p)
}

// TestWriterBuffers fills many small buffers while the file is slow:
// every line arrives, in order.
func TestWriterBuffers(t *testing.T) {
	var sw slowWriter
	w := NewWriter(&sw, testInfo, Options{BufferSize: 256})
	ct := w.Tracer()
	const n = 5000
	for i := range n {
		ct.PacketSent(udt.TracePacket{Time: at(int64(i)), Seq: uint32(i), Size: 1456})
	}
	require.NoError(t, w.Close())
	require.NoError(t, w.Close(), "Close is idempotent")
	ct.PacketSent(udt.TracePacket{Time: at(n), Seq: n}) // after Close: dropped
	require.Greater(t, sw.writes, n*60/256/2)
	tr, err := Read(&sw.b)
	require.NoError(t, err)
	require.Len(t, tr.Events, n)
	for i, e := range tr.Events {
		require.Equal(t, uint32(i), e.Seq)
	}
}

// TestWriterError: a failing file stops the writing, not the hooks.
func TestWriterError(t *testing.T) {
	sw := slowWriter{fail: errors.New("disk full")}
	w := NewWriter(&sw, testInfo, Options{BufferSize: 128})
	ct := w.Tracer()
	for i := range 1000 {
		ct.PacketSent(udt.TracePacket{Time: at(int64(i)), Seq: uint32(i)})
	}
	require.EqualError(t, w.Close(), "disk full")
	require.EqualError(t, w.Err(), "disk full")
	require.Less(t, sw.writes, 50, "the writes stopped at the first error")
}

// TestWriterCloseWhileTracing closes the Writer while the connection's
// hooks run on another goroutine.
func TestWriterCloseWhileTracing(t *testing.T) {
	var sw slowWriter
	w := NewWriter(&sw, testInfo, Options{BufferSize: 512})
	ct := w.Tracer()
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 20000 {
			ct.PacketReceived(udt.TracePacket{Time: at(int64(i)), Seq: uint32(i), Size: 1})
		}
		ct.Closed(udt.TraceClose{Time: at(20000), By: "peer"})
	})
	time.Sleep(time.Millisecond)
	require.NoError(t, w.Close())
	wg.Wait()
	tr, err := Read(&sw.b)
	require.NoError(t, err)
	for i, e := range tr.Events {
		require.Equal(t, uint32(i), e.Seq, "the events before Close, in order")
	}
}

// TestWriterAllocs: the hooks allocate nothing once the buffers exist,
// buffers handed over included.
func TestWriterAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	w := NewWriter(discard{}, testInfo, Options{BufferSize: 4096})
	ct := w.Tracer()
	loss := []udt.LossRange{{First: 10, Last: 20}, {First: 30, Last: 30}}
	now := at(1000)
	hooks := func() {
		ct.PacketSent(udt.TracePacket{Time: now, Seq: 123456, Msg: 77, Size: 1456, Retransmit: true})
		ct.PacketReceived(udt.TracePacket{Time: now, Seq: 123456, Msg: 77, Size: 1456, Discarded: "duplicate"})
		ct.PacketsLost(udt.TraceLoss{Time: now, First: 1, Last: 9, Reason: "gap"})
		ct.ControlSent(udt.TraceControl{Time: now, Type: "nak", Loss: loss})
		ct.ControlReceived(udt.TraceControl{Time: now, Type: "ack", AckNo: 5, Seq: 100, RTT: time.Millisecond, Window: 99})
		ct.MetricsUpdated(udt.TraceMetrics{Time: now, RTT: time.Millisecond, Period: 10 * time.Microsecond, InFlight: 5})
		ct.TimedOut(udt.TraceTimeout{Time: now, Count: 1, Unacked: 4})
		ct.PhaseChanged(udt.TracePhase{Time: now, To: udt.PhaseConnected})
		ct.HandshakeSent(udt.TraceHandshake{Time: now, Version: 4, MSS: 1500, ReqType: -1})
	}
	require.Zero(t, testing.AllocsPerRun(2000, hooks), "allocations per round of 9 events")
	require.NoError(t, w.Close())
}

// held returns the capacity of the buffers w holds and whether its
// goroutine runs.
func (w *Writer) held() (size int, running bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	size = cap(w.buf) + cap(w.spare)
	for _, b := range w.pending {
		size += cap(b)
	}
	return size, w.flushing
}

// TestWriterIdleCost: a thousand Writers of connections that made their
// handshake and went quiet hold no goroutine and under 8 KiB each, all
// counted (two 68 KiB buffers and a goroutine each before).
func TestWriterIdleCost(t *testing.T) {
	const n = 1000
	goroutines := runtime.NumGoroutine()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ws := make([]*Writer, n)
	for i := range ws {
		ws[i] = NewWriter(discard{}, testInfo, Options{})
		ct := ws[i].Tracer()
		ct.HandshakeSent(udt.TraceHandshake{Time: at(1), Version: 4, MSS: 1500, FlowWindow: 25600, ReqType: 1})
		ct.HandshakeReceived(udt.TraceHandshake{Time: at(2), Version: 4, MSS: 1500, FlowWindow: 25600, ReqType: -1})
		ct.PhaseChanged(udt.TracePhase{Time: at(3), From: udt.PhaseConnecting, To: udt.PhaseConnected})
		ct.ControlSent(udt.TraceControl{Time: at(1000003), Type: "keep-alive"})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d idle Writers: %d bytes of heap, %d each", n, heap, heap/n)
	require.Less(t, heap, int64(n*8<<10), "heap held by idle Writers")
	// At most as many as before: an earlier test's may be winding down.
	require.LessOrEqual(t, runtime.NumGoroutine(), goroutines, "goroutines of idle Writers")
	for _, w := range ws {
		size, running := w.held()
		require.LessOrEqual(t, size, startBuffer)
		require.False(t, running)
	}
	for _, w := range ws {
		require.NoError(t, w.Close())
	}
}

// TestWriterLetsBuffersGo: a burst grows the buffer and starts the
// goroutine; a second without a full buffer writes the rest out, lets
// the buffers go and ends the goroutine; the next burst starts again.
func TestWriterLetsBuffersGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw, w, ct := newBubbleWriter()
		seq := uint32(0)
		burst := func(n int) {
			for range n {
				ct.PacketSent(udt.TracePacket{Time: time.Now(), Seq: seq, Size: 1456})
				seq++
			}
		}
		burst(5000) // about 5 buffers of 64 KiB
		size, running := w.held()
		require.True(t, running)
		require.Greater(t, size, defaultBufferSize)
		require.LessOrEqual(t, size, 3*(defaultBufferSize+4096))

		time.Sleep(flushIdle + time.Millisecond)
		synctest.Wait()
		size, running = w.held()
		require.False(t, running, "the goroutine ends once quiet")
		require.Zero(t, size, "the buffers are let go")
		sw.mu.Lock()
		tr, err := Read(bytes.NewReader(sw.b.Bytes()))
		sw.mu.Unlock()
		require.NoError(t, err)
		require.Len(t, tr.Events, int(seq), "the partial buffer is written out too")

		burst(20)
		size, running = w.held()
		require.False(t, running)
		require.Equal(t, startBuffer, size, "starts small again")
		burst(5000)
		require.NoError(t, w.Close())
		tr, err = Read(&sw.b)
		require.NoError(t, err)
		require.Len(t, tr.Events, int(seq))
		for i, e := range tr.Events {
			require.Equal(t, uint32(i), e.Seq)
		}
	})
}

// TestWriterTrickle: a connection whose events come slowly hands over
// small buffers instead of growing one to 64 KiB.
func TestWriterTrickle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw, w, ct := newBubbleWriter()
		const n = 6000 // 10 minutes of one event each 100 ms, 400 KB
		for i := range n {
			ct.ControlSent(udt.TraceControl{Time: time.Now(), Type: "ack", AckNo: uint32(i), Seq: uint32(i), RTT: time.Millisecond})
			size, _ := w.held()
			require.LessOrEqual(t, size, 3*startBuffer, "the one filling, one being written, one kept")
			time.Sleep(100 * time.Millisecond)
		}
		require.NoError(t, w.Close())
		tr, err := Read(&sw.b)
		require.NoError(t, err)
		require.Len(t, tr.Events, n)
	})
}

// discard is io.Discard without its ReaderFrom.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestAppendString matches encoding/json's reading of what it writes.
func TestAppendString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{"q\"b\\s/", `"q\"b\\s/"`},
		{"\n\t\r\x00\x1f", `"\n\t\u000d\u0000\u001f"`},
		{"é€😀", `"é€😀"`},
		{"a\xffb\xc3", `"a\ufffdb\ufffd"`},
	} {
		require.Equal(t, c.want, string(appendString(nil, c.in)), "%q", c.in)
	}
	require.False(t, strings.ContainsRune(string(appendString(nil, "\x7f")), '\\'), "DEL needs no escape")
}

func BenchmarkWriter(b *testing.B) {
	now := at(1000)
	for _, c := range []struct {
		name string
		call func(*udt.ConnTracer)
	}{
		{"packet", func(ct *udt.ConnTracer) {
			ct.PacketSent(udt.TracePacket{Time: now, Seq: 123456789, Msg: 77, Size: 1456})
		}},
		{"ack", func(ct *udt.ConnTracer) {
			ct.ControlReceived(udt.TraceControl{Time: now, Type: "ack", AckNo: 5, Seq: 123456789,
				RTT: 20 * time.Millisecond, RTTVar: time.Millisecond, Window: 8192, RecvRate: 80000, Bandwidth: 90000})
		}},
		{"metrics", func(ct *udt.ConnTracer) {
			ct.MetricsUpdated(udt.TraceMetrics{Time: now, RTT: 20 * time.Millisecond, RTTVar: time.Millisecond,
				Period: 11 * time.Microsecond, Window: 1000, FlowWindow: 8000, InFlight: 300, RecvRate: 70000})
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			w := NewWriter(discard{}, testInfo, Options{})
			ct := w.Tracer()
			b.ReportAllocs()
			for b.Loop() {
				c.call(ct)
			}
			b.StopTimer()
			require.NoError(b, w.Close())
		})
	}
}

// newBubbleWriter returns a Writer with default options on a slowWriter,
// its trace starting now (in a synctest bubble, the bubble's clock), and
// its tracer.
func newBubbleWriter() (*slowWriter, *Writer, *udt.ConnTracer) {
	sw := &slowWriter{}
	info := testInfo
	info.Start = time.Now()
	w := NewWriter(sw, info, Options{})
	return sw, w, w.Tracer()
}
