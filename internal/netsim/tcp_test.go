package netsim

import (
	"encoding/binary"
	"net"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// simFlows runs one TCP flow per configuration from A to B across one
// pipe whose links are both l, for d, all started together: the first over
// the pipe's own ends, the others over ends from SharePipe. It returns,
// for each flow, the bytes delivered at the end of each whole second, and
// each flow's stats at the end. It must run in a synctest bubble.
func simFlows(t *testing.T, l LinkConfig, seed uint64, d time.Duration, cfgs ...TCPConfig) ([][]int64, []TCPStats) {
	t.Helper()
	a, b := NewPacketPipe(l, l, seed)
	pa, pb := a.(*PipeConn), b.(*PipeConn)
	flows := make([]*TCPFlow, len(cfgs))
	for i, cfg := range cfgs {
		sa, sb := pa, pb
		if i > 0 {
			var err error
			sa, sb, err = SharePipe(pa, pb, uint16(20000+i), uint16(30000+i))
			require.NoError(t, err)
		}
		f, err := StartTCP(sa, sb, cfg)
		require.NoError(t, err)
		flows[i] = f
	}
	got := make([][]int64, len(flows))
	for range int(d / time.Second) {
		time.Sleep(time.Second)
		for i, f := range flows {
			got[i] = append(got[i], f.Delivered())
		}
	}
	stats := make([]TCPStats, len(flows))
	for i, f := range flows {
		stats[i] = f.Stats()
		require.NoError(t, f.Close())
	}
	return got, stats
}

// mbps returns the goodput in Mbit/s between the ends of seconds from
// and to (0 is the start) of bytes sampled at the end of each second.
func mbps(read []int64, from, to int) float64 {
	var b0 int64
	if from > 0 {
		b0 = read[from-1]
	}
	return float64(read[to-1]-b0) * 8 / 1e6 / float64(to-from)
}

// requireSound checks what every flow must show: in-order payload, the
// right stream, nothing stuck.
func requireSound(t *testing.T, read []int64, st TCPStats) {
	t.Helper()
	require.Zero(t, st.BadPayload, "payload out of order or not the stream")
	require.Equal(t, read[len(read)-1], st.Delivered)
	require.Positive(t, st.Delivered)
}

// skipUnderRace skips a test that adds only figures of other options to
// TestTCPCalibration's when the race detector makes each simulated second
// ten times dearer.
func skipUnderRace(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("another option's figures; run without -race")
	}
}

// TestTCPAlone: one flow alone on the calibration link (100 Mbit/s, 100 ms,
// one-BDP queue) fills it with other options than the default, whose
// figures TestTCPCalibration checks: slow start's overshoot is recovered
// without a timeout. The payload ceiling is 1420/1472 of 100 Mbit/s, 96.5.
func TestTCPAlone(t *testing.T) {
	skipUnderRace(t)
	for _, tc := range []struct {
		name string
		cfg  TCPConfig
	}{
		{"reno", TCPConfig{CC: "reno"}},
		{"cubic without HyStart++", TCPConfig{NoHyStart: true}},
		{"cubic with quick ACKs", TCPConfig{DelayedACK: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				got, st := simFlows(t, tcpCalLink, 1, 30*time.Second, tc.cfg)
				t.Logf("%.1f Mbit/s over 30 s, %.1f over the second half; each second %s; %+v",
					mbps(got[0], 0, 30), mbps(got[0], 15, 30), calSeconds(got[0]), st[0])
				requireSound(t, got[0], st[0])
				require.Greater(t, mbps(got[0], 0, 30), 90.0)
				require.Zero(t, st[0].Timeouts)
			})
		})
	}
}

// TestTCPShare: two reno flows started together through one bottleneck
// fill it, though they need not share it fairly: at one segment more per
// round trip, a window of a bandwidth-delay product (850 segments) takes
// 85 s to grow back after halving, so the few losses of a minute do not
// even out what slow start left. TestTCPCalibration checks two cubic
// flows.
func TestTCPShare(t *testing.T) {
	skipUnderRace(t)
	synctest.Test(t, func(t *testing.T) {
		cfg := TCPConfig{CC: "reno"}
		got, st := simFlows(t, tcpCalLink, 1, time.Minute, cfg, cfg)
		a, b := mbps(got[0], 30, 60), mbps(got[1], 30, 60)
		t.Logf("second half: %.1f + %.1f Mbit/s; %+v; %+v", a, b, st[0], st[1])
		for i := range got {
			requireSound(t, got[i], st[i])
		}
		require.Greater(t, a+b, 90.0)
	})
}

// TestTCPLoss: with 1 % random loss (and then impairments besides) each
// flow keeps delivering the stream in order, every 5 s of a minute.
func TestTCPLoss(t *testing.T) {
	lossy := tcpCalLink
	lossy.Loss = 0.01
	worse := lossy
	worse.Jitter = 2 * time.Millisecond
	worse.Duplicate = 0.01
	worse.Corrupt = 0.01
	worse.Reorder = 0.01
	for _, tc := range []struct {
		name string
		link LinkConfig
		cfg  TCPConfig
	}{
		{"cubic", lossy, TCPConfig{}},
		{"reno", lossy, TCPConfig{CC: "reno"}},
		{"cubic without SACK", lossy, TCPConfig{NoSACK: true}},
		{"reno without SACK", lossy, TCPConfig{CC: "reno", NoSACK: true}},
		{"cubic, reordered, duplicated and corrupted", worse, TCPConfig{}},
		{"cubic without SACK, reordered, duplicated and corrupted", worse, TCPConfig{NoSACK: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				got, st := simFlows(t, tc.link, 7, time.Minute, tc.cfg)
				t.Logf("%.2f Mbit/s; each second %s; %+v", mbps(got[0], 0, 60), calSeconds(got[0]), st[0])
				requireSound(t, got[0], st[0])
				for s := 5; s <= 60; s += 5 {
					require.Positive(t, mbps(got[0], s-5, s), "nothing delivered in the 5 s before second %d", s)
				}
				require.Positive(t, st[0].FastRecoveries)
			})
		})
	}
}

func TestStartTCPConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  TCPConfig
		want string
	}{
		{TCPConfig{CC: "bbr", NoSACK: true}, "NoSACK"},
		{TCPConfig{Segment: 70000}, "Segment 70000"},
		{TCPConfig{Segment: -1}, "Segment -1"},
		{TCPConfig{Header: 10}, "Header 10"},
		{TCPConfig{Segment: 100, Header: 93}, "Header 93"},
		{TCPConfig{InitialWindow: -1}, "InitialWindow -1"},
		{TCPConfig{MinRTO: -time.Second}, "MinRTO -1s"},
		{TCPConfig{MaxWindow: 1}, "MaxWindow 1"},
	} {
		_, err := tc.cfg.withDefaults()
		require.ErrorContains(t, err, tc.want)
	}
	cfg, err := TCPConfig{}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, TCPConfig{
		CC: "cubic", Segment: 1472, Header: 52, InitialWindow: 10, MinRTO: 200 * time.Millisecond,
		MaxWindow: 1 << 16, DelayedACK: 40 * time.Millisecond,
	}, cfg)
	_, err = TCPConfig{Segment: 100, Header: 92}.withDefaults()
	require.NoError(t, err, "8 bytes of payload")

	synctest.Test(t, func(t *testing.T) {
		a, b := NewPacketPipe(LinkConfig{}, LinkConfig{}, 1)
		defer a.Close()
		defer b.Close()
		_, err := StartTCP(a, b, TCPConfig{CC: "vegas"})
		require.ErrorContains(t, err, "vegas")
	})
}

// TestTCPClose: Close stops both sides at once, whatever they are doing
// (a BBR flow's pacing timer armed or not), closes the connections, and
// may be called again.
func TestTCPClose(t *testing.T) {
	for _, cc := range []string{"cubic", "bbr"} {
		t.Run(cc, func(t *testing.T) { testTCPClose(t, TCPConfig{CC: cc}) })
	}
}

func testTCPClose(t *testing.T, cfg TCPConfig) {
	synctest.Test(t, func(t *testing.T) {
		l := LinkConfig{Rate: 10e6, Delay: 20 * time.Millisecond}
		a, b := NewPacketPipe(l, l, 1)
		f, err := StartTCP(a, b, cfg)
		require.NoError(t, err)
		time.Sleep(time.Second)
		require.Positive(t, f.Delivered())
		start := time.Now()
		require.NoError(t, f.Close())
		require.Zero(t, time.Since(start), "Close waited")
		require.NoError(t, f.Close())
		_, err = a.WriteTo([]byte("x"), b.LocalAddr())
		require.ErrorIs(t, err, net.ErrClosed)
		_, _, err = b.ReadFrom(make([]byte, 1))
		require.ErrorIs(t, err, net.ErrClosed)
		delivered := f.Delivered()
		time.Sleep(time.Second)
		require.Equal(t, delivered, f.Delivered())

		// A flow whose connections were closed under it ends too.
		a, b = NewPacketPipe(l, l, 2)
		f, err = StartTCP(a, b, cfg)
		require.NoError(t, err)
		time.Sleep(100 * time.Millisecond)
		a.Close()
		b.Close()
		require.NoError(t, f.Close())
	})
}

// TestTCPStrangers: datagrams that are not the flow's own, or are damaged,
// reach both sides and change nothing.
func TestTCPStrangers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := LinkConfig{Rate: 20e6, Delay: 10 * time.Millisecond, QueueBytes: 1 << 20}
		a, b := NewPacketPipe(l, l, 1)
		f, err := StartTCP(a, b, TCPConfig{})
		require.NoError(t, err)
		id := f.snd.id
		data := make([]byte, DefaultTCPSegment)
		putTCPHeader(data, tcpKindData, 0, id, 5)
		streamFill(data[DefaultTCPHeader:], 5*(DefaultTCPSegment-DefaultTCPHeader))
		sealTCP(data)
		ack := (&tcpACK{ack: 3, n: 1, blocks: [3]sackBlock{{5, 9}}}).append(nil, id)
		damaged := func(b []byte, i int) []byte {
			b = slices.Clone(b)
			b[i] ^= 0x40
			return b
		}
		other := slices.Clone(data)
		binary.BigEndian.PutUint32(other[8:], id+1)
		sealTCP(other)
		strangers := [][]byte{
			{}, {1, 2, 3}, make([]byte, 100), make([]byte, DefaultTCPSegment),
			damaged(data, 3), damaged(data, 20), damaged(data, 1000), other, data[:len(data)-1],
			damaged(ack, 17), ack[:len(ack)-1], ack, data, // the last two are the flow's own, out of date
		}
		badBlock := (&tcpACK{ack: 3, n: 1, blocks: [3]sackBlock{{9, 5}}}).append(nil, id)
		strangers = append(strangers, badBlock)
		for range 50 {
			for _, p := range strangers {
				_, err := a.WriteTo(p, b.LocalAddr())
				require.NoError(t, err)
				_, err = b.WriteTo(p, a.LocalAddr())
				require.NoError(t, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		st := f.Stats()
		require.NoError(t, f.Close())
		t.Logf("%+v", st)
		require.Zero(t, st.BadPayload)
		require.Zero(t, st.Timeouts)
		require.Greater(t, float64(st.Delivered)*8/5/1e6, 15.0, "Mbit/s")
	})
}

// recordConn records what is written to it; nothing else works.
type recordConn struct {
	net.PacketConn
	sent [][]byte
}

func (c *recordConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	c.sent = append(c.sent, slices.Clone(p))
	return len(p), nil
}

// TestTCPReceiverACKs: which segments the receiver acknowledges at once,
// and the SACK blocks it reports, latest arrival first.
func TestTCPReceiverACKs(t *testing.T) {
	type ack struct {
		ack    uint64
		blocks []sackBlock
	}
	for _, tc := range []struct {
		name   string
		cfg    TCPConfig
		arrive []uint64
		want   []ack // the ACK after each arrival, or the zero ack for none
	}{
		{"delayed ACK every second segment", TCPConfig{}, []uint64{16, 17, 18, 19},
			[]ack{{}, {18, nil}, {}, {20, nil}}},
		{"quick ACKs", TCPConfig{DelayedACK: -1}, []uint64{16, 17},
			[]ack{{17, nil}, {18, nil}}},
		{"out of order and a duplicate at once", TCPConfig{}, []uint64{16, 18, 18, 3},
			[]ack{{}, {17, []sackBlock{{18, 19}}}, {17, []sackBlock{{18, 19}}}, {17, []sackBlock{{18, 19}}}}},
		{"latest block first, three at most", TCPConfig{}, []uint64{18, 20, 22, 24, 21},
			[]ack{{16, []sackBlock{{18, 19}}}, {16, []sackBlock{{20, 21}, {18, 19}}}, {16, []sackBlock{{22, 23}, {20, 21}, {18, 19}}},
				{16, []sackBlock{{24, 25}, {22, 23}, {20, 21}}}, {16, []sackBlock{{20, 23}, {24, 25}, {18, 19}}}}},
		{"filling holes", TCPConfig{}, []uint64{17, 19, 16, 18, 20, 21},
			[]ack{{16, []sackBlock{{17, 18}}}, {16, []sackBlock{{19, 20}, {17, 18}}}, {18, []sackBlock{{19, 20}}}, {20, nil}, {}, {22, nil}}},
		{"without SACK", TCPConfig{NoSACK: true}, []uint64{17, 19, 16},
			[]ack{{16, nil}, {16, nil}, {18, nil}}},
		{"beyond the window", TCPConfig{MaxWindow: 4}, []uint64{20, 19},
			[]ack{{16, nil}, {16, []sackBlock{{19, 20}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.cfg.withDefaults()
			require.NoError(t, err)
			c := &recordConn{}
			r := newTCPReceiver(c, 7, cfg)
			p := make([]byte, cfg.payload())
			now := time.Unix(1, 0)
			// Past the quick ACKs of the start.
			for q := range uint64(tcpQuickACKs) {
				streamFill(p, q*uint64(len(p)))
				if r.onData(now, q, p) {
					require.NoError(t, r.ack())
				}
			}
			c.sent = nil
			for i, q := range tc.arrive {
				streamFill(p, q*uint64(len(p)))
				if r.onData(now, q, p) {
					require.NoError(t, r.ack())
				}
				var got ack
				if len(c.sent) > 0 {
					a, ok := parseACK(c.sent[0], 7)
					require.True(t, ok)
					got.ack, got.blocks = a.ack, slices.Clone(a.blocks[:a.n])
					if len(got.blocks) == 0 {
						got.blocks = nil
					}
					c.sent = c.sent[1:]
				}
				require.Equal(t, tc.want[i], got, "after segment %d (arrival %d)", q, i)
				require.Empty(t, c.sent)
			}
			require.Zero(t, r.bad.Load())
			require.Equal(t, int64(r.nxt)*int64(len(p)), r.delivered.Load())
		})
	}
}

func TestStreamFill(t *testing.T) {
	p := make([]byte, 1420)
	q := make([]byte, 1420)
	for _, off := range []uint64{0, 1, 7, 1420, streamPeriod - 9, streamPeriod - 8, streamPeriod, 1 << 40} {
		streamFill(p, off)
		require.True(t, streamCheck(p, off), "offset %d", off)
		require.False(t, streamCheck(p, off+1420), "offset %d as the next segment", off)
		streamFill(q, off+1420)
		require.NotEqual(t, p[8:], q[8:], "offset %d", off)
		p[700] ^= 1
		require.False(t, streamCheck(p, off), "offset %d, a byte changed", off)
	}
	long := make([]byte, 3*streamPeriod)
	streamFill(long, 12345)
	require.True(t, streamCheck(long, 12345))
	require.True(t, streamCheck(long[1000:], 12345+1000) == false, "the offset is at the start of a segment only")
}

func TestTCPACKCodec(t *testing.T) {
	for _, a := range []tcpACK{
		{ack: 0},
		{ack: 1 << 40, n: 1, blocks: [3]sackBlock{{1<<40 + 2, 1<<40 + 9}}},
		{ack: 5, n: 3, blocks: [3]sackBlock{{20, 21}, {7, 9}, {30, 100}}},
	} {
		b := a.append(nil, 42)
		require.Len(t, b, tcpHeaderLen+16*a.n)
		got, ok := parseACK(b, 42)
		require.True(t, ok)
		require.Equal(t, a, got)
		_, ok = parseACK(b, 43)
		require.False(t, ok, "another flow's")
		for i := range b {
			d := slices.Clone(b)
			d[i] ^= 1
			_, ok := parseACK(d, 42)
			require.False(t, ok, "byte %d changed", i)
		}
		_, ok = parseACK(append(b, 0), 42)
		require.False(t, ok, "a byte more")
	}
	for _, bad := range []tcpACK{
		{ack: 5, n: 1, blocks: [3]sackBlock{{5, 9}}}, // starts at the ACK
		{ack: 5, n: 1, blocks: [3]sackBlock{{9, 9}}}, // empty
	} {
		_, ok := parseACK(bad.append(nil, 1), 1)
		require.False(t, ok, "%+v", bad)
	}
}

func FuzzTCPACK(f *testing.F) {
	f.Add((&tcpACK{ack: 5, n: 2, blocks: [3]sackBlock{{20, 21}, {7, 9}}}).append(nil, 1))
	f.Add((&tcpACK{ack: 1}).append(nil, 1))
	f.Add([]byte("nTCP"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := parseACK(b, 1)
		if !ok {
			return
		}
		again, ok := parseACK(a.append(nil, 1), 1)
		require.True(t, ok)
		require.Equal(t, a, again)
	})
}
