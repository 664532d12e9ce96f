package link

import (
	"time"

	"github.com/slided/slided/framing"
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
