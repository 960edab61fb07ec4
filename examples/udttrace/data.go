package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/udt-go/udt/trace"
)

// reasons are the reasons packets are declared lost, as trace files name
// them.
var reasons = [...]string{"nak", "timeout", "stall", "gap"}

// bin is what one trace saw in one time bin.
type bin struct {
	sent, retrans, taken int64 // payload bytes: sent (retransmissions included), resent, taken by the receiver
	retransPkts          int64
	lost                 [len(reasons)]int64 // packets declared lost, by reason
}

// metric is a metrics event, at x seconds on the common axis.
type metric struct {
	x                            float64
	rtt, rttVar, period          time.Duration
	window, flowWindow, inFlight int
	recvRate, bandwidth          int
}

// end is one trace file, its events binned on the time axis all files
// share.
type end struct {
	path   string
	h      trace.Header
	label  string        // in legends: the role, with the socket ID if two files share it
	offset time.Duration // its start after the earliest file's
	binW   time.Duration

	bins     []bin
	metrics  []metric
	timeouts []point // x, and the packets unacknowledged
	mss      int     // the smallest in the handshakes; 0 if none seen
	last     time.Duration

	sent, retrans, recv, discarded, lost, expiries int64
	closedBy, closeErr                             string

	bad      int   // malformed lines skipped
	badErr   error // the first
	overBins bool  // events past maxBins bins went to spare
	spare    bin
}

// maxBins bounds the bins of one trace.
const maxBins = 200_000

// openEnds reads the header of each file and puts the files on one time
// axis from the earliest start.
func openEnds(paths []string, binW time.Duration) ([]*end, []*trace.Reader, []io.Closer, error) {
	var ends []*end
	var readers []*trace.Reader
	var files []io.Closer
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, nil, files, err
		}
		files = append(files, f)
		r, err := trace.NewReader(f)
		if err != nil {
			return nil, nil, files, fmt.Errorf("%s: %w", p, err)
		}
		ends = append(ends, &end{path: p, h: r.Header(), binW: binW})
		readers = append(readers, r)
	}
	first := ends[0].h.Start
	for _, e := range ends {
		if e.h.Start.Before(first) {
			first = e.h.Start
		}
	}
	roles := map[string]int{}
	for _, e := range ends {
		e.offset = e.h.Start.Sub(first)
		roles[e.h.Role.String()]++
	}
	for _, e := range ends {
		e.label = e.h.Role.String()
		if roles[e.label] > 1 {
			e.label += " " + strconv.FormatUint(uint64(e.h.SocketID), 10)
		}
	}
	return ends, readers, files, nil
}

// readEvents adds every event of r; a malformed line is counted and
// skipped.
func (d *end) readEvents(r *trace.Reader) error {
	for {
		e, err := r.Next()
		var le *trace.LineError
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &le):
			if d.bad++; d.badErr == nil {
				d.badErr = err
			}
		case err != nil:
			return fmt.Errorf("%s: %w", d.path, err)
		default:
			d.add(&e)
		}
	}
}

// add adds event e.
func (d *end) add(e *trace.Event) {
	at := d.offset + e.T
	d.last = max(d.last, at)
	switch e.Kind {
	case trace.PacketSent:
		b := d.bin(at)
		b.sent += int64(e.Size)
		d.sent++
		if e.Retransmit {
			b.retrans += int64(e.Size)
			b.retransPkts++
			d.retrans++
		}
	case trace.PacketReceived:
		d.recv++
		if e.Discarded != "" {
			d.discarded++
		} else {
			d.bin(at).taken += int64(e.Size)
		}
	case trace.PacketsLost:
		d.addLoss(at, e)
	case trace.Metrics:
		d.metrics = append(d.metrics, metric{x: at.Seconds(), rtt: e.RTT, rttVar: e.RTTVar, period: e.Period,
			window: e.Window, flowWindow: e.FlowWindow, inFlight: e.InFlight, recvRate: e.RecvRate,
			bandwidth: e.Bandwidth})
	case trace.Timeout:
		d.expiries++
		d.timeouts = append(d.timeouts, point{x: at.Seconds(), y: float64(e.Unacked)})
	case trace.HandshakeSent, trace.HandshakeReceived:
		if e.MSS > 0 && (d.mss == 0 || e.MSS < d.mss) {
			d.mss = e.MSS
		}
	case trace.Closed:
		d.closedBy, d.closeErr = e.By, e.Error
	default:
	}
}

// addLoss counts the packets of a loss event in their bin, by reason.
func (d *end) addLoss(at time.Duration, e *trace.Event) {
	n := int64((e.Last-e.First)&(1<<31-1)) + 1 // across the 31-bit wrap
	d.lost += n
	for i, r := range reasons {
		if r == e.Reason {
			d.bin(at).lost[i] += n
		}
	}
}

// bin returns the bin of time at, growing the bins to it; past maxBins,
// a spare.
func (d *end) bin(at time.Duration) *bin {
	i := max(int(at/d.binW), 0)
	if i >= maxBins {
		d.overBins = true
		return &d.spare
	}
	for len(d.bins) <= i {
		d.bins = append(d.bins, bin{})
	}
	return &d.bins[i]
}

// payload is the payload of a full data packet, bytes: what a rate in
// packets a second is multiplied by.
func (d *end) payload() float64 {
	mss := d.mss
	if mss == 0 {
		mss = 1500
	}
	overhead := 44 // IPv4, UDP and UDT headers
	if strings.HasPrefix(d.h.Local, "[") {
		overhead = 64
	}
	return float64(max(mss-overhead, 1))
}

// sends reports whether the end sent data: its charts of the sender's
// state say something.
func (d *end) sends() bool {
	if d.sent > 0 {
		return true
	}
	for _, m := range d.metrics {
		if m.inFlight > 0 {
			return true
		}
	}
	return false
}

// name is the file's base name.
func (d *end) name() string { return filepath.Base(d.path) }
