package arq

import (
	"time"

	"github.com/slided/slided/framing"
)

// rtt is one peer's round-trip estimate and Ack timeout, after RFC 6298:
//
//	first sample R:  SRTT = R, RTTVAR = R/2
//	later samples:   RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, SRTT = 7/8 SRTT + 1/8 R
//	RTO = SRTT + max(G, 4 RTTVAR), clamped to [lo, hi]
//
// A timeout doubles RTO up to hi (backoff); the doubled value stays until
// the next sample, so that a timeout set too short for the link grows
// until an Ack comes back before it and can be measured (Karn's algorithm:
// the caller takes no sample from a round whose poll was sent more than
// once). Before the first sample RTO is the configured initial timeout.
type rtt struct {
	srtt, rttvar time.Duration
	rto          time.Duration
	samples      uint64
}

// rttBounds are the limits an rtt works within.
type rttBounds struct {
	init, lo, hi, g time.Duration
	fixed           bool // RTO stays init: samples are recorded, the timeout does not follow them
}

func (c *Config) rttBounds() rttBounds {
	b := rttBounds{init: c.AckTimeout, lo: c.MinAckTimeout, hi: c.MaxAckTimeout, g: c.RTTGranularity}
	if b.hi <= 0 {
		b.hi, b.fixed = c.AckTimeout, true
	}
	return b
}

func newRTT(b rttBounds) rtt { return rtt{rto: b.init} }

// sample takes one round-trip measurement r.
func (e *rtt) sample(b rttBounds, r time.Duration) {
	r = max(r, 0)
	if e.samples == 0 {
		e.srtt, e.rttvar = r, r/2
	} else {
		d := e.srtt - r
		if d < 0 {
			d = -d
		}
		e.rttvar = (3*e.rttvar + d) / 4
		e.srtt = (7*e.srtt + r) / 8
	}
	e.samples++
	if !b.fixed {
		e.rto = min(max(e.srtt+max(b.g, 4*e.rttvar), b.lo), b.hi)
	}
}

// backoff doubles the timeout after a timeout of a round armed with it,
// up to hi. A round armed before an earlier backoff (several packets timing
// out together) does not double it again.
func (e *rtt) backoff(b rttBounds, armedWith time.Duration) {
	if b.fixed || armedWith < e.rto {
		return
	}
	e.rto = min(2*e.rto, b.hi)
}

// PeerStats is what an ARQ knows about one other node: its round-trip
// estimate and the ack timeout in use towards it, what was sent to it and
// lost, and when it was last heard.
type PeerStats struct {
	Node framing.NodeID
	// SRTT and RTTVar are the smoothed round trip and its mean deviation,
	// from a poll's hand-over (or its TxDone, which re-arms the timer) to
	// its Ack; 0 before the first sample.
	SRTT, RTTVar time.Duration
	// RTO is the ack timeout the next round towards the node gets:
	// Config.AckTimeout before any sample, then SRTT + max(G, 4·RTTVar)
	// within [MinAckTimeout, MaxAckTimeout], doubled by each timeout.
	RTO time.Duration
	// Samples counts the round trips measured (Karn's rule skips packets
	// that timed out).
	Samples uint64
	// Sent to the node, as in Stats.
	Packets, Fragments, Retransmissions, Timeouts, GiveUps, Acked uint64
	// LastHeard is the time given with the last frame received from the
	// node (any kind, any destination); zero if never.
	LastHeard time.Time
}

// peerStats are the per-peer counters kept beside the estimate.
type peerStats struct {
	packets, fragments, retx, timeouts, giveUps, acked uint64
}

// AppendPeers appends the state of every node the ARQ has sent to,
// received from or heard, in node order, and returns the extended slice:
// at most 254 entries. It allocates only when dst lacks room.
func (a *ARQ) AppendPeers(dst []PeerStats) []PeerStats {
	for id := 1; id < int(framing.Broadcast); id++ {
		p, heard := a.peers[id], a.heard[id]
		if p == nil && heard == 0 {
			continue
		}
		s := PeerStats{Node: framing.NodeID(id)}
		if heard != 0 {
			s.LastHeard = time.Unix(0, heard)
		}
		if p != nil {
			s.SRTT, s.RTTVar, s.RTO, s.Samples = p.rtt.srtt, p.rtt.rttvar, p.rtt.rto, p.rtt.samples
			c := &p.stats
			s.Packets, s.Fragments, s.Retransmissions, s.Timeouts, s.GiveUps, s.Acked =
				c.packets, c.fragments, c.retx, c.timeouts, c.giveUps, c.acked
		} else {
			s.RTO = a.rttb.init
		}
		dst = append(dst, s)
	}
	return dst
}
