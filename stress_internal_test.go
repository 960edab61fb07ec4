package udt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Shape of TestConcurrentStress.
const (
	stressConns      = 8               // connections carrying checked records
	stressWriters    = 2               // record writers on each end of each
	stressReaders    = 2               // record readers on each end, taking turns
	stressFor        = 2 * time.Second // writes, reads and deadline churn at once
	stressAfterChurn = 5               // records each end must read once the deadlines are cleared
	stressMaxRecs    = 1 << 16         // records one writer writes at most
	stressMinRecs    = 50              // records each end must verify (measured: hundreds at least)
	stressPrompt     = 2 * time.Second
	stressRate       = 2 << 20 // bytes/s each way on each connection
)

// Stress records: each Write is one record naming its connection, writing
// end, writer and sequence number, of a length (up to a bound the test
// sets) and content derived from them, with a CRC-32 of the rest at its
// end.
//
//	 0  magic "UDTr"
//	 4  key: connection<<16 | end<<8 | writer
//	 8  sequence number
//	12  length of the whole record
//	16  payload
//	-4  CRC-32 (IEEE) of everything before it
const (
	recMagic  = 0x55445472
	recHeader = 16
	recMin    = recHeader + 4
)

func recKey(conn, end, writer int) uint32 { return uint32(conn)<<16 | uint32(end)<<8 | uint32(writer) }

// recLen is the length of record n of the writer named by key, from
// recMin to maxLen.
func recLen(key, n uint32, maxLen int) int {
	h := key*0x9e3779b1 ^ n*0x85ebca6b
	h ^= h >> 15
	h *= 0xc2b2ae35
	h ^= h >> 13
	return recMin + int(h%uint32(maxLen-recMin+1))
}

// appendRecord appends record n of the writer named by key to b.
func appendRecord(b []byte, key, n uint32, maxLen int) []byte {
	size := recLen(key, n, maxLen)
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, recMagic)
	b = binary.BigEndian.AppendUint32(b, key)
	b = binary.BigEndian.AppendUint32(b, n)
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	for i := range size - recHeader - 4 {
		b = append(b, byte(uint32(i)*0x3b+n*0x1f+key*0x65))
	}
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
}

// stressFailures collects what goroutines found wrong; the first one
// aborts the test, whose goroutine reports them all.
type stressFailures struct {
	mu    sync.Mutex
	msgs  []string  // guarded by mu
	after int       // guarded by mu: failures reported after the first
	first time.Time // guarded by mu: when the first was
	once  sync.Once
	abort chan struct{} // closed at the first failure
}

func newStressFailures() *stressFailures { return &stressFailures{abort: make(chan struct{})} }

func (f *stressFailures) add(format string, args ...any) {
	f.mu.Lock()
	if f.aborted() {
		f.after++ // most likely a consequence of the teardown
	} else {
		if len(f.msgs) == 0 {
			f.first = time.Now()
		}
		f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
	}
	f.mu.Unlock()
	f.once.Do(func() { close(f.abort) })
}

func (f *stressFailures) aborted() bool { return isClosed(f.abort) }

// sleep waits d, or less if the test aborts; it reports whether it waited d.
func (f *stressFailures) sleep(d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-f.abort:
		return false
	}
}

// until polls cond every 2 ms for up to d; it reports whether cond held.
func (f *stressFailures) until(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) || !f.sleep(2*time.Millisecond) {
			return false
		}
	}
	return true
}

// waitGroup waits for wg up to d; it reports whether wg was done.
func waitGroup(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func goroutineDump() string {
	buf := make([]byte, 8<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// isDeadline reports whether err is a passed deadline, shaped as it should be.
func isDeadline(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
}

// callEnd is how a blocked call ended, and when.
type callEnd struct {
	err error
	at  time.Time
	n   int    // bytes written (writers)
	rec uint32 // number of the record being written (writers)
}

// recordWriters are the writers on one end of a record connection.
type recordWriters struct {
	wg      sync.WaitGroup
	stop    chan struct{} // closed to stop them between records
	inWrite atomic.Int32
	done    [stressWriters]atomic.Uint32 // records written whole
	ends    [stressWriters]callEnd       // written by each before it exits
}

// recordReader verifies what one end reads: whole, intact records, each
// writer's in sequence. Its readers take turns (mu), since a byte stream
// read by several goroutines at once has no order.
type recordReader struct {
	conn, from int // the connection and the end whose writers it reads
	maxLen     int // of a record

	mu     sync.Mutex
	broken bool                  // guarded by mu: a record was wrong
	buf    []byte                // guarded by mu: read, not yet a whole record
	off    int64                 // guarded by mu: stream offset of buf[0]
	next   [stressWriters]uint32 // guarded by mu: next record expected per writer

	wg       sync.WaitGroup
	records  atomic.Int64
	timeouts atomic.Int64
	inRead   atomic.Int32
	pause    atomic.Bool
	parked   atomic.Int32
	resume   chan struct{}
	ends     [stressReaders]callEnd // written by each before it exits
}

// feed takes bytes read and checks every record they complete.
func (r *recordReader) feed(b []byte) error {
	r.buf = append(r.buf, b...)
	for len(r.buf) >= recHeader {
		magic := binary.BigEndian.Uint32(r.buf)
		key := binary.BigEndian.Uint32(r.buf[4:])
		n := binary.BigEndian.Uint32(r.buf[8:])
		size := int(binary.BigEndian.Uint32(r.buf[12:]))
		w := int(key & 0xff)
		if magic != recMagic || key != recKey(r.conn, r.from, w) || w >= stressWriters || size != recLen(key, n, r.maxLen) {
			return fmt.Errorf("no record header at stream offset %d: % x", r.off, r.buf[:recHeader])
		}
		if len(r.buf) < size {
			return nil
		}
		if want := appendRecord(nil, key, n, r.maxLen); !bytes.Equal(r.buf[:size], want) {
			i := 0
			for r.buf[i] == want[i] {
				i++
			}
			var intruder string
			if b := r.buf[i:]; len(b) >= recHeader && binary.BigEndian.Uint32(b) == recMagic {
				key := binary.BigEndian.Uint32(b[4:])
				intruder = fmt.Sprintf(", where record %d of writer %d begins", binary.BigEndian.Uint32(b[8:]), key&0xff)
			}
			return fmt.Errorf("record %d of writer %d at stream offset %d differs at byte %d of %d: %#x, want %#x%s",
				n, w, r.off, i, size, r.buf[i], want[i], intruder)
		}
		if n != r.next[w] {
			return fmt.Errorf("record %d of writer %d at stream offset %d, want record %d", n, w, r.off, r.next[w])
		}
		r.next[w]++
		r.records.Add(1)
		r.buf = r.buf[size:]
		r.off += int64(size)
	}
	return nil
}

// recordConn is a connection both of whose ends write records and read
// the other's, while a churner moves their read deadlines.
type recordConn struct {
	id      int
	maxLen  int      // of a record
	ends    [2]*Conn // dialed, accepted
	closer  int      // the end closed while its calls are blocked
	writers [2]*recordWriters
	readers [2]*recordReader // readers[e] reads what ends[e] receives
	churn   struct {
		wg   sync.WaitGroup
		stop chan struct{}
	}
	closing   atomic.Bool   // set as the closer is closed: calls may fail from now on
	closeTook time.Duration // slowest blocked call's return after Close began
}

func startRecordConn(all *sync.WaitGroup, f *stressFailures, id int, ends [2]*Conn, maxLen int) *recordConn {
	rc := &recordConn{id: id, maxLen: maxLen, ends: ends, closer: id % 2}
	for e := range 2 {
		rc.writers[e] = &recordWriters{stop: make(chan struct{})}
		rc.readers[e] = &recordReader{conn: id, from: 1 - e, maxLen: maxLen, resume: make(chan struct{})}
	}
	for e := range 2 {
		for w := range stressWriters {
			rc.startWriter(all, f, e, w)
		}
		for i := range stressReaders {
			rc.startReader(all, f, e, i)
		}
	}
	rc.churn.stop = make(chan struct{})
	rc.churn.wg.Add(1)
	all.Go(func() {
		defer rc.churn.wg.Done()
		rng := rand.New(rand.NewPCG(uint64(id), 1))
		for !isClosed(rc.churn.stop) && !f.aborted() {
			c := rc.ends[rng.IntN(2)]
			var at time.Time
			switch rng.IntN(4) {
			case 0, 1:
				at = time.Now().Add(time.Duration(rng.IntN(20_000)) * time.Microsecond)
			case 2:
				at = time.Now().Add(-time.Duration(rng.IntN(1000)) * time.Millisecond)
			}
			if err := c.SetReadDeadline(at); err != nil {
				f.add("conn %d: SetReadDeadline: %v", id, err)
				return
			}
			time.Sleep(time.Duration(rng.IntN(5000)) * time.Microsecond)
		}
	})
	return rc
}

func (rc *recordConn) startWriter(all *sync.WaitGroup, f *stressFailures, e, w int) {
	ws := rc.writers[e]
	c := rc.ends[e]
	key := recKey(rc.id, e, w)
	ws.wg.Add(1)
	all.Go(func() {
		defer ws.wg.Done()
		var buf []byte
		for n := uint32(0); n < stressMaxRecs && !isClosed(ws.stop); n++ {
			buf = appendRecord(buf[:0], key, n, rc.maxLen)
			ws.inWrite.Add(1)
			k, err := c.Write(buf)
			ws.inWrite.Add(-1)
			if err != nil {
				ws.ends[w] = callEnd{err: err, at: time.Now(), n: k, rec: n}
				if !rc.closing.Load() {
					f.add("conn %d end %d writer %d: Write of record %d before any Close: %v", rc.id, e, w, n, err)
				}
				return
			}
			if k != len(buf) {
				f.add("conn %d end %d writer %d: Write of record %d returned %d of %d bytes and no error", rc.id, e, w, n, k, len(buf))
				return
			}
			ws.done[w].Store(n + 1)
		}
		ws.ends[w].at = time.Now()
	})
}

func (rc *recordConn) startReader(all *sync.WaitGroup, f *stressFailures, e, i int) {
	r := rc.readers[e]
	c := rc.ends[e]
	r.wg.Add(1)
	all.Go(func() {
		defer r.wg.Done()
		buf := make([]byte, 8<<10)
		for {
			if r.pause.Load() {
				r.parked.Add(1)
				select {
				case <-r.resume:
				case <-f.abort:
				}
				r.parked.Add(-1)
			}
			r.mu.Lock()
			if r.broken {
				r.mu.Unlock()
				r.ends[i] = callEnd{err: errors.New("stream broken"), at: time.Now()}
				return
			}
			r.inRead.Add(1)
			n, err := c.Read(buf)
			r.inRead.Add(-1)
			ferr := r.feed(buf[:n])
			r.broken = ferr != nil
			r.mu.Unlock()
			if ferr != nil {
				f.add("conn %d end %d: %v", rc.id, e, ferr)
				r.ends[i] = callEnd{err: ferr, at: time.Now()}
				return
			}
			switch {
			case err == nil:
			case isDeadline(err):
				if n > 0 {
					f.add("conn %d end %d: Read returned %d bytes with %v", rc.id, e, n, err)
				}
				r.timeouts.Add(1)
				time.Sleep(time.Millisecond) // the deadline may stay passed a while
			default:
				r.ends[i] = callEnd{err: err, at: time.Now()}
				if !rc.closing.Load() {
					f.add("conn %d end %d: Read before any Close: %v", rc.id, e, err)
				}
				return
			}
		}
	})
}

// finish ends the connection: the closer's peer stops writing and reading,
// so that the closer's writers block on a full send buffer and its readers
// on an empty receive buffer; three goroutines then Close the closer at
// once. The blocked calls must return promptly with net.ErrClosed, one
// Close returns nil once the peer, reading again, has taken every record,
// and the peer reads them all up to EOF.
func (rc *recordConn) finish(all *sync.WaitGroup, f *stressFailures) {
	x, y := rc.closer, 1-rc.closer
	cx, cy := rc.ends[x], rc.ends[y]
	fail := func(format string, args ...any) {
		f.add("conn %d (closing end %d): %s", rc.id, x, fmt.Sprintf(format, args...))
	}

	close(rc.writers[y].stop)
	if !waitGroup(&rc.writers[y].wg, 10*time.Second) {
		fail("the peer's writers did not stop")
		return
	}
	for w, end := range rc.writers[y].ends {
		if end.err != nil {
			fail("the peer's writer %d: %v", w, end.err)
			return
		}
	}
	ry := rc.readers[y]
	ry.pause.Store(true)
	if !f.until(10*time.Second, func() bool { return ry.parked.Load() == stressReaders }) {
		fail("the peer's readers did not pause")
		return
	}
	// The peer's end is asked first: once all it sent is acknowledged,
	// the closer has it all, and nothing readable then means the reader
	// took it. Asked the other way round, the peer's last record could
	// arrive between the two looks, readable but not yet read when the
	// Close below won the race with the reader's wake-up (one record of
	// 770 unread, once under -race in CI).
	blocked := func() bool {
		cy.mu.Lock()
		acked := cy.snd.buf.Len() == 0
		cy.mu.Unlock()
		cx.mu.Lock()
		full := cx.snd.buf.Full()
		readable := cx.readableLocked()
		cx.mu.Unlock()
		return full && !readable && acked &&
			rc.writers[x].inWrite.Load() == stressWriters && rc.readers[x].inRead.Load() == 1
	}
	// Up to seconds: the shared sockets' kernel buffers overflow, and the
	// last packets may wait for a retransmission timeout.
	if !f.until(20*time.Second, blocked) {
		fail("the closer's calls did not block: %d writers in Write, %d readers in Read", rc.writers[x].inWrite.Load(), rc.readers[x].inRead.Load())
		return
	}

	rc.closing.Store(true)
	start := time.Now()
	closes := make(chan error, 3)
	var closers sync.WaitGroup
	for range 3 {
		closers.Add(1)
		all.Go(func() {
			defer closers.Done()
			closes <- cx.Close()
		})
	}
	if !waitGroup(&rc.writers[x].wg, 10*time.Second) || !waitGroup(&rc.readers[x].wg, 10*time.Second) {
		fail("blocked calls did not return after Close")
		return
	}
	for w, end := range rc.writers[x].ends {
		if !errors.Is(end.err, net.ErrClosed) {
			fail("writer %d blocked across Close: %v", w, end.err)
		}
		rc.closeTook = max(rc.closeTook, end.at.Sub(start))
	}
	for i, end := range rc.readers[x].ends {
		if !errors.Is(end.err, net.ErrClosed) {
			fail("reader %d blocked across Close: %v", i, end.err)
		}
		rc.closeTook = max(rc.closeTook, end.at.Sub(start))
	}
	if rc.closeTook > stressPrompt {
		fail("blocked calls took %v to return after Close", rc.closeTook)
	}

	// The peer reads again: the lingering Close ends when it has all.
	ry.pause.Store(false)
	close(ry.resume)
	if !waitGroup(&ry.wg, 30*time.Second) || !waitGroup(&closers, 30*time.Second) {
		fail("the peer did not read to the end, or Close did not return")
		return
	}
	close(closes)
	var won, lost int
	for err := range closes {
		var ue *UnacknowledgedError
		switch {
		case err == nil || errors.As(err, &ue):
			won++
			if err != nil {
				fail("Close: %v, though the peer read everything", err)
			}
		case errors.Is(err, net.ErrClosed):
			lost++
		default:
			fail("concurrent Close: %v", err)
		}
	}
	if won != 1 || lost != 2 {
		fail("concurrent Closes: %d returned nil, %d net.ErrClosed; want 1 and 2", won, lost)
	}
	for i, end := range ry.ends {
		if !errors.Is(end.err, io.EOF) {
			fail("the peer's reader %d: %v, want EOF", i, end.err)
		}
	}

	// Every record written whole arrived, each direction; of a write
	// that Close cut short, what it queued ends the stream.
	rx := rc.readers[x]
	for w := range stressWriters {
		if got, want := rx.next[w], rc.writers[y].done[w].Load(); got != want {
			fail("the closer read %d records of the peer's writer %d, which wrote %d", got, w, want)
		}
		if got, want := ry.next[w], rc.writers[x].done[w].Load(); got != want {
			fail("the peer read %d records of the closer's writer %d, which wrote %d", got, w, want)
		}
	}
	if len(rx.buf) > 0 {
		fail("the closer read %d bytes past its last whole record", len(rx.buf))
	}
	var tail []byte
	for w, end := range rc.writers[x].ends {
		if end.n > 0 {
			tail = append(tail, appendRecord(nil, recKey(rc.id, x, w), end.rec, rc.maxLen)[:end.n]...)
		}
	}
	if !bytes.Equal(ry.buf, tail) {
		fail("the peer's stream ends with %d bytes past its last whole record, want the %d the cut-short writes queued", len(ry.buf), len(tail))
	}

	if _, err := cy.Write([]byte("x")); !errors.Is(err, ErrPeerClosed) {
		fail("the peer's Write after the shutdown: %v, want ErrPeerClosed", err)
	}
	if err := cy.Close(); err != nil {
		fail("the peer's Close: %v", err)
	}
}

// deadlineConn churns all three deadlines of both ends while two writers
// on each end write junk (0xEE) and two readers on each read it at once;
// afterwards each direction must still carry a marker intact.
type deadlineConn struct {
	ends         [2]*Conn
	stop         chan struct{} // closed to stop the churner and the writers
	churn        sync.WaitGroup
	writers      sync.WaitGroup
	readers      sync.WaitGroup
	stopReading  atomic.Bool
	readTimeouts atomic.Int64
	wrTimeouts   atomic.Int64
	junkRead     atomic.Int64
}

const junk = 0xEE

func startDeadlineConn(all *sync.WaitGroup, f *stressFailures, ends [2]*Conn) *deadlineConn {
	dc := &deadlineConn{ends: ends, stop: make(chan struct{})}
	dc.churn.Add(1)
	all.Go(func() {
		defer dc.churn.Done()
		rng := rand.New(rand.NewPCG(99, 1))
		for !isClosed(dc.stop) && !f.aborted() {
			c := dc.ends[rng.IntN(2)]
			var at time.Time
			switch rng.IntN(4) {
			case 0, 1:
				at = time.Now().Add(time.Duration(rng.IntN(20_000)) * time.Microsecond)
			case 2:
				at = time.Now().Add(-time.Duration(rng.IntN(1000)) * time.Millisecond)
			}
			var err error
			switch rng.IntN(3) {
			case 0:
				err = c.SetDeadline(at)
			case 1:
				err = c.SetReadDeadline(at)
			case 2:
				err = c.SetWriteDeadline(at)
			}
			if err != nil {
				f.add("deadline conn: Set*Deadline: %v", err)
				return
			}
			time.Sleep(time.Duration(rng.IntN(5000)) * time.Microsecond)
		}
	})
	for e, c := range dc.ends {
		for w := range stressWriters {
			dc.writers.Add(1)
			all.Go(func() {
				defer dc.writers.Done()
				rng := rand.New(rand.NewPCG(uint64(e), uint64(w)))
				buf := bytes.Repeat([]byte{junk}, 16<<10)
				for !isClosed(dc.stop) {
					size := 1 + rng.IntN(len(buf))
					n, err := c.Write(buf[:size])
					switch {
					case err == nil && n == size:
					case isDeadline(err) && n <= size:
						dc.wrTimeouts.Add(1)
						time.Sleep(time.Millisecond)
					default:
						f.add("deadline conn end %d writer %d: Write of %d bytes: %d, %v", e, w, size, n, err)
						return
					}
				}
			})
		}
		for i := range stressReaders {
			dc.readers.Add(1)
			all.Go(func() {
				defer dc.readers.Done()
				buf := make([]byte, 8<<10)
				for !dc.stopReading.Load() {
					n, err := c.Read(buf)
					for _, b := range buf[:n] {
						if b != junk {
							f.add("deadline conn end %d reader %d: byte %#x in the junk", e, i, b)
							return
						}
					}
					dc.junkRead.Add(int64(n))
					switch {
					case err == nil:
					case isDeadline(err):
						dc.readTimeouts.Add(1)
						time.Sleep(time.Millisecond)
					default:
						f.add("deadline conn end %d reader %d: %v", e, i, err)
						return
					}
				}
			})
		}
	}
	return dc
}

// clearDeadlines clears both ends' deadlines, reporting whether it could.
func (dc *deadlineConn) clearDeadlines(f *stressFailures) bool {
	for _, c := range dc.ends {
		if err := c.SetDeadline(time.Time{}); err != nil {
			f.add("deadline conn: SetDeadline: %v", err)
			return false
		}
	}
	return true
}

// finish stops the churn, the writers and the readers, then sends a
// marker each way with no deadline set: each must arrive whole after what
// junk was still on its way, and the connection closes cleanly.
func (dc *deadlineConn) finish(all *sync.WaitGroup, f *stressFailures) {
	close(dc.stop)
	if !waitGroup(&dc.churn, 10*time.Second) {
		f.add("deadline conn: the churner did not stop")
		return
	}
	if !dc.clearDeadlines(f) {
		return
	}
	if !waitGroup(&dc.writers, 10*time.Second) {
		f.add("deadline conn: the writers did not stop")
		return
	}
	dc.stopReading.Store(true)
	for _, c := range dc.ends {
		_ = c.SetReadDeadline(time.Now()) // wakes the readers
	}
	if !waitGroup(&dc.readers, 10*time.Second) {
		f.add("deadline conn: the readers did not stop")
		return
	}
	if !dc.clearDeadlines(f) {
		return
	}

	marker := make([]byte, 64<<10)
	for i := range marker {
		marker[i] = byte(i % junk)
	}
	var dirs sync.WaitGroup
	for e, c := range dc.ends {
		peer := dc.ends[1-e]
		dirs.Add(1)
		all.Go(func() {
			defer dirs.Done()
			if n, err := c.Write(marker); n != len(marker) || err != nil {
				f.add("deadline conn end %d: marker Write: %d, %v", e, n, err)
			}
		})
		dirs.Add(1)
		all.Go(func() {
			defer dirs.Done()
			_ = peer.SetReadDeadline(time.Now().Add(20 * time.Second))
			var got []byte
			buf := make([]byte, 8<<10)
			for len(got) < len(marker) {
				n, err := peer.Read(buf)
				b := buf[:n]
				for len(got) == 0 && len(b) > 0 && b[0] == junk {
					b = b[1:] // junk still on its way when the writers stopped
				}
				got = append(got, b...)
				if err != nil {
					f.add("deadline conn end %d: reading the marker after %d bytes: %v", 1-e, len(got), err)
					return
				}
			}
			if !bytes.Equal(got, marker) {
				f.add("deadline conn end %d: the marker arrived altered", 1-e)
			}
		})
	}
	if !waitGroup(&dirs, 30*time.Second) {
		f.add("deadline conn: the markers did not cross")
		return
	}
	if err := dc.ends[0].Close(); err != nil {
		f.add("deadline conn: Close: %v", err)
	}
	_ = dc.ends[1].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := dc.ends[1].Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		f.add("deadline conn: Read after the peer's Close: %v, want EOF", err)
	}
	if err := dc.ends[1].Close(); err != nil {
		f.add("deadline conn: the peer's Close: %v", err)
	}
}

// stressPairs dials n connections to one listener, all from one local
// port, and returns each with its accepted end.
func stressPairs(t *testing.T, cfg Config, n int) [][2]*Conn {
	t.Helper()
	ln := listenRaw(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	d := Dialer{Config: cfg, LocalAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	pairs := make([][2]*Conn, n)
	for i := range pairs {
		c, err := d.DialUDT(ctx, "udp", ln.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		d.LocalAddr = c.LocalAddr().(*net.UDPAddr)
		s, err := ln.AcceptUDT()
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		pairs[i] = [2]*Conn{c, s}
	}
	return pairs
}

// TestConcurrentStress runs eight connections between one listener and
// dials sharing one port, over loopback UDP. On each, both ends at once
// write records (two writers an end, each Write one self-checking record)
// and read the other's (two readers an end), while a churner sets read
// deadlines near, past and none: every record read must be whole, intact
// and next in its writer's sequence, and every failed Read a passed
// deadline. Then, with the deadlines cleared, reads must go on; the
// closer's calls block and three goroutines Close it at once (see
// recordConn.finish). A ninth connection churns all three deadlines under
// unchecked writes and reads, then carries a marker each way. Every
// goroutine must end within a bound.
//
// Records fit in one packet, or span up to three: a Write of more than a
// packet may block when the send buffer fills, and must not let another
// writer's bytes in meanwhile, as with a *net.TCPConn.
func TestConcurrentStress(t *testing.T) {
	payload := payloadSize(DefaultMSS)
	for _, tc := range []struct {
		name   string
		maxLen int
	}{
		{"one-packet records", payload},
		{"multi-packet records", 3 * payload},
	} {
		t.Run(tc.name, func(t *testing.T) { stress(t, tc.maxLen) })
	}
}

func stress(t *testing.T, maxLen int) {
	// Small buffers, so that Write and Read block often. A fixed rate, so
	// that how long the connections take to drain does not hang on a
	// controller's estimates, which the stop-and-go traffic here (writes
	// and reads cut by deadlines, readers paused) leads astray: the native
	// controller may leave slow start at its initial 16 packets/s (a 4.11
	// quirk it keeps), the model-based one stayed for good near the rate
	// of a lull. Linger bounds the teardown after a failure, when no one
	// reads; a finish needs far less (see recordConn.finish).
	cfg := Config{
		SendBuffer:    64,
		ReceiveBuffer: 64,
		NewController: func() CongestionController { return NewFixedRate(stressRate) },
		Linger:        5 * time.Second,
	}
	pairs := stressPairs(t, cfg, stressConns+1)
	f := newStressFailures()
	var all sync.WaitGroup
	finished := make(chan struct{})
	all.Go(func() {
		// A failure ends every connection, so that no call stays blocked.
		select {
		case <-f.abort:
			for _, p := range pairs {
				for _, c := range p {
					all.Go(func() { c.Close() })
				}
			}
		case <-finished:
		}
	})

	start := time.Now()
	rcs := make([]*recordConn, stressConns)
	for i := range rcs {
		rcs[i] = startRecordConn(&all, f, i, pairs[i], maxLen)
	}
	dc := startDeadlineConn(&all, f, pairs[stressConns])
	if f.sleep(stressFor) {
		endChurn(f, rcs)
	}
	stressed := time.Since(start)
	if !f.aborted() {
		var fin sync.WaitGroup
		for _, rc := range rcs {
			fin.Go(func() { rc.finish(&all, f) })
		}
		fin.Go(func() { dc.finish(&all, f) })
		if !waitGroup(&fin, 60*time.Second) {
			t.Errorf("connections not finished 60 s after the stress:\n%s", goroutineDump())
			f.add("connections not finished") // tears them down
		}
	}

	close(finished)
	if !waitGroup(&all, 30*time.Second) {
		t.Errorf("goroutines still running 30 s after the end:\n%s", goroutineDump())
	}
	var total, timeouts int64
	var perEnd [][2]int64
	var closeTook time.Duration
	for _, rc := range rcs {
		var got [2]int64
		for e, r := range rc.readers {
			got[e] = r.records.Load()
			total += got[e]
			timeouts += r.timeouts.Load()
		}
		perEnd = append(perEnd, got)
		closeTook = max(closeTook, rc.closeTook)
	}
	var sent, retrans, dropped, missing uint64
	for _, p := range pairs[:stressConns] {
		for _, c := range p {
			st := c.Stats().Total
			sent += st.PktSent
			retrans += st.PktRetrans
			dropped += st.PktRecvDropped
			missing += st.PktRcvLoss
		}
	}
	t.Logf("%d records of up to %d bytes verified (per connection, read by each end: %v); %d Reads ended by a deadline",
		total, maxLen, perEnd, timeouts)
	if closeTook > 0 {
		t.Logf("calls blocked across Close returned within %v of it", closeTook.Round(time.Microsecond))
	}
	t.Logf("record connections: %d data packets sent, %d retransmitted; receivers dropped %d and found %d missing",
		sent, retrans, dropped, missing)
	t.Logf("deadline conn: %d bytes of junk read, %d Reads and %d Writes ended by a deadline",
		dc.junkRead.Load(), dc.readTimeouts.Load(), dc.wrTimeouts.Load())
	t.Logf("%v in all, %v of it to end the connections", time.Since(start).Round(time.Millisecond), (time.Since(start) - stressed).Round(time.Millisecond))
	f.mu.Lock()
	if len(f.msgs) > 0 {
		t.Logf("first failure %v after the start", f.first.Sub(start).Round(time.Millisecond))
	}
	for _, m := range f.msgs {
		t.Error(m)
	}
	if f.after > 0 {
		t.Logf("%d more failures reported while the connections were torn down", f.after)
	}
	f.mu.Unlock()
	if t.Failed() {
		t.FailNow()
	}

	for _, rc := range rcs {
		for e, r := range rc.readers {
			require.GreaterOrEqual(t, r.records.Load(), int64(stressMinRecs), "conn %d end %d: records verified", rc.id, e)
		}
		require.NotZero(t, rc.readers[0].timeouts.Load()+rc.readers[1].timeouts.Load(), "conn %d: Reads failed by a deadline", rc.id)
	}
	require.NotZero(t, dc.readTimeouts.Load(), "deadline conn: Reads failed by a deadline")
	require.NotZero(t, dc.wrTimeouts.Load(), "deadline conn: Writes failed by a deadline")
	require.NotZero(t, dc.junkRead.Load(), "deadline conn: junk read")
}

// endChurn stops the read-deadline churn, clears the deadlines and checks
// that every end still reads records.
func endChurn(f *stressFailures, rcs []*recordConn) {
	for _, rc := range rcs {
		close(rc.churn.stop)
	}
	for _, rc := range rcs {
		if !waitGroup(&rc.churn.wg, 10*time.Second) {
			f.add("conn %d: the churner did not stop", rc.id)
		}
		for _, c := range rc.ends {
			if err := c.SetReadDeadline(time.Time{}); err != nil {
				f.add("conn %d: SetReadDeadline: %v", rc.id, err)
			}
		}
	}
	before := make([][2]int64, len(rcs))
	for i, rc := range rcs {
		for e, r := range rc.readers {
			before[i][e] = r.records.Load()
		}
	}
	progressed := func() bool {
		for i, rc := range rcs {
			for e, r := range rc.readers {
				if r.records.Load() < before[i][e]+stressAfterChurn {
					return false
				}
			}
		}
		return true
	}
	if !f.until(10*time.Second, progressed) {
		for i, rc := range rcs {
			for e, r := range rc.readers {
				if n := r.records.Load() - before[i][e]; n < stressAfterChurn {
					f.add("conn %d end %d: %d records read in the 10 s after the deadlines were cleared, want %d", rc.id, e, n, stressAfterChurn)
				}
			}
		}
	}
}
