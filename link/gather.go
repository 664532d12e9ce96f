package link

import "time"

// Behind a TNC (phy.Info.OwnAccess, a modem that takes bursts) one burst is
// outstanding at a time: the next waits for the last one's TxDone, by then
// on air, and goes in a key-up of its own after the far end's Acks. A
// flow's packets come from the host a few at a time (the credit's grants,
// the reader's turns), so when a window opened the first burst formed with
// what had come, the first datagram or a dozen, and the rest, a millisecond
// behind, waited for it: on the Dire Wolf rig 4 of 14 runs of
// BenchmarkDirewolfVersusKISS/9600 sent the 40 datagrams in two key-ups,
// 1.3-2.5 s more (docs/modems.md, "The other low runs").
//
// So while the host is handing frames (one came less than gatherGap ago)
// and the engine would read more (WantRead), a burst waits for them, up to
// gatherMax after it was first ready: the TNC waits at least a slot (100 ms
// at Dire Wolf's defaults) before it keys up anyway. A lone packet waits
// gatherGap; whatever else is queued meanwhile (an Ack, a retransmission)
// waits with the host's frames, gatherMax at most.
const (
	gatherGap = 5 * time.Millisecond
	gatherMax = 25 * time.Millisecond
)

// gatherHeld says whether the burst the MAC would start now waits for the
// host's next frame, and sets gatherUntil (Deadline) to the end of the wait.
func (e *Engine) gatherHeld(now time.Time) bool {
	if !e.info.OwnAccess || e.info.MaxBurstFrames < 2 || e.mac.Transmitting() || e.mac.Len() == 0 || !e.WantRead() {
		e.gatherFrom, e.gatherUntil = time.Time{}, time.Time{}
		return false
	}
	if e.gatherFrom.IsZero() {
		e.gatherFrom = now
	}
	end := e.hostAt.Add(gatherGap)
	if m := e.gatherFrom.Add(gatherMax); m.Before(end) {
		end = m
	}
	if !now.Before(end) {
		e.gatherFrom, e.gatherUntil = time.Time{}, time.Time{}
		return false
	}
	e.gatherUntil = end
	return true
}
