package udt

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batch I/O on Linux: recvmmsg and sendmmsg move many datagrams per system
// call, UDP GSO (UDP_SEGMENT) hands the kernel runs of equal-sized packets
// to one peer as one send, and UDP GRO (UDP_GRO) returns runs the kernel
// coalesced as one buffer, which the receive worker splits back into UDT
// packets. The calls are made on the socket's file descriptor through
// syscall.RawConn, so they wait in Go's network poller like the standard
// library's.
//
// golang.org/x/net/ipv4 and ipv6 offer ReadBatch and WriteBatch, but they
// allocate a net.UDPAddr for every datagram read; these use netip and
// preallocated headers, and do not allocate per datagram.
//
// Buffers are held only while datagrams flow: a socket takes a batch when
// it has datagrams to read and gives it back when a read finds nothing, so
// an idle socket holds no buffer. The batches and their buffers go back to
// free lists of this package (rxFree, and pktbuf's pool of datagram
// buffers), not to sync.Pools: a sync.Pool's private slot belongs to one
// processor, so a worker that wakes up on another would miss it and
// allocate a megabyte of buffers anew, and the garbage collector empties
// sync.Pools besides.

const (
	// rxBatchMax is the most datagrams one recvmmsg returns.
	rxBatchMax = 16
	// rxOOB is the control buffer per datagram: a timestamp and a GRO
	// segment size.
	rxOOB = 128
	// txSegMax is the most packets one GSO send carries (the kernel's
	// UDP_MAX_SEGMENTS is 64 on older kernels).
	txSegMax = 64
	// txGSOMax is the most bytes one GSO send carries: a UDP payload
	// fits in 65,507 bytes over IPv4.
	txGSOMax = 65507
	// txMsgMax is the most datagrams (GSO runs or single packets) one
	// sendmmsg carries.
	txMsgMax = txBatchMax
)

// batchIO is the batch I/O state of one UDP socket.
type batchIO struct {
	rc  syscall.RawConn
	v6  bool        // an AF_INET6 socket: every address goes as sockaddr_in6
	gso atomic.Bool // UDP_SEGMENT is used; cleared when the kernel refuses it
	gro bool        // UDP_GRO is on

	// Read side: the receive worker only.
	rx     *rxBatch
	rxWant int // datagrams asked of the next recvmmsg: grows while reads fill it
	rxN    int
	rxErr  error
	readFn func(fd uintptr) bool

	// Write side: the send queue worker only.
	tx       *txMsgs
	txErr    error
	txSent   int
	txFailed int // datagrams the kernel refused in this writeBatch
	writeFn  func(fd uintptr) bool
	sendmmsg func(fd uintptr, hs []unix.Mmsghdr) (int, unix.Errno) // tests replace it

	zones sync.Map // IPv6 scope ID → zone name
}

// newBatchIO sets c up for batch I/O, or returns nil where the socket does
// not allow it. noOffload leaves GSO and GRO off, for tests of the paths
// without them.
func newBatchIO(c *net.UDPConn, noOffload bool) *batchIO {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	b := &batchIO{rc: rc, rxWant: 1}
	var domain int
	var domErr error
	if err := rc.Control(func(fd uintptr) {
		domain, domErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil || domErr != nil {
		return nil
	}
	b.v6 = domain == unix.AF_INET6
	if !noOffload {
		var gsoErr, groErr error
		_ = rc.Control(func(fd uintptr) {
			// Probe GSO: a socket that accepts reading the option
			// accepts the per-send control message.
			_, gsoErr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
			groErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1)
		})
		b.gso.Store(gsoErr == nil)
		b.gro = groErr == nil
	}
	b.readFn = b.doRead
	b.writeFn = b.doWrite
	b.sendmmsg = sendmmsg
	return b
}

func sendmmsg(fd uintptr, hs []unix.Mmsghdr) (int, unix.Errno) {
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), 0, 0, 0)
	return int(n), errno
}

// rxBatch holds the buffers and headers of one recvmmsg.
type rxBatch struct {
	hdrs  [rxBatchMax]unix.Mmsghdr
	iovs  [rxBatchMax]unix.Iovec
	names [rxBatchMax]unix.RawSockaddrInet6
	oob   [rxBatchMax * rxOOB]byte
	blks  [rxBatchMax]*rxBlock // set on first use
	nblks int                  // blks[:nblks] are set
}

// rxFree holds batches not in use, without their buffers: a few hundred
// kilobytes at most, however many sockets went idle.
var rxFree = freeList[rxBatch]{max: 64, new: func() *rxBatch { return new(rxBatch) }}

// putRx gives r's blocks back, but for those that views still hold, and
// r to rxFree.
func putRx(r *rxBatch) {
	for _, b := range r.blks[:r.nblks] {
		if b.recycle() {
			b.release()
		}
	}
	clear(r.blks[:r.nblks])
	r.nblks = 0
	rxFree.put(r)
}

// prepare sets the headers of the first n datagrams.
func (r *rxBatch) prepare(n int) {
	for ; r.nblks < n; r.nblks++ {
		r.blks[r.nblks] = newRxBlock()
	}
	for i := range n {
		r.iovs[i].Base = &(*r.blks[i].buf)[0]
		r.iovs[i].SetLen(maxDatagram)
		h := &r.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Namelen = uint32(unsafe.Sizeof(r.names[i]))
		h.Iov = &r.iovs[i]
		h.Iovlen = 1
		h.Control = &r.oob[i*rxOOB]
		h.SetControllen(rxOOB)
		h.Flags = 0
		r.hdrs[i].Len = 0
	}
}

// doRead is the RawConn.Read callback: one recvmmsg into b.rx, false to
// wait for the socket to become readable.
func (b *batchIO) doRead(fd uintptr) bool {
	if b.rx == nil {
		b.rx = rxFree.get()
	}
	b.rx.prepare(b.rxWant)
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.rx.hdrs[0])),
		uintptr(b.rxWant), 0, 0, 0)
	switch {
	case errno == unix.EAGAIN:
		// Nothing to read: hand the buffers back while waiting.
		putRx(b.rx)
		b.rx = nil
		return false
	case errno == unix.EINTR:
		return b.doRead(fd)
	case errno != 0:
		b.rxN, b.rxErr = 0, errno
	default:
		b.rxN, b.rxErr = int(n), nil
	}
	return true
}

// read waits for at least one datagram and reads as many as are queued,
// up to the batch size; each then goes to each.
func (b *batchIO) read() error {
	if err := b.rc.Read(b.readFn); err != nil {
		return err
	}
	if b.rxErr != nil {
		err := b.rxErr
		b.release()
		return &net.OpError{Op: "read", Net: "udp", Err: err}
	}
	return nil
}

// each calls fn for every UDT packet in the datagrams read, with its
// source and kernel arrival time (zero if none), and returns what it
// went through. The packets' bytes stay valid until release.
//
// The packets of a GRO run of rxViewMin segments or more come with the
// run's block, of which a connection may keep them as views (see
// rxBlock); recycle must follow once they are handed over.
func (b *batchIO) each(fn func(p []byte, from netip.AddrPort, arrival time.Time, blk *rxBlock)) rxCount {
	r := b.rx
	var cnt rxCount
	for i := range b.rxN {
		h := &r.hdrs[i]
		n := int(h.Len)
		cnt.bytes += uint64(n)
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			cnt.pkts++
			cnt.truncated++ // larger than any UDT packet
			continue
		}
		from := b.sockaddr(&r.names[i], h.Hdr.Namelen)
		arrival, seg := parseOOB(r.oob[i*rxOOB : i*rxOOB+int(h.Hdr.Controllen)])
		data := (*r.blks[i].buf)[:n]
		if seg <= 0 || seg >= n {
			cnt.pkts++
			fn(data, from, arrival, nil)
			continue
		}
		// A GRO run: segments of seg bytes, the last maybe shorter.
		segs := (n + seg - 1) / seg
		cnt.pkts += uint64(segs)
		var blk *rxBlock
		if segs >= rxViewMin {
			blk = r.blks[i]
			blk.share = int64((maxDatagram + segs - 1) / segs)
		}
		for len(data) > 0 {
			k := min(seg, len(data))
			fn(data[:k], from, arrival, blk)
			data = data[k:]
		}
	}
	// Ask for more next time while reads come back full, fewer when
	// they come back mostly empty.
	switch {
	case b.rxN == b.rxWant && b.rxWant < rxBatchMax:
		b.rxWant *= 2
	case b.rxN*4 <= b.rxWant && b.rxWant > 1:
		b.rxWant /= 2
	}
	return cnt
}

// recycle readies the blocks of the last read for the next, once each has
// handed over its packets: one that views hold is left to them and
// replaced.
func (b *batchIO) recycle() {
	r := b.rx
	if r == nil {
		return
	}
	for i := range b.rxN {
		if !r.blks[i].recycle() {
			r.blks[i] = newRxBlock()
		}
	}
}

// release gives the read buffers back, after each: a read that fails, or
// the receive worker stopping. Between reads that find datagrams the
// batch stays with the socket; the read that finds none gives it back.
func (b *batchIO) release() {
	if b.rx != nil {
		putRx(b.rx)
		b.rx = nil
	}
}

// sockaddr converts a kernel socket address; v4-mapped addresses unmap.
func (b *batchIO) sockaddr(sa *unix.RawSockaddrInet6, n uint32) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		if n < uint32(unsafe.Sizeof(*sa)) {
			return netip.AddrPort{}
		}
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		a := netip.AddrFrom16(sa.Addr)
		if a.Is4In6() {
			return netip.AddrPortFrom(a.Unmap(), port)
		}
		if sa.Scope_id != 0 {
			a = a.WithZone(b.zone(sa.Scope_id))
		}
		return netip.AddrPortFrom(a, port)
	}
	return netip.AddrPort{}
}

// zone names an IPv6 scope ID as the standard library does: the
// interface's name, or the number if there is no such interface.
func (b *batchIO) zone(id uint32) string {
	if z, ok := b.zones.Load(id); ok {
		return z.(string)
	}
	z := strconv.FormatUint(uint64(id), 10)
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		z = ifi.Name
	}
	b.zones.Store(id, z)
	return z
}

// parseOOB returns the SCM_TIMESTAMPNS time (zero if none) and the UDP_GRO
// segment size (0 if none) in a control-message buffer.
func parseOOB(oob []byte) (arrival time.Time, seg int) {
	const hdrLen = unix.SizeofCmsghdr
	for len(oob) >= hdrLen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdrLen || l > len(oob) {
			return arrival, seg
		}
		data := oob[unix.CmsgLen(0):l]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			arrival = time.Unix(ts.Sec, ts.Nsec)
		case h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && len(data) >= 4:
			seg = int(binary.NativeEndian.Uint32(data))
		case h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && len(data) >= 2:
			seg = int(binary.NativeEndian.Uint16(data))
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next <= 0 || next > len(oob) {
			return arrival, seg
		}
		oob = oob[next:]
	}
	return arrival, seg
}

// txMsgs holds the headers of one sendmmsg, and the iovecs its datagrams
// are gathered from: a packet's header and its payload each (see
// txBatch).
type txMsgs struct {
	hdrs  [txMsgMax]unix.Mmsghdr
	iovs  [2 * txBatchMax]unix.Iovec
	names [txMsgMax]unix.RawSockaddrInet6
	oob   [txMsgMax * unix.SizeofCmsghdr * 2]byte
	n     int
	niov  int
}

// addIov appends b, if not empty, to the iovecs of the datagram being
// gathered.
func (t *txMsgs) addIov(b []byte) {
	if len(b) == 0 {
		return
	}
	v := &t.iovs[t.niov]
	v.Base = &b[0]
	v.SetLen(len(b))
	t.niov++
}

// add appends one datagram made of the iovecs from iov on: one packet, or
// a GSO run of segments of seg bytes if seg is positive.
func (t *txMsgs) add(iov int, to netip.AddrPort, seg int, v6 bool) {
	i := t.n
	t.n++
	h := &t.hdrs[i].Hdr
	h.Iov = &t.iovs[iov]
	h.SetIovlen(t.niov - iov)
	h.Name = (*byte)(unsafe.Pointer(&t.names[i]))
	h.Namelen = putSockaddr(&t.names[i], to, v6)
	h.Control = nil
	h.SetControllen(0)
	h.Flags = 0
	if seg > 0 {
		const space = unix.SizeofCmsghdr * 2 // CmsgSpace(2) on 64-bit
		c := t.oob[i*space : (i+1)*space]
		clear(c)
		ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		ch.Level = unix.IPPROTO_UDP
		ch.Type = unix.UDP_SEGMENT
		ch.SetLen(unix.CmsgLen(2))
		binary.NativeEndian.PutUint16(c[unix.CmsgLen(0):], uint16(seg))
		h.Control = &c[0]
		h.SetControllen(unix.CmsgSpace(2))
	}
}

// reset empties t for the next sendmmsg.
func (t *txMsgs) reset() {
	clear(t.iovs[:t.niov]) // the payloads are not held past the write
	t.n, t.niov = 0, 0
}

// putSockaddr writes to as a kernel socket address for a socket of the
// given family and returns its length.
func putSockaddr(sa *unix.RawSockaddrInet6, to netip.AddrPort, v6 bool) uint32 {
	*sa = unix.RawSockaddrInet6{}
	a := to.Addr()
	if !v6 && a.Is4() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], to.Port())
		sa4.Addr = a.As4()
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], to.Port())
	sa.Addr = a.As16() // a v4 address maps to ::ffff:a.b.c.d
	if z := a.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.Scope_id = uint32(ifi.Index)
		} else if n, err := strconv.ParseUint(z, 10, 32); err == nil {
			sa.Scope_id = uint32(n)
		}
	}
	return unix.SizeofSockaddrInet6
}

// doWrite is the RawConn.Write callback: one sendmmsg of the datagrams
// from b.txSent on, false to wait for room in the socket's buffer.
func (b *batchIO) doWrite(fd uintptr) bool {
	t := b.tx
	for b.txSent < t.n {
		n, errno := b.sendmmsg(fd, t.hdrs[b.txSent:t.n])
		switch errno {
		case 0:
			b.txSent += n
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		default:
			// The datagram at txSent failed; the caller decides.
			b.txErr = errno
			return true
		}
	}
	return true
}

// errGSORefused marks a send the kernel refused because of its GSO option.
var errGSORefused = errors.New("udt: kernel refused UDP GSO")

// writeMsgs sends every datagram in t. A datagram the kernel refuses is
// skipped, as lost packets are (retransmission covers them), except that a
// refused GSO run turns GSO off and is reported with errGSORefused and
// the index of the first datagram not sent, for the caller to resend it
// without.
func (b *batchIO) writeMsgs(t *txMsgs) (int, error) {
	b.tx, b.txSent = t, 0
	defer func() { b.tx = nil }()
	for b.txSent < t.n {
		b.txErr = nil
		if err := b.rc.Write(b.writeFn); err != nil {
			return b.txSent, err
		}
		if b.txErr == nil {
			break
		}
		if t.hdrs[b.txSent].Hdr.Controllen != 0 && gsoRefusal(b.txErr) {
			b.gso.Store(false)
			return b.txSent, errGSORefused
		}
		b.txSent++ // a transient error: the packet is lost
		b.txFailed++
	}
	return b.txSent, nil
}

// gsoRefusal reports whether a send error means the kernel or device
// cannot segment: EIO from a device without checksum offload, EINVAL or
// ENOPROTOOPT from a kernel without UDP_SEGMENT, EMSGSIZE for a run over
// the path's limits.
func gsoRefusal(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EMSGSIZE)
}

// txMsgsFree holds the sendmmsg headers of writes not under way.
var txMsgsFree = freeList[txMsgs]{max: 16, new: func() *txMsgs { return new(txMsgs) }}

// writeBatch sends the packets of t: runs of equal-sized packets to one
// peer (the last of a run may be shorter) as GSO sends while the kernel
// takes them, all in as few sendmmsg calls as the batch allows, each
// datagram gathered from the packets' headers and payloads where they
// lie. It returns how many datagrams (single packets or GSO runs) the
// kernel refused; those sent with plain count their own.
func (b *batchIO) writeBatch(t *txBatch, plain func([]byte, netip.AddrPort)) int {
	msgs := txMsgsFree.get()
	defer txMsgsFree.put(msgs)
	b.txFailed = 0
	var first [txMsgMax + 1]int // the first packet of each datagram
	gso := b.gso.Load()
	for i := 0; i < len(t.ends); {
		size := t.size(i)
		j, total := i+1, size
		for gso && j < len(t.ends) && j-i < txSegMax && t.to[j] == t.to[i] {
			l := t.size(j)
			if l > size || total+l > txGSOMax {
				break
			}
			total, j = total+l, j+1
			if l < size {
				break
			}
		}
		seg := 0
		if j-i > 1 {
			seg = size
		}
		first[msgs.n] = i
		iov := msgs.niov
		for k := i; k < j; k++ {
			msgs.addIov(t.buf[t.start(k):t.ends[k]])
			msgs.addIov(t.pay[k])
		}
		msgs.add(iov, t.to[i], seg, b.v6)
		i = j
		if msgs.n == txMsgMax || i == len(t.ends) {
			first[msgs.n] = i
			sent, err := b.writeMsgs(msgs)
			msgs.reset()
			if err != nil {
				// The rest goes one datagram at a time: GSO refused, or
				// the socket closed (then those writes fail too).
				for k := first[sent]; k < len(t.ends); k++ {
					plain(t.packet(k), t.to[k])
				}
				return b.txFailed
			}
		}
	}
	return b.txFailed
}
