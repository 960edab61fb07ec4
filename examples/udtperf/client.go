package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udt-go/udt"
)

// clientLinger bounds each stream's Close: by then the server has read
// everything, so only the last acknowledgements can be outstanding.
const clientLinger = 5 * time.Second

// clientStream is one UDT connection of a test.
type clientStream struct {
	c       *udt.Conn
	sock    *ownSocket   // with -transport: c's socket, closed after c
	written atomic.Int64 // bytes written after the hello
	msgs    atomic.Int64 // messages written
	err     error        // the sender's, if it stopped early; owned by it until it returns
}

// acked returns the bytes written that the receiver has acknowledged, and
// the connection's figures.
func (s *clientStream) acked() (int64, udt.Stats) {
	w := s.written.Load() // before Stats: what it counts as unacknowledged was written by now
	st := s.c.Stats()
	return w - int64(st.SendBufferBytes), st
}

// send writes until end or a failure.
func (s *clientStream) send(buf []byte, message bool, end time.Time) {
	_ = s.c.SetWriteDeadline(end)
	for time.Now().Before(end) {
		n, err := s.c.Write(buf)
		s.written.Add(int64(n))
		if message && n == len(buf) {
			s.msgs.Add(1)
		}
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				s.err = err
			}
			return
		}
	}
}

// runClient runs one test against the server in o and prints its reports;
// tracer, if not nil, traces its connections.
func runClient(ctx context.Context, o options, out *output, tracer func(udt.TraceInfo) *udt.ConnTracer) (summary, error) {
	addr := net.JoinHostPort(o.host, strconv.Itoa(o.port))
	ctlConn, err := dialControl(ctx, addr)
	if err != nil {
		return summary{}, err
	}
	defer ctlConn.Close()
	// Ending ctx ends the test: control reads and writes fail at once.
	stop := context.AfterFunc(ctx, func() { _ = ctlConn.SetDeadline(time.Now()) })
	defer stop()
	ct := newControl(ctlConn)
	id, err := requestTest(ct, o, out)
	if err != nil {
		return summary{}, err
	}

	cfg := udt.Config{MSS: o.mss, Linger: clientLinger, Tracer: tracer}
	if o.msg > 0 {
		cfg.Type = udt.TypeMessage
	}
	streams, err := dialStreams(ctx, cfg, addr, id, o.streams)
	defer closeClientStreams(streams)
	if err != nil {
		return summary{}, err
	}

	cpu0 := cpuSeconds()
	sendFor(ctx, streams, o, out)
	if err := sendCounts(ct, streams); err != nil {
		return summary{}, err
	}
	res, err := readResult(ct, o.streams, time.Now().Add(resultTimeout))
	cpu := cpuSeconds() - cpu0
	if err != nil {
		return summary{}, withSendError(err, streams)
	}
	sum := summarize(o, streams, res, cpu)
	out.summary(sum)
	return sum, nil
}

// dialControl opens the control connection to the server at addr.
func dialControl(ctx context.Context, addr string) (net.Conn, error) {
	var nd net.Dialer
	dctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	c, err := nd.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("control connection: %w", err)
	}
	return c, nil
}

// requestTest sends the test's parameters, waits for the server's READY
// and prints the start report; it returns the test's id.
func requestTest(ct *control, o options, out *output) (uint32, error) {
	p := params{streams: o.streams, secs: o.secs, mss: o.mss, msg: o.msg, impl: impl}
	if err := ct.write(p.line()); err != nil {
		return 0, fmt.Errorf("control connection: %w", err)
	}
	m, err := ct.expect("READY", time.Now().Add(acceptTimeout))
	if err != nil {
		return 0, err
	}
	id, err := m.int("id", 0, 1<<32-1)
	if err != nil {
		return 0, err
	}
	out.start(startReport{Client: impl, Server: m.fields["impl"], Host: o.host, Port: o.port, Mode: modeName(o.msg),
		Streams: o.streams, MSS: o.mss, MsgSize: o.msg, Secs: o.secs})
	return uint32(id), nil
}

// dialStreams dials the test's n connections to addr, each saying hello
// for test id. It returns those it made even with an error, for
// closeClientStreams (a nil entry for each not made).
func dialStreams(ctx context.Context, cfg udt.Config, addr string, id uint32, n int) ([]*clientStream, error) {
	streams := make([]*clientStream, n)
	for i := range streams {
		c, sock, err := dialUDT(ctx, cfg, addr)
		if err != nil {
			return streams, fmt.Errorf("stream %d: %w", i, err)
		}
		streams[i] = &clientStream{c: c, sock: sock}
		if _, err := c.Write(hello(id, i)); err != nil {
			return streams, fmt.Errorf("stream %d: %w", i, err)
		}
	}
	return streams, nil
}

// closeClientStreams closes the streams made, all at once, each socket
// after its connection.
func closeClientStreams(streams []*clientStream) {
	var wg sync.WaitGroup
	for _, s := range streams {
		if s != nil {
			wg.Go(func() {
				_ = s.c.Close()
				s.sock.close()
			})
		}
	}
	wg.Wait()
}

// sendFor writes on every stream for the test's time, printing a report
// each second, and returns when the senders have.
func sendFor(ctx context.Context, streams []*clientStream, o options, out *output) {
	size := o.msg
	if size == 0 {
		size = streamChunk(o.mss)
	}
	buf := make([]byte, size)
	start := time.Now()
	end := start.Add(time.Duration(o.secs * float64(time.Second)))
	for _, s := range streams {
		s.c.Stats() // the first interval starts now
	}
	var senders sync.WaitGroup
	for _, s := range streams {
		senders.Go(func() { s.send(buf, o.msg > 0, end) })
	}
	report(ctx, streams, start, end, out)
	senders.Wait()
}

// sendCounts tells the server what each stream sent, then DONE.
func sendCounts(ct *control, streams []*clientStream) error {
	for i, s := range streams {
		line := fmt.Sprintf("SENT index=%d bytes=%d msgs=%d\n", i, s.written.Load(), s.msgs.Load())
		if err := ct.write(line); err != nil {
			return fmt.Errorf("control connection: %w", err)
		}
	}
	if err := ct.write("DONE\n"); err != nil {
		return fmt.Errorf("control connection: %w", err)
	}
	return nil
}

// withSendError adds to err why the first stream that stopped sending
// early did, if one did.
func withSendError(err error, streams []*clientStream) error {
	for i, s := range streams {
		if s.err != nil {
			return fmt.Errorf("%w (stream %d stopped sending: %v)", err, i, s.err)
		}
	}
	return err
}

// summarize puts the test's figures together: the server's result res,
// the streams' own counts and the client's CPU seconds cpu.
func summarize(o options, streams []*clientStream, res testResult, cpu float64) summary {
	sum := summary{Client: impl, Server: res.impl, Mode: modeName(o.msg), Streams: o.streams, MSS: o.mss,
		MsgSize: o.msg, Secs: o.secs, Duration: res.secs, ClientCPU: cpu, ServerCPU: res.cpu}
	var rtt time.Duration
	for i, s := range streams {
		st := s.c.Stats()
		sum.Retrans += int64(st.Total.PktRetrans)
		rtt += st.RTT
		sum.BytesSent += s.written.Load()
		sum.MessagesSent += s.msgs.Load()
		r := res.streams[i]
		sum.Bytes += r.bytes
		sum.Messages += r.msgs
		sum.StreamBytes = append(sum.StreamBytes, r.bytes)
		sum.StreamGoodput = append(sum.StreamGoodput, mbps(r.bytes, res.secs))
	}
	sum.RTTms = float64(rtt) / float64(len(streams)) / 1e6
	sum.GoodputMbps = mbps(sum.Bytes, res.secs)
	if res.secs > 0 {
		sum.MsgsPerSec = float64(sum.Messages) / res.secs
	}
	sum.ClientCPUPerGB, sum.ServerCPUPerGB = perGB(cpu, sum.Bytes), perGB(res.cpu, sum.Bytes)
	sum.Fairness = fairness(sum.StreamBytes)
	return sum
}

// report prints one interval a second until end (or ctx ends).
func report(ctx context.Context, streams []*clientStream, start, end time.Time, out *output) {
	prev := make([]int64, len(streams))
	last := start
	for k := 1; last.Before(end); k++ {
		at := start.Add(time.Duration(k) * time.Second)
		if at.After(end) {
			at = end
		}
		t := time.NewTimer(time.Until(at))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		now := time.Now()
		secs := now.Sub(last).Seconds()
		r := intervalReport{Start: last.Sub(start).Seconds(), End: at.Sub(start).Seconds()}
		var total int64
		var rtt time.Duration
		for i, s := range streams {
			acked, st := s.acked()
			d := max(acked-prev[i], 0)
			prev[i] = max(acked, prev[i])
			total += d
			r.StreamGoodput = append(r.StreamGoodput, mbps(d, secs))
			r.Retrans += int64(st.Interval.PktRetrans)
			rtt += st.RTT
		}
		r.GoodputMbps = mbps(total, secs)
		r.RTTms = float64(rtt) / float64(len(streams)) / 1e6
		out.interval(r)
		last = at
	}
}

// readResult reads the server's RESULT, STREAM and END lines.
func readResult(ct *control, n int, deadline time.Time) (testResult, error) {
	var res testResult
	m, err := ct.expect("RESULT", deadline)
	if err != nil {
		return res, fmt.Errorf("waiting for the server's result: %w", err)
	}
	if res.secs, err = m.float("secs"); err != nil {
		return res, err
	}
	if res.cpu, err = m.float("cpu"); err != nil {
		return res, err
	}
	if _, err := m.int("streams", int64(n), int64(n)); err != nil {
		return res, err
	}
	res.streams = make([]streamResult, n)
	res.impl = m.fields["impl"]
	for range n {
		m, err := ct.expect("STREAM", deadline)
		if err != nil {
			return res, err
		}
		i, err := m.int("index", 0, int64(n-1))
		if err != nil {
			return res, err
		}
		r := &res.streams[i]
		if r.bytes, err = m.int("bytes", 0, 1<<62); err != nil {
			return res, err
		}
		if r.msgs, err = m.int("msgs", 0, 1<<62); err != nil {
			return res, err
		}
		if r.secs, err = m.float("secs"); err != nil {
			return res, err
		}
	}
	if _, err := ct.expect("END", deadline); err != nil {
		return res, err
	}
	return res, nil
}

// fairness is the least over the most of v, 1 for one value or none.
func fairness(v []int64) float64 {
	if len(v) < 2 {
		return 1
	}
	lo, hi := v[0], v[0]
	for _, x := range v[1:] {
		lo, hi = min(lo, x), max(hi, x)
	}
	if hi == 0 {
		return 0
	}
	return float64(lo) / float64(hi)
}

// streamChunk is the size of each Write in stream mode: about 128 KiB, a
// whole number of packets of the MSS (the C++ udtperf counts what is
// unacknowledged in packets).
func streamChunk(mss int) int {
	payload := mss - 44 // IP, UDP and UDT headers
	return payload * max(1, (128<<10)/payload)
}
