package link

// Hidden senders at one receiver: turns handed over by the receiver's
// Acks (docs/mac.md, "Two hidden senders at one receiver").
//
// In the line 1 - 2 - 3, node 1 and node 3 both sending to node 2 cannot
// sense each other: whatever one sends while the other's frames reach node
// 2 collides there. Before this file their first frames collided, their
// ack timers (no retry jitter behind a modem that senses carrier) ran out
// in step, and both stalled for the whole minute of TestHiddenSenders;
// with jitter alone the first through kept the channel and the other got
// nothing.
//
// The only node both hear is the receiver R, and what it sends at the end
// of each sender's turn is its Ack. So, on a modem that senses carrier and
// leaves the access to the MAC (navs), with ARQ:
//
//   - A node that overhears R Ack a node it does not hear (nav.go learns
//     that hidden sender) takes R's next Ack to itself as the end of its
//     turn: it keeps the channel (csma.Reserve) for the hidden sender's
//     turn, at most turnWait (its longest transmission with IFS, a backoff
//     and the Ack), until it overhears R Ack the hidden sender: then the
//     turn is its own again (the token).
//   - Data that becomes ready after a token goes at once (hidden2 held
//     it for the next token, at most turnWait: sparse flows between two
//     hidden senders, a ping, a routing protocol's unicast, then waited
//     1.4-2.8 s a datagram, TestHiddenSparseFlows).
//   - A node that lost frames to R (the ARQ sent some again) while it
//     heard no node send unicast data, and has evidence of a hidden sender
//     at R, suspects one it cannot know yet: the other may have learned
//     of it from R's Acks, while R never acknowledged the other, whose
//     frames all collided. It then leaves a gap after each of R's next
//     maxProbes Acks (probeWait: one frame, IFS, a backoff and the Ack),
//     in which such a hidden sender, holding its frame for the token,
//     gets it through; R's Ack to it tells this node of it. Rounds of
//     probes that found nobody come further and further apart (minRest,
//     maxRest). The evidence (knewHidden, fresh): a hidden sender known
//     at R within maxRest windows (it went quiet and may be back), or an
//     ack timeout towards R before any round trip to R was measured (two
//     nodes that started together). Plain loss, however heavy, is none:
//     a lone sender on a lossy link leaves no gaps.
//   - Two nodes that started together lost their first frames to each
//     other and time out at the same moment: a timeout towards R before
//     any round trip to R was measured (fresh) delays the retransmission
//     by a random part of turnWait.
//   - A timeout towards R after a round trip, while a hidden sender at R
//     was known within maxRest windows, delays the retransmission until
//     the token, at most a random part of two turns: the turns were lost
//     (a hidden sender that went quiet and came back with what it knew of
//     us, sending as our burst began) and both would otherwise collide at
//     R until the end (TestHiddenSenders, one datagram at 5 s).
//   - The turn handed over by R's Ack starts tokenLead (4·CWMin slots)
//     after it: R's own frames (babeld's hellos) go first. Without the
//     lead they collided with the start of nearly every turn.
//   - The Ack that ends a turn must be read before our next frame goes:
//     while R's Ack to our poll is due and R has a hidden sender, the end
//     of a carrier that began after our poll keeps the channel two slots
//     more (hiddenCarrierOff), as answerEnded does behind modems of one
//     frame a transmission. The reservation for the Ack (answerWait) may
//     end before the Ack does (a propagation delay the configuration does
//     not know), and our frame then went on air as its carrier dropped,
//     into the hidden sender's turn: on main's nav.go, where the
//     receiver's broadcasts no longer ride its Acks, that broke the
//     turns for good in all three runs with bursts.
//
// Nothing changes while no node overhears R Ack a node it does not hear
// and no ack timer towards R runs out before a first round trip to R.

import (
	"math/rand/v2"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/csma"
)

// maxProbes is the number of gaps a node leaves after its receiver's Acks
// in a round of probes (hiddenLoss): enough for a hidden sender whose
// retransmission waits for the token to meet one, few enough that a
// hidden node's broadcasts (which do not wait for the token, and keep the
// suspicion alive) or noise cost a lone sender little.
const maxProbes = 8

// minRest and maxRest bound the rest between two rounds of probes, in
// senders.window: it doubles from minRest each round, and starts again
// once a hidden sender is found.
const (
	minRest = 1
	maxRest = 8
)

// hiddenTurns is the state of the turns at a shared receiver. Owned by
// the engine's goroutine.
type hiddenTurns struct {
	turnWait, probeWait time.Duration
	// until: we leave the receiver to a hidden sender until then.
	until time.Time
	// polled is the node we last sent a poll to.
	polled framing.NodeID
	// suspectAt is when we last lost frames to suspectBy while we heard
	// no node send unicast data.
	suspectAt time.Time
	suspectBy framing.NodeID
	// probes is the number of gaps still to leave after R's Acks in
	// this round; no new round before restUntil, and rest is the last
	// rest (minRest, maxRest).
	probes    int
	restUntil time.Time
	rest      time.Duration
	rng       *rand.Rand
	// retx is the ARQ's retransmission count last looked at.
	retx uint64
}

// startHiddenTurns sets the turn lengths once the MAC and the ARQ's timing
// are known: a turn is the hidden sender's longest transmission of
// frameAir frames (a modem burst, or the MAC's burst of single frames)
// with IFS and a backoff before it and its Ack after it; a probe one frame
// of it.
func (e *Engine) startHiddenTurns(mc csma.Config, frameAir time.Duration, seed uint64) {
	if e.navWait <= 0 || e.cfg.NoARQ {
		return
	}
	access := mc.IFS + 2*time.Duration(mc.CWMin)*mc.SlotTime
	n := time.Duration(max(mc.Burst, mc.LoneBurst, 1))
	turn := n * (frameAir + access)
	if e.info.MaxBurstFrames > 1 {
		turn = min(time.Duration(e.info.MaxBurstFrames)*frameAir, burstAir(e.info)) + access
	}
	t := &e.hidden
	t.turnWait = turn + e.ackWait
	t.probeWait = frameAir + access + e.ackWait
	t.rng = rand.New(rand.NewPCG(seed, uint64(e.cfg.Node)<<8|0x5a))
}

// hiddenOn says whether the turns at a shared receiver apply.
func (e *Engine) hiddenOn() bool { return e.hidden.turnWait > 0 && e.navs() }

// hiddenAt says whether r is known to have a sender we do not hear.
func (e *Engine) hiddenAt(now time.Time, r framing.NodeID) bool {
	n := &e.nav
	return n.hiddenBy == r && !n.hiddenAt.IsZero() && now.Sub(n.hiddenAt) < e.senders.window
}

// suspected says whether we suspect r of having a sender we do not hear.
func (e *Engine) suspected(now time.Time, r framing.NodeID) bool {
	t := &e.hidden
	return t.suspectBy == r && !t.suspectAt.IsZero() && now.Sub(t.suspectAt) < e.senders.window
}

// hiddenAcked takes an Ack from r to us: the end of our turn if r has a
// hidden sender (or we suspect one), whose turn we leave it. Called before
// the reservation for our Acks ends (reserveEnd covers the turn).
func (e *Engine) hiddenAcked(now time.Time, r framing.NodeID) {
	if !e.hiddenOn() {
		return
	}
	e.hiddenLoss(now, r, false)
	t := &e.hidden
	switch {
	case e.hiddenAt(now, r):
		t.until = now.Add(t.turnWait)
	case e.suspected(now, r) && t.probes > 0:
		t.probes--
		t.until = now.Add(t.probeWait)
	default:
		return
	}
	if until, ok := e.AwaitingAck(now); !ok || until.Before(t.until) {
		e.mac.Reserve(now, e.navEnd(t.until))
	}
}

// hiddenToken takes an Ack overheard from r to a node we do not hear: that
// sender's turn has ended; the channel is ours.
func (e *Engine) hiddenToken(now time.Time, r framing.NodeID) {
	if !e.hiddenOn() {
		return
	}
	t := &e.hidden
	t.probes, t.rest, t.restUntil = 0, 0, time.Time{} // found: it is known now
	if !t.until.After(now) {
		return
	}
	// The receiver's own frames first (tokenLead).
	t.until = now.Add(e.tokenLead())
	if _, ok := e.AwaitingAck(now); !ok {
		e.mac.Reserve(now, e.navEnd(t.until))
	}
}

// tokenLead is how long a turn handed over by the receiver's Ack waits
// for the receiver's own frames (babeld's hellos, which ride its Acks only
// at a node that knows a hidden sender, nav.go): 4·CWMin slots (8 ms at
// 115200 bit/s, under 1 % of a turn). The receiver counts IFS from the end
// of its Ack, a propagation delay before we hear it end, and draws its
// backoff from the window for several senders; we would start after IFS
// and a lone sender's small window, often in the slot of its frame or the
// next, where neither hears the other in time. Its count freezes while we
// send and runs down by the lead at each turn: it ends before our start
// within a turn or two, we hear its frame and defer, and it collides only
// when it ends in the slot or two around our start. With 2·CWMin node 2's
// hellos still missed 3-9 of 30 at nodes 1 and 3 (TestHiddenSenders).
func (e *Engine) tokenLead() time.Duration {
	return time.Duration(4*e.macCfg.CWMin) * e.macCfg.SlotTime
}

// hiddenLoss looks whether the ARQ sent frames again since last asked,
// towards r (an Ack from r, or the node we polled last when a timer ran
// out): with no other node heard sending data and evidence of a hidden
// sender at r (fresh, knewHidden) it suspects one and starts a round of
// probes; a timeout before any round trip to r delays the retransmission
// by a random part of a turn.
func (e *Engine) hiddenLoss(now time.Time, r framing.NodeID, timeout bool) {
	if !e.hiddenOn() {
		return
	}
	t := &e.hidden
	n := e.arq.Stats().Retransmissions
	if n == t.retx {
		return
	}
	t.retx = n
	if r == 0 {
		return
	}
	// Evidence of a hidden sender at r, not plain loss: one known at r
	// lately (it may have gone quiet and be back), or a timeout before
	// any round trip to r (a sender that started with us) while no other
	// node was heard sending unicast data (then the loss may be theirs).
	// r's own data to us is no competitor: it answers in the channel our
	// polls keep (hidden2 counted it, and two hidden senders that had
	// each heard r forward a ping stalled together).
	fresh := timeout && e.fresh(r) && !e.senders.unicastBesides(now, r, e.senders.window)
	if !fresh && !e.knewHidden(now, r) {
		return
	}
	if timeout && !fresh {
		// Our poll to r went unanswered while a hidden sender at r
		// was known: its frames and ours collide at r, and the turns
		// (if any) are lost. The retransmission waits for r's Ack to
		// it (the token, hiddenToken), at most a random part of two
		// turns: one of the two gets through first and hands the
		// other its turn.
		t.until = later(t.until, now.Add(time.Duration(t.rng.Int64N(int64(2*t.turnWait)))))
		if u, ok := e.AwaitingAck(now); !ok || u.Before(t.until) {
			e.mac.Reserve(now, e.navEnd(t.until))
		}
	}
	if t.probes == 0 && !now.Before(t.restUntil) {
		// A round of probes; the next not before a rest, longer each
		// time until a hidden sender is found.
		t.probes = maxProbes
		t.rest = min(max(2*t.rest, minRest*e.senders.window), maxRest*e.senders.window)
		t.restUntil = now.Add(t.rest)
	}
	if fresh {
		// Nothing from r was ever acknowledged: a hidden sender that
		// started with us lost its first frame with ours and times
		// out at the same moment. Our retransmission waits a random
		// part of a turn.
		t.until = later(t.until, now.Add(time.Duration(t.rng.Int64N(int64(t.turnWait)))))
		if u, ok := e.AwaitingAck(now); !ok || u.Before(t.until) {
			e.mac.Reserve(now, e.navEnd(t.until))
		}
	}
	t.suspectAt, t.suspectBy = now, r
}

// knewHidden says whether r was known to have a sender we do not hear
// within the longest rest between rounds of probes (maxRest windows).
func (e *Engine) knewHidden(now time.Time, r framing.NodeID) bool {
	n := &e.nav
	return n.hiddenBy == r && !n.hiddenAt.IsZero() && now.Sub(n.hiddenAt) < maxRest*e.senders.window
}

// fresh says whether the ARQ has no round-trip sample towards r yet.
func (e *Engine) fresh(r framing.NodeID) bool {
	e.delays.peers = e.arq.AppendPeers(e.delays.peers[:0])
	for _, p := range e.delays.peers {
		if p.Node == r {
			return p.Samples == 0
		}
	}
	return true
}

// hiddenSent notes the end of a transmission of ours that carried a poll
// to dst.
func (e *Engine) hiddenSent(dst framing.NodeID) {
	e.hidden.polled = dst
}

// hiddenEnd is when the channel left to a hidden sender is free, if later
// than t.
func (e *Engine) hiddenEnd(t time.Time) time.Time {
	if e.hidden.until.After(t) {
		return e.hidden.until
	}
	return t
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// hiddenCarrierOff keeps the channel for two slots past the end of a
// carrier that began after our last poll, while its Ack is due (ackDue)
// from a receiver with a hidden sender: the Ack may have come later than
// the reservation for it (answerWait), and our next frame would go as its
// carrier drops, before it is read, into the hidden sender's turn.
// answerEnded does this behind modems of one frame a transmission.
func (e *Engine) hiddenCarrierOff(now time.Time) {
	if !e.hiddenOn() || e.ackDue == 0 || e.carrierAt.Before(e.txStart) || !e.hiddenAt(now, e.hidden.polled) {
		return
	}
	if until := now.Add(2 * e.macCfg.SlotTime); until.After(e.ackDueAt) {
		e.ackDueAt = until
		e.mac.Reserve(now, e.navEnd(until))
	}
}
