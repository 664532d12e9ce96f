package simbench

import (
	"fmt"
	"time"

	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/sim/medium"
)

// channel is what a run needs of the channel: medium.Medium's Transmit, Next and
// Advance, with the same contracts (phy/sim/medium), in ns since the
// run's epoch, nodes by index (node id − 1). Events go to the runner; to is
// the frame's addressee, the one receiver the runner wants it at (a medium
// may deliver it to the others too).
type channel interface {
	transmit(at int64, from, to int, data []byte) error
	next() (int64, bool)
	advance(at int64)
}

// simMedium is a medium.Medium driving a runner: runs with a topology take it,
// and tests compare it with fastMedium.
type simMedium struct {
	m       *medium.Medium
	epoch   time.Time
	deliver func(to medium.NodeID, ev phy.Event)
}

func (s *simMedium) transmit(at int64, from, _ int, data []byte) error {
	_, err := s.m.Transmit(s.epoch.Add(time.Duration(at)), medium.NodeID(from+1), data)
	return err
}

func (s *simMedium) next() (int64, bool) {
	t, ok := s.m.Next()
	return int64(t.Sub(s.epoch)), ok
}

func (s *simMedium) advance(at int64) { s.m.Advance(s.epoch.Add(time.Duration(at)), s.deliver) }

// fastMedium is medium.Medium for the case a run without a topology has: every
// pair of nodes the same delay, no loss, no bit errors, no detaching. It
// fires the same events in the same order (TestFastMediumMatches runs both
// and compares the results), but keeps four events per transmission instead
// of two per receiver: the arrivals at every receiver start (and end) at the
// same instant, so one event stands for all of them and walks the receivers
// in ascending id order, the order medium.Medium schedules them in. Ties
// between events fire by (time, kind, scheduling order) as in medium.Medium.
// Nodes are indexes, not medium.NodeIDs, so that it holds more than 254; it
// calls the runner's methods for their events directly.
type fastMedium struct {
	bitRate int
	delay   int64
	now     int64 // ns since the run's epoch
	r       *runner

	nodes    []fnode
	attached int      // nodes 0..attached-1 are attached
	q        []fevent // binary min-heap by (at, kind, seq)
	seq      uint64
	txs      []ftx
	free     []int32
}

type fnode struct {
	busy     bool // a Transmit was accepted and its TxDone not yet delivered
	onAir    bool
	carrier  bool
	arriving int32
	disturb  uint32
}

type ftx struct {
	from int
	to   int // the receiver the runner wants the frame at; < 0: all
	refs int32
	nrx  int // the nodes attached when it began: 0..nrx-1 hear it
	data []byte
	// Per receiver: spoiled, and the receiver's disturb count when the
	// arrival began.
	lost    []bool
	disturb []uint32
}

// Event kinds, ordered as medium.Medium orders them at equal times.
const (
	fArrivalEnd uint8 = iota
	fTxEnd
	fTxStart
	fArrivalStart
)

type fevent struct {
	at   int64
	seq  uint64
	tx   int32
	kind uint8
}

func newFastMedium(bitRate int, delay time.Duration, nodes int, r *runner) *fastMedium {
	return &fastMedium{bitRate: bitRate, delay: int64(delay), nodes: make([]fnode, nodes), r: r}
}

// attach attaches the next node (callers attach in ascending order).
func (m *fastMedium) attach() { m.attached++ }

// transmit is medium.Medium.Transmit, but for one thing: the frame reaches
// the runner at node to only (at every node when to < 0: fama's and tlohi's
// control packets).
func (m *fastMedium) transmit(at int64, from, to int, data []byte) error {
	if from < 0 || from >= m.attached {
		return fmt.Errorf("%w: %d", medium.ErrNotAttached, from+1)
	}
	n := &m.nodes[from]
	switch {
	case n.busy:
		return fmt.Errorf("%w: %d", medium.ErrTransmitting, from+1)
	case len(data) == 0 || len(data) > medium.MaxFrame:
		return fmt.Errorf("%w: %d bytes", medium.ErrFrameSize, len(data))
	}
	t := max(at, m.now)
	m.now = t
	air := int64(phy.Airtime(len(data), m.bitRate))
	if air <= 0 {
		air = 1
	}
	var ti int32
	if k := len(m.free); k > 0 {
		ti = m.free[k-1]
		m.free = m.free[:k-1]
	} else {
		m.txs = append(m.txs, ftx{})
		ti = int32(len(m.txs) - 1)
	}
	tx := &m.txs[ti]
	tx.from, tx.to = from, to
	tx.data = append(tx.data[:0], data...)
	if cap(tx.lost) < m.attached {
		tx.lost = make([]bool, m.attached, len(m.nodes))
		tx.disturb = make([]uint32, m.attached, len(m.nodes))
	}
	tx.lost, tx.disturb = tx.lost[:m.attached], tx.disturb[:m.attached]
	tx.nrx = m.attached
	m.push(t, fTxStart, ti)
	m.push(t+air, fTxEnd, ti)
	if m.attached > 1 {
		m.push(t+m.delay, fArrivalStart, ti)
		m.push(t+m.delay+air, fArrivalEnd, ti)
	}
	n.busy = true
	return nil
}

// next is medium.Medium.Next.
func (m *fastMedium) next() (int64, bool) {
	if len(m.q) == 0 {
		return 0, false
	}
	return m.q[0].at, true
}

// advance is medium.Medium.Advance.
func (m *fastMedium) advance(at int64) {
	m.now = max(at, m.now)
	for len(m.q) > 0 && m.q[0].at <= m.now {
		ev := m.pop()
		m.fire(ev)
		tx := &m.txs[ev.tx]
		if tx.refs--; tx.refs == 0 {
			m.free = append(m.free, ev.tx)
		}
	}
}

func (m *fastMedium) fire(ev fevent) {
	r := m.r
	switch ev.kind {
	case fTxStart:
		n := &m.nodes[m.txs[ev.tx].from]
		n.onAir = true
		if n.arriving > 0 {
			n.disturb++ // half duplex: everything arriving now is lost
		}
	case fTxEnd:
		from := m.txs[ev.tx].from
		n := &m.nodes[from]
		n.onAir, n.busy = false, false
		if want := n.arriving > 0; want != n.carrier {
			n.carrier = want
			r.carrier(from, want)
		}
		r.txDone(from)
	case fArrivalStart:
		from, nrx := m.txs[ev.tx].from, m.txs[ev.tx].nrx
		for to := range nrx {
			if to == from {
				continue
			}
			n := &m.nodes[to]
			tx := &m.txs[ev.tx]
			lost := false
			if n.arriving > 0 {
				n.disturb++ // collision: spoils those arriving, and this one
				lost = true
			}
			if n.onAir {
				lost = true
			}
			n.arriving++
			tx.lost[to], tx.disturb[to] = lost, n.disturb
			if !n.onAir && !n.carrier {
				n.carrier = true
				if rn := &r.nodes[to]; rn.mac != nil && !rn.onAir {
					// runner.carrier's waiting case, written out here:
					// it is most of the calls.
					rn.carrier, rn.pendingOn, rn.onAt = true, true, r.now
					r.dl.clear(to)
				} else {
					r.carrier(to, true)
				}
			}
		}
	case fArrivalEnd:
		from, nrx := m.txs[ev.tx].from, m.txs[ev.tx].nrx
		for to := range nrx {
			if to == from {
				continue
			}
			n := &m.nodes[to]
			n.arriving--
			if !n.onAir && n.arriving == 0 && n.carrier {
				n.carrier = false
				r.carrier(to, false)
			}
			tx := &m.txs[ev.tx] // the runner may have grown m.txs
			if (to == tx.to || tx.to < 0) && !tx.lost[to] && tx.disturb[to] == n.disturb {
				r.received(to, tx.data)
			}
		}
	}
}

// push, before and pop are medium.Medium's eventQueue written out again for
// fevent: not shared on purpose, for speed (see eventQueue in
// phy/sim/medium/medium.go).
func (m *fastMedium) push(at int64, kind uint8, tx int32) {
	m.seq++
	m.txs[tx].refs++
	m.q = append(m.q, fevent{at: at, seq: m.seq, tx: tx, kind: kind})
	h := m.q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].before(&h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (a *fevent) before(b *fevent) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	return a.seq < b.seq
}

func (m *fastMedium) pop() fevent {
	h := m.q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && h[r].before(&h[l]) {
			c = r
		}
		if !h[c].before(&h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	m.q = h
	return top
}
