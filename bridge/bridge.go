// Package bridge is the data path of one slided interface: it moves Ethernet
// frames between a TAP device and a modem (PHY) through the CSMA MAC, and it
// keeps the host's backlog where it pushes back on the sending applications.
//
//	TAP ──Read (only when the MAC has room)──► Compact ► ARQ.Send (fragments) ► Seal ► AppendFrame ► MAC queue ► PHY.Transmit
//	TAP ◄──Write──── AppendEthernet ◄── ARQ (reassembly, Acks) ◄── Open ◄── framing.Decoder ◄── PHY Received events
//
// The ARQ layer (mac/arq) cuts packets to the modem's largest frame and, for
// unicast, retransmits what is not acknowledged; Acks jump the MAC queue. The
// optional pre-shared key (package auth) seals every frame on air and drops
// every frame not sealed with it. docs/link-arq.md has the formats.
//
// Goroutines: Run's goroutine (the loop) owns the MAC, the decoder, every
// buffer and every counter. One reader goroutine blocks in TAP.Read, but only
// while it holds a read token the loop gave it; it exits when Run's context
// is done and its current Read returns (the caller closes the TAP after Run
// returns, which ends that Read).
package bridge

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/arq"
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
	// ErrEmpty; the loop branches on them (loop.refused).
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

// AuthState keeps one key's counters across restarts (auth.StateFile). Its
// methods are called from the loop goroutine; Reserve and SaveFloors write
// durably before they return.
type AuthState interface {
	State() auth.State
	auth.Reserver
	auth.FloorSaver
}

// Capture records frames as they go on air and come off it (a pcap file).
// It is called from the loop goroutine; payload is only lent for the call.
// It must not block (queue and drop; a capture that fails turns itself
// off). With a Key, a received frame is passed only once it has passed
// authentication (forged, replayed, unsealed frames and frames for other
// nodes, which this node does not open, are left out).
type Capture interface {
	WriteLink(t time.Time, tx bool, h framing.Header, payload []byte)
}

// Policy says what happens to packets when the link cannot keep up.
type Policy uint8

const (
	// Block reads the TAP only when the MAC has room; the backlog waits in
	// the qdisc and the senders' sockets block (backpressure).
	Block Policy = iota
	// DropTail reads the TAP at once and drops a new packet when the MAC
	// queue is full.
	DropTail
	// DropHead reads the TAP at once and drops the oldest queued packet when
	// the MAC queue is full: fresh data wins over stale data.
	DropHead
)

var policyNames = [...]string{"block", "drop-tail", "drop-head"}

func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ParsePolicy parses "block", "drop-tail" or "drop-head".
func ParsePolicy(s string) (Policy, error) {
	for i, n := range policyNames {
		if s == n {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("unknown policy %q (want block, drop-tail or drop-head)", s)
}

// Config sets up a Bridge.
type Config struct {
	Node   framing.NodeID
	MTU    int           // the TAP's MTU; Ethernet frames are up to MTU+14 bytes
	MAC    csma.Config   // zero value: csma.DefaultConfig of the PHY's bit rate
	Policy Policy        // default Block
	Seed   uint64        // seeds the MAC's random choices (0: from the node id and time)
	Tick   time.Duration // pacing and statistics interval (default 250ms)
	// RingLen is the TAP's txqueuelen: the ring between the qdisc and the
	// daemon (default DefaultTxQueueLen).
	RingLen int
	// FrameMax is the largest frame, in bytes on the wire, that the modem
	// carries (-frame-max). Larger packets travel as fragments. 0: the
	// PHY's own limit (phy.Info.MaxFrame), or none.
	FrameMax int
	// NoARQ turns link acknowledgements and retransmission off for unicast.
	NoARQ bool
	// PropDelay is the one-way propagation delay to the farthest node; it
	// lengthens the ARQ's acknowledgement timeout.
	PropDelay time.Duration
	// Key, if set, seals every frame sent and drops every frame received
	// that is not sealed with it (forged, replayed or unsealed).
	Key *auth.Key
	// Key2, with Key, is a second key frames are also opened with (never
	// sealed with): a key changeover (docs/operations.md).
	Key2 *auth.Key
	// KeyState[i], if set, keeps the counters of Key (i=0) and Key2 (i=1)
	// across restarts: without it a restart relies on the clock alone to
	// never reuse a counter, and accepts replays of frames its previous
	// life accepted (docs/link-arq.md).
	KeyState [2]AuthState
	// KeyMaxAge, if positive, refuses sealed frames whose counter is older
	// than the clock minus KeyMaxAge (auth.Opener.SetMaxAge).
	KeyMaxAge time.Duration
	// KeyMode is auth.Seal (frames encrypted and authenticated) or
	// auth.Sign (authenticated only, payload readable: amateur bands).
	KeyMode auth.Mode
	// WindowFromSenders sizes the MAC's contention window from the number
	// of other nodes heard sending (csma.MAC.Contenders) instead of the
	// MAC's deferral estimate: every node hears the same senders, so two
	// nodes sending both ways share the channel evenly, at the cost of a
	// full window before every frame while both send, which is costly
	// with short frames (docs/mac.md).
	WindowFromSenders bool
	// NoNeighAnswer stops the daemon from answering ARP requests and IPv6
	// neighbour solicitations for addresses of other nodes itself
	// (neigh.go); they then always go on air.
	NoNeighAnswer bool
	// Capture, if set, records every frame queued for the air and every
	// frame decoded from it (with a Key: every authenticated one).
	Capture Capture
	Log     zerolog.Logger
}

// Bridge moves frames between a TAP and a PHY. Create it with New and run it
// with Run; Stats may be called from any goroutine.
type Bridge struct {
	cfg    Config
	tap    TAP
	phy    PHY
	shaper Shaper

	statsReq chan chan Stats

	mu   sync.Mutex // guards last, for Stats after Run returned
	last Stats
}

// New checks the configuration and returns a Bridge. shaper may be nil (no
// qdisc management: the policy still decides when the TAP is read).
func New(cfg Config, tap TAP, p PHY, shaper Shaper) (*Bridge, error) {
	if cfg.Node == 0 || cfg.Node == framing.Broadcast {
		return nil, fmt.Errorf("node id %d is reserved (use 1 to 254)", cfg.Node)
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.MTU < 68 || cfg.MTU > 9000 {
		return nil, fmt.Errorf("mtu %d out of range 68..9000", cfg.MTU)
	}
	if cfg.Policy > DropHead {
		return nil, fmt.Errorf("unknown policy %d", cfg.Policy)
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 250 * time.Millisecond
	}
	if cfg.RingLen <= 0 {
		cfg.RingLen = DefaultTxQueueLen
	}
	if cfg.MAC != (csma.Config{}) {
		if err := cfg.MAC.Validate(); err != nil {
			return nil, fmt.Errorf("mac config: %w", err)
		}
	}
	if err := CheckFrameMax(cfg); err != nil {
		return nil, err
	}
	return &Bridge{cfg: cfg, tap: tap, phy: p, shaper: shaper, statsReq: make(chan chan Stats)}, nil
}

// CheckFrameMax reports whether cfg.FrameMax can carry a packet of the MTU
// in at most framing.MaxFragments fragments (with the key's envelope, if
// any). The PHY may lower the limit further at link up. New calls it; the
// command line calls it too, to refuse a bad limit before any setup.
func CheckFrameMax(cfg Config) error {
	if cfg.FrameMax < 0 {
		return fmt.Errorf("frame-max %d: must be positive (0: the modem's own limit)", cfg.FrameMax)
	}
	if cfg.FrameMax == 0 {
		return nil
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.Node == 0 {
		cfg.Node = 1 // only the sizes matter here
	}
	ac := arqConfig(cfg, cfg.FrameMax, arq.Timing{BitRate: 1200})
	if err := ac.Validate(); err != nil {
		return fmt.Errorf("frame-max %d: %w", cfg.FrameMax, err)
	}
	return nil
}

// Stats returns a snapshot of the counters. While Run is running it asks the
// loop; afterwards it returns the last snapshot.
func (b *Bridge) Stats() Stats {
	reply := make(chan Stats, 1)
	select {
	case b.statsReq <- reply:
		return <-reply
	case <-time.After(time.Second):
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.last
	}
}

type packet struct {
	buf []byte
	n   int
	err error
}

// Run moves frames until ctx is done or the TAP fails. It returns nil when
// ctx is done. A PHY that goes Down is waited for, not an error.
func (b *Bridge) Run(ctx context.Context) error {
	l := b.newLoop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go l.reader(ctx, b.tap)
	err := l.run(ctx)
	b.mu.Lock()
	b.last = l.snapshot(time.Now())
	b.mu.Unlock()
	return err
}

// loop is the state owned by Run's goroutine.
type loop struct {
	b       *Bridge
	log     zerolog.Logger
	mac     *csma.MAC
	macCfg  csma.Config
	dec     *framing.Decoder
	emit    func(framing.Header, []byte)
	info    phy.Info
	pacer   *pacer
	tokens  chan []byte
	packets chan packet

	// The link layer above the MAC (link.go).
	arq       *arq.ARQ
	sealer    *auth.Sealer
	openers   []*auth.Opener
	frameMax  int       // effective largest frame on the wire (0: none)
	now       time.Time // time of the input being handled, for the ARQ's sink
	pend      [][]byte  // encoded data frames waiting for room in the MAC
	acks      [][]byte  // encoded Acks waiting for room (they go to the MAC queue's front)
	meta      map[*byte]frameMeta
	lastQd    *byte     // key of the last frame the sink queued
	held      []heldPkt // packets waiting for an ARQ window, oldest first (at most maxHeld)
	sealBuf   []byte
	openBuf   []byte
	onAirMeta frameMeta
	neigh     *neighTable    // nil with NoNeighAnswer
	senders   senders        // other nodes heard sending, for the MAC's window
	overhear  []*auth.Opener // with a key: open frames for other nodes before they count as senders (one per key)
	overBuf   []byte
	neighBuf  []byte
	ackWait   time.Duration // how long a poll reserves the channel for its Ack (csma.Reserve)

	up          bool
	tokenOut    bool     // the reader holds a buffer
	free        [][]byte // encoded-frame buffers not in use
	frameCap    int
	rxBuf       []byte
	onAir       []byte // the frame being transmitted
	carrierOn   bool
	carrierAt   time.Time
	txStart     time.Time
	stats       Stats
	tickDeliver uint64 // Ethernet bytes delivered this tick
	starved     bool   // the MAC ran out of frames during this tick
	baseSent    uint64 // shaper counters at start
	baseDropped uint64
	haveBase    bool
	rateErr     bool // a SetRate failure was logged already
	busyLogged  bool // a Transmit refused with phy.ErrBusy was logged already
	rxAuthentic bool // the frame fromAir is handling opened under the key

	// With a key: the openers are Key's, then Key2's.
	sealErr  bool      // the last seal failed (logged once per episode)
	saveErr  bool      // the last save of a floor failed (likewise)
	ownIDLog time.Time // when another station with our id was last logged
}

func (b *Bridge) newLoop() *loop {
	maxEth := b.cfg.MTU + 14
	l := &loop{
		b:        b,
		log:      b.cfg.Log,
		tokens:   make(chan []byte, 1),
		packets:  make(chan packet, 1),
		frameCap: framing.MaxEncodedLen(maxEth + framing.FragHeaderLen + auth.Overhead),
		rxBuf:    make([]byte, 0, maxEth),
		meta:     make(map[*byte]frameMeta),
	}
	// Any frame a node of this MTU sends fits: a whole packet in one
	// fragment, sealed.
	l.dec = framing.NewDecoder(maxEth + framing.FragHeaderLen + auth.Overhead)
	if !b.cfg.NoNeighAnswer {
		l.neigh = newNeighTable()
	}
	l.emit = l.fromAir // one method value, not one per Received event
	l.stats.Policy = b.cfg.Policy.String()
	l.stats.Node = int(b.cfg.Node)
	return l
}

// start builds the MAC once the PHY has told its figures (at its first Up).
func (l *loop) start(now time.Time) error {
	l.info = l.b.phy.Info()
	cfg := l.b.cfg.MAC
	if cfg == (csma.Config{}) {
		cfg = DefaultMAC(l.info.BitRate, l.b.cfg.Policy)
	}
	if err := l.startLink(now, cfg); err != nil {
		return err
	}
	// Room for Acks in front of the data: the data limit stays QueueLen.
	macCfg := cfg
	macCfg.QueueLen += ackReserve
	seed := l.b.cfg.Seed
	if seed == 0 {
		seed = uint64(now.UnixNano()) ^ uint64(l.b.cfg.Node)<<56
	}
	m, err := csma.New(macCfg, rand.New(rand.NewPCG(seed, uint64(l.b.cfg.Node))))
	if err != nil {
		return fmt.Errorf("mac: %w", err)
	}
	l.mac = m
	l.macCfg = cfg
	for _, k := range []*auth.Key{l.b.cfg.Key, l.b.cfg.Key2} {
		if k == nil {
			continue
		}
		o, err := auth.NewOpener(*k)
		if err != nil {
			return fmt.Errorf("auth: %w", err)
		}
		o.SetMode(l.b.cfg.KeyMode)
		l.overhear = append(l.overhear, o)
	}
	l.pacer = newPacer(l.info.BitRate, cfg.QueueLen, l.b.cfg.RingLen, phy.Airtime(l.frameCap, l.info.BitRate))
	// A node counts as sending for four of the largest frames' airtime
	// and a second after its last frame: long enough to span the other
	// nodes' turns on a busy channel.
	l.senders.window = 4*phy.Airtime(l.frameCap, l.info.BitRate) + time.Second
	l.stats.BitRate = l.info.BitRate
	l.log.Info().Int("bit_rate", l.info.BitRate).Int("max_frame", l.info.MaxFrame).Int("frame_max", l.frameMax).
		Bool("arq", !l.b.cfg.NoARQ).Bool("auth", l.sealer != nil).
		Dur("slot", cfg.SlotTime).Dur("ifs", cfg.IFS).Int("queue", cfg.QueueLen).
		Str("policy", l.b.cfg.Policy.String()).Msg("link up")
	if l.b.shaper != nil {
		l.setRate(l.pacer.rate)
	}
	return nil
}

// RealTimeSlot is the shortest contention slot the daemon uses: carrier
// sense reaches the MAC through a socket or a serial port and a goroutine
// wake-up, which takes up to about a millisecond on a busy small board.
const RealTimeSlot = time.Millisecond

// DefaultMAC is csma.DefaultConfig for a channel of bitRate bit/s, adjusted
// for a daemon that runs in real time: the slot is at least RealTimeSlot and
// the IFS one slot; the contention window starts at 4 slots so that a lone
// sender keeps the channel over 90% busy even with millisecond slots, and
// grows by 16 slots per other busy sender heard, because with slots this
// short two contenders whose draws are one slot apart may still collide (the
// carrier reaches the other node up to a slot late). With policy Block the
// MAC queue is short (4 frames) so that the backlog waits in the qdisc,
// where it is shared fairly among flows and counts against the senders.
func DefaultMAC(bitRate int, policy Policy) csma.Config {
	c := csma.DefaultConfig(bitRate)
	c.SlotTime = max(c.SlotTime, RealTimeSlot)
	c.IFS = c.SlotTime
	c.CWMin = 4
	c.CWPerSender = 16
	if policy == Block {
		c.QueueLen = 4
	}
	return c
}

// DefaultTxQueueLen is the txqueuelen slided gives its TAP: small, so that
// little hides in the ring where it no longer counts against the senders.
const DefaultTxQueueLen = 16

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
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	tick := time.NewTicker(l.b.cfg.Tick)
	defer tick.Stop()
	lastTick := time.Now()
	ethBuf := make([]byte, l.b.cfg.MTU+14)
	for {
		// Since Go 1.23 Reset and Stop leave no stale tick in timer.C.
		timer.Stop()
		if l.mac != nil {
			d, ok := l.mac.Deadline()
			if ad, aok := l.arq.Deadline(); aok && (!ok || ad.Before(d)) {
				d, ok = ad, true
			}
			if ok {
				timer.Reset(time.Until(d))
			}
		}
		if l.mac != nil && !l.tokenOut && l.wantRead() {
			l.tokens <- ethBuf
			l.tokenOut = true
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("phy closed its events")
			}
			now := time.Now()
			if err := l.event(now, ev); err != nil {
				return err
			}
			l.pump(now)
		case p := <-l.packets:
			l.tokenOut = false
			ethBuf = p.buf
			now := time.Now()
			if p.err != nil {
				if isTemporary(p.err) {
					continue
				}
				return fmt.Errorf("read tap: %w", p.err)
			}
			l.fromTAP(now, p.buf[:p.n])
			l.pump(now)
		case <-timer.C:
			l.pump(time.Now())
		case now := <-tick.C:
			l.tick(now, now.Sub(lastTick))
			lastTick = now
		case reply := <-l.b.statsReq:
			reply <- l.snapshot(time.Now())
		}
	}
}

// wantRead says whether the reader should be given a token now.
func (l *loop) wantRead() bool {
	if l.b.cfg.Policy != Block {
		return true
	}
	return len(l.held) == 0 && len(l.pend) == 0 && l.mac.Room() > ackReserve
}

func (l *loop) event(now time.Time, ev phy.Event) error {
	switch ev.Kind {
	case phy.Up:
		if l.mac == nil {
			if err := l.start(now); err != nil {
				return err
			}
		} else {
			l.log.Info().Msg("modem back up")
			l.mac.Carrier(now, false)
		}
		l.up = true
		l.stats.Up = true
	case phy.Down:
		l.log.Warn().Msg("modem down; holding frames until it returns")
		l.stats.PHYDowns++
		if l.mac != nil && l.mac.Transmitting() {
			l.stats.Drops.PHYDown++
			l.txEnded(now)
		}
		l.down(now)
	case phy.CarrierOn:
		if !l.carrierOn {
			l.carrierOn, l.carrierAt = true, now
		}
		if l.mac != nil {
			l.mac.Carrier(now, true)
		}
	case phy.CarrierOff:
		if l.carrierOn {
			l.stats.ChannelBusy += now.Sub(l.carrierAt)
			l.carrierOn = false
		}
		if l.mac != nil && l.up {
			l.mac.Carrier(now, false)
		}
	case phy.TxDone:
		if l.mac != nil && l.mac.Transmitting() {
			l.stats.TxFrames++
			l.stats.TxBytes += uint64(len(l.onAir))
			l.stats.TxEthBytes += uint64(l.onAirMeta.eth)
			l.tickDeliver += uint64(l.onAirMeta.eth)
			if m := l.onAirMeta; m.frag {
				if m.head[0]&0x80 != 0 && m.h.Dst != framing.Broadcast && l.ackWait > 0 {
					// The Ack answers at once (csma.EnqueueFront): keep
					// the channel for it.
					l.mac.Reserve(now, now.Add(l.ackWait))
				}
			}
			l.txEnded(now)
		}
	case phy.Received:
		l.stats.RxBursts++
		l.stats.RxWireBytes += uint64(len(ev.Data))
		l.now = now
		l.dec.Feed(ev.Data, l.emit)
	}
	return nil
}

// down holds every transmission until the modem reports Up: after a Down
// event, or a Transmit refused with phy.ErrDown (the Down is then on its
// way). The MAC sees a busy channel, so it sets no deadline meanwhile.
// Down also ends the carrier as the modem reported it (phy.go).
func (l *loop) down(now time.Time) {
	l.up = false
	l.stats.Up = false
	if l.carrierOn {
		l.stats.ChannelBusy += now.Sub(l.carrierAt)
		l.carrierOn = false
	}
	if l.mac != nil {
		l.mac.Carrier(now, true) // nobody may transmit until Up
	}
}

// txEnded closes the current transmission and recycles its buffer.
func (l *loop) txEnded(now time.Time) {
	l.stats.ChannelBusy += now.Sub(l.txStart)
	if l.b.cfg.WindowFromSenders {
		l.mac.Contenders(l.senders.count(now))
	}
	l.mac.TxDone(now)
	l.frameGone(now, l.onAirMeta) // sent or lost: the ARQ's timer recovers a loss
	l.onAirMeta = frameMeta{}
	if l.onAir != nil {
		l.free = append(l.free, l.onAir[:0])
		l.onAir = nil
	}
	if l.mac.Len() == 0 {
		l.starved = true
	}
}

// pump lets the MAC start a transmission if it wants one now.
func (l *loop) pump(now time.Time) {
	if l.mac == nil {
		return
	}
	l.now = now
	if d, ok := l.arq.Deadline(); ok && !now.Before(d) {
		l.arq.Poll(now)
	}
	l.retryHeld(now)
	l.feed(now)
	if !l.up {
		return
	}
	frame, ok := l.mac.Poll(now)
	if !ok {
		return
	}
	key := &frame[:1][0]
	l.onAir, l.onAirMeta, l.txStart = frame, l.meta[key], now
	delete(l.meta, key)
	if err := l.b.phy.Transmit(frame); err != nil {
		l.refused(now, err)
	}
}

// refused handles a frame the modem would not transmit, by the errors every
// modem wraps (phy.go). The frame is lost in every case: it ends as if sent
// (txEnded), so a fragment that asked for an Ack is sent again when the
// ARQ's timer runs out, and the MAC draws its next backoff.
func (l *loop) refused(now time.Time, err error) {
	switch {
	case errors.Is(err, phy.ErrDown):
		// The modem went down under us; its Down event follows (or is
		// queued already). Hold everything until its Up.
		l.stats.Drops.PHYDown++
		l.log.Warn().Err(err).Msg("transmit: modem down; holding frames until it returns")
		l.txEnded(now)
		l.down(now)
		return
	case errors.Is(err, phy.ErrBusy):
		// The loop transmits only after the last TxDone or Down: a modem
		// that says otherwise, or this loop, has a bug. Say so once.
		l.stats.Drops.PHYBusy++
		if !l.busyLogged {
			l.busyLogged = true
			l.log.Error().Err(err).Msg("transmit: the modem says a burst is still outstanding; a bug in the modem or the bridge (logged once, counted as drops.phy_busy)")
		}
	case errors.Is(err, phy.ErrTooLarge):
		l.stats.Drops.PHYTooLarge++
		l.log.Debug().Err(err).Int("bytes", len(l.onAir)).Msg("transmit")
	case errors.Is(err, phy.ErrEmpty):
		l.stats.Drops.PHYEmpty++
		l.log.Debug().Err(err).Msg("transmit")
	default:
		l.stats.Drops.PHYError++
		l.log.Warn().Err(err).Msg("transmit")
	}
	l.txEnded(now)
}

// tick feeds the pacer and retunes the shaper.
func (l *loop) tick(now time.Time, dt time.Duration) {
	if l.mac == nil {
		return
	}
	saturated := !l.starved && l.mac.Len() > 0
	ring := -1
	if l.b.shaper != nil {
		sent, dropped, err := l.b.shaper.Released()
		if err == nil {
			if !l.haveBase {
				// The ring is empty when the first tick runs only if
				// nothing was queued before; the error is bounded by the
				// ring length and corrected by the clamp below.
				l.baseSent, l.baseDropped, l.haveBase = sent-l.stats.TAPReads, dropped, true
			}
			r := int64(sent-l.baseSent) - int64(l.stats.TAPReads) - int64(dropped-l.baseDropped)
			if l.tokenOut && r > 0 {
				r-- // the reader may already hold one
			}
			if r < 0 {
				r = 0
			}
			ring = int(r)
			l.stats.RingDropped = dropped - l.baseDropped
		}
		l.stats.Ring = ring
		backlog := -1
		if ring >= 0 {
			backlog = ring + l.mac.Len()
		}
		rate := l.pacer.update(dt, l.tickDeliver, saturated, backlog, ring)
		l.log.Debug().Uint64("delivered", l.tickDeliver).Bool("saturated", saturated).Int("ring", ring).
			Int("queue", l.mac.Len()).Float64("rate", rate).Msg("pacing")
		l.setRate(rate)
	}
	l.tickDeliver = 0
	l.starved = l.mac.Len() == 0
}

func (l *loop) setRate(rate float64) {
	r := uint64(rate)
	if err := l.b.shaper.SetRate(r); err != nil {
		if !l.rateErr {
			l.log.Error().Err(err).Msg("cannot retune the shaping qdisc; keeping its last rate")
			l.rateErr = true
		}
		l.stats.ShaperErrors++
		return
	}
	l.stats.PacingRate = r
}

func (l *loop) snapshot(now time.Time) Stats {
	s := l.stats
	if l.carrierOn {
		s.ChannelBusy += now.Sub(l.carrierAt)
	}
	if l.mac != nil {
		s.QueueDepth = l.mac.Len()
		s.QueueLen = l.macCfg.QueueLen
		ms := l.mac.Stats()
		s.MAC = ms
		s.ARQ = l.arq.Stats()
		s.Peers = peers(l.arq, now)
		s.LinkQueue = len(l.pend) + len(l.acks)
		s.Holding = len(l.held) > 0
		s.FrameMax = l.frameMax
		s.Senders = l.senders.count(now)
	}
	if l.neigh != nil {
		s.NeighKnown = len(l.neigh.m)
	}
	d := l.dec.Stats()
	s.Decoder = d
	s.Drops.BadCRC = d.BadCRC
	s.Drops.Garbage = d.BadCOBS + d.TooLong + d.Short + d.BadVersion + d.BadAddr
	s.ReadPending = l.tokenOut
	return s
}
