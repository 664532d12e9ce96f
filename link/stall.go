package link

import "time"

// Stalled tells the engine that the process driving it did not run for
// lost, up to now: a timer of the driver's fired that late (SIGSTOP, a
// starved CPU, a long GC pause or swap; internal/selfstall). The driver
// calls it before the input or Poll that found the stall. The ARQ then
// counts none of that time against its packets (arq.ARQ.Stalled): a packet
// in flight is not given up for an age it reached while nobody ran, and
// its Ack, waiting to be read, is read before its timer runs.
func (e *Engine) Stalled(now time.Time, lost time.Duration) {
	if e.arq != nil {
		e.arq.Stalled(now, lost)
	}
}
