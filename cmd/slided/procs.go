package main

import (
	"runtime"
	"time"
)

// daemonProcs is how many goroutines `slided run` runs at once
// (GOMAXPROCS) unless the GOMAXPROCS environment variable says otherwise.
// The daemon is a handful of goroutines that each wait on I/O, and at the
// modem's rate one core is far more than it needs: with more than one P,
// every hand-off between its goroutines wakes an idle thread to look for
// work (docs/decisions.md, "One P for the daemon").
const daemonProcs = 1

// setProcs sets GOMAXPROCS for `slided run`: daemonProcs, unless env (the
// GOMAXPROCS environment variable) is set, which the runtime has obeyed
// already. It returns the count in force.
func setProcs(env string) int {
	if env != "" {
		return runtime.GOMAXPROCS(0)
	}
	runtime.GOMAXPROCS(daemonProcs)
	return daemonProcs
}

// settleDelay is how long after its start `slided run` hands the memory
// its start-up freed back to the OS (releaseAfterStart).
const settleDelay = 5 * time.Second

// releaseAfterStart calls release (debug.FreeOSMemory) once, settleDelay
// from now. Left to itself, the runtime's background scavenger returns
// that memory in small steps, each a wake-up, when it is first woken after
// the start: on one P that was some 30 context switches at an idle
// daemon's first keep-alive, half a minute after the start
// (docs/performance.md, "CPU under load"). The caller stops the timer.
func releaseAfterStart(release func()) *time.Timer {
	return time.AfterFunc(settleDelay, release)
}
