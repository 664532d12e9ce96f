package link

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// This file is the one fake medium of the engine's tests: engines on a
// shared channel in virtual time, driven the way bridge drives one. A
// transmission occupies the channel for its airtime (and keyUp); every
// other node senses the carrier from its start to its end and receives the
// burst at its end, unless lose says otherwise; two overlapping bursts are
// both lost at every receiver (a collision). With burstMax > 1 the modems
// take bursts of several frames, as a TNC does: each frame is received at
// its own end, as the far TNC decodes and hands it up. No goroutines, no
// sleeps: time only moves in run.

// node is one engine on the medium with what it gave its host.
type node struct {
	e     *Engine
	host  [][]byte // frames written to the host, copied
	fail  bool     // the host refuses writes
	onAir bool
	log   *bytes.Buffer
}

// burst is a transmission in progress.
type burst struct {
	from       *node
	data       []byte
	start, end time.Time
	air        time.Time // when it goes on air (after the serial line, medium.baud)
	collided   bool
	// parts are the frames of a burst received one by one (burstMax > 1)
	// not yet received, with their ends; the last ends at end.
	parts []part
}

type part struct {
	data []byte
	end  time.Time
}

type medium struct {
	t     testing.TB
	now   time.Time
	rate  int
	nodes []*node
	air   []*burst
	// lose, if set, decides whether a burst from one node to another is
	// lost (besides collisions).
	lose func(from, to *node, data []byte) bool
	sent int // bursts put on air
	// burstMax is the modems' Info.MaxBurstFrames; keyUp the fixed time
	// every transmission costs besides its bytes (a TNC's TXDELAY and
	// TXTAIL).
	burstMax int
	keyUp    time.Duration
	// accessWait, if set, makes the modems report their own channel
	// access (a TNC's) with that mean wait.
	accessWait time.Duration
	// burstAir is the modems' Info.MaxBurstAir (0: the link's default).
	burstAir time.Duration
	// bursts records every transmission, if set.
	bursts *[]*burst
	// prop, if set, is the propagation delay between every two nodes, and
	// the modems are half duplex and sense no carrier (a transparent
	// acoustic modem, phy.Info.NoCarrier): a burst reaches every other
	// node prop after it was sent, and is received at its end there
	// unless the node transmitted during any part of its arrival (half
	// duplex) or another node's burst arrived during it (collision).
	// keyUp is then the modem's preamble and turnaround.
	prop time.Duration
	// baud, with prop, is the serial line's rate of a store-and-forward
	// modem: a burst crosses it (10 bits a byte) before the modem keys up,
	// and the far modem hands it up over its own line after it has
	// received all of it.
	baud int
	// arrivals are the bursts on their way (prop > 0), in the order they
	// end at their receivers; hist the bursts whose arrivals may still
	// overlap another's.
	arrivals []arrival
	hist     []*burst
	// lost counts bursts lost at a receiver (prop > 0): half duplex, and
	// collisions of two arrivals.
	lostHalfDuplex, lostCollision int
}

// arrival is burst b ending at node to.
type arrival struct {
	b  *burst
	to *node
	at time.Time
}

// info is what every modem on the medium reports.
func (m *medium) info() phy.Info {
	return phy.Info{BitRate: m.rate, MaxBurstFrames: m.burstMax, Turnaround: m.keyUp,
		OwnAccess: m.accessWait > 0, AccessWait: m.accessWait, NoCarrier: m.prop > 0, MaxBurstAir: m.burstAir}
}

func newMedium(t testing.TB, rate int) *medium {
	return &medium{t: t, now: time.Now().Truncate(time.Second), rate: rate}
}

// add starts an engine of cfg on the medium (its modem reports Up now).
func (m *medium) add(cfg Config) *node {
	m.t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = uint64(len(m.nodes) + 1)
	}
	n := &node{log: &bytes.Buffer{}}
	cfg.Log = zerolog.New(n.log)
	e, err := New(cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	n.e = e
	m.nodes = append(m.nodes, n)
	if err := e.Modem(m.now, phy.Event{Kind: phy.Up}, m.info()); err != nil {
		m.t.Fatal(err)
	}
	m.service(n)
	return n
}

// logCount counts the log lines of n that contain s.
func (n *node) logCount(s string) int { return strings.Count(n.log.String(), s) }

// service drains n's outbox and lets it transmit, as the bridge's loop
// does after every input.
func (m *medium) service(n *node) {
	for _, d := range n.e.Deliveries() {
		var err error
		if n.fail {
			err = errTAP
		} else {
			n.host = append(n.host, append([]byte(nil), d.Eth...))
		}
		n.e.Written(m.now, d, err)
	}
	if n.onAir {
		n.e.Poll(m.now) // runs timers; the MAC returns nothing while on air
		return
	}
	f, ok := n.e.Poll(m.now)
	if !ok {
		return
	}
	b := &burst{from: n, data: append([]byte(nil), f...), start: m.now, end: m.now.Add(m.keyUp + phy.Airtime(len(f), m.rate))}
	b.air = b.start
	if m.baud > 0 {
		b.air = b.start.Add(m.serial(len(f)))
		b.end = b.end.Add(b.air.Sub(b.start))
	}
	if m.bursts != nil {
		*m.bursts = append(*m.bursts, b)
	}
	if m.burstMax > 1 {
		at, rest := m.now.Add(m.keyUp), b.data
		for len(rest) > 0 {
			// A frame is a run of non-zero bytes between delimiters.
			i := 0
			for i < len(rest) && rest[i] == 0 {
				i++
			}
			j := i
			for j < len(rest) && rest[j] != 0 {
				j++
			}
			j = min(j+1, len(rest)) // its closing delimiter
			at = at.Add(phy.Airtime(j, m.rate))
			b.parts = append(b.parts, part{rest[:j], at})
			rest = rest[j:]
		}
		b.parts[len(b.parts)-1].end = b.end
	}
	if m.prop > 0 {
		// Losses are decided at each receiver (arrive); no carrier.
		m.air = append(m.air, b)
		m.hist = append(m.hist, b)
		n.onAir = true
		m.sent++
		return
	}
	for _, o := range m.air {
		o.collided, b.collided = true, true
	}
	m.air = append(m.air, b)
	n.onAir = true
	m.sent++
	for _, o := range m.nodes {
		if o != n && !m.busyFor(o, b) {
			m.event(o, phy.Event{Kind: phy.CarrierOn})
		}
	}
}

// busyFor says whether o already senses a burst other than b.
func (m *medium) busyFor(o *node, b *burst) bool {
	for _, x := range m.air {
		if x != b && x.from != o {
			return true
		}
	}
	return false
}

type tapError struct{}

func (tapError) Error() string { return "tap refused" }

var errTAP error = tapError{}

// event hands one modem event to n and services it.
func (m *medium) event(n *node, ev phy.Event) {
	if err := n.e.Modem(m.now, ev, m.info()); err != nil {
		m.t.Fatal(err)
	}
	m.service(n)
}

// hostFrame gives n a frame from its host.
func (m *medium) hostFrame(n *node, eth []byte) {
	n.e.Host(m.now, eth)
	m.service(n)
}

// inject delivers raw bytes to n as if they came off the air.
func (m *medium) inject(n *node, data []byte) {
	m.event(n, phy.Event{Kind: phy.Received, Data: data})
}

// run lets d of virtual time pass.
func (m *medium) run(d time.Duration) {
	end := m.now.Add(d)
	for i := 0; ; i++ {
		if i > 10_000_000 {
			m.t.Fatal("medium: no progress")
		}
		next, which := end, -1
		for i, b := range m.air {
			if e := b.next(); e.Before(next) {
				next, which = e, i
			}
		}
		arr := -1
		for i, a := range m.arrivals {
			if a.at.Before(next) {
				next, which, arr = a.at, -1, i
			}
		}
		var due *node
		if which < 0 && arr < 0 {
			for _, n := range m.nodes {
				if dl, ok := n.e.Deadline(); ok && dl.Before(next) {
					next, due = dl, n
				}
			}
		}
		if next.Before(m.now) {
			next = m.now
		}
		if which < 0 && due == nil && arr < 0 {
			m.now = end
			return
		}
		m.now = next
		if arr >= 0 {
			m.arrive(arr)
			continue
		}
		if which >= 0 {
			m.finish(which)
			continue
		}
		m.service(due)
	}
}

// next is when the next thing happens to b: its next frame is received,
// or it ends.
func (b *burst) next() time.Time {
	if len(b.parts) > 1 {
		return b.parts[0].end
	}
	return b.end
}

// finish ends burst i: the sender's TxDone, everyone else's reception; or,
// for a burst received frame by frame, the reception of its next frame.
func (m *medium) finish(i int) {
	b := m.air[i]
	if len(b.parts) > 1 {
		p := b.parts[0]
		b.parts = b.parts[1:]
		for _, o := range m.nodes {
			if o != b.from && !b.collided && (m.lose == nil || !m.lose(b.from, o, p.data)) {
				m.event(o, phy.Event{Kind: phy.Received, Data: p.data})
			}
		}
		return
	}
	data := b.data
	if len(b.parts) == 1 {
		data = b.parts[0].data
	}
	m.air = append(m.air[:i], m.air[i+1:]...)
	b.from.onAir = false
	if m.prop > 0 {
		for _, o := range m.nodes {
			if o != b.from {
				m.arrivals = append(m.arrivals, arrival{b: b, to: o, at: b.end.Add(m.prop + m.serial(len(b.data)))})
			}
		}
		m.event(b.from, phy.Event{Kind: phy.TxDone})
		return
	}
	for _, o := range m.nodes {
		if o == b.from {
			continue
		}
		// A modem that hands up frame by frame has the last one decoded
		// when its carrier drops; the others, at the end of the burst.
		framed := b.parts != nil
		if !framed && !m.busyFor(o, nil) {
			m.event(o, phy.Event{Kind: phy.CarrierOff})
		}
		if !b.collided && (m.lose == nil || !m.lose(b.from, o, data)) {
			m.event(o, phy.Event{Kind: phy.Received, Data: data})
		}
		if framed && !m.busyFor(o, nil) {
			m.event(o, phy.Event{Kind: phy.CarrierOff})
		}
	}
	m.event(b.from, phy.Event{Kind: phy.TxDone})
}

// arrive ends arrival i (prop > 0): its receiver gets the burst unless it
// transmitted during any part of the arrival (half duplex) or another
// burst arrived during it (collision).
func (m *medium) arrive(i int) {
	a := m.arrivals[i]
	m.arrivals = append(m.arrivals[:i], m.arrivals[i+1:]...)
	from, to := a.b.air.Add(m.prop), a.b.end.Add(m.prop)
	lost := false
	for _, x := range m.hist {
		if x == a.b {
			continue
		}
		switch {
		case x.from == a.to && x.air.Before(to) && x.end.After(from):
			m.lostHalfDuplex++
			lost = true
		case x.from != a.to && x.air.Add(m.prop).Before(to) && x.end.Add(m.prop).After(from):
			m.lostCollision++
			lost = true
		}
		if lost {
			break
		}
	}
	// Forget the bursts that can overlap no arrival still to come.
	keep := m.hist[:0]
	for _, x := range m.hist {
		if x.end.Add(m.prop + time.Minute).After(m.now) {
			keep = append(keep, x)
		}
	}
	m.hist = keep
	if !lost && (m.lose == nil || !m.lose(a.b.from, a.to, a.b.data)) {
		m.event(a.to, phy.Event{Kind: phy.Received, Data: a.b.data})
	}
}

// serial is the time n bytes take on a modem's serial line (medium.baud;
// 0 without).
func (m *medium) serial(n int) time.Duration {
	if m.baud <= 0 {
		return 0
	}
	return time.Duration(n) * 10 * time.Second / time.Duration(m.baud)
}

// ethFrame is a 100-byte IPv4 frame from node src's MAC to node dst's.
func ethFrame(dst, src framing.NodeID) []byte {
	f := make([]byte, 100)
	copy(f, framing.MACFor(dst))
	copy(f[6:], framing.MACFor(src))
	f[12], f[13] = 0x08, 0x00
	return f
}

// bubble is one engine alone on the medium, for tests that script what it
// hears.
type bubble struct {
	m *medium
	n *node
}

// after lets d of virtual time pass.
func (x *bubble) after(d time.Duration) { x.m.run(d) }

// inBubble runs f against one engine of cfg (node 1 unless set) on a 9600
// bit/s medium, after its modem's first Up.
func inBubble(t *testing.T, cfg Config, f func(t *testing.T, x *bubble)) {
	t.Helper()
	m := newMedium(t, 9600)
	if cfg.Node == 0 {
		cfg.Node = 1
	}
	f(t, &bubble{m: m, n: m.add(cfg)})
}
