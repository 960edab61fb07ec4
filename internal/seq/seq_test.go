package seq

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCmpAcrossWrap(t *testing.T) {
	cases := []struct {
		a, b Num
		want int
	}{
		{0, 0, 0},
		{0, 1, -1},
		{1, 0, 1},
		{Max, 0, -1},
		{0, Max, 1},
		{Max - 5, 3, -1},
		{3, Max - 5, 1},
		{0x3FFFFFFE, 0, 1},
		{0x40000000, 0, -1}, // beyond the threshold: taken as wrapped
	}
	for _, c := range cases {
		require.Equal(t, c.want, Cmp(c.a, c.b), "Cmp(%#x, %#x)", c.a, c.b)
	}
}

func TestOffLenAdd(t *testing.T) {
	require.Equal(t, 1, Off(Max, 0))
	require.Equal(t, -1, Off(0, Max))
	require.Equal(t, 10, Off(Max-4, 5))
	require.Equal(t, 2, Len(Max, 0))
	require.Equal(t, 1, Len(7, 7))
	require.Equal(t, 11, Len(Max-4, 5))
	require.Equal(t, Num(0), Max.Inc())
	require.Equal(t, Max, Num(0).Dec())
	require.Equal(t, Num(4), (Max - 5).Add(10))
	require.Equal(t, Max-5, Num(4).Add(-10))
}

func TestMsgNext(t *testing.T) {
	require.Equal(t, Msg(2), Msg(1).Next())
	require.Equal(t, Msg(1), Msg(0x1FFFFFFE).Next())
	require.Equal(t, -1, MsgCmp(0x1FFFFFFE, 1))
	require.Equal(t, Ack(0), Ack(Max).Next())
}

func FuzzSeqArithmetic(f *testing.F) {
	f.Add(uint32(0), int32(1))
	f.Add(uint32(Max), int32(1))
	f.Add(uint32(Max-3), int32(-100))
	f.Add(uint32(0x3FFFFFFF), int32(0x3FFFFFFE))
	f.Fuzz(func(t *testing.T, a uint32, d int32) {
		n := Num(a) & Max
		if d >= threshold || d <= -threshold {
			return
		}
		m := n.Add(int(d))
		if Off(n, m) != int(d) {
			t.Fatalf("Off(%d, %d.Add(%d)) = %d", n, n, d, Off(n, m))
		}
		if Cmp(n, m) != -Cmp(m, n) {
			t.Fatalf("Cmp not antisymmetric for %d, %d", n, m)
		}
		if (d > 0) != (Cmp(n, m) < 0) && d != 0 {
			t.Fatalf("Cmp(%d, %d) = %d with d = %d", n, m, Cmp(n, m), d)
		}
		if d >= 0 && Len(n, m) != int(d)+1 {
			t.Fatalf("Len(%d, %d) = %d, want %d", n, m, Len(n, m), d+1)
		}
	})
}
