//go:build !unix

package integrationtests

func cpuSeconds() float64 { return -1 }
