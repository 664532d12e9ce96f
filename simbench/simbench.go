// Package simbench measures channel-access protocols on the simulated medium
// in virtual time: the phy/sim/medium core (sans-I/O) and, for protocol "csma",
// slided's own mac/csma, driven by a discrete-event clock instead of timers,
// so that hours of channel time for a hundred nodes run in seconds. A run is
// deterministic for its Config (seed included).
//
// Protocols:
//
//   - "aloha": pure ALOHA. Every node always has a frame and makes channel
//     attempts at the points of a Poisson process of rate G/N per frame time
//     (N nodes, offered channel traffic G); each attempt transmits at once.
//   - "np-csma": non-persistent CSMA as Kleinrock and Tobagi model it. An
//     attempt senses the carrier: idle, the node transmits; busy, it
//     reschedules, and the next attempt comes after an exponential delay of
//     mean N/G frame times (long against the frame time when N is large).
//   - "csma": slided's mac/csma with its queue, fed by Poisson arrivals of
//     total rate G per frame time, or kept full (Saturated).
//   - "fama" and "tlohi": Slotted FAMA and T-Lohi (ST-Lohi), the underwater
//     MACs of the literature, saturated only (slotted.go).
//
// For aloha and np-csma the many nodes with small memoryless attempt rates
// make the attempts, new and rescheduled, the Poisson process of rate G that
// the textbook's infinite population assumes. A frame is addressed to a
// random other node and counts as a success when that node receives it; the
// sender learns this at once (an ideal acknowledgement) and takes a new frame.
//
// docs/simulation.md has the measurements and how to repeat them.
package simbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/slided/slided/mac/csma"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/sim/medium"
)

// Protocol names.
const (
	Aloha  = "aloha"
	NPCSMA = "np-csma"
	CSMA   = "csma"
)

// ErrConfig is wrapped by every error Config.Validate returns.
var ErrConfig = errors.New("simbench: invalid config")

// Config is one run.
type Config struct {
	// Protocol is Aloha, NPCSMA, CSMA, FAMA or TLohi.
	Protocol string
	// Nodes is the number of nodes, 2..MaxNodes; 2..254 with a Topology
	// (medium.Medium's node ids are one byte).
	Nodes int
	// A is the propagation delay over the frame time (every pair alike).
	// Ignored when Topology is set.
	A float64
	// Load is the offered channel traffic G, in frames per frame time:
	// attempts for aloha and np-csma, new frames for csma. Ignored when
	// Saturated.
	Load float64
	// Saturated keeps every csma node's queue full (csma); fama and tlohi
	// run saturated only.
	Saturated bool
	// Frames is the measured length of the run, in frame times; a warm-up
	// of a tenth of that (at most 1000 frame times) runs before it.
	Frames int
	// Seed seeds the medium, the driver and each MAC.
	Seed uint64
	// FrameBytes is the frame length; 0 means 100. At least 16.
	FrameBytes int
	// BitRate is the channel's bit rate; 0 means 9600.
	BitRate int
	// MAC configures csma; the zero value means csma.ConfigFor(Channel()):
	// slot and IFS from the propagation delay, the adaptive window.
	MAC csma.Config
	// Topology, when set, gives the links instead of A (nodes 1..Nodes).
	// Not for fama and tlohi.
	Topology *medium.Topology
	// Control is the length in bytes of fama's RTS, CTS and Ack, and of
	// tlohi's tone (its duration is this many bytes' airtime); 0 means
	// DefaultControl (12). 5 bytes or more, shorter than a data frame.
	Control int
	// Window is fama's least back-off window in slots (it doubles after
	// each RTS that got no CTS, up to 64 times this); 0 means
	// DefaultWindow (4).
	Window int

	// senders, for tests: only nodes 1..senders have traffic (0: all).
	senders int
}

func (c *Config) defaults() {
	if c.FrameBytes == 0 {
		c.FrameBytes = 100
	}
	if c.BitRate == 0 {
		c.BitRate = 9600
	}
	if c.Protocol == CSMA && c.MAC == (csma.Config{}) {
		c.MAC = csma.ConfigFor(c.Channel())
	}
	if slottedProtocol(c.Protocol) {
		if c.Control == 0 {
			c.Control = DefaultControl
		}
		if c.Window == 0 && c.Protocol == FAMA {
			c.Window = DefaultWindow
		}
	}
}

// Channel describes the simulated channel to csma.ConfigFor: its bit rate,
// frame length and longest propagation delay (a·T, or the topology's
// longest link), with carrier sensed as soon as a signal arrives.
func (c Config) Channel() csma.Channel {
	if c.FrameBytes == 0 {
		c.FrameBytes = 100
	}
	if c.BitRate == 0 {
		c.BitRate = 9600
	}
	T := phy.Airtime(c.FrameBytes, c.BitRate)
	delay := time.Duration(math.Round(c.A * float64(T)))
	if c.Topology != nil {
		delay = 0
		ids := c.Topology.Nodes()
		for _, a := range ids {
			for _, b := range ids {
				if l := c.Topology.Link(a, b); l.Reach {
					delay = max(delay, l.Delay)
				}
			}
		}
	}
	return csma.Channel{BitRate: c.BitRate, PropDelay: delay, CarrierAtArrival: true, FrameBytes: c.FrameBytes}
}

// Validate reports the first problem with c (after defaults), or nil.
func (c Config) Validate() error {
	c.defaults()
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(f, a...)) }
	switch {
	case c.Protocol != Aloha && c.Protocol != NPCSMA && c.Protocol != CSMA && !slottedProtocol(c.Protocol):
		return bad("protocol %q: want aloha, np-csma, csma, fama or tlohi", c.Protocol)
	case c.Nodes < 2 || c.Nodes > MaxNodes:
		return bad("nodes %d: want 2..%d", c.Nodes, MaxNodes)
	case c.Topology != nil && c.Nodes > 254:
		return bad("nodes %d: want 2..254 with a topology (node ids are one byte)", c.Nodes)
	case !(c.A >= 0 && c.A <= 100):
		return bad("a %v: want 0..100", c.A)
	case c.Saturated && c.Protocol != CSMA && !slottedProtocol(c.Protocol):
		return bad("-saturated is for csma; aloha and np-csma always have a frame, give -load")
	case slottedProtocol(c.Protocol) && !c.Saturated:
		return bad("%s runs saturated nodes only: give -saturated", c.Protocol)
	case slottedProtocol(c.Protocol) && c.Topology != nil:
		return bad("%s runs without a topology (every pair at delay a)", c.Protocol)
	case !slottedProtocol(c.Protocol) && (c.Control != 0 || c.Window != 0):
		return bad("-control and -window are for fama and tlohi")
	case c.Protocol != FAMA && c.Window != 0:
		return bad("-window is for fama")
	case !c.Saturated && !(c.Load > 0 && c.Load <= 1000):
		return bad("load %v: want > 0 (and at most 1000)", c.Load)
	case c.Frames < 1:
		return bad("frames %d: want at least 1", c.Frames)
	case c.FrameBytes < headerLen || c.FrameBytes > medium.MaxFrame:
		return bad("frame size %d: want %d..%d bytes", c.FrameBytes, headerLen, medium.MaxFrame)
	case c.BitRate <= 0:
		return bad("bit rate %d: must be positive", c.BitRate)
	case slottedProtocol(c.Protocol) && (c.Control < 5 || c.Control >= c.FrameBytes):
		return bad("control packet %d bytes: want 5 up to less than the %d-byte frame", c.Control, c.FrameBytes)
	case c.Protocol == FAMA && (c.Window < 1 || c.Window > 1024):
		return bad("window %d: want 1..1024 slots", c.Window)
	case c.senders < 0 || c.senders > c.Nodes:
		return bad("senders %d: want 0..%d", c.senders, c.Nodes)
	}
	if c.Protocol == CSMA {
		if err := c.MAC.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	return nil
}

// Result is what a run measured. Rates are per frame time.
type Result struct {
	Protocol  string  `json:"protocol"`
	Nodes     int     `json:"nodes"`
	A         float64 `json:"a"`
	Load      float64 `json:"load,omitempty"`
	Saturated bool    `json:"saturated,omitempty"`
	Seed      uint64  `json:"seed"`
	// FrameTimes is the measured span (warm-up excluded).
	FrameTimes float64 `json:"frame_times"`
	// G is channel-access attempts, new or rescheduled, per frame time:
	// transmissions plus attempts that found the channel busy (for csma,
	// the MAC's deferrals).
	G float64 `json:"G"`
	// S is frames received by their addressee without collision, per
	// frame time.
	S float64 `json:"S"`
	// Theory is the textbook S at the measured G (aloha, np-csma), or 0.
	Theory float64 `json:"S_theory,omitempty"`
	// Attempts, Transmissions and Successes count over the measured span.
	Attempts      uint64 `json:"attempts"`
	Transmissions uint64 `json:"transmissions"`
	Successes     uint64 `json:"successes"`
	// Collisions is transmissions their addressee did not receive (on a
	// loss-free medium: they overlapped another at it, or it was sending).
	Collisions    uint64  `json:"collisions"`
	CollisionRate float64 `json:"collision_rate"`
	// Dropped is csma frames refused by a full queue (Poisson load only).
	Dropped uint64 `json:"dropped,omitempty"`
	// DelayMean and DelayP95 are in frame times: from the frame's arrival
	// (csma) or its reaching the head of the line (aloha, np-csma) to the
	// end of its first successful reception.
	DelayMean float64 `json:"delay_mean"`
	DelayP95  float64 `json:"delay_p95"`
	// Jain is Jain's fairness index over the nodes' successes: 1 is fair,
	// 1/N is one node taking everything.
	Jain float64 `json:"jain"`
	// WallSeconds and Speed (simulated frame times per wall second) say
	// how fast the run went; they are the only fields that vary between
	// runs of one Config.
	WallSeconds float64 `json:"wall_seconds"`
	Speed       float64 `json:"frame_times_per_second"`
}

// AlohaS is the throughput of pure ALOHA at offered traffic G: G·e^(−2G).
func AlohaS(g float64) float64 { return g * math.Exp(-2*g) }

// NPCSMAS is the throughput of non-persistent CSMA (Kleinrock and Tobagi
// 1975) at offered traffic G and normalised propagation delay a:
// G·e^(−aG) / (G(1+2a) + e^(−aG)).
func NPCSMAS(g, a float64) float64 {
	e := math.Exp(-a * g)
	return g * e / (g*(1+2*a) + e)
}

// MaxNodes is the most nodes a run without a topology takes. Its medium
// (fastMedium) numbers them with ints, and its frames carry them in two
// bytes; only medium.Medium, which a topology needs, takes one-byte ids.
const MaxNodes = 10000

// frame header: src u16, dst u16 (node ids), seq u32, made u64 (ns since
// the epoch).
const headerLen = 16

// slowMedium makes Run use medium.Medium even without a topology (tests compare
// the two).
var slowMedium = false

// epoch is the virtual clock's origin in the engine mode, and the fixed one
// TestEpochFree compares Run's with.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// monoEpoch is Run's virtual clock origin: a reading of time.Now, for the
// monotonic clock reading it carries. Every time derived from it with Add
// carries one too, and time.Time compares and subtracts two such times by
// their monotonic readings alone, where times without one take the
// wall-clock path (Sub checks for overflow with an Add and an Equal): that
// path was a third of a 100-node csma run's CPU, in the MAC's arithmetic.
// A run depends only on differences between its times, so its results do
// not depend on when it ran (TestEpochFree runs it on a fixed epoch too).
var monoEpoch = time.Now()

type node struct {
	carrier bool
	onAir   bool
	// pendingOn: the carrier came on at onAt and the MAC has not been told
	// yet (runner.carrier).
	pendingOn bool
	onAt      time.Time
	seq       uint32    // aloha, np-csma: the frame at the head of the line
	hol       time.Time // when it got there
	mac       *csma.MAC
	free      [][]byte // csma: frame buffers not in the MAC
	success   uint64
}

type runner struct {
	cfg   Config
	m     channel
	fm    *fastMedium // m, when it is one: called directly, for speed
	rng   *rand.Rand
	nodes []node
	tm    *timers    // slot i: node i's attempt timer (aloha, np-csma); N+i: its next arrival (csma); 0: the slot boundary (fama, tlohi)
	dl    *deadlines // csma: slot i is node i's MAC deadline
	sl    *slotted   // fama, tlohi
	epoch time.Time
	now   time.Time
	nowAt int64 // now in ns since epoch
	T     time.Duration
	mean  float64 // mean gap between a node's attempts (aloha, np-csma) or arrivals (csma), ns

	measuring bool
	attempts  uint64 // rescheduled attempts (aloha, np-csma)
	tx        uint64
	succ      uint64
	delays    []float64 // frame times
	dropped   uint64
	macBase   uint64 // deferrals at the start of the measurement
}

// Run runs one simulation.
func Run(cfg Config) (Result, error) {
	res, _, err := run(cfg, monoEpoch)
	return res, err
}

// run is Run on the virtual clock's origin epoch; it also returns the
// runner, for tests to look at the nodes.
func run(cfg Config, epoch time.Time) (Result, *runner, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, nil, err
	}
	start := time.Now()
	T := phy.Airtime(cfg.FrameBytes, cfg.BitRate)
	delay := time.Duration(math.Round(cfg.A * float64(T)))
	r := &runner{
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		nodes: make([]node, cfg.Nodes),
		tm:    newTimers(2*cfg.Nodes, epoch),
		epoch: epoch,
		now:   epoch,
		T:     T,
	}
	if cfg.Protocol == CSMA {
		r.dl = newDeadlines(cfg.Nodes)
	}
	var attach func(i int) error
	if cfg.Topology != nil || slowMedium {
		sm, err := medium.New(medium.Config{BitRate: cfg.BitRate, PropDelay: delay, Seed: cfg.Seed})
		if err != nil {
			return Result{}, nil, err
		}
		if cfg.Topology != nil {
			sm.SetTopology(cfg.Topology)
		}
		sm.Advance(epoch, nil) // sets the medium's epoch
		r.m = &simMedium{m: sm, epoch: epoch, deliver: r.deliver}
		attach = func(i int) error { return sm.Attach(medium.NodeID(i + 1)) }
	} else {
		fm := newFastMedium(cfg.BitRate, delay, cfg.Nodes, r)
		r.m, r.fm = fm, fm
		attach = func(int) error { fm.attach(); return nil }
	}
	if !cfg.Saturated {
		r.mean = float64(cfg.Nodes) * float64(T) / cfg.Load
	}
	if slottedProtocol(cfg.Protocol) {
		r.sl = newSlotted(r)
		r.tm.setAt(0, 0)
	}
	for i := range r.nodes {
		n := &r.nodes[i]
		n.hol = epoch
		if err := attach(i); err != nil {
			return Result{}, nil, err
		}
		if cfg.Protocol == CSMA {
			var err error
			n.mac, err = csma.New(cfg.MAC, rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1)))
			if err != nil {
				return Result{}, nil, err
			}
			for range cfg.MAC.QueueLen + 1 {
				n.free = append(n.free, make([]byte, cfg.FrameBytes))
			}
			if cfg.Saturated {
				r.topUp(i)
				r.service(i)
			} else {
				r.tm.set(cfg.Nodes+i, r.after(r.mean))
			}
		} else if r.sl == nil {
			r.tm.set(i, r.after(r.mean))
		}
	}

	warm := min(cfg.Frames/10, 1000)
	// Times in the loop are ns since epoch (the medium's too): cheaper to
	// compare than time.Time.
	from := int64(warm) * int64(T)
	until := from + int64(cfg.Frames)*int64(T)
	for {
		var next int64
		var mok bool
		if r.fm != nil {
			next, mok = r.fm.next()
		} else {
			next, mok = r.m.next()
		}
		slot, at, tok := r.peek()
		// Medium events first at equal times: carrier state is then
		// current when a node decides.
		useMedium := mok && (!tok || at >= next)
		if useMedium {
			at = next
		} else if !tok {
			break
		}
		if !r.measuring && at >= from {
			r.startMeasuring()
		}
		if at > until {
			break
		}
		if at != r.nowAt { // a transmission starts when a deadline fires
			r.nowAt, r.now = at, epoch.Add(time.Duration(at))
		}
		if useMedium {
			if r.fm != nil {
				r.fm.advance(at)
			} else {
				r.m.advance(at)
			}
			continue
		}
		r.clear(slot)
		r.fire(slot)
	}
	if !r.measuring {
		r.startMeasuring()
	}
	r.tellAll()
	return r.result(start), r, nil
}

// peek returns the earliest timer: a MAC's deadline (slot i < N) or an
// attempt or arrival (slots in tm), ties in slot order.
func (r *runner) peek() (int, int64, bool) {
	s, at, ok := r.tm.peekAt()
	if r.dl != nil {
		if d, dat, dok := r.dl.peek(); dok && (!ok || dat <= at) {
			return d, dat, true // d < N <= s
		}
	}
	return s, at, ok
}

func (r *runner) clear(slot int) {
	if r.dl != nil && slot < r.cfg.Nodes {
		r.dl.clear(slot)
		return
	}
	r.tm.clear(slot)
}

func (r *runner) after(mean float64) time.Time {
	return r.now.Add(time.Duration(r.rng.ExpFloat64() * mean))
}

func (r *runner) startMeasuring() {
	r.tellAll()
	r.measuring = true
	r.attempts, r.tx, r.succ, r.dropped = 0, 0, 0, 0
	if r.delays == nil {
		// A success takes a frame time: room for all, bar spatial reuse.
		r.delays = make([]float64, 0, r.cfg.Frames+1)
	}
	r.delays = r.delays[:0]
	r.macBase = 0
	for i := range r.nodes {
		r.nodes[i].success = 0
		if mac := r.nodes[i].mac; mac != nil {
			r.macBase += mac.Stats().Deferrals
		}
	}
}

// fire handles timer slot s.
func (r *runner) fire(s int) {
	N := r.cfg.Nodes
	if s >= N { // csma arrival
		i := s - N
		r.tm.set(s, r.after(r.mean))
		if len(r.nodes[i].free) == 0 || r.nodes[i].mac.Room() == 0 {
			r.dropped++
			return
		}
		r.tell(&r.nodes[i])
		r.enqueue(i)
		r.service(i)
		return
	}
	n := &r.nodes[s]
	switch r.cfg.Protocol {
	case CSMA:
		r.service(s)
	case Aloha:
		r.transmit(s, r.frame(s))
	case NPCSMA:
		if n.carrier {
			r.attempts++ // sensed busy: reschedule
			r.tm.set(s, r.after(r.mean))
			return
		}
		r.transmit(s, r.frame(s))
	case FAMA, TLohi:
		r.sl.tick(r)
		r.tm.setAt(0, r.nowAt+r.sl.slot)
	}
}

// frame writes node i's head-of-line frame into a scratch buffer.
func (r *runner) frame(i int) []byte {
	n := &r.nodes[i]
	if len(n.free) == 0 {
		n.free = append(n.free, make([]byte, r.cfg.FrameBytes))
	}
	b := n.free[0]
	r.header(b, i, n.seq, n.hol)
	return b
}

func (r *runner) header(b []byte, i int, seq uint32, made time.Time) {
	dst := r.rng.IntN(r.cfg.Nodes - 1)
	if dst >= i {
		dst++
	}
	binary.BigEndian.PutUint16(b[0:], uint16(i+1))
	binary.BigEndian.PutUint16(b[2:], uint16(dst+1))
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint64(b[8:], uint64(made.Sub(r.epoch)))
}

func (r *runner) transmit(i int, b []byte) {
	n := &r.nodes[i]
	var err error
	to := int(binary.BigEndian.Uint16(b[2:])) - 1 // the addressee (header)
	if r.fm != nil {
		err = r.fm.transmit(r.nowAt, i, to, b)
	} else {
		err = r.m.transmit(r.nowAt, i, to, b)
	}
	if err != nil {
		panic(fmt.Sprintf("simbench: transmit: %v", err)) // a driver bug, not input
	}
	n.onAir = true
	r.tx++
}

// enqueue gives node i's MAC a new frame made now.
func (r *runner) enqueue(i int) {
	n := &r.nodes[i]
	b := n.free[len(n.free)-1]
	n.free = n.free[:len(n.free)-1]
	r.header(b, i, n.seq, r.now)
	n.seq++
	if err := n.mac.Enqueue(r.now, b); err != nil {
		n.free = append(n.free, b)
		r.dropped++
	}
}

func (r *runner) topUp(i int) {
	n := &r.nodes[i]
	for n.mac.Room() > 0 && len(n.free) > 0 {
		r.enqueue(i)
	}
}

// service polls node i's MAC and rearms its deadline.
func (r *runner) service(i int) {
	n := &r.nodes[i]
	// A deadline after now means Poll(now) has nothing to send
	// (csma.MAC.Deadline): skip it, it is the costlier call. The
	// deadlines come as ns since the epoch (DeadlineSince), as the loop
	// keeps them.
	if d, ok := n.mac.DeadlineSince(r.epoch); ok && int64(d) > r.nowAt {
		r.dl.set(i, int64(d))
		return
	}
	if f, ok := n.mac.Poll(r.now); ok {
		r.transmit(i, f)
		n.free = append(n.free, f) // the medium copied it
	}
	if d, ok := n.mac.DeadlineSince(r.epoch); ok {
		r.dl.set(i, int64(d))
	} else {
		r.dl.clear(i)
	}
}

// tell gives n's MAC the carrier that came on while it was not looking
// (carrier), before any other input.
func (r *runner) tell(n *node) {
	if n.pendingOn {
		n.pendingOn = false
		n.mac.Carrier(n.onAt, true)
	}
}

// tellAll tells every MAC, so that their counters are current.
func (r *runner) tellAll() {
	for i := range r.nodes {
		if r.nodes[i].mac != nil {
			r.tell(&r.nodes[i])
		}
	}
}

// deliver takes medium.Medium's events.
func (r *runner) deliver(to medium.NodeID, ev phy.Event) {
	i := int(to) - 1
	switch ev.Kind {
	case phy.CarrierOn, phy.CarrierOff:
		r.carrier(i, ev.Kind == phy.CarrierOn)
	case phy.TxDone:
		r.txDone(i)
	case phy.Received:
		r.received(i, ev.Data)
	}
}

// carrier: node i's carrier turned on or off.
//
// A carrier that comes on while the node waits is not told to its MAC at
// once: the MAC is told when its next input comes (tell), with the time it
// came on. A busy carrier holds every MAC back until it drops (Poll sends
// nothing and Deadline is false: csma.MAC.Deadline), so nothing can happen
// in between but the node's own next input, and the MAC sees the same calls
// at the same times, in the same order. On a broadcast channel that next
// input is nearly always the carrier dropping, so each node's MAC is
// touched once per busy period, not twice (TestPinned holds the runs to
// what they were).
func (r *runner) carrier(i int, on bool) {
	n := &r.nodes[i]
	n.carrier = on
	if n.mac == nil {
		if on && r.sl != nil {
			r.sl.heard(i, r.nowAt)
		}
		return
	}
	if on && !n.onAir {
		n.pendingOn, n.onAt = true, r.now
		r.dl.clear(i)
		return
	}
	r.tell(n)
	n.mac.Carrier(r.now, on)
	r.service(i)
}

// txDone: node i's transmission has left the modem.
func (r *runner) txDone(i int) {
	n := &r.nodes[i]
	n.onAir = false
	if n.mac == nil {
		if r.sl == nil {
			r.tm.set(i, r.after(r.mean))
		}
		return
	}
	// The MAC kept the carrier reports that came while on air and
	// applies them here (csma.MAC.Carrier): no report again.
	r.tell(n)
	n.mac.TxDone(r.now)
	if r.cfg.Saturated {
		r.topUp(i)
	}
	r.service(i)
}

// received: a frame arrived at node i intact.
func (r *runner) received(i int, d []byte) {
	if r.sl != nil && len(d) == r.cfg.Control {
		r.sl.control(r, i, d)
		return
	}
	if len(d) < headerLen || int(binary.BigEndian.Uint16(d[2:])) != i+1 {
		return
	}
	src := int(binary.BigEndian.Uint16(d[0:])) - 1
	if src < 0 || src >= len(r.nodes) {
		return
	}
	if r.sl != nil {
		r.sl.gotData(i, src)
	}
	if r.measuring {
		r.succ++
		r.nodes[src].success++
	}
	sn := &r.nodes[src]
	seq := binary.BigEndian.Uint32(d[4:])
	made := r.epoch.Add(time.Duration(binary.BigEndian.Uint64(d[8:])))
	if sn.mac == nil {
		if seq != sn.seq {
			return // a copy sent before the sender learnt of the first
		}
		sn.seq++
		sn.hol = r.now
	}
	if r.measuring {
		r.delays = append(r.delays, float64(r.now.Sub(made))/float64(r.T))
	}
}

// quantile returns the q-quantile of xs, the element a sort would put at
// index ⌊q·len⌋ (at most the last), and reorders xs. It selects rather than
// sorts: Hoare partitions around a median of three, O(len) on average.
func quantile(xs []float64, q float64) float64 {
	k := min(len(xs)-1, int(q*float64(len(xs))))
	lo, hi := 0, len(xs)-1
	for lo < hi {
		a, b, c := xs[lo], xs[lo+(hi-lo)/2], xs[hi]
		p := max(min(a, b), min(max(a, b), c)) // the median
		i, j := lo, hi
		for i <= j {
			for xs[i] < p {
				i++
			}
			for xs[j] > p {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k] // between the two parts: equal to p
		}
	}
	return xs[k]
}

func (r *runner) result(start time.Time) Result {
	cfg := r.cfg
	span := float64(cfg.Frames)
	res := Result{
		Protocol: cfg.Protocol, Nodes: cfg.Nodes, A: cfg.A, Seed: cfg.Seed,
		Saturated: cfg.Saturated, FrameTimes: span,
		Transmissions: r.tx, Successes: r.succ, Dropped: r.dropped,
	}
	if !cfg.Saturated {
		res.Load = cfg.Load
	}
	attempts := r.attempts + r.tx
	if cfg.Protocol == CSMA {
		var def uint64
		for i := range r.nodes {
			def += r.nodes[i].mac.Stats().Deferrals
		}
		attempts = r.tx + def - r.macBase
	}
	if r.sl != nil {
		attempts = r.attempts // RTSs or tones
	}
	res.Attempts = attempts
	res.G = float64(attempts) / span
	res.S = float64(r.succ) / span
	switch cfg.Protocol {
	case Aloha:
		res.Theory = AlohaS(res.G)
	case NPCSMA:
		res.Theory = NPCSMAS(res.G, cfg.A)
	}
	if r.tx > r.succ {
		res.Collisions = r.tx - r.succ
	}
	if r.tx > 0 {
		res.CollisionRate = float64(res.Collisions) / float64(r.tx)
	}
	if len(r.delays) > 0 {
		sum := 0.0
		for _, d := range r.delays {
			sum += d
		}
		res.DelayMean = sum / float64(len(r.delays))
		res.DelayP95 = quantile(r.delays, 0.95)
	}
	var s1, s2 float64
	for i := range r.nodes {
		x := float64(r.nodes[i].success)
		s1 += x
		s2 += x * x
	}
	if s2 > 0 {
		res.Jain = s1 * s1 / (float64(len(r.nodes)) * s2)
	}
	res.WallSeconds = time.Since(start).Seconds()
	if res.WallSeconds > 0 {
		res.Speed = (span + float64(min(cfg.Frames/10, 1000))) / res.WallSeconds
	}
	return res
}
