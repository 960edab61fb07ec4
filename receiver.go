package udt

import (
	"time"

	"github.com/udt-go/udt/internal/lossl"
	"github.com/udt-go/udt/internal/pktbuf"
	"github.com/udt-go/udt/internal/seq"
	"github.com/udt-go/udt/internal/window"
)

// receiver is the receiving half of a connection: the receive buffer,
// the packets found missing, and the ACK and NAK state. Guarded by
// Conn.mu; its methods run with it held.
type receiver struct {
	buf       *pktbuf.Ring[rcvPkt] // offset 0 holds readSeq
	unordered int                  // message mode: slots holding packets of out-of-order messages
	readSeq   seq.Num              // next to deliver
	readOff   int                  // bytes of readSeq already delivered
	lastSeq   seq.Num              // highest received
	loss      *lossl.List          // missing, reported in NAKs
	held      int64                // bytes of payload buffers held, counted against ReceiveMemory
	// maxPayload is the largest data payload accepted: Conn.payload, or in
	// rendezvous the one our own MSS allows, since a C++ 4.11 peer sends
	// with the MSS we announced.
	maxPayload int
	// Payload buffers at hand, of maxPayload bytes; each goes back to the
	// shared pool when the buffer empties.
	bufs pktbuf.Cache
	// inRun is set while handleData hands over a run of packets read
	// together; runACK records that one of them asked for an ACK at once,
	// which goes once, after the run (after the batch, when the run is
	// part of a batch read: see ackOwed).
	inRun, runACK bool
	// In a batch read, an ACK at once (ackOwed: a short packet came) or
	// a light ACK (lightOwed: the packets crossed its count) goes once,
	// after the batch (see multiplexer.sendOwedACKs).
	ackOwed, lightOwed bool

	lastAck      seq.Num // ACK number of the last full/short ACK sent
	lastAckAt    time.Time
	lastFullAt   time.Time
	lastAck2     seq.Num // highest ACK number confirmed by ACK2
	advertised   int     // available buffer in the last ACK
	ackNo        seq.Ack
	ackHist      window.ACKHistory
	arrivals     *window.Arrivals
	pktsSinceAck int
	lightAcks    int
	nextACK      time.Time
	nextNAK      time.Time
	nakThrough   seq.Num // the periodic NAK re-reports losses up to here (reportLossLocked)
	nakBody      []byte  // periodic NAK body
	// Where the first gap was when the timer first saw it unrepaired, and
	// when (see rcvGapStuckLocked).
	stuckSeq seq.Num
	stuckAt  time.Time
}

// contig is the first sequence number not yet received: the ACK number.
func (r *receiver) contig() seq.Num {
	if f, ok := r.loss.First(); ok {
		return f
	}
	return r.lastSeq.Inc()
}

// arrivalRate returns the arrival rate for ACK word 5: 4.11's
// median of the last 16 gaps, unless it exceeds by more than a quarter the
// rate measured over all arrivals since the last full ACK. Then packets
// arrived in bursts (a host or path that delivers them late and together),
// the median measured the bursts, and the span rate is reported instead.
// Loss lowers the span rate by its share only, well within the margin.
// The span rate is reported too where it exceeds the median's by more
// than a quarter: packets arrived in clumps (a sender whose send queue,
// busy with other connections, ran late and caught up), and the filter,
// which leaves out gaps under an eighth of the median, averaged only the
// long gaps between clumps (one clumped gap in four reads as 0.77 of the
// rate); with 8 streams on loopback, one stream's probes never showed,
// and it stayed at 800 packets/s beside streams of 100,000.
// The span rate also stands in where the median cannot measure: gaps of
// a few microseconds (more than fastArrivals packets/s, loopback), which
// whole microseconds round to 0 or 1, so that 4.11's filter finds them
// too scattered and reports 0, and a sender whose controller reads the
// rate would have none. Slower arrivals that the filter finds scattered
// (a few packets now and then) still report 0, as 4.11 does: a 4.11
// sender sizes its window by the rate, and keeps its last one on a 0.
func (r *receiver) arrivalRate() int {
	median := r.arrivals.ReceiveRate()
	span := r.arrivals.SpanRate()
	switch {
	case span == 0:
		return median
	case median == 0:
		if span > fastArrivals {
			return span
		}
		return 0
	case median > span+span/4 || span > median+median/4:
		return span // bursts or clumps
	}
	return median
}
