package tap

// This file holds the shaping qdisc as the daemon uses it: installed on the
// first rate the bridge's pacer sets, granted as the daemon reads
// (CreditTAP), with a fallback to the paced htb where the credit cannot be
// installed.

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// LazyShaper installs the shaping qdisc on first use; after that the
// credit, not the rate, carries backpressure (docs/backpressure.md): the
// bridge's SetRate only records the pacer's figure, and CreditTAP grants
// the next packets each time the daemon has read a grant's worth. Its
// methods are called from the bridge's loop (SetRate, Released) and reader
// (read) goroutines; Stats and Mode, from the control and metrics
// goroutines, Close and the grant watchdog's timer (watchdog) share its
// fields under mu.
type LazyShaper struct {
	dev        *Device
	log        zerolog.Logger
	ringLen    uint32
	stallLimit time.Duration
	stallAuto  bool // scale the stall limit to the link (autoStallLimit)
	mtu        int
	// install creates the qdisc; nil means NewShaper on dev.
	install func(ShaperConfig) (qdisc, error)
	kick    *Kicker // nil if it could not be opened
	forward *ForwardFilter
	fwLimit uint32
	sockets *SocketFilter

	mu        sync.Mutex
	s         qdisc
	failed    error
	reads     uint64 // packets read from the TAP since the qdisc was installed, kick frames aside
	sinceLast uint32 // of those (taken, with onTake), since the last grant
	held      uint32 // with onTake: packets read ahead and not yet taken
	inRead    bool   // the reader waits in Read: the ring is empty
	grantErr  error  // the last grant's error, logged once
	grantErrs uint64
	wmemAt    time.Time // when wmem_max was last read
	wmemMax   uint64
	paced     bool // the fallback: no credit, the htb paced by SetRate
	onTake    bool // the bridge reads ahead and reports what the engine takes (bridge.Credit)
	closed    bool
	// The grant watchdog (watchdog): when the last grant went out, what
	// had been read then, the delay before it is looked at again, the
	// timer (nil: not armed) and how often it granted again.
	grantAt      time.Time
	readsAtGrant uint64
	readAt       time.Time // when the last packet was read
	watchDelay   time.Duration
	watch        *time.Timer
	regrants     uint64
	// gsoErr is why the credit cannot cut UDP_SEGMENT skbs into their
	// segments (Shaper.GSOCut), for Mode; nil if it can.
	gsoErr error
	// capped is the wmem_max that the flow queues cannot hold within
	// their memory bound (flowLimit), for Mode; 0 if they hold it.
	capped uint64
	// hashed: the sockets are hashed into the flow queues (no socket
	// classifier), for Mode.
	hashed bool
	// wmem reads net.core.wmem_max (nil: from /proc; tests set it).
	wmem func() uint64
}

// LazyShaperConfig configures a LazyShaper.
type LazyShaperConfig struct {
	// RingLen is the TAP's txqueuelen.
	RingLen uint32
	// MTU is the TAP's MTU.
	MTU int
	// StallLimit is the credit's stall limit (ShaperConfig); with
	// StallAuto it is scaled to the link instead (autoStallLimit).
	StallLimit time.Duration
	StallAuto  bool
	// Kick, if not nil, wakes the qdisc after each grant (Kicker).
	Kick *Kicker
	// Forward and ForwardLimit: the queue of traffic no local socket
	// sends (ShaperConfig).
	Forward      *ForwardFilter
	ForwardLimit uint32
	// Sockets gives each local socket a flow bucket of its own
	// (ShaperConfig).
	Sockets *SocketFilter
}

// NewLazyShaper returns a LazyShaper for dev; it installs nothing before
// its first SetRate.
func NewLazyShaper(dev *Device, cfg LazyShaperConfig, log zerolog.Logger) *LazyShaper {
	return &LazyShaper{dev: dev, log: log, ringLen: cfg.RingLen, stallLimit: cfg.StallLimit,
		stallAuto: cfg.StallAuto, mtu: cfg.MTU, kick: cfg.Kick, forward: cfg.Forward, fwLimit: cfg.ForwardLimit,
		sockets: cfg.Sockets}
}

// qdisc is the shaping qdisc as LazyShaper uses it; *Shaper is one. Its
// methods may be called from several goroutines.
type qdisc interface {
	SetRate(bytesPerSec uint64) error
	Stats() (QdiscStats, error)
	Close() error
}

// granter is a qdisc with a credit (*Shaper).
type granter interface {
	Grant() error
	GrantSize() uint32
	SetFlowLimit(uint32) error
}

// wmemMax reads net.core.wmem_max, 0 if it cannot.
func wmemMax() uint64 {
	b, err := os.ReadFile("/proc/sys/net/core/wmem_max")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// readWmem reads net.core.wmem_max (0: unknown).
func (s *LazyShaper) readWmem() uint64 {
	if s.wmem != nil {
		return s.wmem()
	}
	return wmemMax()
}

// flowLimit sizes the flow queues from wmem_max and logs once if it must
// cap them.
func (s *LazyShaper) flowLimit(wmem uint64) uint32 {
	limit, capped := FlowLimitFor(wmem)
	s.capped = 0
	if capped {
		s.capped = wmem
		s.log.Warn().Uint64("wmem_max", wmem).Uint32("flow_limit", limit).
			Msg("net.core.wmem_max is too large to honour within the memory bound: a sender with a buffer that large and tiny packets may lose at its flow queue")
	}
	return limit
}

func (s *LazyShaper) SetRate(r uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	if s.s != nil {
		if s.paced {
			return s.s.SetRate(r)
		}
		// The credit carries backpressure; a rate change would be a
		// netlink request four times a second for nothing.
		return nil
	}
	install := s.install
	if install == nil {
		install = func(cfg ShaperConfig) (qdisc, error) { return NewShaper(s.dev.Index(), cfg) }
	}
	s.wmemMax, s.wmemAt = s.readWmem(), time.Now()
	ring := s.ringLen
	stall := s.stallLimit
	if s.stallAuto {
		stall = autoStallLimit(ring, s.mtu, r)
	}
	cfg := ShaperConfig{Rate: NoPacing, Burst: 2 * 1514, FlowLimit: s.flowLimit(s.wmemMax),
		RingLen: ring, StallLimit: stall, Forward: s.forward, ForwardLimit: s.fwLimit, Sockets: s.sockets}
	sh, err := install(cfg)
	if err != nil {
		// The best policy still available: the htb paced by the MAC, as
		// before the credit (no tbf or no size tables here).
		s.log.Error().Err(err).Msg("cannot install the credit qdisc; falling back to the paced htb, which drops in the TAP ring if the daemon stalls")
		cfg.NoCredit, cfg.Rate = true, r
		if sh, err = install(cfg); err != nil {
			s.failed = fmt.Errorf("backpressure qdisc unavailable, the TAP ring will drop when full: %w", err)
			return s.failed
		}
		s.paced = true
	}
	s.s = sh
	ev := s.log.Info().Uint64("wmem_max", s.wmemMax).Bool("credit", !s.paced)
	if g, ok := sh.(*Shaper); ok && !s.paced {
		ev = ev.Uint32("grant", g.GrantSize()).Float64("leak_packets_per_s", g.Leak()).Uint32("flow_limit", g.FlowLimit()).
			Dur("stall_limit", stall)
	}
	ev.Msg("shaping qdisc installed")
	if g, ok := sh.(interface{ GSOCut() (uint32, error) }); ok && !s.paced {
		if _, err := g.GSOCut(); err != nil {
			s.gsoErr = err
			s.log.Warn().Err(err).Msg("the credit cannot cut UDP_SEGMENT skbs into their segments: such a sender's bursts may overflow the TAP ring")
		}
	}
	if g, ok := sh.(*Shaper); ok && g.ForwardErr() != nil {
		s.log.Error().Err(g.ForwardErr()).Msg("no forward queue: traffic no local socket sends (forwarded) shares the flow queues, bounded only by their length")
	}
	if g, ok := sh.(*Shaper); ok && !g.SocketBuckets() {
		s.hashed = true
		if g.SocketsErr() != nil {
			s.log.Error().Err(g.SocketsErr()).Msg("no socket classifier: sockets are hashed into the flow queues, and those that share one take turns unfairly")
		}
	}
	return nil
}

// autoStallLimit is -stall-limit's default on a link that carries rate
// bytes/s with frames of up to mtu bytes: DefaultStallLimit, or longer
// where the leak (LeakRoom/limit packets a second) would come near what
// the link carries. A live daemon on such a link reads its TAP that slowly
// when saturated, and a leak as fast filled its ring and dropped (an
// acoustic modem at 2400 bit/s, both nodes sending: 14–16 ring drops in
// 120 s with the 60 s default). The leak is kept at an eighth of the
// link's rate in full-size frames, the lower the longer a stopped daemon's
// senders then wait: 7 minutes at 2400 bit/s, under 2 at 9600, the default
// from about 16,000 bit/s up.
func autoStallLimit(ring uint32, mtu int, rate uint64) time.Duration {
	room := LeakRoom(ring, DefaultGrant)
	if rate == 0 || room <= 1 || mtu < 1 {
		return DefaultStallLimit
	}
	perSecond := float64(rate) / float64(mtu+14) // full-size frames a second
	return max(DefaultStallLimit, time.Duration(8*room/perSecond*float64(time.Second)))
}

// read counts one packet read from the TAP and grants the next ones when
// a grant's worth has been read. A kick frame (kick) does not count: it
// leaves first after each grant and spends the grant's one extra token
// (Shaper). Called by the bridge's reader goroutine. When the bridge
// reads ahead (onTake), taken counts instead.
func (s *LazyShaper) read(kick bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inRead = false
	if kick {
		return
	}
	if _, ok := s.s.(granter); ok && !s.paced {
		s.reads++ // what left the ring (Released)
		s.readAt = time.Now()
		if s.onTake {
			s.held++
		}
	}
	if !s.onTake {
		s.count()
	}
}

// reading notes that the reader waits in Read (true), so the ring is
// empty, or that its Read failed (false).
func (s *LazyShaper) reading(in bool) {
	s.mu.Lock()
	s.inRead = in
	s.mu.Unlock()
}

// taken counts one packet the bridge handed to the engine, when it reads
// ahead (bridge.Credit): the grant follows what the link takes, not what
// was read, so the packets read ahead stay bounded by the credit.
func (s *LazyShaper) taken() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held > 0 {
		s.held--
	}
	s.count()
}

// holdBound is how many packets may wait read ahead when the next grant
// goes out (with onTake): two grants with their kicks. A grant usually
// lets Grant packets in, and the engine takes as many before the next;
// but a GSO skb that the credit cuts into its segments (Shaper.GSOCut)
// lets in as many segments as a grant's bytes hold (two of 1000 bytes,
// five of 500, twenty of 100), so counting takes alone, the read-ahead
// and then the ring grew by the difference at every grant until the ring
// dropped. Waiting until the read-ahead is back under the bound makes a
// grant that let more in pay for it with the takes that follow.
func holdBound(grant uint32) uint32 { return 2 * (grant + 1) }

// count counts one packet towards the next grant and grants when a
// grant's worth is counted. s.mu is held.
func (s *LazyShaper) count() {
	g, ok := s.s.(granter)
	if !ok || s.paced {
		return
	}
	s.sinceLast++
	if s.sinceLast < g.GrantSize() {
		return
	}
	if s.onTake && s.held > holdBound(g.GrantSize()) {
		return // the last grants let more in than was taken: take it first
	}
	s.watchDelay = 0 // the grants keep pace with the reads again
	if !s.grant(g) {
		return
	}
	if now := time.Now(); now.Sub(s.wmemAt) > 10*time.Second {
		s.wmemAt = now
		if w := s.readWmem(); w != 0 && w != s.wmemMax {
			was, capped := s.wmemMax, s.capped
			s.wmemMax = w
			if err := g.SetFlowLimit(s.flowLimit(w)); err != nil {
				// The old limit holds (Mode says so), and the next
				// look, 10 s on, tries again.
				s.wmemMax, s.capped = was, capped
				s.log.Error().Err(err).Msg("cannot resize the flow queues after wmem_max changed")
			} else {
				s.log.Info().Uint64("wmem_max", w).Msg("flow queues resized")
			}
		}
	}
}

// grant grants g the next packets and kicks the qdisc; it reports whether
// the grant went out. s.mu is held.
func (s *LazyShaper) grant(g granter) bool {
	s.sinceLast = 0
	if err := g.Grant(); err != nil {
		s.grantErrs++
		if s.grantErr == nil {
			s.log.Error().Err(err).Msg("cannot grant the shaping qdisc more packets; the TAP drains at the leak rate only")
		}
		s.grantErr = err
		return false
	}
	s.grantErr = nil
	if s.kick != nil {
		// Wake the tbf: a grant alone does not (Kicker).
		if err := s.kick.Kick(); err != nil && s.grantErrs == 0 {
			s.grantErrs++
			s.log.Error().Err(err).Msg("cannot kick the shaping qdisc after a grant")
		}
	}
	s.grantAt, s.readsAtGrant = time.Now(), s.reads
	if s.watchDelay == 0 {
		s.watchDelay = watchFirst
	}
	if s.watch == nil {
		s.watch = time.AfterFunc(s.watchDelay, s.watchdog)
	}
	return true
}

// The grant watchdog's delays: a grant's packets reach the reader within
// microseconds of the grant (it waits in Read), so a grant not wholly read
// after watchFirst lost some of them; the delay doubles at each grant the
// watchdog makes, up to watchMax (under the default leak's 6.7 s a packet).
const (
	watchFirst = 250 * time.Millisecond
	watchMax   = 4 * time.Second
)

// watchdog looks at the last grant once it is watchDelay old. Its packets
// may never reach the daemon (the ring dropped them, a kick was lost, the
// kernel dropped a packet between the qdisc and the ring), and then
// nothing is read, so nothing grants, until the leak (0.15 packets/s by
// default) lets the next ones in. It grants again, with the reader waiting
// on an empty ring (and the read-ahead within holdBound), if the grant was
// partly read (a sender was waiting for it) and nothing was read for a
// watchDelay, or, read not at all, the qdisc reports packets queued (one
// netlink dump). While the reader has no room it only looks again. A grant wholly unused with
// nothing queued ends it: the watchdog is armed again by the next grant
// only, so an idle daemon makes no netlink request (issue 11).
func (s *LazyShaper) watchdog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watch = nil
	g, ok := s.s.(granter)
	if !ok || s.paced || s.closed {
		return
	}
	if wait := s.watchDelay - time.Since(s.grantAt); wait > 0 {
		s.watch = time.AfterFunc(wait, s.watchdog) // granted since: look at that grant
		return
	}
	used := s.reads - s.readsAtGrant
	if used >= uint64(g.GrantSize()) {
		return // wholly read: the next grant follows the reads (or takes)
	}
	if !s.inRead || s.onTake && s.held > holdBound(g.GrantSize()) {
		// No room: the reader is busy or the read-ahead full. The reads
		// and takes to come grant; look again every watchMax at most (no
		// netlink request) in case they do not: a busy reader (the MAC
		// queue full on a slow link, the modem down) is when a ring
		// drops, so the watchdog must still be there when it comes back.
		s.backOff()
		return
	}
	if used > 0 && time.Since(s.readAt) < s.watchDelay {
		// Packets are still coming (a slow sender): the grant is being
		// read, not stuck. Look again; granting now would only double the
		// grants of every flow slower than a grant a watchDelay.
		s.watch = time.AfterFunc(s.watchDelay, s.watchdog)
		return
	}
	if used == 0 {
		grantAt, sh := s.grantAt, s.s
		s.mu.Unlock()
		st, err := sh.Stats()
		s.mu.Lock()
		if err != nil || st.Root.Qlen == 0 || s.closed || !s.grantAt.Equal(grantAt) || s.watch != nil {
			return // nothing waits, or a grant went out meanwhile
		}
	}
	s.regrants++
	s.log.Debug().Uint64("read", used).Uint64("regrants", s.regrants).
		Msg("granting again: the last grant's packets did not all reach the daemon")
	s.backOff()
	s.grant(g)
}

// backOff doubles the watchdog's delay up to watchMax and arms it. s.mu is
// held.
func (s *LazyShaper) backOff() {
	s.watchDelay = min(2*s.watchDelay, watchMax)
	if s.watch == nil {
		s.watch = time.AfterFunc(s.watchDelay, s.watchdog)
	}
}

// Released reports the packets read as released (with the credit, the ring
// holds at most a grant) and no ring drops: the TAP's tx_dropped is in
// status. It sends no netlink request, so an idle daemon does none.
func (s *LazyShaper) Released() (sent, dropped uint64, err error) {
	s.mu.Lock()
	sh, paced, reads := s.s, s.paced, s.reads
	s.mu.Unlock()
	if sh == nil {
		return 0, 0, errors.New("no shaping qdisc")
	}
	if !paced {
		return reads, 0, nil
	}
	q, err := sh.Stats()
	if err != nil {
		return 0, 0, err
	}
	ls, err := s.dev.LinkStats()
	if err != nil {
		return 0, 0, err
	}
	return q.Root.Packets, ls.TxDropped, nil
}

// Mode is how backpressure is carried, for status.
func (s *LazyShaper) Mode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paced {
		return "shaping qdisc paced by the MAC (fallback: no credit; a stalled daemon's TAP ring drops, and small packets may overflow it)"
	}
	m := "shaping qdisc with a credit granted as the daemon reads (zero host loss for blocking senders, but a UDP_SEGMENT sender's bursts of segments much smaller than a frame may overflow the TAP ring; past -stall-limit a stopped daemon's TAP drops slowly)"
	if s.gsoErr != nil {
		m += "; it cannot cut UDP_SEGMENT skbs into their segments (" + s.gsoErr.Error() + "): such a sender's bursts may overflow the TAP ring"
	}
	if s.hashed {
		m += "; sockets are hashed into the flow queues (no eBPF socket classifier): sockets that share a queue leave it one after the other"
	}
	if s.capped != 0 {
		limit, _ := FlowLimitFor(s.capped)
		m += fmt.Sprintf("; net.core.wmem_max %d is more than the flow queues hold (%d packets each): a sender with a buffer that large and tiny packets may lose at its flow queue", s.capped, limit)
	}
	return m
}

// CreditTAP is the TAP as the bridge reads it: each packet read counts
// towards the next grant.
type CreditTAP struct {
	*Device
	Shaper *LazyShaper // nil without a shaper
}

// GrantOnTake makes the credit count the packets the bridge hands to the
// engine (Taken) instead of those read (bridge.Credit); false without a
// shaper.
func (t CreditTAP) GrantOnTake() bool {
	if t.Shaper == nil {
		return false
	}
	t.Shaper.mu.Lock()
	t.Shaper.onTake = true
	t.Shaper.mu.Unlock()
	return true
}

// Taken counts one packet the engine took towards the next grant.
func (t CreditTAP) Taken() {
	if t.Shaper != nil {
		t.Shaper.taken()
	}
}

// Read returns the next frame that is not a kick frame (Kicker).
func (t CreditTAP) Read(p []byte) (int, error) {
	for {
		if t.Shaper != nil {
			t.Shaper.reading(true)
		}
		n, err := t.Device.Read(p)
		if t.Shaper == nil {
			return n, err
		}
		if err != nil {
			t.Shaper.reading(false)
			return n, err
		}
		kick := IsKick(p[:n])
		t.Shaper.read(kick)
		if !kick {
			return n, nil
		}
	}
}

// Stats reads the qdisc's counters for a status or a scrape, with the
// grant watchdog's count (QdiscStats.Regrants). It holds mu
// only to copy the fields: the netlink dump runs without it, so the loop's
// SetRate never waits for a scrape.
func (s *LazyShaper) Stats() (*QdiscStats, error) {
	s.mu.Lock()
	sh, failed, regrants := s.s, s.failed, s.regrants
	s.mu.Unlock()
	if failed != nil {
		return nil, failed
	}
	if sh == nil {
		return nil, nil
	}
	q, err := sh.Stats()
	q.Regrants = regrants
	return &q, err
}

// Close removes the qdisc, if it was installed.
func (s *LazyShaper) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.watch != nil {
		s.watch.Stop()
		s.watch = nil
	}
	if s.s != nil {
		return s.s.Close()
	}
	return nil
}
