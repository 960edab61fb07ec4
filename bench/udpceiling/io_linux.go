package main

import (
	"encoding/binary"
	"errors"
	"net"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The batch calls, in the manner of the udt package's batchio_linux.go:
// preallocated headers, the calls made on the socket's descriptor inside
// syscall.RawConn's Read and Write, so they wait in Go's network poller.

const (
	// batch is the most datagrams (or GSO runs) one sendmmsg or
	// recvmmsg moves.
	batch = 64
	// gsoSegMax is the most datagrams in one GSO run: the kernel's
	// UDP_MAX_SEGMENTS is 64 on older kernels.
	gsoSegMax = 64
	// gsoBatch is the most GSO runs one sendmmsg carries.
	gsoBatch = 8
	// groBuf is a receive buffer that holds any GRO run.
	groBuf = 65535
	// oobLen is the control buffer of a received datagram.
	oobLen = 64
)

// setBuffers sets c's receive and send buffers to n bytes, past the
// system's limits (net.core.rmem_max, wmem_max) if the process may.
func setBuffers(c *net.UDPConn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var rerr, serr error
	if err := rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
			rerr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n) != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, n)
		}
	}); err != nil {
		return err
	}
	return errors.Join(rerr, serr)
}

// buffers returns the receive and send buffer sizes the kernel gave c, as
// set (Linux reports twice the size asked for).
func buffers(c *net.UDPConn) (rcv, snd int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0
	}
	_ = rc.Control(func(fd uintptr) {
		rcv, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		snd, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	return rcv / 2, snd / 2
}

// cpuSeconds returns the process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// msgs are the headers of one sendmmsg or recvmmsg.
type msgs struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
	oob  []byte
	oobN int // control bytes per message
}

func newMsgs(n, oobN int) *msgs {
	return &msgs{
		hdrs: make([]unix.Mmsghdr, n),
		iovs: make([]unix.Iovec, n),
		oob:  make([]byte, n*oobN),
		oobN: oobN,
	}
}

// set points message i at b, with the control bytes ctl (none if empty)
// and the address name (none if nil).
func (m *msgs) set(i int, b []byte, name *unix.RawSockaddrInet4, ctl int) {
	m.iovs[i].Base = &b[0]
	m.iovs[i].SetLen(len(b))
	h := &m.hdrs[i].Hdr
	h.Iov = &m.iovs[i]
	h.SetIovlen(1)
	h.Name, h.Namelen = nil, 0
	if name != nil {
		h.Name = (*byte)(unsafe.Pointer(name))
		h.Namelen = unix.SizeofSockaddrInet4
	}
	h.Control = nil
	h.SetControllen(0)
	if ctl > 0 {
		h.Control = &m.oob[i*m.oobN]
		h.SetControllen(ctl)
	}
}

// mmsgCall makes one sendmmsg or recvmmsg of hs, retried on EINTR.
func mmsgCall(trap uintptr, fd uintptr, hs []unix.Mmsghdr) (int, unix.Errno) {
	for {
		n, _, errno := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), 0, 0, 0)
		if errno != unix.EINTR {
			return int(n), errno
		}
	}
}

// sendAll sends the messages of m, count of them, until stop, and returns
// the datagrams sent: per the datagrams each message holds.
func sendAll(c *net.UDPConn, m *msgs, count, per int, stop func() bool) (int64, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	_ = c.SetWriteDeadline(time.Now().Add(maxSecs * time.Second))
	var sent int64
	var werr error
	write := func(fd uintptr) bool {
		for off := 0; off < count; {
			n, errno := mmsgCall(unix.SYS_SENDMMSG, fd, m.hdrs[off:count])
			switch errno {
			case 0:
				off += n
				sent += int64(n * per)
			case unix.EAGAIN:
				if off == 0 {
					return false
				}
				return true // what is left goes in the next call
			default:
				werr = errno
				return true
			}
		}
		return true
	}
	for !stop() {
		if err := rc.Write(write); err != nil {
			return sent, err
		}
		if werr != nil {
			return sent, werr
		}
	}
	return sent, nil
}

// recvAll reads into m until the socket's read deadline; seg returns the
// datagrams a message of n bytes held, given its control bytes.
func recvAll(c *net.UDPConn, m *msgs, prepare func(), dgrams func(i, n int) int, cnt *counter) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var got int
	var rerr error
	read := func(fd uintptr) bool {
		prepare()
		n, errno := mmsgCall(unix.SYS_RECVMMSG, fd, m.hdrs)
		switch errno {
		case 0:
			got = n
		case unix.EAGAIN:
			return false
		default:
			rerr = errno
		}
		return true
	}
	for {
		if err := rc.Read(read); err != nil {
			return err
		}
		if rerr != nil {
			return rerr
		}
		var k, bytes int
		for i := range got {
			n := int(m.hdrs[i].Len)
			bytes += n
			k += dgrams(i, n)
		}
		cnt.add(k, bytes)
	}
}

// sockaddr4 is the kernel address of p's receiver.
func (p *pair) sockaddr4() *unix.RawSockaddrInet4 {
	sa := &unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: p.dst.Addr().As4()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], p.dst.Port())
	return sa
}

// mmsg is the sendmmsg and recvmmsg mode.
func (p *pair) mmsg(size int) (func(stop func() bool) (int64, error), func(c *counter) error, error) {
	to := p.sockaddr4()
	payload := make([]byte, size)
	tx := newMsgs(batch, 0)
	for i := range batch {
		tx.set(i, payload, to, 0)
	}
	send := func(stop func() bool) (int64, error) { return sendAll(p.tx, tx, batch, 1, stop) }

	rx := newMsgs(batch, 0)
	bufs := make([]byte, batch*(size+1))
	prepare := func() {
		for i := range batch {
			rx.set(i, bufs[i*(size+1):(i+1)*(size+1)], nil, 0)
			rx.hdrs[i].Hdr.Flags = 0
		}
	}
	recv := func(c *counter) error {
		return recvAll(p.rx, rx, prepare, func(int, int) int { return 1 }, c)
	}
	return send, recv, nil
}

// gsoRun is the number of datagrams of size bytes in one GSO run.
func gsoRun(size int) int {
	return max(1, min(gsoSegMax, maxPayload/size))
}

// gsoDatagrams is the number of datagrams in a received run of n bytes
// whose GRO segment size is seg (0: a single datagram).
func gsoDatagrams(n, seg int) int {
	if seg <= 0 || seg >= n {
		return 1
	}
	return (n + seg - 1) / seg
}

// groSegment returns the UDP_GRO segment size in a control buffer, 0 if
// there is none.
func groSegment(oob []byte) int {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		data := oob[unix.CmsgLen(0):l]
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO {
			switch {
			case len(data) >= 4:
				return int(binary.NativeEndian.Uint32(data))
			case len(data) >= 2:
				return int(binary.NativeEndian.Uint16(data))
			}
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next <= 0 || next > len(oob) {
			return 0
		}
		oob = oob[next:]
	}
	return 0
}

// gso is the UDP GSO and GRO mode.
func (p *pair) gso(size int) (func(stop func() bool) (int64, error), func(c *counter) error, error) {
	rc, err := p.rx.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var groErr, gsoErr error
	_ = rc.Control(func(fd uintptr) {
		groErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	})
	if tc, err := p.tx.SyscallConn(); err == nil {
		_ = tc.Control(func(fd uintptr) {
			_, gsoErr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		})
	}
	if groErr != nil || gsoErr != nil {
		return nil, nil, errors.Join(errUnsupported, groErr, gsoErr)
	}

	to := p.sockaddr4()
	segs := gsoRun(size)
	run := make([]byte, segs*size)
	ctl := unix.CmsgSpace(2)
	tx := newMsgs(gsoBatch, ctl)
	for i := range gsoBatch {
		c := tx.oob[i*ctl : (i+1)*ctl]
		h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		h.Level = unix.IPPROTO_UDP
		h.Type = unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
		binary.NativeEndian.PutUint16(c[unix.CmsgLen(0):], uint16(size))
		tx.set(i, run, to, ctl)
	}
	send := func(stop func() bool) (int64, error) { return sendAll(p.tx, tx, gsoBatch, segs, stop) }

	rx := newMsgs(batch, oobLen)
	bufs := make([]byte, batch*groBuf)
	prepare := func() {
		for i := range batch {
			rx.set(i, bufs[i*groBuf:(i+1)*groBuf], nil, oobLen)
			rx.hdrs[i].Hdr.Flags = 0
		}
	}
	dgrams := func(i, n int) int {
		h := &rx.hdrs[i].Hdr
		return gsoDatagrams(n, groSegment(rx.oob[i*oobLen:i*oobLen+int(h.Controllen)]))
	}
	recv := func(c *counter) error { return recvAll(p.rx, rx, prepare, dgrams, c) }
	return send, recv, nil
}
