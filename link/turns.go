package link

// Turn-taking behind modems that sense no carrier (phy.Info.NoCarrier: a
// transparent acoustic modem in packet mode reports nothing until it has
// decoded a whole packet, and it is half duplex: a packet that arrives
// while it transmits is lost).
//
// Such a node cannot see the channel busy, so it learns from what it hears
// when the other node's frames are in the water and leaves the channel to
// them (docs/mac.md, "Turns"):
//
//   - After its own poll it keeps the channel for the Ack (ackWait, the
//     reservation of engine.go): two propagation delays, the far modem's
//     key-up and the Ack.
//   - The far node sends its own data right after its Ack (Acks go first,
//     csma.EnqueueFront, data after IFS and a short backoff). So when an
//     Ack comes from a node that has sent data lately, the channel stays
//     reserved for that node's next frame (follow), not only for the Ack:
//     otherwise the node's own next frame keys up just as the other's data
//     arrives, and the half-duplex modem loses it. A version-2 Ack says so
//     itself (framing.Ack.More: data waits behind it), which is how a
//     node whose data has not been getting through gets its turn.
//   - A fragment without a poll says more fragments (or packets: one poll
//     for the packets of a turn, arq.Config.GroupPolls) follow: the
//     channel stays reserved for the next. A poll ends the other node's
//     turn: it now waits for our Ack, which goes at once (Acks ignore
//     reservations), and our data follows it.
//   - Acks that do not come within their reservation (ackDueAt) were lost:
//     the turns of the others are kept again from then on.
//
// So two saturated nodes take turns: an Ack and the data frames that
// waited (up to a window of packets) each, every turn one propagation
// delay long. A turn learned wrongly costs at most
// follow of idle time; frames lost anyway are recovered by the ARQ, whose
// timers carry jitter behind such modems (arq.Config.RetryJitter) so that
// two nodes do not retransmit in lockstep.

import (
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/csma"
)

// turns is what a no-carrier node knows of the other nodes' turns. Owned by
// the engine's goroutine.
type turns struct {
	on     bool
	follow time.Duration // how long the channel is kept for a frame that follows one heard
	memory time.Duration // a node that sent data this recently is sending
	until  time.Time     // the channel is kept for the others until then
	data   [256]time.Time
	// For a node not heard sending data: its Acks since the channel was
	// last kept after one (a probe), and how many Acks apart the probes
	// are (0 means 1; doubled by each probe, up to maxProbeEvery; back to
	// 1 when it sends data).
	acks, every [256]uint8
}

// maxProbeEvery bounds the Acks between two probes: a node that only ever
// answers costs a one-way sender at most one follow of idle time per this
// many of its frames.
const maxProbeEvery = 16

// startTurns sets turn-taking up for a modem that senses no carrier, once
// the MAC and the ARQ's timing are known.
func (e *Engine) startTurns(mc csma.Config) {
	if !e.info.NoCarrier || e.info.OwnAccess || e.cfg.NoARQ {
		return
	}
	// The other node's next frame: its IFS and backoff (the deferral
	// rule's window behind a quiet channel), its modem taking the frame
	// over the serial line, the key-up and the frame on air, and our
	// modem handing it up (noCarrierSerial bounds both lines' times by
	// the airtime). Plus scheduling at both ends.
	air := noCarrierSerial(e.info, e.frameCap, e.frameMax)
	t := &e.turns
	t.on = true
	t.follow = mc.IFS + time.Duration(mc.CWMin)*mc.SlotTime + e.info.Turnaround + 3*air + 2*measureSlack
	t.memory = 2 * (e.ackWait + t.follow)
}

// heard updates the turns with a frame for this node (after
// authentication) and keeps the channel for the sender's next frame while
// its turn goes on: in the MAC's reservation, unless that waits for our
// own Acks (ackDue; reserveEnd extends it when they have come).
func (e *Engine) heard(now time.Time, h framing.Header, payload []byte) {
	t := &e.turns
	if !t.on || h.Src == framing.Broadcast {
		return
	}
	switch h.Kind {
	case framing.KindHello:
		return
	case framing.KindAck:
		var buf [framing.MaxAckRecords]framing.Ack
		var recs []framing.Ack
		if h.Ver() >= framing.Version2 {
			recs, _ = framing.ParseAcks(buf[:0], payload)
		}
		// Its data follows its Ack: it says so (More), or it has been
		// sending.
		if d := t.data[h.Src]; len(recs) > 0 && recs[0].More || !d.IsZero() && now.Sub(d) < t.memory {
			t.until = now.Add(t.follow)
			break
		}
		// Not heard sending: it may have data all the same, which it
		// sends after its Ack and which our next frame would key up
		// over every time. Keep the channel after some of its Acks (a
		// probe), fewer while nothing comes.
		if t.acks[h.Src]++; t.acks[h.Src] >= max(t.every[h.Src], 1) {
			t.acks[h.Src] = 0
			t.every[h.Src] = min(max(t.every[h.Src], 1)*2, maxProbeEvery)
			t.until = now.Add(t.follow)
		}
	case framing.KindFragment:
		t.data[h.Src], t.every[h.Src], t.acks[h.Src] = now, 0, 0
		if f, _, err := framing.ParseFrag(payload); err == nil && f.AckReq {
			t.until = now // its turn ends: it waits for our Ack
		} else {
			t.until = now.Add(t.follow) // more fragments follow
		}
	default:
		t.data[h.Src], t.every[h.Src], t.acks[h.Src] = now, 0, 0
		t.until = now.Add(t.follow)
	}
	if e.ackDue > 0 && !now.Before(e.ackDueAt) {
		// The Acks we kept the channel for did not come (lost): the
		// wait for them is over. Before this, a node whose poll went
		// unanswered never kept the channel for the other's turn again
		// until its next poll, and its retransmission keyed up into the
		// other's frames in the water (the start of
		// TestAcousticStartFair).
		e.ackDue = 0
	}
	if e.ackDue == 0 || t.until.After(e.ackDueAt) {
		e.mac.Reserve(now, t.until)
	}
}

// reserveEnd is when the reservation for the Acks just received ends: now,
// or later while another node's turn goes on.
func (e *Engine) reserveEnd(now time.Time) time.Time {
	if e.turns.on && e.turns.until.After(now) {
		return e.turns.until
	}
	// or while another node's Ack is due (nav.go), or a hidden sender's
	// turn goes on (hidden.go)
	return e.hiddenEnd(e.navEnd(now))
}
