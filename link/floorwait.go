package link

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
)

// A sender's floor (auth.Opener.SetSaver) is written off the loop: the
// first frame heard from a sender since the start, and any frame when the
// disk is slower than half a FloorAhead, cannot be accepted until the write
// is done (auth.ErrPending). Refused, such a frame was lost when nothing
// sends it again: a broadcast (a host's first ARP request to a node, after
// every start of that node) or a frame without ARQ; a unicast frame came
// again only an Ack timeout later (1.9 s on the simulated medium at 115200
// bit/s), so a host resolving a neighbour's address just after a start
// had its first two ARP requests refused, one at each end, and its third
// had to succeed (CI, TestReplayAfterReceiverRestart).
//
// Such a frame now waits, authentic and in order, until the write is done:
// it is opened again floorRetry after it came and as often until then, and
// before any later frame from its sender (a later one waits behind it,
// once authentic). At most maxFloorWait frames wait (a copy of one that
// waits already is counted as replayed), for at most floorWaitMax each: as
// long as a write may take in steady state before frames are refused (the
// next floor is asked for when half of auth.FloorAhead is used); a disk
// that stalls longer (fsync behind a large writeback) refuses as before
// (drops.state_failed), as does one whose write fails. A waiting frame is
// handed to the ARQ when it is opened, without a round-trip sample
// (arq.ReceiveLate: the wait is not the channel's); the channel timing it
// would have set when heard (the answers we kept the channel for, hidden
// senders, turns, riders, the measured delay) has passed and is not set.
const (
	floorRetry   = 5 * time.Millisecond
	floorWaitMax = auth.FloorAhead / auth.CounterRate * time.Second / 2
	maxFloorWait = 16
)

// floorWaiting is a frame that waits for its sender's floor.
type floorWaiting struct {
	at      time.Time // when it was heard
	h       framing.Header
	payload []byte // the envelope, copied
}

// pendingFloor reports whether err refuses a frame only because its
// sender's floor is being written.
func pendingFloor(err error) bool {
	return errors.Is(err, auth.ErrNotSaved) && errors.Is(err, auth.ErrPending)
}

// waitFloor keeps the frame (h, payload), refused by err, to open it again
// once its sender's floor is written, and reports whether it did.
func (e *Engine) waitFloor(h framing.Header, payload []byte, err error) bool {
	if !pendingFloor(err) {
		return false
	}
	return e.keepWaiting(h, payload)
}

// waitBehind handles a frame from a sender whose earlier frames still wait
// for its floor: it waits behind them if authentic, so that it does not
// overtake them should the write end between their retry and its own
// opening. Its replay and floor checks come when it is opened.
func (e *Engine) waitBehind(h framing.Header, payload []byte) {
	err := auth.ErrForged
	for _, o := range e.openers {
		if _, err = o.Verify(h, payload); err == nil {
			break
		}
	}
	if err != nil || !e.keepWaiting(h, payload) {
		if err == nil {
			err = fmt.Errorf("%w: %w", auth.ErrNotSaved, auth.ErrPending) // no place left to wait
		}
		e.refused(h, err)
	}
}

// keepWaiting keeps the authentic frame (h, payload) to open it again, and
// reports whether it did: not when maxFloorWait frames wait, nor when the
// same frame waits already (a copy heard again, or repeated by a station
// without the key to take the places: counted as replayed).
func (e *Engine) keepWaiting(h framing.Header, payload []byte) bool {
	for _, w := range e.floorWait {
		if w.h == h && bytes.Equal(w.payload, payload) {
			e.stats.Drops.Replayed++
			return true // handled: counted, not kept twice
		}
	}
	if len(e.floorWait) >= maxFloorWait {
		return false
	}
	e.floorWait = append(e.floorWait, floorWaiting{at: e.now, h: h, payload: append([]byte(nil), payload...)})
	if len(e.floorWait) == 1 {
		e.floorRetryAt = e.now.Add(floorRetry)
	}
	e.log.Debug().Uint8("src", uint8(h.Src)).Msg("sender's floor not durable yet; frame waits for it")
	return true
}

// floorWaitingFrom reports whether a frame from src waits for its floor.
func (e *Engine) floorWaitingFrom(src framing.NodeID) bool {
	for _, w := range e.floorWait {
		if w.h.Src == src {
			return true
		}
	}
	return false
}

// openWaiting opens the frames that wait for their floor, in the order
// they came: those whose floor is written are handled as heard now; those
// of a sender whose write is still under way wait on (with every later one
// of that sender); those that waited floorWaitMax, or whose write failed,
// are refused.
func (e *Engine) openWaiting(now time.Time) {
	if len(e.floorWait) == 0 {
		return
	}
	e.now = now
	var blocked [256]bool
	waits := e.floorWait
	e.floorWait = nil // accepted does not add to it; a fresh slice keeps waits intact
	for _, w := range waits {
		if blocked[w.h.Src] {
			e.floorWait = append(e.floorWait, w)
			continue
		}
		inner, payload, err := e.tryOpen(w.h, w.payload)
		switch {
		case err == nil:
			e.accepted(w.h, w.payload, inner, payload, true)
		case pendingFloor(err) && now.Sub(w.at) < floorWaitMax:
			blocked[w.h.Src] = true
			e.floorWait = append(e.floorWait, w)
		default:
			if pendingFloor(err) && (e.floorSlowLog.IsZero() || now.Sub(e.floorSlowLog) >= time.Minute) {
				e.floorSlowLog = now
				e.log.Warn().Uint8("src", uint8(w.h.Src)).Dur("waited", now.Sub(w.at)).
					Msg("sender's floor not written in time; frame refused (drops.state_failed): the state directory's disk is slow")
			}
			e.refused(w.h, err)
		}
	}
	e.floorRetryAt = now.Add(floorRetry)
	e.rxAuthentic = false // what the ARQ delivers next is not from these
}

// floorDeadline is when the frames that wait for their floor are opened
// again (openWaiting), if any wait.
func (e *Engine) floorDeadline() (time.Time, bool) {
	return e.floorRetryAt, len(e.floorWait) > 0
}

// keepSeal keeps our own counters ahead of what we seal, at now (a Poll,
// or the start): it asks for the next reservation when the clock has used
// half of the last one (auth.Sealer.Keep; a node that only listens asked
// for none, and its first frame after ten minutes was refused), and it
// holds the host's reads (WantRead, sealHold) while the counter the next
// frame would use is being reserved (auth.Sealer.Waiting): after a start,
// the host's first packets then wait in its queue instead of going
// unsealed (drops.seal_failed), and a broadcast, a host's first ARP
// request, had nothing to send it again. A write that takes longer than
// floorWaitMax holds the host no longer: its packets are refused as before
// and counted, and a warning says so at most once a minute (a hung disk
// must not silently stop the node).
func (e *Engine) keepSeal(now time.Time) {
	if e.sealer == nil {
		return
	}
	e.sealKeepAt = e.sealer.Keep(now)
	switch {
	case !e.sealer.Waiting(now):
		e.sealHold, e.sealWaitFrom = false, time.Time{}
	case e.sealWaitFrom.IsZero():
		e.sealHold, e.sealWaitFrom = true, now
	case now.Sub(e.sealWaitFrom) < floorWaitMax:
		e.sealHold = true
	default:
		if e.sealHold && (e.sealSlowLog.IsZero() || now.Sub(e.sealSlowLog) >= time.Minute) {
			e.sealSlowLog = now
			e.log.Warn().Dur("waited", now.Sub(e.sealWaitFrom)).
				Msg("counters not reserved in time; reading the host again, its frames are refused until they are (drops.seal_failed): the state directory's disk is slow")
		}
		e.sealHold = false
	}
}

// sealDeadline is when keepSeal must run next: floorRetry after the last
// Poll while the host is held, and when the next reservation falls due.
func (e *Engine) sealDeadline() (time.Time, bool) {
	d, ok := e.sealKeepAt, !e.sealKeepAt.IsZero()
	if e.sealHold && e.cfg.Policy == Block {
		if r := e.polled.Add(floorRetry); !ok || r.Before(d) {
			d, ok = r, true
		}
	}
	return d, ok
}
