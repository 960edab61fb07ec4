//go:build !race

package udt

// raceEnabled reports whether the test binary was built with -race, which
// slows the code several times and multiplies its memory.
const raceEnabled = false
