package udt

import (
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Arrival times come from the kernel (SO_TIMESTAMPNS), taken when each
// datagram reached the host. The receive worker's own clock reads them
// later and in bursts whenever the Go scheduler runs it late, and the
// receiver's arrival-rate and packet-pair estimates (ACK words 5 and 6)
// would measure those bursts instead of the path.

// stampOOB is the control-message buffer for one timestamp.
const stampOOB = 64

// enableStamps asks the kernel to timestamp datagrams arriving at c.
func enableStamps(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return false
	}
	return serr == nil
}

// readStamped reads one datagram and its kernel arrival time (zero if the
// kernel gave none).
func (u udpConn) readStamped(b, oob []byte) (int, netip.AddrPort, time.Time, error) {
	n, oobn, _, from, err := u.c.ReadMsgUDPAddrPort(b, oob)
	if err != nil {
		return n, from, time.Time{}, err
	}
	return n, from, parseStamp(oob[:oobn]), nil
}

// parseStamp returns the SCM_TIMESTAMPNS time in a control-message buffer,
// or the zero time. It does not allocate.
func parseStamp(oob []byte) time.Time {
	t, _ := parseOOB(oob)
	return t
}
