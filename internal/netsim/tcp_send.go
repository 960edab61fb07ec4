package netsim

import (
	"errors"
	"math"
	"net"
	"sync"
	"time"
)

// tcpDupThresh is the number of segments SACKed (or duplicate ACKs) that
// start a loss recovery.
const tcpDupThresh = 3

// Segment flags in the scoreboard.
const (
	segOut    = 1 << iota // its latest transmission counts as in flight
	segSACKed             // the receiver has it (above the cumulative ACK)
	segLost               // marked lost, waiting to be sent again
	segRetx               // sent more than once: no RTT sample (Karn)
)

// tcpSeg is the sender's record of one outstanding segment.
type tcpSeg struct {
	sent  time.Duration // latest transmission, since the flow started
	xmit  uint64        // number of its latest transmission
	flags uint8
	rate  tcpSegRate // bbr: the delivery progress at its latest transmission
}

// xmitRec is one transmission, in the order they were made.
type xmitRec struct{ seq, xmit uint64 }

// Loss recovery states of the sender.
const (
	tcpOpen     = iota // no recovery
	tcpRecovery        // fast recovery, until the recovery point is acknowledged
	tcpLoss            // after a timeout, until the recovery point is acknowledged
)

// tcpSender is the sending side of a flow. Everything but the published
// snapshot is owned by its goroutine (run).
type tcpSender struct {
	conn  net.PacketConn
	to    net.Addr
	id    uint32
	cfg   TCPConfig
	timer tcpTimer
	start time.Time // time 0 of tcpSeg.sent
	buf   []byte    // one data segment being built

	una, nxt uint64   // first unacknowledged and next new segment
	segs     []tcpSeg // ring: segment s at s&(len-1), for [una, nxt)
	pipe     int      // transmissions in flight (RFC 6675 pipe)
	sacked   int      // segments SACKed in [una, nxt)
	lost     int      // segments marked lost and not yet sent again
	lostHint uint64   // no segment below it is marked lost

	xq       []xmitRec // ring of transmissions in order, from xqHead, xqLen long
	xqHead   int
	xqLen    int
	xmits    uint64 // transmissions made
	rackXmit uint64 // latest transmission known delivered, plus one

	state      int
	recoverSeq uint64 // recovery ends when una reaches it
	dupACKs    int    // NewReno: duplicate ACKs in a row
	partial    bool   // NewReno: a partial ACK came in this recovery
	retxNow    bool   // NewReno: send the lowest lost segment regardless of cwnd
	// PRR (RFC 6937), in fast recovery with SACK.
	prrDelivered, prrOut int
	priorCwnd            float64

	cc     tcpCC
	bbr    *tcpBBR // replaces cc in a bbr flow; nil in others
	pacer  tcpPacer
	paceAt time.Time // when pacing lets what it holds back go; zero if it holds nothing
	marked uint64    // segments ever marked lost

	rtt   tcpRTT
	rtoAt time.Time // when the timeout fires; zero when nothing is outstanding

	st TCPStats // counters, owned by run

	pubMu sync.Mutex
	pub   TCPStats // guarded by pubMu; st as of the last event handled
}

func newTCPSender(conn net.PacketConn, to net.Addr, id uint32, cfg TCPConfig) *tcpSender {
	s := &tcpSender{
		conn:  conn,
		to:    to,
		id:    id,
		cfg:   cfg,
		timer: tcpTimer{conn: conn},
		buf:   make([]byte, cfg.Segment),
		segs:  make([]tcpSeg, 64),
		xq:    make([]xmitRec, 64),
		rtt:   tcpRTT{rto: time.Second, minRTO: cfg.MinRTO}, // RFC 6298 before the first sample
	}
	s.cc = newTCPCC(cfg)
	if cfg.CC == "bbr" {
		s.bbr = newTCPBBR(cfg)
	}
	s.pub = s.stats()
	return s
}

// run sends and reads ACKs until the connection is closed or fails.
func (s *tcpSender) run() error {
	now := time.Now()
	s.start = now
	buf := make([]byte, 2048)
	if err := s.send(now); err != nil {
		return err
	}
	s.publish()
	for {
		if err := s.timer.arm(earliest(s.rtoAt, s.paceAt)); err != nil {
			return err
		}
		n, _, timeout, err := s.timer.read(buf)
		if err != nil {
			return err
		}
		now := time.Now()
		switch {
		case timeout:
			switch {
			case !s.rtoAt.IsZero() && !now.Before(s.rtoAt):
				s.onRTO(now)
			case !s.paceAt.IsZero() && !now.Before(s.paceAt):
				// Pacing lets the next send quantum go.
			default:
				continue
			}
		default:
			a, ok := parseACK(buf[:n], s.id)
			if !ok || a.ack < s.una || a.ack > s.nxt {
				continue
			}
			s.onACK(now, &a)
		}
		if err := s.send(now); err != nil {
			return err
		}
		s.publish()
	}
}

// seg returns the record of outstanding segment q.
func (s *tcpSender) seg(q uint64) *tcpSeg { return &s.segs[q&uint64(len(s.segs)-1)] }

// grow doubles the scoreboard ring, keeping [una, nxt) in place by
// sequence number.
func (s *tcpSender) grow() {
	segs := make([]tcpSeg, 2*len(s.segs))
	for q := s.una; q < s.nxt; q++ {
		segs[q&uint64(len(segs)-1)] = *s.seg(q)
	}
	s.segs = segs
}

// pushXmit records transmission x of segment q.
func (s *tcpSender) pushXmit(q, x uint64) {
	if !s.cfg.NoSACK {
		if s.xqLen == len(s.xq) {
			xq := make([]xmitRec, 2*len(s.xq))
			for i := range s.xqLen {
				xq[i] = s.xq[(s.xqHead+i)%len(s.xq)]
			}
			s.xq, s.xqHead = xq, 0
		}
		s.xq[(s.xqHead+s.xqLen)%len(s.xq)] = xmitRec{q, x}
		s.xqLen++
	}
}

// earliest returns the earlier of two wake-ups, the zero time being none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// cwndSegs is the congestion window in whole segments.
func (s *tcpSender) cwndSegs() int {
	if s.bbr != nil {
		return s.bbr.cwnd
	}
	return int(s.cc.cwnd())
}

// send sends what the window and, in a bbr flow, the pacing rate allow:
// lost segments first, then new ones.
func (s *tcpSender) send(now time.Time) error {
	s.paceAt = time.Time{}
	if s.retxNow && s.lost > 0 {
		s.retxNow = false
		if err := s.retransmit(now); err != nil {
			return err
		}
	}
	for s.pipe < s.cwndSegs() {
		var err error
		switch {
		case !s.more():
			return nil
		case s.bbr != nil:
			if s.paced(now) {
				return nil
			}
			err = s.sendQuantum(now)
		case s.lost > 0:
			err = s.retransmit(now)
		default:
			err = s.sendNew(now)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// paced reports whether pacing holds the next send quantum back at now,
// and if so when it lets it go.
func (s *tcpSender) paced(now time.Time) bool {
	at := s.pacer.next
	if at <= now.Sub(s.start) {
		return false
	}
	s.paceAt = s.start.Add(at)
	return true
}

// sendQuantum sends at once a send quantum of segments (BBR's), or what
// of it the window allows, lost segments first, and paces the next
// quantum after it.
func (s *tcpSender) sendQuantum(now time.Time) error {
	n := 0
	for most := s.bbr.quantum(); n < most && s.pipe < s.cwndSegs() && s.more(); n++ {
		var err error
		if s.lost > 0 {
			err = s.retransmit(now)
		} else {
			err = s.sendNew(now)
		}
		if err != nil {
			return err
		}
	}
	s.pacer.onSend(now.Sub(s.start), n, s.bbr.pacingRate)
	return nil
}

// more reports whether there is a segment to send: one marked lost, or a
// new one within the receive window.
func (s *tcpSender) more() bool { return s.lost > 0 || s.nxt-s.una < uint64(s.cfg.MaxWindow) }

// tcpPacer spaces a flow's transmissions at its pacing rate as Linux's
// TCP pacing does (tcp_pacing_check, tcp_update_skb_after_send): what is
// sent at once, a send quantum that TSO or GSO would split into segments
// on the wire, delays the next send by its length at the rate, less up to
// half of it when it left late. Linux does not pace the first ten
// segments of a flow.
type tcpPacer struct {
	next time.Duration // when the next send may start, since the flow started
	sent int           // segments sent
}

const tcpUnpaced = 10

// onSend paces the send after n segments left at now, at rate segments
// per second.
func (p *tcpPacer) onSend(now time.Duration, n int, rate float64) {
	p.sent += n
	if p.sent < tcpUnpaced || n == 0 || rate <= 0 {
		return
	}
	prior := p.next
	p.next = max(p.next, now)
	length := time.Duration(float64(n) / rate * float64(time.Second))
	p.next += length - min(length/2, p.next-prior)
}

// sendNew sends the next new segment.
func (s *tcpSender) sendNew(now time.Time) error {
	if s.nxt-s.una >= uint64(len(s.segs)) {
		s.grow()
	}
	q := s.nxt
	s.nxt++
	*s.seg(q) = tcpSeg{}
	return s.transmit(now, q)
}

// retransmit sends the lowest segment marked lost again.
func (s *tcpSender) retransmit(now time.Time) error {
	q := max(s.lostHint, s.una)
	for s.seg(q).flags&segLost == 0 {
		q++
	}
	s.lostHint = q + 1
	if q == s.una && !s.impatient() {
		// The timeout runs from the latest transmission of the first
		// segment outstanding, as Linux's does.
		s.rtoAt = now.Add(s.rtt.rto)
	}
	g := s.seg(q)
	g.flags = g.flags&^segLost | segRetx
	s.lost--
	s.st.Retransmitted++
	return s.transmit(now, q)
}

// transmit sends segment q and counts it in flight.
func (s *tcpSender) transmit(now time.Time, q uint64) error {
	g := s.seg(q)
	g.flags |= segOut
	g.sent = now.Sub(s.start)
	g.xmit = s.xmits
	if s.bbr != nil {
		idle := q == s.una && s.nxt == q+1 && g.flags&segRetx == 0 // nothing else outstanding
		s.bbr.sent(&g.rate, g.sent, g.xmit, idle)
	}
	s.pushXmit(q, s.xmits)
	s.xmits++
	s.pipe++
	s.st.Sent++
	if s.state == tcpRecovery {
		s.prrOut++
	}
	if s.rtoAt.IsZero() {
		s.rtoAt = now.Add(s.rtt.rto)
	}
	b := s.buf
	putTCPHeader(b, tcpKindData, 0, s.id, q)
	clear(b[tcpHeaderLen:s.cfg.Header])
	p := s.cfg.payload()
	streamFill(b[s.cfg.Header:], q*uint64(p))
	sealTCP(b)
	// A failed write is a lost datagram, unless the connection is closed.
	if _, err := s.conn.WriteTo(b, s.to); errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// delivered notes at now that the receiver has segment g, for RACK and an
// RTT sample (the latest sent of those never retransmitted).
func (s *tcpSender) delivered(now time.Duration, g *tcpSeg, sample *time.Duration) {
	if s.bbr != nil {
		s.bbr.deliveredSeg(&g.rate, g.xmit, g.sent)
	}
	if g.flags&segOut != 0 {
		s.pipe--
	}
	if g.flags&segLost != 0 {
		s.lost--
	}
	switch {
	case g.flags&segRetx == 0:
		s.rackXmit = max(s.rackXmit, g.xmit+1)
		*sample = max(*sample, g.sent)
	case now-g.sent >= s.rtt.min:
		s.rackXmit = max(s.rackXmit, g.xmit+1)
	default:
		// Acknowledged sooner than a round trip after it was sent again,
		// it is the first transmission that arrived, late (RFC 8985
		// §6.2): the retransmission says nothing of what was sent
		// before it.
	}
}

// onACK takes in ACK a at now.
func (s *tcpSender) onACK(now time.Time, a *tcpACK) {
	sample := time.Duration(-1)
	since := now.Sub(s.start)
	if s.bbr != nil {
		s.bbr.startACK(s.pipe, s.marked)
	}
	newly, acked := s.cumulativeACK(now, since, a.ack, &sample)
	if !s.cfg.NoSACK {
		newly += s.selectiveACK(since, a, &sample)
	}
	rtt := time.Duration(-1)
	if sample >= 0 {
		rtt = since - sample
		s.rtt.sample(rtt)
	}
	if s.cfg.NoSACK {
		s.onACKNewReno(now, a.ack, acked, rtt)
		return
	}
	s.detectLoss(now)
	if s.state != tcpOpen && s.una >= s.recoverSeq {
		if s.state == tcpRecovery && s.bbr == nil {
			s.cc.setCwnd(s.cc.ssthresh())
		}
		s.state = tcpOpen
	}
	if s.bbr != nil {
		s.bbr.onACK(since, bbrACK{
			newly: newly, rtt: rtt, lost: s.marked, inFlight: s.pipe, state: s.state,
			toEDT: max(s.pacer.next-since, 0), srtt: s.rtt.srtt, minRTT: s.rtt.min,
		})
		return
	}
	switch s.state {
	case tcpRecovery:
		s.prr(newly)
	default:
		s.cc.onACK(now, newly, rtt, s.una, s.nxt, s.rtt.srtt)
	}
}

// cumulativeACK takes a cumulative ACK up to ack: it returns the segments
// newly known delivered by it and how far it moved, and rearms the
// retransmission timer.
func (s *tcpSender) cumulativeACK(now time.Time, since time.Duration, ack uint64, sample *time.Duration) (newly, acked int) {
	if ack <= s.una {
		return 0, 0
	}
	for q := s.una; q < ack; q++ {
		g := s.seg(q)
		if g.flags&segSACKed != 0 {
			s.sacked--
		} else {
			s.delivered(since, g, sample)
			newly++
		}
	}
	acked = int(ack - s.una)
	s.una = ack
	switch {
	case s.una == s.nxt:
		s.rtoAt = time.Time{}
	case !s.impatient():
		s.rtoAt = now.Add(s.rtt.rto)
	}
	return newly, acked
}

// selectiveACK takes the SACK blocks of a: it returns the segments newly
// known delivered by them.
func (s *tcpSender) selectiveACK(since time.Duration, a *tcpACK, sample *time.Duration) (newly int) {
	for _, b := range a.blocks[:a.n] {
		for q := max(b.start, s.una); q < min(b.end, s.nxt); q++ {
			g := s.seg(q)
			if g.flags&segSACKed == 0 {
				s.delivered(since, g, sample)
				g.flags = g.flags&^(segOut|segLost) | segSACKed
				s.sacked++
				newly++
			}
		}
	}
	return newly
}

// detectLoss marks lost, in the order they were sent, the transmissions
// sent before the latest one known delivered, once three segments are
// SACKed or a recovery is under way, and starts a recovery if it marks
// any.
func (s *tcpSender) detectLoss(now time.Time) {
	mark := s.state != tcpOpen || s.sacked >= tcpDupThresh
	marked := false
	for s.xqLen > 0 {
		r := s.xq[s.xqHead]
		if r.xmit+1 >= s.rackXmit {
			break
		}
		if r.seq >= s.una {
			g := s.seg(r.seq)
			if g.xmit == r.xmit && g.flags&(segOut|segSACKed) == segOut {
				if !mark {
					break
				}
				g.flags = g.flags&^segOut | segLost
				s.pipe--
				s.lost++
				s.marked++
				s.lostHint = min(s.lostHint, r.seq)
				marked = true
			}
		}
		s.xqHead = (s.xqHead + 1) % len(s.xq)
		s.xqLen--
	}
	if marked && s.state == tcpOpen {
		s.enterRecovery(now)
	}
}

// enterRecovery starts a fast recovery: one window reduction for all the
// losses until what is sent now is acknowledged.
func (s *tcpSender) enterRecovery(now time.Time) {
	s.state = tcpRecovery
	s.recoverSeq = s.nxt
	s.st.FastRecoveries++
	if s.bbr != nil {
		s.bbr.onRecovery()
		return
	}
	s.priorCwnd = s.cc.cwnd()
	s.prrDelivered, s.prrOut = 0, 0
	s.cc.onCongestion(s.nxt - s.una)
}

// prr sets the window for one ACK of a fast recovery that newly delivered
// segments: the sending rate falls towards ssthresh in proportion to what
// is delivered, rather than stopping until the pipe drains (RFC 6937,
// with the slow start reduction bound).
func (s *tcpSender) prr(delivered int) {
	s.prrDelivered += delivered
	ssthresh := s.cc.ssthresh()
	var sndcnt int
	if float64(s.pipe) > ssthresh {
		sndcnt = int(math.Ceil(float64(s.prrDelivered)*ssthresh/s.priorCwnd)) - s.prrOut
	} else {
		limit := max(s.prrDelivered-s.prrOut, delivered) + 1
		sndcnt = min(int(ssthresh)-s.pipe, limit)
	}
	s.cc.setCwnd(float64(s.pipe + max(sndcnt, 0)))
}

// onACKNewReno runs the recovery of a flow without SACK (RFC 6582): three
// duplicate ACKs retransmit the first unacknowledged segment and inflate
// the window by one for each further duplicate; each partial ACK
// retransmits the next hole.
func (s *tcpSender) onACKNewReno(now time.Time, ack uint64, acked int, rtt time.Duration) {
	if acked == 0 {
		if s.una == s.nxt {
			return
		}
		s.dupACKs++
		switch {
		case s.state == tcpRecovery:
			s.cc.setCwnd(s.cc.cwnd() + 1)
		case s.dupACKs == tcpDupThresh && s.state == tcpOpen && s.una >= s.recoverSeq:
			s.st.FastRecoveries++
			s.state = tcpRecovery
			s.recoverSeq = s.nxt
			s.partial = false
			s.cc.onCongestion(s.nxt - s.una)
			s.cc.setCwnd(s.cc.ssthresh() + tcpDupThresh)
			s.markLost(s.una)
			s.retxNow = true
		}
		return
	}
	s.dupACKs = 0
	switch {
	case s.state == tcpRecovery && ack < s.recoverSeq:
		// Partial ACK: deflate by what it acknowledged, less one, and
		// send the next hole now.
		s.cc.setCwnd(max(s.cc.cwnd()-float64(acked)+1, 1))
		s.markLost(s.una)
		s.retxNow = true
		if !s.partial {
			s.partial = true
			s.rtoAt = now.Add(s.rtt.rto)
		}
	case s.state == tcpRecovery:
		s.state = tcpOpen
		s.cc.setCwnd(min(s.cc.ssthresh(), float64(s.pipe)+1))
		if s.una < s.nxt {
			s.rtoAt = now.Add(s.rtt.rto) // left running in the recovery
		}
	case s.state == tcpLoss && ack >= s.recoverSeq:
		s.state = tcpOpen
		fallthrough
	default:
		s.cc.onACK(now, acked, rtt, s.una, s.nxt, s.rtt.srtt)
	}
}

// impatient reports whether the timeout is left running through a fast
// recovery without SACK, but for the first partial ACK (RFC 6582 §4.2,
// the Impatient variant): rather than one hole a round trip, a timeout
// then resends the rest of a large loss.
func (s *tcpSender) impatient() bool { return s.cfg.NoSACK && s.state == tcpRecovery }

// markLost marks outstanding segment q lost unless it is already.
func (s *tcpSender) markLost(q uint64) {
	g := s.seg(q)
	if g.flags&segLost != 0 || q >= s.nxt {
		return
	}
	if g.flags&segOut != 0 {
		s.pipe--
	}
	g.flags = g.flags&^segOut | segLost
	s.lost++
	s.marked++
	s.lostHint = min(s.lostHint, q)
}

// onRTO handles a retransmission timeout: every outstanding segment not
// SACKed is lost, the window restarts from one segment in slow start (BBR:
// towards its target), and the timeout doubles.
func (s *tcpSender) onRTO(now time.Time) {
	s.st.Timeouts++
	open := s.state == tcpOpen
	if s.bbr == nil {
		if open {
			s.cc.onCongestion(s.nxt - s.una)
		}
		s.cc.onTimeout()
	}
	s.state = tcpLoss
	s.recoverSeq = s.nxt
	s.dupACKs = 0
	s.retxNow = false
	for q := s.una; q < s.nxt; q++ {
		if s.seg(q).flags&segSACKed == 0 {
			s.markLost(q)
		}
	}
	if s.bbr != nil {
		s.bbr.onTimeout(open, s.pipe, s.marked)
	}
	s.rtt.backoff()
	s.rtoAt = now.Add(s.rtt.rto)
}

// stats returns the counters and state as they are.
func (s *tcpSender) stats() TCPStats {
	st := s.st
	st.Cwnd = s.cc.cwnd()
	st.Ssthresh = s.cc.ssthresh()
	if b := s.bbr; b != nil {
		st.Cwnd, st.Ssthresh = float64(b.cwnd), b.ssthresh
		st.PacingRate, st.Bandwidth = b.pacingRate, b.bwEstimate()
		st.BBRMode, st.ProbeRTTs = b.mode.String(), b.probeRTTs
	}
	st.InFlight = s.pipe
	st.SRTT, st.MinRTT, st.RTO = s.rtt.srtt, s.rtt.min, s.rtt.rto
	return st
}

// publish makes the current state what Stats returns.
func (s *tcpSender) publish() {
	st := s.stats()
	s.pubMu.Lock()
	s.pub = st
	s.pubMu.Unlock()
}

func (s *tcpSender) snapshot() TCPStats {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	return s.pub
}

// tcpRTT estimates the round trip and the retransmission timeout (RFC
// 6298).
type tcpRTT struct {
	srtt, rttvar, min time.Duration // zero until the first sample
	rto               time.Duration // backoff included
	minRTO            time.Duration
}

// sample takes in a round-trip sample, which also ends any backoff. The
// timeout is SRTT + max(4·RTTVAR, MinRTO): Linux's floor, on the variance
// term rather than on the sum, so that a full queue that holds the round
// trip steady does not bring the timeout down to the round trip itself.
func (r *tcpRTT) sample(d time.Duration) {
	d = max(d, 1)
	if r.srtt == 0 {
		r.srtt, r.rttvar, r.min = d, d/2, d
	} else {
		diff := r.srtt - d
		if diff < 0 {
			diff = -diff
		}
		r.rttvar += (diff - r.rttvar) / 4
		r.srtt += (d - r.srtt) / 8
		r.min = min(r.min, d)
	}
	r.rto = min(r.srtt+max(4*r.rttvar, r.minRTO), tcpMaxRTO)
}

// backoff doubles the timeout after it fired.
func (r *tcpRTT) backoff() { r.rto = min(2*r.rto, tcpMaxRTO) }
