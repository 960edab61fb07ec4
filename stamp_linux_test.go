package udt

import (
	"net"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestKernelArrivalStamps: a datagram read from a real socket carries the
// kernel's arrival time, taken when it arrived, not when it was read.
func TestKernelArrivalStamps(t *testing.T) {
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer rc.Close()
	require.True(t, enableStamps(rc), "SO_TIMESTAMPNS")
	u := udpConn{c: rc, stamped: true}
	// The kernel turns timestamping on from a work queue: datagrams that
	// arrive in the first moments are stamped only when read.
	time.Sleep(20 * time.Millisecond)

	sc, err := net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
	require.NoError(t, err)
	defer sc.Close()
	sent := time.Now()
	_, err = sc.Write([]byte("stamp"))
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // read well after arrival

	b, oob := make([]byte, 64), make([]byte, stampOOB)
	n, _, at, err := u.readStamped(b, oob)
	require.NoError(t, err)
	require.Equal(t, "stamp", string(b[:n]))
	require.False(t, at.IsZero(), "no kernel timestamp")
	require.Less(t, at.Sub(sent).Abs(), 25*time.Millisecond, "stamped at %v, sent at %v", at, sent)
}

func TestParseStamp(t *testing.T) {
	hdr := int(unsafe.Sizeof(syscall.Cmsghdr{}))
	tsLen := int(unsafe.Sizeof(syscall.Timespec{}))
	build := func(level, typ int32, payload int) []byte {
		b := make([]byte, syscall.CmsgSpace(payload))
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(syscall.CmsgLen(payload))
		return b
	}
	// Another message first, then the timestamp.
	other := build(syscall.SOL_IP, 8, 4)
	stamp := build(syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS, tsLen)
	ts := (*syscall.Timespec)(unsafe.Pointer(&stamp[syscall.CmsgLen(0)]))
	ts.Sec, ts.Nsec = 1700000000, 123456789
	got := parseStamp(append(other, stamp...))
	require.Equal(t, time.Unix(1700000000, 123456789), got)

	// Truncated or malformed buffers give the zero time, never a panic.
	all := append(other, stamp...)
	for i := range all {
		require.NotPanics(t, func() { parseStamp(all[:i]) })
	}
	bad := build(syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS, tsLen)
	(*syscall.Cmsghdr)(unsafe.Pointer(&bad[0])).SetLen(hdr - 1)
	require.True(t, parseStamp(bad).IsZero())
	require.True(t, parseStamp(nil).IsZero())
}
