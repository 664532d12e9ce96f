//go:build !linux

package precise

import "time"

type timer struct{}

// New returns ErrUnsupported: only Linux has a timerfd.
func New() (*Timer, error) { return nil, ErrUnsupported }

// reset, stop and close are never reached: a Timer here is a runtime one.
func (tm *Timer) reset(d time.Duration) {}
func (tm *Timer) stop()                 {}
func (tm *Timer) close() error          { return nil }
