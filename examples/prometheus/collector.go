package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/udt-go/udt"
)

// Collector is a prometheus.Collector for one UDT socket: at each scrape
// it reads the socket's udt.SocketMetrics once (a few dozen atomic loads,
// however many connections are open) and reports the counters as
// counters, the gauges as gauges, and the refusals and drops by reason
// with a "reason" label. It is safe for concurrent use.
type Collector struct {
	read    func() udt.SocketMetrics
	scalars []scalar
	refused *prometheus.Desc
	dropped *prometheus.Desc
}

// scalar is one metric read straight from a field.
type scalar struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*udt.SocketMetrics) float64
}

// The label values of the refusal and drop reasons, each with its field.
var (
	refusalReasons = []struct {
		name  string
		value func(*udt.HandshakeRefusals) uint64
	}{
		{"backlog_full", func(r *udt.HandshakeRefusals) uint64 { return r.BacklogFull }},
		{"max_conns", func(r *udt.HandshakeRefusals) uint64 { return r.MaxConns }},
		{"closing", func(r *udt.HandshakeRefusals) uint64 { return r.Closing }},
		{"version", func(r *udt.HandshakeRefusals) uint64 { return r.Version }},
		{"socket_type", func(r *udt.HandshakeRefusals) uint64 { return r.SocketType }},
	}
	dropReasons = []struct {
		name  string
		value func(*udt.DatagramDrops) uint64
	}{
		{"malformed", func(d *udt.DatagramDrops) uint64 { return d.Malformed }},
		{"unroutable", func(d *udt.DatagramDrops) uint64 { return d.Unroutable }},
		{"foreign", func(d *udt.DatagramDrops) uint64 { return d.Foreign }},
		{"non_udt_queue_full", func(d *udt.DatagramDrops) uint64 { return d.NonUDTQueueFull }},
		{"receive_memory", func(d *udt.DatagramDrops) uint64 { return d.ReceiveMemory }},
	}
)

// NewCollector returns a Collector of the figures read returns: a
// Listener's Metrics, a Transport's, or a Conn's SocketMetrics. labels
// are added to every metric (a socket name, say, to tell several apart);
// it may be nil.
func NewCollector(read func() udt.SocketMetrics, labels prometheus.Labels) *Collector {
	desc := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc("udt_socket_"+name, help, variable, labels)
	}
	gauge := func(name, help string, v func(*udt.SocketMetrics) int64) scalar {
		return scalar{desc(name, help), prometheus.GaugeValue, func(m *udt.SocketMetrics) float64 { return float64(v(m)) }}
	}
	counter := func(name, help string, v func(*udt.SocketMetrics) uint64) scalar {
		return scalar{desc(name, help), prometheus.CounterValue, func(m *udt.SocketMetrics) float64 { return float64(v(m)) }}
	}
	return &Collector{
		read: read,
		scalars: []scalar{
			gauge("connections", "Connections open on the socket (dialing, established, or accepted and not yet closed).",
				func(m *udt.SocketMetrics) int64 { return m.Conns }),
			gauge("send_queue_connections", "Connections with data due in the socket's send queue.",
				func(m *udt.SocketMetrics) int64 { return m.SendQueueDepth }),
			gauge("receive_held_bytes", "Received data the socket's connections hold for their readers, bytes.",
				func(m *udt.SocketMetrics) int64 { return m.ReceiveHeld }),
			counter("packets_in_total", "UDP datagrams read from the socket, of every kind.",
				func(m *udt.SocketMetrics) uint64 { return m.PacketsIn }),
			counter("bytes_in_total", "Bytes of the UDP datagrams read from the socket.",
				func(m *udt.SocketMetrics) uint64 { return m.BytesIn }),
			counter("packets_out_total", "UDP datagrams written to the socket.",
				func(m *udt.SocketMetrics) uint64 { return m.PacketsOut }),
			counter("bytes_out_total", "Bytes of the UDP datagrams written to the socket.",
				func(m *udt.SocketMetrics) uint64 { return m.BytesOut }),
			counter("send_errors_total", "Writes the kernel refused; their packets were lost.",
				func(m *udt.SocketMetrics) uint64 { return m.SendErrors }),
			counter("non_udt_packets_total", "Datagrams queued for a Transport's ReadNonUDTPacket.",
				func(m *udt.SocketMetrics) uint64 { return m.NonUDT }),
			counter("handshake_inductions_total", "Cookie requests the listener answered.",
				func(m *udt.SocketMetrics) uint64 { return m.Inductions }),
			counter("connections_accepted_total", "Connections the listener made.",
				func(m *udt.SocketMetrics) uint64 { return m.Accepted }),
			counter("connections_dialed_total", "Connections established by dials from the socket.",
				func(m *udt.SocketMetrics) uint64 { return m.Dialed }),
			counter("cookies_rejected_total", "Connection requests dropped for a bad or expired cookie.",
				func(m *udt.SocketMetrics) uint64 { return m.CookiesRejected }),
		},
		refused: desc("handshakes_refused_total", "Connection requests the listener refused, by reason.", "reason"),
		dropped: desc("packets_dropped_total", "Datagrams the socket discarded, by reason.", "reason"),
	}
}

// Describe sends the descriptors of every metric the Collector reports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range c.scalars {
		ch <- s.desc
	}
	ch <- c.refused
	ch <- c.dropped
}

// Collect reads the socket's figures once and sends them.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	m := c.read()
	for _, s := range c.scalars {
		ch <- prometheus.MustNewConstMetric(s.desc, s.kind, s.value(&m))
	}
	for _, r := range refusalReasons {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(r.value(&m.Refused)), r.name)
	}
	for _, r := range dropReasons {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(r.value(&m.Dropped)), r.name)
	}
}
