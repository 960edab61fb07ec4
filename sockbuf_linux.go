package udt

import (
	"net"

	"golang.org/x/sys/unix"
)

// socketBuffers returns the sizes the kernel gives c's receive and send
// buffers, as set (Linux reports twice what was asked, for its own
// bookkeeping).
func socketBuffers(c *net.UDPConn) (rcv, snd int, ok bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, false
	}
	var rerr, serr error
	if err := rc.Control(func(fd uintptr) {
		rcv, rerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		snd, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	}); err != nil || rerr != nil || serr != nil {
		return 0, 0, false
	}
	return rcv / 2, snd / 2, true
}
