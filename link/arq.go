package link

// The link layer between the host and the MAC queue: fragmentation and ARQ
// (mac/arq), the authenticated envelope (auth), and the two waiting lines in
// front of the MAC.
//
// Waiting lines, in the order they are served:
//
//	acks  Acks, each put at the front of the MAC queue as soon as it has
//	      any room (ackReserve places are kept for them): an Ack waits
//	      behind the frame on air, never behind data.
//	pend  data frames (fragments, retransmissions, plain frames), moved
//	      into the MAC while it holds fewer than QueueLen frames.
//
// With policy Block the host is read only when pend is empty, the MAC has a
// data place free and no packet is held for the ARQ window, so a packet's
// fragments are all the backlog the daemon keeps (at most MaxFragments
// frames); the rest waits in the qdisc. A packet that finds its
// destination's ARQ window full is held (one packet) until an Ack or a
// timeout opens it.

import (
	"errors"
	"fmt"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/arq"
	"github.com/slided/slided/mac/csma"
	"github.com/slided/slided/phy"
)

// marginCW bounds the contention window, in slots, that the ack timeout's
// margin allows for: the deferral rule's CWMax. The adaptive window may
// reach 8192 slots with hundreds of busy nodes, but an 8-second margin at
// 1 ms slots would stretch every timeout and lifetime derived from it (an
// Ack is sent without backoff, and the timeout learns the round trips).
const marginCW = 128

// backoffSlot is the slot the ack timeout's margin counts marginCW of: the
// MAC's slot, but no longer than a radio slot at the modem's rate. A slot
// lengthened by a long propagation delay (-prop-delay, an acoustic profile)
// made the margin 128 such slots: a 133 s ack timeout at 1 s of water, and
// a packet lifetime of 80 minutes. The delay itself is in the timeout
// already, twice (Timing.Propagation), and the timeout learns the rest.
func backoffSlot(info phy.Info, mc csma.Config) time.Duration {
	radio := csma.ConfigFor(csma.Channel{BitRate: info.BitRate, MinSlot: RealTimeSlot}).SlotTime
	return min(mc.SlotTime, radio)
}

// noCarrierSerial bounds the time a frame of the link's largest size
// (frameCap, or frameMax if smaller) takes on a store-and-forward modem's
// serial line: its airtime, which holds for a line at least 1.25 times as
// fast as the air (10 bits a byte against 8). phy.Info does not carry the
// line's rate.
func noCarrierSerial(info phy.Info, frameCap, frameMax int) time.Duration {
	n := frameCap
	if frameMax > 0 {
		n = min(n, frameMax)
	}
	return phy.Airtime(n, info.BitRate)
}

// ackAirFor is the airtime of the largest Ack (with the key's envelope of
// seal bytes), at least the modem's shortest burst.
func (e *Engine) ackAirFor(seal int) time.Duration {
	return phy.Airtime(max(framing.MaxEncodedLen(framing.AckMaxLen+seal), e.info.MinBurst), e.info.BitRate)
}

// noCarrierJitter is the ARQ's RetryJitter behind a modem that senses no
// carrier (arq.Config.RetryJitter): each Ack timer waits up to a quarter
// of the timeout longer.
const noCarrierJitter = 0.25

// maxAckHold bounds how long an Ack waits for data to ride with it, behind
// a TNC that takes bursts (feed): long enough for the host to answer the
// packet just delivered (an echo, a TCP segment), short against the TNC's
// own access wait and the sender's ack timeout.
const maxAckHold = 30 * time.Millisecond

// ackReserve is the number of MAC queue places kept for Acks.
const ackReserve = 2

// maxAcks bounds the Acks waiting outside the MAC; beyond it the newest is
// dropped (the sender's timer recovers).
const maxAcks = 16

// frameMeta travels with a queued frame (txFrame): the Ethernet bytes it
// completes (for pacing and counters; only the frame the ARQ marks Last
// carries them), and for a poll (a fragment that asks for an Ack) the
// header and fragment header the ARQ wants back when it has left.
//
// An Ack carries the sequence number of the packet it answers (ackSeq), so
// that a newer Ack for the same packet can take the place of one still
// waiting (supersede).
type frameMeta struct {
	eth    int
	flow   uint64 // the packet's flow (FlowKey), for the MAC queue's rounds
	poll   bool
	ackSeq uint8
	multi  bool // an Ack of several records: never superseded
	tcpAck bool // a TCP segment without payload, which may ride with an Ack (ride.go)
	// unheld: a broadcast frame released from the hold for rides
	// (nav.go), which goes to the MAC as any other from then on.
	unheld bool
	// first: a unicast fragment marked First, of packet seq (Settled
	// takes it out of the queues once an Ack settles that packet).
	first bool
	seq   uint8
	// expires: the end of its packet's life (arq.Frame.Expires), zero
	// for none; at or after it the frame is dropped, not sent (dropAged).
	expires time.Time
	h       framing.Header
	head    [framing.FragHeaderLen]byte
}

// startLink builds the ARQ and the envelope once the PHY's figures are known.
func (e *Engine) startLink(now time.Time, mc csma.Config, seed uint64) error {
	cfg := e.cfg
	e.frameMax = cfg.FrameMax
	if m := e.info.MaxFrame; m > 0 && (e.frameMax == 0 || m < e.frameMax) {
		e.frameMax = m
	}
	// The receiver's Ack may wait for the frame it is sending, then IFS and
	// the widest backoff; a retransmission that comes too early costs one
	// fragment, one that comes too late costs idle time. A modem that does
	// its own channel access reports TxDone before the burst may have gone
	// (it waits for the channel inside the TNC), and the receiver's TNC may
	// hold a data frame in front of the Ack: two more frames. (Two frames
	// and the TNCs' access waits in all, tried on the Dire Wolf pair, gave
	// three times the spurious retransmissions.)
	frameAir := phy.Airtime(e.frameCap, e.info.BitRate)
	if e.frameMax > 0 {
		frameAir = phy.Airtime(min(e.frameCap, e.frameMax), e.info.BitRate)
	}
	oneAir := frameAir // the longest frame's
	if e.info.OwnAccess {
		frameAir *= 3
	}
	if e.info.MaxBurstFrames > 1 && !e.info.OwnAccess {
		// Where the MAC does the access of a modem that takes bursts,
		// the far node may be on air with a burst of its own (one that
		// continues its MAC's burst, without IFS) before its Ack: on
		// the simulated medium, two nodes sending to each other timed
		// out spuriously about 3 times a second with 64-byte frames at
		// 38400 bit/s (TestBenchLinkShortFramesBothWays).
		frameAir = max(frameAir, min(time.Duration(e.info.MaxBurstFrames)*frameAir, burstAir(e.info)))
	}
	t := arq.Timing{
		BitRate:     e.info.BitRate,
		Propagation: cfg.PropDelay,
		Turnaround:  e.info.Turnaround + e.info.CarrierLag,
		Margin:      mc.IFS + time.Duration(min(mc.CWMax, marginCW))*backoffSlot(e.info, mc) + frameAir + 50*time.Millisecond,
	}
	ac := arqConfig(cfg, e.frameMax, t)
	ac.Window = arqWindow(ac.Window, e.info, mc)
	// The longest a frame can wait in our queues: a window of packets'
	// fragments (retransmission rounds included) and the MAC queue.
	frags := (ac.MaxPacket + ac.MaxPayload - framing.FragHeaderLen - 1) / (ac.MaxPayload - framing.FragHeaderLen)
	one := phy.Airtime(min(e.frameCap, framing.MaxEncodedLen(ac.MaxPayload)), e.info.BitRate)
	t.QueueDelay = time.Duration(ac.Window*frags+mc.QueueLen+ackReserve) * one
	if e.info.OwnAccess {
		t.QueueDelay *= 3 // and the TNC's own queue and channel access
	}
	ac = arqConfig(cfg, e.frameMax, t)
	ac.Window = arqWindow(ac.Window, e.info, mc)
	// The sequence span and the reorder buffer's room follow the window;
	// its timeout (MaxAge + QueueDelay) comes from t with the other
	// lifetimes (arq.DefaultConfig).
	ac.SizeForWindow()
	if e.info.NoCarrier && !e.info.OwnAccess {
		// Two such nodes whose frames were lost to each other (each
		// modem keyed up while the other's frame arrived) must not time
		// out together and lose the retransmissions the same way.
		ac.RetryJitter = noCarrierJitter
		ac.Seed = seed
	}
	if e.info.OwnAccess {
		// Behind a TNC every round trip holds two p-persistent waits,
		// ours (TxDone is an estimate that leaves it out) and the far
		// TNC's before its Ack: geometric draws with a long tail, whose
		// late values Karn's rule keeps out of the estimate, so that
		// RTTVAR shrinks to the quick ones. The timeout keeps a margin
		// of tncWaitMargin mean waits above SRTT: without it, on the Dire
		// Wolf pair, a one-at-a-time echo timed out spuriously in about
		// one exchange in twenty (learned timeout 1.4 s against a round
		// trip of 1.0 s), and the retransmission keyed up into the late
		// answer (TestTNCEchoAckTimeout; docs/modems.md, "The echoes
		// that went unanswered").
		ac.RTTGranularity = max(ac.RTTGranularity, tncWaitMargin*e.info.AccessWait)
	}
	// Frames may wait in the MAC queue longer than the ack timeout: time
	// a round from its poll's TxDone (frameGone reports every poll).
	ac.ArmOnTxDone = true
	// A modem that takes bursts: the Acks to one burst are one sample.
	ac.BurstSamples = e.info.MaxBurstFrames > 1
	// Behind a TNC (a modem that does its own access and takes bursts) a
	// poll overtaken by a later poll's Ack goes again at once. Elsewhere
	// the timers stay in charge: on the simulated medium's bursts the rule
	// cost a lossy lone sender's turns 2.4 % (TestLossyLoneSender) and ten
	// nodes at a = 1 more retransmissions (0.026 -> 0.043 a datagram).
	ac.ResendOvertaken = ac.BurstSamples && e.info.OwnAccess
	// Towards version-2 peers, packets that go together share one poll
	// and one Ack (arqSink.Grouped; flushGroups decides when a group ends),
	// where a channel access costs much more than a frame (groupsPolls).
	ac.GroupPolls = groupsPolls(e.info, mc, cfg.NoARQ)
	if ac.GroupPolls && e.info.MaxBurstFrames < 2 && mc.Burst > 1 {
		// The MAC's bursts on a carrier-sense channel: a group is one
		// burst's worth of packets, polled by the last, so that its Ack
		// opens the window (arqWindow) for the next group while that
		// group is on air. Groups form only for a lone flow of a lone
		// sender (Engine.send).
		ac.MaxGroup = mc.Burst
		e.flowGroups = true
		e.mixedHold = mixedFrames * phy.Airtime(e.frameCap, e.info.BitRate)
		// Whether another flow sends too is not known yet: one by one
		// until a single flow has sent for mixedHold.
		e.mixedUntil = now.Add(e.mixedHold)
	}
	if !cfg.NoARQ {
		// After a poll the sender leaves the channel to the Ack: its
		// airtime, the round trip, the receiver's turnaround, its carrier
		// hang-over and two slots of scheduling latency. The same modem
		// settings are assumed at both ends.
		seal := 0
		if e.cfg.Key != nil {
			seal = auth.Overhead
		}
		e.ackWait = phy.Airtime(max(framing.MaxEncodedLen(framing.AckMaxLen+seal), e.info.MinBurst), e.info.BitRate) +
			2*cfg.PropDelay + e.info.Turnaround + 2*mc.SlotTime
		// The receiver sends its Ack when its carrier sense drops, which
		// with a hang-over is that long after our frame ended.
		e.ackWait += e.info.CarrierLag
		if e.info.NoCarrier && !e.info.OwnAccess {
			// A store-and-forward modem hands our frame up over its
			// serial line only once it has all of it, and takes the
			// Ack over the line before it keys up; ours hands the Ack
			// up the same way. Each takes at most the frame's airtime
			// (a line at least 1.25 times the air rate). Without this
			// the reservation ended before the Ack came, the next
			// frame keyed up and the half-duplex modem lost the Ack
			// (TestAcousticBothWaysTakeTurns with serial lines).
			e.ackWait += noCarrierSerial(e.info, e.frameCap, e.frameMax) + 2*e.ackAirFor(seal) + 2*measureSlack
		}
		// A TNC that does its own channel access keys the Ack up after its
		// p-persistent wait: twice the mean covers most of them. Without
		// the reservation our next frame and their Ack key up together
		// and collide (neither radio hears while it sends).
		e.ackWait += 2 * e.info.AccessWait
		// Each further Ack in the answer (to a burst of several polls).
		e.ackAir = phy.Airtime(max(framing.MaxEncodedLen(framing.AckMaxLen+seal), e.info.MinBurst), e.info.BitRate)
		// A TNC that takes bursts and waits for its p-persistent slot
		// anyway: hold an Ack a moment for the answer to ride with it
		// (feed), a small part of the TNC's own wait.
		if e.info.MaxBurstFrames > 1 && e.info.OwnAccess {
			e.ackHold = min(e.info.AccessWait/4, maxAckHold)
		}
	}
	if !cfg.NoARQ {
		e.firstRTO = ac.AckTimeout
	}
	seal := 0
	if cfg.Key != nil {
		seal = auth.Overhead
	}
	e.startNAV(seal, mc.SlotTime, cfg.PropDelay) // nav.go
	e.startHiddenTurns(mc, oneAir, seed)         // hidden.go
	a, err := arq.New(ac, (*arqSink)(e))
	if err != nil {
		return fmt.Errorf("frame-max %d: %w", e.frameMax, err)
	}
	e.arq = a
	if cfg.Key != nil {
		if err := e.startAuth(now); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	e.log.Info().Int("max_payload", ac.MaxPayload).Dur("ack_timeout", ac.AckTimeout).
		Dur("ack_timeout_min", ac.MinAckTimeout).Dur("ack_timeout_max", ac.MaxAckTimeout).Dur("max_age", ac.MaxAge).
		Dur("dup_lifetime", ac.DupLifetime).Bool("reorder", !ac.NoARQ && !ac.NoReorder).Dur("reorder_timeout", ac.ReorderTimeout).
		Int("max_retries", ac.MaxRetries).Int("window", ac.Window).Msg("link layer")
	return nil
}

// arqWindow is the ARQ window for the modem info and the MAC mc: for a
// modem that takes bursts, burstWindow; where the MAC sends bursts on a
// carrier-sense modem (and packets are grouped one burst each, startLink),
// three bursts' worth of packets (at most 64): the group on air, whose Ack
// has not come, the next one in the MAC queue, and the group being
// gathered outside it, so that the window is not what stops the host
// being read; the default window otherwise.
func arqWindow(window int, info phy.Info, mc csma.Config) int {
	if info.MaxBurstFrames > 1 {
		return burstWindow(window, info.MaxBurstFrames)
	}
	if mc.Burst > 1 && !info.NoCarrier && !info.OwnAccess {
		return min(max(window, 3*mc.Burst), 64)
	}
	return window
}

// burstWindow is the ARQ window for a modem that takes bursts of up to
// burst frames: two bursts' worth of packets (at most 64), so that the next
// burst fills the MAC queue while the last one waits for its Acks; the
// default window otherwise.
func burstWindow(window, burst int) int {
	if burst < 2 {
		return window
	}
	return min(max(window, 2*burst), 64)
}

// startAuth builds the Sealer (Key) and the Openers (Key, Key2), from the
// counters KeyState saved.
func (e *Engine) startAuth(now time.Time) error {
	cfg := e.cfg
	var saved uint64
	var r auth.Reserver
	if st := cfg.KeyState[0]; st != nil {
		saved, r = st.State().Send, st
	}
	var err error
	if e.sealer, err = auth.Resume(*cfg.Key, cfg.Node, now, saved, r); err != nil {
		return err
	}
	e.sealer.SetMode(cfg.KeyMode)
	for i, k := range []*auth.Key{cfg.Key, cfg.Key2} {
		if k == nil {
			continue
		}
		o, err := auth.NewOpener(*k)
		if err != nil {
			return err
		}
		if st := cfg.KeyState[i]; st != nil {
			s := st.State()
			o.Restore(&s.Recv)
			o.SetSaver(st)
		}
		o.SetMaxAge(cfg.KeyMaxAge)
		o.SetMode(cfg.KeyMode)
		e.openers = append(e.openers, o)
		e.stats.KeyFingerprints = append(e.stats.KeyFingerprints, auth.Fingerprint(*k))
	}
	e.log.Info().Strs("key_fingerprints", e.stats.KeyFingerprints).Bool("state", r != nil).
		Uint64("counter", e.sealer.Counter()).Dur("max_age", cfg.KeyMaxAge).Msg("frames sealed")
	e.keepSeal(now) // WantRead holds the host from the first reservation on (floorwait.go)
	return nil
}

// open unwraps a sealed frame with the first key that authenticates it and
// counts what it refuses; ok is false for a refused frame, or one that
// waits for its sender's floor (floorwait.go).
func (e *Engine) open(h framing.Header, payload []byte) (framing.Header, []byte, bool) {
	inner, plain, err := e.tryOpen(h, payload)
	if err == nil {
		return inner, plain, true
	}
	if !e.waitFloor(h, payload, err) {
		e.refused(h, err)
	}
	return h, nil, false
}

// tryOpen unwraps a sealed frame with the first key that authenticates it
// and counts the key; it counts nothing when it fails.
func (e *Engine) tryOpen(h framing.Header, payload []byte) (framing.Header, []byte, error) {
	if h.Kind != framing.KindSealed && h.Kind != framing.KindSigned {
		return h, nil, auth.ErrNotSealed
	}
	var err error
	for i, o := range e.openers {
		var inner framing.Header
		inner, e.openBuf, err = o.Open(e.now, e.openBuf[:0], h, payload)
		if err == nil {
			e.stats.KeyOpened[i]++
			if e.saveErr {
				e.saveErr = false
				e.log.Info().Msg("replay state saved again; accepting sealed frames")
			}
			return inner, e.openBuf, nil
		}
		if !errors.Is(err, auth.ErrForged) {
			break
		}
	}
	return h, nil, err
}

// refused counts (and logs, where that helps) a frame tryOpen refused
// with err.
func (e *Engine) refused(h framing.Header, err error) {
	switch {
	case errors.Is(err, auth.ErrNotSealed):
		e.stats.Drops.Unsealed++
	case errors.Is(err, auth.ErrReplay), errors.Is(err, auth.ErrTooOld), errors.Is(err, auth.ErrStale):
		e.stats.Drops.Replayed++
	case errors.Is(err, auth.ErrWrongMode):
		e.stats.Drops.KeyMode++
		if e.stats.Drops.KeyMode == 1 {
			e.log.Error().Err(err).Str("key_mode", e.cfg.KeyMode.String()).Msg("a frame in the other key mode (drops.key_mode)")
		}
	case errors.Is(err, auth.ErrNotSaved):
		e.stats.Drops.StateFailed++
		if errors.Is(err, auth.ErrPending) {
			// The sender's floor is being written, and the frame
			// could not wait for it (floorwait.go).
			e.log.Debug().Uint8("src", uint8(h.Src)).Msg("sender's floor not durable yet; frame refused (drops.state_failed)")
		} else if !e.saveErr {
			e.saveErr = true
			e.log.Error().Err(err).Msg("cannot save the replay state; refusing sealed frames until it can (drops.state_failed)")
		}
	default:
		e.stats.Drops.AuthFailed++
	}
}

// ownID checks a frame that carries our own node id: with a key, one that
// is authentic but was not sealed here (auth.Sealer.Foreign) comes from
// another station using our id and key. It is counted and logged, at most
// once a minute; everything else with our id is an echo.
func (e *Engine) ownID(h framing.Header, payload []byte) {
	if (h.Kind == framing.KindSealed || h.Kind == framing.KindSigned) && e.sealer != nil {
		for i, o := range e.openers {
			c, err := o.Verify(h, payload)
			if err != nil {
				continue
			}
			if i > 0 || e.sealer.Foreign(c) {
				e.stats.OwnIDHeard++
				if e.now.Sub(e.ownIDLog) >= time.Minute {
					e.ownIDLog = e.now
					e.log.Error().Int("node", int(e.cfg.Node)).Uint64("own_id_heard", e.stats.OwnIDHeard).
						Msg("another station sends with our node id and key: counters (nonces) may repeat; give every node its own id")
				}
				return
			}
			break
		}
	}
	e.stats.Drops.Echo++
}

// Host takes one Ethernet frame read from the host: a neighbour request
// the engine can answer goes back in the outbox (Deliveries); any other
// frame goes to the ARQ, or is held or dropped as the policy says. eth is
// only read during the call.
func (e *Engine) Host(now time.Time, eth []byte) {
	e.input()
	e.stats.TAPReads++
	e.hostAt = now // gather.go
	if e.mac == nil {
		// Not before the modem's first Up (WantRead is false until then).
		e.stats.Drops.PHYDown++
		return
	}
	if e.neigh != nil {
		// With a full outbox (a driver that does not drain) the request
		// goes on air instead.
		if d := e.outSlot(); d != nil {
			if r, ok := e.neigh.answer(d.Eth[:0], now, e.cfg.Node, eth); ok {
				d.Eth, d.answer = r, true
				return
			}
			e.out = e.out[:len(e.out)-1]
		}
	}
	if !e.stashACK(now, eth) { // tcpack.go
		e.hostPacket(now, eth)
	}
}

// hostPacket takes one Ethernet frame from the host that is not a
// neighbour request answered here: to the ARQ, or held or dropped as the
// policy says.
func (e *Engine) hostPacket(now time.Time, eth []byte) {
	e.sendAck = tcpAnswer(eth) // for its frame (ride.go)
	defer func() { e.sendAck = false }()
	h, payload, err := framing.Compact(eth, e.cfg.Node)
	if err != nil {
		if errors.Is(err, framing.ErrNoRoute) {
			e.stats.Drops.NoRoute++
		} else {
			e.stats.Drops.BadFrame++
		}
		return
	}
	h, payload = e.compress(now, h, payload) // version-2 peers only
	flow := FlowKey(eth)
	if e.cfg.Policy == Block && len(e.pend) >= framing.MaxFragments {
		// A driver that reads while WantRead is false: the daemon never
		// does (at most one packet's fragments wait here), but a queue
		// must not grow with what a caller does wrong.
		e.stats.Drops.QueueFull++
		return
	}
	holding := len(e.held) > 0
	if e.cfg.Policy != Block && (holding || len(e.pend) > 0 || e.mac.Room() <= ackReserve) {
		switch {
		case e.cfg.Policy == DropHead && holding:
			// The oldest packet waiting for its window gives way.
			e.stats.Drops.QueueHead++
			e.popHeld()
			e.hold(h, payload, len(eth), flow)
			return
		case e.cfg.Policy == DropHead && len(e.pend) == 0:
			if old, ok := e.mac.DropOldest(); ok {
				e.stats.Drops.QueueHead++
				e.recycle(now, old)
			}
		default:
			e.stats.Drops.QueueFull++
			return
		}
	}
	if holding {
		// Block: the reader already held a token when the window closed.
		// Keep packets in order behind the one waiting.
		e.hold(h, payload, len(eth), flow)
		return
	}
	if err := e.send(now, h, payload, len(eth), flow); errors.Is(err, arq.ErrWindowFull) {
		e.stats.WindowWaits++
		e.hold(h, payload, len(eth), flow)
	}
}

// maxHeld bounds the packets waiting for an ARQ window: with policy block
// the TAP is not read while one waits, but the reader may hold a token
// already, so a second one can arrive.
const maxHeld = 2

// heldPkt is a packet waiting for its destination's ARQ window.
type heldPkt struct {
	h    framing.Header
	data []byte
	eth  int
	flow uint64
	ack  bool // a TCP segment without payload (tcpAnswer)
}

// send passes one packet to the ARQ. It returns arq.ErrWindowFull for the
// caller to hold the packet; other errors are counted here.
func (e *Engine) send(now time.Time, h framing.Header, payload []byte, ethLen int, flow uint64) error {
	// For the frame the ARQ marks Last (arqSink.Transmit): with grouped
	// polls the last fragment of a packet may go with a later Send or
	// Flush, and then carries the bytes of every packet since.
	e.sendEth += ethLen
	// Groups of one burst (flowGroups) form only while one flow has been
	// sending (mixedHold): the MAC queue serves flows in rounds,
	// so a poll of another flow than its riders' could go before them
	// (and its Ack report them missing), and a packet of a sparse flow
	// read between a greedy flow's riders, which go back to back, would
	// wait for the next of them (TestSparseFlowNotBehindGreedy: 231 ms
	// against a limit of 157). Meanwhile every packet polls, as without
	// groups.
	grouping := true
	e.sawFlow(now, h.Dst, flow) // engine.go, mixedBursts
	if e.mixedBursts(now) {
		// Data frames go one per transmission (fillBurst), so each
		// packet polls: a group's poll would wait for the MAC queue to
		// empty, which a greedy flow keeps full, and the frames before
		// it timed out (28 spurious timeouts in 10 s of
		// TestSparseFlowNotBehindGreedy with the modem's bursts).
		grouping = false
		if e.arq.Open() {
			e.arq.Flush(now)
		}
	}
	if e.flowGroups {
		if l := e.lastFlow[h.Dst]; l.set && l.flow != flow {
			e.mixedUntil = now.Add(e.mixedHold)
		}
		// And only while no other node has sent unicast data within
		// the time the MAC counts senders over (4 bursts and a second):
		// between two senders a lost contention cost a group of riders
		// instead of one frame (seeds 2 and 3 of
		// TestBenchLinkTwoSendersLateCarrier: 68 collisions against 48,
		// 0.04-0.05 retransmissions per transmission), and a node that
		// kept the channel a while widened the gap to the other's share
		// (TestEngineTwoSendersAdaptiveFair, seed 1: Jain 0.978).
		// Broadcasts do not count, as they do for the MAC: through real
		// daemons the far node's kernel's neighbour discovery and MLD
		// kept groups off for most of a bulk transfer
		// (TestGroupsBesideOccasionalTraffic).
		grouping = !now.Before(e.mixedUntil) && !e.senders.unicastWithin(now, e.senders.window)
		if !grouping && e.arq.Open() {
			e.arq.Flush(now)
		}
	}
	e.sendFlow = flow // for its frames (arqSink.Transmit)
	err := e.arq.Send(now, h, payload)
	if err == nil && !grouping && e.arq.Open() {
		e.arq.Flush(now)
	}
	e.sendFlow = 0
	if err != nil {
		e.sendEth -= ethLen // nothing was sent
	} else if h.Dst != framing.Broadcast && !e.cfg.NoARQ {
		// Its last fragment may go later, with the next packet to
		// h.Dst or a Flush (grouped polls): it keeps this flow then.
		e.lastFlow[h.Dst] = lastPacket{seq: e.arq.LastSeq(h.Dst), flow: flow, set: true, ack: e.sendAck}
	}
	switch {
	case err == nil:
	case errors.Is(err, arq.ErrWindowFull):
	case errors.Is(err, arq.ErrTooBig):
		e.stats.Drops.TooBig++
	default:
		e.stats.Drops.BadFrame++
		e.log.Debug().Err(err).Msg("arq send")
	}
	return err
}

// hold keeps a copy of the packet until the ARQ window opens.
func (e *Engine) hold(h framing.Header, payload []byte, ethLen int, flow uint64) {
	if len(e.held) >= maxHeld {
		e.stats.Drops.QueueFull++ // not reached with policy block (see maxHeld)
		return
	}
	n := len(e.held)
	if n < cap(e.held) {
		e.held = e.held[:n+1] // reuse the buffer that slot had
	} else {
		e.held = append(e.held, heldPkt{})
	}
	p := &e.held[n]
	p.h, p.eth, p.flow, p.data = h, ethLen, flow, append(p.data[:0], payload...)
	p.ack = e.sendAck
}

// retryHeld offers the waiting packets to the ARQ again, oldest first.
func (e *Engine) retryHeld(now time.Time) {
	for len(e.held) > 0 {
		p := e.held[0]
		e.sendAck = p.ack
		err := e.send(now, p.h, p.data, p.eth, p.flow)
		e.sendAck = false
		if errors.Is(err, arq.ErrWindowFull) {
			return
		}
		e.popHeld()
	}
}

// popHeld removes the oldest held packet; its buffer moves behind the
// others for reuse, so that no two slots share one.
func (e *Engine) popHeld() {
	p := e.held[0]
	copy(e.held, e.held[1:])
	e.held[len(e.held)-1] = p
	e.held = e.held[:len(e.held)-1]
}

// feed moves waiting frames into the MAC queue: Acks to its front, data
// behind while fewer than QueueLen frames wait, each in its flow's place
// (enqueueData, by bytes on air): a packet of a flow with nothing queued
// goes next after the frame on air and one frame of each other flow,
// instead of behind a greedy flow's backlog.
//
// Behind a TNC that takes bursts, Acks wait up to ackHold while nothing else
// is ready (ackHeld): the packet that answers the one acknowledged (an echo,
// a TCP segment) is often a millisecond away, and rides in the same key-up.
func (e *Engine) feed(now time.Time) {
	for len(e.acks) > 0 && e.mac.Room() > 0 && !e.ackHeld(now) {
		f := e.acks[0]
		e.acks = e.acks[:copy(e.acks, e.acks[1:])]
		if err := e.mac.EnqueueFront(now, f); err != nil {
			e.recycle(now, f)
		}
	}
	e.releaseBroadcast(now) // held too long for a ride (nav.go)
	for range 2 {
		for len(e.pend) > 0 && e.mac.Room() > ackReserve && !e.rideHeld(now) {
			f := e.pend[0]
			if !f.meta.unheld && e.unholdFlow(now, f.meta.flow) {
				// Its flow's held broadcasts, older, go first (nav.go);
				// a frame released from the hold is older than those
				// still held.
				continue
			}
			e.pend = e.pend[:copy(e.pend, e.pend[1:])]
			if e.holdsBroadcast(now, f) {
				e.holdBroadcast(now, f) // for the ride with our next Ack (nav.go)
				continue
			}
			if err := e.enqueueData(now, f); err != nil {
				e.recycle(now, f)
			}
		}
		if !e.flushGroups(now, false) {
			break
		}
	}
}

// enqueueData puts data frame f in the MAC queue, in its flow's place
// (csma.MACOf.EnqueueFlowCost): the flows share the departures by bytes on
// air, so that a sparse flow's backlog of small packets goes before the
// greedy flow's next frame, not one per greedy frame.
func (e *Engine) enqueueData(now time.Time, f txFrame) error {
	return e.mac.EnqueueFlowCost(now, f, f.meta.flow, len(f.buf))
}

// ackHeld says whether the waiting Acks are held back for data to ride
// with (feed).
func (e *Engine) ackHeld(now time.Time) bool {
	return e.ackHold > 0 && now.Before(e.ackUntil) && e.mac.Len() == 0 && len(e.pend) == 0
}

// recycle takes back a frame that will not be sent.
func (e *Engine) recycle(now time.Time, f txFrame) {
	e.frameGone(now, f.meta)
	e.free = append(e.free, f.buf[:0])
}

// frameGone tells the ARQ that a fragment left the daemon, on air or not:
// a poll's Ack timer starts now (arq.Config.ArmOnTxDone).
func (e *Engine) frameGone(now time.Time, m frameMeta) {
	if m.poll && e.arq != nil {
		e.arq.TxDone(now, m.h, m.head[:])
	}
}

func (e *Engine) buffer() []byte {
	if n := len(e.free); n > 0 {
		b := e.free[n-1]
		e.free = e.free[:n-1]
		return b
	}
	return make([]byte, 0, e.frameCap)
}

// fromAir takes one frame from the decoder: it checks the address and the
// envelope and passes the frame to the ARQ, which delivers whole packets
// through arqSink.Deliver.
func (e *Engine) fromAir(h framing.Header, payload []byte) {
	e.rxAuthentic = false
	// With a key, only frames that pass authentication are captured (as
	// they were on air), so a keyless neighbour cannot fill the capture.
	if c := e.cfg.Capture; c != nil && e.openers == nil {
		c.WriteLink(e.now, false, h, payload)
	}
	airH, airPayload := h, payload
	if h.Ver() > e.vers.speaks() {
		e.stats.Drops.BadFrame++ // an older build's decoder refuses it (tests)
		return
	}
	if h.Src == e.cfg.Node {
		e.ownID(h, payload)
		return
	}
	if h.Dst != e.cfg.Node && h.Dst != framing.Broadcast {
		// A sender all the same, once authenticated (senders.go).
		e.overheard(h, payload)
		e.stats.NotForUs++
		return
	}
	if e.arq == nil { // nothing decodes before the link is up; be safe
		e.stats.Drops.BadFrame++
		return
	}
	switch {
	case e.openers != nil:
		if e.floorWaitingFrom(h.Src) {
			e.openWaiting(e.now) // its sender's frames keep their order
			if e.floorWaitingFrom(h.Src) {
				e.waitBehind(h, payload) // (floorwait.go)
				return
			}
		}
		inner, plain, ok := e.open(h, payload)
		if !ok {
			return
		}
		e.accepted(airH, airPayload, inner, plain, false)
	case h.Kind == framing.KindSealed || h.Kind == framing.KindSigned:
		e.stats.Drops.Sealed++
	default:
		e.accepted(airH, airPayload, h, payload, false)
	}
}

// accepted handles a frame for us (or broadcast), opened if there is a
// key, from its envelope (airH, airPayload) and what it carries (h,
// payload). late: it waited for its sender's floor (floorwait.go), and the
// channel timing it would have set when heard is not set now.
func (e *Engine) accepted(airH framing.Header, airPayload []byte, h framing.Header, payload []byte, late bool) {
	if e.openers != nil {
		e.rxAuthentic = true
		if c := e.cfg.Capture; c != nil {
			c.WriteLink(e.now, false, airH, airPayload)
		}
	}
	e.navFrom(e.now, h.Src) // authentic, when there is a key (nav.go)
	if late || !e.rode(h) { // ride.go
		e.heardSender(h.Src, h.Dst, h.Kind)
	}
	e.sendHello(e.now, h.Src, e.vers.heard(e.now, airH, h.Kind, payload, h.Dst == e.cfg.Node))
	if h.Kind == framing.KindHello && !e.vers.v1Only {
		return // version-1 builds count it as an ignored kind (arq.Stats.Ignored)
	}
	if late {
		// Its Acks advance the ARQ but give no round-trip sample (the
		// wait is not the channel's), and it sets no channel timing.
		e.arq.ReceiveLate(e.now, h, payload)
		e.settledGone(e.now)
		return
	}
	if h.Kind == framing.KindAck && h.Dst == e.cfg.Node {
		e.nav.overruns = 0          // our data got through (navOverrun)
		e.hiddenAcked(e.now, h.Src) // hidden.go
		// The Acks we kept the channel for: once all have come, it is
		// free again.
		if e.ackDue--; e.ackDue <= 0 {
			e.ackDue = 0
			e.mac.Reserve(e.now, e.reserveEnd(e.now))
		}
	}
	e.heard(e.now, h, payload) // no carrier: the others' turns (turns.go)
	e.riderHeard(e.now, h, payload)
	e.arq.Receive(e.now, h, payload)
	e.settledGone(e.now)
	if h.Kind == framing.KindAck && h.Dst == e.cfg.Node {
		e.measuredDelay(h.Src)
		e.hiddenLoss(e.now, h.Src, false) // hidden.go
	}
}

// riderHeard keeps the channel, on a modem that senses a carrier, for the
// frame that follows a rider (a fragment for us without a poll: more of
// its group comes at once, arq.Config.GroupPolls): for IFS, two slots and
// riderSlack. Through real daemons the gap between two frames of a burst
// (the sender's TxDone, its next Transmit, the modem) may outlast IFS, and
// a frame of ours that waited would start in it and collide with the next
// rider. Acks ignore the reservation; a longer one (our own Acks due) is
// kept.
func (e *Engine) riderHeard(now time.Time, h framing.Header, payload []byte) {
	if e.turns.on || e.info.OwnAccess || e.info.NoCarrier || h.Kind != framing.KindFragment || h.Dst != e.cfg.Node {
		return
	}
	f, _, err := framing.ParseFrag(payload)
	if err != nil || f.AckReq {
		return
	}
	until := now.Add(e.macCfg.IFS + 2*e.macCfg.SlotTime + riderSlack)
	if e.ackDue > 0 && e.ackDueAt.After(until) || e.nav.until.After(until) {
		return
	}
	e.mac.Reserve(now, until)
}

// riderSlack is what riderHeard allows beyond IFS and two slots for the
// sender's scheduling and its modem's: about 1.2 ms between two frames of
// a burst through real daemons on the simulated medium, where IFS is 1 ms,
// while the daemon and the medium woke on the runtime's timers, which fire
// up to a millisecond late (less since both use a timerfd,
// internal/precise; a real modem's serial line adds its own).
const riderSlack = time.Millisecond

// rttBatch is the number of round-trip samples over which the smallest
// round trip towards a node (a sample, not the smoothed estimate) is taken
// before it counts as a measurement (measuredDelay).
const rttBatch = 16

// delayWatch follows the ARQ's round trips towards each node for the MAC's
// timing (measuredDelay). Owned by the engine's goroutine.
type delayWatch struct {
	peers  []arq.PeerStats // reused AppendPeers buffer
	seen   [256]uint64     // samples of each node already looked at
	minRTT [256]time.Duration
	logged bool // a lengthened slot was logged
}

// measuredDelay feeds the MAC (csma.MAC.MeasuredDelay) with the one-way
// delay towards src that the ARQ's round trips show, once src's round trip
// has a new sample. A round trip is timed from our poll's TxDone to its Ack
// (arq ArmOnTxDone): two propagation delays, the Ack's airtime, the
// receiver's turnaround and carrier hang-over, and the processing and
// scheduling at both ends (measureSlack). Queueing only adds to it, so the
// smallest round trip of each batch of rttBatch samples is what counts:
// half of it, less the Ack's airtime, the turnaround and measureSlack, is
// an upper bound of the one-way delay that follows a delay growing (a node
// moving away) within a batch. The samples themselves, not the smoothed
// round trip: that starts at the first sample, and one first Ack delayed
// 1.4 s on a crowded channel left it above 200 ms after the 15 prompt
// samples of the batch, which lengthened one node's slot alone to 2.8
// times the others' and starved it (TestMeasuredDelayOneLateAck,
// docs/mac.md). The MAC
// lengthens its slot and IFS only when it is longer than the configured
// delay, at most doubling it per batch, and never shortens them. A modem
// that does its own channel access is not measured: its TxDone comes
// before the burst went on air.
func (e *Engine) measuredDelay(src framing.NodeID) {
	if e.info.OwnAccess || e.info.NoCarrier || e.mac == nil || e.cfg.MAC != (csma.Config{}) {
		return // (no carrier: the slot does not follow the delay, MACFor)
	}
	w := &e.delays
	w.peers = e.arq.AppendPeers(w.peers[:0])
	for _, p := range w.peers {
		if p.Node != src || p.Samples == w.seen[src] {
			continue
		}
		w.seen[src] = p.Samples
		if w.minRTT[src] == 0 || p.LastRTT < w.minRTT[src] {
			w.minRTT[src] = p.LastRTT
		}
		if p.Samples%rttBatch != 0 {
			return
		}
		rtt := w.minRTT[src]
		w.minRTT[src] = 0
		seal := 0
		if e.cfg.Key != nil {
			seal = auth.Overhead
		}
		ackAir := phy.Airtime(max(framing.MaxEncodedLen(framing.AckMaxLen+seal), e.info.MinBurst), e.info.BitRate)
		d := (rtt - ackAir - e.info.Turnaround - e.info.CarrierLag - measureSlack) / 2
		if !e.mac.MeasuredDelay(d) {
			return
		}
		c := e.mac.Config()
		e.macCfg.SlotTime, e.macCfg.IFS, e.macCfg.PropDelay = c.SlotTime, c.IFS, c.PropDelay
		e.startNAV(seal, c.SlotTime, max(e.cfg.PropDelay, c.PropDelay)) // the wait after others' polls too (nav.go)
		ev := e.log.Debug()
		if !w.logged {
			w.logged = true
			ev = e.log.Info()
		}
		ev.Int("node", int(src)).Dur("rtt_min", rtt).Dur("prop_delay", c.PropDelay).
			Dur("slot", c.SlotTime).Dur("ifs", c.IFS).Msg("round trips longer than the configured delay: slot lengthened (further ones logged at debug)")
		return
	}
}

// mixedFrames is how long, in the largest frames' airtime, packets poll
// one by one after a packet of another flow than the last one to its node
// (Engine.send): a sparse flow beside a greedy one keeps it so (4 frames
// of the largest, 1,559 bytes, are 0.43 s at 115200 bit/s), and a lone packet of
// another flow (a neighbour solicitation) stops groups that long. With 16
// (and the MAC's count of senders) the daemons' own neighbour discovery
// kept them off for most of a bulk transfer.
const mixedFrames = 4

// lastPacket is the last packet sent to a node: its sequence number, flow
// and whether it is a TCP segment without payload (arqSink.Transmit).
type lastPacket struct {
	seq  uint8
	set  bool
	ack  bool
	flow uint64
}

// arqSink is the engine as the ARQ's Sink.
type arqSink Engine

// Transmit seals and encodes one link frame and queues it with its
// metadata: Acks in e.acks, everything else in e.pend.
func (s *arqSink) Transmit(now time.Time, f arq.Frame) {
	e := (*Engine)(s)
	h, payload := f.Header, f.Payload
	m := frameMeta{h: h}
	if f.Poll && len(payload) >= framing.FragHeaderLen {
		m.poll = true
		copy(m.head[:], payload)
	}
	if f.First {
		if fh, _, err := framing.ParseFrag(payload); err == nil {
			m.first, m.seq = true, fh.Seq
		}
	}
	if !f.Expires.IsZero() {
		m.expires = f.Expires
		if e.agedNext.IsZero() || f.Expires.Before(e.agedNext) {
			e.agedNext = f.Expires
		}
	}
	if f.Last {
		m.eth, e.sendEth = e.sendEth, 0
	}
	// A packet's frames from Send are its flow; retransmissions (from
	// the ARQ's timer) and Hellos are flow 0, one flow of their own. The
	// last fragment of the packet sent last to h.Dst, which a grouped
	// poll holds until the next packet or a Flush (arq.Config.GroupPolls),
	// keeps that packet's flow: in the next packet's it would wait behind
	// a greedy flow's frames (TestSparseFlowNotBehindGreedy). Whether it
	// may ride with an Ack (ride.go) is that packet's too: behind a modem
	// that takes bursts every packet's poll waits in a group
	// (groupsPolls), and a TCP ACK's went as data, never riding, when the
	// group ended outside its Send (TestRideKeepsReservationBursts).
	// Only its first transmission (Last): a retransmission of it is the
	// poll of a retransmission round, which must follow its riders (flow
	// 0) through the rounds (TestBurstRetransmissionPollGoesLast).
	m.flow, m.tcpAck = e.sendFlow, e.sendAck
	if l := e.lastFlow[h.Dst]; l.set && f.Last && h.Kind == framing.KindFragment && len(payload) >= framing.FragHeaderLen && payload[1] == l.seq {
		m.flow, m.tcpAck = l.flow, l.ack
	}
	if h.Kind == framing.KindAck {
		var buf [framing.MaxAckRecords]framing.Ack
		if recs, err := framing.ParseAcks(buf[:0], payload); err == nil {
			m.ackSeq, m.multi = recs[0].Seq, len(recs) > 1
		}
	}
	h.Version = e.frameVersion(now, h, payload)
	if h.Kind == framing.KindAck && h.Ver() >= framing.Version2 && e.turns.on && len(payload) >= 2 && len(payload) <= len(e.ackMore) && e.dataWaits() {
		// Our data follows this Ack: the node it answers keeps the
		// channel for it (framing.Ack.More, turns.go) instead of
		// keying up over it.
		n := copy(e.ackMore[:], payload)
		e.ackMore[1] |= framing.AckMoreFlag
		payload = e.ackMore[:n]
	}
	if e.sealer != nil {
		var err error
		h, e.sealBuf, err = e.sealer.Seal(now, e.sealBuf[:0], h, payload)
		if err != nil {
			e.stats.Drops.SealFailed++
			if errors.Is(err, auth.ErrPending) {
				e.log.Debug().Msg("counters not durable yet; frame not sealed (drops.seal_failed)")
			} else if !e.sealErr {
				e.sealErr = true
				e.log.Error().Err(err).Msg("cannot seal: no frame is sent until the state directory takes the counters again (drops.seal_failed)")
			}
			e.frameGone(now, m)
			return
		}
		if e.sealErr {
			e.sealErr = false
			e.log.Info().Msg("counters reserved again; sealing")
		}
		payload = e.sealBuf
	}
	frame := framing.AppendFrame(e.buffer(), h, payload)
	if e.frameMax > 0 && len(frame) > e.frameMax {
		// Not reached: the ARQ cuts packets to fit.
		e.stats.Drops.TooBig++
		e.frameGone(now, m)
		e.free = append(e.free, frame[:0])
		return
	}
	if c := e.cfg.Capture; c != nil {
		c.WriteLink(now, true, h, payload)
	}
	if m.h.Kind == framing.KindAck {
		if e.supersede(txFrame{frame, m}) {
			return
		}
		if len(e.acks) >= maxAcks {
			e.stats.Drops.AckQueue++
			e.free = append(e.free, frame[:0])
			return
		}
		if len(e.acks) == 0 {
			e.ackUntil = now.Add(e.ackHold)
		}
		e.acks = append(e.acks, txFrame{frame, m})
	} else {
		e.pend = append(e.pend, txFrame{frame, m})
	}
}

// Settled takes out of e.pend and the MAC queue the First-marked frames of
// packet seq to dst, which an Ack has just settled, or which the first Ack
// from dst acknowledged in part, or which a late Ack of the First packet
// given up last left marked First after synchronising us (arq.SettleSink,
// whose comment lists the cases). Such a
// retransmission, waiting there while the Ack came, could go on air after
// the next packet, which goes unmarked (the MAC serves retransmissions as
// a flow of their own): the receiver would take it for our restart,
// forget what it delivered and deliver again (docs/link-arq.md, "A sender
// that restarts"; TestSettledFirstRetransmissionDropped). Frames given to
// the modem stay: it sends them in order, ahead of anything queued later.
// Unmarked retransmissions of a settled packet are harmless (the receiver
// acknowledges them again: they go on air before MaxAge, dropAged, so
// within its DupLifetime) and stay too: taking them out as well changed
// the timing of every lossy run (TestLossyLoneSender's medians moved by
// 3 %), a change of its own to weigh separately. The polls among the
// frames taken out are reported to the ARQ after its Receive has returned
// (settledGone), and their buffers go back to e.free.
func (s *arqSink) Settled(now time.Time, dst framing.NodeID, seq uint8) {
	e := (*Engine)(s)
	match := func(f txFrame) bool {
		return f.meta.first && f.meta.h.Dst == dst && f.meta.seq == seq
	}
	e.removeData(match, e.dropSettled)
}

// removeData takes the frames match selects out of e.pend and the MAC
// queue, in order, handing each to drop.
func (e *Engine) removeData(match func(txFrame) bool, drop func(txFrame)) {
	k := 0
	for _, f := range e.pend {
		if match(f) {
			drop(f)
			continue
		}
		e.pend[k] = f
		k++
	}
	clear(e.pend[k:])
	e.pend = e.pend[:k]
	if e.mac != nil {
		e.mac.RemoveData(match, drop)
	}
}

// dropSettled takes back frame f of a settled packet (Settled).
func (e *Engine) dropSettled(f txFrame) {
	e.stats.SettledDropped++
	e.takeBack(f)
}

// takeBack takes back a data frame taken out of the queues unsent: a poll
// among them goes to the ARQ's TxDone after the call that dropped it
// (settledGone), its buffer back to e.free.
func (e *Engine) takeBack(f txFrame) {
	if f.meta.poll {
		e.settledPolls = append(e.settledPolls, f.meta)
	}
	e.free = append(e.free, f.buf[:0])
}

// aged says whether data frame f is of a packet at or past the end of its
// life (arq.Frame.Expires): it must not go on air (dropAged).
func aged(now time.Time, f txFrame) bool {
	return !f.meta.expires.IsZero() && !now.Before(f.meta.expires)
}

// dropAged takes out of e.pend and the MAC queue the data frames of packets
// at or past the end of their life (aged), before the MAC picks the next
// transmission; the frames that join a transmission (fillBurst, rideAnswers)
// are checked as they join. So no frame of a packet goes on air later than
// MaxAge after Send, and the receiver, which remembers a delivery for
// DupLifetime, recognises every one that comes (docs/link-arq.md,
// "DupLifetime"). On a crowded channel a retransmission's poll waited
// minutes there for a turn, past MaxAge, with no timer running to give its
// packet up, and went on air after the receiver had forgotten the
// delivery: it was handed up again. The ARQ gives such a packet up at
// MaxAge by itself (arq.Frame.Expires); a poll dropped here is reported to
// TxDone, as every dropped poll, so that a rider bound to it is timed and
// a packet still held is given up. Each frame is counted (AgedDropped).
// The queues are walked only once the earliest end of life among the
// frames handed over (agedNext, a lower bound) has come.
func (e *Engine) dropAged(now time.Time) {
	if e.agedNext.IsZero() || now.Before(e.agedNext) {
		return
	}
	var next time.Time
	match := func(f txFrame) bool {
		if aged(now, f) {
			return true
		}
		if x := f.meta.expires; !x.IsZero() && (next.IsZero() || x.Before(next)) {
			next = x
		}
		return false
	}
	e.removeData(match, e.dropAgedFrame)
	e.agedNext = next
	e.settledGone(now) // the polls among them
}

// dropAgedFrame takes back frame f, past its packet's life (dropAged).
func (e *Engine) dropAgedFrame(f txFrame) {
	e.stats.AgedDropped++
	e.takeBack(f)
}

// settledGone reports to the ARQ the polls Settled took out, once the
// ARQ's call that settled their packets has returned.
func (e *Engine) settledGone(now time.Time) {
	for _, m := range e.settledPolls {
		e.frameGone(now, m)
	}
	e.settledPolls = e.settledPolls[:0]
}

// supersede puts Ack f in the place of a waiting Ack to the same node for
// the same packet, in e.acks or among the MAC's urgent frames, and reports
// whether it found one. An Ack is the receiver's whole state of a packet
// (mac/arq), so the newer says all the older would: a sender that resends
// while our Acks wait for the channel (a busy channel, a TNC still
// sending) gets one answer per packet instead of a queue of copies.
func (e *Engine) supersede(f txFrame) bool {
	if f.meta.multi {
		return false // it says more than the Ack it would replace
	}
	same := func(o txFrame) bool {
		return o.meta.h.Kind == framing.KindAck && !o.meta.multi && o.meta.h.Dst == f.meta.h.Dst && o.meta.ackSeq == f.meta.ackSeq
	}
	for i := range e.acks {
		if same(e.acks[i]) {
			e.free = append(e.free, e.acks[i].buf[:0])
			e.acks[i] = f
			e.stats.AcksSuperseded++
			return true
		}
	}
	if e.mac == nil {
		return false
	}
	old, ok := e.mac.ReplaceUrgent(same, f)
	if ok {
		e.free = append(e.free, old.buf[:0])
		e.stats.AcksSuperseded++
	}
	return ok
}

// groupsPolls says whether packets that go together share one poll: behind
// a modem that takes bursts (a TNC: one key-up, its access wait and
// preamble, for many frames), a modem that senses no carrier (turns: a
// whole round trip of water per exchange), or where the MAC sends bursts
// (mc.Burst, the adaptive MAC's bursts of 4 on a carrier-sense modem, MACFor).
// There each Ack cost its bytes (13 of every 1,070 on air with 1000-byte
// datagrams) and a turnaround (about 1 ms through real daemons), and a
// group of one burst (arq.Config.MaxGroup, startLink) pays them once per
// burst. Grouped without that bound (a group ended only when nothing else
// waited) a packet's Ack, and with it the ARQ window, waited for the
// packets queued behind it, and a small flow's packet waited for the
// window behind a greedy flow's (TestSparseFlowNotBehindGreedy: 396 ms
// against a limit of 157).
func groupsPolls(info phy.Info, mc csma.Config, noARQ bool) bool {
	if noARQ {
		return false
	}
	return info.MaxBurstFrames > 1 || info.NoCarrier && !info.OwnAccess || mc.Burst > 1 && !info.OwnAccess
}

// Grouped says whether packets to node may share polls and its Acks report
// several packets (arq.GroupSink): a version-2 peer, as frameVersion sends
// it version-2 frames.
func (s *arqSink) Grouped(now time.Time, node framing.NodeID) bool {
	return (*Engine)(s).vers.sendVersion(now, node) >= framing.Version2
}

// flushGroups ends the ARQ's open groups (their polls go) once nothing else
// waits to go on air and, unless a burst is being filled (burst), no
// transmission of ours is under way: the packets the host gave while our
// frames waited or were on air share one poll and one Ack
// (arq.Config.GroupPolls). It reports whether it sent a poll.
func (e *Engine) flushGroups(now time.Time, burst bool) bool {
	if e.arq == nil || !e.arq.Open() || len(e.pend) > 0 {
		return false
	}
	waiting := e.mac.Len()
	if e.mac.Transmitting() {
		if !burst {
			return false
		}
		waiting-- // the MAC counts the transmission's place
	} else if e.othersTurn(now) {
		return false // nothing of ours goes before it ends: more may join
	}
	if waiting > 0 {
		return false
	}
	e.arq.Flush(now)
	return true
}

// dataWaits says whether data of ours waits to go on air: frames in pend
// or the MAC queue, or a group whose poll is held.
func (e *Engine) dataWaits() bool {
	return len(e.pend) > 0 || e.mac != nil && e.mac.Len() > 0 || e.arq != nil && e.arq.Open()
}

// othersTurn says whether the channel is another node's for now: its
// carrier is on, or (no carrier sense) its turn goes on (turns.go).
func (e *Engine) othersTurn(now time.Time) bool {
	return e.carrierOn || e.turns.on && e.turns.until.After(now)
}

// groupDeadline is when an open group held only for the others' turn is
// due (flushGroups): the end of that turn. ok is false when none waits for
// it (a carrier, or our own frames, end the wait with an input).
func (e *Engine) groupDeadline() (time.Time, bool) {
	if e.arq == nil || !e.arq.Open() || !e.turns.on || e.carrierOn || len(e.pend) > 0 || e.mac.Len() > 0 || e.mac.Transmitting() {
		return time.Time{}, false
	}
	return e.turns.until, true
}

// feedBurst is feed while a burst is filled (fillBurst): an open group's
// poll joins the burst as its last data frame.
func (e *Engine) feedBurst(now time.Time) {
	e.feed(now)
	if e.flushGroups(now, true) {
		e.feed(now)
	}
}

// Deliver puts one whole packet in the host outbox as an Ethernet frame.
func (s *arqSink) Deliver(now time.Time, h framing.Header, packet []byte) {
	e := (*Engine)(s)
	d := e.outSlot()
	if d == nil {
		e.stats.Drops.TAPWrite++ // the host did not take its frames (maxOut)
		return
	}
	eth, err := framing.AppendEthernet(d.Eth[:0], h, packet)
	d.Eth = eth[:0]
	if err != nil {
		e.out = e.out[:len(e.out)-1]
		if h.Kind == framing.KindIPHC {
			// Headers it cannot rebuild exactly: never delivered.
			e.stats.Drops.Decompress++
			return
		}
		e.stats.Drops.BadFrame++
		return
	}
	if len(eth) > e.cfg.MTU+14 {
		e.out = e.out[:len(e.out)-1]
		e.stats.Drops.TooBig++
		return
	}
	d.Eth, d.src, d.authentic = eth, h.Src, e.rxAuthentic
}

// tncWaitMargin is the least margin, in mean access waits, that the learned
// ack timeout keeps above the smoothed round trip behind a modem that does
// its own channel access (arq.Config.RTTGranularity). Two waits of p = 1/4
// (Dire Wolf's default P 63) exceed their mean by four mean waits in about
// 1% of round trips; with the default 100 ms slots the margin is 1.6 s.
const tncWaitMargin = 4
