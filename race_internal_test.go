//go:build race

package udt

const raceEnabled = true
