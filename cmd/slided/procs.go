package main

import "runtime"

// daemonProcs is how many goroutines `slided run` runs at once
// (GOMAXPROCS) unless the GOMAXPROCS environment variable says otherwise.
// The daemon is a handful of goroutines that each wait on I/O, and at the
// modem's rate one core is far more than it needs: with more than one P,
// every hand-off between its goroutines wakes an idle thread to look for
// work, which cost it about a quarter of its CPU under load
// (docs/decisions.md, "One P for the daemon").
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
