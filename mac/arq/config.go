package arq

import (
	"errors"
	"fmt"
	"time"

	"github.com/slided/slided/framing"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("arq: invalid config")

// Config holds the fragmentation, ARQ and reassembly parameters of one node.
// DefaultConfig fills it from the link's timing.
type Config struct {
	// Self is this node's id: frames for other unicast destinations are
	// ignored, and Acks are sent from it.
	Self framing.NodeID
	// MaxPayload is the largest link payload (bytes between the 3-byte
	// header and the CRC) one frame may carry: -frame-max minus the framing
	// overhead. A fragment carries MaxPayload-4 packet bytes. Must be > 4.
	MaxPayload int
	// MaxPacket is the largest packet Send accepts and reassembly builds
	// (an Ethernet frame with its header, or the KindData payload).
	MaxPacket int
	// NoARQ turns acknowledgements off for unicast: packets go once, as
	// broadcast does.
	NoARQ bool
	// AckTimeout is how long the sender waits for an Ack after the last
	// fragment of a round went on air (TxDone) or, without TxDone, was
	// handed to the Sink, until the first round trip to the peer has been
	// measured. See Timing.AckTimeout.
	AckTimeout time.Duration
	// MaxAckTimeout, if positive, makes the timeout learn, per peer: from
	// measured round trips (RFC 6298: SRTT + max(RTTGranularity,
	// 4·RTTVAR)), doubled by timeouts (rtt.go says how far), never above
	// MaxAckTimeout nor below MinAckTimeout. 0: every round waits
	// AckTimeout (round trips are still measured and reported). Must be
	// at least AckTimeout.
	MaxAckTimeout time.Duration
	// MinAckTimeout is the learned timeout's lower bound: the shortest
	// round trip the link allows (Timing.MinAckTimeout). At most
	// AckTimeout.
	MinAckTimeout time.Duration
	// RTTGranularity is G of RFC 6298, the least margin the learned
	// timeout keeps above SRTT: the driver's timer and scheduling latency.
	RTTGranularity time.Duration
	// ArmOnTxDone starts each round's Ack timer only at TxDone of its poll
	// fragment, not when the fragments are handed to the Sink: for a driver
	// whose queue may hold a frame longer than AckTimeout (a daemon with
	// several frames queued for a slow modem). The driver must then call
	// TxDone for every poll, sent or dropped.
	ArmOnTxDone bool
	// BurstSamples, with ArmOnTxDone: polls armed at the same instant left
	// in one transmission (a burst behind a TNC), and their Acks answer one
	// channel access, so only the first of them is a round-trip sample
	// (counting that delay once per poll shrank RTTVAR until the next
	// burst's Acks, a little later, all timed out). Off, every Ack to an
	// untimed-out poll is a sample, as when each poll goes alone.
	BurstSamples bool
	// ResendOvertaken, with BurstSamples: a poll still unanswered when an
	// Ack answers a poll that left after it is taken for lost and goes
	// again at once (Stats.Overtaken), not after its timer. The driver
	// sets it where the receiver's Acks come back in the order of the
	// polls and a lost first frame of a burst is the common loss (behind a
	// KISS TNC: docs/modems.md, "The first frame of the bulk burst").
	ResendOvertaken bool
	// MaxRetries is the number of retransmission rounds in a row that may
	// bring no newly acknowledged fragment; the next timeout gives the
	// packet up. An Ack that acknowledges a new fragment resets the count.
	MaxRetries int
	// Window is the number of unacknowledged packets per destination; Send
	// returns ErrWindowFull beyond it. 1..64.
	Window int
	// ReasmTimeout frees a partial packet that has received no fragment for
	// this long.
	ReasmTimeout time.Duration
	// ReasmBuffers and ReasmBytes cap the partial packets held (count and
	// fragment bytes); a new packet beyond either evicts the oldest.
	ReasmBuffers, ReasmBytes int
	// MaxAge gives a unicast packet up once this long has passed since
	// Send, whatever its rounds; 0: no limit. With ArmOnTxDone a round
	// lasts as long as its poll waits in the driver's queue, so MaxAge,
	// not the retry count, bounds how late a retransmission can come: a
	// packet whose poll is still in the driver's queue is given up at
	// MaxAge too, and the driver sends none of its frames from then on
	// (Frame.Expires).
	MaxAge time.Duration
	// SeqReuse, if positive, is how long a sequence number stays unused
	// after Send gave it to a packet. The default is 0: the receiver tells a
	// new packet under a reused number from a retransmission of the old one
	// by its position after the most advanced packet delivered, so no time
	// gap is needed.
	SeqReuse time.Duration
	// RetryJitter, in 0..1, lengthens each Ack timer by a random part of
	// the timeout, drawn uniformly from [0, RetryJitter·timeout): two nodes
	// whose frames were lost together (two half-duplex modems that sense
	// no carrier, each keyed up while the other's frame arrived) would
	// otherwise time out and retransmit in lockstep, and lose them again
	// every round. 0: no jitter (every timer as the estimate says).
	RetryJitter float64
	// Seed seeds the jitter's random source (with Self), so that a run is
	// reproducible; the link engine passes its own seed.
	Seed uint64
	// DupLifetime is how long a delivered sequence number is remembered so
	// that a retransmission of it is acknowledged but not delivered again.
	// It must cover the sender's whole retry span.
	DupLifetime time.Duration
	// NoReorder hands every unicast packet up as soon as it is complete.
	// By default (false) packets from one sender are handed up in the order
	// of their sequence numbers: a packet complete while an earlier one is
	// still being retransmitted waits for it (reorder.go). Broadcast, and
	// everything with NoARQ, is never held.
	NoReorder bool
	// ReorderTimeout is the longest a complete packet waits for an earlier
	// one from the same sender before it is handed up past the gap. It
	// should be the time after which the sender has given the missing
	// packet up: DefaultConfig takes MaxAge + QueueDelay, when its last
	// retransmission has arrived or never will.
	ReorderTimeout time.Duration
	// ReorderPackets and ReorderBytes cap the packets the reorder buffer
	// holds in all (a peer holds at most SeqSpan-1); a packet beyond either
	// releases the longest-waiting peer past its gap.
	ReorderPackets, ReorderBytes int
	// SeqSpan bounds how far a sender's numbers run ahead of its oldest
	// packet still unacknowledged to the same node: Send returns
	// ErrWindowFull rather than number a packet SeqSpan or more after it.
	// So a receiver that sees a number SeqSpan or more after a gap knows
	// the sender has resolved the gap (acknowledged or given it up).
	// Window..127; both ends are assumed to use the same value (a receiver
	// with a smaller one hands a late packet up out of order, no more).
	SeqSpan int
	// GroupPolls lets packets to one peer share a poll, and a poll's Ack
	// report several packets (docs/link-arq.md, "One Ack for several
	// packets"), towards the peers the Sink says take version-2 Acks
	// (GroupSink). Off, or towards other peers, every packet polls and
	// every Ack reports one packet.
	GroupPolls bool
	// MaxGroup bounds the packets of one group (GroupPolls): the packet
	// that makes it MaxGroup long polls at once, so that its Ack opens the
	// window for the next group while that group is on air. 0: as many as
	// one Ack reports (framing.MaxAckRecords). 0..MaxAckRecords.
	MaxGroup int
}

// Timing describes the link for the acknowledgement timeout.
type Timing struct {
	// BitRate is the air rate in bit/s.
	BitRate int
	// Propagation is the one-way propagation delay to the farthest peer
	// (1 km of water: 0.67 s; radio: microseconds).
	Propagation time.Duration
	// Turnaround is the modem's receive-to-transmit switch time plus any
	// preamble it sends before the first byte (TXDELAY on a TNC).
	Turnaround time.Duration
	// Margin covers the receiver's channel access (IFS and backoff) and the
	// daemon's timer latency.
	Margin time.Duration
	// QueueDelay is the longest a frame handed to the driver may wait
	// before it goes on air (its queues' airtime): it widens the duplicate
	// lifetime so that a retransmission that waited is still recognised.
	QueueDelay time.Duration
}

// AckTimeout is the time from the end of a fragment's transmission to the
// latest expected end of the Ack: the fragment travels (Propagation), the
// receiver turns its modem round (Turnaround), accesses the channel
// (Margin), sends the largest Ack (its airtime, on-wire size from
// framing.MaxEncodedLen) and the Ack travels back (Propagation).
func (t Timing) AckTimeout() time.Duration {
	rate := t.BitRate
	if rate <= 0 {
		rate = 1200
	}
	ackBits := int64(framing.MaxEncodedLen(framing.AckMaxLen)) * 8
	air := time.Duration(ackBits * int64(time.Second) / int64(rate))
	return air + 2*t.Propagation + t.Turnaround + t.Margin
}

// MinAckTimeout is the shortest time in which an Ack can follow the end of
// a poll: the round trip's propagation, the receiver's turnaround and the
// airtime of the largest Ack, with no channel access and no margin. A
// learned timeout below it would always expire before the Ack.
func (t Timing) MinAckTimeout() time.Duration {
	return t.AckTimeout() - t.Margin
}

// DefaultRTTGranularity is the G of RFC 6298 DefaultConfig uses: a daemon's
// timer and scheduling latency on a small, busy board.
const DefaultRTTGranularity = 50 * time.Millisecond

// DefaultConfig returns a configuration for node self, frames of at most
// maxPayload link payload bytes and packets of up to maxPacket bytes, timed
// by t: eight retries without progress, a window of 4 packets, reassembly of 8 packets or
// 8×maxPacket bytes for 4 whole retry spans, and duplicates remembered for
// as long as a sender may retry. The ack timeout starts at t.AckTimeout and
// learns from round trips between t.MinAckTimeout and 16 × t.AckTimeout
// (so an initial value 8 times too short still grows to fit by backoff).
func DefaultConfig(self framing.NodeID, maxPayload, maxPacket int, t Timing) Config {
	c := Config{
		Self:       self,
		MaxPayload: maxPayload,
		MaxPacket:  maxPacket,
		AckTimeout: t.AckTimeout(),
		MaxRetries: 8,
		// Lifetimes below stay computed from the initial AckTimeout: a
		// learned timeout changes when rounds come, not how long a packet
		// lives (MaxAge) or how long a receiver remembers it.
		MinAckTimeout:  t.MinAckTimeout(),
		MaxAckTimeout:  16 * t.AckTimeout(),
		RTTGranularity: DefaultRTTGranularity,
		Window:         4,
		ReasmBuffers:   8,
		ReasmBytes:     8 * maxPacket,
	}
	span := time.Duration(c.MaxRetries+1) * c.AckTimeout
	c.ReasmTimeout = span
	c.SizeForWindow()
	// A packet lives at most MaxAge from Send, and the driver puts none of
	// its frames on air from then on (Frame.Expires); a frame handed to the
	// modem before then arrives within QueueDelay and a timeout more (the
	// link's Margin holds a burst's airtime; link's
	// TestDupLifetimeCoversAFrameOnItsWay); the receiver delivered the
	// packet no earlier than Send. So a receiver that remembers deliveries
	// for MaxAge + QueueDelay + one timeout never delivers it twice.
	c.MaxAge = 4*span + t.QueueDelay
	c.DupLifetime = c.MaxAge + t.QueueDelay + c.AckTimeout
	// A packet held behind a gap was sent after the missing one, so by
	// MaxAge + QueueDelay after it was held the last retransmission of the
	// missing packet has arrived or never will: a gap is waited for no
	// longer, and never given up while the sender may still fill it. A
	// sender that keeps sending shows a give-up sooner (SeqSpan).
	c.ReorderTimeout = c.MaxAge + t.QueueDelay
	return c
}

// SizeForWindow sets what follows from Window: SeqSpan four windows (at
// most 127), and room in the reorder buffer for two peers' worth of
// packets held behind a gap (SeqSpan-1 each), each up to MaxPacket bytes.
// Call it again after changing Window.
func (c *Config) SizeForWindow() {
	c.SeqSpan = min(4*c.Window, 127)
	c.ReorderPackets = max(16, 2*(c.SeqSpan-1))
	c.ReorderBytes = c.ReorderPackets * c.MaxPacket
}

// Validate reports whether c can be used; the error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	fragData := c.MaxPayload - framing.FragHeaderLen
	switch {
	case c.Self == 0 || c.Self == framing.Broadcast:
		return fmt.Errorf("%w: self node %#02x", ErrInvalidConfig, byte(c.Self))
	case fragData < 1:
		return fmt.Errorf("%w: max payload %d leaves no room after the %d-byte fragment header", ErrInvalidConfig, c.MaxPayload, framing.FragHeaderLen)
	case c.MaxPacket < 1:
		return fmt.Errorf("%w: max packet %d", ErrInvalidConfig, c.MaxPacket)
	case (c.MaxPacket+fragData-1)/fragData > framing.MaxFragments:
		return fmt.Errorf("%w: a %d-byte packet needs more than %d fragments of %d bytes", ErrInvalidConfig, c.MaxPacket, framing.MaxFragments, fragData)
	case c.AckTimeout <= 0 && !c.NoARQ:
		return fmt.Errorf("%w: ack timeout %v must be positive", ErrInvalidConfig, c.AckTimeout)
	case c.MaxAckTimeout != 0 && c.MaxAckTimeout < c.AckTimeout, c.MinAckTimeout < 0, c.MinAckTimeout > c.AckTimeout, c.RTTGranularity < 0:
		return fmt.Errorf("%w: ack timeout bounds %v..%v (granularity %v) must hold the initial %v", ErrInvalidConfig,
			c.MinAckTimeout, c.MaxAckTimeout, c.RTTGranularity, c.AckTimeout)
	case c.MaxRetries < 0:
		return fmt.Errorf("%w: max retries %d", ErrInvalidConfig, c.MaxRetries)
	case c.MaxGroup < 0 || c.MaxGroup > framing.MaxAckRecords:
		return fmt.Errorf("%w: max group %d outside 0..%d", ErrInvalidConfig, c.MaxGroup, framing.MaxAckRecords)
	case c.Window < 1 || c.Window > 64:
		return fmt.Errorf("%w: window %d outside 1..64", ErrInvalidConfig, c.Window)
	case !c.NoARQ && (c.SeqSpan < c.Window || c.SeqSpan > 127):
		return fmt.Errorf("%w: sequence span %d outside window %d..127", ErrInvalidConfig, c.SeqSpan, c.Window)
	case c.ReasmTimeout <= 0:
		return fmt.Errorf("%w: reassembly timeout %v must be positive", ErrInvalidConfig, c.ReasmTimeout)
	case c.ReasmBuffers < 1 || c.ReasmBytes < c.MaxPacket:
		return fmt.Errorf("%w: reassembly needs at least one buffer and max packet bytes (%d, %d)", ErrInvalidConfig, c.ReasmBuffers, c.ReasmBytes)
	case !c.NoARQ && !c.NoReorder && (c.ReorderTimeout <= 0 || c.ReorderPackets < 1 || c.ReorderBytes < c.MaxPacket):
		return fmt.Errorf("%w: reorder buffer needs a positive timeout, a packet and max packet bytes (%v, %d, %d)", ErrInvalidConfig,
			c.ReorderTimeout, c.ReorderPackets, c.ReorderBytes)
	case !(c.RetryJitter >= 0 && c.RetryJitter <= 1):
		return fmt.Errorf("%w: retry jitter %v outside 0..1", ErrInvalidConfig, c.RetryJitter)
	case c.DupLifetime < 0 || c.MaxAge < 0 || c.SeqReuse < 0:
		return fmt.Errorf("%w: duplicate lifetime %v, max age %v, sequence reuse %v", ErrInvalidConfig, c.DupLifetime, c.MaxAge, c.SeqReuse)
	}
	return nil
}
