package udt

import (
	"sync"
	"time"
)

// liveness is what a connection knows of its peer's life and its own
// end: the timer, when the peer was last heard and last made progress,
// and the shutdown. Guarded by Conn.mu, except unregOnce; its methods run
// with Conn.mu held.
type liveness struct {
	timer        *time.Timer
	timerAt      time.Time
	expCount     int
	lastHeard    time.Time // last packet from the peer or EXP expiry
	lastPacket   time.Time // last packet from the peer
	lastProgress time.Time // last ACK advance or NAK (the peer gets our data), or when data was first outstanding
	ackAdvanced  time.Time // last ACK advance, or when data was first outstanding
	stallResent  time.Time // last resend of the oldest unacknowledged packet by stallDueLocked
	stallResends int       // such resends since the last progress
	// holeChain counts the ACK advances in a row that came to rest at a
	// packet whose retransmission is overdue (see onAckAdvancedLocked).
	holeChain    int
	lastBurstLog time.Time // last retransmission burst logged (see logRetransmissionLocked)

	peerClosed   bool      // SHUTDOWN received
	closing      bool      // Close called
	lastShutdown time.Time // last shutdown sent by a closed connection
	unregistered bool      // out of the multiplexer
	unregOnce    sync.Once
	// ended is why the connection ended before Close, as Write reported
	// it then: ErrPeerClosed for the peer's shutdown, else the failure
	// (c.err), whichever came first; nil while the connection lives.
	// Close reports it with the written bytes left unacknowledged (see
	// closeLocked).
	ended error
	// After a shutdown: the closeWait timer and the next repeat's, both
	// stopped by unregister so that they let go of the connection at once.
	waitTimer, repeatTimer *time.Timer
}

// heard notes a packet from the peer: it is alive, and the EXP count
// starts over.
func (l *liveness) heard(now time.Time) {
	l.lastHeard, l.lastPacket, l.expCount = now, now, 1
}

// end notes that the connection ended for err, unless it had already.
func (l *liveness) end(err error) {
	if l.ended == nil {
		l.ended = err
	}
}

// progressed notes that the peer acknowledged or reported the loss of
// our data: it is receiving it, and the stall resends start over.
func (l *liveness) progressed(now time.Time) {
	l.lastProgress, l.ackAdvanced, l.stallResends = now, now, 0
}
