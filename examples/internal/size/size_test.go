package size

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "65536": 65536, "1KiB": 1024, "1GiB": 1 << 30, "3 MiB": 3 << 20, "2TiB": 2 << 40,
		"500MB": 500e6, "1G": 1e9, "10k": 10e3, "7B": 7,
	} {
		got, err := Parse(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "-1", "1.5GiB", "GiB", "1 PiB", "9999999TiB", "ten"} {
		_, err := Parse(in)
		require.Error(t, err, in)
	}
}

func TestBytesFlag(t *testing.T) {
	var b Bytes
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Var(&b, "bytes", "")
	require.NoError(t, fs.Parse([]string{"-bytes", "1GiB"}))
	require.Equal(t, Bytes(1<<30), b)
	require.Equal(t, "1GiB", b.String())
	require.Equal(t, "1000", Bytes(1000).String())
	require.Error(t, fs.Parse([]string{"-bytes", "lots"}))
}
