//go:build !linux

package udt

import "net"

// socketBuffers cannot read the buffer sizes here.
func socketBuffers(c *net.UDPConn) (rcv, snd int, ok bool) { return 0, 0, false }
