package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseArgs(t *testing.T) {
	o, err := parseArgs(nil)
	require.NoError(t, err)
	require.Equal(t, options{size: 1472, secs: 2, modes: modes, buf: 16 << 20}, o)

	o, err = parseArgs([]string{"-size", "8972", "-t", "0.5", "-modes", "gso, plain", "-json"})
	require.NoError(t, err)
	require.Equal(t, options{size: 8972, secs: 0.5, modes: []string{"plain", "gso"}, buf: 16 << 20, json: true}, o)

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-size", "0"}, "-size 0"},
		{[]string{"-size", "65508"}, "-size 65508"},
		{[]string{"-t", "0"}, "-t 0"},
		{[]string{"-t", "61"}, "-t 61"},
		{[]string{"-buf", "1000"}, "-buf 1000"},
		{[]string{"-modes", "plain,udp"}, `unknown mode "udp"`},
		{[]string{"-modes", ""}, `unknown mode ""`},
		{[]string{"-modes", "gso,gso"}, "gso twice"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-x"}, "-x"},
	} {
		_, err := parseArgs(c.args)
		require.ErrorContains(t, err, c.want, c.args)
	}
}

func TestRates(t *testing.T) {
	var r result
	r.rates(count{dgrams: 11, bytes: 11000, winDgrams: 10, winBytes: 10000, win: 2 * time.Millisecond}, 0.5)
	require.Equal(t, int64(11), r.Received)
	require.Equal(t, int64(11000), r.Bytes)
	require.InDelta(t, 40.0, r.GoodputMbps, 1e-9) // 80,000 bits in 2 ms
	require.InDelta(t, 5000.0, r.DgramsPerS, 1e-9)
	require.InDelta(t, 0.5/11e-6, r.CPUPerGB, 1e-6)

	// Nothing received, or one read only: no rates, no division by zero.
	r = result{}
	r.rates(count{dgrams: 1, bytes: 100}, 0.1)
	require.Zero(t, r.GoodputMbps)
	require.Zero(t, r.DgramsPerS)
	r = result{}
	r.rates(count{}, 0.1)
	require.Zero(t, r.CPUPerGB)
}

func TestCounter(t *testing.T) {
	var c counter
	c.add(3, 300) // the first read opens the window: not in it
	time.Sleep(time.Millisecond)
	c.add(2, 200)
	c.add(1, 100)
	r := c.result()
	require.Equal(t, count{dgrams: 6, bytes: 600, winDgrams: 3, winBytes: 300, win: r.win}, r)
	require.GreaterOrEqual(t, r.win, time.Millisecond)
}

// TestModes runs each mode briefly over loopback: each moves datagrams.
func TestModes(t *testing.T) {
	for _, m := range modes {
		t.Run(m, func(t *testing.T) {
			r, err := measure(m, 1472, 300*time.Millisecond, 4<<20)
			if errors.Is(err, errUnsupported) {
				t.Skipf("%s: %v", m, err)
			}
			require.NoError(t, err)
			require.Positive(t, r.Received)
			require.Positive(t, r.GoodputMbps)
			require.Positive(t, r.DgramsPerS)
			require.LessOrEqual(t, r.Received, r.Sent)
			require.Equal(t, r.Received*1472, r.Bytes)
			require.Less(t, r.Secs, 0.3+drain.Seconds())
		})
	}
}

func TestRunJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"-t", "0.1", "-modes", "plain", "-size", "100", "-json"}, &out, &errOut), errOut.String())
	var r result
	require.NoError(t, json.Unmarshal(out.Bytes(), &r))
	require.Equal(t, "ceiling", r.Type)
	require.Equal(t, "plain", r.Mode)
	require.Equal(t, 100, r.Size)
	require.Positive(t, r.GoodputMbps)

	out.Reset()
	require.Equal(t, 2, run([]string{"-size", "-1"}, &out, &errOut))
	require.True(t, strings.HasPrefix(errOut.String(), "udpceiling: -size -1"), errOut.String())
}
