//go:build !linux

package main

import "net"

// setBuffers sets c's receive and send buffers to n bytes, as far as the
// system allows.
func setBuffers(c *net.UDPConn, n int) error {
	if err := c.SetReadBuffer(n); err != nil {
		return err
	}
	return c.SetWriteBuffer(n)
}

// buffers returns 0: the sizes given are not read back here.
func buffers(*net.UDPConn) (rcv, snd int) { return 0, 0 }

// cpuSeconds returns 0: the CPU figures read 0 here.
func cpuSeconds() float64 { return 0 }

func (p *pair) mmsg(int) (func(stop func() bool) (int64, error), func(c *counter) error, error) {
	return nil, nil, errUnsupported
}

func (p *pair) gso(int) (func(stop func() bool) (int64, error), func(c *counter) error, error) {
	return nil, nil, errUnsupported
}
