package udt

import (
	"context"
	"log/slog"
	"net/netip"
	"time"
)

// Connection events for Config.Logger (its documentation lists them).

// logf queues one record for c's logger if it is enabled for level: the
// handler runs later on the log queue's goroutine (see logQueue), never
// under c's lock or on the socket's workers.
func (c *Conn) logf(level slog.Level, msg string, attrs ...slog.Attr) {
	l := c.cfg.Logger
	if l == nil || !l.Enabled(context.Background(), level) {
		return
	}
	base := []slog.Attr{
		slog.Uint64("id", uint64(c.id)),
		slog.String("local", c.laddr.String()),
		slog.String("remote", c.peer.String()),
	}
	c.logs.add(l.Handler(), base, newLogRecord(level, msg, base, attrs))
}

// logging reports whether records at level would be kept, so callers can
// skip building their attributes.
func (c *Conn) logging(level slog.Level) bool {
	l := c.cfg.Logger
	return l != nil && l.Enabled(context.Background(), level)
}

// logConnectedLocked records an established connection.
func (c *Conn) logConnectedLocked() {
	if !c.logging(slog.LevelInfo) {
		return
	}
	role := "accepted"
	switch {
	case c.rendezvous:
		role = "rendezvous"
	case c.isDial:
		role = "dialed"
	}
	c.logf(slog.LevelInfo, "udt: connected", slog.String("role", role),
		slog.Uint64("peer_id", uint64(c.peerID)), slog.Int("mss", c.mss),
		slog.String("type", c.cfg.Type.String()), slog.Int("flow_window", c.snd.flowWindow))
}

// logClosedLocked records the end of an established connection: by whom
// ("local", "peer") or the error that ended it.
func (c *Conn) logClosedLocked(level slog.Level, by string, err error) {
	if !c.logging(level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("by", by),
		slog.Duration("duration", time.Since(c.stats.start).Round(time.Millisecond)),
		slog.Uint64("pkt_sent", c.stats.pktSent),
		slog.Uint64("pkt_retrans", c.stats.pktRetrans),
		slog.Uint64("pkt_recv", c.stats.pktRecv),
		slog.Uint64("pkt_rcv_loss", c.stats.pktRcvLoss),
	}
	msg := "udt: closed"
	if err != nil {
		msg = "udt: connection lost"
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	c.logf(level, msg, attrs...)
}

// logRetransmissionLocked records a retransmission timeout (n unacknowledged
// packets queued again) or a loss report of n packets, at most once a
// second.
func (c *Conn) logRetransmissionLocked(now time.Time, cause string, n int) {
	if !c.logging(slog.LevelInfo) || now.Sub(c.live.lastBurstLog) < time.Second {
		return
	}
	c.live.lastBurstLog = now
	c.logf(slog.LevelInfo, "udt: retransmission burst", slog.String("cause", cause),
		slog.Int("packets", n), slog.Duration("rtt", c.cc.rtt.RTT), slog.Duration("period", c.cc.period))
}

// logRefused records a handshake request the listener refused.
func (l *Listener) logRefused(from netip.AddrPort, reason string) {
	lg := l.cfg.Logger
	if lg == nil || !lg.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	base := []slog.Attr{slog.String("listener", l.addr.String())}
	l.logs.add(lg.Handler(), base, newLogRecord(slog.LevelInfo, "udt: handshake refused", base,
		[]slog.Attr{slog.String("remote", from.String()), slog.String("reason", reason)}))
}

// noteBadCookie notes a conclusion dropped for a bad or expired cookie
// (badCookieDrops counts it). A flood of forged conclusions would log one
// record each; one record a second at most says how many came since the
// last, and from where the last came. The record is written by a timer,
// off the receive worker. Receive worker.
func (l *Listener) noteBadCookie(from netip.AddrPort) {
	lg := l.cfg.Logger
	if lg == nil || !lg.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.badMu.Lock()
	defer l.badMu.Unlock()
	l.badFrom = from
	if l.badTimer == nil {
		l.badTimer = time.AfterFunc(badCookieReport, l.reportBadCookies)
	}
}

// badCookieReport is how often, at most, dropped conclusions are logged.
const badCookieReport = time.Second

func (l *Listener) reportBadCookies() {
	l.badMu.Lock()
	total, from := l.badCookieDrops.Load(), l.badFrom
	n := total - l.badReported
	l.badReported, l.badTimer = total, nil
	l.badMu.Unlock()
	l.cfg.Logger.LogAttrs(context.Background(), slog.LevelDebug, "udt: handshakes dropped",
		slog.String("listener", l.addr.String()), slog.String("reason", "bad or expired cookie"),
		slog.Uint64("count", n), slog.Duration("within", badCookieReport), slog.String("last_remote", from.String()))
}
