//go:build unix

package main

import "syscall"

// cpuSeconds returns the process's user and system CPU time so far
// (getrusage RUSAGE_SELF), in seconds.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
