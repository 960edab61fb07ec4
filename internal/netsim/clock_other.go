//go:build !linux

package netsim

import (
	"runtime"
	"time"
)

func preciseThread() { runtime.LockOSThread() }

func preciseSleep(d time.Duration) { time.Sleep(d) }
