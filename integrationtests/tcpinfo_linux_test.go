package integrationtests

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// tcpState is what the kernel says of a TCP sender: its congestion window
// in segments, smoothed round trip and the segments it has retransmitted
// in all.
type tcpState struct {
	cwnd    uint32
	rtt     time.Duration
	retrans uint32
}

// readTCPState reads c's TCP_INFO; ok is false when c is not a TCP
// connection or the kernel does not answer.
func readTCPState(c net.Conn) (st tcpState, ok bool) {
	tc, isTCP := c.(*net.TCPConn)
	if !isTCP {
		return st, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return st, false
	}
	var info *unix.TCPInfo
	var ierr error
	if err := raw.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || ierr != nil {
		return st, false
	}
	return tcpState{cwnd: info.Snd_cwnd, rtt: time.Duration(info.Rtt) * time.Microsecond, retrans: info.Total_retrans}, true
}
