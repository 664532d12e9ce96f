package simbench

import (
	"fmt"
	"time"

	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/sim"
)

// medium is what a run needs of the channel: sim.Medium's Transmit, Next and
// Advance, with the same contracts (phy/sim/medium.go).
type medium interface {
	Transmit(now time.Time, from sim.NodeID, data []byte) (time.Time, error)
	Next() (time.Time, bool)
	Advance(now time.Time, deliver func(to sim.NodeID, ev phy.Event))
}

// fastMedium is sim.Medium for the case a run without a topology has: every
// pair of nodes the same delay, no loss, no bit errors, no detaching. It
// fires the same events in the same order (TestFastMediumMatches runs both
// and compares the results), but keeps four events per transmission instead
// of two per receiver: the arrivals at every receiver start (and end) at the
// same instant, so one event stands for all of them and walks the receivers
// in ascending id order, the order sim.Medium schedules them in. Ties
// between events fire by (time, kind, scheduling order) as in sim.Medium.
type fastMedium struct {
	bitRate int
	delay   time.Duration
	epoch   time.Time
	begun   bool
	now     time.Duration

	nodes []fnode      // by NodeID
	ids   []sim.NodeID // attached, ascending
	q     []fevent     // binary min-heap by (at, kind, seq)
	seq   uint64
	txs   []ftx
	free  []int32
}

type fnode struct {
	attached bool
	busy     bool // a Transmit was accepted and its TxDone not yet delivered
	onAir    bool
	carrier  bool
	arriving int32
	disturb  uint32
}

type ftx struct {
	from sim.NodeID
	refs int32
	nrx  int // the nodes attached when it began: ids[:nrx] hear it
	data []byte
	// Per receiver, by index in ids: spoiled, and the receiver's disturb
	// count when the arrival began.
	lost    []bool
	disturb []uint32
}

// Event kinds, ordered as sim.Medium orders them at equal times.
const (
	fArrivalEnd uint8 = iota
	fTxEnd
	fTxStart
	fArrivalStart
)

type fevent struct {
	at   time.Duration
	seq  uint64
	tx   int32
	kind uint8
}

func newFastMedium(bitRate int, delay time.Duration) *fastMedium {
	return &fastMedium{bitRate: bitRate, delay: delay, nodes: make([]fnode, 256)}
}

func (m *fastMedium) attach(id sim.NodeID) {
	m.nodes[id].attached = true
	m.ids = append(m.ids, id) // callers attach in ascending order
}

func (m *fastMedium) clock(now time.Time) time.Duration {
	if !m.begun {
		m.epoch, m.begun = now, true
	}
	t := now.Sub(m.epoch)
	if t < m.now {
		t = m.now
	}
	m.now = t
	return t
}

// Transmit is sim.Medium.Transmit.
func (m *fastMedium) Transmit(now time.Time, from sim.NodeID, data []byte) (time.Time, error) {
	n := &m.nodes[from]
	switch {
	case !n.attached:
		return time.Time{}, fmt.Errorf("%w: %d", sim.ErrNotAttached, from)
	case n.busy:
		return time.Time{}, fmt.Errorf("%w: %d", sim.ErrTransmitting, from)
	case len(data) == 0 || len(data) > sim.MaxFrame:
		return time.Time{}, fmt.Errorf("%w: %d bytes", sim.ErrFrameSize, len(data))
	}
	t := m.clock(now)
	air := phy.Airtime(len(data), m.bitRate)
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
	tx.from = from
	tx.data = append(tx.data[:0], data...)
	if cap(tx.lost) < len(m.ids) {
		tx.lost = make([]bool, len(m.ids))
		tx.disturb = make([]uint32, len(m.ids))
	}
	tx.lost, tx.disturb = tx.lost[:len(m.ids)], tx.disturb[:len(m.ids)]
	tx.nrx = len(m.ids)
	m.push(t, fTxStart, ti)
	m.push(t+air, fTxEnd, ti)
	if len(m.ids) > 1 {
		m.push(t+m.delay, fArrivalStart, ti)
		m.push(t+m.delay+air, fArrivalEnd, ti)
	}
	n.busy = true
	return m.epoch.Add(t + air), nil
}

// Next is sim.Medium.Next.
func (m *fastMedium) Next() (time.Time, bool) {
	if len(m.q) == 0 {
		return time.Time{}, false
	}
	return m.epoch.Add(m.q[0].at), true
}

// nextAt is Next in ns since the medium's epoch.
func (m *fastMedium) nextAt() (int64, bool) {
	if len(m.q) == 0 {
		return 0, false
	}
	return int64(m.q[0].at), true
}

// Advance is sim.Medium.Advance.
func (m *fastMedium) Advance(now time.Time, deliver func(to sim.NodeID, ev phy.Event)) {
	t := m.clock(now)
	for len(m.q) > 0 && m.q[0].at <= t {
		ev := m.pop()
		m.fire(ev, deliver)
		tx := &m.txs[ev.tx]
		if tx.refs--; tx.refs == 0 {
			m.free = append(m.free, ev.tx)
		}
	}
}

func (m *fastMedium) fire(ev fevent, deliver func(sim.NodeID, phy.Event)) {
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
			deliver(from, carrierEvent(want))
		}
		deliver(from, phy.Event{Kind: phy.TxDone})
	case fArrivalStart:
		from, nrx := m.txs[ev.tx].from, m.txs[ev.tx].nrx
		for i, to := range m.ids[:nrx] {
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
			tx.lost[i], tx.disturb[i] = lost, n.disturb
			if !n.onAir && !n.carrier {
				n.carrier = true
				deliver(to, phy.Event{Kind: phy.CarrierOn})
			}
		}
	case fArrivalEnd:
		from, nrx := m.txs[ev.tx].from, m.txs[ev.tx].nrx
		for i, to := range m.ids[:nrx] {
			if to == from {
				continue
			}
			n := &m.nodes[to]
			n.arriving--
			if !n.onAir && n.arriving == 0 && n.carrier {
				n.carrier = false
				deliver(to, phy.Event{Kind: phy.CarrierOff})
			}
			tx := &m.txs[ev.tx] // deliver may have grown m.txs
			if !tx.lost[i] && tx.disturb[i] == n.disturb {
				deliver(to, phy.Event{Kind: phy.Received, Data: tx.data})
			}
		}
	}
}

func carrierEvent(on bool) phy.Event {
	if on {
		return phy.Event{Kind: phy.CarrierOn}
	}
	return phy.Event{Kind: phy.CarrierOff}
}

// push, before and pop are sim.Medium's eventQueue written out again for
// fevent: not shared on purpose, for speed (see eventQueue in
// phy/sim/medium.go).
func (m *fastMedium) push(at time.Duration, kind uint8, tx int32) {
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
