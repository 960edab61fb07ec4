package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Between two udtproxy ends the tunnel carries the TCP half-close: the
// client sends hello first, the server answers with it, and from then on
// each direction is a series of frames, a 4-byte big-endian length and
// that many bytes, ended by a frame of length 0 when its TCP side stops
// sending (the far end then shuts down writing on its TCP connection).
// The tunnel closes once both directions have ended, with no drain time.
// A far end that does not answer hello is not udtproxy: the tunnel falls
// back to the plain stream and the drain (see tunnel).
const hello = "UDTPROXY/2\n"

// maxFrame bounds a frame's length: a larger one is a broken peer.
const maxFrame = 1 << 20

// helloTimeout bounds the wait for the far end's hello.
const helloTimeout = 5 * time.Second

// readHello reads len(hello) bytes from uc within helloTimeout and reports
// whether they are hello; it returns what it read either way.
func readHello(uc net.Conn) ([]byte, bool) {
	_ = uc.SetReadDeadline(time.Now().Add(helloTimeout))
	defer func() { _ = uc.SetReadDeadline(time.Time{}) }()
	b := make([]byte, len(hello))
	n, _ := io.ReadFull(uc, b)
	return b[:n], n == len(hello) && bytes.Equal(b, []byte(hello))
}

// writeFrames copies src to dst as frames, then writes the end frame.
func writeFrames(dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 4+64<<10)
	var n int64
	for {
		k, err := src.Read(buf[4:])
		if k > 0 {
			binary.BigEndian.PutUint32(buf, uint32(k))
			if _, werr := dst.Write(buf[:4+k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err == io.EOF {
			binary.BigEndian.PutUint32(buf, 0)
			_, werr := dst.Write(buf[:4])
			return n, werr
		}
		if err != nil {
			return n, err
		}
	}
}

// errNoEndFrame is a tunnel that ended without its end frame.
var errNoEndFrame = errors.New("the far end closed without ending its direction")

// readFrames copies the frames from src to dst until the end frame.
func readFrames(dst io.Writer, src io.Reader) (int64, error) {
	var hdr [4]byte
	buf := make([]byte, 64<<10)
	var n int64
	for {
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			if err == io.EOF {
				err = errNoEndFrame
			}
			return n, err
		}
		size := int(binary.BigEndian.Uint32(hdr[:]))
		if size == 0 {
			return n, nil
		}
		if size > maxFrame {
			return n, fmt.Errorf("a frame of %d bytes", size)
		}
		if size > len(buf) {
			buf = make([]byte, size)
		}
		if _, err := io.ReadFull(src, buf[:size]); err != nil {
			return n, err
		}
		if _, err := dst.Write(buf[:size]); err != nil {
			return n, err
		}
		n += int64(size)
	}
}

// framedTunnel copies between tc and uc in frames both ways, passing each
// direction's end on as a half-close, and closes both once both have
// ended, or at the first error.
func (p *proxy) framedTunnel(from net.Addr, tc *net.TCPConn, uc net.Conn) {
	type result struct {
		n   int64
		err error
	}
	upDone := make(chan result, 1)
	go func() {
		n, err := writeFrames(uc, tc)
		if err != nil {
			_ = uc.Close() // the app is gone: abort
		}
		upDone <- result{n, err}
	}()
	down, derr := readFrames(tc, uc)
	if derr == nil {
		_ = tc.CloseWrite() // the far end stopped sending: pass on the half-close
	} else {
		_ = tc.Close()
	}
	up := <-upDone
	_ = uc.Close() // delivers what the up direction wrote
	_ = tc.Close()
	p.logf("%s: %d bytes TCP to UDT, %d bytes UDT to TCP", from, up.n, down)
	for _, err := range []error{up.err, derr} {
		if err != nil && !errors.Is(err, net.ErrClosed) {
			p.logf("%s: %v", from, err)
		}
	}
}

// prefixConn is a net.Conn whose first reads return prefix.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
