//go:build race

package trace

// raceEnabled reports whether the test binary was built with -race, which
// allocates on its own.
const raceEnabled = true
