// Package testenv holds the tests' checks of what the machine offers.
package testenv

import (
	"net"
	"os"
	"testing"
)

// IPv6Loopback reports whether a UDP socket can be bound to ::1.
func IPv6Loopback() bool {
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// NeedIPv6 skips the test when the machine has no IPv6 loopback, or fails
// it when UDT_IPV6=require (as CI sets it): a test that silently skips
// there tests nothing.
func NeedIPv6(tb testing.TB) {
	tb.Helper()
	if IPv6Loopback() {
		return
	}
	if os.Getenv("UDT_IPV6") == "require" {
		tb.Fatal("no IPv6 loopback here, and UDT_IPV6=require")
	}
	tb.Skip("no IPv6 loopback here (set UDT_IPV6=require to make this a failure)")
}
