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
// Conn.mu.
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
	// which goes once, after the run.
	inRun, runACK bool

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
