// Command prometheus is a UDT server that exports its socket's figures
// (udt.SocketMetrics) to Prometheus: it listens with UDT, discarding what
// clients send (or echoing it with -echo), and serves /metrics over HTTP.
//
//	go run . -udt :9000 -http :9100
//	curl -s localhost:9100/metrics | grep udt_socket_
//
// Collector (collector.go) is the part to take into a program of your
// own. It is a module of its own, so that the Prometheus client stays out
// of the module graph of programs that import only the library.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/udt-go/udt"
)

func main() {
	udtAddr := flag.String("udt", ":9000", "UDP address the UDT listener binds")
	httpAddr := flag.String("http", ":9100", "TCP address serving /metrics")
	echo := flag.Bool("echo", false, "echo what clients send (default: discard it)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *udtAddr, *httpAddr, *echo); err != nil {
		log.Fatal(err)
	}
}

// run serves UDT on udtAddr and the metrics on httpAddr until ctx ends or
// either server fails.
func run(ctx context.Context, udtAddr, httpAddr string, echo bool) error {
	ln, err := (&udt.ListenConfig{}).ListenUDT(ctx, "udp", udtAddr)
	if err != nil {
		return err
	}
	defer ln.Close()
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: metricsHandler(newRegistry(ln)), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("UDT on %v, metrics on http://%v/metrics", ln.Addr(), hl.Addr())
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { errs <- serveUDT(ln, echo) })
	wg.Go(func() { errs <- hs.Serve(hl) })
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	_ = ln.Close()
	_ = hs.Close()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// newRegistry is a registry with the listener's socket's figures, labeled
// with its address, and the Go runtime's and the process's.
func newRegistry(ln *udt.Listener) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(ln.Metrics, prometheus.Labels{"socket": ln.Addr().String()}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// metricsHandler serves reg's metrics on /metrics.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// closeWait bounds how long closing the connections left at shutdown
// waits for their peers to acknowledge what was written.
const closeWait = 2 * time.Second

// serveUDT accepts connections on ln until it is closed, each discarding
// what its client sends or echoing it. Then it closes the connections
// still open and returns once their goroutines have ended.
func serveUDT(ln *udt.Listener, echo bool) error {
	var (
		mu    sync.Mutex
		conns = make(map[*udt.Conn]struct{})
		wg    sync.WaitGroup
	)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		defer cancel()
		mu.Lock()
		open := make([]*udt.Conn, 0, len(conns))
		for c := range conns {
			open = append(open, c)
		}
		mu.Unlock()
		for _, c := range open {
			_ = c.CloseContext(ctx)
		}
		wg.Wait()
	}()
	for {
		c, err := ln.AcceptUDT()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			dst := io.Discard
			if echo {
				dst = c
			}
			_, _ = io.Copy(dst, c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			_ = c.Close()
		})
	}
}
