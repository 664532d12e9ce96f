package bridge

// The link layer between the TAP and the MAC queue: fragmentation and ARQ
// (mac/arq), the authenticated envelope (auth), and the two waiting lines in
// front of the MAC. Everything here runs on the loop goroutine.
//
// Waiting lines, in the order they are served:
//
//	acks  Acks, each put at the front of the MAC queue as soon as it has
//	      any room (ackReserve places are kept for them): an Ack waits
//	      behind the frame on air, never behind data.
//	pend  data frames (fragments, retransmissions, plain frames), moved
//	      into the MAC while it holds fewer than QueueLen frames.
//
// With policy Block the TAP is read only when pend is empty, the MAC has a
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

// ackReserve is the number of MAC queue places kept for Acks.
const ackReserve = 2

// maxAcks bounds the Acks waiting outside the MAC; beyond it the newest is
// dropped (the sender's timer recovers).
const maxAcks = 16

// frameMeta is what the loop remembers of a queued frame, keyed by its
// buffer: the Ethernet bytes it completes (for pacing and counters; only the
// last fragment of a packet's first transmission carries them), and for
// fragments the header the ARQ wants back at TxDone.
type frameMeta struct {
	eth  int
	frag bool
	h    framing.Header
	head [framing.FragHeaderLen]byte
}

// arqConfig is the ARQ configuration of cfg for frames of at most frameMax
// bytes on the wire (0: no limit).
func arqConfig(cfg Config, frameMax int, t arq.Timing) arq.Config {
	maxPacket := cfg.MTU + 14
	seal := 0
	if cfg.Key != nil {
		seal = auth.Overhead
	}
	mp := maxPacket + framing.FragHeaderLen
	if frameMax > 0 {
		mp = framing.MaxPayloadLen(frameMax) - seal
	}
	ac := arq.DefaultConfig(cfg.Node, mp, maxPacket, t)
	ac.NoARQ = cfg.NoARQ
	return ac
}

// startLink builds the ARQ and the envelope once the PHY's figures are known.
func (l *loop) startLink(now time.Time, mc csma.Config) error {
	cfg := l.b.cfg
	l.frameMax = cfg.FrameMax
	if m := l.info.MaxFrame; m > 0 && (l.frameMax == 0 || m < l.frameMax) {
		l.frameMax = m
	}
	// The receiver's Ack may wait for the frame it is sending, then IFS and
	// the widest backoff; a retransmission that comes too early costs one
	// fragment, one that comes too late costs idle time. A modem that does
	// its own channel access reports TxDone before the burst may have gone
	// (it waits for the channel inside the TNC), and the receiver's TNC may
	// hold a data frame in front of the Ack: two more frames. (Two frames
	// and the TNCs' access waits in all, tried on the Dire Wolf pair, gave
	// three times the spurious retransmissions.)
	frameAir := phy.Airtime(l.frameCap, l.info.BitRate)
	if l.frameMax > 0 {
		frameAir = phy.Airtime(min(l.frameCap, l.frameMax), l.info.BitRate)
	}
	if l.info.OwnAccess {
		frameAir *= 3
	}
	t := arq.Timing{
		BitRate:     l.info.BitRate,
		Propagation: cfg.PropDelay,
		Turnaround:  l.info.Turnaround + l.info.CarrierLag,
		Margin:      mc.IFS + time.Duration(mc.CWMax)*mc.SlotTime + frameAir + 50*time.Millisecond,
	}
	ac := arqConfig(cfg, l.frameMax, t)
	// The longest a frame can wait in our queues: a window of packets'
	// fragments (retransmission rounds included) and the MAC queue.
	frags := (ac.MaxPacket + ac.MaxPayload - framing.FragHeaderLen - 1) / (ac.MaxPayload - framing.FragHeaderLen)
	one := phy.Airtime(min(l.frameCap, framing.MaxEncodedLen(ac.MaxPayload)), l.info.BitRate)
	t.QueueDelay = time.Duration(ac.Window*frags+mc.QueueLen+ackReserve) * one
	if l.info.OwnAccess {
		t.QueueDelay *= 3 // and the TNC's own queue and channel access
	}
	ac = arqConfig(cfg, l.frameMax, t)
	// Frames may wait in the MAC queue longer than the ack timeout: time
	// a round from its poll's TxDone (frameGone reports every poll).
	ac.ArmOnTxDone = true
	if !cfg.NoARQ {
		// After a poll the sender leaves the channel to the Ack: its
		// airtime, the round trip, the receiver's turnaround, its carrier
		// hang-over and two slots of scheduling latency. The same modem
		// settings are assumed at both ends.
		seal := 0
		if l.b.cfg.Key != nil {
			seal = auth.Overhead
		}
		l.ackWait = phy.Airtime(max(framing.MaxEncodedLen(framing.AckMaxLen+seal), l.info.MinBurst), l.info.BitRate) +
			2*cfg.PropDelay + l.info.Turnaround + 2*mc.SlotTime
		// The receiver sends its Ack when its carrier sense drops, which
		// with a hang-over is that long after our frame ended.
		l.ackWait += l.info.CarrierLag
		// A TNC that does its own channel access keys the Ack up after its
		// p-persistent wait: twice the mean covers most of them. Without
		// the reservation our next frame and their Ack key up together
		// and collide (neither radio hears while it sends).
		l.ackWait += 2 * l.info.AccessWait
	}
	a, err := arq.New(ac, (*arqSink)(l))
	if err != nil {
		return fmt.Errorf("frame-max %d: %w", l.frameMax, err)
	}
	l.arq = a
	if cfg.Key != nil {
		if err := l.startAuth(now); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	l.log.Info().Int("max_payload", ac.MaxPayload).Dur("ack_timeout", ac.AckTimeout).
		Dur("ack_timeout_min", ac.MinAckTimeout).Dur("ack_timeout_max", ac.MaxAckTimeout).Dur("max_age", ac.MaxAge).
		Dur("dup_lifetime", ac.DupLifetime).
		Int("max_retries", ac.MaxRetries).Int("window", ac.Window).Msg("link layer")
	return nil
}

// startAuth builds the Sealer (Key) and the Openers (Key, Key2), from the
// counters KeyState saved.
func (l *loop) startAuth(now time.Time) error {
	cfg := l.b.cfg
	var saved uint64
	var r auth.Reserver
	if st := cfg.KeyState[0]; st != nil {
		saved, r = st.State().Send, st
	}
	var err error
	if l.sealer, err = auth.Resume(*cfg.Key, cfg.Node, now, saved, r); err != nil {
		return err
	}
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
		l.openers = append(l.openers, o)
		l.stats.KeyFingerprints = append(l.stats.KeyFingerprints, auth.Fingerprint(*k))
	}
	l.log.Info().Strs("key_fingerprints", l.stats.KeyFingerprints).Bool("state", r != nil).
		Uint64("counter", l.sealer.Counter()).Dur("max_age", cfg.KeyMaxAge).Msg("frames sealed")
	return nil
}

// open unwraps a sealed frame with the first key that authenticates it and
// counts what it refuses; ok is false for a refused frame.
func (l *loop) open(h framing.Header, payload []byte) (framing.Header, []byte, bool) {
	if h.Kind != framing.KindSealed {
		l.stats.Drops.Unsealed++
		return h, nil, false
	}
	var err error
	for i, o := range l.openers {
		var inner framing.Header
		inner, l.openBuf, err = o.Open(l.now, l.openBuf[:0], h, payload)
		if err == nil {
			l.stats.KeyOpened[i]++
			if l.saveErr {
				l.saveErr = false
				l.log.Info().Msg("replay state saved again; accepting sealed frames")
			}
			return inner, l.openBuf, true
		}
		if !errors.Is(err, auth.ErrForged) {
			break
		}
	}
	switch {
	case errors.Is(err, auth.ErrReplay), errors.Is(err, auth.ErrTooOld), errors.Is(err, auth.ErrStale):
		l.stats.Drops.Replayed++
	case errors.Is(err, auth.ErrNotSaved):
		l.stats.Drops.StateFailed++
		if !l.saveErr {
			l.saveErr = true
			l.log.Error().Err(err).Msg("cannot save the replay state; refusing sealed frames until it can (drops.state_failed)")
		}
	default:
		l.stats.Drops.AuthFailed++
	}
	return h, nil, false
}

// ownID checks a frame that carries our own node id: with a key, one that
// is authentic but was not sealed here (auth.Sealer.Foreign) comes from
// another station using our id and key. It is counted and logged, at most
// once a minute; everything else with our id is an echo.
func (l *loop) ownID(h framing.Header, payload []byte) {
	if h.Kind == framing.KindSealed && l.sealer != nil {
		for i, o := range l.openers {
			c, err := o.Verify(h, payload)
			if err != nil {
				continue
			}
			if i > 0 || l.sealer.Foreign(c) {
				l.stats.OwnIDHeard++
				if l.now.Sub(l.ownIDLog) >= time.Minute {
					l.ownIDLog = l.now
					l.log.Error().Int("node", int(l.b.cfg.Node)).Uint64("own_id_heard", l.stats.OwnIDHeard).
						Msg("another station sends with our node id and key: counters (nonces) may repeat; give every node its own id")
				}
				return
			}
			break
		}
	}
	l.stats.Drops.Echo++
}

// fromTAP hands one Ethernet frame read from the TAP to the ARQ.
func (l *loop) fromTAP(now time.Time, eth []byte) {
	l.stats.TAPReads++
	l.now = now
	if l.neigh != nil {
		if r, ok := l.neigh.answer(l.neighBuf[:0], now, l.b.cfg.Node, eth); ok {
			l.neighBuf = r[:0]
			if _, err := l.b.tap.Write(r); err != nil {
				l.stats.Drops.TAPWrite++
				return
			}
			l.stats.NeighAnswered++
			return
		}
	}
	h, payload, err := framing.Compact(eth, l.b.cfg.Node)
	if err != nil {
		if errors.Is(err, framing.ErrNoRoute) {
			l.stats.Drops.NoRoute++
		} else {
			l.stats.Drops.BadFrame++
		}
		return
	}
	holding := len(l.held) > 0
	if l.b.cfg.Policy != Block && (holding || len(l.pend) > 0 || l.mac.Room() <= ackReserve) {
		switch {
		case l.b.cfg.Policy == DropHead && holding:
			// The oldest packet waiting for its window gives way.
			l.stats.Drops.QueueHead++
			l.popHeld()
			l.hold(h, payload, len(eth))
			return
		case l.b.cfg.Policy == DropHead && len(l.pend) == 0:
			if old, ok := l.mac.DropOldest(); ok {
				l.stats.Drops.QueueHead++
				l.recycle(now, old)
			}
		default:
			l.stats.Drops.QueueFull++
			return
		}
	}
	if holding {
		// Block: the reader already held a token when the window closed.
		// Keep packets in order behind the one waiting.
		l.hold(h, payload, len(eth))
		return
	}
	if err := l.send(now, h, payload, len(eth)); errors.Is(err, arq.ErrWindowFull) {
		l.stats.WindowWaits++
		l.hold(h, payload, len(eth))
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
}

// send passes one packet to the ARQ. It returns arq.ErrWindowFull for the
// caller to hold the packet; other errors are counted here.
func (l *loop) send(now time.Time, h framing.Header, payload []byte, ethLen int) error {
	l.lastQd = nil
	err := l.arq.Send(now, h, payload)
	switch {
	case err == nil:
		if l.lastQd != nil {
			m := l.meta[l.lastQd]
			m.eth = ethLen
			l.meta[l.lastQd] = m
		}
	case errors.Is(err, arq.ErrWindowFull):
	case errors.Is(err, arq.ErrTooBig):
		l.stats.Drops.TooBig++
	default:
		l.stats.Drops.BadFrame++
		l.log.Debug().Err(err).Msg("arq send")
	}
	return err
}

// hold keeps a copy of the packet until the ARQ window opens.
func (l *loop) hold(h framing.Header, payload []byte, ethLen int) {
	if len(l.held) >= maxHeld {
		l.stats.Drops.QueueFull++ // not reached with policy block (see maxHeld)
		return
	}
	n := len(l.held)
	if n < cap(l.held) {
		l.held = l.held[:n+1] // reuse the buffer that slot had
	} else {
		l.held = append(l.held, heldPkt{})
	}
	p := &l.held[n]
	p.h, p.eth, p.data = h, ethLen, append(p.data[:0], payload...)
}

// retryHeld offers the waiting packets to the ARQ again, oldest first.
func (l *loop) retryHeld(now time.Time) {
	for len(l.held) > 0 {
		p := l.held[0]
		if err := l.send(now, p.h, p.data, p.eth); errors.Is(err, arq.ErrWindowFull) {
			return
		}
		l.popHeld()
	}
}

// popHeld removes the oldest held packet; its buffer moves behind the
// others for reuse, so that no two slots share one.
func (l *loop) popHeld() {
	p := l.held[0]
	copy(l.held, l.held[1:])
	l.held[len(l.held)-1] = p
	l.held = l.held[:len(l.held)-1]
}

// feed moves waiting frames into the MAC queue: Acks to its front, data
// behind while fewer than QueueLen frames wait.
func (l *loop) feed(now time.Time) {
	for len(l.acks) > 0 && l.mac.Room() > 0 {
		f := l.acks[0]
		l.acks = l.acks[:copy(l.acks, l.acks[1:])]
		if err := l.mac.EnqueueFront(now, f); err != nil {
			l.recycle(now, f)
		}
	}
	for len(l.pend) > 0 && l.mac.Room() > ackReserve {
		f := l.pend[0]
		l.pend = l.pend[:copy(l.pend, l.pend[1:])]
		if err := l.mac.Enqueue(now, f); err != nil {
			l.recycle(now, f)
		}
	}
}

// recycle takes back a frame that will not be sent.
func (l *loop) recycle(now time.Time, f []byte) {
	key := &f[:1][0]
	l.frameGone(now, l.meta[key])
	delete(l.meta, key)
	l.free = append(l.free, f[:0])
}

// frameGone tells the ARQ that a fragment left the daemon, on air or not:
// a poll's Ack timer starts now (arq.Config.ArmOnTxDone).
func (l *loop) frameGone(now time.Time, m frameMeta) {
	if m.frag && l.arq != nil {
		l.arq.TxDone(now, m.h, m.head[:])
	}
}

func (l *loop) buffer() []byte {
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b
	}
	return make([]byte, 0, l.frameCap)
}

// fromAir takes one frame from the decoder: it checks the address and the
// envelope and passes the frame to the ARQ, which delivers whole packets
// through arqSink.Deliver.
func (l *loop) fromAir(h framing.Header, payload []byte) {
	l.rxAuthentic = false
	if c := l.b.cfg.Capture; c != nil {
		c.WriteLink(time.Now(), false, h, payload)
	}
	if h.Src == l.b.cfg.Node {
		l.ownID(h, payload)
		return
	}
	if h.Dst != l.b.cfg.Node && h.Dst != framing.Broadcast {
		// A sender all the same, once authenticated (contend.go).
		l.overheard(h, payload)
		l.stats.NotForUs++
		return
	}
	if l.arq == nil { // nothing decodes before the link is up; be safe
		l.stats.Drops.BadFrame++
		return
	}
	switch {
	case l.openers != nil:
		var ok bool
		if h, payload, ok = l.open(h, payload); !ok {
			return
		}
		l.rxAuthentic = true
	case h.Kind == framing.KindSealed:
		l.stats.Drops.Sealed++
		return
	}
	l.senders.heard(l.now, h.Src, h.Kind)
	if h.Kind == framing.KindAck && h.Dst == l.b.cfg.Node {
		l.mac.Reserve(l.now, l.now) // the Ack we kept the channel for has come
	}
	l.arq.Receive(l.now, h, payload)
}

// arqSink is the loop as the ARQ's Sink.
type arqSink loop

// Transmit seals and encodes one link frame and queues it: Acks in l.acks,
// everything else in l.pend.
func (s *arqSink) Transmit(_ time.Time, f arq.Frame) {
	l := (*loop)(s)
	h, payload := f.Header, f.Payload
	m := frameMeta{h: h}
	if h.Kind == framing.KindFragment && len(payload) >= framing.FragHeaderLen {
		m.frag = true
		copy(m.head[:], payload)
	}
	if l.sealer != nil {
		var err error
		h, l.sealBuf, err = l.sealer.Seal(l.now, l.sealBuf[:0], h, payload)
		if err != nil {
			l.stats.Drops.SealFailed++
			if !l.sealErr {
				l.sealErr = true
				l.log.Error().Err(err).Msg("cannot seal: no frame is sent until the state directory takes the counters again (drops.seal_failed)")
			}
			l.frameGone(l.now, m)
			return
		}
		if l.sealErr {
			l.sealErr = false
			l.log.Info().Msg("counters reserved again; sealing")
		}
		payload = l.sealBuf
	}
	if m.h.Kind == framing.KindAck && len(l.acks) >= maxAcks {
		l.stats.Drops.AckQueue++
		return
	}
	frame := framing.AppendFrame(l.buffer(), h, payload)
	if l.frameMax > 0 && len(frame) > l.frameMax {
		// Not reached: the ARQ cuts packets to fit.
		l.stats.Drops.TooBig++
		l.frameGone(l.now, m)
		l.free = append(l.free, frame[:0])
		return
	}
	if c := l.b.cfg.Capture; c != nil {
		c.WriteLink(l.now, true, h, payload)
	}
	key := &frame[:1][0]
	l.meta[key] = m
	l.lastQd = key
	if m.h.Kind == framing.KindAck {
		l.acks = append(l.acks, frame)
	} else {
		l.pend = append(l.pend, frame)
	}
}

// Deliver writes one whole packet to the TAP as an Ethernet frame.
func (s *arqSink) Deliver(_ time.Time, h framing.Header, packet []byte) {
	l := (*loop)(s)
	eth, err := framing.AppendEthernet(l.rxBuf[:0], h, packet)
	if err != nil {
		l.stats.Drops.BadFrame++
		return
	}
	l.rxBuf = eth[:0]
	if len(eth) > l.b.cfg.MTU+14 {
		l.stats.Drops.TooBig++
		return
	}
	if _, err := l.b.tap.Write(eth); err != nil {
		l.stats.Drops.TAPWrite++
		l.log.Debug().Err(err).Msg("write tap")
		return
	}
	l.stats.RxFrames++
	l.stats.RxEthBytes += uint64(len(eth))
	l.learnNeigh(h.Src, eth)
}
