// Package medium is the core of the simulated shared half-duplex medium: who
// hears whom (Topology, Propagation, the acoustic budget), when (propagation
// delay, airtime at the bit rate), what collides, what is lost and which bits
// flip. It is sans-I/O: the caller passes the time into every method, takes
// the events Advance hands out and asks Next when to call again, so the same
// code runs in real time (phy/sim's Server) and in virtual time (MAC studies,
// tests). It is deterministic for a seed, and imports no network, logging or
// file-format code.
//
// The model and its assumptions are in docs/simulator.md.
package medium

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/slided/slided/phy"
)

// NodeID names a node on the medium. 0 and 0xFF are not valid node ids (they
// are kept for "none" and "broadcast" by the link layer).
type NodeID = uint8

// MaxFrame is the largest burst, in bytes, the medium carries in one
// transmission, and the largest frame of a TransmitBurst.
const MaxFrame = 4096

// MaxBurstFrames is the most frames one TransmitBurst may hold.
const MaxBurstFrames = 64

// Errors returned by the medium, the server and the client. Callers branch on
// them with errors.Is.
var (
	ErrInvalidNode  = errors.New("sim: invalid node id")
	ErrNodeInUse    = errors.New("sim: node id in use")
	ErrNotAttached  = errors.New("sim: node not attached")
	ErrTransmitting = errors.New("sim: node is still transmitting")
	ErrFrameSize    = errors.New("sim: frame empty or larger than the medium carries")
)

// Config describes the channel. Every attached node hears every other with the
// same delay and error rates unless a Topology is set (Medium.SetTopology).
type Config struct {
	// BitRate is the air rate in bit/s.
	BitRate int
	// PropDelay is the time a signal takes from one node to another.
	PropDelay time.Duration
	// LossRate is the probability that a reception which did not collide is
	// lost as a whole anyway (fading, a missed preamble).
	LossRate float64
	// BitErrorRate is the probability that each bit of a delivered reception
	// is flipped, independently.
	BitErrorRate float64
	// Seed seeds the random source for loss and bit errors: the same seed and
	// the same inputs give the same outputs.
	Seed uint64
}

// Validate reports the first problem with c, or nil.
func (c Config) Validate() error {
	switch {
	case c.BitRate <= 0:
		return fmt.Errorf("sim: bit rate %d: must be positive", c.BitRate)
	case c.BitRate > 1_000_000_000:
		return fmt.Errorf("sim: bit rate %d: above 1 Gbit/s", c.BitRate)
	case c.PropDelay < 0:
		return fmt.Errorf("sim: propagation delay %v: negative", c.PropDelay)
	case !(c.LossRate >= 0 && c.LossRate <= 1):
		return fmt.Errorf("sim: loss rate %v: not in [0, 1]", c.LossRate)
	case !(c.BitErrorRate >= 0 && c.BitErrorRate <= 1):
		return fmt.Errorf("sim: bit error rate %v: not in [0, 1]", c.BitErrorRate)
	}
	return nil
}

// Stats counts what happened on the medium since it was made.
type Stats struct {
	// Transmissions is the number of transmissions accepted.
	Transmissions uint64
	// Deliveries is the number of Received events (one per receiver).
	Deliveries uint64
	// Collisions counts lost receptions, one per receiver and transmission:
	// those overlapped at the receiver by another signal, and those during
	// which the receiver transmitted itself (half duplex).
	Collisions uint64
	// Losses counts receptions dropped whole by LossRate.
	Losses uint64
	// Truncated counts receptions cut short because the sender detached.
	Truncated uint64
	// BitErrors counts bits flipped in delivered receptions.
	BitErrors uint64
	// BusyTime is the total time during which at least one node was
	// transmitting, over completed busy periods.
	BusyTime time.Duration
}

// Medium is the channel model. It is not safe for concurrent use: one
// goroutine owns it and passes the current time into every call. Times must
// not go backwards; an earlier time is taken as the latest time seen.
//
// Memory stays bounded by the transmissions in flight: their records, buffers
// and events are reused once every receiver is done with them.
type Medium struct {
	cfg   Config
	topo  *Topology // nil: every pair as cfg says
	rng   *rand.Rand
	epoch time.Time     // time of the first call that passed a time in
	begun bool          // epoch is set
	now   time.Duration // latest time seen, since epoch

	nodes [256]node
	ids   []NodeID // attached nodes, ascending: the order receivers are scheduled in

	q   eventQueue
	seq uint64 // tie-breaker: equal times and kinds fire in scheduling order

	txs    []transmission
	txFree []int32
	rxs    []reception
	rxFree []int32

	scratch   []byte        // Received data handed to deliver, valid during the call
	onAir     int           // transmissions on air now
	busySince time.Duration // start of the current busy period
	stats     Stats
}

type node struct {
	attached bool
	gen      uint32 // bumped by Detach, so events of an earlier attachment are ignored
	busy     bool   // a Transmit was accepted and its TxDone not yet delivered
	tx       int32  // that transmission (a burst's frame on air or next), while busy
	onAir    bool   // between its start and end events
	arriving int32  // signals arriving now
	carrier  bool   // the carrier state last reported
	disturb  uint32 // bumped when every reception arriving now is spoiled
}

type transmission struct {
	from      NodeID
	gen       uint32
	start     time.Duration
	end       time.Duration // moved earlier when the sender detaches
	started   bool          // the start event has fired
	cancelled bool          // detached before it started: it never happened
	refs      int32         // events in the queue that name it
	next      int32         // the next frame of its burst, starting at its end; -1: none
	data      []byte
	rxs       []int32 // its receptions
}

type reception struct {
	tx        int32
	to        NodeID
	gen       uint32
	start     time.Duration
	end       time.Duration // moved earlier when the sender detaches
	started   bool
	cancelled bool
	lost      bool   // spoiled (collision, half duplex, truncation)
	truncated bool   // its sender detached during it
	disturb   uint32 // the receiver's disturb count when it began
	loss, ber float64
	refs      int32
}

// evKind orders events at equal times: arrivals end before anything starts,
// so intervals are half-open ([start, end)) and back-to-back signals do not
// collide; a sender's end comes before its next start; a node that starts
// transmitting at the instant a signal arrives loses that reception (its
// carrier is still reported).
type evKind uint8

const (
	evArrivalEnd evKind = iota
	evTxEnd
	evTxStart
	evArrivalStart
)

type event struct {
	at   time.Duration
	seq  uint64
	tx   int32
	rx   int32 // -1 for the sender's events
	kind evKind
}

// link returns what a transmission from one node does at another: the
// topology's entry when one is set, otherwise every attached node reaches
// every other with the configured delay and error rates.
func (m *Medium) link(from, to NodeID) Link {
	if m.topo != nil {
		return m.topo.Link(from, to)
	}
	return Link{Reach: true, Delay: m.cfg.PropDelay, LossRate: m.cfg.LossRate, BitErrorRate: m.cfg.BitErrorRate}
}

// SetTopology replaces the links between nodes; nil goes back to Config's
// single delay and error rates for every pair. The change applies to
// transmissions that start after the call: receptions already scheduled keep
// the delay and rates they were given. The medium keeps t; do not change it
// afterwards.
func (m *Medium) SetTopology(t *Topology) { m.topo = t }

// Topology returns the topology set by SetTopology, or nil.
func (m *Medium) Topology() *Topology { return m.topo }

// New returns an empty medium for cfg.
func New(cfg Config) (*Medium, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Medium{
		cfg: cfg,
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
	}, nil
}

// Config returns the medium's configuration.
func (m *Medium) Config() Config { return m.cfg }

// Attach adds a node. It hears transmissions that start after this call.
func (m *Medium) Attach(id NodeID) error {
	if id == 0 || id == 0xFF {
		return fmt.Errorf("%w: %d", ErrInvalidNode, id)
	}
	n := &m.nodes[id]
	if n.attached {
		return fmt.Errorf("%w: %d", ErrNodeInUse, id)
	}
	gen := n.gen
	*n = node{attached: true, gen: gen}
	i, _ := slices.BinarySearch(m.ids, id)
	m.ids = slices.Insert(m.ids, i, id)
	return nil
}

// Detach removes a node at now. Its transmission in progress is cut off at
// now: the part already sent still arrives (each receiver's carrier ends one
// propagation delay after now) but the reception is lost; a transmission not
// yet started never happens. Nothing more is delivered to the node. Detaching
// a node that is not attached does nothing.
func (m *Medium) Detach(now time.Time, id NodeID) {
	n := &m.nodes[id]
	if !n.attached {
		return
	}
	t := m.clock(now)
	if n.busy {
		for ti := n.tx; ti >= 0; ti = m.txs[ti].next {
			m.cut(ti, t)
		}
	}
	*n = node{gen: n.gen + 1}
	if i, ok := slices.BinarySearch(m.ids, id); ok {
		m.ids = slices.Delete(m.ids, i, i+1)
	}
}

// Transmit puts data on air from node from, starting at now, and returns when
// the transmission ends (now + airtime). The medium copies data. It returns
// ErrTransmitting while from's previous transmission has not ended (its
// TxDone not delivered yet), ErrNotAttached, or ErrFrameSize.
//
// Call Advance(now, …) first, so that events due before now have fired; the
// transmission itself takes effect in the next Advance.
func (m *Medium) Transmit(now time.Time, from NodeID, data []byte) (end time.Time, err error) {
	if err := m.check(from, data); err != nil {
		return time.Time{}, err
	}
	t := m.clock(now)
	ti := m.schedule(t, from, data)
	m.nodes[from].busy, m.nodes[from].tx = true, ti
	return m.epoch.Add(m.txs[ti].end), nil
}

// TransmitBurst puts frames on air from node from back to back, the first
// starting at now and each of the others at the end of the one before, as
// a modem sends the frames of one key-up: each frame is a transmission of
// its own (received, lost or spoiled on its own, counted in
// Stats.Transmissions), the receivers' carrier stays on from the first
// frame's arrival to the last one's end, and one TxDone, at the last
// frame's end, ends them all. It returns that end. The medium copies the
// frames. Besides Transmit's errors it returns ErrFrameSize for no frames
// or more than MaxBurstFrames.
func (m *Medium) TransmitBurst(now time.Time, from NodeID, frames [][]byte) (end time.Time, err error) {
	if len(frames) == 0 || len(frames) > MaxBurstFrames {
		return time.Time{}, fmt.Errorf("%w: a burst of %d frames (1 to %d)", ErrFrameSize, len(frames), MaxBurstFrames)
	}
	for _, f := range frames {
		if err := m.check(from, f); err != nil {
			return time.Time{}, err
		}
	}
	t := m.clock(now)
	first, prev := int32(-1), int32(-1)
	for _, f := range frames {
		ti := m.schedule(t, from, f)
		if prev >= 0 {
			m.txs[prev].next = ti
		} else {
			first = ti
		}
		prev, t = ti, m.txs[ti].end
	}
	m.nodes[from].busy, m.nodes[from].tx = true, first
	return m.epoch.Add(t), nil
}

// check is Transmit's refusal of data from from, if any.
func (m *Medium) check(from NodeID, data []byte) error {
	n := &m.nodes[from]
	switch {
	case !n.attached:
		return fmt.Errorf("%w: %d", ErrNotAttached, from)
	case n.busy:
		return fmt.Errorf("%w: %d", ErrTransmitting, from)
	case len(data) == 0 || len(data) > MaxFrame:
		return fmt.Errorf("%w: %d bytes", ErrFrameSize, len(data))
	}
	return nil
}

// schedule puts one transmission of data from from, starting at t, and its
// receptions in the queue, and returns it.
func (m *Medium) schedule(t time.Duration, from NodeID, data []byte) int32 {
	air := phy.Airtime(len(data), m.cfg.BitRate)
	if air <= 0 {
		air = 1 // keep end after start so the event order holds
	}
	ti := m.allocTx()
	tx := &m.txs[ti]
	tx.from, tx.gen, tx.start, tx.end, tx.next = from, m.nodes[from].gen, t, t+air, -1
	tx.data = append(tx.data[:0], data...)
	m.push(t, evTxStart, ti, -1)
	m.push(t+air, evTxEnd, ti, -1)
	for _, to := range m.ids {
		if to == from {
			continue
		}
		l := m.link(from, to)
		if !l.Reach {
			continue
		}
		ri := m.allocRx()
		rx := &m.rxs[ri]
		*rx = reception{tx: ti, to: to, gen: m.nodes[to].gen, start: t + l.Delay, end: t + l.Delay + air, loss: l.LossRate, ber: l.BitErrorRate}
		m.push(rx.start, evArrivalStart, ti, ri)
		m.push(rx.end, evArrivalEnd, ti, ri)
		tx = &m.txs[ti]
		tx.rxs = append(tx.rxs, ri)
	}
	m.stats.Transmissions++
	return ti
}

// Next returns the time of the next pending event, if any. Advance(next, …)
// may deliver nothing (an event made moot by Detach).
func (m *Medium) Next() (time.Time, bool) {
	if len(m.q) == 0 {
		return time.Time{}, false
	}
	return m.epoch.Add(m.q[0].at), true
}

// Advance fires every event due at or before now, in time order, calling
// deliver for each event a node gets. For Received, ev.Data is lent for the
// duration of the call only: deliver copies it if it keeps it. deliver may
// call Transmit, Attach and Detach.
func (m *Medium) Advance(now time.Time, deliver func(to NodeID, ev phy.Event)) {
	t := m.clock(now)
	for len(m.q) > 0 && m.q[0].at <= t {
		ev := m.q.pop()
		m.fire(ev, deliver)
		m.release(ev)
	}
}

// Stats returns the counters.
func (m *Medium) Stats() Stats { return m.stats }

// inFlight reports the transmission and reception records in use (tests).
func (m *Medium) inFlight() (txs, rxs, events int) {
	return len(m.txs) - len(m.txFree), len(m.rxs) - len(m.rxFree), len(m.q)
}

func (m *Medium) clock(now time.Time) time.Duration {
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

func (m *Medium) fire(ev event, deliver func(NodeID, phy.Event)) {
	switch ev.kind {
	case evTxStart:
		tx := &m.txs[ev.tx]
		if tx.cancelled {
			return
		}
		tx.started = true
		n := &m.nodes[tx.from]
		n.onAir = true
		if n.attached && n.gen == tx.gen {
			n.tx = ev.tx // a burst's frame: Detach cuts from here
		}
		if n.arriving > 0 {
			n.disturb++ // half duplex: everything arriving now is lost
		}
		if m.onAir == 0 {
			m.busySince = ev.at
		}
		m.onAir++

	case evTxEnd:
		tx := &m.txs[ev.tx]
		if tx.cancelled || ev.at != tx.end {
			return // cancelled, or superseded by an earlier end (cut)
		}
		m.onAir--
		if m.onAir == 0 {
			m.stats.BusyTime += ev.at - m.busySince
		}
		n := &m.nodes[tx.from]
		if !n.attached || n.gen != tx.gen {
			return
		}
		n.onAir = false
		if tx.next >= 0 && !m.txs[tx.next].cancelled {
			return // the burst's next frame starts now: no TxDone yet
		}
		n.busy = false
		// The carrier was reported while on air (phy/phy.go, rule 3): the
		// MAC knows the channel's state when it gets TxDone.
		deliver(tx.from, phy.Event{Kind: phy.TxDone})

	case evArrivalStart:
		rx := &m.rxs[ev.rx]
		if rx.cancelled {
			return
		}
		n := &m.nodes[rx.to]
		if !n.attached || n.gen != rx.gen {
			rx.cancelled = true
			return
		}
		rx.started = true
		if n.arriving > 0 {
			n.disturb++ // collision: spoils those arriving, and this one
			rx.lost = true
		}
		if n.onAir {
			rx.lost = true
		}
		n.arriving++
		rx.disturb = n.disturb
		if !n.carrier { // sensed even while on air
			n.carrier = true
			deliver(rx.to, phy.Event{Kind: phy.CarrierOn})
		}

	case evArrivalEnd:
		rx := &m.rxs[ev.rx]
		if rx.cancelled || ev.at != rx.end {
			return
		}
		n := &m.nodes[rx.to]
		if !n.attached || n.gen != rx.gen {
			return
		}
		n.arriving--
		to, gen := rx.to, rx.gen
		if n.arriving == 0 && n.carrier && !m.continues(ev.tx, to) {
			n.carrier = false
			deliver(to, phy.Event{Kind: phy.CarrierOff})
			if !n.attached || n.gen != gen {
				return // deliver detached it
			}
		}
		rx = &m.rxs[ev.rx] // deliver may have grown m.rxs
		switch {
		case rx.truncated:
			m.stats.Truncated++
		case rx.lost || rx.disturb != n.disturb:
			m.stats.Collisions++
		case rx.loss > 0 && m.rng.Float64() < rx.loss:
			m.stats.Losses++
		default:
			m.scratch = append(m.scratch[:0], m.txs[ev.tx].data...)
			m.stats.BitErrors += uint64(m.flipBits(m.scratch, rx.ber))
			m.stats.Deliveries++
			deliver(to, phy.Event{Kind: phy.Received, Data: m.scratch})
		}
	}
}

// continues reports whether the next frame of transmission ti's burst
// arrives at node to as ti's arrival there ends (and is not cancelled): the
// carrier stays on across the two. The next frame's record is still in use,
// as its arrival has not begun.
func (m *Medium) continues(ti int32, to NodeID) bool {
	next := m.txs[ti].next
	if next < 0 || m.txs[next].cancelled {
		return false
	}
	for _, ri := range m.txs[next].rxs {
		if rx := &m.rxs[ri]; rx.to == to {
			return !rx.cancelled
		}
	}
	return false
}

// cut ends transmission ti at t because its sender detached.
func (m *Medium) cut(ti int32, t time.Duration) {
	tx := &m.txs[ti]
	if !tx.started {
		tx.cancelled = true
		for _, ri := range tx.rxs {
			m.rxs[ri].cancelled = true
		}
		return
	}
	if t >= tx.end {
		return // over already; its end event just has not fired
	}
	tx.end = t
	m.push(t, evTxEnd, ti, -1)
	for _, ri := range m.txs[ti].rxs {
		rx := &m.rxs[ri]
		if rx.cancelled {
			continue
		}
		end := t + (rx.start - tx.start)
		if !rx.started && end <= rx.start {
			rx.cancelled = true
			continue
		}
		rx.end, rx.lost, rx.truncated = end, true, true
		m.push(end, evArrivalEnd, ti, ri)
	}
}

// flipBits flips each bit of b with probability p, drawing the gaps between
// errors from a geometric distribution (one random number per error, not per
// bit). It returns the number of bits flipped.
func (m *Medium) flipBits(b []byte, p float64) int {
	if p <= 0 || len(b) == 0 {
		return 0
	}
	nbits := len(b) * 8
	if p >= 1 {
		for i := range b {
			b[i] = ^b[i]
		}
		return nbits
	}
	lq := math.Log1p(-p)
	flipped, pos := 0, -1
	for {
		gap := math.Floor(math.Log1p(-m.rng.Float64()) / lq)
		if gap >= float64(nbits-pos-1) {
			return flipped
		}
		pos += int(gap) + 1
		b[pos>>3] ^= 0x80 >> (pos & 7)
		flipped++
	}
}

func (m *Medium) push(at time.Duration, kind evKind, tx, rx int32) {
	m.seq++
	m.txs[tx].refs++
	if rx >= 0 {
		m.rxs[rx].refs++
	}
	m.q.push(event{at: at, seq: m.seq, tx: tx, rx: rx, kind: kind})
}

func (m *Medium) release(ev event) {
	if ev.rx >= 0 {
		rx := &m.rxs[ev.rx]
		if rx.refs--; rx.refs == 0 {
			m.rxFree = append(m.rxFree, ev.rx)
		}
	}
	tx := &m.txs[ev.tx]
	if tx.refs--; tx.refs == 0 {
		tx.rxs = tx.rxs[:0]
		m.txFree = append(m.txFree, ev.tx)
	}
}

func (m *Medium) allocTx() int32 {
	if k := len(m.txFree); k > 0 {
		i := m.txFree[k-1]
		m.txFree = m.txFree[:k-1]
		tx := &m.txs[i]
		*tx = transmission{data: tx.data[:0], rxs: tx.rxs[:0]}
		return i
	}
	m.txs = append(m.txs, transmission{})
	return int32(len(m.txs) - 1)
}

func (m *Medium) allocRx() int32 {
	if k := len(m.rxFree); k > 0 {
		i := m.rxFree[k-1]
		m.rxFree = m.rxFree[:k-1]
		return i
	}
	m.rxs = append(m.rxs, reception{})
	return int32(len(m.rxs) - 1)
}

// eventQueue is a binary min-heap of events by (at, kind, seq). It is written
// out rather than built on container/heap to avoid boxing each event.
// simbench's fastMedium keeps a copy of it for its own event type, on
// purpose: a generic heap shared by both (a type parameter with a Before
// method) costs about a third more per push and pop (Go calls the method
// through the instantiation's dictionary instead of inlining it), and the
// heap is the hot loop of both media.
type eventQueue []event

func (a *event) before(b *event) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	return a.seq < b.seq
}

func (q *eventQueue) push(ev event) {
	*q = append(*q, ev)
	h := *q
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

func (q *eventQueue) pop() event {
	h := *q
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
	*q = h
	return top
}
