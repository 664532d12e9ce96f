// Package bridge is the I/O shell of one slided interface around its link
// engine (package link): it reads the TAP, talks to the modem (PHY), keeps
// the engine's timer, and paces the host's backlog through the shaping
// qdisc so that it stays where it pushes back on the sending applications.
// Every decision about frames is the engine's (the read-ahead asks it
// which flows it holds, Credit).
//
//	reader goroutine: TAP.Read (only with a token: engine.WantRead) ─► packets ─┐
//	                                                                             ▼
//	loop goroutine:   engine.Host ─► engine.Deliveries ─► TAP.Write ─► engine.Written
//	                  (with a Credit: packets read ahead, handed to engine.Host when it wants one)
//	                  PHY.Events ─► engine.Modem ─► engine.Deliveries ─► TAP.Write
//	                  after each input and at engine.Deadline: engine.Poll ─► PHY.Transmit (error: engine.Refused)
//	                  every Tick while busy: engine.Tick ─► pacer ─► Shaper.SetRate
//
// Idle, the loop sleeps: it arms a timer only for the engine's Deadline,
// and the pacing tick runs only while something happens. A tick that finds
// no input since the last one, the MAC queue empty and the ring drained
// stops the ticker; the next input starts it again, after the pacer has
// been given the ticks it missed (pacer.idle), so pacing under load is the
// same as with a ticker that never stops.
//
// Goroutines: Run's goroutine (the loop) owns the engine, the pacer and
// every buffer. One reader goroutine blocks in TAP.Read, but only while it
// holds a read token the loop gave it; it exits when Run's context is done
// and its current Read returns (the caller closes the TAP after Run returns,
// which ends that Read).
package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/internal/precise"
	"github.com/slided/slided/internal/selfstall"
	"github.com/slided/slided/link"
	"github.com/slided/slided/mac/csma"
	"github.com/slided/slided/phy"
)

// TAP is the host side: one Ethernet frame per Read and per Write. Read may
// block; Write must not block for long. Read must return an error once the
// device is closed.
type TAP interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
}

// PHY is a modem as the MAC sees it, keeping the modem contract written in
// package phy (phy.go). The concrete types in phy/sim, phy/serial and
// phy/kiss satisfy it.
type PHY interface {
	// Info describes the modem; valid once the modem has reported Up.
	Info() phy.Info
	// Transmit puts one encoded burst on air. The PHY is done with b when
	// it returns. It must not be called again before the TxDone (or Down)
	// that follows it, and it blocks neither for the airtime nor on I/O.
	// Its errors wrap phy.ErrBusy, ErrDown, ErrClosed, ErrTooLarge or
	// ErrEmpty; the engine branches on them (link.Engine.Refused).
	Transmit(b []byte) error
	// Events delivers the modem's reports in order; closed after Close.
	// Carrier events report the channel at all times, our own
	// transmissions included: a CarrierOn before our TxDone still holds
	// after it (csma.MAC.Carrier keeps it), so nobody reports it again.
	Events() <-chan phy.Event
	// Close stops the modem's goroutines and releases its port or socket.
	Close() error
}

// Shaper is the qdisc on the TAP that holds the host's backlog (see
// docs/backpressure.md). Its methods are called from the loop goroutine only.
type Shaper interface {
	// SetRate sets the rate at which the qdisc releases packets to the TAP.
	SetRate(bytesPerSec uint64) error
	// Released reports how many packets the qdisc has passed to the TAP's
	// ring since it was installed, and how many of those the ring dropped.
	Released() (sent, dropped uint64, err error)
}

// Credit is a TAP whose qdisc lets packets into the ring on credit
// (tap.CreditTAP, docs/backpressure.md). With policy block the
// bridge calls GrantOnTake once; if it returns true, the bridge reads the
// ring as soon as packets come (holding at most RingLen of them) and hands
// them to the engine when it wants a packet, calling Taken once for each,
// which is what grants the next ones. Taken comes as soon as a MAC place
// is free; the packet is handed over once the Acks to the frame just sent
// have come (link.Engine.AwaitingAck), a few milliseconds later, and
// before the engine picks its next frame, so that what the grant released
// can be that packet and go next; and a packet of a flow with
// nothing queued in the engine goes first. So nothing waits in the ring's
// FIFO and a small flow beside a greedy one waits only for the grant and
// the frame on air. Without a Credit the bridge reads only when the engine
// wants a packet, and the TAP grants as it is read.
type Credit interface {
	GrantOnTake() bool
	Taken()
}

// Policy says what happens to packets when the link cannot keep up
// (link.Policy).
type Policy = link.Policy

// The policies (link.Block, link.DropTail, link.DropHead).
const (
	Block    = link.Block
	DropTail = link.DropTail
	DropHead = link.DropHead
)

// ParsePolicy parses "block", "drop-tail" or "drop-head".
func ParsePolicy(s string) (Policy, error) { return link.ParsePolicy(s) }

// Stats, Drops and Peer are the engine's snapshot (link.Stats), with the
// shell's own figures filled in: ReadPending, Ring, RingDropped,
// PacingRate and ShaperErrors.
type (
	Stats = link.Stats
	Drops = link.Drops
	Peer  = link.Peer
)

// AuthState keeps one key's counters across restarts (link.AuthState).
type AuthState = link.AuthState

// Capture records frames as they go on air and come off it (link.Capture).
type Capture = link.Capture

// Config sets up a Bridge: the link engine's settings (link.Config: the
// MTU is the TAP's, 0 meaning 1500) and the shell's own.
type Config struct {
	link.Config
	// Tick is the pacing and statistics interval (default 250ms) while
	// anything is queued or happening; an idle bridge does not tick.
	Tick time.Duration
	// RingLen is the TAP's txqueuelen: the ring between the qdisc and the
	// daemon (default DefaultTxQueueLen).
	RingLen int
	// PreciseTimer wakes the loop for the engine's deadlines with a timerfd
	// (internal/precise) instead of a time.Timer, which the runtime may fire
	// up to a millisecond late: the MAC's slots and inter-frame spaces are a
	// few hundred microseconds at 115200 bit/s. The daemon sets it; the
	// tests, which run the bridge in synctest bubbles, leave it off. Where
	// no timerfd exists the bridge logs nothing and uses a time.Timer.
	PreciseTimer bool
	// OnLinkUp, if set, is called once, when the link comes up (the
	// modem's first Up), with what the link then knows. It runs on the
	// loop's goroutine and must not block: the daemon starts a goroutine
	// for the netlink work it does with it.
	OnLinkUp func(LinkUp)
}

// LinkUp is what Config.OnLinkUp is told.
type LinkUp struct {
	Info phy.Info // the modem's figures
	// AckTimeout is the link ARQ's Ack timeout at start (0 without ARQ):
	// a unicast frame lost on air once is sent again about this later.
	AckTimeout time.Duration
}

// Bridge moves frames between a TAP and a PHY. Create it with New and run it
// with Run; Stats may be called from any goroutine.
type Bridge struct {
	cfg    Config
	tap    TAP
	phy    PHY
	shaper Shaper

	statsReq chan chan Stats

	mu     sync.Mutex // guards last and lastAt
	last   Stats      // the loop's snapshot at its last tick, and when Run returned
	lastAt time.Time  // when last was taken (zero: never)
}

// New checks the configuration and returns a Bridge. shaper may be nil (no
// qdisc management: the policy still decides when the TAP is read).
func New(cfg Config, tap TAP, p PHY, shaper Shaper) (*Bridge, error) {
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 250 * time.Millisecond
	}
	if cfg.RingLen <= 0 {
		cfg.RingLen = DefaultTxQueueLen
	}
	if _, err := link.New(cfg.Config); err != nil { // the engine's checks, once
		return nil, err
	}
	return &Bridge{cfg: cfg, tap: tap, phy: p, shaper: shaper, statsReq: make(chan chan Stats)}, nil
}

// RealTimeSlot is the shortest contention slot the daemon uses
// (link.RealTimeSlot).
const RealTimeSlot = link.RealTimeSlot

// DefaultMAC is the MAC configuration of the daemon and the simulator alike
// (link.DefaultMAC, the single source).
func DefaultMAC(bitRate int, policy Policy) csma.Config { return link.DefaultMAC(bitRate, policy) }

// DefaultTxQueueLen is the txqueuelen slided gives its TAP: small, so that
// little hides in the ring where it no longer counts against the senders.
const DefaultTxQueueLen = 16

// Stats returns a snapshot of the counters. While Run is running it asks the
// loop; if the loop does not answer within a second (it is stalled), or
// after Run returned, it returns the snapshot the loop took at its last tick
// (or on return), with StaleSeconds saying how old it is, never a zero one.
// (An idle loop does not tick, but it answers: its snapshot is live.)
func (b *Bridge) Stats() Stats {
	reply := make(chan Stats, 1)
	select {
	case b.statsReq <- reply:
		return <-reply
	case <-time.After(time.Second):
		b.mu.Lock()
		defer b.mu.Unlock()
		s := b.last
		if !b.lastAt.IsZero() {
			s.StaleSeconds = max(time.Since(b.lastAt).Seconds(), 1e-9)
		}
		return s
	}
}

// keep records s, taken at now, as the snapshot Stats falls back to.
func (b *Bridge) keep(now time.Time, s Stats) {
	b.mu.Lock()
	b.last, b.lastAt = s, now
	b.mu.Unlock()
}

type packet struct {
	buf []byte
	n   int
	err error
}

// Run moves frames until ctx is done or the TAP fails. It returns nil when
// ctx is done. A PHY that goes Down is waited for, not an error.
func (b *Bridge) Run(ctx context.Context) error {
	l, err := b.newLoop()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go l.reader(ctx, b.tap)
	err = l.run(ctx)
	now := time.Now()
	b.keep(now, l.snapshot(now))
	return err
}

// loop is the state owned by Run's goroutine: the engine and the I/O
// around it.
type loop struct {
	b       *Bridge
	log     zerolog.Logger
	eng     *link.Engine
	pacer   *pacer // nil until the engine has started
	tokens  chan []byte
	packets chan packet

	tokenOut bool // the reader holds a buffer
	// With a Credit (read ahead): the packets read, not yet handed to the
	// engine, oldest first (at most RingLen); their buffers when free;
	// whether the next packet to hand over was counted already (Taken).
	credit      Credit
	hostq       []packet
	free        [][]byte
	taking      bool
	takeAt      time.Time // while taking: when the Acks waited for are given up
	shell       shellStats
	baseSent    uint64 // shaper counters at start
	baseDropped uint64
	haveBase    bool
	rateErr     bool // a SetRate failure was logged already

	watch selfstall.Watch // when the loop expects to wake at the latest (expected): later is our own stall (wake)
	// stallLogged is when wake last logged a stall at info, and
	// stallsQuiet the stalls since, logged at debug: a process throttled
	// every second or two would otherwise log a line each time.
	stallLogged time.Time
	stallsQuiet int

	ticking  bool      // the pacing ticker runs
	active   bool      // an input came since the last tick
	lastTick time.Time // the last tick, real or accounted for by busy (zero: none yet)
}

// shellStats are the figures of Stats that the shell, not the engine, keeps.
type shellStats struct {
	ring         int
	ringDropped  uint64
	pacingRate   uint64
	shaperErrors uint64
}

func (b *Bridge) newLoop() (*loop, error) {
	e, err := link.New(b.cfg.Config)
	if err != nil {
		return nil, err
	}
	return &loop{
		b:       b,
		log:     b.cfg.Log,
		eng:     e,
		tokens:  make(chan []byte, 1),
		packets: make(chan packet, 1),
	}, nil
}

// reader reads the TAP, one frame per token. It exits when ctx is done (after
// its current Read returns) or when Read fails for good.
func (l *loop) reader(ctx context.Context, t TAP) {
	for {
		var buf []byte
		select {
		case <-ctx.Done():
			return
		case buf = <-l.tokens:
		}
		n, err := t.Read(buf[:cap(buf)])
		select {
		case l.packets <- packet{buf: buf, n: n, err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil && !isTemporary(err) {
			return
		}
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (l *loop) run(ctx context.Context) error {
	events := l.b.phy.Events()
	timer := newAlarm(l.b.cfg.PreciseTimer)
	defer timer.stop()
	tick := time.NewTicker(l.b.cfg.Tick)
	tick.Stop() // started by the first input (l.busy)
	defer tick.Stop()
	ethBuf := make([]byte, l.b.cfg.MTU+14)
	if l.b.cfg.Policy == Block {
		if c, ok := l.b.tap.(Credit); ok && c.GrantOnTake() {
			l.credit = c
		}
	}
	for {
		d, ok := l.eng.Deadline()
		if l.taking && !l.takeAt.IsZero() && (!ok || l.takeAt.Before(d)) {
			d, ok = l.takeAt, true
		}
		timer.set(d, ok)
		l.watch.Expect(time.Now(), l.expected(d, ok))
		if !l.tokenOut && l.credit == nil && l.eng.WantRead() {
			l.tokens <- ethBuf
			l.tokenOut = true
		}
		if !l.tokenOut && l.credit != nil && l.eng.Started() && len(l.hostq) < l.b.cfg.RingLen {
			l.tokens <- l.buffer()
			l.tokenOut = true
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("phy closed its events")
			}
			now := l.wake()
			l.busy(now, tick)
			started := l.eng.Started()
			var info phy.Info
			if ev.Kind == phy.Up {
				info = l.b.phy.Info()
			}
			if err := l.eng.Modem(now, ev, info); err != nil {
				return err
			}
			if !started && l.eng.Started() {
				l.started()
			}
			l.deliver(now)
			l.pump(now)
		case p := <-l.packets:
			l.tokenOut = false
			if l.credit == nil {
				ethBuf = p.buf
			}
			now := l.wake()
			if p.err != nil {
				if l.credit != nil {
					l.free = append(l.free, p.buf)
				}
				if isTemporary(p.err) {
					continue
				}
				if ctx.Err() != nil {
					// Shutting down: the caller may close the TAP as soon
					// as it has cancelled, and select picks among ready
					// cases at random.
					return nil
				}
				return fmt.Errorf("read tap: %w", p.err)
			}
			l.busy(now, tick)
			if l.credit != nil {
				l.hostq = append(l.hostq, p)
			} else {
				l.eng.Host(now, p.buf[:p.n])
			}
			l.deliver(now)
			l.pump(now)
		case <-timer.c:
			timer.fired()
			now := l.wake()
			l.busy(now, tick)
			l.pump(now)
		case now := <-tick.C:
			l.wake()
			l.tick(now, now.Sub(l.lastTick))
			l.lastTick = now
			l.b.keep(now, l.snapshot(now)) // what Stats returns while the loop stalls
			if !l.active && l.idle() {
				tick.Stop()
				l.ticking = false
			}
			l.active = false
		case reply := <-l.b.statsReq:
			reply <- l.snapshot(l.wake())
		}
	}
}

// stallLogEvery spaces wake's info lines about stalls (the rest go to debug
// and are counted in the next info line, and every one in arq's Stalls).
const stallLogEvery = time.Minute

// wake reads the clock as the loop wakes. Woken more than selfstall.Slack
// after the time its alarm was set for, the loop did not run meanwhile
// (SIGSTOP, a starved CPU, a long GC or swap): the engine is told before
// anything else at this wake-up, so that its ARQ does not count that time
// against its packets (link.Engine.Stalled, docs/backpressure.md "The
// bounded stall").
func (l *loop) wake() time.Time {
	now := time.Now()
	if late := l.watch.Stalled(now); late > 0 {
		l.watch = selfstall.Watch{}
		ev := l.log.Debug()
		if l.stallLogged.IsZero() || now.Sub(l.stallLogged) >= stallLogEvery {
			ev = l.log.Info().Int("stalls_since_last_line", l.stallsQuiet)
			l.stallLogged, l.stallsQuiet = now, 0
		} else {
			l.stallsQuiet++
		}
		ev.Str("late", late.Round(time.Millisecond).String()).
			Msgf("process was not running for at least %v; the link ARQ restarts its ack timers from now", late.Round(100*time.Millisecond))
		l.eng.Stalled(now, late)
	}
	return now
}

// expected is the latest the loop should wake, given its alarm for d (if
// ok): then, or while the pacing ticker runs (a frame in the MAC queue or
// on air, whose TxDone the engine waits for without a deadline), by its
// next tick, taken as two ticks after the last to allow for the ticker's
// phase. Zero: only an input wakes it (idle, nothing in flight).
func (l *loop) expected(d time.Time, ok bool) time.Time {
	if l.ticking && !l.lastTick.IsZero() {
		if t := l.lastTick.Add(2 * l.b.cfg.Tick); !ok || t.Before(d) {
			return t
		}
	}
	if !ok {
		return time.Time{}
	}
	return d
}

// alarm is the loop's timer for the engine's deadline. It is touched only
// when the deadline moves: the runtime keeps a moved timer's old time in
// its heap until that time and wakes the process for it, so re-arming it
// after every input cost wake-ups for nothing (docs/performance.md, "CPU
// under load"). Since Go 1.23 Reset and Stop leave no stale tick in t.C.
type alarm struct {
	t      *precise.Timer // a timerfd (Config.PreciseTimer) or the runtime's timer
	c      <-chan time.Time
	at     time.Time // what t is set for; zero: stopped (or fired)
	resets int       // how often t was set, for the tests
}

// newAlarm returns a stopped alarm: a timerfd if exact and the system has
// one, else a time.Timer.
func newAlarm(exact bool) *alarm {
	t := precise.Choose(exact)
	return &alarm{t: t, c: t.C}
}

// set arms the alarm for d, or stops it if !ok; it leaves the timer alone
// if it is set for d already.
func (a *alarm) set(d time.Time, ok bool) {
	if !ok {
		d = time.Time{}
	}
	if d.Equal(a.at) {
		return
	}
	a.t.Stop()
	if ok {
		a.t.Reset(time.Until(d))
		a.resets++
	}
	a.at = d
}

// fired notes that c was received from: the next set arms it again even
// for the same deadline.
func (a *alarm) fired() { a.at = time.Time{} }

// stop stops the alarm for good (the loop is ending).
func (a *alarm) stop() { a.t.Close() }

// busy notes an input at now: the pacing tick runs while inputs come (and
// for one more tick after the last). A stopped ticker starts again, and
// the pacer first takes the idle ticks it missed.
func (l *loop) busy(now time.Time, tick *time.Ticker) {
	l.active = true
	if l.ticking {
		return
	}
	l.ticking = true
	tick.Reset(l.b.cfg.Tick)
	if l.lastTick.IsZero() {
		l.lastTick = now
		return
	}
	missed := int(now.Sub(l.lastTick) / l.b.cfg.Tick)
	l.lastTick = l.lastTick.Add(time.Duration(missed) * l.b.cfg.Tick)
	if l.pacer == nil || l.b.shaper == nil || missed == 0 {
		return
	}
	if rate := l.pacer.idle(missed, l.b.cfg.Tick); uint64(rate) != l.shell.pacingRate {
		l.setRate(rate)
	}
}

// idle says whether the link is idle at a tick: nothing in the MAC queue,
// nothing the engine holds back from reading, the TAP's ring drained (or
// unknown). With no input either since the last tick, nothing changes
// until the next input, and the ticker may stop.
func (l *loop) idle() bool {
	if !l.eng.Started() {
		return true // nothing to pace; Up is an input
	}
	return l.eng.QueueDepth() == 0 && l.eng.WantRead() && l.shell.ring <= 0 && len(l.hostq) == 0
}

// started sets up the pacer once the engine knows the modem's figures.
func (l *loop) started() {
	if f := l.b.cfg.OnLinkUp; f != nil {
		f(LinkUp{Info: l.eng.Info(), AckTimeout: l.eng.AckTimeout()})
	}
	mc := l.eng.MACConfig()
	rate := l.eng.Info().BitRate
	l.pacer = newPacer(rate, mc.QueueLen, l.b.cfg.RingLen, phy.Airtime(l.eng.FrameCap(), rate))
	if l.b.shaper != nil {
		l.setRate(l.pacer.rate)
	}
}

// deliver writes the engine's frames for the host to the TAP.
func (l *loop) deliver(now time.Time) {
	for _, d := range l.eng.Deliveries() {
		_, err := l.b.tap.Write(d.Eth)
		l.eng.Written(now, d, err)
	}
}

// pump hands the engine, with a Credit, the packets read ahead while it
// wants them, and then lets it start a transmission if it wants one now.
// The hand-over comes first: when the Acks to a frame have come, a packet
// the grant at its TxDone released (a small flow's) joins the round in
// progress before the engine picks the next frame, which in a burst it
// does at once (docs/backpressure.md, "A small flow beside a greedy one").
func (l *loop) pump(now time.Time) {
	for l.credit != nil && l.handOver(now) {
	}
	l.transmit(now)
	// What the transmission changed (a place, a held packet) may let
	// the engine take more.
	for l.credit != nil && l.handOver(now) {
		l.transmit(now)
	}
	l.deliver(now) // what Poll released (a frame that waited for its sender's floor)
}

// handOver hands the engine one packet read ahead if it wants one now
// and reports whether it did. A place that frees is counted (Taken) at
// once; the packet is handed over once the Acks to the frame just sent
// have come, so that what the grant releases can be that packet.
func (l *loop) handOver(now time.Time) bool {
	if !l.taking && len(l.hostq) > 0 && l.eng.WantRead() {
		l.taking = true
		l.credit.Taken()
	}
	if until, ok := l.eng.AwaitingAck(now); ok {
		l.takeAt = until // the loop wakes then if no Ack comes
		return false
	}
	l.takeAt = time.Time{}
	if !l.taking || len(l.hostq) == 0 || !l.eng.WantRead() {
		return false
	}
	l.taking = false
	i := l.pick()
	p := l.hostq[i]
	l.hostq = append(l.hostq[:i], l.hostq[i+1:]...)
	l.eng.Host(now, p.buf[:p.n])
	l.free = append(l.free, p.buf)
	l.deliver(now)
	return true
}

// pick is the packet read ahead to hand to the engine next: the oldest
// of a flow with nothing queued in the engine (link.Engine.FlowQueued),
// else the oldest. A flow's packets keep their order: the first of a flow
// so chosen has none of its flow ahead of it.
func (l *loop) pick() int {
	for i, p := range l.hostq {
		if !l.eng.FlowQueued(link.FlowKey(p.buf[:p.n])) {
			return i
		}
	}
	return 0
}

// buffer is a buffer for the reader to read ahead into.
func (l *loop) buffer() []byte {
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b
	}
	return make([]byte, l.b.cfg.MTU+14)
}

// transmit lets the engine start a transmission if it wants one now.
func (l *loop) transmit(now time.Time) {
	frame, ok := l.eng.Poll(now)
	if !ok {
		return
	}
	if err := l.b.phy.Transmit(frame); err != nil {
		l.eng.Refused(now, err)
	}
}

// tick feeds the pacer and retunes the shaper.
func (l *loop) tick(now time.Time, dt time.Duration) {
	if !l.eng.Started() {
		return
	}
	delivered, saturated := l.eng.Tick()
	if l.b.shaper == nil {
		return
	}
	ring := -1
	sent, dropped, err := l.b.shaper.Released()
	if err == nil {
		reads := l.eng.HostReads()
		if !l.haveBase {
			// The ring is empty when the first tick runs only if
			// nothing was queued before; the error is bounded by the
			// ring length and corrected by the clamp below.
			l.baseSent, l.baseDropped, l.haveBase = sent-reads, dropped, true
		}
		r := int64(sent-l.baseSent) - int64(reads) - int64(dropped-l.baseDropped)
		if l.tokenOut && r > 0 {
			r-- // the reader may already hold one
		}
		if r < 0 {
			r = 0
		}
		ring = int(r) // with a Credit, the packets read ahead and not yet taken
		l.shell.ringDropped = dropped - l.baseDropped
	}
	l.shell.ring = ring
	depth := l.eng.QueueDepth()
	backlog := -1
	if ring >= 0 {
		backlog = ring + depth
	}
	rate := l.pacer.update(dt, delivered, saturated, backlog, ring)
	l.log.Debug().Uint64("delivered", delivered).Bool("saturated", saturated).Int("ring", ring).
		Int("queue", depth).Float64("rate", rate).Msg("pacing")
	l.setRate(rate)
}

func (l *loop) setRate(rate float64) {
	r := uint64(rate)
	if err := l.b.shaper.SetRate(r); err != nil {
		if !l.rateErr {
			l.log.Error().Err(err).Msg("cannot retune the shaping qdisc; keeping its last rate")
			l.rateErr = true
		}
		l.shell.shaperErrors++
		return
	}
	l.shell.pacingRate = r
}

func (l *loop) snapshot(now time.Time) Stats {
	s := l.eng.Stats(now)
	s.ReadPending = l.tokenOut
	s.Ring = l.shell.ring
	s.RingDropped = l.shell.ringDropped
	s.PacingRate = l.shell.pacingRate
	s.ShaperErrors = l.shell.shaperErrors
	return s
}
