package cc

import (
	"time"

	"github.com/udt-go/udt/internal/seq"
)

// Model is a loss-tolerant, model-based controller in the manner of BBR:
// it estimates the bottleneck bandwidth as the largest delivery rate seen
// over the last rounds and the propagation delay as the smallest RTT seen
// over the last seconds, paces at the bandwidth (with periodic probing
// above and below it) and keeps about two bandwidth-delay products in
// flight. Random loss alone does not lower the rate; a queue that builds
// up is drained by the pacing cycle, and loss that persists over rounds
// (beyond what a lossy link explains) lowers the bandwidth estimate.
type Model struct {
	state modelState

	btlBw     [bwWindow]float64 // max-filter buckets, packets/s per round
	bwRound   [bwWindow]uint64
	minRTT    time.Duration
	minRTTAt  time.Time
	probeRTT  time.Time // when ProbeRTT ends
	fullBw    float64
	fullCount int

	round        uint64
	roundEnd     seq.Num // a round ends when an ACK passes this
	roundStarted bool

	sampleDelivered uint64 // Delivered at the previous ACK

	// The receiver's packet-pair estimate of the link capacity (ACK word
	// 6, smoothed by the connection): arrival-rate samples run a few
	// percent high, and the capacity bounds them.
	capacity   float64
	capSamples int

	// Loss over the current round.
	roundLost, roundDelivered uint64
	lossyRounds               int

	cycleIdx   int
	cycleStart time.Time

	pacingGain float64
	cwndGain   float64
	period     time.Duration
	cwnd       int
	maxWindow  int
}

type modelState uint8

const (
	modelStartup modelState = iota
	modelDrain
	modelProbeBW
	modelProbeRTT
)

const (
	bwWindow       = 10 // rounds the bandwidth max filter spans
	minRTTWindow   = 10 * time.Second
	probeRTTLength = 200 * time.Millisecond
	startupGain    = 2.885                 // 2/ln 2
	sampleSpan     = 10 * time.Millisecond // shortest ProbeBW phase
	minCwnd        = 16
	// capacityWarmup is how many full ACKs the smoothed capacity estimate
	// needs before it bounds the bandwidth.
	capacityWarmup = 32
	// ackDelay is the receiver's ACK interval (SYN).
	ackDelay = 10 * time.Millisecond
	// repairAllowance covers a NAK round and a lost retransmission's
	// periodic re-report.
	repairAllowance = 20 * time.Millisecond
	// lossThreshold is the fraction of a round's packets lost beyond which
	// the round counts as congested.
	lossThreshold = 0.2
)

var cycleGains = [8]float64{1.25, 0.75, 0.97, 0.97, 0.97, 0.97, 0.97, 0.97}

// NewModel returns the loss-tolerant controller.
func NewModel() *Model { return &Model{} }

// Init implements Controller.
func (m *Model) Init(now time.Time, in Inputs) {
	*m = Model{
		state:      modelStartup,
		pacingGain: startupGain,
		cwndGain:   startupGain,
		minRTTAt:   now,
		maxWindow:  max(in.MaxWindow, minCwnd),
		cwnd:       minCwnd,
		period:     time.Microsecond,
		roundEnd:   in.SndCurrSeq,
	}
}

// bw returns the bandwidth estimate, packets/s.
func (m *Model) bw() float64 {
	var best float64
	for i, b := range m.btlBw {
		if m.round-m.bwRound[i] < bwWindow && b > best {
			best = b
		}
	}
	if m.capSamples >= capacityWarmup && m.capacity > 0 && best > m.capacity {
		best = m.capacity
	}
	return best
}

func (m *Model) addBwSample(rate float64) {
	i := m.round % bwWindow
	if m.bwRound[i] != m.round {
		m.bwRound[i], m.btlBw[i] = m.round, 0
	}
	if rate > m.btlBw[i] {
		m.btlBw[i] = rate
	}
}

// OnACK implements Controller.
func (m *Model) OnACK(now time.Time, ack seq.Num, in Inputs) {
	m.maxWindow = max(in.MaxWindow, minCwnd)
	if in.RTTSample > 0 && (m.minRTT == 0 || in.RTTSample <= m.minRTT || now.Sub(m.minRTTAt) > minRTTWindow) {
		if m.minRTT == 0 || in.RTTSample <= m.minRTT {
			m.minRTTAt = now
		}
		m.minRTT = in.RTTSample
	}

	// Rounds: one ends when the ACK passes what was sent when it began.
	newRound := false
	if seq.Cmp(ack, m.roundEnd) > 0 {
		m.round++
		m.roundEnd = in.SndCurrSeq
		newRound = true
	}

	// Bandwidth: the receiver's arrival rate, a median over its last 16
	// packet arrivals (ACK word 5). Unlike the rate at which the ACK point
	// moves, it does not leap when a hole is repaired; when we send faster
	// than the bottleneck it measures the bottleneck.
	if in.RateSample > 1 {
		m.addBwSample(float64(in.RateSample))
		m.capSamples++
	}
	m.capacity = float64(in.Bandwidth)
	// Until the first rate sample: slow start on deliveries.
	if m.bw() == 0 {
		m.cwnd = min(m.cwnd+int(in.Delivered-m.sampleDelivered), m.maxWindow)
	}
	m.sampleDelivered = in.Delivered

	if newRound {
		m.endRound(in)
	}
	m.advanceState(now, in)
	m.update(in)
}

// endRound judges the round that just ended: did startup stop growing,
// was the loss persistent?
func (m *Model) endRound(in Inputs) {
	delivered := in.Delivered - m.roundDelivered
	lost := in.Lost - m.roundLost
	m.roundDelivered, m.roundLost = in.Delivered, in.Lost
	if total := delivered + lost; total >= 20 && float64(lost) > lossThreshold*float64(total) {
		m.lossyRounds++
	} else {
		m.lossyRounds = 0
	}
	if m.lossyRounds >= 3 {
		// Loss persisted over rounds: the estimate is too high.
		for i := range m.btlBw {
			m.btlBw[i] *= 0.85
		}
		m.lossyRounds = 0
	}
	if m.state == modelStartup {
		if bw := m.bw(); bw > m.fullBw*1.25 {
			m.fullBw, m.fullCount = bw, 0
		} else if m.fullCount++; m.fullCount >= 3 {
			m.state = modelDrain
			m.pacingGain, m.cwndGain = 1/startupGain, startupGain
		}
	}
}

// bdp is the bandwidth-delay product in packets.
func (m *Model) bdp() float64 {
	rtt := m.minRTT
	if rtt == 0 {
		rtt = 100 * time.Millisecond
	}
	return m.bw() * rtt.Seconds()
}

// windowSpan is the time the window must cover: the repair of a loss,
// plus the receiver's ACK interval. A UDT ACK cannot pass a hole, so
// everything sent until the hole is repaired stays in flight; the pacing
// rate, not the window, keeps the queue short.
func (m *Model) windowSpan() time.Duration {
	// A loss is reported a round trip after it happens and repaired a
	// round trip later; a lost retransmission takes another.
	return 3*m.minRTT + ackDelay + repairAllowance
}

func (m *Model) advanceState(now time.Time, in Inputs) {
	switch m.state {
	case modelDrain:
		if float64(in.InFlight) <= m.bdp() {
			m.enterProbeBW(now)
		}
	case modelProbeBW:
		phase := max(m.minRTT, sampleSpan)
		if now.Sub(m.cycleStart) >= phase {
			m.cycleIdx = (m.cycleIdx + 1) % len(cycleGains)
			m.cycleStart = now
			m.pacingGain = cycleGains[m.cycleIdx]
		}
		if now.Sub(m.minRTTAt) > minRTTWindow {
			m.state = modelProbeRTT
			m.probeRTT = now.Add(probeRTTLength + m.minRTT)
			m.pacingGain = 1
		}
	case modelProbeRTT:
		if now.After(m.probeRTT) {
			m.minRTTAt = now
			m.enterProbeBW(now)
		}
	}
}

func (m *Model) enterProbeBW(now time.Time) {
	m.state = modelProbeBW
	m.pacingGain, m.cwndGain = 1, 2
	m.cycleIdx = 2 // start cruising; the probe comes within a cycle
	m.cycleStart = now
}

// update derives the period and window from the model.
func (m *Model) update(in Inputs) {
	bw := m.bw()
	if bw <= 0 {
		// No estimate yet: window-limited slow start (see OnACK).
		m.period = time.Microsecond
		return
	}
	m.period = time.Duration(float64(time.Second) / (bw * m.pacingGain))
	w := int(m.cwndGain*m.bw()*m.windowSpan().Seconds()) + minCwnd
	if m.state == modelProbeRTT {
		w = 4
	}
	m.cwnd = min(max(w, 4), m.maxWindow)
}

// OnLoss implements Controller: random loss alone does not change the
// model; persistent loss is judged per round in OnACK.
func (m *Model) OnLoss(now time.Time, firstLost seq.Num, in Inputs) {}

// OnTimeout implements Controller: after a timeout nothing is known to be
// in flight, so the window restarts small while the rate model stays.
func (m *Model) OnTimeout(now time.Time, in Inputs) {
	m.cwnd = max(minCwnd, m.cwnd/2)
}

// PacketPeriod implements Controller.
func (m *Model) PacketPeriod() time.Duration { return m.period }

// Window implements Controller.
func (m *Model) Window() int { return m.cwnd }
