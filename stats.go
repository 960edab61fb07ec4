package udt

import (
	"time"

	"github.com/udt-go/udt/internal/seq"
)

// connStats are a connection's running counters, guarded by Conn.mu.
type connStats struct {
	start          time.Time
	pktSent        uint64
	bytesSent      uint64
	pktRetrans     uint64
	bytesRetrans   uint64
	pktRecv        uint64
	bytesRecv      uint64
	pktRecvDropped uint64
	pktSndLoss     uint64
	pktRcvLoss     uint64
	ackSent        uint64
	ackRecv        uint64
	nakSent        uint64
	nakRecv        uint64
	ctrlRecv       uint64
	expiries       uint64
	stallResent    uint64 // oldest packets resent for a stalled ACK point
	probesAnswered uint64 // ACKs answering data dropped for lack of room (see answerProbeLocked)
	dropped        uint64 // malformed or unexpected control packets, foreign senders
	dropSent       uint64 // message drop requests sent
	dropRecv       uint64 // message drop requests received

	last     Counters // totals at the previous Stats call
	lastTime time.Time
}

// Counters are packet and byte counts of one connection.
type Counters struct {
	PktSent        uint64 // data packets sent, retransmissions included
	BytesSent      uint64 // payload bytes sent, retransmissions included
	PktRetrans     uint64 // data packets retransmitted
	BytesRetrans   uint64 // payload bytes retransmitted
	PktRecv        uint64 // data packets received, duplicates included
	BytesRecv      uint64 // payload bytes accepted into the receive buffer
	PktRecvDropped uint64 // data packets discarded: duplicate, outside the window, or beyond Config.ReceiveMemory
	PktSndLoss     uint64 // packets the peer reported lost, or timed out
	PktRcvLoss     uint64 // packets found missing by the receiver
	ACKSent        uint64 // ACKs sent: light, short and full
	ACKRecv        uint64 // ACKs received
	NAKSent        uint64 // loss reports sent, the periodic ones included
	NAKRecv        uint64 // loss reports received
	Dropped        uint64 // malformed or unexpected control packets and foreign datagrams
	DropReqSent    uint64 // message drop requests sent (TTL expiries; repeats included)
	DropReqRecv    uint64 // message drop requests received
}

func (a Counters) sub(b Counters) Counters {
	return Counters{
		PktSent: a.PktSent - b.PktSent, BytesSent: a.BytesSent - b.BytesSent,
		PktRetrans: a.PktRetrans - b.PktRetrans, BytesRetrans: a.BytesRetrans - b.BytesRetrans,
		PktRecv: a.PktRecv - b.PktRecv, BytesRecv: a.BytesRecv - b.BytesRecv,
		PktRecvDropped: a.PktRecvDropped - b.PktRecvDropped,
		PktSndLoss:     a.PktSndLoss - b.PktSndLoss, PktRcvLoss: a.PktRcvLoss - b.PktRcvLoss,
		ACKSent: a.ACKSent - b.ACKSent, ACKRecv: a.ACKRecv - b.ACKRecv,
		NAKSent: a.NAKSent - b.NAKSent, NAKRecv: a.NAKRecv - b.NAKRecv,
		Dropped:     a.Dropped - b.Dropped,
		DropReqSent: a.DropReqSent - b.DropReqSent, DropReqRecv: a.DropReqRecv - b.DropReqRecv,
	}
}

// Stats is a snapshot of a connection's performance figures, like the C++
// library's perfmon.
type Stats struct {
	Duration time.Duration // since the connection was established
	Total    Counters      // since the connection was established
	Interval Counters      // since the previous Stats call
	Elapsed  time.Duration // length of the interval

	SendRate         float64       // Mbit/s of payload sent over the interval
	RecvRate         float64       // Mbit/s of payload received over the interval
	RTT              time.Duration // smoothed round-trip time
	RTTVar           time.Duration // variation of the round-trip time
	Bandwidth        float64       // estimated link capacity, Mbit/s
	PktSndPeriod     time.Duration // inter-packet interval set by congestion control
	CongestionWindow int           // packets
	FlowWindow       int           // packets the peer can take
	PktInFlight      int           // sent, not yet acknowledged
	SendBufferBytes  int           // written, not yet acknowledged
	RecvBufferBytes  int           // received, not yet read
	MSS              int           // the packet size the handshake settled on, bytes (4.11's byteMSS)
}

// Stats returns the connection's figures; the interval counters restart at
// each call. It is safe for concurrent use.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	st := &c.stats
	tot := Counters{
		PktSent: st.pktSent, BytesSent: st.bytesSent,
		PktRetrans: st.pktRetrans, BytesRetrans: st.bytesRetrans,
		PktRecv: st.pktRecv, BytesRecv: st.bytesRecv, PktRecvDropped: st.pktRecvDropped,
		PktSndLoss: st.pktSndLoss, PktRcvLoss: st.pktRcvLoss,
		ACKSent: st.ackSent, ACKRecv: st.ackRecv, NAKSent: st.nakSent, NAKRecv: st.nakRecv,
		Dropped: st.dropped, DropReqSent: st.dropSent, DropReqRecv: st.dropRecv,
	}
	if st.lastTime.IsZero() {
		st.lastTime = st.start
	}
	s := Stats{
		Total:    tot,
		Interval: tot.sub(st.last),
		Elapsed:  now.Sub(st.lastTime),
		RTT:      c.cc.rtt.RTT,
		RTTVar:   c.cc.rtt.Var,
	}
	if !st.start.IsZero() {
		s.Duration = now.Sub(st.start)
	}
	st.last, st.lastTime = tot, now
	if secs := s.Elapsed.Seconds(); secs > 0 {
		s.SendRate = float64(s.Interval.BytesSent) * 8 / 1e6 / secs
		s.RecvRate = float64(s.Interval.BytesRecv) * 8 / 1e6 / secs
	}
	if c.state == stateConnected && c.snd.buf != nil {
		s.MSS = c.mss
		s.Bandwidth = float64(c.cc.bandwidth) * float64(c.payload) * 8 / 1e6
		s.PktSndPeriod = c.cc.period
		s.CongestionWindow = c.cc.window
		s.FlowWindow = c.snd.flowWindow
		s.PktInFlight = c.snd.inFlightLocked()
		for i := range c.snd.buf.Len() {
			s.SendBufferBytes += len(*c.snd.buf.At(i).buf)
		}
		for i := range seq.Off(c.rcv.readSeq, c.rcv.contig()) {
			if b := c.rcv.buf.At(i).buf; b != nil {
				s.RecvBufferBytes += len(*b)
			}
		}
		s.RecvBufferBytes -= c.rcv.readOff
	}
	return s
}
