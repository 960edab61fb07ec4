package netsim

import (
	"runtime"
	"time"
)

// Go's timers wake a goroutine up to a millisecond late when the process is
// otherwise idle, which would release a link's datagrams in bursts: at
// 100 Mbit/s a millisecond is eight full-size datagrams arriving back to
// back, and the receiver's packet-pair and arrival-rate estimates would
// measure the burst, not the bottleneck. The relay's release goroutines
// therefore wait in two stages: a timer until shortly before the next
// datagram is due, then fineWait, a precise sleep (see clock_linux.go)
// followed by a short spin.

const (
	// coarseMargin is how early a timer must fire to be sure to wake before
	// a datagram is due.
	coarseMargin = 2 * time.Millisecond
	// fineStep bounds one precise sleep, so a datagram that becomes due
	// earlier meanwhile (jitter, reordering) waits at most this long.
	fineStep = 200 * time.Microsecond
	// spinMargin is how long before the due time a precise sleep ends;
	// the rest is spun.
	spinMargin = 60 * time.Microsecond
)

// releaseClock waits for release times on behalf of one goroutine.
type releaseClock struct {
	timer *time.Timer
}

func newReleaseClock() *releaseClock {
	c := &releaseClock{timer: time.NewTimer(time.Hour)}
	c.timer.Stop()
	preciseThread()
	return c
}

// stop releases the clock's timer and thread.
func (c *releaseClock) stop() {
	c.timer.Stop()
	runtime.UnlockOSThread()
}

// wait blocks until due (if due is not zero), wake or done fires. It
// returns false if done fired.
func (c *releaseClock) wait(due time.Time, wake, done <-chan struct{}) bool {
	if due.IsZero() {
		select {
		case <-wake:
			return true
		case <-done:
			return false
		}
	}
	d := time.Until(due)
	if d > coarseMargin {
		c.timer.Reset(d - coarseMargin)
		select {
		case <-wake:
			c.timer.Stop()
		case <-c.timer.C:
		case <-done:
			c.timer.Stop()
			return false
		}
		return true
	}
	// Close to the due time: sleep precisely in steps, looking for a
	// wake-up between them, then spin the last microseconds.
	for d > spinMargin {
		preciseSleep(min(d-spinMargin, fineStep))
		select {
		case <-wake:
			return true
		case <-done:
			return false
		default:
		}
		d = time.Until(due)
	}
	for time.Now().Before(due) {
	}
	return true
}

// outlet is one direction of a front-end that carries datagrams between
// real endpoints (a relay, a TUN path): a link, and the goroutine that
// writes out what falls due.
type outlet struct {
	link  *Link
	wake  chan struct{} // capacity 1; a new earliest datagram is waiting
	write func(pk *packet) error
}

// run writes out datagrams as they fall due until done is closed.
func (d *outlet) run(done <-chan struct{}) {
	clk := newReleaseClock()
	defer clk.stop()
	for {
		d.deliver(time.Now())
		next, _ := d.link.Next()
		if !clk.wait(next, d.wake, done) {
			return
		}
	}
}

// poke wakes the goroutine: a new earliest datagram is waiting.
func (d *outlet) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// deliver writes every datagram due by now; a failed write counts as
// overflow.
func (d *outlet) deliver(now time.Time) {
	for {
		pk := d.link.pop(now)
		if pk == nil {
			return
		}
		if err := d.write(pk); err != nil {
			d.link.stats.overflow.Add(1)
		} else {
			d.link.delivered(len(pk.b))
		}
		putPacket(pk)
	}
}
