package arq

import (
	"math/rand/v2"
	"time"

	"github.com/slided/slided/framing"
)

// rtt is one peer's round-trip estimate and Ack timeout, after RFC 6298:
//
//	first sample R:  SRTT = R, RTTVAR = R/2
//	later samples:   RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, SRTT = 7/8 SRTT + 1/8 R
//	RTO = SRTT + max(G, 4 RTTVAR), clamped to [lo, hi]
//
// Before the first sample RTO is the configured initial timeout. A timeout
// doubles RTO (backoff) and the doubled value stays until the next sample:
// the caller takes no sample from a packet whose poll went more than once
// (Karn's rule), so a timeout set too short for the link must grow until
// an Ack beats it and can be measured.
//
// On a radio or acoustic link a timeout is mostly a lost frame, not a
// congested path, and a packet's life is bounded (MaxAge): doubling at
// every loss would leave a lossy link few rounds per packet. So once the
// estimate is valid, backoff stops at twice the estimated RTO, and an Ack
// to a retransmitted packet that comes when the estimate says an answer
// to the retransmission would (within max(G, 4 RTTVAR) of SRTT) undoes
// it: that timeout was a loss. An Ack that comes at any other time answers
// an earlier transmission (or the round trip has changed): the timeout was
// too short, and backoff may grow to hi until the next sample, as before
// the first.
type rtt struct {
	srtt, rttvar time.Duration
	last         time.Duration // the last sample
	rto          time.Duration
	samples      uint64
	// doubt: the estimate is not to be trusted (no sample yet, or a
	// timeout proved too short since the last); backoff may reach hi.
	doubt bool
}

// rttBounds are the limits an rtt works within.
type rttBounds struct {
	init, lo, hi, g time.Duration
	fixed           bool // RTO stays init: samples are recorded, the timeout does not follow them
	// jitter is Config.RetryJitter, drawn from rng (nil without jitter).
	jitter float64
	rng    *rand.Rand
}

func (c *Config) rttBounds() rttBounds {
	b := rttBounds{init: c.AckTimeout, lo: c.MinAckTimeout, hi: c.MaxAckTimeout, g: c.RTTGranularity}
	if b.hi <= 0 {
		b.hi, b.fixed = c.AckTimeout, true
	}
	if c.RetryJitter > 0 {
		b.jitter = c.RetryJitter
		b.rng = rand.New(rand.NewPCG(c.Seed, uint64(c.Self)))
	}
	return b
}

// wait is how long a round armed with timeout rto waits for its Ack: rto,
// plus a random part of it below jitter·rto (Config.RetryJitter), so that
// two nodes that lost their frames to each other do not retransmit in
// lockstep. The jitter is not part of the estimate: a round trip is still
// timed from when the round was armed.
func (b *rttBounds) wait(rto time.Duration) time.Duration {
	if b.rng == nil || rto <= 0 {
		return rto
	}
	if j := int64(b.jitter * float64(rto)); j > 0 {
		return rto + time.Duration(b.rng.Int64N(j))
	}
	return rto
}

func newRTT(b rttBounds) rtt { return rtt{rto: b.init, doubt: true} }

// base is the timeout the estimate gives, without backoff.
func (e *rtt) base(b rttBounds) time.Duration {
	if e.samples == 0 {
		return b.init
	}
	return min(max(e.srtt+max(b.g, 4*e.rttvar), b.lo), b.hi)
}

// sample takes one round-trip measurement r.
func (e *rtt) sample(b rttBounds, r time.Duration) {
	r = max(r, 0)
	e.last = r
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
	e.doubt = false
	if !b.fixed {
		e.rto = e.base(b)
	}
}

// settle handles an Ack that Karn's rule keeps from being a sample: it
// answers a packet that timed out, r after the current round was armed.
func (e *rtt) settle(b rttBounds, r time.Duration) {
	if b.fixed || e.samples == 0 {
		return // nothing to compare with: the backoff stays
	}
	d := e.srtt - r
	if d < 0 {
		d = -d
	}
	if d <= max(b.g, 4*e.rttvar) {
		e.rto = e.base(b) // the retransmission's answer: the timeout was a loss
	} else {
		e.doubt = true // an earlier transmission's: the timeout was too short
	}
}

// backoff doubles the timeout after a timeout of a round armed with it:
// up to hi while the estimate is in doubt, else up to twice the estimate's
// timeout. A round armed before an earlier backoff (several packets timing
// out together) does not double it again.
func (e *rtt) backoff(b rttBounds, armedWith time.Duration) {
	if b.fixed || armedWith < e.rto {
		return
	}
	limit := b.hi
	if !e.doubt {
		limit = min(max(2*e.base(b), e.rto), b.hi)
	}
	e.rto = min(2*e.rto, limit)
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
	// LastRTT is the last round trip measured (the sample itself, not
	// smoothed); 0 before the first.
	LastRTT time.Duration
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
			s.SRTT, s.RTTVar, s.LastRTT, s.RTO, s.Samples = p.rtt.srtt, p.rtt.rttvar, p.rtt.last, p.rtt.rto, p.rtt.samples
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
