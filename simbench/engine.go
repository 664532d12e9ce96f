package simbench

// The engine mode: N link engines (package link, the code the daemon runs,
// ARQ, Acks, reservations and all) on the phy/sim/medium core in virtual time,
// each host keeping its flows saturated the way a blocking sender does under
// policy Block: a packet is handed over whenever the engine wants to read.
// What it measures is what the daemon's end-to-end benchmarks measure
// (cmd/slided/backpressure_bench_test.go): UDP payload bits received over
// the bit rate and the time. docs/simulation.md compares the two.

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/link"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/sim"
	"github.com/slided/slided/phy/sim/medium"
)

// Link is the protocol name of the engine mode (slided bench -protocol link).
const Link = "link"

// Flow is one saturated stream of UDP datagrams from node From to node To
// (1-based).
type Flow struct{ From, To int }

// EngineConfig is one run of the engine mode.
type EngineConfig struct {
	// Nodes is the number of nodes, 2..254 (0: the highest node a flow
	// names).
	Nodes int
	// Flows are the streams; none means one flow from node 1 to node 2.
	Flows []Flow
	// BitRate of the channel (0: 115200).
	BitRate int
	// Payload is the UDP payload of every datagram (0: 1000, as the
	// daemon's benchmarks send).
	Payload int
	// Duration is the measured span of virtual time (0: 60 s); a warm-up
	// of a tenth of it, at most 10 s, runs before.
	Duration time.Duration
	// Seed seeds the medium and every engine's MAC.
	Seed uint64
	// PropDelay is the one-way delay between every pair of nodes, and
	// LossRate the chance that a burst is lost at a receiver.
	PropDelay time.Duration
	LossRate  float64
	// Engine returns the configuration of node id. Nil: the daemon's
	// (link.Config with only the node id set: link.DefaultMAC, policy
	// Block, ARQ on, MTU 1500), as slided run builds it with no flags.
	Engine func(id framing.NodeID) link.Config
}

// FlowResult is one flow's share.
type FlowResult struct {
	From      int     `json:"from"`
	To        int     `json:"to"`
	Datagrams uint64  `json:"datagrams"`
	Goodput   float64 `json:"goodput_bps"` // UDP payload bits per second
	// OutOfOrder counts datagrams received after one sent later in the
	// same flow.
	OutOfOrder uint64 `json:"out_of_order"`
	// The delay from the sender's engine taking a datagram from its host
	// to the receiver's engine handing it up: mean, 95th percentile and
	// largest (payloads of 16 bytes or more carry the time).
	DelayMean time.Duration `json:"delay_mean_ns"`
	DelayP95  time.Duration `json:"delay_p95_ns"`
	DelayMax  time.Duration `json:"delay_max_ns"`
	// MaxGap is the longest time over the measured span in which the
	// flow delivered nothing (from the span's start to its first
	// delivery, between two, from its last to the span's end).
	MaxGap time.Duration `json:"max_gap_ns"`
	// Duplicates counts datagrams handed up over the measured span that
	// the receiver's host had been given before (in the span or the
	// warm-up): the link must deliver each once. They are counted in
	// Datagrams too.
	Duplicates uint64 `json:"duplicates"`
}

// EngineResult is what an engine-mode run measured.
type EngineResult struct {
	Protocol string        `json:"protocol"`
	Nodes    int           `json:"nodes"`
	BitRate  int           `json:"bit_rate"`
	Payload  int           `json:"payload"`
	Seed     uint64        `json:"seed"`
	Duration time.Duration `json:"duration_ns"`
	Flows    []FlowResult  `json:"flows"`
	// MaxGap is the longest of the flows' MaxGap: the longest silence
	// of any flow.
	MaxGap time.Duration `json:"max_gap_ns"`
	// Duplicates is the flows' Duplicates summed.
	Duplicates uint64 `json:"duplicates"`
	// GoodputPerChannel is all flows' UDP payload bits received over
	// bit rate × duration: the daemon benchmarks' goodput/channel.
	GoodputPerChannel float64 `json:"goodput_per_channel"`
	// Jain is Jain's fairness index over the flows' goodputs.
	Jain float64 `json:"jain"`
	// Over the measured span, all nodes: frames on air, the medium's
	// collisions, ARQ retransmissions, ack timeouts and give-ups,
	// and the share of time the channel was busy.
	Transmissions   uint64  `json:"transmissions"`
	Collisions      uint64  `json:"collisions"`
	Retransmissions uint64  `json:"retransmissions"`
	Timeouts        uint64  `json:"ack_timeouts"`
	GiveUps         uint64  `json:"give_ups"`
	Busy            float64 `json:"channel_busy"`
	WallSeconds     float64 `json:"wall_seconds"`
}

// engNode is one node of the engine mode.
type engNode struct {
	id    framing.NodeID
	e     *link.Engine
	flows []int // indexes of the flows it sends
	next  int   // round robin over flows
	seq   uint32
	pkt   []byte
	// deadline is e.Deadline() after the runner's last input to e: a
	// sans-I/O engine's deadline changes only with its inputs, so the
	// loop need not ask all N engines at every event (at 100 nodes that
	// asking was 60 % of a run, most of it in the ARQ's scans).
	deadline   time.Time
	deadlineOK bool
	// takeAt is when the node's host hands the engine a packet again if
	// no Ack comes first: the end of the channel kept for the Acks to
	// its last transmission (link.Engine.AwaitingAck), as the bridge's
	// loop wakes then (zero: no such wait).
	takeAt time.Time
}

type engRunner struct {
	cfg       EngineConfig
	m         *medium.Medium
	info      phy.Info
	split     sim.Splitter // the daemon's stream client's: a burst's frames back to back
	nodes     []*engNode
	now       time.Time
	measuring bool
	got       []uint64 // datagrams received per flow, while measuring
	late      []uint64 // of them, received after a later one of the flow
	highest   []uint32 // the highest sequence number received per flow
	delays    [][]time.Duration
	lastGot   []time.Time     // per flow: the last delivery while measuring (or the span's start)
	maxGap    []time.Duration // per flow: the longest time without one
	seen      []seqSet        // per flow: the sequence numbers handed up
	dups      []uint64        // per flow: of them, handed up again while measuring
	base      [4]uint64
	err       error
}

func (c *EngineConfig) defaults() {
	if len(c.Flows) == 0 {
		c.Flows = []Flow{{1, 2}}
	}
	for _, f := range c.Flows {
		c.Nodes = max(c.Nodes, f.From, f.To)
	}
	if c.BitRate == 0 {
		c.BitRate = 115200
	}
	if c.Payload == 0 {
		c.Payload = 1000
	}
	if c.Duration == 0 {
		c.Duration = time.Minute
	}
	if c.Engine == nil {
		c.Engine = func(id framing.NodeID) link.Config { return link.Config{Node: id} }
	}
}

// Validate reports the first problem with c (after defaults), or nil.
func (c EngineConfig) Validate() error {
	c.defaults()
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(f, a...)) }
	switch {
	case c.Nodes < 2 || c.Nodes > 254:
		return bad("nodes %d: want 2..254", c.Nodes)
	case c.BitRate <= 0:
		return bad("bit rate %d: must be positive", c.BitRate)
	case c.Payload < 8 || c.Payload > 1472:
		return bad("payload %d: want 8..1472 bytes (a UDP datagram in a 1500-byte MTU)", c.Payload)
	case c.Duration <= 0 || c.Duration > 24*time.Hour:
		return bad("duration %v: want up to 24h", c.Duration)
	case !(c.LossRate >= 0 && c.LossRate < 1):
		return bad("loss %v: want 0 <= loss < 1", c.LossRate)
	}
	for _, f := range c.Flows {
		if f.From < 1 || f.To < 1 || f.From > c.Nodes || f.To > c.Nodes || f.From == f.To {
			return bad("flow %d->%d: want two different nodes of 1..%d", f.From, f.To, c.Nodes)
		}
	}
	return nil
}

// RunEngine runs the engine mode once.
func RunEngine(cfg EngineConfig) (EngineResult, error) {
	return runEngine(cfg, false)
}

// runEngine is RunEngine; with askAll the loop asks every engine for its
// deadline at every event instead of keeping each one's from its last
// input (TestEngineDeadlineCache compares the two).
func runEngine(cfg EngineConfig, askAll bool) (EngineResult, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return EngineResult{}, err
	}
	wall := time.Now()
	m, err := medium.New(medium.Config{BitRate: cfg.BitRate, PropDelay: cfg.PropDelay, LossRate: cfg.LossRate, Seed: cfg.Seed})
	if err != nil {
		return EngineResult{}, err
	}
	r := &engRunner{cfg: cfg, m: m, now: epoch, got: make([]uint64, len(cfg.Flows)),
		late: make([]uint64, len(cfg.Flows)), highest: make([]uint32, len(cfg.Flows)), delays: make([][]time.Duration, len(cfg.Flows)),
		seen: make([]seqSet, len(cfg.Flows)), dups: make([]uint64, len(cfg.Flows)),
		info: phy.Info{BitRate: cfg.BitRate, MaxFrame: medium.MaxFrame, CarrierAtArrival: true, MaxBurstFrames: sim.BurstFrames}}
	m.Advance(epoch, nil)
	for i := range cfg.Nodes {
		id := framing.NodeID(i + 1)
		ec := cfg.Engine(id)
		ec.Node = id
		if ec.Seed == 0 {
			ec.Seed = rand.New(rand.NewPCG(cfg.Seed, uint64(id))).Uint64() | 1
		}
		ec.Log = zerolog.Nop()
		e, err := link.New(ec)
		if err != nil {
			return EngineResult{}, fmt.Errorf("node %d: %w", id, err)
		}
		if err := m.Attach(medium.NodeID(id)); err != nil {
			return EngineResult{}, err
		}
		n := &engNode{id: id, e: e}
		for fi, f := range cfg.Flows {
			if f.From == i+1 {
				n.flows = append(n.flows, fi)
			}
		}
		r.nodes = append(r.nodes, n)
		if err := e.Modem(r.now, phy.Event{Kind: phy.Up}, r.info); err != nil {
			return EngineResult{}, fmt.Errorf("node %d: %w", id, err)
		}
	}
	for _, n := range r.nodes {
		r.service(n)
	}
	warm := min(cfg.Duration/10, 10*time.Second)
	measureFrom := epoch.Add(warm)
	end := measureFrom.Add(cfg.Duration)
	var res EngineResult
	var mbase medium.Stats
	deliver := func(to medium.NodeID, ev phy.Event) {
		n := r.nodes[to-1]
		if err := n.e.Modem(r.now, ev, r.info); err != nil && r.err == nil {
			r.err = err
		}
		r.service(n)
	}
	for r.err == nil {
		at, ok := m.Next()
		var due *engNode
		for _, n := range r.nodes {
			if askAll {
				n.deadline, n.deadlineOK = n.nextDeadline()
			}
			if d, dok := n.deadline, n.deadlineOK; dok && (!ok || d.Before(at)) {
				at, ok, due = d, true, n
			}
		}
		if !ok {
			break
		}
		if at.Before(r.now) {
			at = r.now
		}
		if !r.measuring && !at.Before(measureFrom) {
			r.measuring = true
			r.lastGot, r.maxGap = make([]time.Time, len(cfg.Flows)), make([]time.Duration, len(cfg.Flows))
			for fi := range r.lastGot {
				r.lastGot[fi] = at
			}
			mbase = m.Stats()
			r.base = r.arqTotals()
			for _, n := range r.nodes {
				n.deadline, n.deadlineOK = n.nextDeadline() // in case Stats moved it
			}
		}
		if at.After(end) {
			break
		}
		r.now = at
		if due == nil {
			m.Advance(at, deliver)
			continue
		}
		r.service(due)
	}
	if r.err != nil {
		return EngineResult{}, r.err
	}
	ms := m.Stats()
	a := r.arqTotals()
	res = EngineResult{Protocol: Link, Nodes: cfg.Nodes, BitRate: cfg.BitRate, Payload: cfg.Payload, Seed: cfg.Seed,
		Duration: cfg.Duration, Transmissions: ms.Transmissions - mbase.Transmissions,
		Collisions: ms.Collisions - mbase.Collisions, Retransmissions: a[0] - r.base[0], Timeouts: a[1] - r.base[1],
		GiveUps: a[2] - r.base[2], Busy: float64(ms.BusyTime-mbase.BusyTime) / float64(cfg.Duration)}
	var sum, sq, bits float64
	for fi, f := range cfg.Flows {
		g := float64(r.got[fi]) * float64(cfg.Payload) * 8 / cfg.Duration.Seconds()
		fr := FlowResult{From: f.From, To: f.To, Datagrams: r.got[fi], Goodput: g, OutOfOrder: r.late[fi], Duplicates: r.dups[fi]}
		res.Duplicates += fr.Duplicates
		if r.measuring {
			fr.MaxGap = max(r.maxGap[fi], end.Sub(r.lastGot[fi]))
			res.MaxGap = max(res.MaxGap, fr.MaxGap)
		}
		if ds := r.delays[fi]; len(ds) > 0 {
			slices.Sort(ds)
			var total time.Duration
			for _, d := range ds {
				total += d
			}
			fr.DelayMean = total / time.Duration(len(ds))
			fr.DelayP95 = ds[(len(ds)*95+99)/100-1]
			fr.DelayMax = ds[len(ds)-1]
		}
		res.Flows = append(res.Flows, fr)
		sum, sq, bits = sum+g, sq+g*g, bits+g
	}
	if sq > 0 {
		res.Jain = sum * sum / (float64(len(cfg.Flows)) * sq)
	}
	res.GoodputPerChannel = bits / float64(cfg.BitRate)
	res.WallSeconds = time.Since(wall).Seconds()
	return res, nil
}

// arqTotals sums retransmissions, timeouts and give-ups over the nodes.
func (r *engRunner) arqTotals() [4]uint64 {
	var t [4]uint64
	for _, n := range r.nodes {
		s := n.e.Stats(r.now).ARQ
		t[0] += s.Retransmissions
		t[1] += s.Timeouts
		t[2] += s.GiveUps
	}
	return t
}

// service does what the bridge's loop does after an input: the host takes
// its deliveries, a saturated sender gives the engine a packet whenever it
// wants one, and the engine may transmit. Then it notes n's deadline: every
// input to an engine ends here.
func (r *engRunner) service(n *engNode) {
	r.serve(n)
	n.deadline, n.deadlineOK = n.nextDeadline()
}

// nextDeadline is when the runner must next service n without an input:
// the engine's deadline, or the end of its wait for Acks (takeAt) if that
// comes first.
func (n *engNode) nextDeadline() (time.Time, bool) {
	d, ok := n.e.Deadline()
	if !n.takeAt.IsZero() && (!ok || n.takeAt.Before(d)) {
		d, ok = n.takeAt, true
	}
	return d, ok
}

// handOver gives n's engine the next datagram of its flows, in turns, if
// it wants one now, and reports whether it did: the bridge's hand-over of
// a packet its reader took ahead (bridge.loop.handOver), one at a time,
// none while the channel is kept for the Acks to the last transmission
// (the loop wakes at the reservation's end if no Ack comes: takeAt).
func (r *engRunner) handOver(n *engNode) bool {
	n.takeAt = time.Time{} // a wait of before is over or set again here
	if len(n.flows) == 0 || !n.e.WantRead() {
		return false
	}
	if until, ok := n.e.AwaitingAck(r.now); ok {
		n.takeAt = until // after now: AwaitingAck says so only before it
		return false
	}
	fi := n.flows[n.next%len(n.flows)]
	n.next++
	n.e.Host(r.now, r.datagram(n, fi))
	return true
}

// maxHandOvers bounds the hand-overs of one service call; the engine's
// queues stop it long before (a packet waits outside the MAC after each
// Host until the next Poll).
const maxHandOvers = 1024

// serve is service's work: the bridge's deliver and pump (bridge.loop.pump):
// hand the engine packets while it wants them, let it transmit, and go on
// handing over and transmitting while what the transmission changed lets
// it take more. The engine takes one packet into its MAC queue per Poll
// (it does not read while one waits outside it), so this fills the queue
// as the bridge does, not a few packets a call.
func (r *engRunner) serve(n *engNode) {
	for _, d := range n.e.Deliveries() {
		if fi, ok := r.flowOf(n, d.Eth); ok {
			udp := d.Eth[14+20:]
			seq := binary.BigEndian.Uint32(udp[12:])
			late := seq < r.highest[fi]
			r.highest[fi] = max(r.highest[fi], seq)
			again := r.seen[fi].add(seq)
			if r.measuring {
				if again {
					r.dups[fi]++
				}
				r.maxGap[fi] = max(r.maxGap[fi], r.now.Sub(r.lastGot[fi]))
				r.lastGot[fi] = r.now
				r.got[fi]++
				if late {
					r.late[fi]++
				}
				if len(udp) >= 24 {
					r.delays[fi] = append(r.delays[fi], r.now.Sub(epoch.Add(time.Duration(binary.BigEndian.Uint64(udp[16:])))))
				}
			}
		}
		n.e.Written(r.now, d, nil)
	}
	for i := 0; i < maxHandOvers && r.handOver(n); i++ {
	}
	r.transmit(n)
	for i := 0; i < maxHandOvers && r.handOver(n); i++ {
		r.transmit(n)
	}
}

// transmit lets n's engine start a transmission if it wants one now
// (bridge.loop.transmit).
func (r *engRunner) transmit(n *engNode) {
	f, ok := n.e.Poll(r.now)
	if !ok {
		return
	}
	var err error
	if frames := r.split.Split(f); frames != nil {
		_, err = r.m.TransmitBurst(r.now, medium.NodeID(n.id), frames)
	} else {
		_, err = r.m.Transmit(r.now, medium.NodeID(n.id), f)
	}
	if err != nil {
		n.e.Refused(r.now, err)
	}
}

// datagram builds the next UDP datagram of flow fi in n's buffer: IPv4 from
// 198.51.100.From port 7000+fi to 198.51.100.To port 6000, the flow index
// a sequence number and (payloads of 16 bytes or more) the time since
// epoch in nanoseconds first in the payload.
func (r *engRunner) datagram(n *engNode, fi int) []byte {
	f := r.cfg.Flows[fi]
	size := 14 + 20 + 8 + r.cfg.Payload
	if cap(n.pkt) < size {
		n.pkt = make([]byte, size)
	}
	p := n.pkt[:size]
	copy(p, framing.MACFor(framing.NodeID(f.To)))
	copy(p[6:], framing.MACFor(n.id))
	binary.BigEndian.PutUint16(p[12:], 0x0800)
	// The header a kernel gives a UDP socket's datagram: an identification
	// that counts, don't-fragment, TTL 64 and a valid checksum, so that
	// the engine compresses it as it does the daemon's (framing.AppendIPHC
	// leaves a header with a wrong checksum as it is: 13 more bytes a
	// frame).
	ip := p[14:]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+r.cfg.Payload))
	binary.BigEndian.PutUint16(ip[4:], uint16(n.seq+1))
	ip[6], ip[7] = 0x40, 0
	ip[8], ip[9] = 64, 17
	ip[10], ip[11] = 0, 0
	copy(ip[12:], []byte{198, 51, 100, byte(f.From)})
	copy(ip[16:], []byte{198, 51, 100, byte(f.To)})
	binary.BigEndian.PutUint16(ip[10:], framing.IPv4HeaderChecksum(ip[:20]))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], uint16(7000+fi))
	binary.BigEndian.PutUint16(udp[2:], 6000)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+r.cfg.Payload))
	binary.BigEndian.PutUint32(udp[8:], uint32(fi))
	n.seq++
	binary.BigEndian.PutUint32(udp[12:], n.seq)
	if r.cfg.Payload >= 16 {
		binary.BigEndian.PutUint64(udp[16:], uint64(r.now.Sub(epoch)))
	}
	// And a valid UDP checksum, as the kernel computes it (the engine
	// elides it on air only when the receiver can compute it again:
	// framing version 4); left 0, every frame was 2 bytes longer than
	// through the daemons.
	binary.BigEndian.PutUint16(udp[6:], framing.UDPChecksum(ip[12:20], udp))
	return p
}

// flowOf finds the flow a datagram delivered at n belongs to.
func (r *engRunner) flowOf(n *engNode, eth []byte) (int, bool) {
	if len(eth) < 14+20+8+4 || binary.BigEndian.Uint16(eth[12:]) != 0x0800 {
		return 0, false
	}
	fi := int(binary.BigEndian.Uint32(eth[14+20+8:]))
	if fi >= len(r.cfg.Flows) || r.cfg.Flows[fi].To != int(n.id) {
		return 0, false
	}
	return fi, true
}

// seqSet is a set of a flow's datagram sequence numbers (they count from
// 1), a bit each.
type seqSet []uint64

// add puts seq in the set and reports whether it was there already.
func (s *seqSet) add(seq uint32) bool {
	w, bit := int(seq/64), uint64(1)<<(seq%64)
	for len(*s) <= w {
		*s = append(*s, 0)
	}
	had := (*s)[w]&bit != 0
	(*s)[w] |= bit
	return had
}
