//go:build !linux

package netsim

import (
	"errors"
	"net/netip"
	"os/exec"
)

// TunPath needs Linux; see tun_linux.go.
type TunPath struct{}

var errNoTun = errors.New("netsim: TUN paths need Linux")

// TunAvailable reports that TUN paths need Linux.
func TunAvailable() error { return errNoTun }

// NewTunPath fails: TUN paths need Linux.
func NewTunPath(aToB, bToA LinkConfig, seed uint64) (*TunPath, error) { return nil, errNoTun }

func (p *TunPath) Addr(side int) netip.Addr                                { return netip.Addr{} }
func (p *TunPath) Namespace(side int) string                               { return "" }
func (p *TunPath) Links() (aToB, bToA *Link)                               { return nil, nil }
func (p *TunPath) Stats() (aToB, bToA LinkStats)                           { return LinkStats{}, LinkStats{} }
func (p *TunPath) Do(side int, fn func() error) error                      { return errNoTun }
func (p *TunPath) Command(side int, name string, args ...string) *exec.Cmd { return nil }
func (p *TunPath) Close() error                                            { return nil }
