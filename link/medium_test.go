package link

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/internal/testmedium"
	"github.com/slided/slided/phy"
)

// Engines on the tests' one fake medium (internal/testmedium), in virtual
// time, driven the way bridge drives one: after every input the engine's
// outbox is drained to its host and it is polled. testmedium's comment
// gives the model (carrier, collisions, half duplex, propagation, serial
// lines, key-up); here the modems' Info and the frames of a burst. With
// burstMax > 1 the modems take bursts of several frames, as a TNC does:
// each frame is received at its own end, as the far TNC decodes and hands
// it up. No goroutines, no sleeps: time only moves in run.

// node is one engine on the medium with what it gave its host.
type node struct {
	m    *medium
	i    int // its index on the medium
	e    *Engine
	host [][]byte // frames written to the host, copied
	fail bool     // the host refuses writes
	log  *bytes.Buffer
	// fresh: an input since the outbox was last drained (Deliveries
	// hands out the same outbox until the next input).
	fresh bool
}

// burst is a transmission (m.from says whose).
type burst = testmedium.Burst

type medium struct {
	*testmedium.Medium
	t     testing.TB
	rate  int
	nodes []*node
	// lose, if set, decides whether a burst from one node to another is
	// lost (besides collisions).
	lose func(from, to *node, data []byte) bool
	// burstMax is the modems' Info.MaxBurstFrames; KeyUp (testmedium)
	// the fixed time every transmission costs besides its bytes (a TNC's
	// TXDELAY and TXTAIL).
	burstMax int
	// accessWait, if set, makes the modems report their own channel
	// access (a TNC's) with that mean wait.
	accessWait time.Duration
	// burstAir is the modems' Info.MaxBurstAir (0: the link's default).
	burstAir time.Duration
}

// info is what every modem on the medium reports.
func (m *medium) info() phy.Info {
	return phy.Info{BitRate: m.rate, MaxBurstFrames: m.burstMax, Turnaround: m.KeyUp,
		OwnAccess: m.accessWait > 0, AccessWait: m.accessWait, NoCarrier: m.NoCarrier, MaxBurstAir: m.burstAir}
}

func newMedium(t testing.TB, rate int) *medium {
	m := &medium{Medium: testmedium.New(t, rate), t: t, rate: rate}
	m.Lose = func(from, to int, data []byte) bool {
		return m.lose != nil && m.lose(m.nodes[from], m.nodes[to], data)
	}
	return m
}

// from is the node that sent b.
func (m *medium) from(b *burst) *node { return m.nodes[b.From] }

// sync applies the settings the test made to the medium's model.
func (m *medium) sync() {
	m.Split = nil
	if m.burstMax > 1 {
		m.Split = splitBurst
	}
}

// splitBurst cuts a burst into its frames, as the far TNC hands them up: a
// frame is a run of non-zero bytes between delimiters, with its closing
// delimiter (and the delimiters before it).
func splitBurst(b []byte) [][]byte {
	var parts [][]byte
	for rest := b; len(rest) > 0; {
		i := 0
		for i < len(rest) && rest[i] == 0 {
			i++
		}
		j := i
		for j < len(rest) && rest[j] != 0 {
			j++
		}
		j = min(j+1, len(rest))
		parts = append(parts, rest[:j])
		rest = rest[j:]
	}
	return parts
}

// add starts an engine of cfg on the medium (its modem reports Up now).
func (m *medium) add(cfg Config) *node {
	m.t.Helper()
	m.sync()
	if cfg.Seed == 0 {
		cfg.Seed = uint64(len(m.nodes) + 1)
	}
	n := &node{m: m, log: &bytes.Buffer{}}
	cfg.Log = zerolog.New(n.log)
	e, err := New(cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	n.e = e
	n.i = m.Add(n)
	m.nodes = append(m.nodes, n)
	m.event(n, phy.Event{Kind: phy.Up})
	return n
}

// logCount counts the log lines of n that contain s.
func (n *node) logCount(s string) int { return strings.Count(n.log.String(), s) }

// Event hands the engine one modem event and drains its outbox
// (testmedium.Station).
func (n *node) Event(now time.Time, ev phy.Event) {
	if err := n.e.Modem(now, ev, n.m.info()); err != nil {
		n.m.t.Fatal(err)
	}
	n.fresh = true
	n.drain(now)
}

// Poll drains the outbox and runs the engine's timers; the frame it
// returns goes on air. What the Poll released for the host (a frame that
// waited for its sender's floor) is written at once, as the bridge does.
func (n *node) Poll(now time.Time) ([]byte, bool) {
	n.drain(now)
	f, ok := n.e.Poll(now)
	n.fresh = true
	n.drain(now)
	return f, ok
}

// Deadline is the engine's.
func (n *node) Deadline() (time.Time, bool) { return n.e.Deadline() }

// drain writes n's outbox to its host, as the bridge's loop does after
// every input.
func (n *node) drain(now time.Time) {
	if !n.fresh {
		return
	}
	n.fresh = false
	for _, d := range n.e.Deliveries() {
		var err error
		if n.fail {
			err = errTAP
		} else {
			n.host = append(n.host, append([]byte(nil), d.Eth...))
		}
		n.e.Written(now, d, err)
	}
}

type tapError struct{}

func (tapError) Error() string { return "tap refused" }

var errTAP error = tapError{}

// event hands one modem event to n and services it.
func (m *medium) event(n *node, ev phy.Event) {
	m.sync()
	m.Deliver(n.i, ev)
}

// hostFrame gives n a frame from its host.
func (m *medium) hostFrame(n *node, eth []byte) {
	m.sync()
	n.e.Host(m.Now(), eth)
	n.fresh = true
	m.Service(n.i)
}

// inject delivers raw bytes to n as if they came off the air.
func (m *medium) inject(n *node, data []byte) {
	m.event(n, phy.Event{Kind: phy.Received, Data: data})
}

// run lets d of virtual time pass.
func (m *medium) run(d time.Duration) {
	m.sync()
	m.Run(d)
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
