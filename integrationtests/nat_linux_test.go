package integrationtests

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/harness"
	"github.com/udt-go/udt/internal/netsim"
)

// natBed builds a NAT test bed, or skips (fails with UDT_NETNS=require)
// where this machine cannot.
func natBed(t *testing.T, a, b netsim.NATKind) *netsim.NATBed {
	t.Helper()
	if err := netsim.NATAvailable(); err != nil {
		if os.Getenv("UDT_NETNS") == "require" {
			t.Fatal(err)
		}
		t.Skipf("%v (set UDT_NETNS=require to make this a failure)", err)
	}
	bed, err := netsim.NewNATBed(a, b)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, bed.Close()) })
	return bed
}

// buildP2PCopy builds examples/p2pcopy into a temporary directory and
// returns the binary's path.
func buildP2PCopy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "p2pcopy")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/udt-go/udt/examples/p2pcopy").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// startP2PServer runs p2pcopy's rendezvous server (bin) on the bed's
// public host until the test ends, and returns its address.
func startP2PServer(t *testing.T, bed *netsim.NATBed, bin string) string {
	t.Helper()
	server := net.JoinHostPort(bed.Addr(netsim.Public).String(), "3478")
	srv := bed.Command(netsim.Public, bin, "server", "-listen", server)
	var out strings.Builder
	srv.Stdout, srv.Stderr = &out, &out
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
		t.Logf("server:\n%s", out.String())
	})
	return server
}

// natPeer registers with p2pcopy's rendezvous server as role ("send" or
// "recv") of session "test", through its Transport's own socket, learns
// the other peer's public address, then dials it in rendezvous on the
// same socket.
func natPeer(ctx context.Context, tr *udt.Transport, server net.Addr, role string, cfg udt.Config, delay time.Duration) (*udt.Conn, netip.AddrPort, error) {
	var peer netip.AddrPort
	buf := make([]byte, 512)
	for peer == (netip.AddrPort{}) {
		if _, err := tr.WriteTo([]byte("p2pcopy register test "+role), server); err != nil {
			return nil, peer, err
		}
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		n, _, err := tr.ReadNonUDTPacket(rctx, buf)
		cancel()
		switch {
		case err == nil:
			if s, ok := strings.CutPrefix(string(buf[:n]), "p2pcopy peer "); ok {
				if peer, err = netip.ParseAddrPort(s); err != nil {
					return nil, peer, err
				}
			}
		case ctx.Err() != nil:
			return nil, peer, ctx.Err()
		}
	}
	time.Sleep(delay)
	c, err := tr.DialRendezvous(ctx, net.UDPAddrFromAddrPort(peer), cfg)
	return c, peer, err
}

// TestRendezvousThroughNATs: two peers, each behind its own NAT (the
// kernel's, in network namespaces), learn each other's public address from
// a rendezvous server on the public side (p2pcopy's), talking to it on their
// Transport's socket, then connect in rendezvous on that socket: through
// endpoint-independent NATs the connection carries data both ways; with a
// symmetric NAT on one side, both dials fail within their timeout with a
// timeout error rather than hang.
func TestRendezvousThroughNATs(t *testing.T) {
	bin := buildP2PCopy(t)
	for _, tc := range []struct {
		a, b netsim.NATKind
		ok   bool
		// The error of the peer behind the cone names the symmetric NAT:
		// the other's packets reach it from another port.
		named bool
		// How long each peer waits to dial after it learns the other's
		// address: the first one's handshakes are dropped by the other's
		// NAT until that one dials too.
		delay [2]time.Duration
	}{
		{a: netsim.NATPortRestricted, b: netsim.NATPortRestricted, ok: true},
		{a: netsim.NATPortRestricted, b: netsim.NATPortRestricted, ok: true, delay: [2]time.Duration{0, 2 * time.Second}},
		{a: netsim.NATPortRestricted, b: netsim.NATPortRestricted, ok: true, delay: [2]time.Duration{2 * time.Second, 0}},
		{a: netsim.NATFullCone, b: netsim.NATPortRestricted, ok: true},
		{a: netsim.NATSymmetric, b: netsim.NATPortRestricted},
		{a: netsim.NATSymmetric, b: netsim.NATFullCone, named: true},
	} {
		name := tc.a.String() + "+" + tc.b.String()
		switch {
		case tc.delay[0] > 0:
			name += "/B first"
		case tc.delay[1] > 0:
			name += "/A first"
		}
		t.Run(name, func(t *testing.T) {
			bed := natBed(t, tc.a, tc.b)
			server, err := net.ResolveUDPAddr("udp4", startP2PServer(t, bed, bin))
			require.NoError(t, err)

			const timeout = 5 * time.Second
			cfg := udt.Config{ConnectTimeout: timeout}
			type result struct {
				c    *udt.Conn
				peer netip.AddrPort
				err  error
				took time.Duration
			}
			results := make(chan result, 2)
			for i, h := range []netsim.NATHost{netsim.PeerA, netsim.PeerB} {
				uc, err := bed.ListenUDP(h, 9000)
				require.NoError(t, err)
				t.Cleanup(func() { uc.Close() })
				tr, err := udt.NewTransport(uc)
				require.NoError(t, err)
				t.Cleanup(func() { tr.Close() })
				go func() {
					ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
					defer cancel()
					start := time.Now()
					c, peer, err := natPeer(ctx, tr, server, [2]string{"send", "recv"}[i], cfg, tc.delay[i])
					results <- result{c, peer, err, time.Since(start)}
				}()
			}
			var rs []result
			for range 2 {
				r := <-results
				if r.c != nil {
					t.Cleanup(func() { r.c.Close() })
				}
				rs = append(rs, r)
			}
			for _, r := range rs {
				t.Logf("peer's public address %v: %v after %v", r.peer, r.err, r.took.Round(time.Millisecond))
				require.NotEqual(t, netip.AddrPort{}, r.peer, "the server never answered")
				require.True(t, r.peer.Addr() == bed.NATAddr(netsim.PeerA) || r.peer.Addr() == bed.NATAddr(netsim.PeerB),
					"the server saw a NAT's public address, not %v", r.peer)
			}
			if tc.ok {
				for _, r := range rs {
					require.NoError(t, r.err)
				}
				harness.Swap(t, rs[0].c, rs[1].c, 4<<20)
				return
			}
			named := false
			for _, r := range rs {
				require.Error(t, r.err)
				var ne net.Error
				require.True(t, errors.As(r.err, &ne) && ne.Timeout(), "a timeout error: %v", r.err)
				require.ErrorIs(t, r.err, udt.ErrHandshakeTimeout)
				require.Less(t, r.took, timeout+2*time.Second, "the dial outlived its timeout")
				named = named || strings.Contains(r.err.Error(), "symmetric")
			}
			require.Equal(t, tc.named, named, "an error names the symmetric NAT")
		})
	}
}

// TestP2PCopyThroughNATs runs examples/p2pcopy as its README says, each
// process on its own host of a NAT bed: the server on the public host,
// the sender behind a port-restricted cone NAT, the receiver behind
// another; 64 MiB arrive whole, their SHA-256 checked by the receiver.
func TestP2PCopyThroughNATs(t *testing.T) {
	bed := natBed(t, netsim.NATPortRestricted, netsim.NATPortRestricted)
	bin := buildP2PCopy(t)
	dir := t.TempDir()

	src := filepath.Join(dir, "data.bin")
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	require.NoError(t, os.WriteFile(src, data, 0o644))
	dst := filepath.Join(dir, "copy.bin")

	server := startP2PServer(t, bed, bin)

	sender := bed.Command(netsim.PeerA, bin, "send", "-server", server, "-session", "nat", "-timeout", "60s", src)
	var sendOut strings.Builder
	sender.Stdout, sender.Stderr = &sendOut, &sendOut
	require.NoError(t, sender.Start())
	rcv := bed.Command(netsim.PeerB, bin, "recv", "-server", server, "-session", "nat", "-timeout", "60s", "-o", dst)
	rcvOut, rerr := rcv.CombinedOutput()
	serr := sender.Wait()
	t.Logf("sender:\n%s\nreceiver:\n%s", sendOut.String(), rcvOut)
	require.NoError(t, rerr, "receiver")
	require.NoError(t, serr, "sender")
	got, err := os.ReadFile(dst)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "the copy differs")
	require.Contains(t, string(rcvOut), "checked")
	require.Contains(t, string(rcvOut), "peer at "+bed.NATAddr(netsim.PeerA).String())
}
