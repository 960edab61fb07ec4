//go:build !race

package integrationtests

// raceEnabled reports whether the test binary was built with -race, which
// slows the code several times.
const raceEnabled = false
