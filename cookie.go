package udt

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"net/netip"
	"sync"
	"time"
)

// cookiePeriod is how long one SYN-cookie secret is current. A cookie from
// the previous period is still accepted.
const cookiePeriod = time.Minute

// cookieJar issues and checks SYN cookies: a keyed MAC (HMAC-SHA-256,
// truncated to 32 bits) of the client's address and port and the period's
// secret. The listener keeps no state for a request until its cookie checks
// out. The secret rotates each period; the previous one stays valid, so a
// cookie lives between one and two periods.
//
// It is used only by the multiplexer's receive worker, but guarded anyway
// so tests and benchmarks can call it from anywhere.
type cookieJar struct {
	mu      sync.Mutex
	epoch   time.Time
	period  int64 // index of the current secret's period
	cur     hash.Hash
	prev    hash.Hash
	scratch [32]byte
	in      [18 + 8]byte
}

func newCookieJar(now time.Time) *cookieJar {
	j := &cookieJar{epoch: now}
	j.cur = hmac.New(sha256.New, randomKey())
	j.prev = hmac.New(sha256.New, randomKey())
	return j
}

func randomKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand.Read never fails on supported systems
	return k
}

// rotate advances the secrets to the period of now.
func (j *cookieJar) rotate(now time.Time) {
	p := int64(now.Sub(j.epoch) / cookiePeriod)
	switch {
	case p == j.period:
		return
	case p == j.period+1:
		j.prev, j.cur = j.cur, j.prev
		j.cur = hmac.New(sha256.New, randomKey())
	default: // idle for two periods or more: both secrets are stale
		j.prev = hmac.New(sha256.New, randomKey())
		j.cur = hmac.New(sha256.New, randomKey())
	}
	j.period = p
}

func (j *cookieJar) mac(h hash.Hash, from netip.AddrPort) uint32 {
	a := from.Addr().As16()
	copy(j.in[:16], a[:])
	binary.BigEndian.PutUint16(j.in[16:], from.Port())
	binary.BigEndian.PutUint64(j.in[18:], uint64(j.period))
	h.Reset()
	h.Write(j.in[:])
	return binary.BigEndian.Uint32(h.Sum(j.scratch[:0]))
}

// issue returns the cookie for a request from addr at now.
func (j *cookieJar) issue(from netip.AddrPort, now time.Time) uint32 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.rotate(now)
	return j.mac(j.cur, from)
}

// check reports whether c is a cookie issued to addr in this period or the
// previous one.
func (j *cookieJar) check(from netip.AddrPort, c uint32, now time.Time) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.rotate(now)
	if subtle.ConstantTimeEq(int32(j.mac(j.cur, from)), int32(c)) == 1 {
		return true
	}
	j.period--
	ok := subtle.ConstantTimeEq(int32(j.mac(j.prev, from)), int32(c)) == 1
	j.period++
	return ok
}
