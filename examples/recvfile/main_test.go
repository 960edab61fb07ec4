package main

import "testing"

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		n, size int64
		rate    float64
		want    string
	}{
		{25 << 20, 100 << 20, 12.5e6, " 25.0%  26214400/104857600 bytes  100.0 Mb/s  ETA 6s"},
		{0, 1000, 0, "  0.0%  0/1000 bytes  0.0 Mb/s  ETA --"},
		{0, 0, 0, "100.0%  0/0 bytes  0.0 Mb/s  ETA --"},
		{999, 1000, 1, " 99.9%  999/1000 bytes  0.0 Mb/s  ETA 1s"},
	} {
		if got := progressLine(tc.n, tc.size, tc.rate); got != tc.want {
			t.Errorf("progressLine(%d, %d, %g) = %q, want %q", tc.n, tc.size, tc.rate, got, tc.want)
		}
	}
}
