package udt

import "net/netip"

// outbox collects the control packets built under a lock (a connection's
// or a listener's), to be written after it is released: the receive
// worker has one (multiplexer.rcvOut), timers and readers take one from
// outboxes.
type outbox struct {
	b    []byte
	ends []int
	arr  [4]int
}

// next returns the buffer to append the next datagram to.
func (o *outbox) next() []byte {
	if o.ends == nil {
		o.ends = o.arr[:0]
	}
	return o.b
}

// add records that b (returned by next, appended to) ends a datagram.
func (o *outbox) add(b []byte) {
	o.b = b
	o.ends = append(o.ends, len(b))
}

// outboxes serve the goroutines other than the receive worker (which has
// its own) that build control packets: timers and Read.
var outboxes = freeList[outbox]{max: 256, new: func() *outbox { return new(outbox) }}

func getOutbox() *outbox { return outboxes.get() }

// putOutbox returns o, flushed, to the free list; o may be nil. A buffer
// grown past outboxKeep (a burst of loss reports) is not kept.
func putOutbox(o *outbox) {
	if o != nil {
		o.reset()
		if cap(o.b) > outboxKeep {
			o.b = nil
		}
		outboxes.put(o)
	}
}

const outboxKeep = 16 << 10

func (o *outbox) reset() {
	o.b = o.b[:0]
	o.ends = o.ends[:0]
}

// writeTo writes the collected datagrams to addr on m's socket, one each,
// and empties o.
func (o *outbox) writeTo(m *multiplexer, addr netip.AddrPort) {
	if len(o.ends) == 0 || m.detached.Load() {
		o.reset()
		return // nothing to write, or the socket is its owner's again
	}
	m.ctr.wrote(len(o.ends), len(o.b))
	start := 0
	for _, end := range o.ends {
		m.send(o.b[start:end], addr)
		start = end
	}
	o.reset()
}
