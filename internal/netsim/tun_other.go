//go:build !linux

package netsim

import (
	"errors"
	"net/netip"
	"os/exec"
	"syscall"
)

// TunMTU is the MTU of a [TunPath]'s devices.
const TunMTU = 1500

// TunPath would join two network namespaces through TUN devices; it needs
// Linux, and here no TunPath can be built.
type TunPath struct{}

var errNoTun = errors.New("netsim: TUN paths need Linux")

// TunAvailable returns an error: TUN paths need Linux.
func TunAvailable() error { return errNoTun }

// NewTunPath returns an error: TUN paths need Linux.
func NewTunPath(aToB, bToA LinkConfig, seed uint64) (*TunPath, error) { return nil, errNoTun }

// Addr returns the zero address.
func (p *TunPath) Addr(side int) netip.Addr { return netip.Addr{} }

// Namespace returns "".
func (p *TunPath) Namespace(side int) string { return "" }

// Links returns nil links.
func (p *TunPath) Links() (aToB, bToA *Link) { return nil, nil }

// SetConfig does nothing.
func (p *TunPath) SetConfig(aToB, bToA LinkConfig) {}

// Observe does nothing.
func (p *TunPath) Observe(dir int, fn func(pkt []byte)) {}

// Stats returns zero counters.
func (p *TunPath) Stats() (aToB, bToA LinkStats) { return LinkStats{}, LinkStats{} }

// Do returns an error: TUN paths need Linux.
func (p *TunPath) Do(side int, fn func() error) error { return errNoTun }

// Command returns a command that fails to start: TUN paths need Linux.
func (p *TunPath) Command(side int, name string, args ...string) *exec.Cmd {
	return &exec.Cmd{Path: name, Args: append([]string{name}, args...), Err: errNoTun}
}

// Close does nothing.
func (p *TunPath) Close() error { return nil }

// SetTCPCongestion returns an error: it is implemented on Linux only.
func SetTCPCongestion(c syscall.Conn, name string) error {
	return errors.New("netsim: TCP congestion control needs Linux")
}

// ForceSocketBuffers returns an error: it is implemented on Linux only.
func ForceSocketBuffers(c syscall.Conn, bytes int) error {
	return errors.New("netsim: forced socket buffers need Linux")
}
