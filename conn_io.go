package udt

import (
	"errors"
	"io"
	"net"

	"github.com/udt-go/udt/internal/pktbuf"
	"github.com/udt-go/udt/internal/seq"
)

// ReadFrom implements io.ReaderFrom, which io.Copy uses: on a stream
// connection it reads r straight into the send buffer's packets until
// io.EOF or an error, with no buffer of its own between r's bytes and the
// kernel's. It returns the bytes read and sent on, and the first error
// other than io.EOF, of r or of the connection. As a Write it blocks while
// the send buffer is full and is subject to the write deadline; r's
// reads are not. A message connection sends what each read of r returns
// as one message, as io.Copy would through Write.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if c.isMessage() {
		return io.Copy(writerOnly{c}, r)
	}
	if err := c.lockWriter(); err != nil {
		return 0, err
	}
	defer c.unlockWriter()
	var total int64
	for {
		n, err := c.readFromSome(r)
		total += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return total, err
		}
	}
}

// writerOnly hides a Conn's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

// readFromSome reads up to writeChunk packets' worth of r into payload
// buffers and queues them, as writeSome copies a Write's; it returns the
// bytes queued. Reading stops at the first read that leaves a buffer
// short, so that a reader that trickles (a socket) has its bytes sent as
// they come, not once 64 packets' worth have gathered. It returns r's
// error, io.EOF included, once what came before it is queued.
func (c *Conn) readFromSome(r io.Reader) (int, error) {
	room, payload, err := c.writeRoom()
	if room == 0 || err != nil {
		return 0, err
	}
	pool := pktbuf.PoolFor(payload)
	var arr [writeChunk]*[]byte
	bufs := pool.GetN(arr[:0], room)
	filled, total := 0, 0
	var rerr error
	for _, buf := range bufs {
		k, err := r.Read((*buf)[:payload])
		*buf = (*buf)[:k]
		if k > 0 {
			filled++
			total += k
		}
		if err != nil {
			rerr = err
			break
		}
		if k < payload {
			break // what has come goes now
		}
	}
	pool.PutN(bufs[filled:])
	if filled == 0 {
		return 0, rerr
	}
	if err := c.queueChunk(pool, bufs[:filled], total, 0); err != nil {
		return 0, err
	}
	return total, rerr
}

// WriteTo implements io.WriterTo, which io.Copy uses: on a stream
// connection it writes what arrives to w until the peer shuts down (then
// it returns a nil error) or the connection fails, handing w the received
// packets' payloads where they lie, as net.Buffers (a writev on a TCP
// connection or a file), with no copy into a buffer of its own. It is
// subject to the read deadline while it waits for data, not while w
// writes. A message connection writes each message with one Write, as
// io.Copy would through Read.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	if c.isMessage() {
		return io.Copy(w, readerOnly{c})
	}
	var (
		total int64
		lent  [lendMax]rcvPkt
		bufs  [lendMax][]byte
		nb    net.Buffers
		k     int
	)
	for {
		_, err := c.readLoop(func() (int, error, bool) {
			k = c.lendLocked(&lent, &bufs)
			return k, nil, k > 0
		})
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return total, err
		}
		nb = append(nb[:0], bufs[:k]...)
		n, werr := nb.WriteTo(w)
		total += n
		c.mu.Lock()
		for i := range k {
			c.freeRcvBufLocked(lent[i])
		}
		c.mu.Unlock()
		clear(lent[:k])
		clear(bufs[:k])
		if werr != nil {
			return total, werr
		}
	}
}

// readerOnly hides a Conn's WriteTo from io.Copy.
type readerOnly struct{ io.Reader }

// lendMax is the most packets WriteTo hands w at once.
const lendMax = 64

// lendLocked takes up to lendMax readable packets off the front of the
// receive window, as a read would, but keeps their payloads for the
// caller, which frees them (freeRcvBufLocked) once written: lent[i] the
// slot, bufs[i] what of it is unread. It returns how many it took.
func (c *Conn) lendLocked(lent *[lendMax]rcvPkt, bufs *[lendMax][]byte) int {
	if c.state != stateConnected && c.rcv.buf == nil {
		return 0
	}
	contig := seq.Off(c.rcv.readSeq, c.rcv.contig())
	k := 0
	for k < lendMax && contig > 0 {
		s := c.rcv.buf.At(0)
		if s.buf == nil {
			break
		}
		lent[k], bufs[k] = s, (*s.buf)[c.rcv.readOff:]
		k++
		c.rcv.buf.PopFront()
		c.rcv.readSeq = c.rcv.readSeq.Inc()
		c.rcv.readOff = 0
		contig--
	}
	return k
}
