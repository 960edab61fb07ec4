//go:build !linux

package integrationtests

import (
	"net"
	"time"
)

// tcpState is what the kernel says of a TCP sender (Linux only).
type tcpState struct {
	cwnd    uint32
	rtt     time.Duration
	retrans uint32
}

// readTCPState reads nothing off Linux.
func readTCPState(net.Conn) (tcpState, bool) { return tcpState{}, false }
