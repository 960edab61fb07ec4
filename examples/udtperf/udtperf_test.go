package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/leaktest"
)

// TestMain fails the run when goroutines outlive the tests, once closing
// connections have had time to wind down (see leaktest.Find).
func TestMain(m *testing.M) { leaktest.Main(m) }

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is a Go server on 127.0.0.1 run by the test.
type testServer struct {
	port int
	out  *syncBuffer
	stop func() // ends the server and waits for it
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	return startTracedServer(t, nil)
}

// startTracedServer starts a server whose connections tracer traces.
func startTracedServer(t *testing.T, tracer func(udt.TraceInfo) *udt.ConnTracer) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{port: ln.Addr().(*net.TCPAddr).Port, out: &syncBuffer{}}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, newOutput(s.out, true), tracer) }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Error("server did not stop")
			}
		})
	}
	t.Cleanup(s.stop)
	return s
}

// lines parses JSON lines, one object each, into maps.
func lines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %q", sc.Text())
		objs = append(objs, m)
	}
	return objs
}

// ofType returns the objects whose "type" is typ.
func ofType(objs []map[string]any, typ string) []map[string]any {
	var r []map[string]any
	for _, o := range objs {
		if o["type"] == typ {
			r = append(r, o)
		}
	}
	return r
}

// clientRun is one test's client output, decoded.
type clientRun struct {
	start     startReport
	intervals []intervalReport
	sum       summary
}

// decodeClient decodes a client's JSON lines, checking their order: a
// start, the intervals, a summary.
func decodeClient(t *testing.T, out string) clientRun {
	t.Helper()
	var r clientRun
	sc := bufio.NewScanner(strings.NewReader(out))
	var types []string
	for sc.Scan() {
		var head struct{ Type string }
		require.NoError(t, json.Unmarshal(sc.Bytes(), &head), "line %q", sc.Text())
		types = append(types, head.Type)
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		switch head.Type {
		case "start":
			require.NoError(t, dec.Decode(&r.start))
		case "interval":
			var iv intervalReport
			require.NoError(t, dec.Decode(&iv))
			r.intervals = append(r.intervals, iv)
		case "summary":
			require.NoError(t, dec.Decode(&r.sum))
		default:
			t.Fatalf("unknown line %q", sc.Text())
		}
	}
	require.GreaterOrEqual(t, len(types), 3, "output:\n%s", out)
	require.Equal(t, "start", types[0])
	require.Equal(t, "summary", types[len(types)-1])
	return r
}

func runGoClient(t *testing.T, port int, args ...string) clientRun {
	t.Helper()
	o, err := parseArgs(append([]string{"-c", "127.0.0.1", "-p", fmt.Sprint(port), "-json"}, args...))
	require.NoError(t, err)
	dir, err := openTrace(o)
	require.NoError(t, err)
	var out syncBuffer
	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(o.secs*float64(time.Second))+resultTimeout+30*time.Second)
	defer cancel()
	_, err = runClient(ctx, o, newOutput(&out, true), tracerOf(dir))
	require.NoError(t, err, "output:\n%s", out.String())
	if dir != nil {
		require.NoError(t, dir.Close())
	}
	return decodeClient(t, out.String())
}

// checkRun checks what holds for every successful test: the server got
// all that was sent, at a goodput above zero, and the figures add up.
func checkRun(t *testing.T, r clientRun, streams, msg int) {
	t.Helper()
	s := r.sum
	require.Equal(t, streams, s.Streams)
	require.Equal(t, msg, s.MsgSize)
	require.Equal(t, modeName(msg), s.Mode)
	require.Greater(t, s.Bytes, int64(0))
	require.Equal(t, s.BytesSent, s.Bytes, "the server received what was sent")
	require.Greater(t, s.GoodputMbps, 0.0)
	require.Greater(t, s.Duration, 0.0)
	require.Greater(t, s.ClientCPUPerGB, 0.0)
	require.Greater(t, s.ServerCPUPerGB, 0.0)
	require.GreaterOrEqual(t, s.RTTms, 0.0)
	// The intervals count what the total counts, up to the last report.
	var ivRetrans int64
	for _, iv := range r.intervals {
		ivRetrans += iv.Retrans
	}
	require.LessOrEqual(t, ivRetrans, s.Retrans, "retransmissions in the intervals, and in all")
	require.Len(t, s.StreamBytes, streams)
	require.Len(t, s.StreamGoodput, streams)
	var sum int64
	for i, b := range s.StreamBytes {
		require.Greater(t, b, int64(0), "stream %d", i)
		sum += b
	}
	require.Equal(t, s.Bytes, sum)
	require.Greater(t, s.Fairness, 0.0)
	require.LessOrEqual(t, s.Fairness, 1.0)
	if msg > 0 {
		require.Greater(t, s.Messages, int64(0))
		require.Equal(t, s.MessagesSent, s.Messages)
		require.Equal(t, s.Messages*int64(msg), s.Bytes, "whole messages of -msg bytes")
		require.Greater(t, s.MsgsPerSec, 0.0)
	} else {
		require.Zero(t, s.Messages)
	}
	require.NotEmpty(t, r.intervals)
	var good float64
	for _, iv := range r.intervals {
		require.Len(t, iv.StreamGoodput, streams)
		require.Less(t, iv.Start, iv.End)
		good += iv.GoodputMbps
	}
	require.Greater(t, good, 0.0, "the intervals saw data acknowledged")
}

func TestLoopback(t *testing.T) {
	srv := startServer(t)
	// One server for all: it takes tests one after another, of either type.
	t.Run("stream", func(t *testing.T) {
		r := runGoClient(t, srv.port, "-t", "1")
		checkRun(t, r, 1, 0)
		require.Equal(t, "go", r.sum.Server)
		require.Equal(t, "go", r.start.Server)
		require.Len(t, r.intervals, 1)
	})
	t.Run("message", func(t *testing.T) {
		r := runGoClient(t, srv.port, "-t", "1", "-msg", "1000")
		checkRun(t, r, 1, 1000)
	})
	t.Run("parallel", func(t *testing.T) {
		r := runGoClient(t, srv.port, "-t", "1.5", "-P", "2")
		checkRun(t, r, 2, 0)
		require.Len(t, r.intervals, 2) // 0-1 and 1-1.5
		require.Equal(t, 1.5, r.intervals[1].End)
	})
	t.Run("parallel message, small MSS", func(t *testing.T) {
		r := runGoClient(t, srv.port, "-t", "1", "-P", "2", "-msg", "3000", "-mss", "1000")
		checkRun(t, r, 2, 3000)
		require.Equal(t, 1000, r.sum.MSS)
	})
	srv.stop()
	tests := ofType(lines(t, srv.out.String()), "test")
	require.Len(t, tests, 4, "server output:\n%s", srv.out.String())
	require.Equal(t, "stream", tests[0]["mode"])
	require.Equal(t, "message", tests[1]["mode"])
	require.EqualValues(t, 2, tests[2]["streams"])
	require.Empty(t, ofType(lines(t, srv.out.String()), "error"))
}

func TestServerBusy(t *testing.T) {
	srv := startServer(t)
	// A client that has its READY holds the server.
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", srv.port))
	require.NoError(t, err)
	defer c.Close()
	ct := newControl(c)
	require.NoError(t, ct.write(params{streams: 1, secs: 1, mss: 1500, impl: "test"}.line()))
	_, err = ct.expect("READY", time.Now().Add(ctlTimeout))
	require.NoError(t, err)

	o, err := parseArgs([]string{"-c", "127.0.0.1", "-p", fmt.Sprint(srv.port), "-t", "1"})
	require.NoError(t, err)
	var out syncBuffer
	_, err = runClient(t.Context(), o, newOutput(&out, false), nil)
	require.ErrorContains(t, err, "busy")
}

func TestBadParams(t *testing.T) {
	srv := startServer(t)
	for _, line := range []string{
		"UDTPERF version=2 streams=1 secs=1 mss=1500 msg=0\n",
		"UDTPERF version=1 streams=0 secs=1 mss=1500 msg=0\n",
		"UDTPERF version=1 streams=1 secs=0 mss=1500 msg=0\n",
		"UDTPERF version=1 streams=1 secs=1 mss=20 msg=0\n",
		"UDTPERF version=1 streams=1 secs=1 mss=1500\n",
		"HELLO\n",
	} {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", srv.port))
		require.NoError(t, err)
		ct := newControl(c)
		require.NoError(t, ct.write(line))
		m, err := ct.read(time.Now().Add(ctlTimeout))
		if err == nil {
			require.Equal(t, "ERROR", m.verb, "answer to %q", line)
		}
		c.Close()
	}
	// The server still takes a good test.
	checkRun(t, runGoClient(t, srv.port, "-t", "0.5"), 1, 0)
}

func TestParseArgs(t *testing.T) {
	o, err := parseArgs([]string{"-c", "example.net"})
	require.NoError(t, err)
	require.Equal(t, options{host: "example.net", port: 5201, secs: 10, streams: 1, mss: 1500, tracePackets: true}, o)
	o, err = parseArgs([]string{"-s", "-p", "0", "-json"})
	require.NoError(t, err)
	require.True(t, o.server && o.json)

	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "one of -s"},
		{[]string{"-s", "-c", "h"}, "-s and -c"},
		{[]string{"-c", ""}, "-c needs a host"},
		{[]string{"-c", "h", "-p", "0"}, "-p 0"},
		{[]string{"-s", "-p", "65536"}, "-p 65536"},
		{[]string{"-c", "h", "-t", "0"}, "-t 0"},
		{[]string{"-c", "h", "-t", "x"}, "-t"},
		{[]string{"-c", "h", "-P", "0"}, "-P 0"},
		{[]string{"-c", "h", "-P", "129"}, "-P 129"},
		{[]string{"-c", "h", "-mss", "75"}, "-mss 75"},
		{[]string{"-c", "h", "-msg", "-1"}, "-msg -1"},
		{[]string{"-c", "h", "-msg", "8388609"}, "-msg 8388609"},
		{[]string{"-s", "-t", "5"}, "-t is a client flag"},
		{[]string{"-c", "h", "extra"}, `unexpected argument "extra"`},
		{[]string{"-s", "-trace-packets=false"}, "-trace-packets needs -trace"},
		{[]string{"-x"}, "-x"},
	} {
		_, err := parseArgs(c.args)
		require.ErrorContains(t, err, c.want, "args %q", c.args)
	}
}

func TestControlMessages(t *testing.T) {
	m, err := parseMessage("SENT index=1 bytes=42 msgs=0\n")
	require.NoError(t, err)
	require.Equal(t, "SENT", m.verb)
	n, err := m.int("bytes", 0, 100)
	require.NoError(t, err)
	require.EqualValues(t, 42, n)
	_, err = m.int("bytes", 0, 10)
	require.Error(t, err)
	_, err = m.int("missing", 0, 10)
	require.Error(t, err)

	m, err = parseMessage("ERROR reason=busy with another test\r\n")
	require.NoError(t, err)
	require.Equal(t, "busy with another test", m.fields["reason"])

	_, err = parseMessage("SENT index\n")
	require.Error(t, err)
	_, err = parseMessage("\n")
	require.Error(t, err)

	id, idx, ok := parseHello(hello(0xdeadbeef, 7))
	require.True(t, ok)
	require.Equal(t, uint32(0xdeadbeef), id)
	require.Equal(t, 7, idx)
	_, _, ok = parseHello([]byte("UPRF1234"))
	require.False(t, ok)
}

func TestControlLineTooLong(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _, _ = a.Write(bytes.Repeat([]byte("x"), 2*maxLine)) }()
	_, err := newControl(b).read(time.Now().Add(ctlTimeout))
	require.ErrorContains(t, err, "longer than")
	require.False(t, errors.Is(err, os.ErrDeadlineExceeded))
}

// With -transport both ends carry UDT through a udt.Transport on sockets
// udtperf opened, and report themselves as gotr.
func TestLoopbackTransport(t *testing.T) {
	useTransport, impl = true, "gotr"
	defer func() { useTransport, impl = false, "go" }()
	srv := startServer(t)
	for _, args := range [][]string{{"-t", "1"}, {"-t", "1", "-P", "2"}} {
		r := runGoClient(t, srv.port, args...)
		checkRun(t, r, r.sum.Streams, 0)
		require.Equal(t, "gotr", r.sum.Client)
		require.Equal(t, "gotr", r.sum.Server)
	}
	srv.stop()
	require.Empty(t, ofType(lines(t, srv.out.String()), "error"))
	_, err := parseArgs([]string{"-c", "127.0.0.1", "-transport"})
	require.NoError(t, err)
}

// A server whose UDP port is taken fails at once, before it says it is
// listening.
func TestServerUDPPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	taken, err := net.ListenPacket("udp", ln.Addr().String())
	require.NoError(t, err)
	defer taken.Close()
	var out syncBuffer
	err = serve(t.Context(), ln, newOutput(&out, true), nil)
	require.ErrorContains(t, err, "UDP port")
	require.NotContains(t, out.String(), "listening")
}
