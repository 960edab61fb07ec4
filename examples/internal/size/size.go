// Package size parses the byte counts the examples take on their command
// lines: a whole number, optionally followed by a unit, binary (KiB, MiB,
// GiB, TiB) or decimal (KB, MB, GB, TB; "k", "M", "G", "T" alone are
// decimal too), as in "1GiB", "500MB" or "65536".
package size

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// units, longest suffixes first.
var units = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	{"B", 1},
}

// Parse returns the byte count s names.
func Parse(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size: a whole number of bytes, optionally with a unit (KiB, MiB, GiB, KB, MB, GB)", s)
	}
	if v > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return v * mult, nil
}

// Bytes is a byte count as a flag.Value.
type Bytes int64

// Set parses s (see Parse).
func (b *Bytes) Set(s string) error {
	v, err := Parse(s)
	if err != nil {
		return err
	}
	*b = Bytes(v)
	return nil
}

// String formats b in the largest binary unit that divides it.
func (b Bytes) String() string {
	for i := 3; i >= 0; i-- {
		if u := units[i]; b != 0 && int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}
