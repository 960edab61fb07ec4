package examples_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
)

// selfSigned returns a fresh ECDSA P-256 certificate for localhost and
// 127.0.0.1, and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "udt test"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestTLS13Echo runs a TLS 1.3 echo server behind tls.NewListener on a UDT
// listener and a tls.Client over udt.Dial: the handshake verifies the
// certificate and 8 MiB come back unchanged.
func TestTLS13Echo(t *testing.T) {
	const size = 8 << 20
	cert, pool := selfSigned(t)
	ln, err := udt.Listen("udp", "127.0.0.1:0")
	require.NoError(t, err)
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	defer tln.Close()

	type served struct {
		version uint16
		n       int64
		err     error
	}
	done := make(chan served, 1)
	go func() {
		c, err := tln.Accept()
		if err != nil {
			done <- served{err: err}
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.HandshakeContext(t.Context()); err != nil {
			done <- served{err: err}
			return
		}
		n, err := io.Copy(tc, tc) // until the client's close_notify
		done <- served{tc.ConnectionState().Version, n, err}
	}()

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	raw, err := udt.DialContext(ctx, "udp", ln.Addr().String())
	require.NoError(t, err)
	c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
	defer c.Close()
	require.NoError(t, c.HandshakeContext(ctx))
	st := c.ConnectionState()
	require.Equal(t, uint16(tls.VersionTLS13), st.Version, "negotiated %s", tls.VersionName(st.Version))
	require.Equal(t, "udt test", st.PeerCertificates[0].Subject.CommonName)
	require.NoError(t, c.SetDeadline(time.Now().Add(2*time.Minute)))

	data := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{5}).Read(data)
	start := time.Now()
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		wrote <- err
	}()
	got := sha256.New()
	n, err := io.CopyN(got, c, size)
	require.NoError(t, err)
	require.Equal(t, int64(size), n)
	require.NoError(t, <-wrote)
	want := sha256.Sum256(data)
	require.Equal(t, want[:], got.Sum(nil), "SHA-256 of the echo")
	st2 := raw.(*udt.Conn).Stats()
	t.Logf("%d bytes each way in %v; client sent %d packets (%d retransmitted), %d NAKs received",
		size, time.Since(start).Round(time.Millisecond), st2.Total.PktSent, st2.Total.PktRetrans, st2.Total.NAKRecv)

	require.NoError(t, c.Close())
	select {
	case s := <-done:
		require.NoError(t, s.err)
		require.Equal(t, uint16(tls.VersionTLS13), s.version, "server side")
		require.Equal(t, int64(size), s.n, "bytes the server echoed")
	case <-ctx.Done():
		t.Fatal("the server did not see the client's close")
	}
}

// TestHTTP2OverTLS serves HTTPS on a UDT listener: the client's transport
// dials UDT, TLS 1.3 negotiates h2 by ALPN and the requests travel as
// HTTP/2 streams on one UDT connection.
func TestHTTP2OverTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	ln, err := udt.Listen("udp", "127.0.0.1:0")
	require.NoError(t, err)
	conns := make(chan struct{}, 100)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Proto+" "+r.URL.Path)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns <- struct{}{}
			}
		},
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	defer func() {
		require.NoError(t, srv.Close())
		require.ErrorIs(t, <-served, http.ErrServerClosed)
	}()

	var d udt.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "udp", addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	for i := range 10 {
		resp, err := client.Get("https://" + ln.Addr().String() + "/r")
		require.NoError(t, err, "request %d", i)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "HTTP/2.0", resp.Proto)
		require.Equal(t, uint16(tls.VersionTLS13), resp.TLS.Version)
		require.Equal(t, "h2", resp.TLS.NegotiatedProtocol)
		require.Equal(t, "HTTP/2.0 /r", string(b))
	}
	require.Len(t, conns, 1, "connections accepted")
}
