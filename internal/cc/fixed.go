package cc

import (
	"time"

	"github.com/udt-go/udt/internal/seq"
)

// FixedRate sends at a constant rate whatever the network reports, like
// the C++ library's example controller CUDPBlast: a fixed inter-packet
// period and a window as large as the flow window. Loss and timeouts
// change nothing; lost packets are retransmitted within the same rate.
//
// Create it with [NewFixedRate]. It is not safe for concurrent use.
type FixedRate struct {
	rate   int64 // bytes/s of whole packets, headers included
	period time.Duration
	window int
}

var _ Controller = (*FixedRate)(nil)

// NewFixedRate returns a controller sending bytesPerSecond on average,
// counting whole packets of MSS bytes (IP and UDP headers included), as
// UDT_MAXBW does. bytesPerSecond must be positive.
func NewFixedRate(bytesPerSecond int64) *FixedRate {
	if bytesPerSecond <= 0 {
		panic("cc: non-positive rate for NewFixedRate")
	}
	return &FixedRate{rate: bytesPerSecond, period: time.Second, window: 16}
}

// probeSpacing makes up for the sender's packet pairs: after each new
// packet whose sequence number is a multiple of 16 the next goes at once
// (docs/protocol.md §10.5), so 16 packets take 15 periods.
const probeSpacing = 16.0 / 15

// Init sets the period to MSS/rate, stretched by 16/15 for the packet
// pairs, and the window to the flow window.
func (f *FixedRate) Init(now time.Time, in Inputs) {
	f.period = max(time.Duration(probeSpacing*float64(time.Second)*float64(in.MSS)/float64(f.rate)), 1)
	f.window = in.MaxWindow
}

// OnACK follows the flow window; the rate stays.
func (f *FixedRate) OnACK(now time.Time, ack seq.Num, in Inputs) { f.window = in.MaxWindow }

// OnLoss ignores the loss.
func (f *FixedRate) OnLoss(now time.Time, firstLost seq.Num, in Inputs) {}

// OnTimeout ignores the timeout.
func (f *FixedRate) OnTimeout(now time.Time, in Inputs) {}

// PacketPeriod returns 16/15·MSS/rate.
func (f *FixedRate) PacketPeriod() time.Duration { return f.period }

// Window returns the flow window last reported.
func (f *FixedRate) Window() int { return f.window }
