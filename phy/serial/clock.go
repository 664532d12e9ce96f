package serial

import "time"

// Clock is the time source of a Port: pacing, hang-over, DCD polling, the
// write watchdog and reopen backoff all run on it, so tests drive them with
// a fake clock instead of sleeping.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has elapsed. f must not
	// block.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call. *time.Timer satisfies it.
type Timer interface {
	// Stop prevents the call if it has not happened yet.
	Stop() bool
	// Reset schedules the call d from now, whether it happened or not.
	Reset(d time.Duration) bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
