package cc

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTCPLikeSlowStartThenHalving(t *testing.T) {
	c := NewTCPLike()
	in := inputs()
	c.Init(t0, in)
	require.Equal(t, 2, c.Window())
	require.Zero(t, c.PacketPeriod())

	// Slow start: one packet of window per packet acknowledged.
	in.SndCurrSeq = isn.Add(1)
	c.OnACK(ms(10), isn.Add(2), in) // 2 acknowledged
	require.Equal(t, 4, c.Window())
	in.SndCurrSeq = isn.Add(5)
	c.OnACK(ms(20), isn.Add(6), in) // 4 more
	require.Equal(t, 8, c.Window())
	c.OnACK(ms(25), isn.Add(6), in) // nothing new
	require.Equal(t, 8, c.Window())

	// A loss halves it once per event.
	in.SndCurrSeq = isn.Add(13)
	c.OnLoss(ms(30), isn.Add(8), in)
	require.Equal(t, 4, c.Window())
	require.False(t, c.slowStart)
	c.OnLoss(ms(31), isn.Add(10), in) // the same window
	require.Equal(t, 4, c.Window())

	// Congestion avoidance: about one packet per window acknowledged.
	in.SndCurrSeq = isn.Add(20)
	c.OnACK(ms(40), isn.Add(10), in) // 4 acknowledged
	require.InDelta(t, 4.9, c.cwnd, 0.1)
	c.OnACK(ms(50), isn.Add(20), in) // 10 more: w² + 2n
	require.InDelta(t, 6.6, c.cwnd, 0.1)

	// A loss sent after the last decrease is a new event.
	in.SndCurrSeq = isn.Add(30)
	c.OnLoss(ms(60), isn.Add(21), in)
	require.InDelta(t, 3.3, c.cwnd, 0.1)

	// A timeout restarts slow start from 2, the threshold at half the window.
	c.OnTimeout(ms(70), in)
	require.Equal(t, 2, c.Window())
	require.True(t, c.slowStart)
	require.InDelta(t, 2, c.ssthresh, 1e-9)
}

func TestTCPLikeCappedAtFlowWindow(t *testing.T) {
	c := NewTCPLike()
	in := inputs()
	in.MaxWindow = 40
	c.Init(t0, in)
	in.SndCurrSeq = isn.Add(999)
	c.OnACK(ms(10), isn.Add(1000), in)
	require.Equal(t, 40, c.Window())
	require.False(t, c.slowStart, "reaching the threshold ends slow start")
}

func TestFixedRate(t *testing.T) {
	f := NewFixedRate(1_600_000) // 16 packets of 1500 bytes in 15 ms: 15 periods
	in := inputs()
	f.Init(t0, in)
	require.Equal(t, time.Millisecond, f.PacketPeriod())
	require.Equal(t, 8192, f.Window())
	f.OnLoss(ms(1), isn, in)
	f.OnTimeout(ms(2), in)
	in.MaxWindow = 500
	f.OnACK(ms(3), isn.Add(1), in)
	require.Equal(t, time.Millisecond, f.PacketPeriod(), "loss and timeouts leave the rate")
	require.Equal(t, 500, f.Window(), "the window follows the flow window")
	require.Panics(t, func() { NewFixedRate(0) })
}
