package link

// Hidden stations: a virtual carrier sense, and broadcasts that ride with
// our Acks (docs/mac.md, "Hidden stations").
//
// In a line 1 - 2 - 3 where 1 and 3 do not hear each other, node 3 senses
// the channel idle whenever node 1 sends to node 2, which on a saturated
// chain is most of the time node 2 is not sending itself: whatever node 3
// sends then collides at node 2. Its unicast frames are sent again (ARQ),
// its broadcasts are not, and babeld on node 2 declared node 3 gone after
// twelve of its hellos in a row were lost that way (packaging/mininet/
// line.py; TestHiddenBroadcasts: node 2 got 0-6 of node 3's 30 hellos a
// minute).
//
// Two rules give node 3 a slot node 1 keeps clear, without a change to the
// frames on air:
//
//   - Virtual carrier sense (802.11's NAV from the Duration field, here
//     from the poll itself): a node that overhears a poll (a fragment that
//     asks for an Ack) addressed to another node keeps the channel
//     (csma.Reserve) for that node's Ack, as the poller does; node 1
//     overhears node 2's polls to node 3 and no longer keys up over node
//     3's Acks, which it cannot hear. For a node it has not heard at all
//     lately (hidden, it seems) it keeps it also for the broadcasts that
//     may ride behind the Ack (navWait: the held broadcasts' room, below);
//     for one it hears, the Ack's carrier keeps it deferring for whatever
//     rides. A node that hears the Ack ends the wait there.
//   - A small broadcast frame rides behind one of our Acks, in the same
//     transmission (ride.go has the same for TCP's ACKs): inside the
//     channel the poller and its neighbours keep for the Ack. While we
//     overhear Acks to a node we do not hear (a hidden sender at one of our
//     neighbours) and send that neighbour Acks ourselves, such a frame is
//     held for the next of them: at most twice the time between our last
//     two Acks to it (at least broadcastHold, at most the time a sender
//     counts as one, senders.window); then it contends as before.
//
// Only on a modem that senses carrier and leaves the access to the MAC:
// not behind a TNC (OwnAccess: it contends for itself, and its TxDone does
// not say when the frame went) nor without carrier sense (turns.go has its
// own rules for the others' Acks).

import (
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// broadcastHold is the least time a broadcast frame waits for one of our
// Acks to ride with (holdFor): a routing protocol's hello (babeld's every
// 2 s, 12 lost in a row end the neighbour) comes late rather than not at
// all.
const broadcastHold = time.Second

// maxHeldBroadcasts bounds the broadcast frames held for rides: up to as
// many of rideMax bytes ride behind one Ack, and the others keep the channel
// that long (navWait). One a ride was not enough: behind a saturated chain
// our Acks came every 2-3 s, the hellos every 2 s, and the second of two
// held went to contend and was lost.
const maxHeldBroadcasts = 2

// heldBroadcast is a broadcast frame held for a ride since at.
type heldBroadcast struct {
	f  txFrame
	at time.Time
}

// nav is the virtual carrier sense's state.
type nav struct {
	poller, polled framing.NodeID // the sender and addressee of the overheard poll that set until
	until          time.Time      // the channel is kept for the polled node's Ack until then
	// pollSeq is the sequence number of the last poll overheard from poller
	// to polled: the same one again is a retransmission (navHeard).
	pollSeq uint8
	// next: the poll that came during the carrier still on (pending).
	nextPoller, nextPolled framing.NodeID
	nextRide               bool
	// pending: the poll came during the carrier still on; the Ack comes
	// after the end of the poller's transmission (navCarrierOff).
	pending bool
	// hiddenAt is when we last overheard an Ack to a node we do not hear
	// (unheard), and hiddenBy the node that sent it; ackedAt when we last
	// sent that node an Ack of ours, and ackGap the time between our last
	// two Acks to it.
	hiddenAt, ackedAt time.Time
	ackGap            time.Duration
	hiddenBy          framing.NodeID
	// Broadcast frames held for the ride with our next Acks, oldest first.
	held []heldBroadcast
	// heard is when each node was last heard, any frame to anyone
	// (navFrom).
	heard [256]time.Time
	// rideFrom is where the room for riders of the channel kept (until)
	// begins (zero: kept without it); overruns counts the carriers that
	// began in that room while our unicast frame waited for nothing but
	// its end, since our data last got through (an Ack to us came;
	// without ARQ, our data went on air) and within senders.window of
	// each other (navOverrun).
	rideFrom  time.Time
	overruns  int
	overrunAt time.Time // the last overrun counted
}

// navs says whether the modem takes part in the virtual carrier sense.
func (e *Engine) navs() bool {
	return e.navWait > 0 && !e.turns.on && !e.info.OwnAccess && !e.info.NoCarrier
}

// startNAV sets how long a poll overheard keeps the channel: the Ack's
// airtime as ackWait counts it (ours, whether or not we use ARQ ourselves,
// with the same key), the delays there and back, and for a polled node we
// do not hear (navKeep) maxHeldBroadcasts broadcast frames of rideMax bytes
// behind it (navRide). delay is the one-way delay: the configured one at
// the start, and the MAC's once round trips have lengthened it
// (measuredDelay): a wait that counted the configured 100 µs where
// neighbours are 1 ms apart ended 1.8 ms before the poller's next frame
// reached us, and a frame of ours sent then met it at the poller.
func (e *Engine) startNAV(seal int, slot, delay time.Duration) {
	if e.info.OwnAccess || e.info.NoCarrier {
		return
	}
	e.navRide = phy.Airtime(maxHeldBroadcasts*rideMax, e.info.BitRate)
	e.navAck = phy.Airtime(max(framing.MaxEncodedLen(framing.AckMaxLen+seal), e.info.MinBurst), e.info.BitRate) +
		2*delay + e.info.Turnaround + e.info.CarrierLag
	e.navWait = e.navAck + 2*slot + e.navRide
}

// navFrom notes a frame from src, whoever it is for.
func (e *Engine) navFrom(now time.Time, src framing.NodeID) { e.nav.heard[src] = now }

// unheard says whether node n has not been heard at all within the time a
// sender counts (senders.window).
func (e *Engine) unheard(now time.Time, n framing.NodeID) bool {
	t := e.nav.heard[n]
	return t.IsZero() || now.Sub(t) >= e.senders.window
}

// navHeard takes a frame addressed to another node (opened, with a key): a
// poll keeps the channel for its Ack; the Ack, if we hear it, frees it.
func (e *Engine) navHeard(now time.Time, h framing.Header, payload []byte) {
	if !e.navs() || e.mac == nil {
		return
	}
	switch h.Kind {
	case framing.KindFragment:
		f, _, err := framing.ParseFrag(payload)
		if err != nil || !f.AckReq {
			return
		}
		// The room for riders only for a node we do not hear, and not
		// for a retransmission: a poller that repeats its poll got no
		// Ack (the polled node may be gone; at 1200 bit/s each room is
		// 1.84 s of silence at every overhearer).
		seq := f.Seq
		ride := e.unheard(now, h.Dst) && !(h.Src == e.nav.nextPoller && h.Dst == e.nav.nextPolled && seq == e.nav.pollSeq)
		e.nav.nextPoller, e.nav.nextPolled, e.nav.pollSeq, e.nav.nextRide = h.Src, h.Dst, seq, ride
		e.nav.pending = e.carrierOn
		e.navKeep(now)
	case framing.KindAck:
		if h.Dst != framing.Broadcast && e.unheard(now, h.Dst) {
			// An Ack to a node we do not hear: it sends to h.Src
			// unheard by us.
			e.nav.hiddenAt, e.nav.hiddenBy = now, h.Src
			defer e.hiddenToken(now, h.Src) // its turn ended (hidden.go)
		}
		if h.Src == e.nav.nextPolled && h.Dst == e.nav.nextPoller {
			e.nav.pending = false // answered within the carrier (a hang-over)
		}
		if h.Src == e.nav.polled && h.Dst == e.nav.poller && now.Before(e.nav.until) {
			e.nav.until = now // the carrier covers what rides with it
			if until, ok := e.AwaitingAck(now); ok {
				e.mac.Reserve(now, until) // our own Acks' (their late-coming poll's ackDue never returns to 0)
			} else {
				e.mac.Reserve(now, e.reserveEnd(now))
			}
		}
	}
}

// navKeep keeps the channel from now for the Ack to the poll overheard
// last (next*): navWait if it may carry riders (nextRide: we do not hear
// the polled node, and the poll was not a retransmission), else without the
// room for broadcasts riding behind the Ack (its carrier covers them). Kept
// for a node we hear, the room would cost each overhearer 1.8 s per poll at
// 1200 bit/s whenever an Ack was lost, while the poller contended again
// after its own, shorter, wait. A wait already longer (another pair's) is
// kept: the poll and its pair replace it only when they end later.
//
// The room is left out, too, once it has cost us our turn navOverruns
// times since our data last got through (navOverrun).
func (e *Engine) navKeep(now time.Time) {
	w := e.navWait
	ride := e.nav.nextRide && e.nav.overruns < navOverruns
	if !ride {
		w -= e.navRide
	}
	until := now.Add(w)
	if !until.After(e.nav.until) {
		return
	}
	e.nav.until, e.nav.poller, e.nav.polled = until, e.nav.nextPoller, e.nav.nextPolled
	e.nav.rideFrom = time.Time{}
	if ride {
		e.nav.rideFrom = until.Add(-e.navRide)
	}
	if e.nav.nextRide {
		// We do not hear the Ack: the channel is not idle for the
		// window until it has ended (csma).
		e.mac.Unobserved(now.Add(e.navAck))
	}
	if own, ok := e.AwaitingAck(now); ok && !own.Before(until) {
		return // our own reservation is longer
	}
	e.mac.Reserve(now, until)
}

// navOverruns is how many times the room for riders kept after a poll to
// a node we do not hear may take our turn (navOverrun) before we keep the
// channel without it, until our data gets through (an Ack to us comes).
const navOverruns = 4

// navOverrun notes a carrier beginning at now: if it began in the room for
// riders of the channel kept for an unheard node's Ack (navKeep) while our
// data frame waited only for the end of that room (the MAC's countdown
// ends at the reservation), the poller has begun its next transmission
// there, so its exchange is over, riders and all, and the room took our
// turn. A poller that hears nobody else sending (a lone sender: a small
// window and long bursts, csma.MAC.Contenders) begins its next
// transmission within a few slots of its receiver's Ack, always inside the
// room, so a node that only hears the poller, with data for it or for
// anyone, never went on air and was never heard: in a line of three with a
// flow on each hop and no routing daemon's hellos, the first node got 0-28
// datagrams a minute in 6 of 12 runs (TestHiddenFlowsNoHellos). Called
// before the MAC hears of the carrier.
func (e *Engine) navOverrun(now time.Time) {
	n := &e.nav
	if n.rideFrom.IsZero() || now.Before(n.rideFrom) || !now.Before(n.until) || e.mac == nil || e.mac.Transmitting() {
		return
	}
	if n.overruns > 0 && now.Sub(n.overrunAt) >= e.senders.window {
		n.overruns = 0 // long ago: the poller may have had others since
	}
	// Only for a unicast frame, which an Ack answers when it gets
	// through (and so ends the count): a node with nothing but broadcasts
	// to send (a routing daemon's hellos) would otherwise drop the room
	// for good, and its hellos and those riding behind the hidden node's
	// Acks would meet (TestHiddenQuietNeighbourKeepsRoom).
	unicast := func(f txFrame) bool { return f.meta.h.Dst != framing.Broadcast }
	if d, ok := e.mac.Deadline(); ok && d.Equal(n.until) && e.mac.AnyData(unicast) {
		n.overruns++
		n.overrunAt = now
	}
}

// navCarrierOff ends a carrier during which a poll to another node was
// overheard: a poll need not be the last frame of its transmission (the
// poll of a group goes before the frames of the next, arq.Config.GroupPolls),
// and the polled node answers when the whole transmission has ended, so the
// channel is kept for navWait from now.
func (e *Engine) navCarrierOff(now time.Time) {
	if e.nav.pending && e.navs() {
		e.nav.pending = false
		e.navKeep(now)
	}
}

// navEnd is when the channel kept for another node's Ack is free, if later
// than t.
func (e *Engine) navEnd(t time.Time) time.Time {
	if e.nav.until.After(t) {
		return e.nav.until
	}
	return t
}

// navAcked notes an Ack of ours to dst that ended at now.
func (e *Engine) navAcked(now time.Time, dst framing.NodeID) {
	if dst != e.nav.hiddenBy {
		return
	}
	if !e.nav.ackedAt.IsZero() {
		e.nav.ackGap = now.Sub(e.nav.ackedAt)
	}
	e.nav.ackedAt = now
}

// holdFor is how long a broadcast frame waits for a ride: twice the time
// between our last two Acks to the neighbour with a hidden sender, at least
// broadcastHold, at most senders.window.
func (e *Engine) holdFor() time.Duration {
	return min(max(2*e.nav.ackGap, broadcastHold), e.senders.window)
}

// holdsBroadcast says whether frame f, leaving pend for the MAC, is held for
// a ride instead (feed): a small broadcast data frame, while a neighbour we
// have acknowledged lately hears a sender we do not.
func (e *Engine) holdsBroadcast(now time.Time, f txFrame) bool {
	return !f.meta.unheld && broadcastRider(f) && e.hiding(now)
}

// hiding says whether we overhear Acks to a node we do not hear (a hidden
// sender at a neighbour) and have acknowledged that neighbour lately: our
// small broadcasts then go behind our Acks (holdsBroadcast, rideBroadcast).
func (e *Engine) hiding(now time.Time) bool {
	if !e.navs() || e.cfg.NoARQ {
		return false
	}
	recent := e.senders.window
	return !e.nav.hiddenAt.IsZero() && now.Sub(e.nav.hiddenAt) < recent &&
		!e.nav.ackedAt.IsZero() && now.Sub(e.nav.ackedAt) < recent
}

// broadcastRider says whether f may ride behind an Ack as a broadcast: a
// data frame to every node, not larger than the virtual carrier sense
// keeps the channel for.
func broadcastRider(f txFrame) bool {
	return f.meta.h.Dst == framing.Broadcast && f.meta.h.Kind != framing.KindAck && f.meta.h.Kind != framing.KindHello &&
		!f.meta.poll && len(f.buf) <= rideMax
}

// holdBroadcast keeps f (taken from e.pend, where it was first) for the
// ride with one of our next Acks. With maxHeldBroadcasts held already the
// oldest goes back to the front of e.pend first, released.
func (e *Engine) holdBroadcast(now time.Time, f txFrame) {
	if len(e.nav.held) >= maxHeldBroadcasts {
		e.unhold(now, e.popBroadcast())
	}
	e.nav.held = append(e.nav.held, heldBroadcast{f, now})
}

// releaseBroadcast sends the held broadcast frames that have waited
// holdFor to contend as any other frame (unhold), oldest first.
func (e *Engine) releaseBroadcast(now time.Time) {
	for len(e.nav.held) > 0 && !now.Before(e.nav.held[0].at.Add(e.holdFor())) {
		e.unhold(now, e.popBroadcast())
	}
}

// unhold sends f, a broadcast frame taken from the hold, to the MAC queue
// if it has room beside the places kept for Acks, else back to the front of
// e.pend (where feed takes it next, within that room); marked so that it is
// not held again. Held frames are older than anything in e.pend, so a
// flow's frames stay in order.
func (e *Engine) unhold(now time.Time, f txFrame) {
	f.meta.unheld = true
	if e.mac.Room() > ackReserve {
		if err := e.enqueueData(now, f); err == nil {
			return
		}
	}
	e.pend = append(e.pend, txFrame{})
	copy(e.pend[1:], e.pend)
	e.pend[0] = f
}

// unholdFlow releases the held broadcast frames of flow, oldest first
// (unhold), before e.pend's first frame, which is of that flow and not
// held: a flow's frames leave in the order they came. It reports whether
// there were any.
func (e *Engine) unholdFlow(now time.Time, flow uint64) bool {
	if len(e.nav.held) == 0 {
		return false
	}
	found := false
	for i := 0; i < len(e.nav.held); {
		if e.nav.held[i].f.meta.flow != flow {
			i++
			continue
		}
		f := e.nav.held[i].f
		copy(e.nav.held[i:], e.nav.held[i+1:])
		e.nav.held[len(e.nav.held)-1] = heldBroadcast{}
		e.nav.held = e.nav.held[:len(e.nav.held)-1]
		e.unhold(now, f)
		found = true
	}
	return found
}

// popBroadcast takes the oldest held broadcast frame.
func (e *Engine) popBroadcast() txFrame {
	f := e.nav.held[0].f
	n := copy(e.nav.held, e.nav.held[1:])
	e.nav.held[n] = heldBroadcast{}
	e.nav.held = e.nav.held[:n]
	return f
}

// broadcastDeadline is when the oldest held broadcast frame goes to the
// MAC, if one is held.
func (e *Engine) broadcastDeadline() (time.Time, bool) {
	if len(e.nav.held) == 0 {
		return time.Time{}, false
	}
	return e.nav.held[0].at.Add(e.holdFor()), true
}

// rideBroadcast adds to the transmission that begins with our Ack
// (e.onAir[0]) the broadcast frames held for it, then those queued next in
// the MAC, up to maxHeldBroadcasts·rideMax bytes of them (the others keep
// the channel that long: navWait), while fits says the transmission takes
// n more bytes (the burst's or the frame's limits). It returns the bytes
// it added.
func (e *Engine) rideBroadcast(now time.Time, fits func(n int) bool) int {
	if !e.navs() || e.onAir[0].meta.h.Kind != framing.KindAck {
		return 0
	}
	room := maxHeldBroadcasts * rideMax
	for _, o := range e.onAir[1:] {
		if broadcastRider(o) {
			room -= len(o.buf)
		}
	}
	added := 0
	ok := func(f txFrame) bool { return broadcastRider(f) && len(f.buf) <= room && fits(added+len(f.buf)) }
	for {
		var f txFrame
		switch {
		case len(e.nav.held) > 0:
			if !ok(e.nav.held[0].f) {
				return added
			}
			f = e.popBroadcast()
		case e.hiding(now):
			var found bool
			if f, found = e.mac.Follow(now, ok); !found {
				return added
			}
		default:
			return added
		}
		e.onAir = append(e.onAir, f)
		room -= len(f.buf)
		added += len(f.buf)
		e.stats.AckRides++
	}
}
