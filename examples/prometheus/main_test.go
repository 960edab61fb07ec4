package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
)

// exporter is a UDT listener on loopback and its /metrics, served by
// httptest; both close at the test's end.
func exporter(t *testing.T, cfg udt.Config) (*udt.Listener, *httptest.Server) {
	t.Helper()
	ln, err := (&udt.ListenConfig{Config: cfg}).ListenUDT(t.Context(), "udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	hs := httptest.NewServer(metricsHandler(newRegistry(ln)))
	t.Cleanup(hs.Close)
	return ln, hs
}

// scrape reads /metrics and returns the metric families by name.
func scrape(t *testing.T, hs *httptest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/metrics", nil)
	require.NoError(t, err)
	resp, err := hs.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return mfs
}

// value is the value of the metric name with label reason (or none, if
// reason is ""), and whether it was there.
func value(mfs map[string]*dto.MetricFamily, name, reason string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		got := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "reason" {
				got = l.GetValue()
			}
		}
		if got != reason {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// A client sends a stream to the server; a scrape then shows every
// metric, of the right type and labeled with the socket, and the
// counters moved by at least what was sent.
func TestExporterScrape(t *testing.T) {
	const n = 1 << 20
	ln, hs := exporter(t, udt.Config{})
	served := make(chan error, 1)
	go func() { served <- serveUDT(ln, false) }()

	c, err := (&udt.Dialer{}).DialUDT(t.Context(), "udp", ln.Addr().String())
	require.NoError(t, err)
	_, err = c.Write(make([]byte, n))
	require.NoError(t, err)
	require.NoError(t, c.Close()) // returns once the server acknowledged every byte

	var mfs map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		mfs = scrape(t, hs)
		in, _ := value(mfs, "udt_socket_bytes_in_total", "")
		return in >= n
	}, 5*time.Second, 10*time.Millisecond, "bytes in below the %d sent", n)
	for name, typ := range map[string]dto.MetricType{
		"udt_socket_connections":                dto.MetricType_GAUGE,
		"udt_socket_send_queue_connections":     dto.MetricType_GAUGE,
		"udt_socket_receive_held_bytes":         dto.MetricType_GAUGE,
		"udt_socket_packets_in_total":           dto.MetricType_COUNTER,
		"udt_socket_bytes_in_total":             dto.MetricType_COUNTER,
		"udt_socket_packets_out_total":          dto.MetricType_COUNTER,
		"udt_socket_bytes_out_total":            dto.MetricType_COUNTER,
		"udt_socket_send_errors_total":          dto.MetricType_COUNTER,
		"udt_socket_non_udt_packets_total":      dto.MetricType_COUNTER,
		"udt_socket_handshake_inductions_total": dto.MetricType_COUNTER,
		"udt_socket_connections_accepted_total": dto.MetricType_COUNTER,
		"udt_socket_connections_dialed_total":   dto.MetricType_COUNTER,
		"udt_socket_cookies_rejected_total":     dto.MetricType_COUNTER,
		"udt_socket_handshakes_refused_total":   dto.MetricType_COUNTER,
		"udt_socket_packets_dropped_total":      dto.MetricType_COUNTER,
	} {
		mf := mfs[name]
		require.NotNil(t, mf, "%s missing", name)
		require.Equal(t, typ, mf.GetType(), name)
		for _, m := range mf.GetMetric() {
			socket := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "socket" {
					socket = l.GetValue()
				}
			}
			require.Equal(t, ln.Addr().String(), socket, "%s: socket label", name)
		}
	}
	require.Contains(t, mfs, "go_goroutines", "the Go collector")
	accepted, _ := value(mfs, "udt_socket_connections_accepted_total", "")
	require.GreaterOrEqual(t, accepted, 1.0)
	pkts, _ := value(mfs, "udt_socket_packets_in_total", "")
	require.GreaterOrEqual(t, pkts, float64(n/1500))
	out, _ := value(mfs, "udt_socket_packets_out_total", "")
	require.Positive(t, out, "the server's ACKs")
	require.Len(t, mfs["udt_socket_packets_dropped_total"].GetMetric(), 5, "a series per drop reason")

	require.NoError(t, ln.Close())
	require.NoError(t, <-served)
}

// Refused handshakes show under their reason, the other reasons at 0.
func TestExporterRefusedReason(t *testing.T) {
	ln, hs := exporter(t, udt.Config{Backlog: 1}) // nobody accepts: the second dial is refused
	dial := func(cfg udt.Config) error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		c, err := (&udt.Dialer{Config: cfg}).DialUDT(ctx, "udp", ln.Addr().String())
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		return err
	}
	require.NoError(t, dial(udt.Config{}))
	require.ErrorIs(t, dial(udt.Config{}), udt.ErrConnRefused)
	require.ErrorIs(t, dial(udt.Config{Type: udt.TypeMessage}), udt.ErrConnRefused)

	mfs := scrape(t, hs)
	require.Len(t, mfs["udt_socket_handshakes_refused_total"].GetMetric(), 5, "a series per reason")
	for reason, want := range map[string]float64{
		"backlog_full": 1, "socket_type": 1, "max_conns": 0, "closing": 0, "version": 0,
	} {
		got, ok := value(mfs, "udt_socket_handshakes_refused_total", reason)
		require.True(t, ok, "reason %q missing", reason)
		require.Equal(t, want, got, "reason %q", reason)
	}
}

// With -echo, the server sends back what a client writes; closing the
// listener ends serveUDT and the connections left open.
func TestServeEcho(t *testing.T) {
	ln, _ := exporter(t, udt.Config{})
	served := make(chan error, 1)
	go func() { served <- serveUDT(ln, true) }()
	c, err := (&udt.Dialer{}).DialUDT(t.Context(), "udp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("hello"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 5)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf))
	require.NoError(t, ln.Close())
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("serveUDT still running after the listener closed")
	}
}

// run serves until its context ends, and fails on an address it cannot
// use.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	require.NoError(t, run(ctx, "127.0.0.1:0", "127.0.0.1:0", false))
	require.Error(t, run(t.Context(), "127.0.0.1:0", "127.0.0.1:notaport", false))
	require.Error(t, run(t.Context(), "127.0.0.1:notaport", "127.0.0.1:0", false))
}
