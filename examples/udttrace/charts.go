package main

import (
	"slices"
	"time"
)

// dashes tell the traces apart in a chart: the first solid, the next
// dashed, and so on.
var dashes = []string{"", "7 4", "2 3", "9 3 2 3"}

func dashOf(i int) string { return dashes[i%len(dashes)] }

// Colours, one for each quantity.
const (
	blue   = "#1f77b4"
	orange = "#ff7f0e"
	green  = "#2ca02c"
	red    = "#d62728"
	purple = "#9467bd"
	brown  = "#8c564b"
	pink   = "#e377c2"
	teal   = "#17becf"
)

// charts builds the page's charts from the ends, over xMax seconds.
func charts(ends []*end, binW time.Duration, xMax float64) []chart {
	cs := []chart{
		throughputChart(ends, binW),
		pacingChart(ends),
		windowChart(ends),
		rttChart(ends),
		lossChart(ends, binW),
	}
	for i := range cs {
		cs[i].xMax = xMax
	}
	return cs
}

// perBin makes a series of a quantity of each bin, at the bins' middles,
// scaled by k; none if the quantity is zero throughout.
func perBin(d *end, k float64, f func(*bin) int64) []point {
	var pts []point
	nonzero := false
	half := d.binW.Seconds() / 2
	for i := range d.bins {
		v := f(&d.bins[i])
		nonzero = nonzero || v != 0
		pts = append(pts, point{x: float64(i)*d.binW.Seconds() + half, y: float64(v) * k})
	}
	if !nonzero {
		return nil
	}
	return pts
}

// add appends series s to c if it has points.
func (c *chart) add(s series) {
	if len(s.pts) > 0 {
		c.series = append(c.series, s)
	}
}

func throughputChart(ends []*end, binW time.Duration) chart {
	c := chart{id: "chart-throughput", title: "Throughput: bytes sent, retransmitted and taken by the receiver, per " + binW.String(),
		yLabel: "Mbit/s", note: "no data packets in these traces (written with -trace-packets=false?)"}
	mbps := 8 / binW.Seconds() / 1e6
	for i, d := range ends {
		c.add(series{class: "series-sent", label: d.label + " sent", color: blue, dash: dashOf(i),
			pts: perBin(d, mbps, func(b *bin) int64 { return b.sent })})
		c.add(series{class: "series-retrans", label: d.label + " retransmitted", color: red, dash: dashOf(i),
			pts: perBin(d, mbps, func(b *bin) int64 { return b.retrans })})
		c.add(series{class: "series-goodput", label: d.label + " goodput", color: green, dash: dashOf(i),
			pts: perBin(d, mbps, func(b *bin) int64 { return b.taken })})
	}
	return c
}

// metricSeries makes a step series of a quantity of each metrics event
// of d; none if it is zero throughout.
func metricSeries(d *end, f func(*metric) float64) []point {
	var pts []point
	nonzero := false
	for i := range d.metrics {
		v := f(&d.metrics[i])
		nonzero = nonzero || v != 0
		pts = append(pts, point{x: d.metrics[i].x, y: v})
	}
	if !nonzero {
		return nil
	}
	return pts
}

func pacingChart(ends []*end) chart {
	c := chart{id: "chart-pacing", title: "Sender: the rate its packet period allows, and the receiver's estimates",
		yLabel: "Mbit/s", note: "no sender's metrics in these traces"}
	for i, d := range ends {
		if !d.sends() {
			continue
		}
		bits := d.payload() * 8 / 1e6 // Mbit a packet
		c.add(series{class: "series-period-rate", label: d.label + " period's rate", color: purple, dash: dashOf(i), style: steps,
			pts: metricSeries(d, func(m *metric) float64 {
				if m.period <= 0 {
					return 0
				}
				return bits / m.period.Seconds()
			})})
		c.add(series{class: "series-recv-rate", label: d.label + " peer's arrival rate", color: orange, dash: dashOf(i), style: steps,
			pts: metricSeries(d, func(m *metric) float64 { return float64(m.recvRate) * bits })})
		c.add(series{class: "series-bandwidth", label: d.label + " link capacity est.", color: brown, dash: dashOf(i), style: steps,
			pts: metricSeries(d, func(m *metric) float64 { return float64(m.bandwidth) * bits })})
	}
	// Before the first estimates the period is all but nil (slow start
	// is paced by the window): the axis keeps to twice the estimates.
	est := 0.0
	for _, s := range c.series {
		if s.class != "series-period-rate" {
			est = max(est, quantile([]series{s}, 1))
		}
	}
	c.yCap = 2 * est
	return c
}

func windowChart(ends []*end) chart {
	c := chart{id: "chart-window", title: "Sender: congestion window, peer's flow window, packets in flight",
		yLabel: "packets", note: "no sender's metrics in these traces"}
	for i, d := range ends {
		if !d.sends() {
			continue
		}
		c.add(series{class: "series-cwnd", label: d.label + " congestion window", color: blue, dash: dashOf(i), style: steps,
			pts: metricSeries(d, func(m *metric) float64 { return float64(m.window) })})
		c.add(series{class: "series-flow-window", label: d.label + " flow window", color: teal, dash: dashOf(i), style: steps,
			pts: metricSeries(d, func(m *metric) float64 { return float64(m.flowWindow) })})
		c.add(series{class: "series-in-flight", label: d.label + " in flight", color: pink, dash: dashOf(i), style: steps,
			pts: metricSeries(d, func(m *metric) float64 { return float64(m.inFlight) })})
	}
	return c
}

func rttChart(ends []*end) chart {
	c := chart{id: "chart-rtt", title: "Round-trip time (smoothed), and RTT ± RTTVar", yLabel: "ms",
		note: "no RTT measured in these traces"}
	colors := []string{blue, orange, green, purple}
	for i, d := range ends {
		color := colors[i%len(colors)]
		rtt := metricSeries(d, func(m *metric) float64 { return ms(m.rtt) })
		if rtt == nil {
			continue
		}
		spread := make([]point, len(d.metrics))
		for k, m := range d.metrics {
			spread[k] = point{x: m.x, y: max(ms(m.rtt-m.rttVar), 0), y2: ms(m.rtt + m.rttVar)}
		}
		c.add(series{class: "series-rttvar", label: d.label + " RTT ± RTTVar", color: color, style: band, pts: spread})
		c.add(series{class: "series-rtt", label: d.label + " RTT", color: color, dash: dashOf(i), style: steps, pts: rtt})
	}
	// The estimate starts from a default (100 ms) until the first
	// measurement: the axis leaves out the rarest highs.
	c.yCap = 1.2 * quantile(c.series, 0.99)
	return c
}

// quantile returns the q quantile of the upper values (y, and y2 where
// larger) of the points of ss.
func quantile(ss []series, q float64) float64 {
	var vs []float64
	for _, s := range ss {
		for _, p := range s.pts {
			vs = append(vs, max(p.y, p.y2))
		}
	}
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	return vs[min(int(q*float64(len(vs))), len(vs)-1)]
}

func ms(d time.Duration) float64 { return d.Seconds() * 1e3 }

func lossChart(ends []*end, binW time.Duration) chart {
	c := chart{id: "chart-loss", title: "Retransmissions and packets declared lost, per " + binW.String() + "; EXP timeouts",
		yLabel: "packets", note: "no retransmission, loss or timeout in these traces"}
	colors := [len(reasons)]string{orange, purple, brown, green}
	for i, d := range ends {
		c.add(series{class: "series-retransmits", label: d.label + " retransmitted", color: red, dash: dashOf(i),
			pts: perBin(d, 1, func(b *bin) int64 { return b.retransPkts })})
		for r, reason := range reasons {
			c.add(series{class: "series-loss-" + reason, label: d.label + " lost (" + reason + ")", color: colors[r],
				dash: dashOf(i), pts: perBin(d, 1, func(b *bin) int64 { return b.lost[r] })})
		}
		c.add(series{class: "series-timeout", label: d.label + " timeout (unacked)", color: purple, style: markers,
			pts: d.timeouts})
	}
	return c
}
