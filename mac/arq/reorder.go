package arq

import (
	"time"

	"github.com/slided/slided/framing"
)

// In-order delivery per sending peer (the receive side's reorder buffer,
// after 802.11's block-ack reordering).
//
// A unicast packet complete at the receiver is accepted (acknowledged,
// remembered against duplicates) at once, but handed up only in sequence
// order of its sender: a packet complete while an earlier number is still
// missing (a lost fragment being retransmitted) is held until the gap fills.
// Each peer has a window start, rxNext, the oldest number not yet handed up:
//
//	seq == rxNext               hand it up, then every held packet that follows without a gap
//	rxNext < seq < rxNext+S     hold it (S: SeqSpan, how far the sender's numbers may run
//	                            ahead of its oldest outstanding packet)
//	rxNext+S <= seq (<= +127)   the sender has resolved (acknowledged or given up) every
//	                            number up to seq-S: hand up what is held below seq-S+1,
//	                            gaps skipped, and move rxNext there, then as above
//	seq before rxNext           its gap was skipped already: handed up at once (Late)
//
// A gap is never waited for longer than ReorderTimeout after the packet
// behind it was held (the sender has given up by then), and a First packet
// (the sender restarted) releases everything held from its previous life.
// Memory: at most S-1 packets per peer, ReorderPackets packets
// and ReorderBytes bytes in all; a packet that finds no room releases the
// oldest held packet's peer past its first gap (Overflows): order is given up
// before data.

// held is one complete unicast packet waiting for a gap before it.
type held struct {
	used bool
	src  framing.NodeID
	seq  uint8
	h    framing.Header
	at   time.Time
	data []byte // cap MaxPacket, reused
}

// reorders reports whether unicast packets go through the reorder buffer.
func (a *ARQ) reorders() bool { return !a.cfg.NoARQ && !a.cfg.NoReorder }

// handUp gives one packet to the sink.
func (a *ARQ) handUp(now time.Time, h framing.Header, pkt []byte) {
	a.stats.Delivered++
	a.sink.Deliver(now, h, pkt)
}

// order hands up, or holds, a complete unicast packet seq from src; front
// says it is the most advanced number delivered from src so far (the
// duplicate rule's highest moved to it).
func (a *ARQ) order(now time.Time, src framing.NodeID, p *peer, seq uint8, front bool, h framing.Header, pkt []byte) {
	if !p.rxSet {
		// The first packet heard from this sender (or of its new life):
		// nothing before it is waited for.
		p.rxNext, p.rxSet = seq, true
	}
	w := uint8(a.cfg.SeqSpan)
	for range 2 * len(a.held) {
		d := seq - p.rxNext
		switch {
		case d == 0:
			a.handUp(now, h, pkt)
			p.rxNext++
			a.releaseRun(now, src, p, nil)
			return
		case front && d >= w:
			// The sender's newest packet, SeqSpan or more after the
			// window start, however far: the start lags behind gaps the
			// sender has resolved. Seen only as a number up to 127 after
			// the start, a start more than 127 behind (the one packet at
			// exactly SeqSpan lost, SeqSpan 127) took the sender's new
			// packets for late ones, and once the numbers wrapped held
			// them behind a gap that would never fill, under the numbers
			// of packets held from 256 earlier: dropped as duplicates,
			// acknowledged and never delivered (TestAckedIsDelivered).
			a.skipTo(now, src, p, seq-w+1, &a.stats.ReorderSkipped)
			continue
		case d >= 128:
			a.stats.ReorderLate++
			a.handUp(now, h, pkt)
			return
		case d >= w:
			a.skipTo(now, src, p, seq-w+1, &a.stats.ReorderSkipped)
			continue
		}
		if a.findHeld(src, seq) != nil {
			return // the duplicate filter keeps this from happening
		}
		if e := a.holdSlot(len(pkt)); e != nil {
			e.used, e.src, e.seq, e.h, e.at = true, src, seq, h, now
			e.data = append(e.data[:0], pkt...)
			p.rxHeld++
			a.stats.ReorderHeld++
			a.stats.ReorderHeldBytes += len(pkt)
			a.stats.ReorderWaited++
			return
		}
		if a.overflow(now, src, p, seq, h, pkt) {
			return
		}
	}
	// Not reached: each overflow frees a packet, and the pool is finite.
	a.handUp(now, h, pkt)
}

// holdSlot returns a free entry for n bytes, or nil if holding them would
// pass ReorderPackets or ReorderBytes.
func (a *ARQ) holdSlot(n int) *held {
	if a.stats.ReorderHeld >= len(a.held) || a.stats.ReorderHeldBytes+n > a.cfg.ReorderBytes {
		return nil
	}
	for i := range a.held {
		if e := &a.held[i]; !e.used {
			if e.data == nil {
				e.data = make([]byte, 0, a.cfg.MaxPacket)
			}
			return e
		}
	}
	return nil
}

func (a *ARQ) findHeld(src framing.NodeID, seq uint8) *held {
	for i := range a.held {
		if e := &a.held[i]; e.used && e.src == src && e.seq == seq {
			return e
		}
	}
	return nil
}

// releaseHeld hands e up and frees it.
func (a *ARQ) releaseHeld(now time.Time, p *peer, e *held) {
	n := len(e.data)
	a.handUp(now, e.h, e.data)
	e.used = false
	e.data = e.data[:0]
	p.rxHeld--
	a.stats.ReorderHeld--
	a.stats.ReorderHeldBytes -= n
}

// releaseRun hands up the held packets from rxNext on while they follow
// without a gap; counter, if set, counts them (their gap was given up).
func (a *ARQ) releaseRun(now time.Time, src framing.NodeID, p *peer, counter *uint64) {
	for p.rxHeld > 0 {
		e := a.findHeld(src, p.rxNext)
		if e == nil {
			return
		}
		if counter != nil {
			*counter++
		}
		a.releaseHeld(now, p, e)
		p.rxNext++
	}
}

// skipTo gives up the gaps before to: the packets held below it are handed
// up in order, rxNext moves to to, and the packets that follow it without a
// gap go too. counter counts every packet handed up.
func (a *ARQ) skipTo(now time.Time, src framing.NodeID, p *peer, to uint8, counter *uint64) {
	for p.rxNext != to {
		if p.rxHeld == 0 {
			p.rxNext = to
			break
		}
		if e := a.findHeld(src, p.rxNext); e != nil {
			*counter++
			a.releaseHeld(now, p, e)
		}
		p.rxNext++
	}
	a.releaseRun(now, src, p, counter)
}

// lowestHeld returns the held packet of src nearest after rxNext, and the
// earliest time any of its packets was held.
func (a *ARQ) lowestHeld(src framing.NodeID, p *peer) (low *held, oldest time.Time) {
	for i := range a.held {
		e := &a.held[i]
		if !e.used || e.src != src {
			continue
		}
		if low == nil || e.seq-p.rxNext < low.seq-p.rxNext {
			low = e
		}
		if oldest.IsZero() || e.at.Before(oldest) {
			oldest = e.at
		}
	}
	return low, oldest
}

// overflow makes room for packet seq from src (peer p, with header h and
// bytes pkt): the peer with the packet held longest is released past its
// first gap. If that is src and seq comes before everything it holds, the
// gap ends at seq: pkt is handed up, then what follows it, and overflow
// reports true.
func (a *ARQ) overflow(now time.Time, src framing.NodeID, p *peer, seq uint8, h framing.Header, pkt []byte) bool {
	var old *held
	for i := range a.held {
		if e := &a.held[i]; e.used && (old == nil || e.at.Before(old.at)) {
			old = e
		}
	}
	if old == nil {
		return false
	}
	q := a.peers[old.src]
	low, _ := a.lowestHeld(old.src, q)
	if q == p && seq-p.rxNext < low.seq-p.rxNext {
		a.stats.ReorderOverflows++
		a.handUp(now, h, pkt)
		p.rxNext = seq + 1
		a.releaseRun(now, src, p, &a.stats.ReorderOverflows)
		return true
	}
	a.skipTo(now, old.src, q, low.seq, &a.stats.ReorderOverflows)
	return false
}

// restart hands up, in order, everything held from src: its sender has
// restarted, and its numbering starts again at first, the number of the
// First packet.
func (a *ARQ) restart(now time.Time, src framing.NodeID, p *peer, first uint8) {
	for p.rxHeld > 0 {
		low, _ := a.lowestHeld(src, p)
		a.skipTo(now, src, p, low.seq, &a.stats.ReorderSkipped)
	}
	// Once the receiver has answered a fragment of the First packet, the
	// sender's window opens: later packets may be complete before it.
	p.rxNext, p.rxSet = first, true
}

// reorderDeadline is when the first held packet's wait ends.
func (a *ARQ) reorderDeadline() (t time.Time, ok bool) {
	for i := range a.held {
		if e := &a.held[i]; e.used {
			if d := e.at.Add(a.cfg.ReorderTimeout); !ok || d.Before(t) {
				t, ok = d, true
			}
		}
	}
	return t, ok
}

// pollReorder releases, past their gaps, the packets held ReorderTimeout.
func (a *ARQ) pollReorder(now time.Time) {
	if a.stats.ReorderHeld == 0 {
		return
	}
	for id, p := range a.peers {
		if p == nil {
			continue
		}
		src := framing.NodeID(id)
		for p.rxHeld > 0 {
			low, oldest := a.lowestHeld(src, p)
			if now.Before(oldest.Add(a.cfg.ReorderTimeout)) {
				break
			}
			a.skipTo(now, src, p, low.seq, &a.stats.ReorderTimeouts)
		}
	}
}
