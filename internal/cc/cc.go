// Package cc holds UDT congestion controllers behind one interface,
// [Controller]. The connection calls a controller on each event and reads back
// the inter-packet period and the congestion window it paces by
// (docs/protocol.md §11 and §13).
//
// Controllers are plain logic: no goroutines, no clock. Each method takes the
// caller's now and what the connection measured, in [Inputs].
package cc

import (
	"time"

	"github.com/udt-go/udt/internal/seq"
)

// Inputs is what the connection tells its controller on each event.
type Inputs struct {
	MSS        int           // bytes, IP and UDP headers included
	MaxWindow  int           // the peer's flow window, packets: announced in the handshake, then as each ACK reports it
	SndCurrSeq seq.Num       // largest sequence number sent so far
	RTT        time.Duration // sender's smoothed RTT
	RecvRate   int           // sender's EWMA of ACK word 5, packets/s
	Bandwidth  int           // sender's EWMA of ACK word 6, packets/s

	// For model-based controllers.
	RTTSample  time.Duration // RTT the receiver reported in the latest ACK
	RateSample int           // arrival rate in the latest full ACK (word 5), packets/s; 0 if none
	AppLimited bool          // RateSample measured packets the application held back
	// WindowLimited: RateSample measured packets sent while a window held
	// new data back.
	WindowLimited bool
	Delivered     uint64 // packets acknowledged since the start, cumulative
	Arrived       uint64 // packets known to have arrived, cumulative (see udt.CongestionInfo.Arrived)
	// AckRTT is the time from the sending of the newest packet the latest
	// full ACK acknowledges to the ACK's arrival, if that packet was sent
	// once and the ACK passed no retransmitted packet (it then waited at
	// that hole for the repair); 0 otherwise. It includes the receiver's
	// ACK delay (up to one SYN); its minimum is the path's.
	AckRTT time.Duration
	// LossRTT, in OnLoss only, is the time from the sending of the packet
	// after the newest loss a NAK lists (its arrival revealed the loss) to
	// the NAK's arrival, if the packet was sent once and the loss is newly
	// reported; 0 otherwise.
	LossRTT time.Duration
	// ArrivedRTT: see udt.CongestionInfo.ArrivedRTT.
	ArrivedRTT time.Duration
	Lost       uint64 // packets reported lost since the start, cumulative
	Sent       uint64 // data packets sent since the start, retransmissions included
	InFlight   int    // packets sent and not yet acknowledged
}

// Controller is a congestion controller. The connection calls its methods
// one at a time, with its lock held; implementations need not be safe for
// concurrent use.
type Controller interface {
	// Init starts the controller when the connection is established.
	Init(now time.Time, in Inputs)
	// OnACK reports a full or short ACK whose number ack advanced the
	// sender's acknowledged point.
	OnACK(now time.Time, ack seq.Num, in Inputs)
	// OnLoss reports a NAK, before its losses are applied; firstLost is the
	// first sequence number it lists, range bit cleared.
	OnLoss(now time.Time, firstLost seq.Num, in Inputs)
	// OnTimeout reports an EXP expiry with data waiting to be acknowledged.
	OnTimeout(now time.Time, in Inputs)
	// PacketPeriod returns the interval between two packet sends.
	PacketPeriod() time.Duration
	// Window returns the congestion window in packets.
	Window() int
}

// FloorPeriod applies the UDT_MAXBW cap: it returns p raised to at least
// 10^6·mss/maxBW µs, the period at which mss-byte packets carry maxBW bytes/s.
// A maxBW ≤ 0 means no cap. The connection applies it each time it copies
// the period from its controller, as 4.11 does.
func FloorPeriod(p time.Duration, mss int, maxBW int64) time.Duration {
	if maxBW <= 0 {
		return p
	}
	minP := float64(time.Second) * float64(mss) / float64(maxBW) // ns
	if float64(p) < minP {
		return time.Duration(minP)
	}
	return p
}
