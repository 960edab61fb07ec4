package main

// The control protocol, spoken on a TCP connection to the server's port
// (the C++ udtperf speaks the same). Every message is one line of ASCII
// ending in '\n', a verb and then key=value words separated by spaces:
//
//	client: UDTPERF version=1 streams=P secs=T mss=M msg=S impl=go
//	server: READY id=N impl=go            (its UDT listener is up)
//	        ERROR reason=<rest of the line>  (instead, and the test ends)
//
// The client then dials P UDT connections to the same port. Each begins
// with a 12-byte hello, in message mode a message of its own: "UPRF", the
// test id N and the stream index (0 to P-1), both 32-bit big-endian; the
// server closes connections whose hello is not one it expects. The client
// sends for T seconds, then reports what it wrote on each stream and ends
// its part:
//
//	client: SENT index=I bytes=B msgs=K   (P lines, one per stream)
//	        DONE
//
// The server reads each stream until it has the bytes the client sent, the
// stream ends, or a grace period runs out, and answers:
//
//	server: RESULT streams=P secs=D cpu=C impl=go
//	        STREAM index=I bytes=B msgs=K secs=D   (P lines)
//	        END
//
// RESULT's secs is the time from the first data byte on any stream to the
// last on any, as the server measured it; cpu its user and system CPU
// seconds from READY to the end of the reads. STREAM's secs is the same
// span for one stream. Bytes and messages count data after the hello.
//
// The client then reads its streams' last figures, closes them and hangs
// up; the server closes its end of the streams after that (or after 5 s),
// since 4.11 has no figures for a socket whose peer has closed. A server
// busy with another test answers UDTPERF with ERROR at once.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

const (
	protoVersion = 1
	helloSize    = 12
	helloMagic   = "UPRF"
	maxLine      = 4096
)

// impl is this implementation's name in the protocol and output: "go",
// or "gotr" with -transport.
var impl = "go"

// Bounds on the steps of a test, the same in the C++ udtperf.
const (
	ctlTimeout    = 5 * time.Second  // connecting and each request-reply step
	acceptTimeout = 10 * time.Second // for the server to have all streams
	drainTimeout  = 10 * time.Second // for the server to read what was sent, after DONE
	resultTimeout = drainTimeout + 10*time.Second
)

// params are what a client asks for.
type params struct {
	streams int
	secs    float64
	mss     int
	msg     int
	impl    string
}

func (p params) line() string {
	return fmt.Sprintf("UDTPERF version=%d streams=%d secs=%g mss=%d msg=%d impl=%s\n",
		protoVersion, p.streams, p.secs, p.mss, p.msg, p.impl)
}

// streamResult is what the server received on one stream.
type streamResult struct {
	bytes, msgs int64
	secs        float64
}

// testResult is the server's answer.
type testResult struct {
	secs    float64
	cpu     float64
	impl    string
	streams []streamResult
}

// message is one parsed control line.
type message struct {
	verb   string
	fields map[string]string
}

// parseMessage splits a control line into its verb and fields. ERROR's
// reason is the rest of the line, spaces and all.
func parseMessage(line string) (message, error) {
	line = strings.TrimRight(line, "\r\n")
	verb, rest, _ := strings.Cut(line, " ")
	m := message{verb: verb, fields: map[string]string{}}
	if verb == "" {
		return m, errors.New("empty control line")
	}
	if verb == "ERROR" {
		m.fields["reason"] = strings.TrimPrefix(rest, "reason=")
		return m, nil
	}
	for _, w := range strings.Fields(rest) {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return m, fmt.Errorf("bad control line %q: word %q is not key=value", line, w)
		}
		m.fields[k] = v
	}
	return m, nil
}

func (m message) int(key string, lo, hi int64) (int64, error) {
	s, ok := m.fields[key]
	if !ok {
		return 0, fmt.Errorf("%s line without %s", m.verb, key)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s line: %s=%s is not a number from %d to %d", m.verb, key, s, lo, hi)
	}
	return v, nil
}

func (m message) float(key string) (float64, error) {
	s, ok := m.fields[key]
	if !ok {
		return 0, fmt.Errorf("%s line without %s", m.verb, key)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s line: %s=%s is not a number of 0 or more", m.verb, key, s)
	}
	return v, nil
}

// control is one end of a control connection.
type control struct {
	c net.Conn
	r *bufio.Reader
}

func newControl(c net.Conn) *control { return &control{c: c, r: bufio.NewReaderSize(c, maxLine)} }

// read returns the next line, waiting until deadline for it.
func (ct *control) read(deadline time.Time) (message, error) {
	if err := ct.c.SetReadDeadline(deadline); err != nil {
		return message{}, err
	}
	line, err := ct.r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return message{}, fmt.Errorf("control line longer than %d bytes", maxLine)
	case errors.Is(err, io.EOF):
		return message{}, errors.New("control connection closed by the peer")
	case err != nil:
		return message{}, err
	}
	return parseMessage(string(line))
}

// expect reads the next line and fails unless its verb is verb; an ERROR
// line becomes an error with its reason.
func (ct *control) expect(verb string, deadline time.Time) (message, error) {
	m, err := ct.read(deadline)
	if err != nil {
		return m, err
	}
	if m.verb == "ERROR" {
		return m, fmt.Errorf("server: %s", m.fields["reason"])
	}
	if m.verb != verb {
		return m, fmt.Errorf("control: got %s, want %s", m.verb, verb)
	}
	return m, nil
}

func (ct *control) write(s string) error {
	if err := ct.c.SetWriteDeadline(time.Now().Add(ctlTimeout)); err != nil {
		return err
	}
	_, err := io.WriteString(ct.c, s)
	return err
}

// hello returns the first bytes of stream idx of test id.
func hello(id uint32, idx int) []byte {
	b := make([]byte, 0, helloSize)
	b = append(b, helloMagic...)
	b = binary.BigEndian.AppendUint32(b, id)
	return binary.BigEndian.AppendUint32(b, uint32(idx))
}

// parseHello returns the test id and stream index of a hello.
func parseHello(b []byte) (id uint32, idx int, ok bool) {
	if len(b) != helloSize || string(b[:4]) != helloMagic {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(b[4:]), int(binary.BigEndian.Uint32(b[8:])), true
}
