// Package testmedium is the one fake medium of the unit tests: stations (a
// csma.MAC, a link.Engine, behind a small adapter each) share a half-duplex
// channel in virtual time, driven the way the daemon's loop drives one
// modem. It is sans-I/O and deterministic: no goroutines, no clocks, no
// randomness of its own (the stations are seeded; a Lose function that
// draws brings its own seeded source); time only moves in Run, Step and
// Drain.
//
// The model, one rule for every setting:
//
//   - A station's Poll returns a burst; the modem takes it at once. After
//     Baud's serial line (store and forward) it goes on air for KeyUp plus
//     its airtime at BitRate; then the sender gets TxDone.
//   - The signal reaches every other station one delay later (Prop, or
//     Delay for a pair) and lasts as long there. A station senses the
//     carrier while any signal arrives (also while it transmits itself),
//     unless NoCarrier; it gets CarrierOn and CarrierOff when that changes.
//   - A reception is lost if another signal arrives at the same receiver
//     during any part of it (a collision: both are lost there), or if the
//     receiver is on air during any part of it (half duplex). Intervals
//     are half-open: back-to-back signals do not collide. Lose may drop
//     any other reception. What is not lost is handed up (Received) at the
//     end of its arrival, after the far modem's serial line.
//   - With Split, a burst is received frame by frame, as a TNC decodes and
//     hands up each frame of a burst at its own end: a frame is lost if
//     the burst was spoiled at that receiver before the frame ended. The
//     last frame is handed up before the carrier drops, a whole burst
//     after.
//   - At one instant everything that ends (receptions, then TxDone) is
//     reported before anything starts, and every station due then is
//     polled before any signal it starts is sensed: stations whose
//     backoffs end in the same slot both transmit, and collide, as on
//     phy/sim/medium (the simulated medium the daemon runs on, whose event
//     order this follows).
//
// With Prop 0 and a full mesh a burst that overlaps another is lost at
// every receiver: the ideal slotted channel of the CSMA studies.
package testmedium

import (
	"testing"
	"time"

	"github.com/slided/slided/phy"
)

// Station is what a node on the medium is: a MAC or an engine behind a
// small adapter that drives it as the daemon's loop does.
type Station interface {
	// Event hands the station one modem event (CarrierOn, CarrierOff,
	// TxDone, Received) at now. Received data is the medium's: the
	// station copies what it keeps.
	Event(now time.Time, ev phy.Event)
	// Poll lets the station run its timers at now and returns a burst
	// to put on air now, if any. The medium copies it. A station never
	// returns one before the TxDone of its previous burst.
	Poll(now time.Time) ([]byte, bool)
	// Deadline says when Poll must next be called, absent other input.
	Deadline() (time.Time, bool)
}

// Burst is one transmission.
type Burst struct {
	From  int    // the sender's index (Add's order)
	Data  []byte // the bytes, a copy
	Start time.Time
	Air   time.Time // on air: Start plus the serial line (Baud)
	End   time.Time // off air: the sender's TxDone
	// Collided: lost at one receiver or more to another signal or to the
	// receiver's own transmission.
	Collided bool

	parts   []part
	arr     []arrival // one per receiver
	pending int       // arrivals not yet ended
	ended   bool
	refs    int // events in the queue that name it
}

type part struct {
	data []byte
	end  time.Time // off air
}

// Stats counts what happened on the medium.
type Stats struct {
	// Bursts put on air, and of them those that Collided.
	Bursts, Collided uint64
	// Receptions lost: the receiver transmitted during them (half duplex),
	// another signal overlapped them (collision), Lose dropped them.
	LostHalfDuplex, LostCollision, Lost uint64
	// BusyTime is the time during which at least one burst was on air.
	BusyTime time.Duration
}

// StationStats counts one station's bursts.
type StationStats struct {
	// Sent bursts, and of them those that did not collide.
	Sent, Clean uint64
}

// Medium is the channel. Set its settings before the stations transmit;
// each burst takes them as they are when it starts.
type Medium struct {
	// BitRate is the air rate in bit/s.
	BitRate int
	// KeyUp is the fixed time every transmission costs besides its bytes
	// (a TNC's TXDELAY and TXTAIL, an acoustic modem's preamble).
	KeyUp time.Duration
	// Prop is the propagation delay between every two stations; Delay, if
	// set, gives it per pair instead.
	Prop  time.Duration
	Delay func(from, to int) time.Duration
	// NoCarrier: the modems sense no carrier (a transparent acoustic modem,
	// phy.Info.NoCarrier); no CarrierOn or CarrierOff is reported.
	NoCarrier bool
	// Baud is the serial line of a store-and-forward modem (10 bits a
	// byte): a burst crosses it before the modem keys up, and the far
	// modem hands it up over its own line. 0: none.
	Baud int
	// Split, if set, cuts a burst into the frames a receiving modem hands
	// up one by one (subslices of burst, in order, covering it).
	Split func(burst []byte) [][]byte
	// Lose, if set, decides whether a reception that did not collide is
	// lost anyway.
	Lose func(from, to int, data []byte) bool
	// Bursts, if set, has every burst appended as it starts.
	Bursts *[]*Burst

	tb        testing.TB
	now       time.Time
	sts       []*station
	q         []event // binary min-heap by (at, kind, seq)
	seq       uint64
	onAir     int
	busySince time.Time
	stats     Stats
	stuck     int      // steps at the same instant
	free      []*Burst // bursts done with, to reuse (when Bursts is nil)
}

type station struct {
	s        Station
	tx       *Burst // handed to the modem, until its TxDone
	onAir    bool   // between its Air and End
	arriving []*arrival
	carrier  bool
	due      bool // to be polled at this instant
	st       StationStats
}

// arrival is burst b's signal at station to.
type arrival struct {
	b          *Burst
	to         int
	start, end time.Time
	lost       bool
	next       int // the next part to hand up (Split)
}

// Event kinds, in their order at one instant: what ends before what
// starts.
type evKind uint8

const (
	evPart         evKind = iota // a frame of a split burst handed up (not the last)
	evArrivalEnd                 // a signal ends at a receiver
	evHand                       // a burst handed up after the far serial line
	evTxEnd                      // the sender's TxDone
	evAir                        // the sender goes on air
	evArrivalStart               // a signal begins at a receiver
)

type event struct {
	at   time.Time
	kind evKind
	seq  uint64
	b    *Burst
	a    *arrival // nil for the sender's events
	p    int      // evPart, evHand: the part
}

// Epoch is where every medium's clock starts.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// New returns an empty medium of bitRate bit/s at Epoch. A problem in the
// model (a station that transmits twice, no progress) fails tb.
func New(tb testing.TB, bitRate int) *Medium {
	return &Medium{tb: tb, BitRate: bitRate, now: Epoch}
}

// Now is the medium's time.
func (m *Medium) Now() time.Time { return m.now }

// Add puts s on the medium and returns its index. It hears the bursts that
// start after this call. It is not polled until an input or its Deadline.
func (m *Medium) Add(s Station) int {
	m.sts = append(m.sts, &station{s: s})
	return len(m.sts) - 1
}

// Stats returns the medium's counters.
func (m *Medium) Stats() Stats { return m.stats }

// Station returns station i's counters.
func (m *Medium) Station(i int) StationStats { return m.sts[i].st }

// Transmitting says whether station i has a burst the modem has not
// reported TxDone for.
func (m *Medium) Transmitting(i int) bool { return m.sts[i].tx != nil }

// Busy says whether any burst is still on its way: on the serial line, on
// air, or arriving somewhere.
func (m *Medium) Busy() bool { return len(m.q) > 0 }

// Serial is the time n bytes take on a modem's serial line (0 without
// Baud).
func (m *Medium) Serial(n int) time.Duration {
	if m.Baud <= 0 {
		return 0
	}
	return time.Duration(n) * 10 * time.Second / time.Duration(m.Baud)
}

// Deliver hands station i an event at now, as if its modem reported it,
// and polls it.
func (m *Medium) Deliver(i int, ev phy.Event) {
	m.sts[i].s.Event(m.now, ev)
	m.Service(i)
}

// Service polls station i now (after an input the test gave it, such as a
// frame from its host) and puts on air what it returns.
func (m *Medium) Service(i int) {
	m.poll(i)
}

// Run lets d of virtual time pass: every event and deadline before now+d
// is handled, in time order; then the clock reads now+d.
func (m *Medium) Run(d time.Duration) {
	end := m.now.Add(d)
	for m.step(end, true) {
	}
	if end.After(m.now) {
		m.now = end
	}
}

// Step handles the next instant at which anything happens (events first,
// then the stations due), and reports false if nothing is scheduled.
func (m *Medium) Step() bool { return m.step(time.Time{}, false) }

// Drain lets the bursts on their way finish (TxDone, receptions, carrier)
// without polling any station: nothing new starts. The clock stops at the
// last event.
func (m *Medium) Drain() {
	for len(m.q) > 0 {
		if at := m.q[0].at; at.After(m.now) {
			m.now = at
		}
		m.fire()
	}
	for _, st := range m.sts {
		st.due = false
	}
}

// step handles the next instant before end (any, if !bounded).
func (m *Medium) step(end time.Time, bounded bool) bool {
	next, ok := time.Time{}, false
	if len(m.q) > 0 {
		next, ok = m.q[0].at, true
	}
	for _, st := range m.sts {
		if dl, dok := st.s.Deadline(); dok && (!ok || dl.Before(next)) {
			next, ok = dl, true
		}
	}
	if !ok || bounded && !next.Before(end) {
		return false
	}
	if next.After(m.now) {
		m.now = next
		m.stuck = 0
	} else if m.stuck++; m.stuck > 10_000 {
		m.tb.Fatalf("testmedium: no progress at %v", m.now)
	}
	m.fire()
	for i, st := range m.sts {
		if dl, dok := st.s.Deadline(); st.due || dok && !dl.After(m.now) {
			st.due = false
			m.poll(i)
		}
	}
	return true
}

// fire handles every event due by now.
func (m *Medium) fire() {
	for len(m.q) > 0 && !m.q[0].at.After(m.now) {
		ev := m.pop()
		m.handle(ev)
		if ev.b.refs--; ev.b.refs == 0 && m.Bursts == nil {
			m.free = append(m.free, ev.b)
		}
	}
}

// handle handles one event.
func (m *Medium) handle(ev event) {
	switch ev.kind {
	case evAir:
		st := m.sts[ev.b.From]
		st.onAir = true
		for _, a := range st.arriving {
			m.spoil(a, true)
		}
		if m.onAir == 0 {
			m.busySince = m.now
		}
		m.onAir++
	case evTxEnd:
		m.onAir--
		if m.onAir == 0 {
			m.stats.BusyTime += m.now.Sub(m.busySince)
		}
		st := m.sts[ev.b.From]
		st.onAir, st.tx = false, nil
		ev.b.ended = true
		m.settle(ev.b)
		m.event(ev.b.From, phy.Event{Kind: phy.TxDone})
	case evArrivalStart:
		a := ev.a
		st := m.sts[a.to]
		if st.onAir {
			m.spoil(a, true)
		}
		if len(st.arriving) > 0 {
			for _, o := range st.arriving {
				m.spoil(o, false)
			}
			m.spoil(a, false)
		}
		st.arriving = append(st.arriving, a)
		if !m.NoCarrier && !st.carrier {
			st.carrier = true
			m.event(a.to, phy.Event{Kind: phy.CarrierOn})
		}
	case evPart:
		m.hand(ev.a, ev.p)
	case evArrivalEnd:
		a := ev.a
		st := m.sts[a.to]
		for i, o := range st.arriving {
			if o == a {
				st.arriving = append(st.arriving[:i], st.arriving[i+1:]...)
				break
			}
		}
		last, data := len(a.b.parts)-1, a.b.Data
		if last >= 0 {
			data = a.b.parts[last].data
		}
		hand := a.end.Add(m.Serial(len(data)))
		off := !m.NoCarrier && st.carrier && len(st.arriving) == 0
		switch {
		case hand.After(m.now):
			m.push(hand, evHand, a.b, a, last)
		case last >= 0: // the last frame is decoded as the carrier drops
			m.hand(a, last)
		}
		if off {
			st.carrier = false
			m.event(a.to, phy.Event{Kind: phy.CarrierOff})
		}
		if last < 0 && !hand.After(m.now) {
			m.hand(a, last)
		}
		a.b.pending--
		m.settle(a.b)
	case evHand:
		m.hand(ev.a, ev.p)
	}
}

// spoil marks a reception lost, counting why the first time.
func (m *Medium) spoil(a *arrival, halfDuplex bool) {
	if a.lost {
		return
	}
	a.lost, a.b.Collided = true, true
	if halfDuplex {
		m.stats.LostHalfDuplex++
	} else {
		m.stats.LostCollision++
	}
}

// hand hands part p of a's burst (the whole burst for -1) up at a's
// receiver unless it is lost.
func (m *Medium) hand(a *arrival, p int) {
	data := a.b.Data
	if p >= 0 {
		data = a.b.parts[p].data
	}
	if a.lost {
		return
	}
	if m.Lose != nil && m.Lose(a.b.From, a.to, data) {
		m.stats.Lost++
		return
	}
	m.event(a.to, phy.Event{Kind: phy.Received, Data: data})
}

// settle counts b at its sender once it is over everywhere.
func (m *Medium) settle(b *Burst) {
	if !b.ended || b.pending > 0 {
		return
	}
	if b.Collided {
		m.stats.Collided++
	} else {
		m.sts[b.From].st.Clean++
	}
}

// event reports ev to station i and marks it to be polled at this instant.
func (m *Medium) event(i int, ev phy.Event) {
	st := m.sts[i]
	st.s.Event(m.now, ev)
	st.due = true
}

// poll polls station i and starts what it returns. The signal is sensed
// from the next round of this instant on.
func (m *Medium) poll(i int) {
	st := m.sts[i]
	f, ok := st.s.Poll(m.now)
	if !ok {
		return
	}
	if st.tx != nil {
		m.tb.Fatalf("testmedium: station %d returned a burst before the TxDone of its last", i)
	}
	var b *Burst
	if k := len(m.free); k > 0 {
		b = m.free[k-1]
		m.free = m.free[:k-1]
		*b = Burst{Data: b.Data[:0], parts: b.parts[:0], arr: b.arr[:0]}
	} else {
		b = &Burst{}
	}
	b.From, b.Data, b.Start = i, append(b.Data, f...), m.now
	b.Air = b.Start.Add(m.Serial(len(f)))
	b.End = b.Air.Add(m.KeyUp + phy.Airtime(len(f), m.BitRate))
	if m.Split != nil {
		at := b.Air.Add(m.KeyUp)
		for _, p := range m.Split(b.Data) {
			at = at.Add(phy.Airtime(len(p), m.BitRate))
			b.parts = append(b.parts, part{p, at})
		}
		if len(b.parts) > 0 {
			b.parts[len(b.parts)-1].end = b.End
		}
	}
	st.tx = b
	st.st.Sent++
	m.stats.Bursts++
	if m.Bursts != nil {
		*m.Bursts = append(*m.Bursts, b)
	}
	m.push(b.Air, evAir, b, nil, 0)
	m.push(b.End, evTxEnd, b, nil, 0)
	if cap(b.arr) < len(m.sts) {
		b.arr = make([]arrival, 0, len(m.sts)) // fixed from here: st.arriving points into it
	}
	for to := range m.sts {
		if to == i {
			continue
		}
		d := m.Prop
		if m.Delay != nil {
			d = m.Delay(i, to)
		}
		b.arr = append(b.arr, arrival{b: b, to: to, start: b.Air.Add(d), end: b.End.Add(d)})
		a := &b.arr[len(b.arr)-1]
		b.pending++
		m.push(a.start, evArrivalStart, b, a, 0)
		m.push(a.end, evArrivalEnd, b, a, 0)
		for k := 0; k < len(b.parts)-1; k++ {
			p := b.parts[k]
			m.push(p.end.Add(d+m.Serial(len(p.data))), evPart, b, a, k)
		}
	}
}

func (m *Medium) push(at time.Time, kind evKind, b *Burst, a *arrival, p int) {
	m.seq++
	b.refs++
	m.q = append(m.q, event{at: at, kind: kind, seq: m.seq, b: b, a: a, p: p})
	h := m.q
	for i := len(h) - 1; i > 0; {
		up := (i - 1) / 2
		if !h[i].before(&h[up]) {
			break
		}
		h[i], h[up] = h[up], h[i]
		i = up
	}
}

func (e *event) before(o *event) bool {
	if !e.at.Equal(o.at) {
		return e.at.Before(o.at)
	}
	if e.kind != o.kind {
		return e.kind < o.kind
	}
	return e.seq < o.seq
}

func (m *Medium) pop() event {
	h := m.q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
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
