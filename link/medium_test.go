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
}

// info is what every modem on the medium reports.
func (m *medium) info() phy.Info {
	return phy.Info{BitRate: m.rate, MaxBurstFrames: m.burstMax, Turnaround: m.keyUp,
		OwnAccess: m.accessWait > 0, AccessWait: m.accessWait, MaxBurstAir: m.burstAir}
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
		var due *node
		if which < 0 {
			for _, n := range m.nodes {
				if dl, ok := n.e.Deadline(); ok && dl.Before(next) {
					next, due = dl, n
				}
			}
		}
		if next.Before(m.now) {
			next = m.now
		}
		if which < 0 && due == nil {
			m.now = end
			return
		}
		m.now = next
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
