package cc

import (
	"time"

	"github.com/udt-go/udt/internal/seq"
)

// Model is a loss-tolerant, model-based controller in the manner of BBR:
// it estimates the bottleneck bandwidth as the largest delivery rate seen
// over the last rounds and the propagation delay as the smallest RTT seen
// over the last seconds, paces at the bandwidth (with periodic probing
// above and below it) and bounds what is in flight by the time a loss
// takes to repair. Loss does not lower the rate; a queue that builds up is
// drained by the pacing cycle.
type Model struct {
	state modelState

	btlBw     [bwWindow]float64 // max-filter buckets, packets/s per round
	bwRound   [bwWindow]uint64
	minRTT    time.Duration
	minRTTAt  time.Time
	probeRTT  time.Time // when ProbeRTT ends
	fullBw    float64
	fullCount int

	round      uint64
	roundStart time.Time
	drainStart time.Time
	// The bandwidth filter spans the last bwWindow rounds that brought a
	// rate sample, so rounds without one (the receiver's filter rejects
	// heavily jittered arrivals) do not age the estimate out.
	bwRounds uint64
	sampled  bool

	sampleDelivered uint64 // Delivered at the previous ACK

	// Congestion, as opposed to random loss: a round that lost packets
	// while a queue stood at the bottleneck. Each such round lowers
	// bwCap multiplicatively; every other round raises it additively,
	// until it no longer binds (AIMD, so flows that meet converge to
	// fair shares and leave room for TCP). Zero means no cap.
	bwCap       float64
	roundMinRTT time.Duration
	roundLost   uint64  // Lost at the round's start
	roundRate   float64 // the highest arrival rate reported in the round
	queued      bool    // the last round ended with a standing queue
	// cutRound is the round at whose start bwCap was last cut. The round
	// after it still meets the queue built before the cut and is not
	// judged: one cut per round trip.
	cutRound uint64

	// The receiver's packet-pair estimate of the link capacity (ACK word
	// 6, smoothed by the connection): arrival-rate samples run a few
	// percent high, and the capacity bounds them.
	capacity   float64
	capSamples int

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
	// queueSlack is the least RTT rise above the minimum, besides a
	// quarter of it, taken for a standing queue.
	queueSlack = 5 * time.Millisecond
	// capDecrease and capIncrease set bwCap's AIMD: the cut per round of
	// congestion when sharing the bottleneck, and the rise per round
	// without a standing queue as a share of the link's capacity.
	capDecrease = 0.7
	capIncrease = 0.01
	// aloneShare is the share of the link's capacity from which a flow
	// takes itself to be alone at the bottleneck; a flow alone caps its
	// estimate at capMargin of what arrived.
	aloneShare = 0.95
	capMargin  = 0.95
	// drainGain is the cruising gain while a queue stands.
	drainGain = 0.85
	// ackDelay is the receiver's ACK interval (SYN).
	ackDelay = 10 * time.Millisecond
	// repairAllowance covers a NAK round and a lost retransmission's
	// periodic re-report.
	repairAllowance = 20 * time.Millisecond
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
		roundStart: now,
	}
}

// bw returns the bandwidth estimate, packets/s.
func (m *Model) bw() float64 {
	best := m.filteredBw()
	if m.bwCap > 0 {
		best = min(best, m.bwCap)
	}
	return best
}

// filteredBw is the bandwidth filter's estimate, before bwCap.
func (m *Model) filteredBw() float64 {
	var best float64
	for i, b := range m.btlBw {
		if m.bwRounds-m.bwRound[i] < bwWindow && b > best {
			best = b
		}
	}
	// A capacity estimate far below what arrives is wrong (jitter spreads
	// the packet pairs it measures); a close one trims the few percent
	// the arrival-rate samples run high.
	if m.capSamples >= capacityWarmup && best > m.capacity && m.capacity > 0.9*best {
		best = m.capacity
	}
	return best
}

func (m *Model) addBwSample(rate float64) {
	m.sampled = true
	i := m.bwRounds % bwWindow
	if m.bwRound[i] != m.bwRounds {
		m.bwRound[i], m.btlBw[i] = m.bwRounds, 0
	}
	if rate > m.btlBw[i] {
		m.btlBw[i] = rate
	}
}

// OnACK implements Controller.
func (m *Model) OnACK(now time.Time, ack seq.Num, in Inputs) {
	m.maxWindow = max(in.MaxWindow, minCwnd)
	// The minimum RTT: lower samples replace it at once; once it is
	// older than minRTTWindow, ProbeRTT drains the queue and its first
	// sample replaces it whatever its value.
	expired := now.Sub(m.minRTTAt) > minRTTWindow
	// Samples are the sender's own (AckRTT): the receiver's RTT in ACK
	// word 3 starts at a 100 ms guess and is smoothed.
	if rtt := in.AckRTT; rtt > 0 && (m.minRTT == 0 || rtt <= m.minRTT || expired && m.state == modelProbeRTT) {
		m.minRTT, m.minRTTAt = rtt, now
	} else if m.nearMinRTT(rtt) || m.nearMinRTT(in.RTTSample) {
		// A sample about as low confirms the minimum: the path's delay
		// has not grown and no queue stands, so ProbeRTT has nothing to
		// learn. The receiver's RTT (ACK to ACK2) counts too: under
		// loss the ACK point waits at holes, and our own samples seldom
		// come near the minimum.
		m.minRTTAt = now
	}

	// Rounds last one minimum RTT. (Counting them by the ACK passing what
	// was sent at their start would stall while a loss is repaired, as a
	// UDT ACK cannot pass a hole.)
	newRound := false
	if now.Sub(m.roundStart) >= max(m.minRTT, sampleSpan) {
		m.round++
		m.roundStart = now
		newRound = true
		if m.sampled {
			m.bwRounds++
			m.sampled = false
		}
	}

	// Bandwidth: the receiver's arrival rate, a median over its last 16
	// packet arrivals (ACK word 5). Unlike the rate at which the ACK point
	// moves, it does not leap when a hole is repaired; when we send faster
	// than the bottleneck it measures the bottleneck.
	// A sample the application held down counts only where it raises the
	// estimate (as BBR's): an idle spell must not teach the filter that
	// the path is slow.
	if in.RateSample > 1 && (!in.AppLimited || float64(in.RateSample) > m.filteredBw()) {
		m.roundRate = max(m.roundRate, float64(in.RateSample))
		m.addBwSample(float64(in.RateSample))
		m.capSamples++
	}
	m.capacity = float64(in.Bandwidth)
	// The queue is judged by the receiver's RTT (ACK to ACK2), which a
	// hole waiting for repair does not lengthen as it does AckRTT.
	if rtt := in.RTTSample; rtt > 0 && (m.roundMinRTT == 0 || rtt < m.roundMinRTT) {
		m.roundMinRTT = rtt
	}
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

// endRound judges the round that just ended: did startup stop growing?
func (m *Model) endRound(in Inputs) {
	queued := m.roundMinRTT > m.minRTT+max(m.minRTT/4, queueSlack)
	lost := in.Lost > m.roundLost
	roundRate := m.roundRate
	m.queued = queued
	m.roundLost, m.roundRate, m.roundMinRTT = in.Lost, 0, 0
	if m.state == modelProbeBW {
		switch f := m.filteredBw(); {
		case queued && lost && m.round > m.cutRound+1:
			// Alone at the bottleneck (what arrives is about its
			// capacity), the queue is of our own making: cut to what
			// arrived. Sharing it, cut by a constant factor, as every
			// flow there does, TCP's included, so that shares converge.
			cut := capDecrease * m.bw()
			if roundRate > 0 && m.capacity > 0 && roundRate >= aloneShare*m.capacity {
				cut = min(m.bw(), capMargin*roundRate)
			}
			m.bwCap, m.cutRound = cut, m.round
		case m.bwCap > 0 && !queued:
			// The step is a share of the link's capacity (the receiver's
			// packet-pair estimate), the same for every flow through it,
			// as AIMD's additive increase must be to converge.
			step := m.capacity
			if step <= 0 {
				step = f
			}
			m.bwCap += capIncrease * step
			if m.bwCap >= f {
				m.bwCap = 0
			}
		}
	}

	if m.state == modelStartup {
		if bw := m.bw(); bw > m.fullBw*1.25 {
			m.fullBw, m.fullCount = bw, 0
		} else if m.fullCount++; m.fullCount >= 2 {
			m.state = modelDrain
			m.drainStart = m.roundStart
			m.pacingGain, m.cwndGain = 1/startupGain, startupGain
		}
	}
}

// nearMinRTT reports whether the RTT sample rtt confirms the minimum: at
// most 1 ms and 1/64 above it, well under the rise taken for a standing
// queue (queueSlack).
func (m *Model) nearMinRTT(rtt time.Duration) bool {
	return m.minRTT > 0 && rtt > 0 && rtt <= m.minRTT+time.Millisecond+m.minRTT/64
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
		// What is in flight counts everything past the oldest hole, so it
		// may not fall to one BDP while losses are repaired: two rounds
		// of draining at most.
		if float64(in.InFlight) <= m.bdp() || now.Sub(m.drainStart) >= 2*max(m.minRTT, sampleSpan) {
			m.enterProbeBW(now, in)
		}
	case modelProbeBW:
		phase := max(m.minRTT, sampleSpan)
		if now.Sub(m.cycleStart) >= phase {
			m.cycleIdx = (m.cycleIdx + 1) % len(cycleGains)
			m.cycleStart = now
			m.pacingGain = cycleGains[m.cycleIdx]
			if m.queued && m.pacingGain < 1 {
				// A queue stands: cruise below the estimate until it
				// drains, rather than let it grow from an estimate a
				// few percent high.
				m.pacingGain = min(m.pacingGain, drainGain)
			}
		}
		if now.Sub(m.minRTTAt) > minRTTWindow {
			m.state = modelProbeRTT
			m.probeRTT = now.Add(probeRTTLength + m.minRTT)
			m.pacingGain = 1
		}
	case modelProbeRTT:
		if now.After(m.probeRTT) {
			m.minRTTAt = now
			m.enterProbeBW(now, in)
		}
	}
}

func (m *Model) enterProbeBW(now time.Time, in Inputs) {
	m.state = modelProbeBW
	m.pacingGain, m.cwndGain = 1, 2
	// Start cruising at a phase drawn from the (random) sequence number,
	// as BBR randomizes it: flows that share a bottleneck then probe at
	// different times.
	m.cycleIdx = 2 + int(uint32(in.SndCurrSeq)%uint32(len(cycleGains)-2))
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
	// The pacing rate sends at least the least window, minCwnd, per
	// window span, which the window allows anyway. Below that an
	// estimate can trap itself: packets paced a few a second come back as
	// arrival rates of a few packets a second, which the receiver reports
	// in whole packets, so a probe's gain of a quarter never shows.
	rate := bw * m.pacingGain
	if m.minRTT > 0 {
		rate = max(rate, minCwnd/m.windowSpan().Seconds())
	}
	m.period = time.Duration(float64(time.Second) / rate)
	span := m.windowSpan()
	if m.state == modelStartup {
		// Startup overshoots by design; its window is BBR's, one round
		// trip's worth times the gain, so the queue it builds stays short.
		span = max(m.minRTT, sampleSpan) + ackDelay
	}
	w := int(m.cwndGain*m.bw()*span.Seconds()) + minCwnd
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
