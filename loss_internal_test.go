package udt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTransferUnderRandomLoss moves data between real loopback sockets that
// lose datagrams at random (the netsim tests cover the rest under synctest;
// the native controller crawls at high loss, see TestLossyLinks).
func TestTransferUnderRandomLoss(t *testing.T) {
	for _, tc := range []struct {
		cc   CongestionControl
		loss float64
		size int
	}{
		{CongestionDAIMD, 0.01, 32 << 20},
		{CongestionModel, 0.01, 32 << 20},
		{CongestionModel, 0.10, 32 << 20},
		{CongestionModel, 0.30, 8 << 20},
	} {
		t.Run(fmt.Sprintf("%v/%.0f%%", tc.cc, tc.loss*100), func(t *testing.T) {
			cfg, err := Config{Congestion: tc.cc}.withDefaults()
			require.NoError(t, err)
			lm := lossyMux(t, tc.loss, 1)
			ln, err := listenOn(lm, cfg)
			require.NoError(t, err)
			defer ln.Close()
			dm := lossyMux(t, tc.loss, 2)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			c, err := dialOn(ctx, dm, cfg, lm.laddr)
			require.NoError(t, err)
			defer c.Close()
			s, err := ln.AcceptUDT()
			require.NoError(t, err)
			defer s.Close()

			data := make([]byte, tc.size)
			for i := range data {
				data[i] = byte(i * 7 / 3)
			}
			go func() {
				_, _ = c.Write(data)
				_ = c.Close()
			}()
			got, err := io.ReadAll(s)
			require.NoError(t, err)
			require.Equal(t, sha256.Sum256(data), sha256.Sum256(got))
			require.True(t, bytes.Equal(data, got))
			st := s.Stats()
			t.Logf("%v loss %.0f%%: %.1f Mbit/s; receiver saw %d losses, sent %d NAKs", tc.cc, tc.loss*100,
				float64(tc.size)*8/1e6/st.Duration.Seconds(), st.Total.PktRcvLoss, st.Total.NAKSent)
		})
	}
}
