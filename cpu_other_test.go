//go:build !unix

package udt_test

func cpuSeconds() float64 { return -1 }
