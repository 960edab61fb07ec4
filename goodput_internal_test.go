package udt

import (
	"fmt"
	"slices"
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

// bulk starts a bulk transfer from c to s until either fails: a writer
// of 1 MiB blocks and a reader that adds what it reads to got.
func bulk(c, s *Conn, got *atomic.Int64) {
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
		bulk(c, s, &got)
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
// fat, lossy links in virtual time (free of the machine's load; runs vary
// with the goroutines' order), prints the table, and checks the
// loss-tolerant controller's targets: 90 % of the link or more up to 1 %
// random loss on 10 and 100 ms paths, up to 0.1 % on 300 ms, and at 0.5 %
// on 20 Mbit/s, 300 ms; 65 % at 10 % loss on 20 ms (76-83 % measured) and
// 50 % at 1 % on 300 ms (46-91 % in single runs); and, from 0.1 % loss on, at
// least twice what DAIMD gets (the C++ library's controller, which takes
// random loss for congestion). On a lossy link the model's figure is the
// median of three runs: single runs of one code varied from 46 % to 90 %
// at 1 % on 300 ms (sixteen runs) and once gave 85 % where 90 % is asked,
// and a single run a row failed about one CI run in ten. It takes about
// 60 s without -race and is skipped under it; CI runs it in its pass
// without.
func TestGoodputTable(t *testing.T) {
	if raceEnabled {
		t.Skip("38 runs of 40 s of simulation, many times slower under -race; CI runs it without")
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
	type row struct {
		g            goodputLink
		daimd, model float64
	}
	var rows []row
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s %8s %8s\n", "link", "DAIMD", "model")
	for _, g := range links {
		d := 40 * time.Second
		model := simGoodput(t, g, CongestionModel, d)
		if g.loss > 0 {
			// The median of three: see the test's comment.
			runs := []float64{model, simGoodput(t, g, CongestionModel, d), simGoodput(t, g, CongestionModel, d)}
			slices.Sort(runs)
			model = runs[1]
		}
		r := row{g, simGoodput(t, g, CongestionDAIMD, d), model}
		rows = append(rows, r)
		fmt.Fprintf(&b, "%-22s %7.1f%% %7.1f%%\n", g.name, r.daimd*100, r.model*100)
	}
	t.Log("goodput as a share of the link rate, second half of 40 s:\n" + b.String())
	for _, r := range rows {
		want := 0.90
		switch {
		case r.g.loss >= 0.1:
			want = 0.65
		case r.g.loss >= 0.01 && r.g.rtt >= 300*time.Millisecond:
			want = 0.50
		}
		require.GreaterOrEqual(t, r.model, want, "model on %s", r.g.name)
		if r.g.loss >= 0.001 {
			require.GreaterOrEqual(t, r.model, 2*r.daimd, "model over DAIMD on %s", r.g.name)
		}
	}
}

// flowsShare runs n connections of the given controller across one
// emulated bottleneck for d of virtual time and returns each one's goodput
// over the second half, in Mbit/s.
func flowsShare(t *testing.T, cc CongestionControl, n int, rate int64, rtt time.Duration, d time.Duration) []float64 {
	got, _ := flowsShareOn(t, cc, n, netsim.LinkConfig{Rate: rate, Delay: rtt / 2}, d, d/2, 0)
	return got
}

// flowsShareOn runs n connections of the given controller, dialed over one
// multiplexer (and so one send queue), across one emulated bottleneck fwd
// (and a reverse path alike but for its queue) for d of virtual time, the
// i-th starting to send i·stagger after the first. It returns each one's
// goodput from time from on, in Mbit/s, and the share of the packets each
// one sent that it retransmitted.
func flowsShareOn(t *testing.T, cc CongestionControl, n int, fwd netsim.LinkConfig, d, from, stagger time.Duration) (goodput, retrans []float64) {
	got := make([]atomic.Int64, n)
	res := make([]float64, n)
	retrans = make([]float64, n)
	synctest.Test(t, func(t *testing.T) {
		back := netsim.LinkConfig{Rate: fwd.Rate, Delay: fwd.Delay}
		c1, s1, _, _ := simPair(t, fwd, back, Config{Congestion: cc, Linger: -1}, 9)
		pairs := [][2]*Conn{{c1, s1}}
		// More connections over the same pipe: the same bottleneck.
		cfg, _ := Config{Congestion: cc, Linger: -1}.withDefaults()
		for range n - 1 {
			registry.mu.Lock()
			c1.m.refs++ // the reference dialOn takes over
			registry.mu.Unlock()
			c, err := dialOn(t.Context(), c1.m, cfg, s1.m.laddr)
			if err != nil {
				t.Fatal(err)
			}
			s, err := s1.ln.AcceptUDT()
			if err != nil {
				t.Fatal(err)
			}
			pairs = append(pairs, [2]*Conn{c, s})
		}
		for i, p := range pairs {
			bulk(p[0], p[1], &got[i])
			time.Sleep(stagger)
		}
		time.Sleep(from - time.Duration(n)*stagger)
		mid := make([]int64, n)
		for i := range got {
			mid[i] = got[i].Load()
		}
		time.Sleep(d - from)
		for i := range got {
			res[i] = float64(got[i].Load()-mid[i]) * 8 / 1e6 / (d - from).Seconds()
			c := pairs[i][0]
			st := c.Stats()
			retrans[i] = float64(st.Total.PktRetrans) / float64(max(st.Total.PktSent, 1))
			// What a flow that fell behind was doing (the log shows on
			// failure).
			c.mu.Lock()
			expiries, stalls := c.stats.expiries, c.stats.stallResent
			c.mu.Unlock()
			t.Logf("flow %d: %.1f Mbit/s; sent %d, retransmitted %d, %d timeouts, %d stall resends; RTT %v, period %v, window %d, flow window %d, in flight %d",
				i, res[i], st.Total.PktSent, st.Total.PktRetrans, expiries, stalls, st.RTT, st.PktSndPeriod, st.CongestionWindow, st.FlowWindow, st.PktInFlight)
		}
		for _, p := range pairs {
			_ = p[0].Close()
			_ = p[1].Close()
		}
	})
	return res, retrans
}

// jain is Jain's fairness index of xs: 1 when all are equal, 1/n when one
// takes everything.
func jain(xs []float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 0
	}
	return sum * sum / (float64(len(xs)) * sq)
}

// TestModelFlowsShare checks the loss-tolerant controller is fair to
// itself: 2, 4 and 8 flows through one 100 Mbit/s, 40 ms bottleneck reach
// a Jain's index of 0.95 or more over the second half of 60 s, and
// together keep it busy. The flows share one multiplexer, and so one send
// queue: with exact pacing gaps they locked into phase with the queue's
// departures, the drops fell on one flow event after event, and about one
// run in ten ended below 0.95 (two flows at 36/62 Mbit/s); with jittered
// gaps (see jitter), 0.965 was the least of 30 runs of two flows and
// 0.974 of 20 runs of four.
func TestModelFlowsShare(t *testing.T) {
	if raceEnabled {
		t.Skip("2, 4 and 8 flows over 60 s of simulation each, minutes under -race; CI runs it without")
	}
	for _, n := range []int{2, 4, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			got := flowsShare(t, CongestionModel, n, 100e6, 40*time.Millisecond, 60*time.Second)
			var sum float64
			for _, g := range got {
				sum += g
			}
			t.Logf("%d model flows on 100 Mbit/s, 40 ms: %.1f Mbit/s, Jain's index %.3f", n, got, jain(got))
			require.GreaterOrEqual(t, jain(got), 0.95, "flows %.1f Mbit/s", got)
			require.Greater(t, sum, 85.0)
		})
	}
}

// TestModelFlowsShareShortPath checks eight flows of the loss-tolerant
// controller converge on a short path, where the queue they meet is deep
// next to the round trip (as a receiving host's socket buffer is on
// loopback): 500 Mbit/s, 0.2 ms, a 2 MB queue, goodput counted over all of
// 10 s, start-up included. They share one send queue, which must not
// favour the fastest: each flow's share of retransmitted packets stays
// within twice the least one's (with the fastest flow's window packed ahead
// of the rest in every batch, 1.2 % against 14 % through a 256 KB queue).
// Before the short-path rules (see Model.capGoverns) Jain's index was
// 0.88-0.96 and the least flow got a third to a half of the most.
//
// Counted from the start, the index rests on how the flows leave startup,
// which the simulation's timing draws anew each run: one run in a few
// dozen still has a flow leave it at twice the others' rate (0.952 in
// one CI run; 0.952-0.998 in 40 runs here, four under 0.97), where one
// in five did before HyStart's short-path rise (see Model.hystart). So the
// test takes five runs: their median index must reach 0.97, and none fall
// under 0.93.
func TestModelFlowsShareShortPath(t *testing.T) {
	if raceEnabled {
		t.Skip("five runs of eight flows at 500 Mbit/s for 10 s in simulation, minutes under -race; CI runs it without")
	}
	link := netsim.LinkConfig{Rate: 500e6, Delay: 100 * time.Microsecond, QueueBytes: 2 << 20}
	var indexes []float64
	for run := range 5 {
		got, retrans := flowsShareOn(t, CongestionModel, 8, link, 10*time.Second, 0, 0)
		least, most := got[0], got[0]
		var sum float64
		for _, g := range got {
			least, most, sum = min(least, g), max(most, g), sum+g
		}
		loLoss, hiLoss := retrans[0], retrans[0]
		for _, r := range retrans {
			loLoss, hiLoss = min(loLoss, r), max(hiLoss, r)
		}
		t.Logf("run %d: 8 model flows on 500 Mbit/s, 0.2 ms, 2 MB queue: %.1f Mbit/s, Jain's index %.3f, least/most %.2f, retransmitted %.2f-%.2f %%",
			run, got, jain(got), least/most, loLoss*100, hiLoss*100)
		require.GreaterOrEqual(t, jain(got), 0.93, "flows %.1f Mbit/s", got)
		require.Greater(t, sum, 450.0)
		require.LessOrEqual(t, hiLoss, 2*loLoss+0.001, "retransmitted shares %.4f", retrans)
		require.Less(t, hiLoss, 0.01, "retransmitted shares %.4f", retrans)
		indexes = append(indexes, jain(got))
	}
	slices.Sort(indexes)
	require.GreaterOrEqual(t, indexes[len(indexes)/2], 0.97, "Jain's indexes %.3f", indexes)
}

// TestModelFlowsShareStaggered checks eight flows of the loss-tolerant
// controller that start one after another, each two round trips after the
// last (as dials in a row do), through one 100 Mbit/s, 40 ms bottleneck
// with a one-BDP queue: over the second half of 60 s their Jain's index is
// 0.9 or more (0.96-0.996 in eight runs) and they retransmit under 15 % of
// their packets (1.6-9.2 %). The latecomers meet the others' standing
// queue and take it for the path's delay; before excessiveLoss they took
// the losses at it for random and never cut, the others' cuts looked
// futile, and every flow paced for half the link: 37-42 % of the packets
// were retransmitted and the least flow got 0.07-0.45 of the most. It
// takes about 10 s without -race and is skipped under it; CI runs it in
// its pass without.
func TestModelFlowsShareStaggered(t *testing.T) {
	if raceEnabled {
		t.Skip("60 s of simulation, many times slower under -race; CI runs it without")
	}
	link := netsim.LinkConfig{Rate: 100e6, Delay: 20 * time.Millisecond}
	got, retrans := flowsShareOn(t, CongestionModel, 8, link, 60*time.Second, 30*time.Second, 80*time.Millisecond)
	var sent, lost float64
	for _, r := range retrans {
		lost += r
		sent++
	}
	t.Logf("8 model flows started 80 ms apart on 100 Mbit/s, 40 ms: %.1f Mbit/s, Jain's index %.3f, retransmitted %.2f %% (mean of the flows' shares)",
		got, jain(got), lost/sent*100)
	require.GreaterOrEqual(t, jain(got), 0.9, "flows %.1f Mbit/s", got)
	require.Less(t, lost/sent, 0.15, "retransmitted shares %.4f", retrans)
}
