// Package selfstall tells a process's own stall from a peer's silence.
//
// A modem waits on a peer with deadlines: a keep-alive timeout, a TxDone
// that must come within the airtime and a grace, a write watchdog. Each
// counts the peer silent for the whole wait, but the peer can only be
// heard while this process runs. When the process did not run for a while
// (SIGSTOP, a starved CPU on a small board, a long GC pause or swap), the
// peer may well have answered: its answer waits in the socket, and the
// deadline that fires on resumption races the read that would have found
// it. Taking the medium for dead then drops the frame in flight and
// reconnects, for nothing (issue 11: a 50 s SIGSTOP cost a phy_down drop
// and a reconnect).
//
// The rule, shared by the modems (phy/sim's clients, phy/serial):
//
//   - A goroutine that waits for a deadline notes when it expects to run
//     again (Watch.Expect: its timer or read deadline, or now if that has
//     passed).
//   - When it runs, Watch.Stalled says how much later than that it ran. More
//     than Slack late, the process was not running (a Go timer fires within
//     milliseconds, even on a busy machine): a self-stall.
//   - On a self-stall a deadline on the peer is not acted on. The modem
//     first reads what has arrived, then gives the peer a fresh grace period
//     counted from now (a keep-alive ping, and the timeout again); an answer
//     that comes after the stall is accepted. It logs one line at info
//     (Log) and counts the stall.
//
// A peer that really fell silent is still found: after the grace, with
// the process running, the deadline applies as before. The cost of a
// false stall (a timer late by more than Slack while the process did run)
// is one grace period more before a dead peer is found.
//
// A system suspend is not a stall here: Go's monotonic clock (and its
// timers) does not advance while the machine sleeps, so the deadline
// resumes where it was.
package selfstall

import (
	"time"

	"github.com/rs/zerolog"
)

// Slack is how much later than expected a goroutine may run before its
// process is taken to have stalled.
const Slack = 500 * time.Millisecond

// Watch is one goroutine's expectation of when it runs next. The zero
// Watch expects nothing. It is not safe for concurrent use: its goroutine
// owns it.
type Watch struct {
	due time.Time
}

// Expect notes, at now, that the goroutine will run again by due (the
// timer or read deadline it is about to wait on), or at once if due has
// passed; a zero due expects nothing.
func (w *Watch) Expect(now, due time.Time) {
	if !due.IsZero() && due.Before(now) {
		due = now
	}
	w.due = due
}

// Stalled returns how much later than expected the goroutine runs at now,
// if that is more than Slack (a self-stall), or 0. A wake-up before the
// expected time (a message, a Transmit) is not a stall. It does not change
// the expectation: a wake-up before due leaves it for the next call.
func (w *Watch) Stalled(now time.Time) time.Duration {
	if w.due.IsZero() {
		return 0
	}
	if late := now.Sub(w.due); late > Slack {
		return late
	}
	return 0
}

// Log writes the line for a self-stall of about late, found by the modem
// of log while waiting for peer (e.g. "the medium", "the tnc").
func Log(log zerolog.Logger, late time.Duration, peer string) {
	log.Info().Str("late", late.Round(time.Millisecond).String()).
		Msgf("process was not running for at least %v; giving %s a grace period before taking it for silent", late.Round(100*time.Millisecond), peer)
}
