package simbench

// The slotted underwater MACs: Slotted FAMA and T-Lohi (the synchronized
// variant, ST-Lohi), run on the same medium as the others, every node
// saturated. Both divide time into slots of one propagation delay plus one
// control packet's airtime (FAMA's RTS, CTS and Ack; T-Lohi's tone) plus a
// guard of 1 µs, so that
// what a node sends at a slot's start has reached every other node by the
// slot's end: at each slot boundary every node acts on what it heard in the
// slot before. docs/mac.md ("Underwater MACs compared") has the figures.
//
// Slotted FAMA (Molins and Stojanovic, IEEE OCEANS 2006). A node whose
// back-off count is zero sends an RTS at a slot's start if it heard nothing
// in the slot before; the addressee answers with a CTS at the next slot's
// start; the sender then sends its data frame at the slot after; the
// addressee answers with an Ack at the first slot boundary after the frame
// has arrived. RTS, CTS and Ack go to every node. A node that hears an RTS
// or a CTS for another defers until that exchange's Ack has arrived. A slot
// in which a node heard a carrier, or deferred, does not count down its
// back-off (the count is frozen, as in IEEE 802.11); an RTS that got no CTS
// doubles the node's window (from Config.Window slots, up to 64 times that)
// and draws a new count in it, and a delivered frame resets the window and
// draws a count too, so that a node that just sent does not take the next
// slot before the others.
//
// ST-Lohi (Syed, Ye and Heidemann, INFOCOM 2008). Contention rounds are one
// tone plus one propagation delay. While the data channel is quiet, every
// node whose back-off count is zero sends a tone at a round's start; at the
// round's end every node knows how many tones were sent in it. One tone
// alone: that node has won and sends its data frame at once; the others
// wait until the data channel is quiet again, and the next contention
// starts with every node's count at zero. Two tones or more: each of their
// senders draws a count uniform in [0, tones−1] rounds (over the number of
// contenders) and tones again when it reaches zero. The tone detector is a
// model of hardware that slided's modems lack (phy/phy.go offers no tones):
// a tone reaches every node one propagation delay after it was sent, does not
// disturb the data channel, and the detector counts the tones of a round
// exactly, even when they arrive at once (in the paper tones from nodes at
// different distances arrive at different times; here every pair has the
// same delay).
//
// For both, Result counts data frames: Transmissions and Collisions are data
// frames sent and lost, S data frames delivered per frame time; RTS, CTS,
// Ack and tones are overhead, their time spent but not counted as S.
// Attempts (and G) counts RTSs sent (fama) or tones sent (tlohi).

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/slided/slided/phy"
)

// Protocol names of the slotted underwater MACs.
const (
	FAMA  = "fama"
	TLohi = "tlohi"
)

// Defaults of Config.Control and Config.Window, and the largest window
// (FAMA's window doubles up to maxWindowTimes times Config.Window).
const (
	DefaultControl = 12
	DefaultWindow  = 4
	maxWindowTimes = 64
)

// guard is added to every slot, so that the rounding of the delay and the
// airtimes to whole nanoseconds never ends an arrival just past a slot's
// end (at a = 0.1 a 100-byte frame and its delay end 1 ns after five
// 12-byte slots, which cost a sixth slot per frame).
const guard = time.Microsecond

func slottedProtocol(p string) bool { return p == FAMA || p == TLohi }

// Control packet kinds (first byte); a control packet is Config.Control
// bytes: kind, src u16, dst u16 (node index + 1), zeros.
const (
	ctrlRTS byte = 1 + iota
	ctrlCTS
	ctrlAck
)

// FAMA node states.
const (
	fIdle     uint8 = iota
	fWaitCTS        // sent an RTS; the CTS is due
	fSendCTS        // got an RTS: answer at the next boundary
	fWaitData       // sent a CTS; the data frame is due
	fWaitAck        // sent the data frame; the Ack is due
)

type snode struct {
	state uint8
	got   bool  // fama: the CTS, data frame or Ack awaited came
	peer  int   // fama: the other end of the exchange
	due   int64 // fama: the boundary by which the awaited packet must have come
	count int   // back-off: idle slots (fama) or rounds (tlohi) still to wait
	cw    int   // fama: the window
	// deferUntil: fama, the end of an overheard exchange; tlohi, the end
	// of the round in which another node won.
	deferUntil int64
	heardAt    int64 // the last carrier-on, ns since the epoch
	quietAt    int64 // tlohi: when the node's last data frame has reached every node
	idle       bool  // a node with no traffic (tests: senders)
}

type slotted struct {
	fama      bool
	slot      int64 // ns
	delay     int64 // ns
	air       int64 // a data frame's airtime, ns
	dataSlots int64 // slots from a data frame's start to its end at every node
	ctrl      []byte
	data      []byte
	nodes     []snode
	toners    []int // tlohi: the nodes that toned at the last boundary
	// Over the whole run, warm-up included, for tests: back-offs drawn
	// after a failed RTS or a contended round, data frames sent and
	// received by their addressee, and (fama) frames sent whose Ack never
	// came.
	backoffs, sent, delivered, noAck uint64
}

func newSlotted(r *runner) *slotted {
	cfg := r.cfg
	delay := int64(time.Duration(math.Round(cfg.A * float64(r.T))))
	s := &slotted{
		fama:  cfg.Protocol == FAMA,
		delay: delay,
		air:   int64(r.T),
		slot:  delay + int64(phy.Airtime(cfg.Control, cfg.BitRate)) + int64(guard),
		ctrl:  make([]byte, cfg.Control),
		data:  make([]byte, cfg.FrameBytes),
		nodes: make([]snode, cfg.Nodes),
	}
	s.dataSlots = (delay + s.air + s.slot - 1) / s.slot
	for i := range s.nodes {
		n := &s.nodes[i]
		n.heardAt = math.MinInt64 / 2
		n.idle = cfg.senders > 0 && i >= cfg.senders
		if s.fama {
			n.cw = cfg.Window
			n.count = r.rng.IntN(n.cw)
		}
	}
	return s
}

// heard: node i's carrier came on.
func (s *slotted) heard(i int, at int64) { s.nodes[i].heardAt = at }

// tick runs the slot boundary now.
func (s *slotted) tick(r *runner) {
	if s.fama {
		s.famaTick(r)
	} else {
		s.lohiTick(r)
	}
}

// sendCtrl broadcasts a control packet from i to peer.
func (s *slotted) sendCtrl(r *runner, kind byte, i, peer int) {
	b := s.ctrl
	clear(b)
	b[0] = kind
	binary.BigEndian.PutUint16(b[1:], uint16(i+1))
	binary.BigEndian.PutUint16(b[3:], uint16(peer+1))
	var err error
	if r.fm != nil {
		err = r.fm.transmit(r.nowAt, i, -1, b)
	} else {
		err = r.m.transmit(r.nowAt, i, -1, b)
	}
	if err != nil {
		panic("simbench: transmit: " + err.Error()) // a driver bug, not input
	}
	r.nodes[i].onAir = true
	s.nodes[i].heardAt = r.nowAt // its own slot is not idle
}

// sendData sends node i's head-of-line frame to dst.
func (s *slotted) sendData(r *runner, i, dst int) {
	n := &r.nodes[i]
	b := s.data
	binary.BigEndian.PutUint16(b[0:], uint16(i+1))
	binary.BigEndian.PutUint16(b[2:], uint16(dst+1))
	binary.BigEndian.PutUint32(b[4:], n.seq)
	binary.BigEndian.PutUint64(b[8:], uint64(n.hol.Sub(r.epoch)))
	r.transmit(i, b)
	s.nodes[i].heardAt = r.nowAt
	s.sent++
}

// other picks a random node other than i.
func (s *slotted) other(r *runner, i int) int {
	d := r.rng.IntN(len(s.nodes) - 1)
	if d >= i {
		d++
	}
	return d
}

func (s *slotted) famaTick(r *runner) {
	now := r.nowAt
	for i := range s.nodes {
		n := &s.nodes[i]
		got := n.got
		n.got = false
		switch n.state {
		case fSendCTS:
			s.sendCtrl(r, ctrlCTS, i, n.peer)
			// The data frame starts at the next boundary.
			n.state, n.due = fWaitData, now+(1+s.dataSlots)*s.slot
		case fWaitCTS:
			switch {
			case got:
				s.sendData(r, i, n.peer)
				n.state, n.due = fWaitAck, now+(s.dataSlots+1)*s.slot
			case now >= n.due:
				s.famaFail(r, n)
			}
		case fWaitData:
			switch {
			case got:
				s.sendCtrl(r, ctrlAck, i, n.peer)
				n.state = fIdle
			case now >= n.due:
				n.state = fIdle
			}
		case fWaitAck:
			switch {
			case got:
				n.cw = r.cfg.Window
				n.count = r.rng.IntN(n.cw)
				n.state = fIdle
			case now >= n.due:
				s.noAck++
				s.famaFail(r, n)
			}
		case fIdle:
			if n.idle || now < n.deferUntil || r.nodes[i].carrier || n.heardAt >= now-s.slot {
				continue
			}
			if n.count > 0 {
				n.count--
				continue
			}
			n.peer = s.other(r, i)
			s.sendCtrl(r, ctrlRTS, i, n.peer)
			r.attempts++
			n.state, n.due = fWaitCTS, now+2*s.slot
		}
	}
}

// famaFail: an RTS got no CTS (or a frame no Ack): double the window and
// back off.
func (s *slotted) famaFail(r *runner, n *snode) {
	n.cw = min(2*n.cw, maxWindowTimes*r.cfg.Window)
	n.count = r.rng.IntN(n.cw)
	n.state = fIdle
	s.backoffs++
}

// control: node i received a control packet intact.
func (s *slotted) control(r *runner, i int, d []byte) {
	if !s.fama || len(d) < 5 {
		return
	}
	src := int(binary.BigEndian.Uint16(d[1:])) - 1
	dst := int(binary.BigEndian.Uint16(d[3:])) - 1
	if src < 0 || src >= len(s.nodes) {
		return
	}
	n := &s.nodes[i]
	now := r.nowAt
	switch d[0] {
	case ctrlRTS:
		switch {
		case dst != i:
			// The CTS, the data frame and the Ack follow.
			n.deferUntil = max(n.deferUntil, now+(s.dataSlots+2)*s.slot)
		case n.state == fIdle && now >= n.deferUntil:
			n.state, n.peer = fSendCTS, src
		}
	case ctrlCTS:
		switch {
		case dst != i:
			n.deferUntil = max(n.deferUntil, now+(s.dataSlots+1)*s.slot)
		case n.state == fWaitCTS && src == n.peer:
			n.got = true
		}
	case ctrlAck:
		if dst == i && n.state == fWaitAck && src == n.peer {
			n.got = true
		}
	}
}

// gotData: node i received a data frame from src.
func (s *slotted) gotData(i, src int) {
	s.delivered++
	if n := &s.nodes[i]; s.fama && n.state == fWaitData && n.peer == src {
		n.got = true
	}
}

func (s *slotted) lohiTick(r *runner) {
	now := r.nowAt
	winner := -1
	switch k := len(s.toners); {
	case k == 1:
		winner = s.toners[0]
		s.sendData(r, winner, s.other(r, winner))
		s.nodes[winner].quietAt = now + s.delay + s.air
		for i := range s.nodes {
			if i != winner {
				// Its data frame reaches them within the round; after it
				// a new contention starts.
				s.nodes[i].deferUntil = now + s.slot
				s.nodes[i].count = 0
			}
		}
	case k > 1:
		for _, i := range s.toners {
			s.nodes[i].count = r.rng.IntN(k)
			s.backoffs++
		}
	}
	s.toners = s.toners[:0]
	for i := range s.nodes {
		n := &s.nodes[i]
		if i == winner || n.idle || now < n.deferUntil || now < n.quietAt || r.nodes[i].carrier || r.nodes[i].onAir {
			continue
		}
		if n.count > 0 {
			n.count--
			continue
		}
		s.toners = append(s.toners, i)
		r.attempts++
	}
}
