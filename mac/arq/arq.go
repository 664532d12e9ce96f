// Package arq is the link layer above channel access: it cuts packets into
// fragments that fit the modem's frame size, reassembles them at the
// receiver, and for unicast runs selective-repeat ARQ with acknowledgements,
// bounded retries and duplicate suppression. Broadcast goes unacknowledged.
//
// The package is sans-I/O, like mac/csma: every method takes the current
// time; an ARQ never reads a clock, sleeps or starts a goroutine, and for a
// given input sequence it makes the same decisions. Frames to send and
// packets to deliver leave through a Sink during the call that produced them.
// An ARQ is not safe for concurrent use: one goroutine owns it.
//
// The driver's loop:
//
//	packet from the TAP:    a.Send(now, h, packet)       (ErrWindowFull: hold it)
//	frame from the decoder: a.Receive(now, h, payload)
//	frame went on air:      a.TxDone(now, h, payload)    (optional, sharper timer)
//	when a.Deadline() passes: a.Poll(now)
//	nothing else to send:   a.Flush(now)                 (GroupPolls: a group's poll goes)
//	own process stalled:    a.Stalled(now, lost)         (a timer of the driver's fired lost late)
//
// The ack timeout is learnt per peer from round trips (RFC 6298 with
// Karn's rule and backoff, rtt.go); AppendPeers reports it.
//
// docs/link-arq.md gives the formats, the state machines and the timing rule.
package arq

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/slided/slided/framing"
)

// Sink receives what an ARQ produces. Both methods are called synchronously
// from Send, Receive and Poll, by the goroutine that owns the ARQ, with the
// now of that call; the byte slices are valid only during the call (copy or
// encode them at once).
type Sink interface {
	// Transmit queues one link frame. f.Header.Src is the ARQ's Self. A
	// frame the sink cannot queue may be dropped: ARQ recovers unicast
	// through its timer.
	Transmit(now time.Time, f Frame)
	// Deliver hands up one whole packet; h.Kind is the packet's kind
	// (KindData or KindEthernet as the sender gave it), h.Dst and h.Src the
	// link addresses it travelled with.
	Deliver(now time.Time, h framing.Header, packet []byte)
}

// GroupSink is a Sink that says which peers take version-2 Acks of several
// records (framing.ParseAcks). With Config.GroupPolls, towards those peers
// packets sent together share one poll (the last one's) and a poll's Ack
// reports every packet of the poller held since its last Ack
// (docs/link-arq.md, "One Ack for several packets"); Grouped must give the
// same answer for a peer as the frame version the driver sends it.
type GroupSink interface {
	Sink
	Grouped(now time.Time, node framing.NodeID) bool
}

// SettleSink is a Sink that is told when an Ack settles a unicast packet:
// as a rule the receiver holds it whole, and the ARQ has forgotten it (the
// exceptions, a partial first Ack and a late Ack of a First packet given
// up, are below). Frames of
// that packet the driver still holds, not yet given to the modem, are
// useless from then on, and one marked First is harmful: the next packet
// to dst goes unmarked, and if it went on air first the receiver would
// take the late First fragment for a restart of this node
// (docs/link-arq.md, "A sender that restarts"). So the driver takes them
// out of its queues; it must still report a poll among them to TxDone
// (Config.ArmOnTxDone), but after the call that reported the packet
// settled has returned, never from within Settled. Settled is also called
// for the first Ack from dst when it acknowledges the packet only in part
// (the packet stays outstanding): its First frames are as harmful, and
// what the receiver lacks goes again, unmarked; a driver may drop the
// packet's unmarked frames only for a packet settled whole. And when a
// late Ack of the First packet given up last synchronises the sender,
// Settled is called for that packet and for the one still outstanding,
// sent marked First after it (unacknowledged: it goes again, unmarked,
// when its timer runs out). Settled is called synchronously from Receive
// (and ReceiveLate), like Transmit.
type SettleSink interface {
	Sink
	Settled(now time.Time, dst framing.NodeID, seq uint8)
}

// Frame is one link frame for Sink.Transmit, with what the driver needs to
// know about it without parsing it.
type Frame struct {
	Header  framing.Header
	Payload []byte
	// Poll is set for a unicast fragment that asks for an Ack: the
	// receiver answers it at once (the driver may keep the channel for the
	// Ack), and with ArmOnTxDone the driver must report it to TxDone when
	// it has left (or was dropped).
	Poll bool
	// Last is set for the frame that completes the first transmission of
	// a packet given to Send (a plain frame, or the last fragment); never
	// for retransmissions or Acks.
	Last bool
	// First is set for a unicast fragment marked First (sent before the
	// destination acknowledged any packet of ours): the frames a
	// SettleSink takes out of its queues.
	First bool
	// Expires, for a unicast fragment (with MaxAge), is the end of its
	// packet's life: Send's now + MaxAge. A driver that holds frames must
	// not put this one on air at or after it, but drop it (a poll is then
	// reported to TxDone, as any dropped poll). The receiver remembers a
	// delivery for DupLifetime, which covers MaxAge and the time a frame
	// takes from the driver's hands to the far end (QueueDelay and a
	// timeout of slack: Timing); a frame sent later may find the delivery
	// forgotten and be delivered again (docs/link-arq.md, "DupLifetime").
	// At Expires the ARQ gives the packet up, if nothing has settled it.
	// Zero: no limit (Acks, broadcast, NoARQ, MaxAge 0).
	Expires time.Time
}

// Errors returned by Send; callers branch on them with errors.Is.
var (
	// ErrWindowFull: the destination already has Window packets awaiting
	// acknowledgement, its next sequence number would be SeqSpan after the
	// oldest of them, or was used too recently (within SeqReuse). Hold the packet and try after the next Receive
	// or Poll.
	ErrWindowFull = errors.New("arq: window full")
	// ErrTooBig: the packet is longer than MaxPacket.
	ErrTooBig = errors.New("arq: packet too big")
	// ErrBadAddr: destination 0x00.
	ErrBadAddr = errors.New("arq: invalid destination")
)

// Stats counts what an ARQ has done since New. All counters only grow,
// except the gauges at the end.
type Stats struct {
	Packets         uint64 // packets accepted by Send
	Fragments       uint64 // fragments transmitted the first time
	Retransmissions uint64 // fragments transmitted again
	Rounds          uint64 // retry rounds (after an Ack with gaps or a timeout)
	Timeouts        uint64 // Ack timeouts
	Overtaken       uint64 // rounds resent before their timer ran out: an Ack answered a later poll of their transmission (overtaken)
	GiveUps         uint64 // unicast packets abandoned after MaxRetries rounds without progress
	Acked           uint64 // unicast packets fully acknowledged
	AcksSent        uint64
	AcksReceived    uint64
	StaleAcks       uint64 // Acks for no outstanding packet
	Delivered       uint64 // packets handed to Sink.Deliver
	Duplicates      uint64 // fragments of an already delivered packet (re-acked, not delivered)
	DupFragments    uint64 // fragments already held in a reassembly buffer
	ReasmTimeouts   uint64 // partial packets freed by ReasmTimeout
	ReasmEvicted    uint64 // partial packets evicted to make room
	Malformed       uint64 // unparsable fragments or Acks, inconsistent or oversize packets
	Riders          uint64 // packets (and retransmission rounds) sent without a poll of their own: a later packet's poll asks for them (GroupPolls)
	AckRecords      uint64 // records sent in Acks beyond the first of each (GroupPolls)
	NotForUs        uint64 // frames for another unicast destination
	Ignored         uint64 // frames of kinds the ARQ does not handle
	// The reorder buffer (reorder.go): unicast packets that waited for an
	// earlier one from the same sender; packets handed up past a gap that
	// never filled, by why the wait ended (ReorderTimeout; the sender moved
	// past the gap or restarted; room needed for another packet); and
	// packets that came after their gap had been passed (handed up out of
	// order).
	ReorderWaited    uint64
	ReorderTimeouts  uint64
	ReorderSkipped   uint64
	ReorderOverflows uint64
	ReorderLate      uint64
	// Stalls counts the stalls of the driver's own process it reported
	// (Stalled): Ack timers that ran out meanwhile were restarted, not
	// counted as time-outs.
	Stalls uint64
	// ReasmBytes is the fragment bytes held in reassembly buffers now.
	ReasmBytes int
	// HeldBytes is the packet bytes held for retransmission now.
	HeldBytes int
	// ReorderHeld and ReorderHeldBytes are the complete packets, and their
	// bytes, the reorder buffer holds now.
	ReorderHeld      int
	ReorderHeldBytes int
}

// outPkt is one unicast packet awaiting acknowledgement.
type outPkt struct {
	used           bool
	seq            uint8
	inner          framing.Kind
	count          uint8
	acked          uint64
	poll           uint8 // the fragment that carried AckReq in the current round
	retries        int   // rounds in a row without progress
	rounds         int   // all retry rounds: at most Count×(MaxRetries+1)
	sent           time.Time
	deadline       time.Time
	armedAt        time.Time     // when the current round's timer was armed (zero: not yet, or no sample: Stalled)
	armedRTO       time.Duration // the wait it was armed with
	armOrder       uint64        // the TxDone that armed it (ARQ.arms): the order of the polls on air
	timedOut       bool          // a round timed out: Acks may answer an earlier poll, so no RTT sample (Karn)
	stallRestarted bool          // Stalled restarted this round's timer: it does not again (arm clears it)
	open           bool          // GroupPolls: the last fragment is held until the group's poll is decided (Flush)
	ride           bool          // GroupPolls: the round rides on a later poll; its timer starts at that poll's TxDone
	rideResend     bool          // the round is a retransmission (resend): it rides on its batch's poll, not on a group's
	rideSet        bool          // the poll it rides on is sent: fragment rideIdx of packet rideOn
	rideOn         uint8
	rideIdx        uint8
	data           []byte // cap MaxPacket, reused
}

// peer is the state kept for one other node.
type peer struct {
	nextSeq   uint8
	seqSet    bool       // sender: nextSeq has been seeded
	synced    bool       // sender: the peer has acknowledged a packet of ours (before: one outstanding, marked First)
	lastUse   [256]int64 // sender: when each seq was last assigned (stamp, 0 never)
	delivered [256]int64 // receiver: when each seq from this peer was delivered (stamp, 0 never)
	highest   uint8      // receiver: the most advanced seq delivered from this peer
	seenAny   bool       // highest is set
	sessSeq   uint8      // receiver: seq of the sender's last First packet
	sessAt    int64      // receiver: when it started (stamp, 0 never)
	out       []outPkt   // len Window, unicast only
	busy      int        // used entries in out
	rxNext    uint8      // receiver: the oldest seq not yet handed up (reorder.go)
	rxSet     bool       // rxNext is set
	rxHeld    int        // receiver: packets held in the reorder buffer
	rtt       rtt        // sender: round-trip estimate and ack timeout
	// sampledArm is when the round last sampled was armed: polls armed at
	// the same instant left in one transmission (a burst's TxDone) and
	// their Acks come back together, so only the first is a sample.
	sampledArm time.Time
	stats      peerStats // sender: counters towards this peer
	// Sender, before synced: the First packet given up last (its seq and
	// Count), whose Ack may still come and synchronise us (onAck).
	goneFirst, goneCount uint8
	goneSet              bool
	// GroupPolls, sender: the packet whose last fragment is held (an index
	// in out, -1 none) and the records and Ack bytes of the group it ends.
	openSlot   int
	gN, gBytes int
	// GroupPolls, receiver: when a fragment without a poll last came for
	// each seq (stamp, 0 none since its last record was sent), and its
	// Count: the next Ack to this peer reports them.
	rxPend      [256]int64
	rxPendCount [256]uint8
}

// reasm is one partial packet.
type reasm struct {
	used          bool
	src           framing.NodeID
	bcast         bool
	seq           uint8
	inner         framing.Kind
	count         uint8
	have          uint64
	off, n        [framing.MaxFragments]uint16
	arena         []byte // cap MaxPacket, reused; fragments in arrival order
	started, last time.Time
}

// ARQ is one node's fragmentation, reassembly and link ARQ. Create it with
// New.
type ARQ struct {
	cfg      Config
	sink     Sink
	fragData int
	peers    [256]*peer
	bufs     []reasm
	held     []held // the reorder buffer, ReorderPackets entries
	tx       []byte // fragment being composed
	out      []byte // packet being assembled
	stats    Stats
	rttb     rttBounds
	heard    [256]int64 // when each node was last heard (UnixNano, 0 never): shown, not compared
	epoch    time.Time  // the ARQ clock's zero (stamp); moved on by each stall (Stalled)
	noSample time.Time  // rounds armed before it give no round-trip sample: a stall just ended (Stalled)
	late     bool       // the frame Receive handles was heard earlier (ReceiveLate): no round-trip sample
	arms     uint64     // TxDone calls that armed a poll: numbers the polls in the order they left
	group    GroupSink  // the sink, when GroupPolls and it says which peers group
	settle   SettleSink // the sink, when it wants to know of settled packets
	opens    int        // peers with an open packet (GroupPolls)
	recs     []framing.Ack
	retr     []retryItem
}

// retryItem is one packet due for a new round (the fragments in missing),
// gathered so that only the last of a group polls.
type retryItem struct {
	slot    int
	missing uint64
}

// New returns an ARQ that sends and delivers through sink.
func New(cfg Config, sink Sink) (*ARQ, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, errors.New("arq: nil sink")
	}
	a := &ARQ{
		cfg:      cfg,
		sink:     sink,
		fragData: cfg.MaxPayload - framing.FragHeaderLen,
		bufs:     make([]reasm, cfg.ReasmBuffers),
		tx:       make([]byte, 0, cfg.MaxPayload),
		out:      make([]byte, 0, cfg.MaxPacket),
		rttb:     cfg.rttBounds(),
		recs:     make([]framing.Ack, 0, framing.MaxAckRecords),
		retr:     make([]retryItem, 0, max(cfg.Window, framing.MaxAckRecords)),
	}
	if gs, ok := sink.(GroupSink); ok && cfg.GroupPolls && !cfg.NoARQ {
		a.group = gs
	}
	if ss, ok := sink.(SettleSink); ok && !cfg.NoARQ {
		a.settle = ss
	}
	if a.reorders() {
		a.held = make([]held, cfg.ReorderPackets)
	}
	return a, nil
}

// Stats returns a copy of the counters.
func (a *ARQ) Stats() Stats { return a.stats }

func (a *ARQ) peer(id framing.NodeID) *peer {
	p := a.peers[id]
	if p == nil {
		p = &peer{rtt: newRTT(a.rttb), openSlot: -1}
		if id != framing.Broadcast && !a.cfg.NoARQ {
			p.out = make([]outPkt, a.cfg.Window)
		}
		a.peers[id] = p
	}
	return p
}

// Send fragments packet (of kind h.Kind, to h.Dst; h.Src is ignored and Self
// used) and transmits the fragments through the sink. Unicast packets are
// kept, copied, until acknowledged or given up; broadcast packets (and all
// packets with NoARQ) go once, and when they fit one frame they go as a
// plain frame of kind h.Kind without a fragment header. Send does not retain
// packet.
func (a *ARQ) Send(now time.Time, h framing.Header, packet []byte) error {
	if h.Dst == 0 {
		return fmt.Errorf("send to %#02x: %w", byte(h.Dst), ErrBadAddr)
	}
	if len(packet) > a.cfg.MaxPacket {
		return fmt.Errorf("send %d bytes (max %d): %w", len(packet), a.cfg.MaxPacket, ErrTooBig)
	}
	h.Src = a.cfg.Self
	count := uint8(max(1, (len(packet)+a.fragData-1)/a.fragData))
	p := a.peer(h.Dst)
	if h.Dst == framing.Broadcast || a.cfg.NoARQ {
		a.stats.Packets++
		if len(packet) <= a.cfg.MaxPayload {
			a.stats.Fragments++
			a.sink.Transmit(now, Frame{Header: h, Payload: packet, Last: true})
			return nil
		}
		seq := p.nextSeq
		p.nextSeq++
		for i := range count {
			a.sendFrag(now, h.Dst, framing.FragHeader{Inner: h.Kind, Seq: seq, Index: i, Count: count}, packet, i == count-1, time.Time{})
		}
		a.stats.Fragments += uint64(count)
		return nil
	}
	if !p.seqSet {
		// A restarted node starts its numbering somewhere else, so that a
		// receiver that still remembers its first packet from a restart a
		// moment ago does not take the new one for a retransmission.
		p.nextSeq, p.seqSet = uint8(now.UnixNano()/int64(time.Millisecond)), true
	}
	slot := -1
	// Until the receiver has acknowledged a packet it does not know where
	// our numbering starts: one packet at a time, marked First.
	if p.synced || p.busy == 0 {
		for i := range p.out {
			if !p.out[i].used {
				slot = i
				break
			}
		}
	}
	seq := p.nextSeq
	// Numbers run at most SeqSpan ahead of the oldest packet outstanding,
	// so that the receiver knows when a gap has been resolved.
	for i := range p.out {
		if o := &p.out[i]; o.used && int(seq-o.seq) >= a.cfg.SeqSpan {
			slot = -1
		}
	}
	if last := p.lastUse[seq]; slot < 0 || (a.cfg.SeqReuse > 0 && last != 0 && a.stamp(now)-last < int64(a.cfg.SeqReuse)) {
		return fmt.Errorf("send to node %d: %w", h.Dst, ErrWindowFull)
	}
	p.nextSeq++
	p.lastUse[seq] = a.stamp(now)
	o := &p.out[slot]
	if o.data == nil {
		o.data = make([]byte, 0, a.cfg.MaxPacket)
	}
	*o = outPkt{used: true, seq: seq, inner: h.Kind, count: count, poll: count - 1, sent: now,
		data: append(o.data[:0], packet...)}
	grouped := p.synced && a.grouped(now, h.Dst)
	if !a.cfg.ArmOnTxDone && !grouped {
		a.arm(p, o, now)
	}
	p.busy++
	a.stats.HeldBytes += len(packet)
	a.stats.Packets++
	p.stats.packets++
	if grouped {
		a.sendGrouped(now, h.Dst, p, slot)
		a.stats.Fragments += uint64(count)
		p.stats.fragments += uint64(count)
		return nil
	}
	for i := range count {
		a.sendFrag(now, h.Dst, framing.FragHeader{AckReq: i == count-1, First: !p.synced, Inner: h.Kind, Seq: seq, Index: i, Count: count}, o.data, i == count-1, a.expires(o))
	}
	a.stats.Fragments += uint64(count)
	p.stats.fragments += uint64(count)
	return nil
}

// grouped says whether packets to node share polls (GroupPolls, a peer
// that takes version-2 Acks).
func (a *ARQ) grouped(now time.Time, node framing.NodeID) bool {
	return a.group != nil && node != framing.Broadcast && a.group.Grouped(now, node)
}

// ackRoom is the most bytes an Ack of several records may take: AcksMaxLen,
// or less where frames are smaller.
func (a *ARQ) ackRoom() int { return min(framing.AcksMaxLen, a.cfg.MaxPayload) }

// sendGrouped sends the packet in p.out[slot] as part of a group: all
// fragments but the last at once, the last held (open) until the next
// packet to the same peer makes it a rider (sent without AckReq) or Flush
// makes it the group's poll. A group ends, polled, when its Ack's records
// would reach MaxAckRecords or ackRoom.
func (a *ARQ) sendGrouped(now time.Time, dst framing.NodeID, p *peer, slot int) {
	o := &p.out[slot]
	for i := range o.count - 1 {
		a.sendFrag(now, dst, framing.FragHeader{Inner: o.inner, Seq: o.seq, Index: i, Count: o.count}, o.data, false, a.expires(o))
	}
	rec := framing.AckLen(o.count)
	if p.openSlot >= 0 {
		if p.gN+1 <= a.maxGroup() && p.gBytes+rec <= a.ackRoom() {
			q := &p.out[p.openSlot]
			q.open, q.ride, q.rideResend, q.rideSet = false, true, false, false
			a.stats.Riders++
			a.sendFrag(now, dst, framing.FragHeader{Inner: q.inner, Seq: q.seq, Index: q.count - 1, Count: q.count}, q.data, true, a.expires(q))
			p.openSlot = -1
			a.opens--
		} else {
			a.closeOpen(now, dst, p)
		}
	}
	o.open = true
	p.openSlot = slot
	a.opens++
	p.gN++
	p.gBytes += rec
	if p.gN >= a.maxGroup() || p.gBytes+framing.AckMinLen > a.ackRoom() {
		a.closeOpen(now, dst, p) // nothing more fits in its Ack
	}
}

// maxGroup is the most packets one group holds (Config.MaxGroup).
func (a *ARQ) maxGroup() int {
	if a.cfg.MaxGroup > 0 {
		return a.cfg.MaxGroup
	}
	return framing.MaxAckRecords
}

// closeOpen sends the last fragment of p's open packet as the group's poll.
func (a *ARQ) closeOpen(now time.Time, dst framing.NodeID, p *peer) {
	q := &p.out[p.openSlot]
	q.open = false
	p.openSlot = -1
	a.opens--
	p.gN, p.gBytes = 0, 0
	a.sendFrag(now, dst, framing.FragHeader{AckReq: true, Inner: q.inner, Seq: q.seq, Index: q.count - 1, Count: q.count}, q.data, true, a.expires(q))
	a.bindRiders(p, q.seq, q.count-1, false)
	if !a.cfg.ArmOnTxDone {
		a.arm(p, q, now)
		a.armRiders(p, now, q.seq, q.count-1)
	}
}

// Flush sends the held last fragment of every group as its poll
// (GroupPolls). The driver calls it when nothing else waits to go on air:
// the packets handed over since are then all the group has.
func (a *ARQ) Flush(now time.Time) {
	if a.opens == 0 {
		return
	}
	for id, p := range a.peers {
		if p != nil && p.openSlot >= 0 {
			a.closeOpen(now, framing.NodeID(id), p)
		}
	}
}

// Open reports whether a group's poll is held for Flush.
func (a *ARQ) Open() bool { return a.opens > 0 }

// LastSeq is the sequence number of the last packet Send took for dst
// (meaningful once Send has taken one): with GroupPolls its last fragment
// may go on air only with a later Send or Flush, and the driver that
// queues frames by the packet they belong to finds it by this number.
func (a *ARQ) LastSeq(dst framing.NodeID) uint8 {
	p := a.peers[dst]
	if p == nil {
		return 0
	}
	return p.nextSeq - 1
}

// bindRiders ties p's rounds that ride on the next poll to the poll just
// sent, fragment idx of packet seq: they were sent before it. A poll binds
// only the riders of its own batch: a retransmission round's (resend) the
// retransmissions sent with it, a group's poll (closeOpen) the group's
// packets. The frames of one batch go on air in the order they were
// handed over, but the driver may send one batch before another (the
// link's MAC queue serves retransmissions as a flow of their own): a
// retransmission's poll that went before a group's riders was answered
// before they came, and its Ack, which reports only what the receiver
// holds, settled nothing of them while their timers ran from its TxDone
// (TestRidersWaitForTheirGroupsPoll).
func (a *ARQ) bindRiders(p *peer, seq, idx uint8, resend bool) {
	for i := range p.out {
		if o := &p.out[i]; o.used && o.ride && !o.rideSet && o.rideResend == resend {
			o.rideSet, o.rideOn, o.rideIdx = true, seq, idx
		}
	}
}

// armRiders starts the timers of p's rounds that rode on the poll fragment
// idx of packet seq, now that it has left (or, without ArmOnTxDone, was
// handed over): their Ack comes with the poll's.
func (a *ARQ) armRiders(p *peer, now time.Time, seq, idx uint8) {
	for i := range p.out {
		if o := &p.out[i]; o.used && o.ride && o.rideSet && o.rideOn == seq && o.rideIdx == idx {
			o.ride, o.rideSet = false, false
			a.arm(p, o, now)
		}
	}
}

// sendFrag transmits fragment f.Index of packet; last marks the frame that
// completes the packet's first transmission (Frame.Last).
func (a *ARQ) sendFrag(now time.Time, dst framing.NodeID, f framing.FragHeader, packet []byte, last bool, expires time.Time) {
	lo := int(f.Index) * a.fragData
	hi := min(lo+a.fragData, len(packet))
	b, _ := framing.AppendFrag(a.tx[:0], f) // f is in range by construction
	b = append(b, packet[lo:hi]...)
	a.sink.Transmit(now, Frame{Header: framing.Header{Kind: framing.KindFragment, Dst: dst, Src: a.cfg.Self}, Payload: b,
		Poll: f.AckReq && dst != framing.Broadcast, Last: last, First: f.First && dst != framing.Broadcast, Expires: expires})
}

// expires is the end of o's life, for its frames (Frame.Expires): MaxAge
// after Send; zero without MaxAge.
func (a *ARQ) expires(o *outPkt) time.Time {
	if a.cfg.MaxAge <= 0 {
		return time.Time{}
	}
	return o.sent.Add(a.cfg.MaxAge)
}

// ReceiveLate is Receive for a frame heard earlier and handled only now (it
// waited for its sender's replay floor to be written, link/floorwait.go):
// its Acks advance the sender but give no round-trip sample, which would
// count the wait.
func (a *ARQ) ReceiveLate(now time.Time, h framing.Header, payload []byte) {
	a.late = true
	a.Receive(now, h, payload)
	a.late = false
}

// Receive handles one frame from the decoder. Plain KindData and
// KindEthernet frames are delivered as they are; fragments are reassembled
// (and acknowledged when they ask for it); Acks advance the sender. Frames
// for another unicast node are counted and dropped. Receive does not retain
// payload.
func (a *ARQ) Receive(now time.Time, h framing.Header, payload []byte) {
	if h.Src != 0 && h.Src != framing.Broadcast && h.Src != a.cfg.Self {
		a.heard[h.Src] = max(now.UnixNano(), 1)
	}
	if h.Dst != a.cfg.Self && h.Dst != framing.Broadcast {
		a.stats.NotForUs++
		return
	}
	if h.Src == 0 || h.Src == framing.Broadcast {
		a.stats.Malformed++
		return
	}
	switch h.Kind {
	case framing.KindData, framing.KindEthernet, framing.KindIPHC:
		if len(payload) > a.cfg.MaxPacket {
			a.stats.Malformed++ // a sender with a larger MTU, or junk
			return
		}
		a.stats.Delivered++
		a.sink.Deliver(now, h, payload)
	case framing.KindFragment:
		a.onFrag(now, h, payload)
	case framing.KindAck:
		a.onAck(now, h, payload)
	default:
		a.stats.Ignored++
	}
}

func (a *ARQ) onFrag(now time.Time, h framing.Header, payload []byte) {
	f, body, err := framing.ParseFrag(payload)
	if err != nil {
		a.stats.Malformed++
		return
	}
	bcast := h.Dst == framing.Broadcast
	ackReq := f.AckReq && !bcast
	p := a.peer(h.Src)
	if !bcast && f.First {
		a.onFirst(now, h.Src, p, f.Seq)
	}
	if !bcast && !f.AckReq && a.grouped(now, h.Src) {
		// A later poll asks for it: its record goes in that Ack.
		p.rxPend[f.Seq], p.rxPendCount[f.Seq] = a.stamp(now), f.Count
	}
	if !bcast {
		// A duplicate was delivered within DupLifetime and is not ahead of
		// the most advanced packet delivered: a sender reusing the number
		// for a new packet is always ahead (its window is 4 packets, far
		// less than half the sequence space), a retransmission never is.
		if t := p.delivered[f.Seq]; t != 0 && a.stamp(now)-t < int64(a.cfg.DupLifetime) && !(p.seenAny && ahead(f.Seq, p.highest)) {
			a.stats.Duplicates++
			if ackReq {
				a.answer(now, h.Src, p, framing.Ack{Seq: f.Seq, Count: f.Count, Have: countMask(f.Count)})
			}
			return
		}
	}
	if len(body) > a.cfg.MaxPacket {
		a.stats.Malformed++
		return
	}
	hd := framing.Header{Kind: f.Inner, Dst: h.Dst, Src: h.Src}
	if f.Count == 1 {
		a.deliver(now, h.Src, p, bcast, f.Seq, hd, body)
		if ackReq {
			a.answer(now, h.Src, p, framing.Ack{Seq: f.Seq, Count: 1, Have: 1})
		}
		return
	}
	r := a.find(h.Src, bcast, f.Seq)
	if r != nil && (r.count != f.Count || r.inner != f.Inner) {
		a.free(r) // a stale packet under a reused sequence number
		a.stats.Malformed++
		r = nil
	}
	if r == nil {
		if r = a.alloc(now, len(body)); r == nil {
			return
		}
		r.src, r.bcast, r.seq, r.inner, r.count = h.Src, bcast, f.Seq, f.Inner, f.Count
	}
	r.last = now
	bit := uint64(1) << f.Index
	if r.have&bit != 0 {
		a.stats.DupFragments++
	} else {
		if a.stats.ReasmBytes+len(body) > a.cfg.ReasmBytes {
			a.evictFor(r, len(body))
		}
		if len(r.arena)+len(body) > a.cfg.MaxPacket {
			a.free(r) // outgrows any packet: forged, or a sender misconfigured
			a.stats.Malformed++
			return
		}
		r.off[f.Index], r.n[f.Index] = uint16(len(r.arena)), uint16(len(body))
		r.arena = append(r.arena, body...)
		r.have |= bit
		a.stats.ReasmBytes += len(body)
	}
	have := r.have
	if have == countMask(r.count) {
		pkt := a.out[:0]
		for i := range r.count {
			pkt = append(pkt, r.arena[r.off[i]:r.off[i]+r.n[i]]...)
		}
		a.free(r)
		a.deliver(now, h.Src, p, bcast, f.Seq, hd, pkt)
	}
	if ackReq {
		a.answer(now, h.Src, p, framing.Ack{Seq: f.Seq, Count: f.Count, Have: have})
	}
}

// onFirst handles a fragment marked First from src: unless it belongs to the
// First packet already seen (a retransmission, or another fragment of it),
// the sender has started its numbering afresh, so what was delivered from it
// and its partial packets belong to its previous life and are forgotten.
func (a *ARQ) onFirst(now time.Time, src framing.NodeID, p *peer, seq uint8) {
	// The same First packet: the sender sends no other packet until the
	// receiver has acknowledged one, and marks no retransmission First
	// after that, so on a channel that keeps order nothing later has been
	// delivered since.
	if p.sessAt != 0 && p.sessSeq == seq && a.stamp(now)-p.sessAt < int64(a.cfg.DupLifetime) &&
		(!p.seenAny || p.highest == seq) {
		return
	}
	p.sessSeq, p.sessAt = seq, a.stamp(now)
	a.restart(now, src, p, seq)
	p.delivered = [256]int64{}
	p.rxPend = [256]int64{}
	p.seenAny = false
	for i := range a.bufs {
		if r := &a.bufs[i]; r.used && r.src == src && !r.bcast {
			a.free(r)
		}
	}
}

// deliver takes a complete packet seq from src: a unicast one is
// remembered against duplicates and goes through the reorder buffer, a
// broadcast one is handed up at once.
func (a *ARQ) deliver(now time.Time, src framing.NodeID, p *peer, bcast bool, seq uint8, h framing.Header, pkt []byte) {
	if !bcast {
		p.delivered[seq] = a.stamp(now)
		front := !p.seenAny || ahead(seq, p.highest)
		if front {
			if p.seenAny {
				// The numbers skipped over belong to packets of this
				// round of the sequence space that have not arrived yet
				// (reordered behind this one): what they remember is
				// from 256 numbers ago, and would make those packets
				// look like duplicates when they come.
				for x := p.highest + 1; x != seq; x++ {
					p.delivered[x] = 0
				}
			}
			p.highest, p.seenAny = seq, true
		}
		if a.reorders() {
			a.order(now, src, p, seq, front, h, pkt)
			return
		}
	}
	a.handUp(now, h, pkt)
}

// answer sends the Ack to a poll: the record of the polled packet (first)
// and, towards a peer that groups its polls, the records of the packets
// that came from it without a poll since their last record (rxPend), most
// recent first, as many as fit (MaxAckRecords, ackRoom). Each record is the
// receiver's whole state of that packet: delivered (all), partial (the
// fragments held) or neither (none: freed or evicted).
func (a *ARQ) answer(now time.Time, dst framing.NodeID, p *peer, first framing.Ack) {
	if !a.grouped(now, dst) {
		a.sendAck(now, dst, first)
		return
	}
	recs := append(a.recs[:0], first)
	p.rxPend[first.Seq] = 0
	n, room := framing.AckLen(first.Count), a.ackRoom()
	for d := 1; d < 256 && len(recs) < framing.MaxAckRecords; d++ {
		s := first.Seq - uint8(d)
		t := p.rxPend[s]
		if t == 0 {
			continue
		}
		if a.stamp(now)-t >= int64(max(a.cfg.DupLifetime, a.cfg.ReasmTimeout)) {
			// Long gone: the sender has polled it since, or given it up.
			// Until then a rider's record waits for its group's poll,
			// which may leave minutes after it (the sender's next turn
			// on a crowded channel): as long as the receiver remembers
			// the delivery (DupLifetime), what holds reports is true.
			p.rxPend[s] = 0
			continue
		}
		c := p.rxPendCount[s]
		if n+framing.AckLen(c) > room {
			continue
		}
		n += framing.AckLen(c)
		p.rxPend[s] = 0
		recs = append(recs, framing.Ack{Seq: s, Count: c, Have: a.holds(now, dst, p, s, c)})
	}
	b, err := framing.AppendAcks(a.tx[:0], recs)
	if err != nil {
		return
	}
	a.stats.AcksSent++
	a.stats.AckRecords += uint64(len(recs) - 1)
	a.sink.Transmit(now, Frame{Header: framing.Header{Kind: framing.KindAck, Dst: dst, Src: a.cfg.Self}, Payload: b})
}

// holds is the bitmap of packet seq (count fragments) from src that this
// receiver holds: all of it if delivered (within DupLifetime, as onFrag's
// duplicate rule), the fragments of its reassembly buffer, or none.
func (a *ARQ) holds(now time.Time, src framing.NodeID, p *peer, seq, count uint8) uint64 {
	if t := p.delivered[seq]; t != 0 && a.stamp(now)-t < int64(a.cfg.DupLifetime) && !(p.seenAny && ahead(seq, p.highest)) {
		return countMask(count)
	}
	if r := a.find(src, false, seq); r != nil && r.count == count {
		return r.have
	}
	return 0
}

func (a *ARQ) sendAck(now time.Time, dst framing.NodeID, ack framing.Ack) {
	b, err := framing.AppendAck(a.tx[:0], ack)
	if err != nil {
		return
	}
	a.stats.AcksSent++
	a.sink.Transmit(now, Frame{Header: framing.Header{Kind: framing.KindAck, Dst: dst, Src: a.cfg.Self}, Payload: b})
}

func (a *ARQ) find(src framing.NodeID, bcast bool, seq uint8) *reasm {
	for i := range a.bufs {
		r := &a.bufs[i]
		if r.used && r.src == src && r.bcast == bcast && r.seq == seq {
			return r
		}
	}
	return nil
}

// alloc returns a free buffer, evicting the oldest partial packet if none is
// free, or nil if n bytes can never fit.
func (a *ARQ) alloc(now time.Time, n int) *reasm {
	var free, oldest *reasm
	for i := range a.bufs {
		r := &a.bufs[i]
		if !r.used {
			free = r
			break
		}
		if oldest == nil || r.started.Before(oldest.started) {
			oldest = r
		}
	}
	if free == nil {
		a.free(oldest)
		a.stats.ReasmEvicted++
		free = oldest
	}
	if free.arena == nil {
		free.arena = make([]byte, 0, a.cfg.MaxPacket)
	}
	*free = reasm{used: true, started: now, arena: free.arena[:0]}
	return free
}

// evictFor frees the oldest partial packets other than keep until n more
// bytes fit under ReasmBytes. Validate guarantees ReasmBytes >= MaxPacket, so
// keep alone always fits.
func (a *ARQ) evictFor(keep *reasm, n int) {
	for a.stats.ReasmBytes+n > a.cfg.ReasmBytes {
		var oldest *reasm
		for i := range a.bufs {
			r := &a.bufs[i]
			if r.used && r != keep && (oldest == nil || r.started.Before(oldest.started)) {
				oldest = r
			}
		}
		if oldest == nil {
			return
		}
		a.free(oldest)
		a.stats.ReasmEvicted++
	}
}

func (a *ARQ) free(r *reasm) {
	a.stats.ReasmBytes -= len(r.arena)
	r.used = false
	r.arena = r.arena[:0]
}

func (a *ARQ) onAck(now time.Time, h framing.Header, payload []byte) {
	if h.Dst != a.cfg.Self {
		a.stats.Malformed++ // Acks are never broadcast
		return
	}
	// Several records only in a version-2 frame (docs/frame-format.md).
	recs := a.recs[:0]
	if h.Ver() >= framing.Version2 {
		var err error
		if recs, err = framing.ParseAcks(recs, payload); err != nil {
			a.stats.Malformed++
			return
		}
	} else {
		ack, err := framing.ParseAck(payload)
		if err != nil {
			a.stats.Malformed++
			return
		}
		recs = append(recs, ack)
	}
	a.stats.AcksReceived++
	p := a.peers[h.Src]
	retr := a.retr[:0]
	sampled := false    // one round-trip sample per Ack frame: its records answer one poll
	var train time.Time // when the round this Ack answers was armed (answerTrain)
	var answered uint64 // the last poll on air this Ack answers (armOrder; 0: none)
	for k, ack := range recs {
		var o *outPkt
		slot := -1
		if p != nil {
			for i := range p.out {
				if q := &p.out[i]; q.used && !q.open && q.seq == ack.Seq && q.count == ack.Count {
					o, slot = q, i
					break
				}
			}
		}
		if o == nil {
			a.stats.StaleAcks++
			if p != nil && !p.synced && p.goneSet && ack.Seq == p.goneFirst && ack.Count == p.goneCount && ack.Have != 0 {
				// The Ack of the First packet given up last, come after
				// the give-up (its round went on air after MaxAge, and
				// arm gave it up before the Ack could come): the receiver
				// has seen where our numbering starts all the same. On a
				// crowded channel every First packet went that way, and
				// the sender stayed at one packet at a time, its timeout
				// backed off to minutes without a sample
				// (TestLateAckOfFirstSyncs).
				p.synced = true
				if a.settle != nil {
					a.settleFirst(now, h.Src, p, ack.Seq)
				}
			}
			continue
		}
		complete := ack.Have == countMask(o.count)
		if !p.synced {
			p.synced = true // the receiver has seen where our numbering starts
			if a.settle != nil && !complete {
				// The first Ack, in part: from now on nothing goes
				// marked First, so this packet's First frames still
				// queued would be harmful too (SettleSink). What the
				// receiver lacks goes again, unmarked.
				a.settle.Settled(now, h.Src, o.seq)
			}
		}
		if !complete && ack.Have&(1<<o.poll) == 0 {
			// An earlier round's Ack (or, for a rider, the last fragment
			// of its round lost): the current poll's will say more, or
			// the timer recovers it.
			continue
		}
		// The Ack answers the current poll. Unless a round of this packet
		// timed out (then it may answer an earlier transmission of the same
		// fragment: Karn's rule), it measures the round trip the timer covers,
		// if no other poll armed at the same instant has measured it already.
		// One sample per transmission: the Acks to a burst's polls answer one
		// channel access, and counting that delay once per poll would shrink
		// RTTVAR until the next burst's Acks, a little later, all time out.
		// Likewise the records of one Ack are one sample.
		if !o.armedAt.IsZero() {
			train = o.armedAt
		}
		if k == 0 && !o.timedOut {
			// The polled packet's record (answer puts it first): the
			// polls that left before it are overtaken. The other records
			// are riders and earlier packets the receiver holds, some
			// armed by a poll that left after this one, whose Ack is on
			// its way (TestOvertakenOnlyByThePolledRecord). After a
			// timeout the Ack may answer an earlier poll of the packet
			// (Karn): it shows nothing of the order.
			answered = o.armOrder
		}
		switch {
		case o.armedAt.IsZero(), sampled, a.late:
		case !o.timedOut && a.cfg.BurstSamples && o.armedAt.Equal(p.sampledArm):
		case !o.timedOut:
			p.sampledArm = o.armedAt
			p.rtt.sample(a.rttb, now.Sub(o.armedAt))
			sampled = true
		default:
			p.rtt.settle(a.rttb, now.Sub(o.armedAt))
			sampled = true
		}
		if complete {
			// Whole at the receiver: delivered (or delivered before).
			a.stats.Acked++
			p.stats.acked++
			a.release(p, o)
			if a.settle != nil {
				a.settle.Settled(now, h.Src, o.seq)
			}
			continue
		}
		if ack.Have&^o.acked != 0 {
			// Progress: the retry limit counts rounds that bring nothing, so a
			// packet of many fragments on a lossy link is not given up while
			// it advances. Each reset needs a new bit, so a packet gets at most
			// Count×(MaxRetries+1) rounds; once it is complete at the receiver
			// no bit is new, and the sender stops within MaxRetries+1 rounds,
			// inside the receiver's DupLifetime.
			o.retries = 0
		}
		// The Ack is the receiver's whole state, not an increment: if it freed
		// a partial packet (reassembly time-out or eviction), fragments it
		// held before are missing again and must be sent again.
		o.acked = ack.Have
		if a.expired(now, p, o) {
			continue
		}
		retr = append(retr, retryItem{slot, ^o.acked & countMask(o.count)})
	}
	if a.cfg.ResendOvertaken && a.cfg.BurstSamples && a.cfg.ArmOnTxDone {
		retr = a.overtaken(now, p, answered, retr)
	}
	if !train.IsZero() && a.cfg.BurstSamples && a.cfg.ArmOnTxDone {
		a.answerTrain(now, p, train)
	}
	if len(retr) > 0 {
		a.resend(now, h.Src, p, retr)
	}
}

// settleFirst reports to SettleSink, when the late Ack of gone (the First
// packet given up last) has just synchronised the sender, the packets whose
// First frames the driver may still hold: gone itself, and the one packet
// sent after it, still outstanding, marked First (before synced the window
// is one). From now on packets to dst go unmarked, and one of them that
// went on air before such a frame (the MAC queue serves flows in rounds)
// would be taken for a restart by the receiver, which forgets what it
// delivered from us and delivers it again at its retransmission
// (TestLateAckOfFirstSettlesQueuedFirst). The driver takes them out of its
// queues; the outstanding packet goes again, unmarked, when its timer
// runs out (the dropped poll is reported to TxDone). No frame of an
// earlier packet given up still goes on air: with ArmOnTxDone (the link
// engine) a packet is given up by a timer its last round's poll armed when
// it left (a round's frames leave in the order handed over), or at MaxAge
// with its round's poll still held (Poll), when every frame of it the
// driver holds is past its Expires and is dropped, not sent.
func (a *ARQ) settleFirst(now time.Time, dst framing.NodeID, p *peer, gone uint8) {
	a.settle.Settled(now, dst, gone)
	for i := range p.out {
		if o := &p.out[i]; o.used {
			a.settle.Settled(now, dst, o.seq)
		}
	}
}

// answerTrain moves on the timers of p's rounds armed at the instant armed
// that still wait for their Ack: an Ack has just answered a round armed
// then. With BurstSamples (and ArmOnTxDone) rounds armed at one instant
// left in one transmission (a burst's TxDone: a modem that takes bursts),
// and the receiver answers its polls one Ack after the other: the
// first Ack's delay is what the timeout learns (one sample a burst,
// Config.BurstSamples), the last comes a burst's worth of Ack airtimes
// later. Each Ack of the train shows when the answers come, so the rest
// wait from it as long as their timeout waits beyond the expected round
// trip (its margin over SRTT, at least RTTGranularity once learned): while
// the Acks keep coming the train is on its way; when they stop, the timers
// run out that margin after the last. (A whole timeout from each Ack kept
// polls lost to a half-duplex start waiting, and starved one side of
// TestAcousticStartFair, seed 11, for two minutes.)
// Without it the last polls of a 16-frame burst at 9600 bit/s timed out
// just before their Acks came, and what had been acknowledged went again
// at the node's next turn (TestBurstAckTrain).
func (a *ARQ) answerTrain(now time.Time, p *peer, armed time.Time) {
	for i := range p.out {
		o := &p.out[i]
		if !o.used || o.deadline.IsZero() || !o.armedAt.Equal(armed) {
			continue
		}
		d := now.Add(max(o.armedRTO-p.rtt.srtt, 0))
		if a.cfg.MaxAge > 0 {
			if end := o.sent.Add(a.cfg.MaxAge); end.Before(d) {
				d = end
			}
		}
		if d.After(o.deadline) {
			o.deadline = d
		}
	}
}

// overtaken adds to retr, for a new round now, p's rounds still waiting
// for an Ack whose poll left before the one armed order (or with it, for a
// rider of it), which an Ack has just answered (Config.BurstSamples: a
// modem that takes bursts, a TNC, whose TxDone the driver reports in the
// order the frames go on air, and arms the polls in that order). The
// receiver answers the polls it gets in the order they come (its Acks
// queue in order, csma.MACOf.EnqueueFront, and go on air in that order),
// and an Ack lists the riders the receiver holds of the poll it answers.
// So those polls and riders never arrived (or their Acks were lost), and
// their timers would only resend them later: a margin after the last Ack
// of their train (answerTrain), or a whole timeout after their own key-up.
// As on a timeout a round resends the highest fragment still missing, as
// a poll, but the learned timeout is not backed off: nothing came late.
// Rounds whose poll left after the answered one keep waiting: their Acks
// are on their way. Neither a frame heard earlier and handled only now
// (ReceiveLate) nor an Ack to a packet whose round timed out (it may
// answer the packet's earlier poll, Karn) says anything of the order.
//
// Behind a TNC the first frames of a key-up are the ones a collision
// takes (the far TNC keying up before it hears the carrier): on the Dire
// Wolf rig such a lost poll waited 3.3 s after the Acks to the frames sent
// after it had come (docs/modems.md).
func (a *ARQ) overtaken(now time.Time, p *peer, order uint64, retr []retryItem) []retryItem {
	if order == 0 || a.late || p == nil {
		return retr
	}
next:
	for i := range p.out {
		o := &p.out[i]
		if !o.used || o.deadline.IsZero() || o.armOrder > order {
			continue
		}
		for _, r := range retr {
			if r.slot == i {
				continue next // answered in part: its round goes again already
			}
		}
		o.timedOut = true // its Ack may yet answer this round's poll (Karn)
		if a.expired(now, p, o) {
			continue
		}
		a.stats.Overtaken++
		missing := ^o.acked & countMask(o.count)
		last := uint64(1) << 63
		for missing&last == 0 {
			last >>= 1
		}
		retr = append(retr, retryItem{i, last})
	}
	return retr
}

// expired gives o up, and says so, when its rounds are spent (MaxRetries
// without progress, Count×(MaxRetries+1) in all) or it is MaxAge old.
func (a *ARQ) expired(now time.Time, p *peer, o *outPkt) bool {
	tooOld := a.cfg.MaxAge > 0 && now.Sub(o.sent) >= a.cfg.MaxAge
	if tooOld || o.retries >= a.cfg.MaxRetries || o.rounds >= int(o.count)*(a.cfg.MaxRetries+1) {
		a.giveUp(p, o)
		return true
	}
	return false
}

// giveUp abandons o (counted in GiveUps).
func (a *ARQ) giveUp(p *peer, o *outPkt) {
	if !p.synced {
		p.goneFirst, p.goneCount, p.goneSet = o.seq, o.count, true // its Ack may still come (onAck)
	}
	a.stats.GiveUps++
	p.stats.giveUps++
	a.release(p, o)
}

// ageEnd is when o, whose round's timer is not running, is given up for
// its age (Poll): the end of its life (Frame.Expires). ok is false when a
// timer runs (it ends by MaxAge: arm), when its last fragment is held for
// a group (open: it ends once that fragment is handed over), or without
// MaxAge. With ArmOnTxDone a round's timer starts when its poll leaves
// the driver, and a poll may wait there past MaxAge (a crowded channel:
// a turn minutes away): the packet is given up at MaxAge all the same,
// and its frames still held, past their Expires, are never sent.
func (a *ARQ) ageEnd(o *outPkt) (time.Time, bool) {
	if a.cfg.MaxAge <= 0 || !o.used || o.open || !o.deadline.IsZero() {
		return time.Time{}, false
	}
	return a.expires(o), true
}

// resend starts a new round for each packet in items (none expired). Each
// round's highest missing fragment carries AckReq; towards a peer that
// groups polls only the last round of each group does, the others ride on
// it (a group as sendGrouped bounds it). A group's rounds go oldest packet
// first, so that its poll is its youngest packet, as a first
// transmission's group is: the riders reach their MaxAge before the poll
// does. Were the poll the oldest (an Ack lists the polled packet first),
// the driver would drop it for age while the younger riders still waited
// behind it, and their timers, started by its TxDone, would run out for
// frames that never left (TestResendPollsYoungest).
func (a *ARQ) resend(now time.Time, dst framing.NodeID, p *peer, items []retryItem) {
	grouped := p.synced && a.grouped(now, dst)
	if grouped {
		slices.SortStableFunc(items, func(x, y retryItem) int {
			return p.out[x.slot].sent.Compare(p.out[y.slot].sent)
		})
	}
	n, bytes := 0, 0
	for k, it := range items {
		o := &p.out[it.slot]
		poll := true
		if grouped && k < len(items)-1 {
			n++
			bytes += framing.AckLen(o.count)
			next := framing.AckLen(p.out[items[k+1].slot].count)
			poll = n+1 > framing.MaxAckRecords || bytes+next > a.ackRoom()
		}
		if poll {
			n, bytes = 0, 0
		}
		a.retry(now, dst, p, o, it.missing, !poll)
	}
}

// retry starts a new round for o: it retransmits the fragments in missing,
// the highest of them carrying AckReq unless the round rides on a later
// poll (ride: its timer then starts with that poll's).
func (a *ARQ) retry(now time.Time, dst framing.NodeID, p *peer, o *outPkt, missing uint64, ride bool) {
	o.retries++
	o.rounds++
	a.stats.Rounds++
	last := uint8(63)
	for missing&(1<<last) == 0 {
		last--
	}
	o.poll = last
	for i := range o.count {
		if missing&(1<<i) != 0 {
			a.sendFrag(now, dst, framing.FragHeader{AckReq: i == last && !ride, First: !p.synced, Inner: o.inner, Seq: o.seq, Index: i, Count: o.count}, o.data, false, a.expires(o))
			a.stats.Retransmissions++
			p.stats.retx++
		}
	}
	o.deadline, o.armedAt, o.ride, o.rideResend, o.rideSet = time.Time{}, time.Time{}, ride, ride, false
	if ride {
		a.stats.Riders++
		return
	}
	a.bindRiders(p, o.seq, last, true)
	if !a.cfg.ArmOnTxDone {
		a.arm(p, o, now) // else TxDone arms it
		a.armRiders(p, now, o.seq, last)
	}
}

// arm starts o's Ack timer at now (its poll was handed to the sink, or left
// the modem): the peer's current timeout with its jitter (RetryJitter), but
// no later than the end of the packet's MaxAge, when the timeout gives it
// up.
func (a *ARQ) arm(p *peer, o *outPkt, now time.Time) {
	d := now.Add(a.rttb.wait(p.rtt.rto))
	if a.cfg.MaxAge > 0 {
		if end := o.sent.Add(a.cfg.MaxAge); end.Before(d) {
			d = end
		}
	}
	o.deadline, o.armedAt, o.armedRTO, o.armOrder = d, now, d.Sub(now), a.arms
	o.stallRestarted = false
	if now.Before(a.noSample) {
		o.armedAt = time.Time{} // its Ack may have waited out a stall
	}
}

func (a *ARQ) release(p *peer, o *outPkt) {
	a.stats.HeldBytes -= len(o.data)
	o.used = false
	p.busy--
}

// TxDone tells the ARQ that a frame it transmitted has left the modem. For
// the fragment that asked for an Ack it restarts the Ack timer from now, so
// that time spent in the MAC queue does not count against the ack timeout,
// and the round trip sampled when the Ack comes starts here too.
// Other frames are ignored. Calling TxDone is optional unless ArmOnTxDone is
// set; then the driver must call it for every fragment with AckReq that it
// was given, also when it dropped the frame instead of sending it (the
// timer then recovers the packet).
func (a *ARQ) TxDone(now time.Time, h framing.Header, payload []byte) {
	if h.Kind != framing.KindFragment || h.Dst == framing.Broadcast {
		return
	}
	f, _, err := framing.ParseFrag(payload)
	if err != nil || !f.AckReq {
		return
	}
	if p := a.peers[h.Dst]; p != nil {
		a.arms++
		for i := range p.out {
			o := &p.out[i]
			if o.used && !o.open && o.seq == f.Seq && o.poll == f.Index {
				a.arm(p, o, now)
			}
		}
		a.armRiders(p, now, f.Seq, f.Index)
	}
}

// Deadline is the earliest time at which Poll has work: an Ack timeout, the
// end of the life of a packet whose round's poll the driver still holds
// (ArmOnTxDone), a reassembly time-out or the end of a reorder wait. ok is false when
// nothing is pending.
func (a *ARQ) Deadline() (t time.Time, ok bool) {
	t, ok = a.reorderDeadline()
	for _, p := range a.peers {
		if p == nil || p.busy == 0 {
			continue
		}
		for i := range p.out {
			o := &p.out[i]
			if o.used && !o.deadline.IsZero() && (!ok || o.deadline.Before(t)) {
				t, ok = o.deadline, true
			}
			if end, aged := a.ageEnd(o); aged && (!ok || end.Before(t)) {
				t, ok = end, true
			}
		}
	}
	for i := range a.bufs {
		if r := &a.bufs[i]; r.used {
			if d := r.last.Add(a.cfg.ReasmTimeout); !ok || d.Before(t) {
				t, ok = d, true
			}
		}
	}
	return t, ok
}

// Poll runs the timers due at now: a unicast packet whose Ack is overdue
// retransmits its highest unacknowledged fragment as a poll (or is given up
// after MaxRetries), one MaxAge old whose round's poll has not left the
// driver (ArmOnTxDone) is given up, a partial packet idle for ReasmTimeout is freed, and
// packets held ReorderTimeout behind a gap are handed up past it.
func (a *ARQ) Poll(now time.Time) {
	a.pollReorder(now)
	for id, p := range a.peers {
		if p == nil || p.busy == 0 {
			continue
		}
		retr := a.retr[:0]
		for i := range p.out {
			o := &p.out[i]
			if end, aged := a.ageEnd(o); aged && !now.Before(end) {
				// Its round's poll never left: no timeout, no backoff.
				a.giveUp(p, o)
				continue
			}
			if o.used && !o.deadline.IsZero() && !now.Before(o.deadline) {
				a.stats.Timeouts++
				p.stats.timeouts++
				p.rtt.backoff(a.rttb, o.armedRTO)
				o.timedOut = true
				if a.expired(now, p, o) {
					continue
				}
				missing := ^o.acked & countMask(o.count)
				last := uint64(1) << 63
				for missing&last == 0 {
					last >>= 1
				}
				retr = append(retr, retryItem{i, last})
			}
		}
		if len(retr) > 0 {
			// Rounds that time out together go together: one poll for
			// them towards a peer that groups (resend).
			a.resend(now, framing.NodeID(id), p, retr)
		}
	}
	for i := range a.bufs {
		if r := &a.bufs[i]; r.used && !now.Before(r.last.Add(a.cfg.ReasmTimeout)) {
			a.free(r)
			a.stats.ReasmTimeouts++
		}
	}
}

// stamp is now on the ARQ's own clock, for the ages it compares with a
// lifetime (duplicates, sequence reuse, a sender's First packet, records
// for the next Ack): nanoseconds since the first reading, at least 1 (0
// means never). It counts as now.Sub does, so with times from time.Now it
// runs on the monotonic clock, and a wall clock set forward or back (a
// board without a real-time clock setting it by NTP) ages nothing; Unix
// time did.
func (a *ARQ) stamp(now time.Time) int64 {
	if a.epoch.IsZero() {
		a.epoch = now
	}
	return max(int64(now.Sub(a.epoch))+1, 1)
}

// ahead reports whether sequence number s comes after h in the circular
// space: up to 127 numbers later.
func ahead(s, h uint8) bool {
	d := s - h
	return d >= 1 && d <= 127
}

func countMask(n uint8) uint64 {
	if n >= 64 {
		return ^uint64(0)
	}
	return 1<<n - 1
}

// Config returns the configuration the ARQ runs with.
func (a *ARQ) Config() Config { return a.cfg }
