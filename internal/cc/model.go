package cc

import (
	"math"
	"time"

	"github.com/udt-go/udt/internal/seq"
)

// Model is a loss-tolerant, model-based controller in the manner of BBR:
// it estimates the bottleneck bandwidth as the largest delivery rate seen
// over the last rounds and the propagation delay as the smallest RTT seen
// over the last seconds, paces at the bandwidth (with periodic probing
// above and below it) and bounds what is in flight by the time a loss
// takes to repair. Random loss does not lower the rate. Congestion does: a
// round that lost packets while a queue stood, or a probe that raised the
// loss rate above the background's, cuts a share cap that then grows back
// as a TCP CUBIC window would (see shareCap), so that the flow shares a
// bottleneck with TCP and with itself. A cut that the queue does not drain
// after was met by no one (a competitor such as TCP BBR v1 that does not
// give way to loss) and is taken back (see judgeCut); while such a
// competitor holds its queue, the flow paces for an even split of the link
// (see evenShare). Startup doubles the rate each round trip, as slow start
// does, and ends at HyStart's delay rise.
type Model struct {
	state modelState

	btlBw     [bwWindow]float64 // max-filter buckets, packets/s per round
	bwRound   [bwWindow]uint64
	minRTT    time.Duration
	minRTTAt  time.Time
	probeRTT  time.Time // when ProbeRTT ends
	fullBw    float64
	fullDlv   float64 // the delivery rate startup's full-bandwidth test last saw grow
	fullCount int

	round      uint64
	roundStart time.Time
	roundEnded time.Time // when the previous round ended
	// The round before: when it started and Sent then.
	prevRoundEnded time.Time
	prevRoundSent  uint64
	drainStart     time.Time
	// The bandwidth filter spans the last bwWindow rounds that brought a
	// rate sample, so rounds without one (the receiver's filter rejects
	// heavily jittered arrivals) do not age the estimate out.
	bwRounds uint64
	sampled  bool
	// The two greatest samples of the newest round, and how many it had:
	// a round of outlierSamples or more counts its second greatest.
	bwTop [2]float64
	bwN   int
	// The round's delivery-rate sample, which the outlier rule leaves be,
	// and the recent ACKs it is measured over (see deliverySample).
	bwDelivery float64
	// The latest delivery rate, and when it was taken: arrival rates are
	// bounded by it while it is fresh (see deliveryBound).
	dlvRate   float64
	dlvAt     time.Time
	acks      [128]ackPoint
	acksEpoch time.Time // what ackPoint times count from
	acksHead  int
	acksN     int

	sampleDelivered uint64 // Delivered at the previous ACK
	// The send rate of the last round and the greater of the last two,
	// packets/s: arrival-rate samples above twice it are bursts.
	lastSendRate, sendRate float64

	// Sharing the bottleneck (see judgeRound and shareCap). A round is
	// congested when it lost packets while a queue stood, or when a probe
	// raised its loss rate above the background's; each congested round
	// cuts share, which then grows back as a TCP CUBIC window would.
	share          shareCap
	baseRTT        minFilter     // the path's round trip, over minutes
	roundMinRTT    time.Duration // the least receiver RTT seen in the round
	roundLost      uint64        // Lost at the round's start
	roundSent      uint64        // Sent at the round's start
	roundAcked     uint64        // Delivered at the last growth of share
	roundDelivered uint64        // Delivered at the round's start
	roundRate      float64       // sum of the arrival rates reported in the round
	roundRates     int           // how many
	roundGain      float64       // the highest pacing gain used in the round
	bgLost         float64       // packets lost in rounds not probing, decayed (see judgeRound)
	bgSent         float64       // packets sent in those rounds, decayed alike
	queued         bool          // the last round ended with a standing queue
	// cutRound is the round at whose start share was last cut. The
	// cutSettle rounds after it (see settleAfterCut) still meet the queue
	// and the losses from before the cut and do not cut again.
	cutRound  uint64
	cutSettle uint64
	// Judging the last cut (see judgeCut): the queue in its round, the
	// least queues of the rounds that settle it, a count of recent cuts
	// that left the queue standing, and whether the last one did.
	cutQueue    time.Duration
	settleQueue [settleLeast]time.Duration // ascending; -1: none yet
	futileCut   bool
	futileCuts  int
	// The loss rate of the last rounds, packets weighted and decayed (see
	// evenShare).
	recentLost, recentSent float64
	// HyStart++'s delay test in startup (RFC 9406 §4.2), on our own
	// round-trip samples: the least of the round and of the previous
	// one, and how many samples in a row rose above the latter.
	hsMin, hsLastMin time.Duration
	hsSamples        int
	settledRound     uint64 // the last round whose congestion startup caused
	// When Lost last grew, and its value then (see repairing).
	lostAt   time.Time
	lostSeen uint64

	// The receiver's packet-pair estimate of the link capacity (ACK word
	// 6, smoothed by the connection): arrival-rate samples run a few
	// percent high, and the capacity bounds them.
	capacity   float64
	capSamples int

	cycleIdx   int
	probeBase  float64 // the bandwidth estimate when the last probe began
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
	bwWindow = 10 // rounds the bandwidth max filter spans
	// outlierSamples is how many rate samples a round needs before its
	// greatest is taken for an outlier and its second greatest counts.
	outlierSamples = 4
	minRTTWindow   = 10 * time.Second
	probeRTTLength = 200 * time.Millisecond
	probeRTTGain   = 0.5   // BBRv3's ProbeRTT window, of the BDP
	startupGain    = 2.885 // 2/ln 2: startup's window gain
	// startupPacingGain doubles the rate each round trip, as TCP's slow
	// start doubles its window: a flow that starts beside TCP reaches the
	// bottleneck no sooner than it does, and neither leaves startup with
	// the other's share (with BBR's 2.885 ours got there first, and took
	// 70-80 % beside a cubic flow started with it).
	startupPacingGain = 2
	sampleSpan        = 10 * time.Millisecond // shortest ProbeBW phase
	// cssPacingGain is startup's gain once a round-trip sample has risen
	// (see hystart).
	cssPacingGain = 1.25
	// maxRoundLength bounds the rounds a slow flow stretches (see
	// roundLength): at the pacing floor, 2·rateSpan packets take longer.
	maxRoundLength = 200 * time.Millisecond
	minCwnd        = 16
	// capacityWarmup is how many full ACKs the smoothed capacity estimate
	// needs before it bounds the bandwidth.
	capacityWarmup = 32
	// queueSlack is the least RTT rise above the path's round trip,
	// besides half of it, taken for a standing queue: a full socket
	// buffer at a receiver on loopback adds a few milliseconds.
	queueSlack = 1 * time.Millisecond
	// lossThresh is the rise of a probing round's loss rate above the
	// background's taken for congestion (BBRv3's loss threshold).
	lossThresh = 0.02
	// maxRandomLoss is the most of a round's packets that random loss is
	// taken to claim (see excessiveLoss), and the most loss the even
	// share of a contest makes up for (see evenShare).
	maxRandomLoss = 0.25
	// bgKnown is how many packets (decayed) the background loss rate
	// must rest on before a probe's loss is judged against it.
	bgKnown = 1000
	// fullBwRounds is how many sampled rounds in a row without a quarter's
	// growth end startup. Each such round paces at twice a bandwidth the
	// path already delivers and adds a BDP to the queue: at 1 % random
	// loss over 100 Mbit/s, 100 ms, netsim counted about 1,400 packets of
	// overflow and 2.1 % of 16 s retransmitted with two, 1.4 % with one.
	// One is not taken yet: on a loaded host a C++ receiver's rate
	// samples show the sender's wake-ups, not its pace, rounds without
	// growth come early, and a Go -> C++ message test under -race then
	// crawled past its drain time in CI.
	fullBwRounds = 2
	// hystartSamples is how many risen round-trip samples in a row end
	// startup.
	hystartSamples = 3
	// settleRounds is how many rounds after a cut no other cut follows:
	// the queue built before it drains, and the losses it caused are
	// reported and repaired.
	settleRounds = 8
	// maxFutileCuts bounds the doubling of the hold after futile cuts
	// (see judgeCut): 9·2^5 rounds, 30-60 s on a 100 ms path.
	maxFutileCuts = 5
	// futileToAct is how many futile cuts in a row (less those met since)
	// it takes to act on one. Eight flows of ours meet a queue that one
	// flow's cut does not drain, as the others grow into it; acting on
	// the first left one of them holding while the others cut, in one
	// run in six (Jain's index 0.91-0.95).
	futileToAct = 2
	// futileToLift is how many futile cuts in a row lift the share cap
	// rather than restore it (see judgeCut).
	futileToLift = 3
	// futileMinRTT is the least path round trip on which cuts are judged
	// at all. Under it the queue is most often the receiving host's socket
	// buffer, which eight loopback streams of ours keep full whatever one
	// of them does: every cut looked futile, and the least of the eight
	// got 0.02-0.05 of the most (0.39-0.44 without the judging).
	futileMinRTT = 10 * time.Millisecond
	// drainedShare is the share of its height at a cut under which the
	// queue must fall in settleLeast of the rounds that settle the cut
	// for the cut to have been met by others' (see judgeCut).
	drainedShare = 0.45
	settleLeast  = 3

	// baseRTTWindow is how long the path's round trip is remembered: a
	// TCP flow beside us may keep a queue standing for many seconds.
	baseRTTWindow = 5 * time.Minute
	// drainGain is the cruising gain while a queue stands.
	drainGain = 0.85
	// ackDelay is the receiver's ACK interval (SYN).
	ackDelay = 10 * time.Millisecond
	// repairAllowance covers a NAK round and a lost retransmission's
	// periodic re-report.
	repairAllowance = 20 * time.Millisecond
)

// probePaid is the rise of the bandwidth estimate over a probe that tells
// there is more to be had, and brings the next probe after the probe's
// drain phase rather than after the cruise. A flow far under its share
// (one of eight loopback streams that left startup at 2 Mbit/s, when the
// others' queue met it) grew a quarter per eight phases, each stretched to
// carry 2·rateSpan packets: seven seconds to meet the others, and the
// least of eight streams got 0.02-0.21 of the most over ten seconds (0.48
// with it). A flow alone at a full bottleneck gains nothing from a probe
// and keeps the cycle.
const probePaid = 1.125

var cycleGains = [8]float64{1.25, 0.75, 0.97, 0.97, 0.97, 0.97, 0.97, 0.97}

// NewModel returns the loss-tolerant controller.
func NewModel() *Model { return &Model{} }

// Init implements Controller.
func (m *Model) Init(now time.Time, in Inputs) {
	*m = Model{
		state:          modelStartup,
		pacingGain:     startupPacingGain,
		cwndGain:       startupGain,
		minRTTAt:       now,
		maxWindow:      max(in.MaxWindow, minCwnd),
		cwnd:           minCwnd,
		period:         time.Microsecond,
		roundStart:     now,
		roundEnded:     now,
		prevRoundEnded: now,
		roundGain:      startupPacingGain,
	}
}

// bw returns the bandwidth estimate, packets/s.
func (m *Model) bw() float64 {
	if m.capGoverns() {
		return min(capRamp*m.filteredBw(), m.share.rate())
	}
	return min(m.filteredBw(), m.share.rate())
}

// capGoverns reports whether the share cap, not the bandwidth filter,
// sets the pace: on a short path (see shortPath) once congestion has set
// a cap, the flow paces at the cap as a paced TCP window would, no faster
// than capRamp times what the filter has seen delivered. There the queue
// that flows meet is a host's socket buffer or a LAN switch's, random loss
// is rare, and what matters is that flows of ours that meet it converge.
// Bounded by its filter alone, a flow that had left startup at a small
// rate (the others' queue ended it) grew a quarter per eight-phase probe
// cycle, while the share caps of the flows it met, which the cuts set,
// grew by a packet per round trip: eight flows over netsim's 500 Mbit/s,
// 0.2 ms path with a 2 MB queue drifted apart (least/most 0.33-0.54 over
// 10 s), and eight loopback streams got 0.17-0.51. Paced at the cap,
// every flow grows alike between the cuts that congestion brings to all,
// and the cuts bring them together: 0.73-0.88 in netsim; on loopback
// (bench/compare.sh -n 3 -P 8) 0.56 (0.35-0.70), where it was 0.23
// (0.20-0.55), still short of the others within the first seconds.
func (m *Model) capGoverns() bool {
	return m.share.active() && m.state == modelProbeBW && m.shortPath()
}

// capRamp is how far above its delivered rate a flow whose share cap
// governs may pace: it grows a tenth a round toward its cap. At twice,
// eight loopback streams retransmitted 5 % of their packets in netsim.
const capRamp = 1.1

// shortPath reports whether the path's round trip is known and under
// futileMinRTT.
func (m *Model) shortPath() bool {
	b := m.baseRTT.get()
	return b > 0 && b < futileMinRTT
}

// filteredBw is the bandwidth filter's estimate, before the share cap.
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

// deliverySpan is the shortest span a delivery rate is measured over: a
// receiver ACKs on a 10 ms timer, and over shorter spans its timing alone
// moved the rate by tens of percent, which the bandwidth filter's maximum
// kept (a lone flow over a 100 Mbit/s TUN link paced over it, overflowed
// the queue and held 77-82 Mbit/s where it had 93.7).
const deliverySpan = 5 * ackDelay

// ackSpacing is the least time between the ACK points that delivery rates
// are measured over, unless rateSpan packets come sooner.
const ackSpacing = 2 * time.Millisecond

// ackPoint is the connection's counts at an ACK, its times since
// Model.acksEpoch.
type ackPoint struct {
	at, sentAt      time.Duration // its arrival, and its newest packet's sending
	delivered, lost uint64        // Inputs.Arrived, Inputs.Lost
}

// sentUnknown is an ackPoint's sentAt when its ACK gave no RTT sample.
const sentUnknown = time.Duration(math.MinInt64)

func (m *Model) addBwSample(rate float64) {
	i := m.bwSlot()
	m.bwN++
	switch {
	case rate > m.bwTop[0]:
		m.bwTop[0], m.bwTop[1] = rate, m.bwTop[0]
	case rate > m.bwTop[1]:
		m.bwTop[1] = rate
	}
	m.btlBw[i] = m.bwTop[0]
	if m.bwN >= outlierSamples {
		m.btlBw[i] = m.bwTop[1]
	}
	m.btlBw[i] = max(m.btlBw[i], m.bwDelivery)
}

// addDeliverySample counts a delivery rate (see deliverySample) in the
// round's slot of the bandwidth filter, apart from the receiver's
// arrival rates and their outlier rule.
func (m *Model) addDeliverySample(rate float64) {
	i := m.bwSlot()
	m.bwDelivery = max(m.bwDelivery, rate)
	m.btlBw[i] = max(m.btlBw[i], rate)
}

// bwSlot returns the bandwidth filter's slot for the current round,
// started afresh if the round has none yet, and marks the round sampled.
func (m *Model) bwSlot() uint64 {
	m.sampled = true
	i := m.bwRounds % bwWindow
	if m.bwRound[i] != m.bwRounds {
		m.bwRound[i], m.btlBw[i] = m.bwRounds, 0
		m.bwTop, m.bwN, m.bwDelivery = [2]float64{}, 0, 0
	}
	return i
}

// OnACK implements Controller.
func (m *Model) OnACK(now time.Time, ack seq.Num, in Inputs) {
	m.maxWindow = max(in.MaxWindow, minCwnd)
	m.takeMinRTT(now, in)
	newRound := m.nextRound(now)
	m.takeRates(now, in)
	m.seedRate()
	if m.share.active() {
		m.share.grow(now, float64(in.Delivered-m.roundAcked), m.smoothedRTT(in))
	}
	m.roundAcked = in.Delivered
	// Until the first rate sample: slow start on deliveries.
	if m.bw() == 0 {
		m.cwnd = min(m.cwnd+int(in.Delivered-m.sampleDelivered), m.maxWindow)
	}
	m.sampleDelivered = in.Delivered

	if newRound {
		m.endRound(now, in)
	}
	if in.Lost != m.lostSeen {
		m.lostSeen, m.lostAt = in.Lost, now
	}
	if m.state == modelStartup && in.AckRTT > 0 {
		m.hystart(in.AckRTT)
	}
	m.advanceState(now, in)
	m.update(now, in)
}

// seedRate paces a flow on a short path from its first round-trip sample
// on, before it has a rate sample: at its window per seedRTT, doubled by
// startup's gain. Unpaced, the window went out in bursts, the receiver
// timed each burst's packets arriving back to back at the bottleneck, and
// the first rate samples were the bottleneck's rate, not the flow's
// share: of eight flows started together over netsim's 500 Mbit/s, 0.2 ms
// path with a 2 MB queue (TestModelFlowsShareShortPath), one left
// startup with an estimate of 506 Mbit/s, overflowed the queue and
// retransmitted 5 % of its packets, the others 1-2 %, in one run in four
// or five (0.2-0.4 % each in the rest). seedRTT is the receiver's ACK
// interval: a window-limited flow whose window is under the light ACK's
// 64 packets delivers at most its window per full ACK, whatever the round
// trip. Paced, the flows retransmitted 0.14-0.65 % in every run of 24,
// and eight loopback streams (udtperf -P 8) started closer together:
// least/most 0.02-0.31 in the first second, median 0.14-0.18 in two
// batches of five against 0.02-0.29 (0.05-0.14), and 0.63-0.82 over 10 s
// (median 0.74) against 0.58-0.84 (0.68). On longer paths the window's
// round trip paces it well enough.
//
// The seed is a sample of the bandwidth filter, and so a floor under the
// estimate for the filter's rounds: let go at the first rate sample, the
// early samples of flows that started together scattered, and their
// startups ended apart (Jain's index 0.80-0.89 in two runs of twelve).
// On a short path slower than the seed (1,600 packets/s, 18 Mbit/s at
// 1,500-byte packets) the flow paces above it for those rounds, as
// startup does.
func (m *Model) seedRate() {
	if m.state == modelStartup && m.minRTT > 0 && m.shortPath() && m.filteredBw() == 0 {
		m.addDeliverySample(float64(m.cwnd) / max(m.minRTT, seedRTT).Seconds())
	}
}

// seedRTT is the least round trip seedRate paces a window over.
const seedRTT = ackDelay

// takeMinRTT takes the ACK's RTT samples into the minimum RTT: lower
// samples replace it at once; once it is older than minRTTWindow,
// ProbeRTT drains the queue and its first sample replaces it whatever its
// value.
func (m *Model) takeMinRTT(now time.Time, in Inputs) {
	expired := now.Sub(m.minRTTAt) > minRTTWindow
	// On a short path our own samples count toward the path's round trip
	// too (see baseRTT): an ACK's delay only lengthens them. The
	// receiver's RTT starts from a guess and is smoothed, so a flow that
	// started while others kept a queue standing learnt from it alone a
	// round trip with that queue in it: of eight loopback streams, one
	// took 2 ms for the path's 0.05 ms, saw no standing queue at 2.5 ms,
	// took the losses there for random, did not cut while the others
	// did, and kept its start-up lead. Not on longer paths, where the
	// queue such a flow meets is a small part of the round trip: there,
	// over netsim's 100 Mbit/s, 300 ms path at 1 % loss, the flow got
	// 16 % and 42 % of the link in two runs of sixteen (46-89 % without).
	if in.AckRTT > 0 && in.AckRTT < futileMinRTT {
		m.baseRTT.add(now, in.AckRTT, baseRTTWindow)
	}
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
}

// nextRound starts a new round if the current one has lasted its length,
// and reports whether it did. Rounds last one minimum RTT. (Counting them
// by the ACK passing what was sent at their start would stall while a
// loss is repaired, as a UDT ACK cannot pass a hole.)
func (m *Model) nextRound(now time.Time) bool {
	if now.Sub(m.roundStart) < m.roundLength() {
		return false
	}
	m.round++
	m.roundStart = now
	if m.sampled {
		m.bwRounds++
		m.sampled = false
	}
	return true
}

// takeRates takes the ACK's rate samples and the receiver's RTT into the
// bandwidth filter and the round's figures.
func (m *Model) takeRates(now time.Time, in Inputs) {
	// Bandwidth: the receiver's arrival rate, a median over its last 16
	// packet arrivals (ACK word 5). Unlike the rate at which the ACK point
	// moves, it does not leap when a hole is repaired; when we send faster
	// than the bottleneck it measures the bottleneck.
	// A sample the application held down counts only where it raises the
	// estimate (as BBR's): an idle spell must not teach the filter that
	// the path is slow.
	held := m.heldBack(in)
	if sample, ok := m.rateSample(now, in); ok && (!held || sample > m.filteredBw()) {
		m.roundRate += sample
		m.roundRates++
		m.addBwSample(sample)
		m.capSamples++
	}
	m.deliverySample(now, in, held)
	m.capacity = float64(in.Bandwidth)
	// The queue is judged by the receiver's RTT (ACK to ACK2), which a
	// hole waiting for repair does not lengthen as it does AckRTT.
	if rtt := in.RTTSample; rtt > 0 {
		if m.roundMinRTT == 0 || rtt < m.roundMinRTT {
			m.roundMinRTT = rtt
		}
		// The receiver's RTT starts from a guess (100 ms in 4.11) and
		// converges: a sample well below our own round trip (AckRTT,
		// which an ACK's delay only lengthens) is the guess, not the
		// path.
		if m.minRTT > 0 && rtt >= m.minRTT-ackDelay-time.Millisecond {
			m.baseRTT.add(now, rtt, baseRTTWindow)
		}
	}
}

// heldBack reports whether the ACK's rate samples measured packets that
// something besides the path held down, so that they count only where
// they raise the estimate: the application left the sender idle, or a
// window held new data back while the last round sent under
// starvedShare of the pace. A window full behind holes is the latter: a
// 4.11 receiver reports each loss once, and after a startup overflow into
// one over a 100 Mbit/s, 100 ms TUN link the sender, its window full of
// packets the receiver had behind thousands of holes, sent only the
// retransmissions that the stall recovery queues (see the connection's
// resendStalledLocked); their arrival rates, a few dozen packets a
// second, were taken for the path's rate, the pace fell with them to 45
// packets/s and the repair crawled for 26 s (6.0 Mbit/s over 30 s). A
// window merely full, or full for part of a round, does not hold the
// estimate: with every window full behind a hole under repair taken for
// held back, flows of ours at 1 % loss kept the estimates their startups
// had inflated, and over TUN links they overflowed the queue more (2,063
// and 783 packets dropped in 12 s windows, where twenty measurements
// without it had 655 at most).
func (m *Model) heldBack(in Inputs) bool {
	return in.AppLimited || in.WindowLimited && m.lastSendRate < starvedShare*m.bw()
}

// starvedShare is the share of the pace under which a round's sending,
// its window full, was held back by the window rather than paced.
const starvedShare = 0.5

// rateSample returns the receiver's arrival rate in the latest full ACK,
// packets/s, bounded by what we sent, and whether there is one to take.
//
// Packets cannot arrive faster than they were sent for long: a sample
// above the send rate of the last two rounds times the gain that can
// raise it in a round (see sendBound) measured a burst, packets that
// queued at the receiver and were timed when read (4.11's receiver does
// so, and its median has no span check: bursts read as up to 10^6
// packets/s). Until rateSpan packets
// have been acknowledged the receiver's median spans its initial contents,
// not our arrivals (4.11 reports 2 packets/s, then 0): a model that took
// them would pace at its floor.
func (m *Model) rateSample(now time.Time, in Inputs) (float64, bool) {
	if in.RateSample <= 1 || in.Delivered <= rateSpan {
		return 0, false
	}
	return m.deliveryBound(now, m.sendBound(float64(in.RateSample))), true
}

// deliveryBound bounds an arrival rate r, packets/s, by arrivalOverDelivery
// times the latest delivery rate (see deliverySample), if one was taken
// within the last round and startup is over. Both measure the packets that
// reached the receiver last, the delivery rate over deliverySpan of our own
// ACK timing, the arrival rate over the receiver's last rateSpan arrivals as
// it timed them: a 4.11 receiver whose thread was late times a burst of
// reads, and reported 10,000-14,000 packets/s over a TUN link that carries
// 8,300. Within the send bound (see sendBound) such samples raised the
// estimate by a quarter, the probe that followed paced at 1.6 times the
// link, and the queue overflowed into the receiver's buffer: 2,700-5,600
// packets lost at once, whose repair a 4.11 receiver, which reports each
// loss once, drags out for seconds. Where loss is frequent, spans without
// one are rare, delivery rates with them, and the arrival rates stand
// alone. The delivery rate lags the arrivals where the rate changes
// within its span: in startup, whose rate doubles each round, and on paths
// whose round trip, the length of a probe's phase, is shorter than the span
// (a probe of a slow flow on a 1 ms path never showed in delivery rates
// that averaged it with the phases around it, and the flow stayed near
// its floor).
func (m *Model) deliveryBound(now time.Time, r float64) float64 {
	if m.state == modelStartup || m.minRTT < deliverySpan || m.dlvRate <= 0 || now.Sub(m.dlvAt) > m.roundLength() {
		return r
	}
	return min(r, arrivalOverDelivery*m.dlvRate)
}

// arrivalOverDelivery is how far above the latest delivery rate an arrival
// rate may be taken (see deliveryBound).
const arrivalOverDelivery = 1.1

// sendBound bounds a delivery-rate sample r, packets/s, by the send rate
// of the last two rounds, once there is one, times the most a round can
// raise it: twice in startup, which doubles it, a probe's gain after. Twice
// in ProbeBW let two bursts from a late-woken C++ receiver in one round
// (the outlier rule counts the second greatest) double the estimate:
// over a 100 Mbit/s, 100 ms TUN link at 1 % loss, a Go -> C++ flow paced
// at 16,100 packets/s, 1.9 times the link, for ten rounds and lost 5,628
// packets at the queue.
func (m *Model) sendBound(r float64) float64 {
	if m.sendRate <= 0 {
		return r
	}
	g := cycleGains[0]
	if m.state == modelStartup {
		g = startupPacingGain
	}
	return min(r, g*m.sendRate)
}

// ackedRateSample stands in for the receiver's arrival rate in a round
// that brought none: the rate the ACKs delivered at over the round, once
// it spans 2·rateSpan packets, bounded as arrival rates are. (4.11's
// filter reports 0 for arrivals it finds too scattered, such as packets
// that a sender's batch put microseconds apart; with no sample the
// estimate froze, and startup, which counts only rounds with one, never
// ended: one loopback stream stayed at 1 Gbit/s for ten seconds.)
func (m *Model) ackedRateSample(now time.Time, in Inputs) {
	acked := in.Delivered - m.roundDelivered
	m.roundDelivered = in.Delivered
	d := now.Sub(m.roundEnded).Seconds()
	if m.roundRates > 0 || d <= 0 || acked < 2*rateSpan || in.Delivered <= rateSpan {
		return
	}
	r := m.sendBound(float64(acked) / d)
	if !m.heldBack(in) || r > m.filteredBw() {
		m.addBwSample(r)
		m.roundRates = 1
		m.roundRate = r
	}
}

// deliverySample counts the rate at which packets arrived (Inputs.Arrived:
// what the ACKs acknowledged and what the loss reports showed arrived past
// the ACK point), over the shortest span of recent ACKs and loss reports
// that counted 2·rateSpan arrivals, beside the receiver's arrival rates.
// As BBR's delivery rate, the span is the longer of the reports' arrivals
// and their packets' sending (the newest packet an ACK acknowledges, or
// the one whose arrival revealed a loss, was sent Inputs.ArrivedRTT
// before the report came), so reports that arrive bunched do not inflate
// it. Spans whose packets' send times are unknown (a report whose newest
// packet had been retransmitted) and spans that something besides the
// path held down (held: see heldBack) do not count.
//
// The latest rate bounds the receiver's arrival rates (deliveryBound);
// only spans with no loss reported in them or just before go into the
// bandwidth filter too. Counted by the ACK point alone, spans with a loss
// measured the burst that its repair releases and were left out; under
// 1 % loss that left no span at all, and the arrival rates stood alone: a
// 4.11 receiver, which times packets as its thread reads them, reported
// 12,000-18,000 packets/s over a TUN link that carries 8,300, the
// estimate rose to 14,800, and the flow paced at 1.8 times the link while
// its RTT rose by half: 3,150 packets dropped at the full queue. Counted
// by arrivals, those spans measure; but into the filter, whose maximum
// keeps the highest, they brought the spread that a shared drop-tail
// queue gives 50 ms of one flow's deliveries: eight flows of ours over
// 100 Mbit/s, 40 ms in netsim (a fair share of 1,040 packets/s, the
// median sample) had samples up to 10,000 packets/s and estimates three
// to ten times their share, and retransmitted 9.4 % in the median of
// twelve runs against 3.3 %.
//
// A 4.11 receiver's arrival rate leaves out intervals under an eighth of
// the median: packets that a late-woken sender caught up on, or that a
// late-woken receiver read in a burst, vanish from it, and what is left
// is the rate of the wake-ups. On a loaded machine that rate held a flow
// near 550 packets a second whatever its pace, a probe never showed, and
// the model never grew: a 1 s message test of 17 MB to a C++ receiver
// took 11 s.
func (m *Model) deliverySample(now time.Time, in Inputs, held bool) {
	in.Arrived = max(in.Arrived, in.Delivered) // what is acknowledged arrived
	rtt := in.ArrivedRTT
	last := m.acks[m.acksHead]
	if m.acksN > 0 && in.Arrived <= last.delivered {
		return
	}
	if m.acksN == 0 {
		m.acksEpoch = now
	}
	at, sentAt := now.Sub(m.acksEpoch), sentUnknown
	if rtt > 0 {
		sentAt = at - rtt
	}
	// The points are ackSpacing or rateSpan packets apart, whichever
	// comes first: a 4.11 receiver ACKs every packet of a slow flow.
	if m.acksN == 0 || at-last.at >= ackSpacing || in.Arrived-last.delivered >= rateSpan {
		m.acksHead = (m.acksHead + 1) % len(m.acks)
		m.acks[m.acksHead] = ackPoint{at: at, sentAt: sentAt, delivered: in.Arrived, lost: in.Lost}
		m.acksN = min(m.acksN+1, len(m.acks))
	}
	if held || sentAt == sentUnknown {
		return
	}
	for k := 0; k < m.acksN; k++ {
		p := m.acks[(m.acksHead-k+len(m.acks))%len(m.acks)]
		if in.Arrived-p.delivered < 2*rateSpan {
			continue
		}
		if p.sentAt == sentUnknown {
			continue // an older point, its span longer, may tell
		}
		span := max(at-p.at, sentAt-p.sentAt)
		if span < deliverySpan {
			continue
		}
		r := float64(in.Arrived-p.delivered) / span.Seconds()
		m.dlvRate, m.dlvAt = r, now
		if p.lost == in.Lost && !m.repairing(now) {
			m.addDeliverySample(r)
		}
		return
	}
}

// rateSpan is how many arrival intervals the receiver's rate median
// spans (ACK word 5).
const rateSpan = 16

// endRound judges the round that just ended: was it congested, did
// startup stop growing?
func (m *Model) endRound(now time.Time, in Inputs) {
	congested, queued, overloaded := m.judgeRound(in)
	m.queued = queued
	if m.state == modelStartup && m.delayRose() {
		m.leaveStartup()
	}
	m.judgeCut()
	switch {
	case !congested || m.state == modelProbeRTT:
	case m.state == modelDrain || m.round <= m.settledRound:
		// The queue and the losses startup left behind are its own.
	case m.state == modelStartup:
		// Startup overshoots by design: its loss ends it, and what it
		// learnt of the path stands.
		m.leaveStartup()
	case m.holding() && !overloaded:
		// The last cut only gave way to a flow that does not: no
		// other until the hold is over.
	case m.cutRound == 0 || m.round > m.cutRound+1+m.cutSettle:
		if overloaded {
			// More loss than the even share makes up for: not one
			// competitor that does not give way, but more flows
			// than the path holds, each pacing for half of it (see
			// excessiveLoss). The hold ends, the cut stands, and the
			// count of futile cuts starts again: kept, the next
			// futile cut brought the hold back at once, and in
			// netsim four runs in eight of the eight staggered
			// flows retransmitted 22-25 % of their packets (1.8-8.8 %
			// with the count reset).
			m.futileCut, m.futileCuts = false, 0
		}
		m.share.cut(now, m.fairRate(m.cutFrom(now, in)), m.smoothedRTT(in))
		m.cutRound, m.cutSettle = m.round, m.settleAfterCut(in)
		m.cutQueue, m.futileCut = m.roundQueue(), false
		for i := range m.settleQueue {
			m.settleQueue[i] = -1
		}
	}
	if m.share.active() && m.share.rate() > 2*m.filteredBw() && m.round > m.cutRound+1+m.cutSettle && !m.shortPath() {
		// No longer binds. On a short path the cap stays: it is what the
		// flow paces at (see capGoverns), and read through a round trip
		// that is mostly queue it rises far above the filter whenever the
		// queue drains; lifted then, eight flows of ours in netsim lost
		// the cuts that bring them together (least/most 0.33-0.54).
		m.share.lift()
	}
	m.hsLastMin, m.hsMin = m.hsMin, 0
	if d := now.Sub(m.roundEnded).Seconds(); d > 0 {
		r := float64(in.Sent-m.roundSent) / d
		m.sendRate, m.lastSendRate = max(r, m.lastSendRate), r
	}
	m.ackedRateSample(now, in)
	m.prevRoundEnded, m.prevRoundSent = m.roundEnded, m.roundSent
	m.roundLost, m.roundSent, m.roundMinRTT = in.Lost, in.Sent, 0
	sampled := m.roundRates > 0
	m.roundRate, m.roundRates, m.roundGain = 0, 0, m.gain()
	m.roundEnded = now

	// A round without a rate sample tells nothing of growth. Growth of
	// the delivery rate counts too: a 4.11 receiver's arrival rates at a
	// few hundred packets a second are those of its thread's wake-ups,
	// one burst of them, bounded at twice the send rate, set the mark,
	// and the rates after it, a third of it, ended startup at 4 Mbit/s
	// over a 100 Mbit/s, 100 ms link while the delivery rate doubled
	// round after round; a probe's quarter a cycle took the flow to the
	// link's rate in 2.5 s, and in two runs of ten 8 s. Not on paths
	// shorter than a delivery span, where the rate lags a round's
	// doubling by several rounds: eight flows started together over
	// netsim's 0.2 ms path went on doubling into the queue the first had
	// filled (Jain's index 0.894 in one run of five).
	if m.state == modelStartup && sampled {
		grew := false
		if bw := m.bw(); bw > m.fullBw*1.25 {
			m.fullBw, grew = bw, true
		}
		if fresh := now.Sub(m.dlvAt) <= m.roundLength(); fresh && m.minRTT >= deliverySpan && m.dlvRate > m.fullDlv*1.25 {
			m.fullDlv, grew = m.dlvRate, true
		}
		if grew {
			m.fullCount = 0
		} else if m.fullCount++; m.fullCount >= fullBwRounds {
			m.leaveStartup()
		}
	}
}

// judgeRound tells whether the round that just ended was congested, and
// whether a queue stood through it. Random loss with no standing queue
// is not congestion; loss while a queue stands is, and so is a probe
// that raised the loss rate above the background's.
func (m *Model) judgeRound(in Inputs) (congested, queued, overloaded bool) {
	base := m.baseRTT.get()
	queued = base > 0 && m.roundMinRTT > base+max(base/2, queueSlack)
	// A loss is reported a round trip after the packet was sent: the
	// round's reports are mostly of the previous round's packets.
	sent := max(in.Sent-m.roundSent, m.roundSent-m.prevRoundSent)
	lost := in.Lost - m.roundLost
	var rate float64
	if sent > 0 {
		rate = min(float64(lost)/float64(sent), 1)
		m.recentLost = m.recentLost*3/4 + float64(lost)
		m.recentSent = m.recentSent*3/4 + float64(sent)
	}
	probing := m.roundGain > 1
	if !probing && !queued && sent > 0 {
		// The background loss rate, packets weighted, over the last
		// rounds that neither probed nor met a queue.
		m.bgLost = m.bgLost*7/8 + float64(lost)
		m.bgSent = m.bgSent*7/8 + float64(sent)
	}
	bg := m.bgRate()
	// A probe's loss counts when it rises above the background by
	// lossThresh and by three standard deviations of the background's
	// binomial spread, once the background is known, so that few packets
	// or heavy random loss do not read as congestion.
	excess := float64(lost) - bg*float64(sent)
	spread := 3 * math.Sqrt(float64(sent)*bg*(1-bg))
	overloaded = excessiveLoss(lost, sent)
	congested = lost > 0 && queued ||
		probing && m.bgSent >= bgKnown && rate > bg+lossThresh && excess > spread ||
		overloaded
	return congested, queued, overloaded
}

// excessiveLoss reports whether a round lost more of its packets than
// random loss could claim: clearly more than maxRandomLoss (a quarter), by three
// standard deviations of the binomial spread at that rate. Such a round is
// congested whether or not a queue shows. A flow that starts while others
// keep a standing queue takes that queue for the path's delay and sees
// none; it took the losses at the full queue for random, its probes never
// raised them above that background, and it never cut: of eight flows
// started one after the other across a TUN-emulated 100 Mbit/s, 40 ms link
// with a one-BDP queue, the latecomers kept pacing into the queue, 215,195
// packets were dropped there in 30 s (nearly one in two), and one flow got
// 1.2 Mbit/s of the 100 (Jain's index 0.89). Cut, the latecomers let the
// queue drain, and the round trip they then see teaches them the path's.
func excessiveLoss(lost, sent uint64) bool {
	if sent == 0 {
		return false
	}
	const p = maxRandomLoss
	rate := float64(lost) / float64(sent)
	return rate > p+3*math.Sqrt(p*(1-p)/float64(sent))
}

// roundQueue is the queue the round met, its least receiver RTT above the
// path's round trip; -1 when either is unknown.
func (m *Model) roundQueue() time.Duration {
	base := m.baseRTT.get()
	if base <= 0 || m.roundMinRTT <= 0 {
		return -1
	}
	return max(m.roundMinRTT-base, 0)
}

// judgeCut judges the last cut once the rounds that settle it are over.
// A competitor that gives way to loss (CUBIC, Reno, other flows of ours)
// met the same overflow, cut too, and the queue drained to under half the
// height it had at the cut, for a few rounds: the third least of the
// settling rounds' queues counts, since the kernel's BBR empties the queue
// for 200 ms every 10 s (its ProbeRTT) whatever we do. One that does not
// give way (TCP BBR v1 paces at the largest delivery rate of its last
// rounds and holds twice its bandwidth-delay product in flight, loss or
// not) takes what the cut freed within a gain cycle, the queue stands on,
// and every further cut is a share handed over for good: beside BBR over
// a 100 Mbit/s, 100 ms link with a one-BDP queue the model ratcheted down
// to a ninth of BBR's goodput.
//
// So, from the futileToAct-th futile cut in a row, a futile cut is taken
// back (the cap returns to where it was cut from and grows on from there)
// and the next congestion is let pass for holdRounds, which double with
// each futile cut in a row: a loss-based competitor that arrives later is
// met at the next cut, and each cut the queue drains after halves the
// next hold. From the futileToLift-th in a row the cap is lifted, and the
// flow paces at its bandwidth filter alone, as BBR does, until the hold is
// over: a restored cap is still a window read through the round trip,
// which the competitor's standing queue doubles, and beside the kernel's
// BBR it held the flow at a fifth of the link. Lifting it from the first
// acted-on cut let one of eight flows of ours that judged a cut futile
// take half the link from the seven others (Jain's index 0.59 in one of
// six netsim runs). On paths under futileMinRTT cuts are not judged.
func (m *Model) judgeCut() {
	// endRound runs once a round: the cut is judged in the round after
	// the settling ones, and the rounds after that change nothing.
	judgeAt := m.cutRound + 2 + settleRounds
	if m.cutRound == 0 || m.round <= m.cutRound || m.round > judgeAt {
		return
	}
	if q := m.roundQueue(); q >= 0 {
		for i := range m.settleQueue {
			if m.settleQueue[i] < 0 || q < m.settleQueue[i] {
				q, m.settleQueue[i] = m.settleQueue[i], q
				if q < 0 {
					break
				}
			}
		}
	}
	if m.round < judgeAt {
		return
	}
	settled := m.settleQueue[settleLeast-1]
	if m.cutQueue <= 0 || settled < 0 || float64(settled) <= drainedShare*float64(m.cutQueue) ||
		m.baseRTT.get() < futileMinRTT {
		m.futileCuts = max(m.futileCuts-1, 0)
		return
	}
	m.futileCuts = min(m.futileCuts+1, maxFutileCuts)
	if m.futileCuts < futileToAct {
		return
	}
	m.futileCut = true
	if m.futileCuts >= futileToLift {
		m.share.lift()
	} else {
		m.share.undo(m.roundEnded)
	}
}

// contesting reports whether the flow meets a competitor that does not
// give way to loss: a futile cut's hold is in force (see judgeCut).
func (m *Model) contesting() bool {
	return m.holding() && m.state == modelProbeBW
}

// evenShare is the pacing rate, packets/s, of a flow that meets a
// competitor that does not give way (see contesting): half the link's
// capacity (the receiver's packet-pair estimate), raised by the loss rate
// of the last rounds so that half arrives; 0 while the capacity is not
// known. Paced at its bandwidth filter, as the competitor (TCP BBR v1)
// paces at its own, a flow lost ever more: the competitor holds twice its
// bandwidth-delay product in flight, so its queue stands and it delivers
// what its estimate says, loss or not, while a paced flow's packets are
// lost at that standing queue and each round it measures less. Over a
// 100 Mbit/s, 100 ms TUN link with a one-BDP queue beside the kernel's
// BBR, 15-30 % of the model's packets were lost in a round, and it got
// 0.2-0.4 of BBR's goodput. The share aimed at is the competitor's: with
// one, the link split evenly; the pace is no more than evenLossMax makes
// of it, and a competitor that gives way again is met at the next cut
// after the hold.
func (m *Model) evenShare() float64 {
	if m.capSamples < capacityWarmup || m.capacity <= 0 {
		return 0
	}
	var loss float64
	if m.recentSent > 0 {
		loss = min(m.recentLost/m.recentSent, evenLossMax)
	}
	return m.capacity / 2 / (1 - loss)
}

// evenLossMax is the most loss evenShare makes up for: more ends the
// contest (see endRound).
const evenLossMax = maxRandomLoss

// holding reports whether a futile cut's hold is in force.
func (m *Model) holding() bool {
	return m.futileCut && m.round <= m.cutRound+m.holdRounds()
}

// holdRounds is how many rounds after a futile cut congestion does not
// cut again.
func (m *Model) holdRounds() uint64 {
	return (1 + settleRounds) << m.futileCuts
}

// settleAfterCut is how many rounds after a cut no other follows:
// settleRounds, or on a short path the rounds that span two round trips
// of the moment (at least one). A round lasts at least sampleSpan, many
// times such a path's round trip, and eight rounds let a queue of eight
// flows of ours overflow for 90 ms between cuts: in netsim (2 Gbit/s,
// 0.2 ms, 2 MB queue, the share cap lifted as before) they retransmitted
// 1.4 % of their packets, 0.5-1.3 % settling for one round.
func (m *Model) settleAfterCut(in Inputs) uint64 {
	if !m.shortPath() {
		return settleRounds
	}
	n := uint64(2*m.smoothedRTT(in)/m.roundLength()) + 1
	return min(n, settleRounds)
}

// bgRate is the background loss rate, 0 until known.
func (m *Model) bgRate() float64 {
	if m.bgSent <= 0 {
		return 0
	}
	return m.bgLost / m.bgSent
}

// cutFrom is the rate, packets/s, a cut starts from: the share cap where
// it binds, as a TCP flow cuts its window, else what the flow got through
// the round (see gettingRate). A window-based flow cuts what it sends, not
// what arrived: beside a competitor that keeps a queue standing (TCP BBR
// v1), our packets arrive well under the cap while the queue grows with
// the competitor's, and each cut from what arrived took the cap a step
// lower. Over TUN beside the kernel's BBR (100 Mbit/s, 100 ms), the model
// got 0.14-0.31 of BBR's goodput cutting from arrivals, 0.49-0.56 from the
// cap (with futile cuts lifting it, see judgeCut).
func (m *Model) cutFrom(now time.Time, in Inputs) float64 {
	r := m.gettingRate(now, in)
	if m.capBinds() {
		r = max(r, m.share.rate())
	}
	return r
}

// gettingRate is the rate, packets/s, the flow got through the round that
// just ended: what arrived at the receiver, no more than was sent over
// this round or the one before (a round whose window closed at a hole
// sent little), no more than the model's estimate.
func (m *Model) gettingRate(now time.Time, in Inputs) float64 {
	r := m.bw()
	if d := now.Sub(m.prevRoundEnded); d > 0 && in.Sent > m.prevRoundSent {
		r = min(r, float64(in.Sent-m.prevRoundSent)/d.Seconds())
	}
	if m.roundRates > 0 {
		r = min(r, m.roundRate/float64(m.roundRates))
	}
	return r
}

// fairRate bounds the rate r a cut starts from by a fair share of the
// bottleneck: at congestion the link is full, and what the receiver's
// packet-pair estimate of its capacity leaves beside r is the others'. A
// flow holding more than all the others together starts its cut from
// half the link, so that flows that started unequal (the first to fill
// the queue takes most of it) meet within one congestion epoch rather
// than the many CUBIC's fast convergence needs.
//
// The others are what the capacity leaves beside the most the flow has
// seen delivered over the filter's rounds, not beside r alone: a lone
// flow's rate in a round that lost packets falls short of the estimate,
// which runs high by itself (a 4.11 receiver's by 10 % and more), and
// the others that shortfall showed were phantoms. Over a 100 Mbit/s,
// 100 ms TUN link a lone Go -> C++ flow that delivered 7,600 packets/s
// in a lossy round beside an estimate of 9,215 (the link carries 8,300)
// was cut from half the estimate to 3,365 packets/s, 40 % of the link,
// and took 15 s to grow back. A share under minOthers is left to the cut
// and the growth after it, as CUBIC leaves it.
func (m *Model) fairRate(r float64) float64 {
	c := m.capacity
	if m.capSamples < capacityWarmup || c <= 0 {
		return r
	}
	if others := c - max(r, m.filteredBw()); others > minOthers*c && r > c-r {
		return c / 2
	}
	return r
}

// minOthers is the least share of the link's capacity, beside the most a
// flow has seen delivered, that fairRate takes for other flows.
const minOthers = 0.15

// roundLength is how long a round, and a ProbeBW phase, lasts: one
// minimum RTT, at least sampleSpan, and long enough to send twice the
// packets the receiver's arrival-rate median spans at the current
// pacing rate. A phase with fewer packets does not show in the samples:
// at a few hundred packets a second a probe's gain of a quarter never
// raises the estimate, and a flow that left startup that slow (eight
// flows on loopback, meeting a queue at once) stays there.
func (m *Model) roundLength() time.Duration {
	d := max(m.minRTT, sampleSpan)
	if r := m.bw() * m.pacingGain; r > 0 {
		d = max(d, time.Duration(2*rateSpan/r*float64(time.Second)))
	}
	return min(d, maxRoundLength)
}

// smoothedRTT is the round trip the share cap is read through: the
// receiver's, which a hole waiting for repair does not lengthen.
func (m *Model) smoothedRTT(in Inputs) time.Duration {
	if in.RTTSample > 0 {
		return in.RTTSample
	}
	if in.RTT > 0 {
		return in.RTT
	}
	return max(m.minRTT, sampleSpan)
}

// hystart takes a round-trip sample in startup and leaves startup once
// hystartSamples samples in a row have risen clearly above the least of
// the previous round: a queue builds at a bottleneck that is full, before
// it overflows. (RFC 9406 compares the least of a round's first samples;
// with one ACK every 10 ms, a round of a long path has about ten, and its
// least is taken before the queue rose.)
//
// On a short path (see shortPath) a rise slows startup to
// cssPacingGain but does not end it; loss at a standing queue or the
// full-bandwidth test does. There the queue is most often a receiving
// host's socket buffer, which flows that started together fill together,
// and its few milliseconds, or the host's scheduling alone, ended the
// startup of one loopback stream at a few Mbit/s and of another at a
// Gbit/s: eight streams (udtperf -P 8) got least/most 0.00-0.02 in their
// first second. Growing on by a quarter a round, eight flows over netsim's
// 500 Mbit/s, 0.2 ms path with a 2 MB queue (TestModelFlowsShareShortPath)
// reached a Jain's index of 0.981-0.998 and retransmitted 0.2-0.4 % in six
// runs, against 0.906-0.997 (one run of six under 0.97, its flows
// retransmitting 0.6-2.3 %) without it. On real loopback the
// gain is within the host's noise: 0.66-0.77 against 0.50-0.68 in five
// runs alternated, 0.51-0.70 against 0.48-0.70 in four more on a busier
// host; there the first second still starts 0.03-0.08 apart. One stream's
// retransmissions are unchanged (0.07-0.2 %).
//
// A rise on a short path is a rise of queueSlack or of an eighth, not of
// RFC 9406's 4 ms at least: a 2 MB queue at 500 Mbit/s grows by 3.7 ms a
// 10 ms round under a flow that doubles into it, and with the 4 ms floor
// the last of eight flows went on doubling while the seven others, out of
// startup, held their rates. Each round it sent twice what it had got, the
// drop-tail queue gave it a share of the link in proportion to what it
// sent, it left startup at 140-270 Mbit/s against their 50-70, and the
// cuts that followed took seconds to even them out: Jain's index over
// 10 s 0.929-0.998, one run in five under 0.97. With the floor at
// queueSlack it grows a quarter a round once the queue rises: 0.969-0.998
// in 48 runs of a build that logged each second, 0.952-0.998 in 40 runs of
// TestModelFlowsShareShortPath, four under 0.97, and the flows
// retransmitted 0.16-0.59 %. A flow that starts late
// beside a standing queue that does not grow still doubles: eight loopback
// streams (udtperf -P 8) got least/most 0.57-0.72 (median 0.68) over
// 10 s against 0.56-0.76 (0.63), six runs each alternated.
func (m *Model) hystart(rtt time.Duration) {
	if m.hsMin == 0 || rtt < m.hsMin {
		m.hsMin = rtt
	}
	if m.hsLastMin == 0 {
		return
	}
	eta := min(max(m.hsLastMin/8, 4*time.Millisecond), 16*time.Millisecond)
	if m.shortPath() {
		eta = max(m.hsLastMin/8, queueSlack)
	}
	if rtt < m.hsLastMin+eta {
		m.hsSamples = 0
		m.pacingGain = startupPacingGain
		return
	}
	// The queue has begun to rise: grow a quarter a round, not double,
	// until it is confirmed (RFC 9406's conservative slow start).
	m.pacingGain = cssPacingGain
	if m.hsSamples++; m.hsSamples >= hystartSamples && !m.shortPath() {
		m.leaveStartup()
	}
}

func (m *Model) leaveStartup() {
	m.state = modelDrain
	m.drainStart = m.roundStart
	m.pacingGain, m.cwndGain = 1/startupGain, startupGain
}

// delayRose is HyStart's delay test on the receiver's RTT (ACK to ACK2),
// which a hole does not lengthen, for a round that gave HyStart none of
// our own samples: the least of the round's receiver samples risen a
// sixteenth of the path's round trip (4-8 ms) above it. Under random loss
// our own samples are few (the connection takes none from an ACK that
// waited at a hole), and a C++ receiver's startup ran on to twice the
// path's round trip without it; the receiver smooths its RTT, so the
// threshold is lower than HyStart's. A round with our own samples is
// HyStart's to judge: one late ACK2 on a loaded machine lifts a smoothed
// receiver RTT by milliseconds, and on loopback that ended startup at
// 4 Mbit/s, where the receiver's median arrival rate cannot show a
// probe's gain.
func (m *Model) delayRose() bool {
	if m.hsMin > 0 {
		return false
	}
	base := m.baseRTT.get()
	eta := min(max(base/16, 4*time.Millisecond), 8*time.Millisecond)
	return base > 0 && m.roundMinRTT > base+eta
}

// repairing reports whether a loss was reported within the last two
// minimum RTTs: a hole may be holding the ACK point, and what it
// acknowledges stays in flight for the repair's round trip.
func (m *Model) repairing(now time.Time) bool {
	return m.lostSeen > 0 && now.Sub(m.lostAt) < 2*max(m.minRTT, sampleSpan)
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
// rate, not the window, keeps the queue short. The repair takes round
// trips of the path as it is, queue included: counted in minimum RTTs, the
// window closed at every hole beside a competitor whose queue doubled the
// round trip, and rounds went by with a few packets sent.
func (m *Model) windowSpan(in Inputs) time.Duration {
	// A loss is reported a round trip after it happens and repaired a
	// round trip later; a lost retransmission takes another.
	return 3*max(m.minRTT, m.smoothedRTT(in)) + ackDelay + repairAllowance
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
		phase := m.roundLength()
		if now.Sub(m.cycleStart) >= phase {
			m.cycleIdx = (m.cycleIdx + 1) % len(cycleGains)
			switch m.cycleIdx {
			case 0:
				m.probeBase = m.filteredBw()
			case 2:
				// The probe has drained. If it raised the estimate
				// clearly there is more to be had, and the next probe
				// comes at once rather than after the cruise (see
				// probePaid).
				if bw := m.filteredBw(); m.probeBase > 0 && bw >= m.probeBase*probePaid {
					m.cycleIdx, m.probeBase = 0, bw
				}
			}
			m.cycleStart = now
			m.pacingGain = cycleGains[m.cycleIdx]
			m.roundGain = max(m.roundGain, m.gain())
			if m.queued && m.pacingGain < 1 && !m.holding() {
				// A queue stands: cruise below the estimate until it
				// drains, rather than let it grow from an estimate a
				// few percent high. Not while a futile cut holds: the
				// queue is a competitor's that does not give way, and
				// cruising below it only handed that competitor more.
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
	if m.state == modelDrain {
		// Losses startup caused are reported a round trip late, and
		// repaired one later still.
		m.settledRound = m.round + 2
	}
	m.state = modelProbeBW
	m.pacingGain, m.cwndGain = 1, 2
	// Start cruising at a phase drawn from the (random) sequence number,
	// as BBR randomizes it: flows that share a bottleneck then probe at
	// different times.
	m.cycleIdx = 2 + int(uint32(in.SndCurrSeq)%uint32(len(cycleGains)-2))
	m.cycleStart = now
}

// gain is the pacing gain in force: the state's, but exactly 1 while the
// share cap binds. The cap probes for more along its own curve, as a TCP
// window does; a probe above it would only fill the queue that the flows
// sharing the bottleneck meet, and cruising below it (ProbeBW's 0.75 and
// 0.97 phases, the drain gain of a standing queue, which a queue that
// other flows keep never lets go) gave away a share the cap had won: a
// TCP window sends its whole self every round trip. With the cruise
// under the cap, the kernel's cubic kept 63.9 % of 100 Mbit/s, 100 ms
// over TUN beside the model; at the cap, 49.7 %.
func (m *Model) gain() float64 {
	if m.capBinds() || m.capGoverns() {
		return 1
	}
	return m.pacingGain
}

// capBinds reports whether the share cap, not the bandwidth filter, sets
// the pacing rate.
func (m *Model) capBinds() bool { return m.share.rate() < m.filteredBw() }

// update derives the period and window from the model.
func (m *Model) update(now time.Time, in Inputs) {
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
	rate := bw * m.gain()
	if m.contesting() {
		if even := m.evenShare(); even > 0 {
			rate, bw = even, even
		}
	}
	span := m.windowSpan(in)
	if m.minRTT > 0 {
		rate = max(rate, minCwnd/span.Seconds())
	}
	// The sender's packet pairs send 16 packets in 15 periods.
	m.period = time.Duration(probeSpacing * float64(time.Second) / rate)
	if m.state == modelStartup {
		// Startup overshoots by design; its window is BBR's, one round
		// trip's worth times the gain, so the queue it builds stays short.
		// While a loss is repaired the ACK point waits at its hole for a
		// round trip more, and the window covers that too: held to one
		// round trip, a flow at 1 % random loss stalled at every hole,
		// its rate stopped doubling, and startup ended at a ninth of the
		// link.
		span = max(m.minRTT, sampleSpan) + ackDelay
		if m.repairing(now) {
			span += max(m.minRTT, sampleSpan) + repairAllowance
		}
	}
	w := int(m.cwndGain*bw*span.Seconds()) + minCwnd
	if m.state == modelProbeRTT {
		// BBRv3's ProbeRTT window: half the bandwidth-delay product
		// drains a queue that the flow itself keeps; BBR v1's four
		// packets emptied the pipe for 200 ms each time, which beside a
		// competitor whose queue stands (ProbeRTT then comes every 10 s)
		// cost a tenth of the flow's share at least.
		w = max(4, int(m.bdp()*probeRTTGain))
	}
	m.cwnd = min(max(w, 4), m.maxWindow)
}

// OnLoss implements Controller: random loss alone does not change the
// model; persistent loss is judged per round in OnACK. In startup a loss
// report's round trip (see Inputs.LossRTT) is a HyStart sample: under
// random loss the ACK point waits at one hole or another most of the time,
// a receiver holds its unchanged ACKs back, and rounds, which end on ACKs,
// stall. Over netsim's 20 Mbit/s, 300 ms link at 0.5 % loss, startup then
// paced at twice the link for a second or more after its queue had filled:
// 1,000-1,500 packets overflowed in a third of the seeds.
//
// A loss report also shows packets arrived past the ACK point, a delivery
// sample (see deliverySample), and ends a probe whose time is up: ACKs,
// which otherwise move the state machine on, may not come. A 4.11
// receiver whose ACK point waits at a hole sends no ACK until the repair
// (its ACK was confirmed by our ACK2, and it repeats none), and a probe at
// a quarter above the estimate went on for the 200-300 ms until the next
// ACK, three times its length: over a 100 Mbit/s, 100 ms TUN link at 1 %
// loss a Go -> C++ flow sent 119 Mbit/s for 300 ms and the queue
// overflowed, 240-770 packets at a time, every few seconds. Only the
// probe: with every phase ended on loss reports, eight flows of ours
// sharing 100 Mbit/s, 40 ms in netsim (TestModelFlowsShareStaggered), each
// reporting losses many times a round trip, probed more often and
// retransmitted 5.3 % in the median of twelve runs against 3.3 %.
func (m *Model) OnLoss(now time.Time, firstLost seq.Num, in Inputs) {
	m.deliverySample(now, in, m.heldBack(in))
	if m.state != modelStartup {
		if m.state == modelProbeBW && m.pacingGain > 1 && now.Sub(m.cycleStart) >= m.roundLength() {
			m.advanceState(now, in)
			m.update(now, in)
		}
		return
	}
	if in.LossRTT <= 0 {
		return
	}
	m.hystart(in.LossRTT)
	if m.state != modelStartup {
		m.update(now, in)
	}
}

// OnTimeout implements Controller: after a timeout nothing is known to be
// in flight, so the window restarts small while the rate model stays.
func (m *Model) OnTimeout(now time.Time, in Inputs) {
	m.cwnd = max(minCwnd, m.cwnd/2)
}

// PacketPeriod implements Controller.
func (m *Model) PacketPeriod() time.Duration { return m.period }

// Window implements Controller.
func (m *Model) Window() int { return m.cwnd }
