package netsim

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// tcpCalEnv turns on TestKernelTCPCalibration; tcpCalRoundsEnv sets its
// number of rounds (default 3).
const (
	tcpCalEnv       = "UDT_TCPCAL"
	tcpCalRoundsEnv = "UDT_TCPCAL_ROUNDS"
)

// tcpCalBuffers is the kernel buffer size, each way, of the calibration's
// TCP sockets: well above the path's bandwidth-delay product with the
// queue full (2.5 MB), so that neither end's buffer limits the flow, as
// the simulated flow's receive window never does.
const tcpCalBuffers = 16 << 20

// kernelFlows starts a bulk TCP flow from A to B of p for each of the
// kernel's congestion controls in ccs, all connected before any sends,
// then sends on all of them at once for d. It returns, for each flow, the
// bytes its receiver had read at the end of each whole second, and logs
// each sender's window and round trip at the end of each second.
func kernelFlows(t *testing.T, p *TunPath, d time.Duration, ccs ...string) [][]int64 {
	t.Helper()
	n := len(ccs)
	var ln *net.TCPListener
	require.NoError(t, p.Do(1, func() (err error) {
		ln, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(p.Addr(1), 0)))
		if err != nil {
			return err
		}
		// Before the clients connect, so that the window scale fits.
		return ForceSocketBuffers(ln, tcpCalBuffers)
	}))
	defer ln.Close()
	snd := make([]*net.TCPConn, n)
	rcv := make([]*net.TCPConn, n)
	for i := range n {
		require.NoError(t, p.Do(0, func() error {
			d := net.Dialer{Timeout: 5 * time.Second}
			nc, err := d.Dial("tcp4", ln.Addr().String())
			if err != nil {
				return err
			}
			snd[i] = nc.(*net.TCPConn)
			t.Cleanup(func() { snd[i].Close() })
			if err := SetTCPCongestion(snd[i], ccs[i]); err != nil {
				return err
			}
			return ForceSocketBuffers(snd[i], tcpCalBuffers)
		}))
		require.NoError(t, ln.SetDeadline(time.Now().Add(5*time.Second)))
		s, err := ln.AcceptTCP()
		require.NoError(t, err)
		rcv[i] = s
		t.Cleanup(func() { s.Close() })
	}

	read := make([]atomic.Int64, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			buf := make([]byte, 1<<20)
			for {
				k, err := rcv[i].Read(buf)
				read[i].Add(int64(k))
				if err != nil {
					return
				}
			}
		})
		wg.Go(func() {
			block := make([]byte, 1<<20)
			<-start
			for {
				if _, err := snd[i].Write(block); err != nil {
					return
				}
			}
		})
	}
	close(start)
	t0 := time.Now()
	got := make([][]int64, n)
	trace := make([]strings.Builder, n)
	for s := 1; s <= int(d/time.Second); s++ {
		time.Sleep(time.Until(t0.Add(time.Duration(s) * time.Second)))
		for i := range n {
			got[i] = append(got[i], read[i].Load())
			cwnd, rtt := tcpWindow(snd[i])
			fmt.Fprintf(&trace[i], " %d/%d", cwnd, rtt.Milliseconds())
		}
	}
	for i := range n {
		t.Logf("kernel flow %d (%s): %s; cwnd/ms of RTT each second:%s", i, ccs[i], tcpInfo(snd[i]), trace[i].String())
		// Reset rather than drain megabytes into a closing path.
		_ = snd[i].SetLinger(0)
		snd[i].Close()
		_ = rcv[i].SetLinger(0)
		rcv[i].Close()
	}
	wg.Wait()
	return got
}

// TestKernelTCPCalibration measures the kernel's TCP cubic on the
// calibration link (tcpCalLink, both ways, across a [TunPath]): one flow
// alone, then two flows started together, 30 s each, over
// UDT_TCPCAL_ROUNDS rounds (default 3). It is the reproduction of the
// kernel figures in TestTCPCalibration's doc comment, and runs only with
// UDT_TCPCAL=1 (and root):
//
//	UDT_TCPCAL=1 go test -run TestKernelTCPCalibration -v -timeout 30m ./internal/netsim/
func TestKernelTCPCalibration(t *testing.T) {
	kernelCalibrate(t, "cubic", "cubic", calFiguresOf)
}

// kernelCalRun runs kernelFlows for ccs, 30 s across a new calibration
// path seeded for round r, logs what each flow got, the path's counters
// and the machine's load, and returns the bytes read each second.
func kernelCalRun(t *testing.T, r int, ccs ...string) [][]int64 {
	t.Helper()
	p, err := NewTunPath(tcpCalLink, tcpCalLink, uint64(r+1))
	require.NoError(t, err)
	load0 := loadAvg()
	got := kernelFlows(t, p, tcpCalDuration, ccs...)
	st, back := p.Stats()
	require.NoError(t, p.Close())
	t.Logf("round %d, %s: %v; A→B %d lost at the queue of %d sent, B→A %d; load average %s before, %s after",
		r+1, strings.Join(ccs, " beside "), calFlowsOf(got), st.QueueDrops, st.Sent, back.Sent, load0, loadAvg())
	for i, g := range got {
		t.Logf("flow %d (%s), Mbit/s each second: %s", i, ccs[i], calSeconds(g))
	}
	return got
}

// kernelCalRounds skips the test unless UDT_TCPCAL is set, and returns
// the number of rounds to run.
func kernelCalRounds(t *testing.T, what string) int {
	t.Helper()
	if os.Getenv(tcpCalEnv) == "" {
		t.Skipf("set %s=1 to measure the kernel's TCP %s (about 3 minutes)", tcpCalEnv, what)
	}
	requireTun(t)
	rounds := 3
	if s := os.Getenv(tcpCalRoundsEnv); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, tcpCalRoundsEnv)
		require.Positive(t, n, tcpCalRoundsEnv)
		rounds = n
	}
	return rounds
}

// TestKernelBBRCalibration measures the kernel's TCP BBR on the
// calibration link as TestKernelTCPCalibration does cubic: one BBR flow
// alone, then a cubic flow and a BBR flow started together, 30 s each, over
// UDT_TCPCAL_ROUNDS rounds (default 3). It is the reproduction of the
// kernel figures in TestTCPBBRCalibration's doc comment, and runs only with
// UDT_TCPCAL=1 (and root):
//
//	UDT_TCPCAL=1 go test -run TestKernelBBRCalibration -v -timeout 30m ./internal/netsim/
func TestKernelBBRCalibration(t *testing.T) {
	kernelCalibrate(t, "BBR", "bbr", calFlowsOf)
}

// kernelCalibrate runs kernelCalRun for cc alone and for cubic, then cc,
// together, in each round, and logs the medians of the figures figures
// takes from them (calFiguresOf sorts the flows, calFlowsOf keeps their
// order).
func kernelCalibrate(t *testing.T, name, cc string, figures func([][]int64) calFigures) {
	rounds := kernelCalRounds(t, name)
	var alone, pair []calFigures
	for r := range rounds {
		alone = append(alone, figures(kernelCalRun(t, r, cc)))
		pair = append(pair, figures(kernelCalRun(t, r, "cubic", cc)))
	}
	t.Logf("%s alone, medians: %v", cc, calMedian(alone))
	t.Logf("cubic, then %s, medians: %v", cc, calMedian(pair))
}

// tcpWindow returns the kernel's congestion window and smoothed round trip
// of connection c, or zeros.
func tcpWindow(c *net.TCPConn) (cwnd uint32, rtt time.Duration) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0
	}
	var ti *unix.TCPInfo
	_ = rc.Control(func(fd uintptr) {
		ti, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if err != nil || ti == nil {
		return 0, 0
	}
	return ti.Snd_cwnd, time.Duration(ti.Rtt) * time.Microsecond
}

// loadAvg returns the machine's load averages over 1, 5 and 15 minutes:
// the TUN path forwards in this process, and a loaded machine delays its
// packets beyond the link model's delay (the kernel then reports a round
// trip well above the path's 200 ms with its queue full).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
