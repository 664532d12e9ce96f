package link

import (
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/arq"
	"github.com/slided/slided/mac/csma"
)

// Stats is a snapshot of one interface's counters.
type Stats struct {
	Node   int    `json:"node"`
	Policy string `json:"policy"`
	Up     bool   `json:"up"`
	// StaleSeconds is how old the snapshot is when the daemon's loop did
	// not answer in time (bridge.Bridge.Stats): 0 for a live snapshot.
	StaleSeconds float64 `json:"stale_seconds,omitempty"`
	BitRate      int     `json:"bit_rate"`

	// Host → air.
	TAPReads   uint64 `json:"tap_reads"`    // Ethernet frames read from the TAP
	TxFrames   uint64 `json:"tx_frames"`    // frames put on air in full
	TxBursts   uint64 `json:"tx_bursts"`    // transmissions of several frames (one key-up each; Info.MaxBurstFrames)
	TxBytes    uint64 `json:"tx_bytes"`     // bytes on air, framing included
	TxEthBytes uint64 `json:"tx_eth_bytes"` // the Ethernet bytes those frames carried

	// Air → host.
	RxBursts    uint64 `json:"rx_bursts"`     // Received events from the modem
	RxWireBytes uint64 `json:"rx_wire_bytes"` // bytes from the modem
	RxFrames    uint64 `json:"rx_frames"`     // Ethernet frames written to the TAP
	RxEthBytes  uint64 `json:"rx_eth_bytes"`
	NotForUs    uint64 `json:"not_for_us"` // good frames addressed to another node

	// Where packets wait.
	QueueDepth  int    `json:"queue_depth"`  // frames in the MAC queue (one may be on air)
	QueueLen    int    `json:"queue_len"`    // the MAC queue's capacity
	ReadPending bool   `json:"read_pending"` // the daemon is ready to read the TAP
	Ring        int    `json:"ring"`         // estimated packets in the TAP ring (-1 unknown)
	RingDropped uint64 `json:"ring_dropped"` // packets the TAP ring dropped (tx_dropped since start)
	PacingRate  uint64 `json:"pacing_rate"`  // the shaping qdisc's rate, bytes/s (0: not shaping)
	LinkQueue   int    `json:"link_queue"`   // frames (fragments, Acks) waiting for room in the MAC queue
	Holding     bool   `json:"holding"`      // a packet waits for its destination's ARQ window
	WindowWaits uint64 `json:"window_waits"` // packets that had to wait for an ARQ window
	FrameMax    int    `json:"frame_max"`    // largest frame on the wire (0: no limit)
	// Neighbour discovery answered by the daemon (link/neigh.go).
	NeighAnswered uint64 `json:"neigh_answered"` // ARP requests and IPv6 solicitations answered without airtime
	NeighKnown    int    `json:"neigh_known"`    // addresses of other nodes heard on air
	NeighRefused  uint64 `json:"neigh_refused"`  // claims to an address another node holds (not moved)

	// Senders is the number of other nodes heard sending recently; with
	// Config.WindowFromSenders it sets the MAC's contention window
	// (csma.MAC.Contenders).
	Senders int `json:"senders"`

	// Wire-format version 2 (link/version.go): packets sent with their IP
	// and UDP headers compressed (KindIPHC), the bytes that saved, and
	// hellos sent (announcing version 2 to peers not yet known to speak it).
	Compressed    uint64 `json:"compressed"`
	CompressSaved uint64 `json:"compress_saved_bytes"`
	HellosSent    uint64 `json:"hellos_sent"`

	// AcksSuperseded counts Acks that took the place of an older one to
	// the same node for the same packet, still waiting to be sent.
	AcksSuperseded uint64 `json:"acks_superseded"`
	// SettledDropped counts data frames taken out of the queues, not
	// sent, because an Ack settled their packet while they waited
	// (arqSink.Settled): retransmissions that had become useless.
	SettledDropped uint64 `json:"settled_dropped"`
	// AgedDropped counts data frames taken out of the queues, not sent,
	// because their packet had reached MaxAge while they waited
	// (dropAged): sent later, one could reach a receiver that has
	// forgotten the delivery, which would hand the packet up again.
	AgedDropped uint64 `json:"aged_dropped"`
	// AckRides counts small data frames sent in the same transmission as
	// one of our Acks, right behind it, instead of in a contention round
	// of their own (ride.go).
	AckRides uint64 `json:"ack_rides"`
	// TCPAcksThinned counts pure TCP ACKs the host gave that a newer one
	// of the same connection replaced before they were sent (tcpack.go).
	TCPAcksThinned uint64 `json:"tcp_acks_thinned"`

	// With a key (-key): the keys' fingerprints (auth.Fingerprint, the
	// sealing key first), the frames each key opened (a changeover is over
	// when the second key's count stops growing on every node), and
	// authentic frames carrying our own node id that we did not seal:
	// another station uses our id and key.
	KeyFingerprints []string  `json:"key_fingerprints,omitempty"`
	KeyOpened       [2]uint64 `json:"key_opened"`
	OwnIDHeard      uint64    `json:"own_id_heard"`

	ChannelBusy  time.Duration `json:"channel_busy_ns"` // carrier sensed or own transmission
	PHYDowns     uint64        `json:"phy_downs"`
	ShaperErrors uint64        `json:"shaper_errors"`

	Drops   Drops                `json:"drops"`
	MAC     csma.Stats           `json:"mac"`
	ARQ     arq.Stats            `json:"arq"`
	Decoder framing.DecoderStats `json:"decoder"`

	// Peers is what the link layer knows of each other node it has sent
	// to or heard, in node order: at most 254 entries.
	Peers []Peer `json:"peers,omitempty"`
}

// Peer is one other node as the link ARQ sees it (arq.PeerStats).
type Peer struct {
	Node int `json:"node"`
	// The round trip from a poll leaving the modem to its Ack, smoothed,
	// with its mean deviation (0 before the first sample), the number of
	// samples, and the ack timeout now in use towards the node.
	SRTT    time.Duration `json:"srtt_ns"`
	RTTVar  time.Duration `json:"rttvar_ns"`
	RTO     time.Duration `json:"rto_ns"`
	Samples uint64        `json:"rtt_samples"`
	// Sent to the node: packets, fragments first sent, fragments sent
	// again, ack timeouts, packets given up and acknowledged.
	Packets         uint64 `json:"packets"`
	Fragments       uint64 `json:"fragments"`
	Retransmissions uint64 `json:"retransmissions"`
	Timeouts        uint64 `json:"timeouts"`
	GiveUps         uint64 `json:"give_ups"`
	Acked           uint64 `json:"acked"`
	// LastHeard is when the last frame from the node arrived (omitted if
	// never); HeardAgo is how long before the snapshot (-1: never).
	LastHeard time.Time     `json:"last_heard,omitzero"`
	HeardAgo  time.Duration `json:"heard_ago_ns"`
	// Version is the highest wire-format version heard from the node since
	// it last restarted (0: never heard; docs/frame-format.md, "Versions").
	Version int `json:"version"`
}

// peers converts an ARQ's per-peer figures, taken at now.
func peers(a *arq.ARQ, v *versions, now time.Time) []Peer {
	var buf [8]arq.PeerStats
	ps := a.AppendPeers(buf[:0])
	if len(ps) == 0 {
		return nil
	}
	out := make([]Peer, len(ps))
	for i, p := range ps {
		out[i] = Peer{Node: int(p.Node), SRTT: p.SRTT, RTTVar: p.RTTVar, RTO: p.RTO, Samples: p.Samples,
			Packets: p.Packets, Fragments: p.Fragments, Retransmissions: p.Retransmissions, Timeouts: p.Timeouts,
			GiveUps: p.GiveUps, Acked: p.Acked, LastHeard: p.LastHeard, HeardAgo: -1, Version: int(v.of(p.Node))}
		if !p.LastHeard.IsZero() {
			out[i].HeardAgo = max(now.Sub(p.LastHeard), 0)
		}
	}
	return out
}

// Drops counts packets and frames lost inside the daemon, by reason.
type Drops struct {
	QueueFull uint64 `json:"queue_full"` // drop-tail: new packet, MAC queue full
	QueueHead uint64 `json:"queue_head"` // drop-head: oldest packet pushed out
	NoRoute   uint64 `json:"no_route"`   // unicast to a MAC that is no slided node
	TooBig    uint64 `json:"too_big"`    // larger than the modem's largest frame or the MTU
	BadFrame  uint64 `json:"bad_frame"`  // malformed Ethernet frame or link frame kind
	PHYError  uint64 `json:"phy_error"`  // the modem refused a transmission for another reason (closed, ...)
	PHYDown   uint64 `json:"phy_down"`   // lost when the modem went down (on air, or refused with phy.ErrDown)
	TAPWrite  uint64 `json:"tap_write"`  // the TAP refused a received frame (or the driver left the outbox full)
	Echo      uint64 `json:"echo"`       // our own frame heard back
	BadCRC    uint64 `json:"bad_crc"`    // received with a bad checksum
	Garbage   uint64 `json:"garbage"`    // received undecodable (framing, length, version, address)

	// The modem refused a transmission with one of phy.go's errors.
	PHYBusy     uint64 `json:"phy_busy"`      // phy.ErrBusy: sent before the last TxDone (a bug, logged once)
	PHYTooLarge uint64 `json:"phy_too_large"` // phy.ErrTooLarge: larger than the modem carries
	PHYEmpty    uint64 `json:"phy_empty"`     // phy.ErrEmpty

	// With a key (-key): frames received and dropped.
	Unsealed   uint64 `json:"unsealed"`    // not sealed at all
	AuthFailed uint64 `json:"auth_failed"` // forged, wrong key or modified
	Replayed   uint64 `json:"replayed"`    // a counter already seen or too old
	KeyMode    uint64 `json:"key_mode"`    // sealed while we sign, or signed while we seal (-key-mode differs)
	// The counter is not saved in the state directory (-state-dir) yet:
	// its write is under way (a sender's first frame since the start, or
	// a disk slower than five seconds) or failed. Refused rather than
	// accepted again after a restart.
	StateFailed uint64 `json:"state_failed"`
	// Without a key: sealed frames we cannot open.
	Sealed uint64 `json:"sealed"`
	// Sending.
	SealFailed uint64 `json:"seal_failed"` // counters not reserved in the state directory yet (write under way or failed), or exhausted
	AckQueue   uint64 `json:"ack_queue"`   // Acks dropped, too many waiting
	// A packet with compressed headers (KindIPHC) that cannot be rebuilt
	// exactly: dropped, never delivered with a guessed header.
	Decompress uint64 `json:"decompress"`
}

// Total is the sum of all drops.
func (d Drops) Total() uint64 {
	return d.QueueFull + d.QueueHead + d.NoRoute + d.TooBig + d.BadFrame + d.PHYError +
		d.PHYDown + d.PHYBusy + d.PHYTooLarge + d.PHYEmpty + d.TAPWrite + d.Echo + d.BadCRC + d.Garbage +
		d.Unsealed + d.AuthFailed + d.Replayed + d.KeyMode + d.StateFailed + d.Sealed + d.SealFailed + d.AckQueue +
		d.Decompress
}
