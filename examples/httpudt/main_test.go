package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
)

// bigBody is the size of the response body TestHTTPLargeBody checks.
const bigBody = 100 << 20

// testServer serves h on a UDT listener on 127.0.0.1 and returns its base
// URL and a count of the connections it accepted.
func testServer(t *testing.T, h http.Handler) (string, *atomic.Int64) {
	t.Helper()
	ln, err := udt.Listen("udp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns atomic.Int64
	srv := newServer(h)
	srv.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		require.ErrorIs(t, <-done, http.ErrServerClosed)
	})
	return "http://" + ln.Addr().String(), &conns
}

// testClient returns an HTTP client dialing UDT, closed with the test.
func testClient(t *testing.T) *http.Client {
	t.Helper()
	tr := newTransport(&udt.Dialer{})
	tr.MaxIdleConnsPerHost = 100
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// getBody fetches url and returns its body, requiring status 200.
func getBody(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}

func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.URL.Query().Get("i"))
	})
}

// TestHTTPKeepAlive sends requests one after another on one client: the
// server accepts a single UDT connection and the client reports every
// request after the first as sent on a reused connection.
func TestHTTPKeepAlive(t *testing.T) {
	base, conns := testServer(t, echoHandler())
	c := testClient(t)
	const n = 50
	var reused int
	for i := range n {
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			if info.Reused {
				reused++
			}
		}}
		ctx := httptrace.WithClientTrace(t.Context(), trace)
		body, err := getBody(ctx, c, base+"/?i="+strconv.Itoa(i))
		require.NoError(t, err, "request %d", i)
		require.Equal(t, "hello "+strconv.Itoa(i), body)
	}
	require.Equal(t, int64(1), conns.Load(), "connections accepted")
	require.Equal(t, n-1, reused, "requests on a reused connection")
}

// TestHTTPConcurrent sends 100 requests at once, then 100 more: all
// succeed, and the second round reuses the connections of the first: no
// more than 100 are ever opened.
func TestHTTPConcurrent(t *testing.T) {
	base, conns := testServer(t, echoHandler())
	c := testClient(t)
	const n = 100
	round := func() {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				body, err := getBody(t.Context(), c, base+"/?i="+strconv.Itoa(i))
				if err == nil && body != "hello "+strconv.Itoa(i) {
					err = fmt.Errorf("request %d: body %q", i, body)
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "request %d", i)
		}
	}
	round()
	first := conns.Load()
	require.LessOrEqual(t, first, int64(n))
	round()
	t.Logf("%d requests on %d UDT connections (%d after the first round)", 2*n, conns.Load(), first)
	// The first round may have served some requests on connections that
	// others had finished with; the second needs n at once and opens only
	// what the first left it short of, reusing every idle one.
	require.LessOrEqual(t, conns.Load(), int64(n), "the second round opened connections it could have reused")
}

// TestHTTPLargeBody fetches a 100 MiB response and checks its SHA-256.
func TestHTTPLargeBody(t *testing.T) {
	body := func() io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{7}), bigBody) }
	want := sha256.New()
	_, _ = io.Copy(want, body())

	base, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(bigBody))
		_, _ = io.Copy(w, body())
	}))
	c := testClient(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/big", nil)
	require.NoError(t, err)
	start := time.Now()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "HTTP/1.1", resp.Proto)
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	require.NoError(t, err)
	require.Equal(t, int64(bigBody), n)
	require.Equal(t, want.Sum(nil), got.Sum(nil), "SHA-256 of the body")
	t.Logf("%d bytes in %v", n, time.Since(start).Round(time.Millisecond))
}

// The directory server serves its directory's files and nothing outside
// it, through a symbolic link or otherwise.
func TestServeDirStaysInside(t *testing.T) {
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("not for you"), 0o644))
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "link")))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "out")))
	h, err := dirHandler(dir)
	require.NoError(t, err)
	url, _ := testServer(t, h)
	c := testClient(t)
	body, err := getBody(t.Context(), c, url+"/hello.txt")
	require.NoError(t, err)
	require.Equal(t, "hello", body)
	for _, p := range []string{"/link", "/out/secret", "/../secret"} {
		body, err := getBody(t.Context(), c, url+p)
		require.NotContains(t, body, "not for you", p)
		require.Error(t, err, p)
	}
}
