package netsim

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TunMTU is the MTU of a [TunPath]'s devices, the largest IP packet that
// crosses its links.
const TunMTU = 1500

// tunName is the name of the TUN device in each namespace.
const tunName = "udtsim0"

// tunNetnsDir is where ip netns keeps its named namespaces.
const tunNetnsDir = "/var/run/netns"

// tunPrefix starts the name of every namespace a TunPath creates; the rest
// is "<pid>-<n>-a" or "-b".
const tunPrefix = "udtsim-"

var (
	tunSeq   atomic.Uint64 // paths created by this process
	tunStale sync.Once     // namespaces left by dead processes removed
)

// TunPath is two network namespaces joined by an emulated path. Each
// namespace, A (side 0) and B (side 1), holds a TUN device with one
// address; the route to the other side's address goes through it. This
// process reads the IP packets A sends from A's device, passes them
// through a [Link] and writes what comes out into B's device, and the same
// way back. Any IP traffic crosses it, so the kernel's TCP and a UDT flow
// can share one emulated bottleneck.
//
// The links see whole IP packets of at most [TunMTU] bytes: a
// [LinkConfig].Rate counts bits per second of IP headers and payload,
// QueueBytes and the [LinkStats] byte counts count IP packet bytes. The
// devices have no offloads, so the kernel segments TCP to the MTU and
// computes checksums before a packet reaches the link, and checks them
// after: a packet changed by Corrupt is dropped by the receiving kernel
// even without ChecksumCovered (the link still counts it as delivered).
//
// Building one needs Linux, CAP_NET_ADMIN and CAP_SYS_ADMIN (root),
// /dev/net/tun and the ip command; see [TunAvailable]. Sockets are created
// inside a namespace with [TunPath.Do], programs run in one with
// [TunPath.Command]. A TunPath is safe for concurrent use.
type TunPath struct {
	ns    [2]string                       // namespace names; "" once not to be deleted
	files [2]*os.File                     // TUN devices, in A and in B
	addrs [2]netip.Addr                   // device addresses
	dirs  [2]*outlet                      // dirs[0] carries A→B into B's device, dirs[1] B→A
	taps  [2]atomic.Pointer[func([]byte)] // Observe's functions, by direction

	errMu sync.Mutex
	err   error // guarded by errMu; first device failure

	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// TunAvailable reports why this process cannot build a [TunPath], or
// returns nil if it can: it needs CAP_NET_ADMIN and CAP_SYS_ADMIN (as
// root has), /dev/net/tun and the ip command of iproute2 on the PATH.
func TunAvailable() error {
	const capNetAdmin, capSysAdmin = 12, 21
	caps, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("netsim: TUN paths need CAP_NET_ADMIN and CAP_SYS_ADMIN: %w", err)
	}
	if caps&(1<<capNetAdmin) == 0 || caps&(1<<capSysAdmin) == 0 {
		return errors.New("netsim: TUN paths need CAP_NET_ADMIN and CAP_SYS_ADMIN (run as root)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("netsim: TUN paths need /dev/net/tun: %w", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("netsim: TUN paths need the ip command (iproute2): %w", err)
	}
	return nil
}

// effectiveCaps returns the effective capability set of this process.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no CapEff in /proc/self/status")
}

// NewTunPath creates two network namespaces, A and B, each with a TUN
// device, and starts carrying packets between them: A→B through a link
// configured by aToB, B→A through one configured by bToA, drawing from
// generators seeded with seed and seed+1.
//
// The namespaces are named "udtsim-<pid>-<n>-a" and "-b" (see
// [TunPath.Namespace]), so ip netns and other processes can find them. The
// devices get addresses 10.201.x.y/32 (see [TunPath.Addr]) chosen from the
// process ID and n so that paths rarely share addresses, which keeps
// packet traces apart; the namespaces isolate paths anyway. Each namespace
// also has its loopback up, and IPv6 off on its device, so the links carry
// only traffic the caller makes. Namespaces left by processes that ended
// without closing their paths are removed on the first call.
//
// The caller must Close the path to delete the namespaces.
func NewTunPath(aToB, bToA LinkConfig, seed uint64) (*TunPath, error) {
	if err := TunAvailable(); err != nil {
		return nil, err
	}
	tunStale.Do(removeStaleNamespaces)
	pid := os.Getpid()
	n := tunSeq.Add(1)
	p := &TunPath{
		ns: [2]string{
			fmt.Sprintf("%s%d-%d-a", tunPrefix, pid, n),
			fmt.Sprintf("%s%d-%d-b", tunPrefix, pid, n),
		},
		addrs:  tunAddrs(uint64(pid), n),
		closed: make(chan struct{}),
	}
	if err := p.setUp(); err != nil {
		for _, f := range p.files {
			if f != nil {
				f.Close()
			}
		}
		_ = p.removeNamespaces()
		return nil, err
	}
	for i, cfg := range [2]LinkConfig{aToB, bToA} {
		out := p.files[1-i]
		p.dirs[i] = &outlet{link: New(cfg, seed+uint64(i)), wake: make(chan struct{}, 1), write: func(pk *packet) error {
			_, err := out.Write(pk.b)
			if fn := p.taps[i].Load(); err == nil && fn != nil {
				(*fn)(pk.b)
			}
			return err
		}}
	}
	for i := range 2 {
		p.wg.Go(func() { p.read(p.files[i], p.dirs[i]) })
		p.wg.Go(func() { p.dirs[i].run(p.closed) })
	}
	return p, nil
}

// setUp creates the path's two namespaces, each with a TUN device
// addressed to the other's. On failure the caller closes what p.files
// holds and removes the namespaces p.ns names.
func (p *TunPath) setUp() error {
	for i, ns := range p.ns {
		if err := ipCmd("netns", "add", ns); err != nil {
			p.ns[i] = "" // not created, not to be deleted
			if i == 0 {
				p.ns[1] = ""
			}
			return err
		}
	}
	for i, ns := range p.ns {
		f, err := openTun(ns)
		if err != nil {
			return err
		}
		p.files[i] = f
		local, peer := p.addrs[i].String(), p.addrs[1-i].String()
		for _, args := range [][]string{
			{"-n", ns, "addr", "add", local + "/32", "peer", peer + "/32", "dev", tunName},
			{"-n", ns, "link", "set", tunName, "mtu", strconv.Itoa(TunMTU), "txqueuelen", "10000", "up"},
			{"-n", ns, "link", "set", "lo", "up"},
		} {
			if err := ipCmd(args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// tunAddrs returns the addresses of path n of process pid: the first two
// of a /30 in 10.201.0.0/16.
func tunAddrs(pid, n uint64) [2]netip.Addr {
	i := (pid<<6 + n) % (1 << 14)
	a := [4]byte{10, 201, byte(i >> 6), byte(i&63)<<2 | 1}
	b := a
	b[3]++
	return [2]netip.Addr{netip.AddrFrom4(a), netip.AddrFrom4(b)}
}

// Addr returns the address of side 0 (A) or 1 (B). Each side reaches the
// other at the other's address, through the path.
func (p *TunPath) Addr(side int) netip.Addr { return p.addrs[side] }

// Namespace returns the name of the network namespace of side 0 (A) or
// 1 (B), as ip netns lists it.
func (p *TunPath) Namespace(side int) string { return p.ns[side] }

// Links returns the links A→B and B→A, to reconfigure one direction or read
// its counters.
func (p *TunPath) Links() (aToB, bToA *Link) { return p.dirs[0].link, p.dirs[1].link }

// SetConfig reconfigures both directions; see [Link.SetConfig].
func (p *TunPath) SetConfig(aToB, bToA LinkConfig) {
	p.dirs[0].link.SetConfig(aToB)
	p.dirs[1].link.SetConfig(bToA)
	p.dirs[0].poke()
	p.dirs[1].poke()
}

// Observe makes the path call fn with each IP packet it delivers in
// direction dir, 0 for A→B or 1 for B→A, once the packet is written into
// the receiving side's device; a nil fn stops the calls. fn runs on the
// path's goroutine for that direction, one call at a time: it must not
// block, and must not keep pkt after it returns.
func (p *TunPath) Observe(dir int, fn func(pkt []byte)) {
	if fn == nil {
		p.taps[dir].Store(nil)
		return
	}
	p.taps[dir].Store(&fn)
}

// Stats returns the counters of both directions.
func (p *TunPath) Stats() (aToB, bToA LinkStats) {
	return p.dirs[0].link.Stats(), p.dirs[1].link.Stats()
}

// Do calls fn on a goroutine locked to an OS thread that is switched into
// the network namespace of side 0 (A) or 1 (B), waits for it and returns
// its error. Sockets fn creates (with [net.Listen], [net.Dial],
// [net.ListenUDP] and so on) stay in that namespace for their lifetime and
// may be used from any goroutine afterwards. Goroutines fn starts run in
// the process's own namespace, and fn must not unlock its thread; since it
// runs on its own goroutine, it should return an error rather than call
// [testing.T.FailNow]. Do fails if the path is closed.
func (p *TunPath) Do(side int, fn func() error) error {
	select {
	case <-p.closed:
		return fmt.Errorf("netsim: namespace %s: %w", p.ns[side], net.ErrClosed)
	default:
	}
	return inNamespace(p.ns[side], fn)
}

// Command returns a command that runs the program name with args inside
// the network namespace of side 0 (A) or 1 (B), by way of
// "ip netns exec". ip replaces itself with the program, so the command's
// process is the program's. A program still running when the path closes
// is left in a namespace cut off from the path.
func (p *TunPath) Command(side int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", p.ns[side], name}, args...)...)
}

// Close stops carrying packets, closes the devices, discards the packets in
// flight and deletes the namespaces; a namespace lives on, unnamed, until
// the last socket in it is closed. It returns an error if a device failed
// while the path was open or a namespace could not be deleted. Later calls
// return the first result.
func (p *TunPath) Close() error {
	p.closeOnce.Do(func() {
		close(p.closed)
		for _, f := range p.files {
			f.Close()
		}
		p.wg.Wait()
		for _, d := range p.dirs {
			d.link.drain()
		}
		p.errMu.Lock()
		err := p.err
		p.errMu.Unlock()
		p.closeErr = errors.Join(err, p.removeNamespaces())
	})
	return p.closeErr
}

func (p *TunPath) removeNamespaces() error {
	var errs []error
	for _, ns := range p.ns {
		if ns != "" {
			errs = append(errs, ipCmd("netns", "del", ns))
		}
	}
	return errors.Join(errs...)
}

// read offers each packet from device f to d's link until f is closed or
// fails.
func (p *TunPath) read(f *os.File, d *outlet) {
	buf := make([]byte, 1<<16)
	for {
		n, err := f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				p.fail(fmt.Errorf("netsim: read %s: %w", tunName, err))
			}
			return
		}
		if d.link.send(time.Now(), buf[:n], dest{}) {
			d.poke()
		}
	}
}

// fail records the first failure of a device.
func (p *TunPath) fail(err error) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// ipCmd runs the ip command with args.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netsim: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// removeStaleNamespaces deletes the namespaces of paths whose process has
// ended without closing them.
func removeStaleNamespaces() {
	ents, err := os.ReadDir(tunNetnsDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), tunPrefix)
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = ipCmd("netns", "del", e.Name())
		}
	}
}

// inNamespace runs fn on a new goroutine locked to its thread, with the
// thread switched into namespace ns. If the thread cannot be switched back,
// it stays locked, and Go ends it with the goroutine rather than reuse it.
func inNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := switchAndRun(ns, fn)
		if back {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// switchAndRun switches the calling thread into namespace ns, calls fn and
// switches back. It reports whether the thread is back in its namespace,
// and fn's error or why it was not called.
func switchAndRun(ns string, fn func() error) (back bool, err error) {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return true, fmt.Errorf("netsim: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(tunNetnsDir + "/" + ns)
	if err != nil {
		return true, fmt.Errorf("netsim: namespace %s: %w", ns, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("netsim: enter namespace %s: %w", ns, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		return false, errors.Join(ferr, fmt.Errorf("netsim: leave namespace %s: %w", ns, err))
	}
	return true, ferr
}

// openTun creates the TUN device in namespace ns, turns IPv6 off on it and
// returns it, non-blocking, so reads and writes go through Go's poller: one
// IP packet per call.
func openTun(ns string) (*os.File, error) {
	var f *os.File
	err := inNamespace(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("netsim: open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(tunName)
		if err == nil {
			ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		}
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("netsim: create TUN device in %s: %w", ns, err)
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return fmt.Errorf("netsim: %w", err)
		}
		// Without IPv6 the device sends nothing of its own (no router
		// solicitations or MLD reports). A kernel without IPv6 has no
		// such file, and nothing to turn off.
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+tunName+"/disable_ipv6", []byte("1"), 0)
		f = os.NewFile(uintptr(fd), "/dev/net/tun")
		return nil
	})
	return f, err
}

// SetTCPCongestion selects the kernel's congestion control for the TCP
// socket c, such as "cubic" or "bbr" (the TCP_CONGESTION socket option). c
// is usually a [*net.TCPConn]; on a [*net.TCPListener] it sets the
// algorithm of the connections accepted later. The algorithm must be
// available (net.ipv4.tcp_available_congestion_control); without
// CAP_NET_ADMIN it must also be allowed.
func SetTCPCongestion(c syscall.Conn, name string) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netsim: TCP congestion control %q: %w", name, err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, name)
	}); err != nil {
		return fmt.Errorf("netsim: TCP congestion control %q: %w", name, err)
	}
	if serr != nil {
		return fmt.Errorf("netsim: TCP congestion control %q: %w", name, serr)
	}
	return nil
}

// ForceSocketBuffers sets the kernel send and receive buffers of socket c
// to bytes each, beyond the net.core.wmem_max and rmem_max limits
// (SO_SNDBUFFORCE and SO_RCVBUFFORCE, which need CAP_NET_ADMIN): a TCP
// flow across a long, fast path needs more than a namespace's default
// tcp_wmem allows. Like SO_SNDBUF, it turns off the kernel's buffer
// autotuning for c. On a [*net.TCPListener] it sets the buffers of the
// connections accepted later.
func ForceSocketBuffers(c syscall.Conn, bytes int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netsim: socket buffers: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, bytes),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bytes))
	}); err != nil {
		return fmt.Errorf("netsim: socket buffers: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("netsim: socket buffers of %d bytes: %w", bytes, serr)
	}
	return nil
}
