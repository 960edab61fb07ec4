package udt

import (
	"time"

	"github.com/udt-go/udt/internal/cc"
	"github.com/udt-go/udt/internal/lossl"
	"github.com/udt-go/udt/internal/seq"
	"github.com/udt-go/udt/internal/window"
)

// ccState is a connection's congestion controller, what it last set, and
// the estimates of the path it is told of: the RTT, the peer's reported
// rates, what was delivered and lost. Guarded by Conn.mu; its methods run
// with it held.
type ccState struct {
	ctl CongestionController
	// What ccUpdateLocked read from the controller after its last call.
	period    time.Duration // between data packets
	window    int           // packets; ≤ 0: none
	ackEvery  int           // full ACK every so many packets received; 0: none
	ackPeriod time.Duration // full-ACK timer
	perPkt    bool          // call OnPktSent/OnPktReceived: a user's controller (the built-ins ignore them)
	loss      []LossRange   // OnLoss argument, reused
	isn       seq.Num       // first sequence number sent, for CongestionInfo

	rtt       window.RTT
	rttSample time.Duration // RTT in the peer's latest ACK
	// The RTT and its variation in the peer's latest ACK, advancing or
	// not: a receiver holds back an unchanged ACK for its RTT+4·RTTVar,
	// which our smoothed copy of its reports lags (see expIntervalLocked).
	peerRTT, peerRTTVar time.Duration
	rateSample          int // arrival rate in the peer's latest full ACK, bounded by plausibleRate
	rateSamples         int // full ACKs with rate words received
	// The fastest we have sent, packets/s over the span between two full
	// ACKs, and where the span in progress began (see coldRateBoundLocked).
	maxSendRate  int
	rateMark     time.Time
	rateMarkSent uint64
	rate         int    // EWMA of the peer's reported arrival rate, packets/s
	bandwidth    int    // EWMA of the peer's reported link capacity, packets/s
	delivered    uint64 // packets acknowledged, cumulative
	// What loss reports tell of arrivals past the ACK point
	// (CongestionInfo.Arrived): the newest packet one showed arrived
	// (valid while reached), the packets from the ACK point on that
	// reports named (sndPkt.reported), and the count so far, which only
	// grows.
	known   seq.Num
	reached bool
	holes   int
	arrived uint64

	// The sender's own RTT sample (CongestionInfo.SenderRTT): sentAt of
	// the newest packet ACKs released since the last full ACK (0 if none),
	// and the time from its send to that full ACK (0 if none). ackedHole
	// reports that they released a retransmitted packet too: the ACK point
	// waited at its hole, and the sample would measure the repair, not the
	// path.
	ackedSentAt int64
	ackedHole   bool
	// newestAckedSentAt is the sentAt of the newest packet acknowledged
	// (see CongestionInfo.ArrivedRTT).
	newestAckedSentAt int64
	ackRTT            time.Duration
	// peerRenaks reports that the peer has reported a retransmitted packet
	// lost: it repeats its loss reports, which 4.11 never does.
	peerRenaks bool
	// nakLost counts the packets the peer's NAKs reported lost, newly
	// queued for retransmission (CongestionInfo.Lost).
	nakLost uint64
}

// newController makes the connection's controller from its Config.
func (c *Conn) newController() CongestionController {
	if c.cfg.NewController != nil {
		if ctl := c.cfg.NewController(); ctl != nil {
			return ctl
		}
	}
	if c.cfg.Congestion == CongestionModel {
		return NewModelBased()
	}
	return NewDAIMD()
}

// ccInputsLocked is what the connection tells its controller.
func (c *Conn) ccInputsLocked() CongestionInfo {
	return CongestionInfo{
		SocketID:      c.id,
		MSS:           c.mss,
		ISN:           uint32(c.cc.isn),
		FlowWindow:    c.snd.flowWindow,
		LastSent:      uint32(c.snd.currSeq),
		LastACK:       uint32(c.snd.lastAck),
		InFlight:      c.snd.inFlightLocked(),
		RTT:           c.cc.rtt.RTT,
		RTTVar:        c.cc.rtt.Var,
		RTTSample:     c.cc.rttSample,
		SenderRTT:     c.cc.ackRTT,
		RecvRate:      c.cc.rate,
		RateSample:    c.cc.rateSample,
		AppLimited:    c.snd.appLimited.on,
		WindowLimited: c.snd.windowLimited.on,
		Bandwidth:     c.cc.bandwidth,
		Delivered:     c.cc.delivered,
		Arrived:       c.cc.arrived,
		Lost:          c.cc.nakLost,
		Sent:          c.stats.pktSent,
	}
}

// ccUpdateLocked takes the controller's settings after one of its calls.
func (c *Conn) ccUpdateLocked() {
	p := c.cc.ctl.Params()
	c.cc.period = cc.FloorPeriod(max(p.Period, 0), c.mss, c.cfg.MaxBandwidth)
	c.cc.window = p.Window
	c.cc.ackEvery = max(p.ACKEvery, 0)
	c.cc.ackPeriod = synInterval
	if p.ACKPeriod > 0 {
		c.cc.ackPeriod = min(max(p.ACKPeriod, MinACKPeriod), MaxACKPeriod)
	}
}

// lossRanges converts a NAK's ranges for OnLoss, into a reused slice.
func (s *ccState) lossRanges(rs []lossl.Range) []LossRange {
	s.loss = s.loss[:0]
	for _, r := range rs {
		s.loss = append(s.loss, LossRange{First: uint32(r.First), Last: uint32(r.Last)})
	}
	return s.loss
}

// retransWait is how long the answer to a retransmission may take: a round
// trip, its variance and two SYNs (the receiver's ACK interval, and its
// timer's granularity).
func (s *ccState) retransWait() time.Duration {
	return s.rtt.RTT + 4*s.rtt.Var + 2*synInterval
}
