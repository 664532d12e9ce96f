package arq

import "time"

// Stalled tells the ARQ that the process driving it did not run for lost,
// up to now: SIGSTOP, a starved CPU on a small board, a long GC pause or
// swap. The driver finds it by one of its own timers that fired more than
// a moment late (internal/selfstall) and calls Stalled before the input or
// Poll that follows. No timer that ran out while nobody ran counts as a
// time-out (issue 11: a 20 s stop of a daemon made its ARQ give up the
// packets in flight, older than MaxAge when their timers ran, though their
// Acks waited to be read):
//
//   - A packet awaiting its Ack has its Ack timer started again at now
//     with the wait it was armed with (or the peer's timeout, if longer):
//     the Ack may have come during the stall and wait to be read, so a
//     timer that ran out meanwhile is no timeout (no round, no retry
//     spent, no backoff). Its retries left stay as they were. A round's
//     timer is restarted once: stalls that keep coming (a process
//     throttled every second or two) would otherwise push it back for
//     ever, and the packet would never be retried, given up or freed.
//     A round armed before the stall, or in the AckTimeout after it, gives no
//     round-trip sample: its Ack's delay includes part of the stall.
//     MaxAge still counts the stall: the peer ran on and forgets what it
//     delivered after DupLifetime of its own time, so a packet sent
//     again past MaxAge could be delivered twice (a rider the peer
//     delivered before the stop, reported in no Ack yet, was: one
//     datagram in two runs of three, 20 s stops, when the stall aged
//     nothing). Such a packet is given up when its restarted timer runs
//     out unanswered; its Ack, if it waits to be read, comes first.
//   - The receiver's waits (a packet held behind a gap, a partial packet)
//     and its lifetimes (duplicates, a sender's First packet, the records
//     for the next Ack) get lost more; a wait that would end within
//     AckTimeout of now ends then instead, so that what came during the
//     stall (the retransmission that fills the gap, the missing fragment)
//     is read first.
//
// A peer that really fell silent is still given up, by its retries and
// MaxAge as before, at the cost of one ack timeout more. lost, at most the
// time since the ARQ was last called, is best the lateness of the
// driver's timer (a lower bound of the stall); lost <= 0 changes nothing.
func (a *ARQ) Stalled(now time.Time, lost time.Duration) {
	if lost <= 0 {
		return
	}
	a.stats.Stalls++
	grace := a.cfg.AckTimeout
	a.noSample = now.Add(grace)
	if !a.epoch.IsZero() {
		a.epoch = a.epoch.Add(lost) // every stamp is lost younger
	}
	for _, p := range a.peers {
		if p == nil || p.busy == 0 {
			continue
		}
		for i := range p.out {
			o := &p.out[i]
			if !o.used {
				continue
			}
			if !o.deadline.IsZero() && !o.stallRestarted {
				o.deadline = now.Add(max(o.armedRTO, p.rtt.rto))
				o.armedAt = time.Time{}
				o.stallRestarted = true
			}
		}
	}
	for i := range a.held {
		if e := &a.held[i]; e.used {
			e.at = later(e.at.Add(lost), now.Add(grace-a.cfg.ReorderTimeout))
		}
	}
	for i := range a.bufs {
		if r := &a.bufs[i]; r.used {
			r.started = r.started.Add(lost)
			r.last = later(r.last.Add(lost), now.Add(grace-a.cfg.ReasmTimeout))
		}
	}
}

func later(s, t time.Time) time.Time {
	if t.After(s) {
		return t
	}
	return s
}
