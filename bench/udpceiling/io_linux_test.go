package main

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestGSORun(t *testing.T) {
	require.Equal(t, 44, gsoRun(1472)) // 64,768 bytes
	require.Equal(t, 7, gsoRun(8972))  // 62,804 bytes
	require.Equal(t, 64, gsoRun(100))  // the segment limit
	require.Equal(t, 1, gsoRun(40000))
	require.Equal(t, 1, gsoRun(maxPayload))
}

func TestGSODatagrams(t *testing.T) {
	require.Equal(t, 1, gsoDatagrams(1472, 0))
	require.Equal(t, 1, gsoDatagrams(1000, 1472)) // a lone short datagram
	require.Equal(t, 1, gsoDatagrams(1472, 1472))
	require.Equal(t, 44, gsoDatagrams(44*1472, 1472))
	require.Equal(t, 3, gsoDatagrams(2*1472+1, 1472)) // the last one short
}

func TestGROSegment(t *testing.T) {
	cmsg := func(level, typ int32, data []byte) []byte {
		b := make([]byte, unix.CmsgSpace(len(data)))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(len(data)))
		copy(b[unix.CmsgLen(0):], data)
		return b
	}
	seg := binary.NativeEndian.AppendUint32(nil, 1472)
	require.Equal(t, 1472, groSegment(cmsg(unix.IPPROTO_UDP, unix.UDP_GRO, seg)))
	require.Equal(t, 8972, groSegment(cmsg(unix.IPPROTO_UDP, unix.UDP_GRO, binary.NativeEndian.AppendUint16(nil, 8972))))
	// After another message.
	other := cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, make([]byte, 16))
	require.Equal(t, 1472, groSegment(append(other, cmsg(unix.IPPROTO_UDP, unix.UDP_GRO, seg)...)))
	require.Zero(t, groSegment(other))
	require.Zero(t, groSegment(nil))
	// A length past the buffer.
	bad := cmsg(unix.IPPROTO_UDP, unix.UDP_GRO, seg)
	(*unix.Cmsghdr)(unsafe.Pointer(&bad[0])).Len = 1000
	require.Zero(t, groSegment(bad))
}
