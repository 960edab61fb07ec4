//go:build !linux

package udt

import (
	"net"
	"net/netip"
	"time"
)

const stampOOB = 0

func enableStamps(c *net.UDPConn) bool { return false }

func (u udpConn) readStamped(b, oob []byte) (int, netip.AddrPort, time.Time, error) {
	n, from, err := u.c.ReadFromUDPAddrPort(b)
	return n, from, time.Time{}, err
}
