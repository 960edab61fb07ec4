//go:build !linux

package udt

import (
	"net"
	"net/netip"
	"time"
)

// batchIO is Linux only (batchio_linux.go); elsewhere each datagram is a
// system call of its own.
type batchIO struct{}

func newBatchIO(*net.UDPConn, bool) *batchIO { return nil }

func (*batchIO) read() error { return nil }
func (*batchIO) each(func([]byte, netip.AddrPort, time.Time, *rxBlock)) rxCount {
	return rxCount{}
}
func (*batchIO) recycle()                                              {}
func (*batchIO) release()                                              {}
func (*batchIO) writeBatch(*txBatch, func([]byte, netip.AddrPort)) int { return 0 }
