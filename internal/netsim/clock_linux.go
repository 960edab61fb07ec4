package netsim

import (
	"runtime"
	"syscall"
	"time"
)

// preciseThread locks the calling goroutine to its thread and sets the
// thread's timer slack to 1 µs (prctl PR_SET_TIMERSLACK), so nanosleep
// returns within tens of microseconds of the requested time instead of
// Go's timer granularity. Failure leaves the default slack of 50 µs.
func preciseThread() {
	runtime.LockOSThread()
	const prSetTimerslack = 29
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 1000, 0)
}

// preciseSleep sleeps d in the kernel on the calling thread.
func preciseSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil)
}
