// Package deadline provides a settable point in time whose channel closes
// when it passes, re-armable while a caller waits on it, as net/pipe.go
// does for its deadlines.
package deadline

import (
	"sync"
	"time"
)

// Deadline is safe for concurrent use. Use [New]; the zero value is not
// usable.
type Deadline struct {
	mu      sync.Mutex
	timer   *time.Timer   // guarded by mu
	cancel  chan struct{} // guarded by mu; closed when the deadline passes
	stopped bool          // guarded by mu; Stop was called
	at      time.Time     // guarded by mu; the deadline set, zero if none
}

// New returns a deadline that is not set.
func New() *Deadline { return &Deadline{cancel: make(chan struct{})} }

// Set arms the deadline for t; the zero t disarms it. A t in the past
// closes the channel at once.
func (d *Deadline) Set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.at = t
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the callback is closing it
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// Stop disarms the deadline for good, releasing its timer: a closed
// connection's deadline, far off, would otherwise keep the timer, and what
// it refers to, until then. Later Sets do nothing; Wait's channel stays as
// it was.
func (d *Deadline) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// Wait returns a channel closed once the deadline has passed.
func (d *Deadline) Wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

// When returns the deadline set, or the zero time if none is.
func (d *Deadline) When() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.at
}

// Passed reports whether the deadline has passed.
func (d *Deadline) Passed() bool { return isClosed(d.Wait()) }

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
