package udt

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/udt-go/udt/internal/netsim"
	"github.com/udt-go/udt/internal/seq"
)

// fuzzReceiver returns an established message-mode connection whose
// receive side the fuzzer drives directly; its multiplexer is not started,
// and what it would send goes nowhere.
func fuzzReceiver(t *testing.T) (*Conn, seq.Num) {
	a, b := netsim.NewPacketPipe(netsim.LinkConfig{}, netsim.LinkConfig{}, 1)
	t.Cleanup(func() { a.Close(); b.Close() })
	m := newMultiplexer(netPacketConn{c: a})
	cfg, err := Config{Type: TypeMessage, ReceiveBuffer: 64, FlowWindow: 64}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	c := newConn(m, cfg, netip.MustParseAddrPort("127.0.0.1:9"))
	const isn = seq.Num(seq.Max - 20) // the window crosses the wrap
	c.mu.Lock()
	c.establishLocked(time.Now(), 7, DefaultMSS, 64, 100, isn)
	c.live.timer.Stop()
	c.mu.Unlock()
	return c, isn
}

// checkRuns checks the receive window's runs (see continuesRun) against a
// walk of its slots: both ends of every run hold its length, and no
// message that could be read is left: every complete one is out of order
// or lies at or beyond the in-order point contig.
func checkRuns(t *testing.T, c *Conn, contig int) {
	t.Helper()
	for i := 0; i < c.rcv.buf.Len(); {
		if c.rcv.buf.Ptr(i).state != slotData {
			i++
			continue
		}
		end := i
		for end+1 < c.rcv.buf.Len() && continuesRun(c.rcv.buf.Ptr(end), c.rcv.buf.Ptr(end+1)) {
			end++
		}
		n := int32(end - i + 1)
		if a, z := c.rcv.buf.Ptr(i).run, c.rcv.buf.Ptr(end).run; a != n || z != n {
			t.Fatalf("run of slots %d-%d: its ends hold lengths %d and %d", i, end, a, z)
		}
		head, tail := c.rcv.buf.Ptr(i), c.rcv.buf.Ptr(end)
		if (head.pos == posFirst || head.pos == posSolo) && (tail.pos == posLast || tail.pos == posSolo) &&
			(!head.inOrder || end < contig) {
			t.Fatalf("message in slots %d-%d is complete and readable, but was not read", i, end)
		}
		i = end + 1
	}
}

// FuzzMessageReceiver feeds a message-mode receiver arbitrary data packets
// (any sequence number near the window, message number, position and
// order flag) and drop requests (any range, either form), reading what it
// can after each. It checks that nothing panics, that every slot before the
// ACK point is filled or settled (a hole there would stall the connection
// for good), that the out-of-order count stays true, and that every
// message read is made of packets the fuzzer sent, in sequence order (a
// packet may be sent at one number several times with other bytes: while
// outside the window, or as a duplicate, and any of them may be kept),
// and that the runs the receiver keeps are true and leave no readable
// message unread (see checkRuns).
func FuzzMessageReceiver(f *testing.F) {
	f.Add([]byte{0, 0, 1, 3, 1, 5, 0, 1, 1, 2, 1, 3, 0, 2, 1, 1, 1, 3})
	f.Add([]byte{0, 0, 1, 2, 1, 4, 0, 2, 1, 1, 1, 4, 1, 1, 1, 3, 0, 0, 0, 3, 2, 0, 1, 1})
	f.Add([]byte{0, 0, 1, 2, 0, 4, 1, 0, 1, 2, 0x80, 0, 0, 3, 2, 3, 0, 9})
	f.Fuzz(func(t *testing.T, ops []byte) {
		c, isn := fuzzReceiver(t)
		sent := make(map[seq.Num][][]byte) // every body sent at each number
		buf := make([]byte, 64*DefaultMSS)
		for len(ops) >= 6 {
			op := ops[:6]
			ops = ops[6:]
			s := isn.Add(int(op[1]%80) - 8)
			c.mu.Lock()
			var ob outbox
			if op[0]&1 == 0 {
				body := bytes.Repeat([]byte{op[5]}, 1+int(op[5])%40)
				p := &packet{seq: s, msg: seq.Msg(op[2] % 8), pos: msgPos(op[3] & 3), inOrder: op[4]&1 == 1, body: body}
				sent[s] = append(sent[s], body)
				c.onDataLocked(p, time.Now(), &ob)
			} else {
				info := uint32(op[2] % 8)
				if op[4]&0x80 != 0 {
					info |= dropExact
				}
				d := dropBody{first: s, last: s.Add(int(op[3] % 12))}
				c.onDropRequestLocked(&packet{control: true, typ: ctrlDropReq, info: info, body: d.append(nil)}, time.Now())
			}
			for {
				off, slots, size, ok := c.nextMessageLocked()
				if !ok {
					break
				}
				first := c.rcv.readSeq.Add(off)
				var want []byte
				for i := range slots {
					held := *c.rcv.buf.At(off + i).buf
					want = append(want, held...)
					if !slices.ContainsFunc(sent[first.Add(i)], func(b []byte) bool { return bytes.Equal(b, held) }) {
						t.Fatalf("slot %d holds bytes that were not sent as packet %d", off+i, first.Add(i))
					}
				}
				c.takeMessageLocked(buf, off, slots)
				if !bytes.Equal(buf[:size], want) {
					t.Fatalf("message read as %q, its packets hold %q", buf[:size], want)
				}
			}
			contig := seq.Off(c.rcv.readSeq, c.rcv.contig())
			unordered := 0
			for i := range c.rcv.buf.Len() {
				sl := c.rcv.buf.At(i)
				if i < contig && sl.state == slotEmpty {
					t.Fatalf("slot %d, before the ACK point %d, is empty", i, contig)
				}
				if sl.state == slotData && !sl.inOrder {
					unordered++
				}
			}
			if unordered != c.rcv.unordered {
				t.Fatalf("%d out-of-order packets held, counted %d", unordered, c.rcv.unordered)
			}
			checkRuns(t, c, contig)
			c.mu.Unlock()
		}
	})
}
