// Package precise is a one-shot timer that fires within tens of
// microseconds of its time, where the Go runtime's timers may fire up to a
// millisecond late.
//
// Why: on Linux the runtime sleeps in epoll_wait, whose timeout is in whole
// milliseconds, so a time.Timer of 239 µs (one MAC slot at 115200 bit/s)
// fires about 1.1 ms after it was set when nothing else wakes the process
// (golang/go#44343). A MAC whose slots and inter-frame spaces are a few
// hundred microseconds then runs on a millisecond grid: its idle time grows
// several-fold and two stations' countdowns that end in different slots can
// fire in the same millisecond and collide. A timerfd is an ordinary file
// to the runtime's poller, which wakes as soon as it becomes readable, so
// its expiry is exact to the kernel's timer slack.
//
// A timerfd is not for code tested in a testing/synctest bubble: it runs on
// the kernel's clock, not the bubble's. Callers choose it by configuration
// (bridge.Config.PreciseTimer, sim.Server.UsePreciseTimer) through Choose,
// which gives the same Timer on the runtime's time.Timer otherwise.
package precise

import (
	"errors"
	"time"
)

// ErrUnsupported is returned by New where the system has no timerfd (any
// system but Linux); the caller falls back to a time.Timer.
var ErrUnsupported = errors.New("precise timer: not supported on this system")

// Timer is a one-shot timer. Reset and Stop are called from one goroutine
// (the owner); C is received from by that goroutine. A value on C means the
// timer expired at or after the time it was last set for; as with
// time.Timer, after Stop or Reset returns, no value from an earlier setting
// is left in C (one that races with them may still arrive: the owner checks
// its deadline against the clock anyway). Close releases the file and ends
// the timer's goroutine; the timer is unusable afterwards.
type Timer struct {
	C  <-chan time.Time
	rt *time.Timer // the runtime's timer (NewRuntime), or nil
	t  timer       // the system's part (timerfd on Linux), unless rt
}

// NewRuntime returns a stopped Timer on a time.Timer: as late as the
// runtime makes it, and on a synctest bubble's clock when made in one.
func NewRuntime() *Timer {
	rt := time.NewTimer(time.Hour)
	rt.Stop()
	return &Timer{C: rt.C, rt: rt}
}

// Choose returns a timerfd Timer (New) if exact and the system has one,
// and a runtime Timer (NewRuntime) otherwise.
func Choose(exact bool) *Timer {
	if exact {
		if tm, err := New(); err == nil {
			return tm
		}
	}
	return NewRuntime()
}

// Exact reports whether tm is a timerfd Timer.
func (tm *Timer) Exact() bool { return tm.rt == nil }

// Reset sets the timer to fire once after d (at once if d <= 0).
func (tm *Timer) Reset(d time.Duration) {
	if tm.rt != nil {
		tm.rt.Reset(d)
		return
	}
	tm.reset(d)
}

// Stop disarms the timer and empties C.
func (tm *Timer) Stop() {
	if tm.rt != nil {
		tm.rt.Stop()
		return
	}
	tm.stop()
}

// Close stops the timer and releases what it holds (for a timerfd, its
// file and goroutine, which Close waits for).
func (tm *Timer) Close() error {
	if tm.rt != nil {
		tm.rt.Stop()
		return nil
	}
	return tm.close()
}
