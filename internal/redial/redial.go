// Package redial is the reconnect policy of the modems that come back by
// themselves after they went down (promise 5 of the modem contract in
// package phy): phy/kiss (a TNC over TCP or a serial port), phy/sim's
// clients (a medium server over a Unix socket or UDP) and phy/serial (a
// device unplugged and plugged in again). One policy, one set of log lines,
// for all of them:
//
//   - The wait before attempt n after a loss (n from 0) is drawn uniformly
//     between Min·2ⁿ and twice that, both capped at Max: it grows, it stays
//     within [Min, Max], and modems that lost the same server at the same
//     instant do not all come back at the same instant.
//   - A connection that stayed up for Stable or longer starts the count
//     again (the next loss waits about Min); one that dropped sooner does
//     not, so a server that accepts and hangs up at once is not hammered.
//   - Lost logs "<what> connection lost, reconnecting" with the error,
//     up_for and retry_in; Failed logs "<what> cannot connect, retrying"
//     when the error changed or the wait grew (not at every attempt at the
//     cap); Up logs "<what> connected" with down_for and attempts.
//
// Loop is the policy's state; it is sans-I/O (its methods take the time and
// return the wait), so that a modem with a select loop of its own (phy/kiss,
// phy/serial) arms its own timer. Wait and Redial add the blocking wait for a
// modem whose goroutine may block while it is down (phy/sim's clients): they
// wait on a time.Timer (testing/synctest drives it) and return as soon as
// their context is done, so that Close never waits out a backoff.
package redial

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"
)

// Policy is the backoff of one modem.
type Policy struct {
	// Min is the shortest wait, before the first attempt after a loss.
	Min time.Duration
	// Max caps the wait.
	Max time.Duration
	// Stable is how long a connection has to stay up for the next loss to
	// start the backoff again from Min; 0 means Max.
	Stable time.Duration
	// Rand returns a number in [0, 1) that places a wait between its step
	// and twice that; nil is math/rand/v2's Float64. A Rand that returns 0
	// gives the plain doubling schedule Min, 2·Min, 4·Min ... Max.
	Rand func() float64
}

// Step is the shortest wait before attempt n (0-based): Min·2ⁿ, capped at
// Max.
func (p Policy) Step(n int) time.Duration {
	d := p.Min
	for i := 0; i < n && d > 0 && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// Wait is the wait before attempt n (0-based): drawn uniformly between
// Step(n) and twice that, capped at Max.
func (p Policy) Wait(n int) time.Duration {
	d := p.Step(n)
	r := p.Rand
	if r == nil {
		r = rand.Float64
	}
	return min(d+time.Duration(r()*float64(d)), p.Max)
}

func (p Policy) stable() time.Duration {
	if p.Stable > 0 {
		return p.Stable
	}
	return p.Max
}

// Loop is one modem's reconnect state: how many attempts failed since the
// backoff last started again, and when the connection came up or went
// down. It logs each step on the logger given to New. The zero value is not
// usable; a Loop is owned by one goroutine.
type Loop struct {
	p    Policy
	what string
	log  zerolog.Logger

	n        int  // attempts waited for since the backoff started again
	down     bool // a loss was reported and no Up since
	upAt     time.Time
	downAt   time.Time
	tries    int           // failed attempts since the loss (or since New)
	lastErr  string        // the failure last logged
	lastStep time.Duration // the step of the wait last logged
}

// New returns the loop of a modem that is connecting for the first time;
// what names it in the log lines ("kiss: tnc", "sim: medium server").
func New(p Policy, what string, log zerolog.Logger) *Loop {
	return &Loop{p: p, what: what, log: log}
}

// Up records that the connection is made at now. After a loss it logs
// "<what> connected" with how long the modem was down and the attempts it
// took.
func (l *Loop) Up(now time.Time) {
	if l.down {
		l.log.Info().Str("down_for", now.Sub(l.downAt).String()).Int("attempts", l.tries+1).
			Msg(l.what + " connected")
	}
	l.down, l.upAt, l.tries, l.lastErr, l.lastStep = false, now, 0, "", 0
}

// Lost records that the connection, up since the last Up, was lost at now
// because of err; it logs that, and returns the wait before the first
// attempt to reconnect.
func (l *Loop) Lost(now time.Time, err error) time.Duration {
	upFor := now.Sub(l.upAt)
	if upFor >= l.p.stable() {
		l.n = 0
	}
	l.lastStep = l.p.Step(l.n)
	wait := l.next()
	l.down, l.downAt, l.tries, l.lastErr = true, now, 0, ""
	l.log.Warn().Err(err).Str("up_for", upFor.String()).Str("retry_in", wait.String()).
		Msg(l.what + " connection lost, reconnecting")
	return wait
}

// Failed records that an attempt failed at now with err, and returns the
// wait before the next one. It logs the failure when the error differs from
// the last one logged or the wait grew, so that a long outage at the cap
// does not fill the log.
func (l *Loop) Failed(now time.Time, err error) time.Duration {
	l.tries++
	step := l.p.Step(l.n)
	wait := l.next()
	if msg := err.Error(); msg != l.lastErr || step > l.lastStep {
		l.lastErr, l.lastStep = msg, step
		ev := l.log.Warn().Err(err).Int("attempt", l.tries).Str("retry_in", wait.String())
		if l.down {
			ev = ev.Str("down_for", now.Sub(l.downAt).String())
		}
		ev.Msg(l.what + " cannot connect, retrying")
	}
	return wait
}

// next is the wait before the next attempt; it counts the attempt.
func (l *Loop) next() time.Duration {
	d := l.p.Wait(l.n)
	if l.p.Step(l.n) < l.p.Max {
		l.n++
	}
	return d
}

// Wait waits d, or until ctx is done: then it returns ctx's error at once.
func Wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Redial waits wait (none if 0), then calls connect until it succeeds,
// waiting l's backoff after each failure, and returns what connect made
// (after l.Up). It returns early when ctx is done, at once even in the
// middle of a wait, with an error that wraps ctx's and the last failure, if
// any; or with the failure for which giveUp (if not nil) returns true.
// connect is given ctx and should return promptly when it is done.
func Redial[T any](ctx context.Context, l *Loop, wait time.Duration, connect func(context.Context) (T, error), giveUp func(error) bool) (T, error) {
	var (
		zero T
		last error
	)
	done := func() (T, error) {
		if last == nil {
			return zero, ctx.Err()
		}
		return zero, fmt.Errorf("%w (last error: %w)", ctx.Err(), last)
	}
	for {
		if wait > 0 && Wait(ctx, wait) != nil {
			return done()
		}
		if ctx.Err() != nil {
			return done()
		}
		v, err := connect(ctx)
		if err == nil {
			l.Up(time.Now())
			return v, nil
		}
		last = err
		if ctx.Err() != nil {
			return done()
		}
		if giveUp != nil && giveUp(err) {
			return zero, err
		}
		wait = l.Failed(time.Now(), err)
	}
}
