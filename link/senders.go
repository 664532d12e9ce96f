package link

import (
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// overheard counts the sender of a frame addressed to another node. With
// a key the frame must open under it first: a forged, unsealed or replayed
// frame names any sender it likes, and counting it would let anyone widen
// every node's contention window (Config.WindowFromSenders) or fake the
// senders figure. It opens with an Opener of its own (overhear), so that
// frames for other nodes never touch the replay windows of the frames for
// us; opening also shows the inner kind, so that an Ack to another node is
// not counted either.
//
// The frame, opened, then goes to the virtual carrier sense (nav.go): a
// poll to another node keeps the channel for that node's Ack.
func (e *Engine) overheard(h framing.Header, payload []byte) {
	if e.overhear != nil {
		opened := false
		for _, o := range e.overhear {
			inner, buf, err := o.Open(e.now, e.overBuf[:0], h, payload)
			e.overBuf = buf
			if err == nil {
				h, payload, opened = inner, buf, true
				break
			}
		}
		if !opened {
			return
		}
	}
	e.navFrom(e.now, h.Src)
	e.heardSender(h.Src, h.Dst, h.Kind)
	e.navHeard(e.now, h, payload)
}

// senders counts the other nodes heard sending recently, for
// csma.MAC.Contenders: every node on a shared channel hears the same
// senders, so windows sized from this count agree between nodes, where the
// MAC's own deferral estimate grows for the node that falls behind
// (docs/mac.md). Owned by the engine.
type senders struct {
	last [256]time.Time // when each node was last heard sending (zero: never)
	// unicast is when each node last sent a unicast frame (unicastWithin).
	unicast [256]time.Time
	window  time.Duration // a node heard within this counts
}

// heard records a frame from src at now. Acks are not counted: they answer
// our own frames inside the reservation we keep for them, so they do not
// compete with our data.
// It reports whether src was not counted before (a newcomer, or a node back
// after a silence).
func (s *senders) heard(now time.Time, src framing.NodeID, kind framing.Kind) bool {
	if kind == framing.KindAck {
		return false
	}
	t := s.last[src]
	s.last[src] = now
	return t.IsZero() || now.Sub(t) >= s.window
}

// heardSender records a frame from src; a sender not counted before is
// told to the adaptive MAC at once (csma.MAC.Contenders), so that a node
// whose countdown waits behind a lone sender's small window cuts it.
func (e *Engine) heardSender(src, dst framing.NodeID, kind framing.Kind) {
	if dst != framing.Broadcast && kind != framing.KindAck && kind != framing.KindHello {
		e.senders.unicast[src] = e.now
	}
	if e.senders.heard(e.now, src, kind) && e.mac != nil && e.macCfg.IdleTarget > 0 {
		e.mac.Contenders(e.senders.count(e.now))
	}
}

// count is the number of nodes heard within the window before now.
func (s *senders) count(now time.Time) int {
	n := 0
	for i := range s.last {
		if t := s.last[i]; !t.IsZero() && now.Sub(t) < s.window {
			n++
		}
	}
	return n
}

// unicastWithin reports whether another node sent a unicast frame other
// than an Ack within d before now: a node sending data, not one whose
// kernel sent a broadcast (neighbour discovery, MLD).
func (s *senders) unicastWithin(now time.Time, d time.Duration) bool {
	for i := range s.unicast {
		if t := s.unicast[i]; !t.IsZero() && now.Sub(t) < d {
			return true
		}
	}
	return false
}

// unicastBesides is unicastWithin for the nodes other than n.
func (s *senders) unicastBesides(now time.Time, n framing.NodeID, d time.Duration) bool {
	for i := range s.unicast {
		if t := s.unicast[i]; i != int(n) && !t.IsZero() && now.Sub(t) < d {
			return true
		}
	}
	return false
}

// turnFrames is how many data frames a turn may send (the frame that won
// the contention and the bursts that follow it) while the node hears others
// others sending, where the MAC does the access of a modem that takes
// bursts (the simulated medium: Engine.macDoesAccess); 0 means no bound.
// frameAir is the airtime of the frame that won, slot the MAC's slot.
//
// A turn there is the lone frame and whole modem bursts of 16, so over a
// short span each node gets few turns, and which node wins a contention is
// close to a draw: with t turns a node on average, Jain's index of the
// nodes' counts is about 1/(1+1/t) by chance alone (the counts' squared
// coefficient of variation is 1/t). Ten nodes with turns of 17 frames got
// about 117 turns each in 20,000 frame times, Jain 0.987-0.993. Over a
// span of W frame times at a share S of the channel, n nodes with turns of
// L frames get t = W·S/(L·n) turns each, so the turn shrinks as the number
// of senders grows: turnBudget frames over the others heard. Two nodes
// (one other) keep a whole turn, and so do up to four at 115200 bit/s
// (64/3 = 21 frames, a turn there is 1+16); ten nodes take turns of 7
// frames (t ≈ 260 in 20,000 frame times: Jain ≈ 0.996 by chance).
//
// It never goes below minTurnFrames: a turn of one frame, a contention and
// an Ack for each, cost ten nodes a fifth of the channel (S 0.75 against
// 0.91 with turns of up to four), and a hundred nodes with turns of two
// frames kept 0.785 of it (Jain 0.989-0.991) against 0.81 with three (Jain
// 0.983). Nor below minTurnSlots slots of airtime: a contention costs idle
// slots and collisions, and where the delay makes a slot a large part of a
// frame shorter turns cost more than fairness gains. Ten nodes at 9600
// bit/s with turns of 7 frames: a = 0.1 (8.3 ms slots) 0.828 of the
// channel against 0.907 (0.881 with 128 slots, 13 frames); a = 0.5 0.58
// against 0.77 (128 slots are 64 frames there, longer than a turn: the
// old figures). docs/mac.md, "A turn for each sender".
func turnFrames(others int, frameAir, slot time.Duration) int {
	if others <= 1 || frameAir <= 0 {
		return 0
	}
	n := max(turnBudget/others, minTurnFrames)
	if slot > 0 {
		n = max(n, int((minTurnSlots*slot+frameAir-1)/frameAir))
	}
	return n
}

const (
	// turnBudget is the frames of turn shared out among the other senders
	// heard (turnFrames): four modem bursts of 16. Measured against 48
	// (turns of 5 for ten nodes: S 0.911–0.915) and 96 (Jain down to
	// 0.9914), docs/mac.md "A turn for each sender".
	turnBudget = 64
	// minTurnFrames is the shortest turn (turnFrames).
	minTurnFrames = 3
	// minTurnSlots is the shortest turn's airtime in the MAC's slots
	// (turnFrames).
	minTurnSlots = 128
)

// startTurn begins the turn of a data frame of n bytes that won a
// contention, where the MAC does the access of a modem that takes bursts
// (Engine.Poll): it sets the turn's budget (turnFrames) and, if the frame
// alone spends it, ends the MAC's burst.
func (e *Engine) startTurn(now time.Time, n int) {
	e.turnLeft = -1
	if l := turnFrames(e.senders.count(now), phy.Airtime(n, e.info.BitRate), e.macCfg.SlotTime); l > 0 {
		e.turnLeft = l
		e.spendTurn()
	}
}

// spendTurn counts the data frames on air against the turn's budget and
// ends the MAC's burst once it is spent.
func (e *Engine) spendTurn() {
	for _, f := range e.onAir {
		if f.meta.h.Kind != framing.KindAck {
			e.turnLeft--
		}
	}
	if e.turnLeft <= 0 {
		e.turnLeft = 0
		e.mac.EndBurst()
	}
}
