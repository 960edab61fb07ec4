package udt

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCookieLifetime(t *testing.T) {
	t0 := time.Unix(1000, 0)
	j := newCookieJar(t0)
	a := netip.MustParseAddrPort("127.0.0.1:4000")
	b := netip.MustParseAddrPort("127.0.0.1:4001")
	c := j.issue(a, t0.Add(10*time.Second))

	require.True(t, j.check(a, c, t0.Add(20*time.Second)), "same period")
	require.False(t, j.check(b, c, t0.Add(20*time.Second)), "another port")
	require.False(t, j.check(netip.MustParseAddrPort("127.0.0.2:4000"), c, t0.Add(20*time.Second)), "another host")
	require.True(t, j.check(a, c, t0.Add(70*time.Second)), "previous period is still accepted")
	require.False(t, j.check(a, c, t0.Add(130*time.Second)), "two periods later it has expired")
	require.False(t, j.check(a, c^1, t0.Add(20*time.Second)), "a flipped bit")
}

func TestCookieIdleRotation(t *testing.T) {
	t0 := time.Unix(1000, 0)
	j := newCookieJar(t0)
	a := netip.MustParseAddrPort("[::1]:4000")
	c := j.issue(a, t0)
	require.False(t, j.check(a, c, t0.Add(10*time.Minute)))
	c2 := j.issue(a, t0.Add(10*time.Minute))
	require.True(t, j.check(a, c2, t0.Add(10*time.Minute+time.Second)))
}

func BenchmarkCookieCheck(b *testing.B) {
	t0 := time.Now()
	j := newCookieJar(t0)
	a := netip.MustParseAddrPort("127.0.0.1:4000")
	c := j.issue(a, t0)
	b.ReportAllocs()
	for b.Loop() {
		if !j.check(a, c, t0) {
			b.Fatal("cookie rejected")
		}
	}
}
