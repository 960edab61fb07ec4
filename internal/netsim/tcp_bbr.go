package netsim

import (
	"math"
	"math/rand/v2"
	"time"
)

// BBR v1, as Linux's tcp_bbr.c has it: a model of the path (the
// bottleneck bandwidth, a windowed maximum of delivery-rate samples, and
// the round-trip propagation time, a windowed minimum of RTT samples), a
// pacing rate of a gain times that bandwidth and a window of a gain times
// the bandwidth-delay product. Loss does not enter the model; it only
// holds the window to packet conservation through the first round of a
// recovery. The sender (tcp_send.go) feeds it every transmission and
// every segment delivered, calls it once an ACK has been taken in (as
// Linux's cong_control hook), and paces what it sends at pacingRate.
//
//	STARTUP    pacing and window gain 2.89, until the delivery rate has
//	           grown less than 25 % in three rounds
//	DRAIN      pacing gain 1/2.89, until what is in flight is down to the
//	           bandwidth-delay product
//	PROBE_BW   window gain 2; pacing gain 1.25, 0.75, then six times 1, a
//	           round-trip time each, from a random phase but 0.75
//	PROBE_RTT  from any mode once the least round trip is 10 s old: four
//	           segments for 200 ms and a round, then back to PROBE_BW (to
//	           STARTUP if it was never over)
//
// Times are durations since the flow started, as the sender's. Windows
// and counts are whole segments, rates segments per second: Linux's
// fixed-point arithmetic in floating point, with its rounding where it
// decides a window.

// bbrMode is the state of BBR's state machine.
type bbrMode uint8

const (
	bbrStartup  bbrMode = iota // doubles the delivery rate each round until it stops growing
	bbrDrain                   // drains the queue STARTUP built
	bbrProbeBW                 // cycles the pacing gain around the estimate
	bbrProbeRTT                // four segments in flight, to measure the round trip
)

func (m bbrMode) String() string {
	switch m {
	case bbrStartup:
		return "startup"
	case bbrDrain:
		return "drain"
	case bbrProbeBW:
		return "probe_bw"
	case bbrProbeRTT:
		return "probe_rtt"
	}
	return "?"
}

// tcp_bbr.c's parameters. Gains are its fixed-point values, in 256ths.
const (
	bbrHighGain        = 739.0 / 256 // 2/ln 2 and a bit: STARTUP's pacing and window gain
	bbrDrainGain       = 88.0 / 256  // its inverse: DRAIN's pacing gain
	bbrCwndGain        = 2.0         // the window gain of PROBE_BW
	bbrCycleLen        = 8           // phases of the PROBE_BW gain cycle
	bbrCycleRand       = 7           // of which the cycle may start at all but one
	bbrBWRounds        = bbrCycleLen + 2
	bbrMinRTTWindow    = 10 * time.Second
	bbrProbeRTTTime    = 200 * time.Millisecond
	bbrMinCwnd         = 4    // segments: PROBE_RTT's window and the floor
	bbrPacingMargin    = 0.99 // paces 1 % below the estimate
	bbrFullBWThresh    = 1.25 // bandwidth growth that counts in STARTUP
	bbrFullBWCount     = 3    // rounds without it that end STARTUP
	bbrLTMinRounds     = 4    // rounds of a long-term sampling interval, at least
	bbrLTLossThresh    = 50   // in 256ths: loss rate of a policed interval
	bbrLTBWRatio       = 1.0 / 8
	bbrLTBWDiff        = 4000 / 8 // bytes per second
	bbrLTMaxRounds     = 48       // rounds paced at the policed rate
	bbrExtraAckedWin   = 5        // rounds of each half of the ACK-aggregation filter
	bbrExtraAckedMax   = 100 * time.Millisecond
	bbrAckEpochReset   = 1 << 20 // segments
	bbrPacingShift     = 10      // a send quantum is 1/1024 s of the pacing rate (sk_pacing_shift)
	bbrMinTSORate      = 1200000 / 8
	bbrMaxQuantumBytes = 65536 - 1 - 320 // GSO_LEGACY_MAX_SIZE − 1 − MAX_TCP_HEADER
	bbrMaxQuantum      = 0x7f
)

// bbrPacingGains is the PROBE_BW gain cycle: probe, drain, cruise.
var bbrPacingGains = [bbrCycleLen]float64{320.0 / 256, 192.0 / 256, 1, 1, 1, 1, 1, 1}

// bbrNoRTT is the round trip before the first sample.
const bbrNoRTT = time.Duration(math.MaxInt64)

// bbrFirstFlight marks app-limited what is sent before the first ACK, as
// Linux's tcp_init_sock does; any delivery passes it.
const bbrFirstFlight = math.MaxUint64

// tcpSegRate is what a transmission records of the flow's delivery
// progress, to take a delivery-rate sample when the segment is delivered
// (draft-cheng-iccrg-delivery-rate-estimation §3.2; Linux's tcp_rate.c).
type tcpSegRate struct {
	delivered   uint64        // P.delivered: segments delivered when it was sent
	deliveredAt time.Duration // P.delivered_time
	firstSent   time.Duration // P.first_sent_time
	appLimited  bool          // P.is_app_limited
}

// bbrSample is the delivery-rate sample of one ACK (Linux's struct
// rate_sample).
type bbrSample struct {
	hasPrior       bool          // a segment delivered by the ACK gave its timing
	priorDelivered uint64        // that segment's P.delivered
	priorAt        time.Duration // its P.delivered_time
	interval       time.Duration // send phase, then the sample's interval; negative if none
	appLimited     bool
	delivered      int64 // segments delivered over the interval; negative if no sample
	ackedSacked    int   // segments newly delivered by the ACK
	losses         int   // segments newly marked lost
	priorInFlight  int   // segments in flight before the ACK
	rtt            time.Duration
}

// bbrMaxFilter is a windowed maximum over rounds, Kathleen Nichols'
// algorithm as Linux's lib/win_minmax.c: the best, second and third best
// samples of the window's subwindows.
type bbrMaxFilter struct {
	s [3]struct {
		t uint64
		v float64
	}
}

func (f *bbrMaxFilter) get() float64 { return f.s[0].v }

func (f *bbrMaxFilter) reset(t uint64, v float64) {
	for i := range f.s {
		f.s[i].t, f.s[i].v = t, v
	}
}

// update takes in sample v of round t, the window being win rounds.
func (f *bbrMaxFilter) update(win, t uint64, v float64) {
	if v >= f.s[0].v || t-f.s[2].t > win {
		f.reset(t, v)
		return
	}
	switch {
	case v >= f.s[1].v:
		f.s[1].t, f.s[1].v = t, v
		f.s[2] = f.s[1]
	case v >= f.s[2].v:
		f.s[2].t, f.s[2].v = t, v
	}
	dt := t - f.s[0].t
	switch {
	case dt > win:
		// The best left the window: the second and third move up.
		f.s[0], f.s[1] = f.s[1], f.s[2]
		f.s[2].t, f.s[2].v = t, v
		if t-f.s[0].t > win {
			f.s[0], f.s[1] = f.s[1], f.s[2]
			f.s[2].t, f.s[2].v = t, v
		}
	case f.s[1].t == f.s[0].t && dt > win/4:
		// A quarter of the window without a second best: take one.
		f.s[1].t, f.s[1].v = t, v
		f.s[2] = f.s[1]
	case f.s[2].t == f.s[1].t && dt > win/2:
		f.s[2].t, f.s[2].v = t, v
	}
}

// tcpBBR is the congestion control of a bbr flow, with the delivery-rate
// estimator it feeds on. Owned by the sender's goroutine.
type tcpBBR struct {
	rng      *rand.Rand
	payload  int // bytes, for the send quantum
	initCwnd int
	maxCwnd  int

	// Delivery-rate estimation (tcp_rate.c).
	delivered  uint64        // C.delivered: segments delivered (tp->delivered)
	deliverAt  time.Duration // C.delivered_time: when delivered last grew
	firstSent  time.Duration // C.first_sent_time: sending time of the latest segment delivered
	firstXmit  uint64        // its transmission number: samples come from later ones
	appLimited uint64        // C.app_limited: samples are app-limited until delivered passes it; 0 none
	lost       uint64        // segments ever marked lost (tp->lost)
	lostBefore uint64        // lost before the ACK being taken in
	rs         bbrSample     // the ACK being taken in

	cwnd       int
	ssthresh   float64 // +Inf until DRAIN; reported only
	pacingRate float64 // segments per second

	mode               bbrMode
	bw                 bbrMaxFilter // delivery rate in segments per second, over bbrBWRounds rounds
	rounds             uint64       // packet-timed rounds
	nextRoundDelivered uint64       // the round ends when a segment sent after this many were delivered is
	roundStart         bool
	minRTT             time.Duration
	minRTTStamp        time.Duration
	probeRTTDone       time.Duration // end of PROBE_RTT at four segments; 0 until the window got there
	probeRTTRoundDone  bool
	probeRTTs          uint64
	prevState          int // the sender's state at the previous ACK that delivered (tcpOpen...)
	conservation       bool
	priorCwnd          int
	fullBW             float64
	fullBWCount        int
	fullBWReached      bool
	cycleIdx           int
	cycleStamp         time.Duration
	pacingGain         float64
	cwndGain           float64
	hasSeenRTT         bool

	// Long-term bandwidth: a policer's rate, once two lossy intervals
	// deliver at the same rate.
	ltSampling      bool
	ltRounds        int
	ltUseBW         bool
	ltBW            float64
	ltLastDelivered uint64
	ltLastLost      uint64
	ltLastStamp     int64 // milliseconds

	// ACK aggregation: segments delivered beyond the estimate's pace.
	ackEpochStamp    time.Duration
	ackEpochAcked    uint64
	extraAcked       [2]int
	extraAckedRounds int
	extraAckedIdx    int
}

func newTCPBBR(cfg TCPConfig) *tcpBBR {
	b := &tcpBBR{
		rng:        rand.New(rand.NewPCG(cfg.Seed, 0x6262722076310a)),
		payload:    cfg.payload(),
		initCwnd:   cfg.InitialWindow,
		maxCwnd:    cfg.MaxWindow,
		appLimited: bbrFirstFlight,
		cwnd:       cfg.InitialWindow,
		ssthresh:   math.Inf(1),
		minRTT:     bbrNoRTT,
		prevState:  tcpOpen,
		pacingGain: bbrHighGain,
		cwndGain:   bbrHighGain,
	}
	b.initPacingRate(0)
	return b
}

// sent records in r, as a segment leaves at now, the delivery progress;
// idle says nothing was outstanding before it.
func (b *tcpBBR) sent(r *tcpSegRate, now time.Duration, xmit uint64, idle bool) {
	if idle {
		b.firstSent, b.deliverAt, b.firstXmit = now, now, xmit
	}
	*r = tcpSegRate{delivered: b.delivered, deliveredAt: b.deliverAt, firstSent: b.firstSent, appLimited: b.appLimited != 0}
}

// startACK begins taking in an ACK; inFlight and lost are the sender's
// segments in flight and ever marked lost before it.
func (b *tcpBBR) startACK(inFlight int, lost uint64) {
	b.rs = bbrSample{priorInFlight: inFlight, interval: -1, rtt: -1}
	b.lostBefore = lost
}

// deliveredSeg takes in a segment newly delivered, cumulatively or by
// SACK: the one sent last gives the sample its start.
func (b *tcpBBR) deliveredSeg(r *tcpSegRate, xmit uint64, sent time.Duration) {
	b.delivered++
	rs := &b.rs
	if rs.priorDelivered != 0 && xmit < b.firstXmit {
		return // sent before the one the sample has
	}
	rs.hasPrior = true
	rs.priorDelivered, rs.priorAt = r.delivered, r.deliveredAt
	rs.appLimited = r.appLimited
	b.firstSent, b.firstXmit = sent, xmit+1
	rs.interval = sent - r.firstSent
}

// bbrACK is the sender's state once it has taken in an ACK.
type bbrACK struct {
	newly    int           // segments the ACK newly delivered
	rtt      time.Duration // its round-trip sample; negative if none
	lost     uint64        // segments ever marked lost
	inFlight int           // segments in flight
	state    int           // tcpOpen, tcpRecovery or tcpLoss
	toEDT    time.Duration // until pacing lets the next send go
	srtt     time.Duration // smoothed round trip; zero before a sample
	minRTT   time.Duration // least round trip; zero before a sample
}

// onACK finishes the sample of the ACK taken in at now and runs BBR on it
// (tcp_rate_gen, then bbr_main).
func (b *tcpBBR) onACK(now time.Duration, a bbrACK) {
	b.lost = a.lost
	rs := &b.rs
	if b.appLimited != 0 && (b.delivered > b.appLimited || b.appLimited == bbrFirstFlight) {
		b.appLimited = 0
	}
	if a.newly > 0 {
		b.deliverAt = now
	}
	rs.ackedSacked, rs.losses, rs.rtt = a.newly, int(a.lost-b.lostBefore), a.rtt
	rs.delivered = -1
	if rs.hasPrior {
		rs.delivered = int64(b.delivered - rs.priorDelivered)
		// Sending and acknowledging are two phases of a window; the
		// longer one bounds the rate (ACK compression shortens one).
		rs.interval = max(rs.interval, now-rs.priorAt)
		if rs.interval < a.minRTT {
			rs.interval = -1
		}
	}

	b.updateBW()
	b.updateAckAggregation()
	b.updateCyclePhase(a.toEDT)
	b.checkFullBWReached()
	b.checkDrain(a.inFlight, a.toEDT)
	b.updateMinRTT(now, a.inFlight)
	b.updateGains()

	bw := b.bwEstimate()
	b.setPacingRate(bw, b.pacingGain, a.srtt)
	b.setCwnd(a.newly, bw, b.cwndGain, a.inFlight, a.state)
}

// bwEstimate is the bandwidth BBR works with: the policed rate if it
// found one, else the windowed maximum.
func (b *tcpBBR) bwEstimate() float64 {
	if b.ltUseBW {
		return b.ltBW
	}
	return b.bw.get()
}

// initPacingRate paces at the high gain times the window per smoothed
// round trip, or per millisecond before the first sample.
func (b *tcpBBR) initPacingRate(srtt time.Duration) {
	rtt := time.Millisecond
	if srtt > 0 {
		rtt, b.hasSeenRTT = srtt, true
	}
	b.pacingRate = float64(b.cwnd) / rtt.Seconds() * bbrHighGain * bbrPacingMargin
}

// setPacingRate paces at gain times bw, but in STARTUP never slower than
// before.
func (b *tcpBBR) setPacingRate(bw, gain float64, srtt time.Duration) {
	rate := bw * gain * bbrPacingMargin
	if !b.hasSeenRTT && srtt > 0 {
		b.initPacingRate(srtt)
	}
	if b.fullBWReached || rate > b.pacingRate {
		b.pacingRate = rate
	}
}

// quantum is the send quantum, as Linux's TSO autosizing would make it
// (bbr_tso_segs_goal): about a millisecond of the pacing rate.
func (b *tcpBBR) quantum() int {
	rate := b.pacingRate * float64(b.payload)
	bytes := min(int(rate)>>bbrPacingShift, bbrMaxQuantumBytes)
	least := 2
	if rate < bbrMinTSORate {
		least = 1
	}
	return min(max(bytes/b.payload, least), bbrMaxQuantum)
}

// bdp is gain times the bandwidth-delay product of bw, rounded up.
func (b *tcpBBR) bdp(bw, gain float64) int {
	if b.minRTT == bbrNoRTT {
		return b.initCwnd
	}
	return int(math.Ceil(bw * b.minRTT.Seconds() * gain))
}

// budget adds to window w what keeps the end hosts' quanta in flight.
func (b *tcpBBR) budget(w int) int {
	w += 3 * b.quantum()
	w = (w + 1) &^ 1 // even, for the receiver's delayed ACKs
	if b.mode == bbrProbeBW && b.cycleIdx == 0 {
		w += 2
	}
	return w
}

// inflight is the window gain times bw calls for.
func (b *tcpBBR) inflight(bw, gain float64) int { return b.budget(b.bdp(bw, gain)) }

// inNetAtEDT estimates the segments in the network when the next one
// leaves, toEDT from now, of inFlight now.
func (b *tcpBBR) inNetAtEDT(inFlight int, toEDT time.Duration) int {
	gone := int(b.bwEstimate() * toEDT.Seconds())
	if b.pacingGain > 1 {
		inFlight += b.quantum()
	}
	return max(inFlight-gone, 0)
}

// updateBW counts rounds and takes the ACK's sample into the bandwidth
// filter.
func (b *tcpBBR) updateBW() {
	b.roundStart = false
	rs := &b.rs
	if rs.delivered < 0 || rs.interval <= 0 {
		return
	}
	if rs.priorDelivered >= b.nextRoundDelivered {
		b.nextRoundDelivered = b.delivered
		b.rounds++
		b.roundStart = true
		b.conservation = false
	}
	b.ltBWSampling(rs.losses, rs.appLimited)
	bw := float64(rs.delivered) / rs.interval.Seconds()
	if !rs.appLimited || bw >= b.bw.get() {
		b.bw.update(bbrBWRounds, b.rounds, bw)
	}
}

// ltBWSampling looks for a token-bucket policer: two intervals of at least
// four rounds, each lossy (20 % or more) and ending in a loss, that
// deliver at about one rate. BBR then paces at that rate for 48 rounds.
func (b *tcpBBR) ltBWSampling(losses int, appLimited bool) {
	if b.ltUseBW {
		if b.mode == bbrProbeBW && b.roundStart {
			b.ltRounds++
			if b.ltRounds >= bbrLTMaxRounds {
				b.resetLTBW()
				b.resetProbeBW()
			}
		}
		return
	}
	if !b.ltSampling {
		if losses == 0 {
			return
		}
		b.resetLTInterval()
		b.ltSampling = true
	}
	if appLimited {
		b.resetLTBW()
		return
	}
	if b.roundStart {
		b.ltRounds++
	}
	if b.ltRounds < bbrLTMinRounds {
		return
	}
	if b.ltRounds > 4*bbrLTMinRounds {
		b.resetLTBW()
		return
	}
	if losses == 0 {
		return
	}
	lost := b.lost - b.ltLastLost
	delivered := b.delivered - b.ltLastDelivered
	if delivered == 0 || lost*256 < bbrLTLossThresh*delivered {
		return
	}
	t := b.deliverAt.Milliseconds() - b.ltLastStamp
	if t < 1 {
		return
	}
	b.ltIntervalDone(float64(delivered) / (float64(t) / 1000))
}

func (b *tcpBBR) ltIntervalDone(bw float64) {
	if b.ltBW > 0 {
		diff := math.Abs(bw - b.ltBW)
		if diff <= bbrLTBWRatio*b.ltBW || diff*float64(b.payload)*bbrPacingMargin <= bbrLTBWDiff {
			b.ltBW = (bw + b.ltBW) / 2
			b.ltUseBW = true
			b.pacingGain = 1
			b.ltRounds = 0
			return
		}
	}
	b.ltBW = bw
	b.resetLTInterval()
}

func (b *tcpBBR) resetLTInterval() {
	b.ltLastStamp = b.deliverAt.Milliseconds()
	b.ltLastDelivered = b.delivered
	b.ltLastLost = b.lost
	b.ltRounds = 0
}

func (b *tcpBBR) resetLTBW() {
	b.ltBW = 0
	b.ltUseBW = false
	b.ltSampling = false
	b.resetLTInterval()
}

// updateAckAggregation keeps the most segments delivered beyond what the
// estimate explains since the ACK rate last fell below it, the window
// grows by it (bbr_update_ack_aggregation).
func (b *tcpBBR) updateAckAggregation() {
	rs := &b.rs
	if rs.ackedSacked <= 0 || rs.delivered < 0 || rs.interval <= 0 {
		return
	}
	if b.roundStart {
		b.extraAckedRounds = min(0x1f, b.extraAckedRounds+1)
		if b.extraAckedRounds >= bbrExtraAckedWin {
			b.extraAckedRounds = 0
			b.extraAckedIdx ^= 1
			b.extraAcked[b.extraAckedIdx] = 0
		}
	}
	expected := uint64(b.bwEstimate() * (b.deliverAt - b.ackEpochStamp).Seconds())
	if b.ackEpochAcked <= expected || b.ackEpochAcked+uint64(rs.ackedSacked) >= bbrAckEpochReset {
		b.ackEpochAcked = 0
		b.ackEpochStamp = b.deliverAt
		expected = 0
	}
	b.ackEpochAcked = min(0xfffff, b.ackEpochAcked+uint64(rs.ackedSacked))
	extra := int(min(b.ackEpochAcked-expected, uint64(b.cwnd)))
	b.extraAcked[b.extraAckedIdx] = max(b.extraAcked[b.extraAckedIdx], extra)
}

// aggregationCwnd is what ACK aggregation adds to the window once
// STARTUP is over: at most 100 ms of the estimate.
func (b *tcpBBR) aggregationCwnd() int {
	if !b.fullBWReached {
		return 0
	}
	most := int(b.bwEstimate() * bbrExtraAckedMax.Seconds())
	return min(max(b.extraAcked[0], b.extraAcked[1]), most)
}

// updateCyclePhase moves on through the PROBE_BW gain cycle: a phase lasts
// a round-trip time, probing longer until the flight is up to its gain
// (or a loss), draining shorter once it is down to the estimate.
func (b *tcpBBR) updateCyclePhase(toEDT time.Duration) {
	if b.mode != bbrProbeBW {
		return
	}
	full := b.minRTT != bbrNoRTT && b.deliverAt-b.cycleStamp > b.minRTT
	next := full
	switch {
	case b.pacingGain > 1:
		next = full && (b.rs.losses > 0 ||
			b.inNetAtEDT(b.rs.priorInFlight, toEDT) >= b.inflight(b.bw.get(), b.pacingGain))
	case b.pacingGain < 1:
		next = full || b.inNetAtEDT(b.rs.priorInFlight, toEDT) <= b.inflight(b.bw.get(), 1)
	}
	if next {
		b.advanceCycle()
	}
}

func (b *tcpBBR) advanceCycle() {
	b.cycleIdx = (b.cycleIdx + 1) % bbrCycleLen
	b.cycleStamp = b.deliverAt
}

// resetProbeBW enters PROBE_BW at a random phase but the draining one.
func (b *tcpBBR) resetProbeBW() {
	b.mode = bbrProbeBW
	b.cycleIdx = bbrCycleLen - 1 - b.rng.IntN(bbrCycleRand)
	b.advanceCycle()
}

// checkFullBWReached ends STARTUP's growth after three rounds in which the
// estimate grew less than 25 %.
func (b *tcpBBR) checkFullBWReached() {
	if b.fullBWReached || !b.roundStart || b.rs.appLimited {
		return
	}
	if bw := b.bw.get(); bw >= b.fullBW*bbrFullBWThresh {
		b.fullBW, b.fullBWCount = bw, 0
		return
	}
	b.fullBWCount++
	b.fullBWReached = b.fullBWCount >= bbrFullBWCount
}

// checkDrain enters DRAIN once STARTUP is over, and PROBE_BW once the
// flight is down to the estimated bandwidth-delay product.
func (b *tcpBBR) checkDrain(inFlight int, toEDT time.Duration) {
	if b.mode == bbrStartup && b.fullBWReached {
		b.mode = bbrDrain
		b.ssthresh = float64(b.inflight(b.bw.get(), 1))
	}
	if b.mode == bbrDrain && b.inNetAtEDT(inFlight, toEDT) <= b.inflight(b.bw.get(), 1) {
		b.resetProbeBW()
	}
}

// updateMinRTT keeps the least round trip of the last 10 s; once it is 10
// s old, PROBE_RTT holds the window at four segments for 200 ms and a
// round to measure it afresh.
func (b *tcpBBR) updateMinRTT(now time.Duration, inFlight int) {
	expired := b.minRTT != bbrNoRTT && now > b.minRTTStamp+bbrMinRTTWindow
	if rtt := b.rs.rtt; rtt >= 0 && (rtt < b.minRTT || expired) {
		b.minRTT, b.minRTTStamp = rtt, now
	}
	if expired && b.mode != bbrProbeRTT {
		b.mode = bbrProbeRTT
		b.saveCwnd()
		b.probeRTTDone = 0
		b.probeRTTs++
	}
	if b.mode != bbrProbeRTT {
		return
	}
	// Samples of this mode's low rate are app-limited.
	b.appLimited = max(b.delivered+uint64(inFlight), 1)
	switch {
	case b.probeRTTDone == 0 && inFlight <= bbrMinCwnd:
		b.probeRTTDone = now + bbrProbeRTTTime
		b.probeRTTRoundDone = false
		b.nextRoundDelivered = b.delivered
	case b.probeRTTDone != 0:
		if b.roundStart {
			b.probeRTTRoundDone = true
		}
		if b.probeRTTRoundDone && now > b.probeRTTDone {
			b.minRTTStamp = now
			b.cwnd = max(b.cwnd, b.priorCwnd)
			if b.fullBWReached {
				b.resetProbeBW()
			} else {
				b.mode = bbrStartup
			}
		}
	}
}

func (b *tcpBBR) updateGains() {
	switch b.mode {
	case bbrStartup:
		b.pacingGain, b.cwndGain = bbrHighGain, bbrHighGain
	case bbrDrain:
		b.pacingGain, b.cwndGain = bbrDrainGain, bbrHighGain
	case bbrProbeBW:
		b.pacingGain, b.cwndGain = bbrPacingGains[b.cycleIdx], bbrCwndGain
		if b.ltUseBW {
			b.pacingGain = 1
		}
	case bbrProbeRTT:
		b.pacingGain, b.cwndGain = 1, 1
	}
}

// saveCwnd keeps the window to come back to after a recovery or
// PROBE_RTT: the current one, unless one of those cut it.
func (b *tcpBBR) saveCwnd() {
	if b.prevState == tcpOpen && b.mode != bbrProbeRTT {
		b.priorCwnd = b.cwnd
	} else {
		b.priorCwnd = max(b.priorCwnd, b.cwnd)
	}
}

// setCwnd sets the window for an ACK that delivered acked segments: packet
// conservation through the first round of a recovery, then towards the
// target, at most by what was delivered (bbr_set_cwnd).
func (b *tcpBBR) setCwnd(acked int, bw, gain float64, inFlight, state int) {
	cwnd := b.cwnd
	if acked > 0 {
		var conserving bool
		cwnd, conserving = b.recoverOrRestore(acked, inFlight, state)
		if !conserving {
			target := b.budget(b.bdp(bw, gain) + b.aggregationCwnd())
			switch {
			case b.fullBWReached:
				cwnd = min(cwnd+acked, target)
			case cwnd < target || b.delivered < uint64(b.initCwnd):
				cwnd += acked
			}
			cwnd = max(cwnd, bbrMinCwnd)
		}
	}
	b.cwnd = min(cwnd, b.maxCwnd)
	if b.mode == bbrProbeRTT {
		b.cwnd = min(b.cwnd, bbrMinCwnd)
	}
}

// recoverOrRestore returns the window for a recovery: less what was newly
// marked lost; the flight and what was delivered on entering a fast
// recovery, and no less than that through its first round; restored on
// leaving one.
func (b *tcpBBR) recoverOrRestore(acked, inFlight, state int) (cwnd int, conserving bool) {
	cwnd = b.cwnd
	if b.rs.losses > 0 {
		cwnd = max(cwnd-b.rs.losses, 1)
	}
	switch {
	case state == tcpRecovery && b.prevState != tcpRecovery:
		b.conservation = true
		b.nextRoundDelivered = b.delivered // a round starts now
		cwnd = inFlight + acked
	case b.prevState != tcpOpen && state == tcpOpen:
		cwnd = max(cwnd, b.priorCwnd)
		b.conservation = false
	}
	b.prevState = state
	if b.conservation {
		return max(cwnd, inFlight+acked), true
	}
	return cwnd, false
}

// onRecovery notes that a fast recovery starts (Linux's ssthresh hook).
func (b *tcpBBR) onRecovery() { b.saveCwnd() }

// onTimeout takes in a retransmission timeout, after the sender marked
// what was outstanding lost; open says it came with no recovery under
// way, inFlight and lost are the sender's after the marking.
func (b *tcpBBR) onTimeout(open bool, inFlight int, lost uint64) {
	if open {
		b.saveCwnd()
	}
	b.lost = lost
	b.cwnd = min(inFlight+1, b.maxCwnd)
	b.prevState = tcpLoss
	b.fullBW = 0
	b.roundStart = true // as the end of a round
	b.ltBWSampling(1, false)
}
