package udt

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/netsim"
)

// goodputLink is one emulated path of the goodput table.
type goodputLink struct {
	name string
	rate int64
	rtt  time.Duration
	loss float64
}

func (g goodputLink) configs() (netsim.LinkConfig, netsim.LinkConfig) {
	fwd := netsim.LinkConfig{Rate: g.rate, Delay: g.rtt / 2, Loss: g.loss}
	back := netsim.LinkConfig{Rate: g.rate, Delay: g.rtt / 2}
	return fwd, back
}

// simGoodput streams for d of virtual time over the link and returns the
// receiver's goodput as a fraction of the link rate, measured over the
// second half (after start-up).
func simGoodput(t *testing.T, g goodputLink, cc CongestionControl, d time.Duration) float64 {
	var frac float64
	synctest.Test(t, func(t *testing.T) {
		fwd, back := g.configs()
		c, s, _, _ := simPair(t, fwd, back, Config{Congestion: cc, Linger: -1}, 7)
		var got atomic.Int64
		go func() {
			buf := make([]byte, 1<<20)
			for {
				n, err := s.Read(buf)
				got.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
		go func() {
			block := make([]byte, 1<<20)
			for {
				if _, err := c.Write(block); err != nil {
					return
				}
			}
		}()
		time.Sleep(d / 2)
		mid := got.Load()
		time.Sleep(d / 2)
		frac = float64(got.Load()-mid) * 8 / (d / 2).Seconds() / float64(g.rate)
		_ = c.Close()
		_ = s.Close()
	})
	return frac
}

// TestGoodputTable measures both controllers' goodput on emulated long,
// fat, lossy links in virtual time (deterministic per seed, free of the
// machine's load). It runs when UDT_GOODPUT=1; it prints the table and
// checks the loss-tolerant controller's targets.
func TestGoodputTable(t *testing.T) {
	if os.Getenv("UDT_GOODPUT") == "" {
		t.Skip("set UDT_GOODPUT=1 to measure the goodput table (about a minute)")
	}
	links := []goodputLink{}
	for _, rtt := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond} {
		for _, loss := range []float64{0, 0.001, 0.01} {
			links = append(links, goodputLink{name: fmt.Sprintf("100Mbit %v %.1f%%", rtt, loss*100), rate: 100e6, rtt: rtt, loss: loss})
		}
	}
	links = append(links,
		goodputLink{name: "20Mbit 300ms 0.5%", rate: 20e6, rtt: 300 * time.Millisecond, loss: 0.005},
		goodputLink{name: "100Mbit 20ms 10%", rate: 100e6, rtt: 20 * time.Millisecond, loss: 0.10},
	)
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s %8s %8s\n", "link", "DAIMD", "model")
	for _, g := range links {
		d := 40 * time.Second
		daimd := simGoodput(t, g, CongestionDAIMD, d)
		model := simGoodput(t, g, CongestionModel, d)
		fmt.Fprintf(&b, "%-22s %7.1f%% %7.1f%%\n", g.name, daimd*100, model*100)
	}
	t.Log("goodput as a share of the link rate, second half of 40 s:\n" + b.String())
}

// twoFlows runs two connections of the given controller across one
// emulated bottleneck for d of virtual time and returns each one's goodput
// over the second half, in Mbit/s.
func twoFlows(t *testing.T, cc CongestionControl, rate int64, rtt time.Duration, d time.Duration) (a, b float64) {
	synctest.Test(t, func(t *testing.T) {
		fwd := netsim.LinkConfig{Rate: rate, Delay: rtt / 2}
		back := netsim.LinkConfig{Rate: rate, Delay: rtt / 2}
		c1, s1, _, _ := simPair(t, fwd, back, Config{Congestion: cc, Linger: -1}, 9)
		// A second connection over the same pipe: the same bottleneck.
		cfg, _ := Config{Congestion: cc, Linger: -1}.withDefaults()
		registry.mu.Lock()
		c1.m.refs++ // the reference dialOn takes over
		registry.mu.Unlock()
		c2, err := dialOn(t.Context(), c1.m, cfg, s1.m.laddr)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := s1.ln.AcceptUDT()
		if err != nil {
			t.Fatal(err)
		}
		var got [2]atomic.Int64
		for i, p := range [][2]*Conn{{c1, s1}, {c2, s2}} {
			go func() {
				buf := make([]byte, 1<<20)
				for {
					n, err := p[1].Read(buf)
					got[i].Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
			go func() {
				block := make([]byte, 1<<20)
				for {
					if _, err := p[0].Write(block); err != nil {
						return
					}
				}
			}()
		}
		time.Sleep(d / 2)
		m0, m1 := got[0].Load(), got[1].Load()
		time.Sleep(d / 2)
		secs := (d / 2).Seconds()
		a = float64(got[0].Load()-m0) * 8 / 1e6 / secs
		b = float64(got[1].Load()-m1) * 8 / 1e6 / secs
		for _, c := range []*Conn{c1, s1, c2, s2} {
			_ = c.Close()
		}
	})
	return a, b
}

// TestTwoModelFlowsShare checks the loss-tolerant controller is fair to
// itself: two flows through one bottleneck get within 20% of each other
// and together keep most of it busy.
func TestTwoModelFlowsShare(t *testing.T) {
	a, b := twoFlows(t, CongestionModel, 100e6, 20*time.Millisecond, 40*time.Second)
	t.Logf("two model flows on 100 Mbit/s, 20 ms: %.1f and %.1f Mbit/s", a, b)
	require.InDelta(t, 1, a/b, 0.2, "flows %.1f and %.1f Mbit/s", a, b)
	require.Greater(t, a+b, 70.0)
}
