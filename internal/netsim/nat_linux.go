package netsim

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// NATKind says how an emulated NAT maps its inside hosts' UDP ports to
// its public address, and which packets from outside it lets in (RFC 4787
// terms).
type NATKind int

const (
	// NATFullCone maps an inside port to the same public port whatever
	// the destination, and lets in any packet to a mapped port
	// (endpoint-independent mapping and filtering): hole punching is not
	// even needed.
	NATFullCone NATKind = iota
	// NATPortRestricted maps an inside port to the same public port
	// whatever the destination, and lets in only packets from an address
	// and port the inside host sent to (endpoint-independent mapping,
	// address-and-port-dependent filtering): the kernel's masquerade.
	// Hole punching crosses it.
	NATPortRestricted
	// NATSymmetric maps an inside port to a new random public port for
	// each destination (endpoint-dependent mapping), and filters as
	// NATPortRestricted: the address a rendezvous server sees is not the
	// one a peer must send to, and hole punching fails.
	NATSymmetric
)

func (k NATKind) String() string {
	switch k {
	case NATFullCone:
		return "full cone"
	case NATPortRestricted:
		return "port-restricted cone"
	case NATSymmetric:
		return "symmetric"
	}
	return fmt.Sprintf("NATKind(%d)", int(k))
}

// NATHost names a host of a NATBed.
type NATHost int

const (
	PeerA  NATHost = iota // behind NAT A
	PeerB                 // behind NAT B
	Public                // on the public side, beside both NATs
	natA
	natB
	natHosts
)

// NATBed is two hosts, each behind a NAT of its own, and a public host
// that both NATs reach: network namespaces joined by veth pairs, the NATs
// run by the kernel (nftables). Each peer has a private address and a
// default route through its NAT; the NATs' public addresses and the public
// host's are on one public network, routed by the public host.
//
//	PeerA 10.0.1.2 ── 10.0.1.1 NAT A 198.51.100.2 ── 198.51.100.1 Public
//	PeerB 10.0.2.2 ── 10.0.2.1 NAT B 198.51.100.6 ── 198.51.100.5 Public
//
// Building one needs Linux, root, the ip command and the nft command; see
// [NATAvailable]. Sockets are made inside a host's namespace with
// [NATBed.Do]. A NATBed is safe for concurrent use.
type NATBed struct {
	ns        [natHosts]string
	kinds     [2]NATKind
	closeOnce sync.Once
	closeErr  error
}

// The bed's addresses.
var (
	natPeerAddr   = [2]netip.Addr{netip.MustParseAddr("10.0.1.2"), netip.MustParseAddr("10.0.2.2")}
	natInsideAddr = [2]netip.Addr{netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("10.0.2.1")}
	natPublicAddr = [2]netip.Addr{netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.6")}
	natGateway    = [2]netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.5")}
)

// NATAvailable reports why this machine cannot build a NATBed, or nil.
func NATAvailable() error {
	if err := TunAvailable(); err != nil {
		return err
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("netsim: NAT bed needs the nft command (Debian: apt-get install nftables): %w", err)
	}
	return nil
}

// NewNATBed builds a bed whose peer A is behind a NAT of kind a and peer B
// behind one of kind b.
func NewNATBed(a, b NATKind) (*NATBed, error) {
	if err := NATAvailable(); err != nil {
		return nil, err
	}
	tunStale.Do(removeStaleNamespaces)
	pid, n := os.Getpid(), tunSeq.Add(1)
	bed := &NATBed{kinds: [2]NATKind{a, b}}
	for h := range natHosts {
		bed.ns[h] = fmt.Sprintf("%s%d-%d-nat%d", tunPrefix, pid, n, h)
	}
	if err := bed.setUp(); err != nil {
		return nil, errors.Join(err, bed.Close())
	}
	return bed, nil
}

// setUp creates the namespaces, links, addresses, routes and NAT rules.
func (bed *NATBed) setUp() error {
	for h := range natHosts {
		if err := ipCmd("netns", "add", bed.ns[h]); err != nil {
			bed.ns[h] = "" // not created, not to be deleted
			return err
		}
	}
	pub := bed.ns[Public]
	for i, peer := range [2]NATHost{PeerA, PeerB} {
		nat := bed.ns[natA+NATHost(i)]
		steps := [][]string{
			// Inside: the peer's eth0 to the NAT's in0.
			{"-n", bed.ns[peer], "link", "add", "eth0", "type", "veth", "peer", "name", "in0", "netns", nat},
			// Outside: the NAT's out0 to the public host's nat<i>.
			{"-n", nat, "link", "add", "out0", "type", "veth", "peer", "name", fmt.Sprintf("nat%d", i), "netns", pub},
			{"-n", bed.ns[peer], "addr", "add", natPeerAddr[i].String() + "/24", "dev", "eth0"},
			{"-n", nat, "addr", "add", natInsideAddr[i].String() + "/24", "dev", "in0"},
			{"-n", nat, "addr", "add", natPublicAddr[i].String() + "/30", "dev", "out0"},
			{"-n", pub, "addr", "add", natGateway[i].String() + "/30", "dev", fmt.Sprintf("nat%d", i)},
		}
		for _, dev := range []struct{ host, name string }{
			{bed.ns[peer], "eth0"}, {bed.ns[peer], "lo"}, {nat, "in0"}, {nat, "out0"}, {nat, "lo"},
			{pub, fmt.Sprintf("nat%d", i)},
		} {
			steps = append(steps, []string{"-n", dev.host, "link", "set", dev.name, "up"})
		}
		steps = append(steps,
			[]string{"-n", bed.ns[peer], "route", "add", "default", "via", natInsideAddr[i].String()},
			[]string{"-n", nat, "route", "add", "default", "via", natGateway[i].String()},
		)
		for _, args := range steps {
			if err := ipCmd(args...); err != nil {
				return err
			}
		}
		if err := bed.forward(nat); err != nil {
			return err
		}
		if err := nftApply(nat, natRules(bed.kinds[i], natPeerAddr[i])); err != nil {
			return err
		}
	}
	if err := ipCmd("-n", pub, "link", "set", "lo", "up"); err != nil {
		return err
	}
	return bed.forward(pub)
}

// forward turns IPv4 forwarding on in namespace ns.
func (bed *NATBed) forward(ns string) error {
	return inNamespace(ns, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)
	})
}

// natRules is the nftables ruleset of a NAT of kind k whose inside host
// is peer.
func natRules(k NATKind, peer netip.Addr) string {
	masq := "masquerade persistent"
	if k == NATSymmetric {
		masq = "masquerade random"
	}
	// Unsolicited packets from outside are dropped before conntrack
	// confirms an entry for them: such an entry would clash with the
	// mapping of the inside host's first packet to that sender, which
	// masquerade would then move to another port (as a real NAT's
	// mapping does not). A full cone lets them in instead: whatever comes
	// to a public port goes to the inside host's same port, which
	// masquerade keeps where it can.
	filter := `iifname "out0" ct state new drop`
	var pre string
	if k == NATFullCone {
		filter = ""
		pre = fmt.Sprintf("iifname \"out0\" meta l4proto udp dnat to %s", peer)
	}
	return fmt.Sprintf(`table ip nat {
	chain unsolicited {
		type filter hook prerouting priority -150; policy accept;
		%s
	}
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		%s
	}
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "out0" %s
	}
}
`, filter, pre, masq)
}

// nftApply loads ruleset into namespace ns.
func nftApply(ns, ruleset string) error {
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netsim: nft in %s: %w: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Kind returns the kind of the NAT in front of peer (PeerA or PeerB).
func (bed *NATBed) Kind(peer NATHost) NATKind { return bed.kinds[peer] }

// Addr returns host's address: a peer's private one, or the public
// host's on the public network.
func (bed *NATBed) Addr(h NATHost) netip.Addr {
	if h == Public {
		return natGateway[0]
	}
	return natPeerAddr[h]
}

// NATAddr returns the public address of the NAT in front of peer.
func (bed *NATBed) NATAddr(peer NATHost) netip.Addr { return natPublicAddr[peer] }

// Do runs fn with its thread in host's namespace: sockets it makes belong
// to that host.
func (bed *NATBed) Do(h NATHost, fn func() error) error { return inNamespace(bed.ns[h], fn) }

// Command returns a command that runs the program name with args on host,
// by way of "ip netns exec".
func (bed *NATBed) Command(h NATHost, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", bed.ns[h], name}, args...)...)
}

// ListenUDP opens a UDP socket on host, on port (0 for any).
func (bed *NATBed) ListenUDP(h NATHost, port int) (*net.UDPConn, error) {
	var uc *net.UDPConn
	err := bed.Do(h, func() (err error) {
		uc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: bed.Addr(h).AsSlice(), Port: port})
		return err
	})
	return uc, err
}

// Close deletes the namespaces; sockets still open in them keep theirs
// alive, unnamed, until they close. Later calls return the first result.
func (bed *NATBed) Close() error {
	bed.closeOnce.Do(func() {
		var errs []error
		for _, ns := range bed.ns {
			if ns != "" {
				if err := ipCmd("netns", "del", ns); err != nil {
					errs = append(errs, err)
				}
			}
		}
		bed.closeErr = errors.Join(errs...)
	})
	return bed.closeErr
}
