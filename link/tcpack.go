package link

// Thinning of pure TCP ACKs (docs/link-arq.md, "TCP's ACKs"), RFC 3449
// §5.2.2 (ACK filtering), on top of the ride of small frames (ride.go).
//
// A TCP receiver behind a slow link sends one pure ACK per segment (its
// delayed-ACK timer, 40 ms, is shorter than a segment's airtime). Each
// rides with our link Ack to the sender, but still costs its bytes, its
// own link Ack and two turnarounds, a few percent of the channel. So a
// pure ACK for a node whose data we are receiving waits outside the ARQ
// (stash; the host is read on meanwhile) and rides only with every
// thinEvery-th Ack to that node; a newer pure ACK of the same connection
// that arrives meanwhile takes its place: it says all the older one did.
// The sender gets one ACK for every thinEvery segments, its cumulative
// acknowledgement as fresh as the ride allows. (RFC 5681 §4.2 asks a
// receiver for an ACK at least every second segment; RFC 3449 §5.2.2
// filters ACKs on the link beyond that, and Linux's senders count the
// segments an ACK covers, so the window grows as before.)
//
// Only what RFC 3449 allows replaces: an ACK without payload, with only
// the ACK flag (no SYN, FIN, RST, URG, PSH, ECE, CWR or AE), no IPv4
// options or fragments, no ECN mark on the IP header, and TCP options of
// only timestamps and padding (an ACK with SACK blocks reports losses and
// is sent as it is); a newer one replaces the one held only if it is of
// the same addresses and ports and acknowledges more (a duplicate ACK, or
// a window update for the same number, signals something and goes behind
// it). Anything else the host gives sends the held ACK first, so nothing
// is reordered; the frame that replaces is the host's own, so no header is
// rewritten. The ACK held goes at the latest stashMax after the host gave
// it, into the ARQ (where it rides with the next Ack or contends), or, if
// another node's carrier is on then, when it drops: it could not go on air
// before. Behind a modem that takes bursts (the simulated medium) one Ack
// answers a burst of the sender's segments, seconds long at 115200 bit/s:
// the ACKs given meanwhile replace each other, and the last rides with
// that Ack (rideACK).

import (
	"encoding/binary"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// pureACK is a pure TCP ACK that a newer one may replace (RFC 3449
// §5.2.2): its connection (addresses and ports) and its acknowledgement
// number.
type pureACK struct {
	conn [36]byte // the addresses (IPv4: 8 bytes, IPv6: 32), then the ports
	n    int      // bytes of conn in use
	ack  uint32
}

// parsePureACK reports whether eth is a pure TCP ACK that may be replaced
// by a newer one of its connection, and which. It never fails on short or
// odd input: anything it does not recognise is not such an ACK.
func parsePureACK(eth []byte) (a pureACK, ok bool) {
	if len(eth) < 14 {
		return a, false
	}
	var tcp []byte
	switch et, ip := binary.BigEndian.Uint16(eth[12:]), eth[14:]; et {
	case 0x0800:
		if len(ip) < 20 || ip[0] != 0x45 || ip[9] != 6 || ip[1]&3 == 3 {
			return a, false // options, not TCP, or marked CE
		}
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if total < 20 || total > len(ip) || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return a, false // a fragment
		}
		a.n = copy(a.conn[:], ip[12:20])
		tcp = ip[20:total]
	case 0x86dd:
		if len(ip) < 40 || ip[0]>>4 != 6 || ip[6] != 6 || (binary.BigEndian.Uint16(ip[0:])>>4)&3 == 3 {
			return a, false // an extension header, or marked CE
		}
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if 40+plen > len(ip) {
			return a, false
		}
		a.n = copy(a.conn[:], ip[8:40])
		tcp = ip[40 : 40+plen]
	default:
		return a, false
	}
	if len(tcp) < 20 {
		return a, false
	}
	off := int(tcp[12]>>4) * 4
	if off < 20 || off != len(tcp) || tcp[12]&0x0f != 0 || tcp[13] != 0x10 {
		return a, false // payload, reserved or AE bits, or flags other than ACK alone
	}
	for o := tcp[20:off]; len(o) > 0; {
		switch o[0] {
		case 0: // end of options
			o = nil
		case 1: // padding
			o = o[1:]
		case 8: // timestamps
			if len(o) < 10 || o[1] != 10 {
				return a, false
			}
			o = o[10:]
		default: // SACK blocks and anything else: sent as it is
			return a, false
		}
	}
	a.n += copy(a.conn[a.n:], tcp[0:4])
	a.ack = binary.BigEndian.Uint32(tcp[8:])
	return a, true
}

// sameConn says whether a and b belong to one connection, one direction.
func (a *pureACK) sameConn(b *pureACK) bool {
	return a.n == b.n && a.conn == b.conn
}

// stash is the pure ACK held for thinning (at most one), and the last
// pure ACK the host gave.
type stash struct {
	held   bool
	eth    []byte // the host's frame, copied (the buffer is reused)
	ack    pureACK
	dst    framing.NodeID
	at     time.Time // when the host gave the first ACK it stands for
	merged int       // older ACKs it replaced
	skips  int       // Acks to dst that went without it

	last pureACK   // the last pure ACK the host gave, held or not
	seen time.Time // when
	run  int       // pure ACKs of last's connection before it, each within stashMax of the one before
}

// quickACKs is how many pure ACKs of a connection go unthinned after a
// pause (its start included): TCP's first round trips set its
// retransmission timer, and an ACK held for two more segments there made
// the sender time out and resend the connection's first segment (2 of 2
// spurious retransmissions in the first 1.5 s of a run with every ACK
// thinned from the start). Linux's receiver quick-acks its first segments
// for the same reason.
const quickACKs = 16

// stashMax bounds how long an ACK is held: thinEvery of the largest
// frames' airtime and rideHold (a segment from the sender and our Ack, as
// many times as the ACK waits for), at most half a second, TCP's limit on
// a delayed ACK (RFC 1122 §4.2.3.2).
func (e *Engine) stashMax() time.Duration {
	return min(thinEvery*e.frameAir()+e.rideHold(), 500*time.Millisecond)
}

// stashACK takes a frame from the host before the ARQ does: a pure ACK
// for the node whose data we are receiving is held, replacing the one held
// for its connection; anything else sends the held ACK first. It reports
// whether it kept eth (the caller sends it otherwise).
func (e *Engine) stashACK(now time.Time, eth []byte) bool {
	s := &e.stash
	a, ok := parsePureACK(eth)
	if !ok || !e.rides() {
		e.releaseACK(now)
		return false
	}
	same, more := s.last.sameConn(&a), int32(a.ack-s.last.ack) > 0
	if same && now.Sub(s.seen) < e.stashMax() {
		s.run++
	} else {
		s.run = 0
	}
	s.last, s.seen = a, now
	if s.held {
		if s.ack.sameConn(&a) && int32(a.ack-s.ack.ack) > 0 {
			s.eth, s.ack = append(s.eth[:0], eth...), a
			s.merged++
			e.stats.TCPAcksThinned++
			return true
		}
		e.releaseACK(now)
	}
	if same && !more {
		// A duplicate ACK (or a window update): it says something the
		// last did not, and goes at once.
		return false
	}
	if s.run < quickACKs {
		return false // the connection's start, or after a pause
	}
	h, _, err := framing.Compact(eth, e.cfg.Node)
	if err != nil || !e.receivingFrom(now, h.Dst) {
		return false
	}
	s.held, s.eth, s.ack, s.dst, s.at, s.merged, s.skips = true, append(s.eth[:0], eth...), a, h.Dst, now, 0, 0
	return true
}

// receivingFrom says whether node n sends us data: our last Ack went to
// it, or its last data frame came to us, within stashMax. (Behind a modem
// that takes bursts our Acks to a node are a burst of its frames apart,
// seconds at 115200 bit/s, and its frames tell.)
func (e *Engine) receivingFrom(now time.Time, n framing.NodeID) bool {
	within := func(t time.Time) bool { return !t.IsZero() && now.Before(t.Add(e.stashMax())) }
	return n == e.rideDst && within(e.rideAt) || n == e.dataFrom && within(e.dataAt)
}

// releaseACK sends the held ACK, if any, into the ARQ.
func (e *Engine) releaseACK(now time.Time) {
	s := &e.stash
	if !s.held {
		return
	}
	s.held = false
	e.hostPacket(now, s.eth) // the ARQ copies what it keeps
}

// rideACK is called when our Ack to dst goes on air (fillRide, fillBurst):
// the held ACK for dst rides with every thinEvery-th Ack to dst since the
// host gave the first ACK it stands for, or with the first Ack once it
// stands for thinEvery of the host's ACKs (one Ack answers a burst of
// segments behind a modem that takes bursts).
func (e *Engine) rideACK(now time.Time, dst framing.NodeID) {
	s := &e.stash
	if !s.held || s.dst != dst {
		return
	}
	if s.skips < thinEvery-1 && s.merged+1 < thinEvery {
		s.skips++
		return
	}
	e.releaseACK(now)
}

// stashDeadline is when the held ACK goes without a ride (stashMax). While
// another node's carrier is on, none: the ACK could not go on air before
// it drops (an input: Poll comes then), and meanwhile newer ACKs replace
// it (a sender's burst lasts seconds at 115200 bit/s).
func (e *Engine) stashDeadline() (time.Time, bool) {
	if !e.stash.held || e.carrierOn {
		return time.Time{}, false
	}
	return e.stash.at.Add(e.stashMax()), true
}

// frameAir is the airtime of the largest frame the link sends.
func (e *Engine) frameAir() time.Duration {
	n := e.frameCap
	if e.frameMax > 0 {
		n = min(n, e.frameMax)
	}
	return phy.Airtime(n, e.info.BitRate)
}

// stashQueued says whether the held ACK is of flow (FlowQueued).
func (e *Engine) stashQueued(flow uint64) bool {
	return e.stash.held && FlowKey(e.stash.eth) == flow
}

// stashDue sends the held ACK once stashMax has passed (Poll).
func (e *Engine) stashDue(now time.Time) {
	if d, ok := e.stashDeadline(); ok && !now.Before(d) {
		e.releaseACK(now)
	}
}

// thinEvery: the held ACK rides with every thinEvery-th Ack to its node,
// so the sender gets one ACK for every thinEvery segments. Through real
// daemons at 115200 bit/s (hostloss iperf3-tcp, alternated runs) 3 gave
// 0.888 and 0.897 of the channel, 2 gave 0.886 and 0.868
// (docs/link-arq.md).
const thinEvery = 3
