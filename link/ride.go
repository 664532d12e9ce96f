package link

// Small frames that ride with an Ack (docs/link-arq.md, "TCP's ACKs").
//
// A TCP receiver answers a bulk sender with a pure ACK for every segment or
// two. Each ACK is a packet of its own: without this, it waits in the MAC
// queue for a contention round (IFS and a backoff) that the bulk sender,
// going on at once after each of our link Acks (csma bursts), seldom
// leaves it, and the ACKs go out in clumps when the sender's window runs
// dry (a TCP sender that stalls). Instead, when the MAC grants one of our
// Acks (urgent: it answers the frame just received, inside the channel the
// sender keeps for it), the small data frames queued next for the same
// node go in the same transmission, right behind it: no IFS, no backoff,
// no collision with the sender's next frame (it senses our carrier until
// the last of them ends). The receiver's decoder splits the frames at
// their delimiters, as it does for a TNC's burst.
//
// Only behind a modem that senses carrier and whose channel access is our
// MAC's: one that keys up once per frame we hand it (a serial modem with
// carrier), or one that takes bursts with no key-up to save (the simulated
// medium, macDoesAccess), where they are the one kind of data frame that
// joins an Ack's burst (fillBurst). A TNC that takes bursts has fillBurst
// alone, and a modem without carrier sense takes turns (turns.go) and its
// Acks say whether data follows (More). The frames ride in queue order
// (Follow), so no flow's frames are reordered; the first that is not for
// the same node, is an Ack, or is larger than rideMax ends the ride. Each
// keeps its poll, and the sender's Ack to it comes as to any other frame.
//
// The answer to the sender's last frame is seldom ready when our Ack to it
// goes (the host takes a moment to answer), and if it then contends for
// the channel it takes the sender's turn as often as not. So a small
// packet for a node we have just acknowledged is held back (in pend, not
// yet in the MAC) for as long as that node's next frame may take to come:
// the Ack's round, IFS and a two-sender contention window (rideHold).
// When it comes, the packet rides with our Ack to it; when it does not,
// the packet goes into the MAC queue and contends as any other. Only a
// whole packet in one frame of at most rideMax bytes is held, and only
// while nothing of ours waits in the MAC queue (so it never overtakes).

import (
	"encoding/binary"
	"time"

	"github.com/slided/slided/framing"
)

// rideMax is the largest frame, in bytes on the wire, that rides with an
// Ack: a pure TCP ACK with timestamps and three SACK blocks, compressed or
// not (66 + 24 bytes of Ethernet frame, its fragment header and the
// framing). Larger frames take their contention round: a node must not
// keep the channel for its bulk data because it answers another's.
const rideMax = 128

// maxRide bounds the frames that ride with one Ack.
const maxRide = 4

// rides says whether small frames may ride with our Acks on this modem:
// one that senses carrier, whose channel access is our MAC's, and that
// keys up once per frame handed to it or takes bursts without a key-up to
// save (macDoesAccess: the simulated medium).
func (e *Engine) rides() bool {
	return !e.cfg.NoARQ && !e.info.NoCarrier && !e.info.OwnAccess && (e.info.MaxBurstFrames < 2 || e.macDoesAccess())
}

// fillRide adds to the Ack the MAC granted (e.onAir[0]) the small frames
// queued next for the same node (Follow), and returns the transmission:
// the Ack's own buffer, or the frames back to back in e.burst. The
// transmission stays within the modem's and the link's frame limits.
func (e *Engine) fillRide() []byte {
	ack := e.onAir[0]
	if ack.meta.h.Kind != framing.KindAck {
		return ack.buf
	}
	total := len(ack.buf)
	limit := e.frameMax // the modem's MaxFrame or -frame-max, if either
	// (noRide: it answers a frame that rode itself, rode.)
	if e.rides() && !e.noRide[ack.meta.h.Dst] {
		e.rideAnswers(ack.meta.h.Dst, func(n int) bool { return limit == 0 || total+n <= limit }, func(n int) { total += n })
	}
	// A broadcast frame rides too, inside the channel the others keep
	// for our Ack (nav.go).
	e.rideBroadcast(e.txStart, func(n int) bool { return limit == 0 || total+n <= limit })
	if len(e.onAir) == 1 {
		return ack.buf
	}
	e.burst = e.burst[:0]
	for _, f := range e.onAir {
		e.burst = append(e.burst, f.buf...)
	}
	return e.burst
}

// rideAnswers adds to our Ack to dst, on air in e.onAir, the small frames
// for dst queued next (fillRide, fillBurst): room says whether a frame of
// n bytes still fits in the transmission, took counts one that joined.
func (e *Engine) rideAnswers(dst framing.NodeID, room func(n int) bool, took func(n int)) {
	e.rideACK(e.txStart, dst) // a held TCP ACK joins (tcpack.go)
	if e.info.MaxBurstFrames > 1 {
		// Packets to one node share a poll there (groupsPolls): the
		// answers given while the other node's burst was on air, and
		// the ACK just released, wait in the ARQ's open group. The
		// group ends here, as it would a moment later (feedBurst).
		e.feedBurst(e.txStart)
	}
	fits := func(f txFrame) bool {
		return f.meta.tcpAck && f.meta.h.Kind != framing.KindAck && f.meta.h.Dst == dst && len(f.buf) <= rideMax && room(len(f.buf)) &&
			!aged(e.txStart, f) // (dropAged takes it out at the next Poll)
	}
	for rode := 0; rode < maxRide; rode++ {
		f, ok := e.mac.Follow(e.txStart, fits)
		if !ok {
			// Nothing else in the MAC queue: the packets held for
			// this ride (rideHeld) come next.
			if e.mac.Len() > 1 || len(e.pend) == 0 || !fits(e.pend[0]) {
				break
			}
			f = e.pend[0]
			e.pend = e.pend[:copy(e.pend, e.pend[1:])]
		}
		e.onAir = append(e.onAir, f)
		took(len(f.buf))
		e.stats.AckRides++
	}
}

// rideHold is how long a small packet for a node we have just acknowledged
// waits for that node's next frame, to ride with our Ack to it: the Ack's
// reservation, IFS and a contention window of two senders (csma: 4 × (idle
// target + 1) slots, at least 16), from our Ack's end.
func (e *Engine) rideHold() time.Duration {
	mc := e.macCfg
	cw := max(4*(mc.IdleTarget+1), 16, float64(2*mc.CWMin))
	return e.ackWait + mc.IFS + time.Duration(cw*float64(mc.SlotTime))
}

// ackedAt notes that an Ack of ours to dst ended at now (TxDone): small
// packets for dst are held for the ride with the next one (rideHeld).
func (e *Engine) ackedAt(now time.Time, dst framing.NodeID) {
	e.navAcked(now, dst) // nav.go
	// Two Acks to dst less than a frame and rideHold apart: it sends a
	// stream, and its next frame is coming.
	e.rideStream = dst == e.rideDst && !e.rideAt.IsZero() && now.Sub(e.rideAt) < e.frameAir()+e.rideHold()
	e.rideDst, e.rideAt = dst, now
}

// rideHeld says whether the packet at pend's head stays out of the MAC
// queue for now, to ride with our next Ack to its destination: a whole
// small packet in one frame, for the node we acknowledged last if it sends
// a stream (our last two Acks to it were at most a frame and rideHold
// apart: an answer to a lone frame, a ping's reply, is not held), while
// our Ack to it is on air and for rideHold after its end, with nothing of
// ours in the MAC queue (it would be overtaken otherwise; the transmission
// on air does not matter).
func (e *Engine) rideHeld(now time.Time) bool {
	waiting := e.mac.Len()
	if e.mac.Transmitting() {
		waiting-- // the MAC counts the transmission's place
	}
	if len(e.pend) == 0 || !e.rides() || waiting > 0 {
		return false
	}
	f := e.pend[0]
	if !f.meta.tcpAck || f.meta.eth == 0 || len(f.buf) > rideMax || f.meta.h.Kind == framing.KindAck || f.meta.h.Dst != e.rideDst || !e.rideStream {
		return false
	}
	for _, o := range e.onAir {
		if o.meta.h.Kind == framing.KindAck && o.meta.h.Dst == e.rideDst {
			return true // its end starts the wait again (ackedAt)
		}
	}
	return now.Before(e.rideAt.Add(e.rideHold()))
}

// rideDeadline is when a packet held for a ride goes into the MAC queue
// after all (feed), if one is held (asked as at rideAt: whether it is held
// for the Ack that ended then). While we transmit, the TxDone comes first.
func (e *Engine) rideDeadline() (time.Time, bool) {
	if e.rideAt.IsZero() || !e.rideHeld(e.rideAt) || e.mac.Transmitting() {
		return time.Time{}, false
	}
	return e.rideAt.Add(e.rideHold()), true
}

// answerEnded keeps the channel reserved past the end of a carrier that
// began inside the reservation for our Acks (the answer) until its frames
// have been decoded: two slots later at most, or until the Acks come
// (fromAir ends the reservation). The reservation is sized for a lone Ack
// (ackWait); an answer that carries frames riding with it lasts longer,
// and without this our next frame of a burst went on air as the carrier
// dropped, before the answer was read, and our Ack to what rode came a
// whole frame late (TestRideKeepsReservation).
//
// Behind a modem that takes bursts (macDoesAccess) each frame of the answer
// is handed up as it ends: the Ack, first, ended the reservation (fromAir)
// while the carrier stayed on for the frames behind it, and the last of
// them is handed up as the carrier drops, through real daemons a moment
// later. The channel is kept two slots for it, so that our Ack to it goes
// before our next data (Acks ignore the reservation): the MAC's burst goes
// on at the carrier's end, without IFS (TestRideKeepsReservationBursts).
func (e *Engine) answerEnded(now time.Time) {
	if !e.rides() || e.carrierAt.Before(e.txStart) {
		return
	}
	if e.info.MaxBurstFrames > 1 {
		// (An Ack to us began this carrier's frames; a longer
		// reservation, for Acks still due, is kept.)
		if until := now.Add(2 * e.macCfg.SlotTime); e.rideFrom != 0 && (e.ackDue == 0 || !e.ackDueAt.After(until)) {
			e.mac.Reserve(now, e.navEnd(until))
		}
		return
	}
	if e.ackDue == 0 || !e.carrierAt.Before(e.ackDueAt) {
		return
	}
	if until := now.Add(2 * e.macCfg.SlotTime); until.After(e.ackDueAt) {
		e.ackDueAt = until
		e.mac.Reserve(now, e.navEnd(until)) // or longer, for another node's Ack (nav.go)
	}
}

// rode says whether the frame from the air h rode behind an Ack to us in
// the same reception (a node's answer, fillRide): its sender did not
// contend for the channel, so it does not count as a sender for the MAC's
// window (senders.go). Counted, it widened the bulk sender's window to two
// senders' after each of its bursts, for a node that never contends while
// its answers ride. A frame that did not ride, or one split from its Ack
// over two receptions, counts as before. Behind a modem that takes bursts,
// whose frames are handed up one by one (the simulated medium), the frames
// of one carrier are one transmission (Engine.Modem).
//
// It also notes whether the last data frame from h.Src rode: our Ack to it
// then carries nothing (fillRide). Otherwise two nodes sending each other
// small frames answered every ride with one, the channel never fell idle
// and a third node never got it (TestRidesDoNotLockOut: 0 datagrams
// against 667 each in 10 s). So every ride answers a frame whose sender
// won the channel for it.
func (e *Engine) rode(h framing.Header) bool {
	if h.Kind == framing.KindAck {
		e.rideFrom = 0
		if h.Dst == e.cfg.Node {
			e.rideFrom = h.Src
		}
		return false
	}
	if h.Dst == e.cfg.Node && h.Kind != framing.KindHello {
		e.dataFrom, e.dataAt = h.Src, e.now // (receivingFrom)
	}
	r := h.Src == e.rideFrom && h.Src != 0
	e.noRide[h.Src] = r
	return r
}

// tcpAnswer says whether eth is a TCP segment without payload with the ACK
// flag (a pure ACK, with SACK blocks or not, a duplicate, a window update,
// a FIN): TCP's own answer to the data it receives, the only kind of frame
// that rides with an Ack. Its rides are bounded by the data the node
// receives. Any small frame rode at first, and two nodes sending small
// datagrams both ways then took twice the share of a third
// (TestRidesDoNotLockOut: 566 and 323 datagrams against 159).
func tcpAnswer(eth []byte) bool {
	if len(eth) < 14 {
		return false
	}
	var tcp []byte
	switch et, ip := binary.BigEndian.Uint16(eth[12:]), eth[14:]; {
	case et == 0x0800 && len(ip) >= 20 && ip[0]>>4 == 4 && ip[9] == 6:
		ihl, total := int(ip[0]&0x0f)*4, int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < 20 || total < ihl || total > len(ip) || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return false
		}
		tcp = ip[ihl:total]
	case et == 0x86dd && len(ip) >= 40 && ip[6] == 6:
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if 40+plen > len(ip) {
			return false
		}
		tcp = ip[40 : 40+plen]
	default:
		return false
	}
	return len(tcp) >= 20 && int(tcp[12]>>4)*4 == len(tcp) && tcp[13]&0x10 != 0 && tcp[13]&0x06 == 0 // ACK, no SYN or RST
}
