package cc

import (
	"math"
	"time"

	"github.com/udt-go/udt/internal/seq"
)

// TCPLike is a window-based controller in the manner of TCP NewReno and
// the C++ library's example CTCP: no pacing (period 0), a window that
// starts at 2 packets and grows by one per packet acknowledged in slow
// start and by one per window in congestion avoidance, and is halved once
// per loss event. A timeout restarts slow start from 2 packets.
//
// UDT reports loss by NAK, not by duplicate ACKs: a loss event is a NAK
// whose first lost packet was sent after the last decrease, so the NAKs and
// re-reports that follow for the same window do not cut it again.
//
// Create it with [NewTCPLike]. It is not safe for concurrent use.
type TCPLike struct {
	cwnd      float64
	ssthresh  float64
	slowStart bool
	lastAck   seq.Num // highest ACK seen
	recover   seq.Num // send sequence at the last decrease: ends a loss event
	maxWindow int
}

var _ Controller = (*TCPLike)(nil)

// tcpInitialWindow is the window at start and after a timeout, packets.
const tcpInitialWindow = 2

// NewTCPLike returns a TCP-like controller; Init starts it.
func NewTCPLike() *TCPLike { return &TCPLike{cwnd: tcpInitialWindow} }

// Init starts slow start at 2 packets, with the slow-start threshold at the
// flow window.
func (t *TCPLike) Init(now time.Time, in Inputs) {
	w := max(in.MaxWindow, tcpInitialWindow)
	*t = TCPLike{
		cwnd:      tcpInitialWindow,
		ssthresh:  float64(w),
		slowStart: true,
		lastAck:   in.SndCurrSeq.Inc(),
		recover:   in.SndCurrSeq,
		maxWindow: w,
	}
}

// OnACK grows the window by the packets ack newly acknowledges: one each
// in slow start, one per window's worth in congestion avoidance. The window
// never passes the flow window.
func (t *TCPLike) OnACK(now time.Time, ack seq.Num, in Inputs) {
	n := float64(seq.Off(t.lastAck, ack))
	if n <= 0 {
		return
	}
	t.lastAck = ack
	t.maxWindow = max(in.MaxWindow, tcpInitialWindow)
	if t.slowStart {
		k := min(n, max(t.ssthresh-t.cwnd, 0))
		t.cwnd += k
		n -= k
		if t.cwnd >= t.ssthresh {
			t.slowStart = false
		}
	}
	if !t.slowStart && n > 0 {
		// 1/cwnd per packet acknowledged, one per window: over n
		// packets, dw/dn = 1/w gives w² + 2n.
		t.cwnd = math.Sqrt(t.cwnd*t.cwnd + 2*n)
	}
	t.cwnd = min(t.cwnd, float64(t.maxWindow))
}

// OnLoss halves the window on the first NAK of a loss event and leaves slow
// start; later NAKs of the same event change nothing.
func (t *TCPLike) OnLoss(now time.Time, firstLost seq.Num, in Inputs) {
	if seq.Cmp(firstLost&seq.Max, t.recover) <= 0 {
		return // lost before the last decrease: the same event
	}
	t.recover = in.SndCurrSeq
	t.slowStart = false
	t.ssthresh = max(t.cwnd/2, tcpInitialWindow)
	t.cwnd = t.ssthresh
}

// OnTimeout sets the threshold to half the window and restarts slow start
// from 2 packets.
func (t *TCPLike) OnTimeout(now time.Time, in Inputs) {
	t.ssthresh = max(t.cwnd/2, tcpInitialWindow)
	t.cwnd = tcpInitialWindow
	t.slowStart = true
	t.recover = in.SndCurrSeq
}

// PacketPeriod returns 0: sending is clocked by the window alone.
func (t *TCPLike) PacketPeriod() time.Duration { return 0 }

// Window returns the congestion window, whole packets.
func (t *TCPLike) Window() int { return int(t.cwnd) }
