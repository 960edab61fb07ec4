package netsim

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TunPath is two network namespaces joined by an emulated path. Each holds
// a TUN device; this process reads the IP packets one namespace sends to
// the other from its device, passes them through a [Link] and writes what
// comes out into the other's device. Any IP traffic crosses it, so the
// kernel's TCP and a UDT flow can share one emulated bottleneck; a Link's
// Rate then counts whole IP packets.
//
// Building one needs root (CAP_NET_ADMIN), /dev/net/tun and the ip command
// (see [TunAvailable]). Sockets are created inside a namespace with
// [TunPath.Do]; programs run in one with [TunPath.Command].
type TunPath struct {
	ns    [2]string
	files [2]*os.File
	addrs [2]netip.Addr
	dirs  [2]*tunDir // dirs[0] carries A→B

	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// tunDir is one direction of a TunPath.
type tunDir struct {
	link *Link
	wake chan struct{}
	out  *os.File
}

const tunName = "udtsim0"

var tunSeq atomic.Uint64

// TunAvailable reports why a [TunPath] cannot be built here, or nil.
func TunAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("netsim: TUN paths need root (CAP_NET_ADMIN)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("netsim: TUN paths need /dev/net/tun: %w", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("netsim: TUN paths need the ip command (iproute2): %w", err)
	}
	return nil
}

// NewTunPath creates namespaces A and B, with addresses 10.99.0.1 and
// 10.99.0.2 on their TUN devices, and starts carrying packets: A→B through
// a link configured by aToB, B→A through one configured by bToA, seeded
// with seed and seed+1. Close removes the namespaces.
func NewTunPath(aToB, bToA LinkConfig, seed uint64) (*TunPath, error) {
	if err := TunAvailable(); err != nil {
		return nil, err
	}
	n := tunSeq.Add(1)
	p := &TunPath{
		ns: [2]string{
			fmt.Sprintf("udtsim-%d-%d-a", os.Getpid(), n),
			fmt.Sprintf("udtsim-%d-%d-b", os.Getpid(), n),
		},
		addrs:  [2]netip.Addr{netip.AddrFrom4([4]byte{10, 99, 0, 1}), netip.AddrFrom4([4]byte{10, 99, 0, 2})},
		closed: make(chan struct{}),
	}
	fail := func(err error) (*TunPath, error) {
		p.removeNamespaces()
		for _, f := range p.files {
			if f != nil {
				f.Close()
			}
		}
		return nil, err
	}
	for i, ns := range p.ns {
		if err := run("ip", "netns", "add", ns); err != nil {
			p.ns[i] = "" // not created: not to be deleted
			return fail(err)
		}
	}
	for i, ns := range p.ns {
		f, err := openTun(ns)
		if err != nil {
			return fail(err)
		}
		p.files[i] = f
		local, peer := p.addrs[i], p.addrs[1-i]
		for _, args := range [][]string{
			{"-n", ns, "addr", "add", local.String() + "/32", "peer", peer.String() + "/32", "dev", tunName},
			{"-n", ns, "link", "set", tunName, "mtu", "1500", "txqueuelen", "10000", "up"},
			{"-n", ns, "link", "set", "lo", "up"},
		} {
			if err := run("ip", args...); err != nil {
				return fail(err)
			}
		}
	}
	p.dirs[0] = &tunDir{link: New(aToB, seed), wake: make(chan struct{}, 1), out: p.files[1]}
	p.dirs[1] = &tunDir{link: New(bToA, seed+1), wake: make(chan struct{}, 1), out: p.files[0]}
	for i := range 2 {
		p.wg.Go(func() { p.read(p.files[i], p.dirs[i]) })
		p.wg.Go(func() { p.write(p.dirs[i]) })
	}
	return p, nil
}

// Addr returns the address of side 0 (A) or 1 (B).
func (p *TunPath) Addr(side int) netip.Addr { return p.addrs[side] }

// Namespace returns the name of side 0's (A) or 1's (B) network namespace.
func (p *TunPath) Namespace(side int) string { return p.ns[side] }

// Links returns the links A→B and B→A, to reconfigure or read counters.
func (p *TunPath) Links() (aToB, bToA *Link) { return p.dirs[0].link, p.dirs[1].link }

// Stats returns the counters of both directions.
func (p *TunPath) Stats() (aToB, bToA LinkStats) {
	return p.dirs[0].link.Stats(), p.dirs[1].link.Stats()
}

// Do runs fn on a thread switched into side's namespace and returns its
// error. Sockets fn creates belong to that namespace for their lifetime.
func (p *TunPath) Do(side int, fn func() error) error {
	return inNamespace(p.ns[side], fn)
}

// Command returns a command that runs name inside side's namespace.
func (p *TunPath) Command(side int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", p.ns[side], name}, args...)...)
}

// Close stops carrying packets, closes the devices and deletes the
// namespaces. Later calls return the first result.
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
		p.closeErr = p.removeNamespaces()
	})
	return p.closeErr
}

func (p *TunPath) removeNamespaces() error {
	var errs []error
	for _, ns := range p.ns {
		if ns != "" {
			errs = append(errs, run("ip", "netns", "del", ns))
		}
	}
	return errors.Join(errs...)
}

// read offers each packet side's device gives to d's link.
func (p *TunPath) read(f *os.File, d *tunDir) {
	buf := make([]byte, 1<<16)
	for {
		n, err := f.Read(buf)
		if err != nil {
			select {
			case <-p.closed:
				return
			default:
			}
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		if d.link.send(time.Now(), buf[:n], nil) {
			select {
			case d.wake <- struct{}{}:
			default:
			}
		}
	}
}

// write writes d's packets into the far device as they fall due.
func (p *TunPath) write(d *tunDir) {
	clk := newReleaseClock()
	defer clk.stop()
	for {
		now := time.Now()
		for {
			pk := d.link.pop(now)
			if pk == nil {
				break
			}
			if _, err := d.out.Write(pk.b); err != nil {
				d.link.stats.overflow.Add(1)
			} else {
				d.link.delivered(len(pk.b))
			}
			putPacket(pk)
		}
		next, _ := d.link.Next()
		if !clk.wait(next, d.wake, p.closed) {
			return
		}
	}
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netsim: %s %v: %v: %s", name, args, err, out)
	}
	return nil
}

// inNamespace runs fn on a dedicated thread switched into namespace ns. If
// the thread cannot be switched back, it is left locked, and Go ends it
// with its goroutine rather than reuse it.
func inNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netsim: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netsim: namespace %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netsim: enter namespace %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := setns(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("netsim: leave namespace %s: %w", ns, err))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}

// openTun creates the TUN device in namespace ns and returns it,
// non-blocking, for Go's poller.
func openTun(ns string) (*os.File, error) {
	var f *os.File
	err := inNamespace(ns, func() error {
		fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("netsim: open /dev/net/tun: %w", err)
		}
		var ifr struct {
			name  [16]byte
			flags uint16
			_     [22]byte
		}
		copy(ifr.name[:], tunName)
		const iffTun, iffNoPI, tunSetIff = 0x0001, 0x1000, 0x400454ca
		ifr.flags = iffTun | iffNoPI
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
			syscall.Close(fd)
			return fmt.Errorf("netsim: TUNSETIFF: %w", errno)
		}
		if err := syscall.SetNonblock(fd, true); err != nil {
			syscall.Close(fd)
			return fmt.Errorf("netsim: %w", err)
		}
		f = os.NewFile(uintptr(fd), "/dev/net/tun")
		return nil
	})
	return f, err
}

// SetTCPCongestion selects the kernel's congestion control for c, such as
// "cubic" or "bbr" (TCP_CONGESTION).
func SetTCPCongestion(c interface {
	SyscallConn() (syscall.RawConn, error)
}, name string) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptString(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CONGESTION, name)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("netsim: TCP congestion control %q: %w", name, serr)
	}
	return nil
}
