// Package link is the link engine of one slided interface: everything
// between the host's Ethernet frames and the modem's bursts that decides
// anything, and nothing that waits. It owns the link ARQ (mac/arq), the
// authenticated envelope (auth), the frame decoder (framing), the CSMA MAC
// (mac/csma), the neighbour answers (neigh.go) and the count of other
// senders (senders.go).
//
// The engine is sans-I/O, in the style of mac/csma and mac/arq: every method
// takes the current time; it never reads a clock, sleeps, starts a goroutine
// or touches a device. The daemon (package bridge) drives it in real time,
// simbench and the tests in virtual time, and for a given seed and input
// sequence it makes the same decisions. An Engine is not safe for concurrent
// use: one goroutine owns it. Logging (Config.Log), a capture
// (Config.Capture) and the key state (Config.KeyState) are the only things
// it calls out to, and none may block: the key state takes requests for
// counters to be made durable and reports which are (auth.Reserver,
// auth.FloorSaver); the daemon's (auth.AsyncState) writes them to disk on a
// goroutine of its own.
//
// The pipeline, top to bottom as the code runs it:
//
//	Host(eth) ─► neighbour answer? ─► Compact ─► ARQ.Send (fragments) ─► Seal ─► AppendFrame ─► pend ─► MAC queue ─► Poll ─► (caller: modem Transmit)
//	(caller: TAP Write) ◄─ Deliveries ◄─ AppendEthernet ◄─ ARQ (reassembly, Acks ─► acks ─► MAC queue front) ◄─ Open ◄─ Decoder ◄─ Modem(Received)
//
// The driver's loop:
//
//	modem event:       e.Modem(now, ev, info)      (info is read at Up)
//	host frame:        e.Host(now, eth)             (when e.WantRead(), with policy Block)
//	after each input, and when e.Deadline() passes:
//	    for each d in e.Deliveries(): write d.Eth to the host; e.Written(now, d, err)
//	    if frame, ok := e.Poll(now); ok { err := modem.Transmit(frame); if err != nil { e.Refused(now, err) } }
//
// Bursts: when the modem reports phy.Info.MaxBurstFrames > 1 (a KISS TNC
// sends several frames in one key-up), what Poll returns may be several
// frames back to back, each self-delimited: Acks first, then data frames,
// whatever was ready when the MAC granted access (fillBurst). One TxDone
// ends them all. docs/modems.md ("Bursts") has the rules.
//
// Buffer ownership: eth passed to Host and ev.Data passed to Modem are only
// read during the call. A frame returned by Poll belongs to the engine; the
// caller may read it until the TxDone, Down or Refused that ends it (a modem
// copies it in Transmit). The Deliveries slice and its frames stay valid
// until the next call of Host, Modem or Poll; Written and the read-only
// methods (Stats, Deadline, WantRead, ...) do not disturb them. The outbox
// holds at most 256 frames: a driver that does not drain it loses the rest
// (counted as drops.tap_write).
//
// Every queue is bounded: frames waiting for the MAC (pend: at most two
// packets' fragments; acks: 16), packets waiting for an ARQ window (2), the
// MAC queue (MAC.QueueLen plus 2 places for Acks) and the host outbox.
//
// docs/link-arq.md has the formats; docs/architecture.md shows where the
// engine sits.
package link

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/arq"
	"github.com/slided/slided/mac/csma"
	"github.com/slided/slided/phy"
)

// AuthState keeps one key's counters across restarts (auth.AsyncState
// around an auth.StateFile). Its methods are called from the engine's
// goroutine and must not block: Reserve and SaveFloor ask for a write,
// Reserved and SavedFloor report what is durable. The engine seals only
// counters below Reserved and accepts a sender's counters only below its
// SavedFloor, asking for more when half of what it asked for is used;
// State is what was saved before the start (read, never written).
type AuthState interface {
	State() auth.State
	auth.Reserver
	auth.FloorSaver
}

// Capture records frames as they go on air and come off it (a pcap file).
// It is called from the engine's goroutine; payload is only lent for the
// call. It must not block (queue and drop; a capture that fails turns
// itself off). With a Key, a received frame is passed only once it has
// passed authentication (forged, replayed, unsealed frames and frames for
// other nodes, which this node does not open, are left out).
type Capture interface {
	WriteLink(t time.Time, tx bool, h framing.Header, payload []byte)
}

// Config sets up an Engine.
type Config struct {
	Node   framing.NodeID
	MTU    int         // the host's MTU; Ethernet frames are up to MTU+14 bytes (0: 1500)
	MAC    csma.Config // zero value: MACFor the modem's Info and this Config
	Policy Policy      // default Block
	Seed   uint64      // seeds the MAC's random choices (0: from the node id and the time of Up)
	// FrameMax is the largest frame, in bytes on the wire, that the modem
	// carries (-frame-max). Larger packets travel as fragments. 0: the
	// modem's own limit (phy.Info.MaxFrame), or none.
	FrameMax int
	// NoARQ turns link acknowledgements and retransmission off for unicast.
	NoARQ bool
	// NoReorder hands unicast packets to the host as soon as each is
	// complete; by default those from one sender go in the order they
	// were sent (arq.Config.NoReorder, docs/link-arq.md "In order").
	NoReorder bool
	// PropDelay is the one-way propagation delay to the farthest node; it
	// lengthens the ARQ's acknowledgement timeout and, with the default
	// MAC (MACFor), the slot and the IFS. ARQ round trips that show a
	// longer delay lengthen them further (measuredDelay), never shorter.
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
	// WindowFromSenders sizes the deferral rule's contention window from
	// the number of other nodes heard sending (csma.MAC.Contenders) instead
	// of the MAC's deferral estimate: every node hears the same senders, so
	// two nodes sending both ways share the channel evenly, at the cost of
	// a full window before every frame while both send, which is costly
	// with short frames (docs/mac.md). With AdaptiveMAC it keeps the
	// deferral rule (the adaptive window is fair without it).
	WindowFromSenders bool
	// OrderedTurns turns on the adaptive window's ordered turns
	// (csma.Config.TurnFrame, for data frames of 64 bytes or more): after
	// a turn no other sender broke into, the backoff is half the window
	// instead of a draw. An option, off by default: docs/mac.md, "Turns in
	// order after a clean turn", says what it costs.
	OrderedTurns bool
	// AdaptiveMAC makes the default MAC (MACFor) the adaptive window of
	// csma.ConfigFor instead of the deferral rule: fair between nodes
	// sending both ways without WindowFromSenders, a small window for a
	// lone sender; slower for short frames under loss (docs/mac.md).
	AdaptiveMAC bool
	// NoNeighAnswer stops the engine from answering ARP requests and IPv6
	// neighbour solicitations for addresses of other nodes itself
	// (neigh.go); they then always go on air.
	NoNeighAnswer bool
	// Capture, if set, records every frame queued for the air and every
	// frame decoded from it.
	Capture Capture
	Log     zerolog.Logger
}

// check fills in defaults and refuses what cannot work.
func (cfg *Config) check() error {
	if cfg.Node == 0 || cfg.Node == framing.Broadcast {
		return fmt.Errorf("node id %d is reserved (use 1 to 254)", cfg.Node)
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.MTU < 68 || cfg.MTU > 9000 {
		return fmt.Errorf("mtu %d out of range 68..9000", cfg.MTU)
	}
	if cfg.Policy > DropHead {
		return fmt.Errorf("unknown policy %d", cfg.Policy)
	}
	if cfg.MAC != (csma.Config{}) {
		if err := cfg.MAC.Validate(); err != nil {
			return fmt.Errorf("mac config: %w", err)
		}
	}
	return CheckFrameMax(*cfg)
}

// txFrame is a frame on its way to the air: the encoded bytes and what the
// engine needs back when it leaves. It travels through pend, acks and the
// MAC queue as one value.
type txFrame struct {
	buf  []byte
	meta frameMeta
}

// Delivery is one Ethernet frame for the host (Deliveries).
type Delivery struct {
	// Eth is the frame; valid until the next Host, Modem or Poll.
	Eth []byte

	answer    bool           // a neighbour answer made here, not a packet from the air
	src       framing.NodeID // the node the packet came from
	authentic bool           // it opened under the key
}

// Engine is the link engine of one interface. Create it with New.
type Engine struct {
	cfg  Config
	log  zerolog.Logger
	mac  *csma.MACOf[txFrame] // nil until the modem's first Up
	dec  *framing.Decoder
	emit func(framing.Header, []byte)
	info phy.Info

	macCfg csma.Config
	// The link layer above the MAC (arq.go).
	arq       *arq.ARQ
	sealer    *auth.Sealer
	openers   []*auth.Opener
	frameMax  int       // effective largest frame on the wire (0: none)
	now       time.Time // time of the Received event being decoded (the decoder's callback has none)
	pend      []txFrame // encoded data frames waiting for room in the MAC
	acks      []txFrame // encoded Acks waiting for room (they go to the MAC queue's front)
	sendEth   int       // during Send: the Ethernet length of the packet, for its Last frame
	sendFlow  uint64    // during Send: the packet's flow (FlowKey), for its frames
	sendAck   bool      // during Send: the packet is a TCP segment without payload (ride.go)
	held      []heldPkt // packets waiting for an ARQ window, oldest first (at most maxHeld)
	sealBuf   []byte
	openBuf   []byte
	onAir     []txFrame      // the frames of the burst being transmitted (empty: none)
	burst     []byte         // the bytes of a burst of several frames (reused)
	ackDue    int            // Acks still expected for the polls of our last burst (the reservation ends at 0)
	solo      int            // transmissions still to go one frame each (after a refused burst)
	macBursts uint64         // the MAC's Stats().Burst after the last Poll that gave a frame
	turnLeft  int            // data frames the current turn may still send (turnFrames, senders.go); negative: no bound
	ackHold   time.Duration  // how long an Ack waits for data to ride with it (feed; 0: not at all)
	ackUntil  time.Time      // the Acks waiting in acks are held until then
	neigh     *neighTable    // nil with NoNeighAnswer
	senders   senders        // other nodes heard sending, for the MAC's window
	turns     turns          // behind a modem that senses no carrier: the others' turns (turns.go)
	overhear  []*auth.Opener // with a key: open frames for other nodes before they count as senders (one per key)
	overBuf   []byte
	ackWait   time.Duration // how long a poll reserves the channel for its Ack (csma.Reserve)
	firstRTO  time.Duration // the ARQ's Ack timeout at start (AckTimeout)
	navWait   time.Duration // how long a poll to another node keeps the channel for its Ack (nav.go; 0: never)
	navRide   time.Duration // of it, the room for broadcasts riding behind the Ack
	navAck    time.Duration // of it, the Ack's own time from the poll's end: airtime, turnaround, carrier lag and the delays
	nav       nav           // the virtual carrier sense and the broadcast held for a ride (nav.go)
	hidden    hiddenTurns   // turns with a hidden sender at a shared receiver (hidden.go)
	delays    delayWatch    // ARQ round trips for the MAC's timing (arq.go)
	ackAir    time.Duration // the airtime of one Ack on the wire (each further Ack of an answer burst)
	out       []Delivery    // the host outbox; its buffers are reused
	outTaken  bool          // Deliveries handed out the outbox: the next input empties it

	// The host's frames gathered into one burst behind a TNC (gather.go).
	hostAt, gatherFrom, gatherUntil time.Time

	up          bool
	free        [][]byte // encoded-frame buffers not in use
	frameCap    int
	carrierOn   bool
	carrierAt   time.Time
	txStart     time.Time
	stats       Stats
	tickDeliver uint64 // Ethernet bytes delivered this tick
	starved     bool   // the MAC ran out of frames during this tick
	busyLogged  bool   // a Transmit refused with phy.ErrBusy was logged already
	rxAuthentic bool   // the frame fromAir is handling opened under the key

	floorWait    []floorWaiting // frames that wait for their sender's floor (floorwait.go)
	floorRetryAt time.Time      // when they are opened again
	floorSlowLog time.Time      // last "floor not written in time" log line
	sealKeepAt   time.Time      // when our next reservation falls due (auth.Sealer.Keep)
	sealHold     bool           // the host is not read: our counters are being reserved (keepSeal)
	sealWaitFrom time.Time      // since when they have been
	sealSlowLog  time.Time      // last "counters not reserved in time" log line

	// Wire-format versions and header compression (version.go).
	vers    versions // each peer's version
	iphcBuf []byte   // a packet's compressed form (compress)

	// One Ack for several packets (arq.go, turns.go).
	ackDueAt   time.Time                // when the reservation for the Acks of ackDue ends: after it, they were lost (AwaitingAck)
	ackMore    [framing.AcksMaxLen]byte // an Ack with its More flag set (arqSink.Transmit)
	lastFlow   [256]lastPacket          // the last packet sent to each node, whose poll a group may hold (arq.go)
	flowGroups bool                     // groups of one burst, of one flow each (startLink)
	mixedHold  time.Duration            // packets poll one by one this long after a second flow was seen (arq.go)
	mixedUntil time.Time                // ... until then
	// Where the MAC does the access of a modem that takes bursts, data
	// frames go one per transmission until burstMixedUntil after a packet
	// of another flow than the last (fillBurst, Engine.send).
	burstFlow       uint64    // the last unicast packet's flow (sawFlow)
	burstFlowSet    bool      // ... if one was sent
	burstPrev       uint64    // the flow before it
	burstChanged    time.Time // when the flow last changed
	burstMixedUntil time.Time
	// There too, the host is not read during a long burst until near its
	// end (readLate).
	polled time.Time // the time of the last Poll (WantRead)
	readAt time.Time // no host reads before this

	stash stash // a pure TCP ACK held for thinning (tcpack.go)

	// The node our last Ack went to, and when it ended; the node whose
	// Ack to us began the reception being decoded (ride.go).
	rideDst    framing.NodeID
	rideAt     time.Time
	rideStream bool // the Ack before it went to rideDst too, shortly before
	rideFrom   framing.NodeID
	noRide     [256]bool      // the last data frame from the node rode: our Acks to it carry nothing
	dataFrom   framing.NodeID // the node whose data frame to us came last, and when (tcpack.go)
	dataAt     time.Time

	// With a key: the openers are Key's, then Key2's.
	sealErr  bool      // the last seal failed (logged once per episode)
	saveErr  bool      // the last save of a floor failed (likewise)
	ownIDLog time.Time // when another station with our id was last logged

	// settledPolls: polls of settled packets taken out of the queues
	// (arqSink.Settled), or of packets past their life (dropAged), for
	// the ARQ's TxDone once its call that settled them has returned.
	settledPolls []frameMeta
	// agedNext: no frame handed over ends its life (frameMeta.expires)
	// before it; zero: none has an end (dropAged).
	agedNext time.Time
}

// New checks cfg and returns an engine waiting for the modem's first Up.
func New(cfg Config) (*Engine, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	maxEth := cfg.MTU + 14
	e := &Engine{
		cfg:      cfg,
		log:      cfg.Log,
		frameCap: framing.MaxEncodedLen(maxEth + framing.FragHeaderLen + auth.Overhead),
	}
	// Any frame a node of this MTU sends fits: a whole packet in one
	// fragment, sealed.
	e.dec = framing.NewDecoder(maxEth + framing.FragHeaderLen + auth.Overhead)
	if !cfg.NoNeighAnswer {
		e.neigh = newNeighTable()
	}
	e.emit = e.fromAir // one method value, not one per Received event
	e.turnLeft = -1
	e.stats.Policy = cfg.Policy.String()
	e.stats.Node = int(cfg.Node)
	return e, nil
}

// start builds the MAC once the modem has told its figures (at its first Up).
func (e *Engine) start(now time.Time, info phy.Info) error {
	e.info = info
	cfg := e.cfg.MAC
	if cfg == (csma.Config{}) {
		var err error
		if cfg, err = MACFor(e.info, e.cfg); err != nil {
			e.log.Warn().Err(err).Msg("mac timing")
		}
		// A modem that takes bursts: room for a whole burst of data
		// frames, gathered while the last burst is on air.
		cfg.QueueLen = max(cfg.QueueLen, min(e.info.MaxBurstFrames, 64))
	}
	seed := e.cfg.Seed
	if seed == 0 {
		seed = uint64(now.UnixNano()) ^ uint64(e.cfg.Node)<<56
	}
	if err := e.startLink(now, cfg, seed); err != nil {
		return err
	}
	// Room for Acks in front of the data: the data limit stays QueueLen.
	macCfg := cfg
	macCfg.QueueLen += ackReserve
	m, err := csma.NewOf[txFrame](macCfg, rand.New(rand.NewPCG(seed, uint64(e.cfg.Node))))
	if err != nil {
		return fmt.Errorf("mac: %w", err)
	}
	e.mac = m
	e.macCfg = cfg
	e.startTurns(cfg)
	for i, k := range []*auth.Key{e.cfg.Key, e.cfg.Key2} {
		if k == nil {
			continue
		}
		o, err := auth.NewOpener(*k)
		if err != nil {
			return fmt.Errorf("auth: %w", err)
		}
		o.SetMode(e.cfg.KeyMode)
		// As old as the openers for our frames allow: the maximum age
		// and the floors saved before a restart (read, never written),
		// so that a replayed recording does not count as a sender.
		o.SetMaxAge(e.cfg.KeyMaxAge)
		if st := e.cfg.KeyState[i]; st != nil {
			s := st.State()
			o.Restore(&s.Recv)
		}
		e.overhear = append(e.overhear, o)
	}
	// A node counts as sending for four of the largest frames' airtime
	// (four bursts' with bursts) and a second after its last frame: long
	// enough to span the other nodes' turns on a busy channel. Counted in
	// frames, two senders with bursts of 4 at 115200 bit/s took each other
	// for gone after a few turns, and the one alone again (a small window)
	// kept the channel (bench -protocol link -flows 1:3,2:3 -duration 10m:
	// Jain 0.52; 0.997 with the bursts counted).
	//
	// A modem burst of several frames (Info.MaxBurstFrames) is one of the
	// MAC's transmissions, so on a channel where the MAC does the access
	// a burst's turn is that many frames longer: counted in single frames,
	// two senders on the simulated medium, whose client takes bursts of 16,
	// took each other for gone, and the one alone again (LoneBurst) kept
	// the channel (bench -flows 1:3,2:3 -duration 10m: Jain 0.60).
	turn := phy.Airtime(e.frameCap, e.info.BitRate)
	if e.info.MaxBurstFrames > 1 && !e.info.OwnAccess {
		turn = max(turn, min(time.Duration(e.info.MaxBurstFrames)*turn, burstAir(e.info)))
	}
	e.senders.window = 4*time.Duration(max(cfg.Burst, 1))*turn + time.Second
	e.stats.BitRate = e.info.BitRate
	e.log.Info().Int("bit_rate", e.info.BitRate).Int("max_frame", e.info.MaxFrame).Int("frame_max", e.frameMax).
		Bool("arq", !e.cfg.NoARQ).Bool("auth", e.sealer != nil).
		Dur("slot", cfg.SlotTime).Dur("ifs", cfg.IFS).Int("queue", cfg.QueueLen).
		Float64("idle_target", cfg.IdleTarget).Int("burst", cfg.Burst).Dur("prop_delay", cfg.PropDelay).
		Str("policy", e.cfg.Policy.String()).Msg("link up")
	return nil
}

// Started reports whether the modem's first Up has been handled: the MAC,
// the ARQ and the figures below exist only from then on.
func (e *Engine) Started() bool { return e.mac != nil }

// MACConfig is the MAC's configuration in use (QueueLen: data frames),
// once Started.
func (e *Engine) MACConfig() csma.Config { return e.macCfg }

// AckTimeout is the link ARQ's Ack timeout at start, once Started (0
// without ARQ): a unicast frame lost on air is sent again about this long
// later, until round trips measured shorten it.
func (e *Engine) AckTimeout() time.Duration { return e.firstRTO }

// Info is the modem's figures the engine started with.
func (e *Engine) Info() phy.Info { return e.info }

// FrameCap is the longest encoded frame the engine sends or accepts.
func (e *Engine) FrameCap() int { return e.frameCap }

// QueueDepth is the number of frames in the MAC queue, the one on air
// included.
func (e *Engine) QueueDepth() int {
	if e.mac == nil {
		return 0
	}
	return e.mac.Len()
}

// AwaitingAck reports whether the channel is kept for the Acks to the
// last transmission, and until when at most: until they have come (and
// opened the ARQ window for the next packet) or the reservation ends.
func (e *Engine) AwaitingAck(now time.Time) (until time.Time, ok bool) {
	return e.ackDueAt, e.ackDue > 0 && now.Before(e.ackDueAt)
}

// FlowQueued reports whether a packet of flow (FlowKey) waits in the
// engine: in the MAC queue or on air, for the MAC, or for an ARQ window.
func (e *Engine) FlowQueued(flow uint64) bool {
	if e.mac == nil {
		return false
	}
	for _, f := range e.pend {
		if f.meta.flow == flow {
			return true
		}
	}
	for _, p := range e.held {
		if p.flow == flow {
			return true
		}
	}
	if e.stashQueued(flow) { // tcpack.go
		return true
	}
	return e.mac.Queued(flow)
}

// HostReads is the number of frames Host has taken.
func (e *Engine) HostReads() uint64 { return e.stats.TAPReads }

// WantRead says whether the caller should read the host now. With policy
// Block it is true only while the MAC has a data place free, nothing waits
// outside it, no packet is held for an ARQ window, our counters are
// durable (sealHold, as of the last Poll) and, during a long burst where
// the MAC does the access, the burst is near its end (readLate: as of the
// last Poll, which Deadline asks for then); with the drop policies, always
// once Started. Host may be called regardless: the frame is then handled
// by the policy.
func (e *Engine) WantRead() bool {
	if e.mac == nil {
		return false
	}
	if e.cfg.Policy != Block {
		return true
	}
	return len(e.held) == 0 && len(e.pend) == 0 && e.mac.Room() > ackReserve && !e.polled.Before(e.readAt) && !e.sealHold
}

// readLead is how long before the end of a long burst on air the engine
// reads the host again (WantRead, readAt): two frames' airtime and
// readSlack, time for the host's next burst to come in before the MAC goes
// on with its own burst at TxDone.
func (e *Engine) readLead() time.Duration {
	return 2*phy.Airtime(e.frameCap, e.info.BitRate) + readSlack
}

// readSlack is the part of readLead for the host's reads themselves (a
// burst of 16 packets through the credit: 8 grants).
const readSlack = 50 * time.Millisecond

// readLate holds the host's reads back while a long burst formed at now
// is on air, until readLead before its end (WantRead): a place freed as
// the burst formed was filled at once with the next packet of the flow on
// air, so the next burst was whole before a packet of another flow, sent
// meanwhile, was read, and that packet waited for both bursts (a 64-byte
// datagram sent 2 s into a bulk flow: 1.5-1.7 s through the daemons,
// TestBackpressureSmallFlowDelay). Read late, it joins the next burst's
// queue in its flow's place, and the flows are known to interleave
// (mixedBursts) before that burst forms. Only where the MAC does the
// access of a modem that takes bursts: elsewhere the TNC or the MAC's own
// contention decides, and a frame's airtime is short.
func (e *Engine) readLate(now time.Time, air time.Duration) {
	if lead := e.readLead(); e.macDoesAccess() && air > 2*lead {
		e.readAt = now.Add(air - lead)
	}
}

// Deadline is when Poll must next be called if no input comes first; ok is
// false when only an input can change anything.
func (e *Engine) Deadline() (time.Time, bool) {
	if e.mac == nil {
		return time.Time{}, false
	}
	d, ok := e.mac.Deadline()
	if ok && d.Before(e.gatherUntil) {
		d = e.gatherUntil // the burst waits for the host's next frame (gather.go)
	}
	if ad, aok := e.arq.Deadline(); aok && (!ok || ad.Before(d)) {
		d, ok = ad, true
	}
	if len(e.acks) > 0 && e.ackHold > 0 && e.mac.Len() == 0 && len(e.pend) == 0 && (!ok || e.ackUntil.Before(d)) {
		d, ok = e.ackUntil, true // held Acks go then (feed)
	}
	if gd, gok := e.groupDeadline(); gok && (!ok || gd.Before(d)) {
		d, ok = gd, true // a group's poll goes then (flushGroups)
	}
	if rd, rok := e.rideDeadline(); rok && (!ok || rd.Before(d)) {
		d, ok = rd, true // a packet held for a ride goes then (ride.go)
	}
	if sd, sok := e.stashDeadline(); sok && (!ok || sd.Before(d)) {
		d, ok = sd, true // a TCP ACK held for thinning goes then (tcpack.go)
	}
	if bd, bok := e.broadcastDeadline(); bok && (!ok || bd.Before(d)) {
		d, ok = bd, true // a broadcast held for a ride goes then (nav.go)
	}
	if e.polled.Before(e.readAt) && (!ok || e.readAt.Before(d)) {
		d, ok = e.readAt, true // the host is read again then (readLate)
	}
	if sd, sok := e.sealDeadline(); sok && (!ok || sd.Before(d)) {
		d, ok = sd, true // our next reservation, or WantRead again (keepSeal, floorwait.go)
	}
	if fd, fok := e.floorDeadline(); fok && (!ok || fd.Before(d)) {
		d, ok = fd, true // frames waiting for their sender's floor are opened again then (floorwait.go)
	}
	return d, ok
}

// input starts the handling of an input: the outbox handed out before is
// emptied.
func (e *Engine) input() {
	if e.outTaken {
		e.out = e.out[:0]
		e.outTaken = false
	}
}

// Deliveries returns the frames for the host that the inputs and Polls
// since the last call produced (a Poll releases frames that waited for
// their sender's floor, floorwait.go), oldest first. The caller writes
// each to the host and reports the outcome with Written, in order; the
// frames stay valid until the next Host, Modem or Poll.
func (e *Engine) Deliveries() []Delivery {
	e.outTaken = true
	return e.out
}

// Written reports the outcome of writing d (from Deliveries) to the host:
// it counts the frame, and a packet from the air that claims an address
// teaches the neighbour table only once the host has it.
func (e *Engine) Written(now time.Time, d Delivery, err error) {
	switch {
	case err != nil:
		e.stats.Drops.TAPWrite++
		e.log.Debug().Err(err).Msg("write tap")
	case d.answer:
		e.stats.NeighAnswered++
	default:
		e.stats.RxFrames++
		e.stats.RxEthBytes += uint64(len(d.Eth))
		e.learnNeigh(now, d.src, d.authentic, d.Eth)
	}
}

// maxOut bounds the host outbox: a Received burst of many small frames
// fills it, a driver that drains after every input never reaches it.
const maxOut = 256

// outSlot appends a delivery to the outbox, reusing the buffer its slot had.
// It returns nil when the outbox is full (a driver that does not drain).
func (e *Engine) outSlot() *Delivery {
	n := len(e.out)
	if n >= maxOut {
		return nil
	}
	if n < cap(e.out) {
		e.out = e.out[:n+1]
	} else {
		e.out = append(e.out, Delivery{})
	}
	d := &e.out[n]
	d.answer, d.src, d.authentic = false, 0, false
	return d
}

// Modem handles one event from the modem. info is read at Up: the first Up
// starts the engine with the modem's figures, and an error then means the
// configuration cannot work with this modem.
func (e *Engine) Modem(now time.Time, ev phy.Event, info phy.Info) error {
	e.input()
	switch ev.Kind {
	case phy.Up:
		if e.mac == nil {
			if err := e.start(now, info); err != nil {
				return err
			}
		} else {
			e.log.Info().Msg("modem back up")
			e.mac.Carrier(now, false)
		}
		e.up = true
		e.stats.Up = true
	case phy.Down:
		e.log.Warn().Msg("modem down; holding frames until it returns")
		e.stats.PHYDowns++
		if e.mac != nil && e.mac.Transmitting() {
			e.stats.Drops.PHYDown++
			e.txEnded(now)
		}
		e.down(now)
	case phy.CarrierOn:
		if !e.carrierOn {
			e.carrierOn, e.carrierAt = true, now
			e.rideFrom = 0    // a transmission begins (ride.go)
			e.navOverrun(now) // nav.go
		}
		if e.mac != nil {
			e.mac.Carrier(now, true)
		}
	case phy.CarrierOff:
		if e.carrierOn {
			e.stats.ChannelBusy += now.Sub(e.carrierAt)
			e.carrierOn = false
		}
		if e.mac != nil && e.up {
			e.mac.Carrier(now, false)
			e.answerEnded(now)      // ride.go
			e.hiddenCarrierOff(now) // hidden.go
			e.navCarrierOff(now)    // nav.go
		}
	case phy.TxDone:
		if e.mac != nil && e.mac.Transmitting() {
			polls := 0
			for _, f := range e.onAir {
				m := f.meta
				e.stats.TxFrames++
				e.stats.TxBytes += uint64(len(f.buf))
				e.stats.TxEthBytes += uint64(m.eth)
				e.tickDeliver += uint64(m.eth)
				if m.poll {
					polls++
					e.hiddenSent(m.h.Dst) // hidden.go
				}
				if m.h.Kind == framing.KindAck {
					e.ackedAt(now, m.h.Dst) // ride.go
				}
			}
			if len(e.onAir) > 1 {
				e.stats.TxBursts++
			}
			if polls > 0 && e.ackWait > 0 {
				// The Acks answer at once (csma.EnqueueFront): keep
				// the channel for them.
				e.ackDue, e.ackDueAt = polls, now.Add(e.answerWait(polls))
				e.mac.Reserve(now, e.navEnd(e.ackDueAt)) // or longer, for another node's Ack (nav.go)
			}
			e.txEnded(now)
		}
	case phy.Received:
		e.stats.RxBursts++
		e.stats.RxWireBytes += uint64(len(ev.Data))
		e.now = now
		if e.info.MaxBurstFrames < 2 {
			// One reception is one transmission; a modem that takes
			// bursts hands up each of its frames as it ends, under
			// one carrier (ride.go).
			e.rideFrom = 0
		}
		e.dec.Feed(ev.Data, e.emit)
	}
	return nil
}

// down holds every transmission until the modem reports Up: after a Down
// event, or a Transmit refused with phy.ErrDown (the Down is then on its
// way). The MAC sees a busy channel, so it sets no deadline meanwhile.
// Down also ends the carrier as the modem reported it (phy.go).
func (e *Engine) down(now time.Time) {
	e.up = false
	e.stats.Up = false
	if e.carrierOn {
		e.stats.ChannelBusy += now.Sub(e.carrierAt)
		e.carrierOn = false
	}
	e.nav.pending = false // no carrier end will come for that poll (nav.go)
	if e.mac != nil {
		e.mac.Carrier(now, true) // nobody may transmit until Up
	}
}

// txEnded closes the current transmission and recycles its buffer.
func (e *Engine) txEnded(now time.Time) {
	e.stats.ChannelBusy += now.Sub(e.txStart)
	e.readAt = time.Time{} // the burst is over, however it ended (readLate)
	if e.cfg.WindowFromSenders || e.macCfg.IdleTarget > 0 {
		// The adaptive window uses only "nobody else": a lone sender's
		// small window (csma.MAC.Contenders).
		e.mac.Contenders(e.senders.count(now))
	}
	e.mac.TxDone(now)
	for i, f := range e.onAir {
		if k := f.meta.h.Kind; e.cfg.NoARQ && k != framing.KindAck && k != framing.KindHello {
			e.nav.overruns = 0 // our data went on air (navOverrun)
		}
		e.frameGone(now, f.meta) // sent or lost: the ARQ's timer recovers a loss
		if f.buf != nil {
			e.free = append(e.free, f.buf[:0])
		}
		e.onAir[i] = txFrame{}
	}
	e.onAir = e.onAir[:0]
	if e.mac.Len() == 0 {
		e.starved = true
	}
}

// Poll runs the timers due at now, moves waiting frames into the MAC and
// returns the frame (or burst of frames) to put on air now, if any. The caller hands it to the
// modem and reports a refusal with Refused; otherwise the modem's TxDone
// (or Down) ends it.
func (e *Engine) Poll(now time.Time) ([]byte, bool) {
	e.polled = now
	e.input()
	if e.mac == nil {
		return nil, false
	}
	if d, ok := e.arq.Deadline(); ok && !now.Before(d) {
		e.arq.Poll(now)
		e.hiddenLoss(now, e.hidden.polled, true) // hidden.go
	}
	e.retryHeld(now)
	if fd, ok := e.floorDeadline(); ok && !now.Before(fd) {
		e.openWaiting(now) // floorwait.go
	}
	e.keepSeal(now) // floorwait.go
	e.stashDue(now) // tcpack.go
	e.feed(now)
	e.dropAged(now) // no frame of a packet past its life goes on air
	if !e.up {
		return nil, false
	}
	if e.gatherHeld(now) {
		return nil, false // gather.go
	}
	f, ok := e.mac.Poll(now)
	if !ok {
		return nil, false
	}
	e.onAir, e.txStart = append(e.onAir[:0], f), now
	if e.info.MaxBurstFrames < 2 || e.solo > 0 {
		if e.solo == 0 {
			return e.fillRide(), true // small frames ride with an Ack (ride.go)
		}
		e.solo--
		return f.buf, true
	}
	if e.macDoesAccess() {
		// The data frame that won a contention goes alone; the MAC's
		// burst goes on with bursts of frames. Two contenders whose
		// countdowns end within the carrier's delay then collide on one
		// frame each, not on a burst each. It costs one hand-over to
		// the modem a contention.
		bursts := e.mac.Stats().Burst
		won := bursts == e.macBursts && f.meta.h.Kind != framing.KindAck
		e.macBursts = bursts
		if won {
			e.startTurn(now, len(f.buf))
			return f.buf, true
		}
	}
	return e.fillBurst(now), true
}

// burstAir is the longest airtime of one burst handed to the modem: the
// modem's own bound (Info.MaxBurstAir) if it gives one, else maxBurstAir.
func burstAir(info phy.Info) time.Duration {
	if info.MaxBurstAir > 0 {
		return info.MaxBurstAir
	}
	return maxBurstAir
}

// mixedBursts reports whether data frames go one per transmission, where
// the MAC does the access of a modem that takes bursts, because unicast
// flows interleave (sawFlow). A lone flow keeps the modem's bursts.
func (e *Engine) mixedBursts(now time.Time) bool {
	return e.macDoesAccess() && now.Before(e.burstMixedUntil)
}

// sawFlow notes a packet of flow to dst handed to the ARQ, for mixedBursts.
// When the flows interleave (a packet of the flow before the last change
// comes within the hold of that change: a greedy flow's next packet after a
// sparse flow's), data frames go one per transmission for the hold:
// mixedFrames frames' airtime plus one whole modem burst. The MAC queue
// holds about one burst, so while a burst is on air the engine reads
// nothing from the host, and the sparse flow's next packet is read only
// after the next burst has formed (with mixedFrames alone, the hold ran out
// during the burst and every burst was whole again). A flow that starts
// after another (a bulk transfer after the ARP exchange of a ping) keeps its
// bursts: counting any change cut the bulk benchmark's first 1.5 s to one
// frame a transmission. Broadcasts do not count (the hosts' neighbour
// discovery and routing hellos would cut a bulk flow's bursts), as for
// groups (Engine.send).
func (e *Engine) sawFlow(now time.Time, dst framing.NodeID, flow uint64) {
	if !e.macDoesAccess() || dst == framing.Broadcast {
		return
	}
	if e.burstFlowSet && e.burstFlow == flow {
		return
	}
	air := phy.Airtime(e.frameCap, e.info.BitRate)
	hold := mixedFrames*air + min(time.Duration(e.info.MaxBurstFrames)*air, burstAir(e.info))
	if e.burstFlowSet && flow == e.burstPrev && now.Sub(e.burstChanged) < hold {
		e.burstMixedUntil = now.Add(hold)
	}
	e.burstPrev, e.burstChanged = e.burstFlow, now
	e.burstFlow, e.burstFlowSet = flow, true
}

// macDoesAccess reports whether the engine's MAC alone decides when a
// burst goes on air and a key-up costs nothing (the simulated medium): the
// modem takes bursts but does no channel access of its own (OwnAccess) and
// has no turnaround to save.
func (e *Engine) macDoesAccess() bool {
	return e.info.MaxBurstFrames > 1 && !e.info.OwnAccess && e.info.Turnaround == 0
}

// fillBurst adds the frames that are ready to the one the MAC granted
// access to, so that the modem keys up once for all of them: Acks first
// (the MAC keeps them at its front), then data frames in order, whatever
// their destination, up to Info.MaxBurstFrames frames and maxBurstAir of
// airtime (Info.MaxBurstAir when the modem gives it); frames waiting outside
// the MAC (feed) join too. It returns the
// burst: the lone frame's own buffer, or the frames back to back in e.burst
// (each self-delimited, as the receiver's decoder and a modem that splits
// bursts expect).
func (e *Engine) fillBurst(now time.Time) []byte {
	air := phy.Airtime(len(e.onAir[0].buf), e.info.BitRate)
	limit := burstAir(e.info)
	// An Ack goes without contention (csma.EnqueueFront). Where the MAC
	// does the access and a key-up costs nothing (the simulated medium),
	// data frames behind it would skip their contention and save nothing:
	// each node answered the other's burst with a burst of its data, and
	// two answers that began at one instant collided
	// (TestEngineBothWaysBursts: 0.59 of the channel). Only Acks join an
	// Ack there, and TCP's small answers to its node (below). A TNC
	// (OwnAccess) contends for the whole burst itself, and where a key-up
	// costs time (Turnaround) data rides with the Ack to save one
	// (TestAckRidesWithData).
	acksOnly := e.macDoesAccess() && e.onAir[0].meta.h.Kind == framing.KindAck
	// And while unicast flows interleave (mixedBursts), no data frame
	// joins another: a burst of 16 is 1.2 s at 115200 bit/s,
	// and a sparse flow's packet read during it waited for the whole of
	// it and the next contention (TestSparseFlowNotBehindGreedy with the
	// modem's bursts: median 1.42 s, worst 2.14 s; through the daemons
	// TestBackpressureSmallFlowDelay read p95 1.85-2.6 s against 0.15 s
	// before the medium took bursts).
	single := e.mixedBursts(now)
	// And there, a burst's unicast frames go to one node: each node's
	// frames end with a poll, nodes polled in one burst answered at one
	// instant and their Acks collided, and a node sending to three others
	// kept 0.18 of the channel (TestEngineBurstOneReceiver; two flows
	// alternate one frame a transmission, mixedBursts, and never met it).
	oneNode := e.macDoesAccess()
	unicast := func(f txFrame) bool { return f.meta.h.Kind != framing.KindAck && f.meta.h.Dst != framing.Broadcast }
	var to framing.NodeID // the node the burst's unicast frames go to, once one is in it
	if unicast(e.onAir[0]) {
		to = e.onAir[0].meta.h.Dst
	}
	fits := func(f txFrame) bool {
		if acksOnly && f.meta.h.Kind != framing.KindAck {
			return false
		}
		if single && f.meta.h.Kind != framing.KindAck {
			return false
		}
		if oneNode && unicast(f) && to != 0 && f.meta.h.Dst != to {
			return false
		}
		if aged(now, f) {
			return false // (a group's poll just flushed: dropAged takes it out at the next Poll)
		}
		return air+phy.Airtime(len(f.buf), e.info.BitRate) <= limit
	}
	// And a turn sends at most its budget of data frames (turnFrames).
	maxFrames := e.info.MaxBurstFrames
	turn := oneNode && e.turnLeft >= 0 && e.onAir[0].meta.h.Kind != framing.KindAck
	if turn {
		maxFrames = min(maxFrames, max(e.turnLeft, 1))
	}
	for len(e.onAir) < maxFrames {
		f, ok := e.mac.Follow(now, fits)
		if !ok {
			e.feedBurst(now)
			if f, ok = e.mac.Follow(now, fits); !ok {
				break
			}
		}
		e.onAir = append(e.onAir, f)
		air += phy.Airtime(len(f.buf), e.info.BitRate)
		if to == 0 && unicast(f) {
			to = f.meta.h.Dst
		}
	}
	room := func(n int) bool {
		return len(e.onAir) < e.info.MaxBurstFrames && air+phy.Airtime(n, e.info.BitRate) <= limit
	}
	if dst := e.onAir[len(e.onAir)-1].meta.h.Dst; acksOnly && e.rides() && !e.noRide[dst] {
		// The one exception: TCP's small answers to the node the last
		// Ack goes to ride right behind it (ride.go). They are bounded
		// by the data that node sends us and never answer a ride
		// (noRide), so no node answers a burst with a burst of its
		// data.
		e.rideAnswers(dst, room, func(n int) { air += phy.Airtime(n, e.info.BitRate) })
	}
	// A broadcast frame rides behind our Acks, inside the channel the
	// others keep for them (nav.go).
	e.rideBroadcast(now, room)
	e.readLate(now, air) // a single data frame is never long enough
	if turn {
		e.spendTurn()
	}
	if len(e.onAir) == 1 {
		return e.onAir[0].buf
	}
	e.burst = e.burst[:0]
	for _, f := range e.onAir {
		e.burst = append(e.burst, f.buf...)
	}
	return e.burst
}

// maxBurstAir bounds a burst's airtime (bytes at the bit rate; a first
// frame longer than this goes alone): the other stations wait that long,
// and at 1200 bit/s eight 1000-byte frames would hold the channel for a
// minute. At 9600 bit/s it admits eight such frames, at 1200 one.
const maxBurstAir = 8 * time.Second

// answerWait is how long the channel is kept for the Acks to a burst that
// asked for polls of them: the first as for a lone poll (ackWait); more Acks
// make the answer longer by their airtime, and a receiver that has sent its
// first Ack before the rest of our burst arrived (a TNC decodes and hands
// up frame by frame) answers the rest in a second transmission.
func (e *Engine) answerWait(polls int) time.Duration {
	if polls <= 1 {
		return e.ackWait
	}
	return 2*e.ackWait + time.Duration(polls-1)*e.ackAir
}

// Refused handles a frame from Poll that the modem would not transmit, by
// the errors every modem wraps (phy.go). The frame is lost in every case:
// it ends as if sent (txEnded), so a fragment that asked for an Ack is sent
// again when the ARQ's timer runs out, and the MAC draws its next backoff.
func (e *Engine) Refused(now time.Time, err error) {
	if e.mac == nil || !e.mac.Transmitting() {
		return
	}
	switch {
	case errors.Is(err, phy.ErrDown):
		// The modem went down under us; its Down event follows (or is
		// queued already). Hold everything until its Up.
		e.stats.Drops.PHYDown++
		e.log.Warn().Err(err).Msg("transmit: modem down; holding frames until it returns")
		e.txEnded(now)
		e.down(now)
		return
	case errors.Is(err, phy.ErrBusy):
		// The loop transmits only after the last TxDone or Down: a modem
		// that says otherwise, or its driver, has a bug. Say so once.
		e.stats.Drops.PHYBusy++
		if !e.busyLogged {
			e.busyLogged = true
			e.log.Error().Err(err).Msg("transmit: the modem says a burst is still outstanding; a bug in the modem or the bridge (logged once, counted as drops.phy_busy)")
		}
	case errors.Is(err, phy.ErrTooLarge):
		e.stats.Drops.PHYTooLarge++
		e.log.Debug().Err(err).Int("frames", len(e.onAir)).Msg("transmit")
	case errors.Is(err, phy.ErrEmpty):
		e.stats.Drops.PHYEmpty++
		e.log.Debug().Err(err).Msg("transmit")
	default:
		e.stats.Drops.PHYError++
		e.log.Warn().Err(err).Msg("transmit")
	}
	if len(e.onAir) > 1 {
		// One frame may have cost the burst (one too long once the
		// modem escapes it): send as many transmissions one frame each,
		// so that the others get through while the ARQ resends them.
		e.solo = len(e.onAir)
	}
	e.txEnded(now)
}

// Tick returns the Ethernet bytes delivered to the air since the last Tick
// and whether the link was the bottleneck all along (a frame waited in the
// MAC for the whole interval), for the pacer; it starts a new interval.
func (e *Engine) Tick() (delivered uint64, saturated bool) {
	if e.mac == nil {
		return 0, false
	}
	delivered, saturated = e.tickDeliver, !e.starved && e.mac.Len() > 0
	e.tickDeliver = 0
	e.starved = e.mac.Len() == 0
	return delivered, saturated
}

// Stats returns a snapshot of the counters at now. Peers is a fresh slice;
// the rest is a copy.
func (e *Engine) Stats(now time.Time) Stats {
	s := e.stats
	s.KeyFingerprints = append([]string(nil), e.stats.KeyFingerprints...)
	if e.carrierOn {
		s.ChannelBusy += now.Sub(e.carrierAt)
	}
	if e.mac != nil {
		s.QueueDepth = e.mac.Len()
		s.QueueLen = e.macCfg.QueueLen
		s.MAC = e.mac.Stats()
		s.ARQ = e.arq.Stats()
		s.Peers = peers(e.arq, &e.vers, now)
		s.LinkQueue = len(e.pend) + len(e.acks)
		s.Holding = len(e.held) > 0
		s.FrameMax = e.frameMax
		s.Senders = e.senders.count(now)
	}
	if e.neigh != nil {
		s.NeighKnown = len(e.neigh.m)
	}
	d := e.dec.Stats()
	s.Decoder = d
	s.Drops.BadCRC = d.BadCRC
	s.Drops.Garbage = d.BadCOBS + d.TooLong + d.Short + d.BadVersion + d.BadAddr
	return s
}
