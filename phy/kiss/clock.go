package kiss

import (
	"time"

	"github.com/slided/slided/internal/redial"
)

// clock is the TNC's time source: the TxDone estimate and the reconnect
// backoff run on it, so tests drive both with a fake clock, without sleeping.
type clock interface {
	Now() time.Time
	NewTimer(d time.Duration) timer
}

// timer is a one-shot timer; *time.Timer fits through realTimer.
type timer interface {
	C() <-chan time.Time
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// Reconnect backoff (package redial): the first retry after backoffMin to
// twice that, doubling to backoffMax. A connection that stayed up
// backoffMax or longer starts the count again.
const (
	backoffMin = 500 * time.Millisecond
	backoffMax = 30 * time.Second
)

// reconnect is the TNC's reconnect policy (package redial).
var reconnect = redial.Policy{Min: backoffMin, Max: backoffMax}

// backoff is the shortest wait before reconnect attempt number attempt (0
// first); the wait is up to twice that (jitter), capped at backoffMax.
func backoff(attempt int) time.Duration { return reconnect.Step(attempt) }
