package link

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/arq"
	"github.com/slided/slided/phy"
)

// arqPeer is a scripted receiver for an engine on the medium: a bare ARQ
// that the test hands frames and whose Acks it hands back, or loses.
type arqPeer struct {
	tx []arqFrame
	rx [][]byte
}

type arqFrame struct {
	h framing.Header
	p []byte
}

func (r *arqPeer) Transmit(_ time.Time, f arq.Frame) {
	r.tx = append(r.tx, arqFrame{f.Header, append([]byte(nil), f.Payload...)})
}

func (r *arqPeer) Deliver(_ time.Time, _ framing.Header, p []byte) {
	r.rx = append(r.rx, append([]byte(nil), p...))
}

// peerRig is node 1's engine on the medium m, whose transmissions m logs,
// and a bare ARQ at node 3 (an arqPeer) that the test hands node 1's frames
// for node 3 and whose Acks it hands back.
type peerRig struct {
	m    *medium
	a    *node
	log  []*burst
	b    *arq.ARQ
	peer *arqPeer
	seen int // bursts of log already handed to b
	// atEnd: b receives each burst at its end, not at the medium's now.
	atEnd bool
}

// newPeerRig adds node 1 (cfg) to m and makes node 3's ARQ with the
// configuration bc returns for it.
func newPeerRig(t *testing.T, m *medium, cfg Config, bc func(a *node) arq.Config) *peerRig {
	t.Helper()
	r := &peerRig{m: m, peer: &arqPeer{}}
	m.Bursts = &r.log
	r.a = m.add(cfg)
	b, err := arq.New(bc(r.a), r.peer)
	if err != nil {
		t.Fatal(err)
	}
	r.b = b
	return r
}

// toB hands b the frames for node 3 of the bursts it has not seen yet.
func (r *peerRig) toB() {
	for ; r.seen < len(r.log); r.seen++ {
		at := r.m.Now()
		if r.atEnd {
			at = r.log[r.seen].End
		}
		d := framing.NewDecoder(4096)
		feed := func(h framing.Header, p []byte) {
			if h.Dst == 3 {
				r.b.Receive(at, h, p)
			}
		}
		d.Feed(r.log[r.seen].Data, feed)
		d.Feed([]byte{0}, feed)
	}
}

// delivered counts the packets b handed up by numbered's id.
func (r *peerRig) delivered() map[uint32]int {
	ids := map[uint32]int{}
	for _, p := range r.peer.rx {
		ids[binary.BigEndian.Uint32(p[2:])]++ // the EtherType, then numbered's id
	}
	return ids
}

// logAir logs node 1's transmissions, in order, frame by frame.
func (r *peerRig) logAir(t *testing.T) {
	for _, bu := range r.log {
		d := framing.NewDecoder(4096)
		show := func(h framing.Header, p []byte) {
			f, _, _ := framing.ParseFrag(p)
			t.Logf("%v %d->%d kind %d %+v", bu.Start.Sub(r.log[0].Start), h.Src, h.Dst, h.Kind, f)
		}
		d.Feed(bu.Data, show)
		d.Feed([]byte{0}, show)
	}
}

// takeAcks returns what b has sent since the last call.
func (r *peerRig) takeAcks() []arqFrame {
	fs := r.peer.tx
	r.peer.tx = nil
	return fs
}

// inject hands fs to node 1.
func (r *peerRig) inject(fs []arqFrame) {
	for _, f := range fs {
		r.m.inject(r.a, framing.AppendFrame(nil, f.h, f.p))
	}
}

// acksToA hands node 1 what b has sent, but those lose says are lost.
func (r *peerRig) acksToA(lose func(f arqFrame) bool) {
	for _, f := range r.takeAcks() {
		if lose == nil || !lose(f) {
			r.inject([]arqFrame{f})
		}
	}
}

// TestSettledFirstRetransmissionDropped: until node 3 has acknowledged one
// of its packets, node 1 sends it one at a time, marked First. Node 1's
// First retransmission of X waits in its MAC queue (the channel is busy)
// behind a retransmission to node 2 (both flow 0) when the Ack of X's
// first transmission comes: X is settled, node 1 synchronised, and the
// next packet Z, unmarked and of a flow with nothing waiting, takes its
// place in the MAC's rounds ahead of X's retransmission; Z's Ack is lost.
// The engine takes X's First retransmission out of its queue when the Ack
// settles X (arqSink.Settled), and node 3 delivers X and Z once each.
// Before, X's late First fragment after Z made node 3 take it for node 1's
// restart: it forgot Z, delivered X again, and Z again at its
// retransmission.
func TestSettledFirstRetransmissionDropped(t *testing.T) {
	m := newMedium(t, 9600)
	bc := arq.DefaultConfig(3, 200, 2000, arq.Timing{BitRate: 9600, Propagation: 10 * time.Millisecond, Margin: 20 * time.Millisecond})
	bc.DupLifetime = time.Minute // longer than any of node 1's retries, as a daemon's
	r := newPeerRig(t, m, Config{Node: 1}, func(*node) arq.Config { return bc })
	a, peer, toB, acksToA := r.a, r.peer, r.toB, r.acksToA
	// W to node 2, which never answers, then X to node 3.
	m.hostFrame(a, numbered(2, 1, 1, 40))
	m.hostFrame(a, numbered(3, 1, 2, 40))
	for i := 0; i < 100 && len(r.log) < 2; i++ {
		m.run(50 * time.Millisecond)
	}
	if len(r.log) != 2 {
		t.Fatalf("%d transmissions, want W and X", len(r.log))
	}
	// The channel goes busy: both time out and their First
	// retransmissions wait in the MAC queue, W's first.
	m.event(a, phy.Event{Kind: phy.CarrierOn})
	for i := 0; i < 200 && a.e.Stats(m.Now()).ARQ.Retransmissions < 2; i++ {
		m.run(100 * time.Millisecond)
	}
	if s := a.e.Stats(m.Now()); s.ARQ.Retransmissions != 2 || len(r.log) != 2 {
		t.Fatalf("%d retransmissions, %d transmissions; want 2 queued and none more on air", s.ARQ.Retransmissions, len(r.log))
	}
	// Node 3 got X's first transmission; its Ack comes now, late.
	toB()
	if len(peer.rx) != 1 || len(peer.tx) != 1 {
		t.Fatalf("node 3 delivered %d and sent %d frames, want X and its Ack", len(peer.rx), len(peer.tx))
	}
	acksToA(nil)
	m.event(a, phy.Event{Kind: phy.CarrierOff})
	m.hostFrame(a, numbered(3, 1, 3, 40)) // Z
	// Node 3 hears all of node 1's frames; its first Ack to Z is lost.
	zAcks := 0
	loseZAck := func(f arqFrame) bool {
		if f.h.Kind != framing.KindAck || len(f.p) < 1 || len(peer.rx) < 2 {
			return false
		}
		zAcks++
		return zAcks == 1
	}
	for i := 0; i < 600; i++ {
		m.run(100 * time.Millisecond)
		toB()
		acksToA(loseZAck)
	}
	ids := r.delivered()
	if len(peer.rx) != 2 || ids[2] != 1 || ids[3] != 1 {
		r.logAir(t)
	}
	if len(peer.rx) != 2 || ids[2] != 1 || ids[3] != 1 {
		t.Errorf("node 3 delivered %d packets %v (id: times), want X (2) and Z (3) once each", len(peer.rx), ids)
	}
	if s := a.e.Stats(m.Now()); s.SettledDropped != 1 || zAcks < 2 {
		t.Errorf("settled dropped %d, Acks to Z %d; want X's retransmission dropped, Z's Ack lost once and Z resent", s.SettledDropped, zAcks)
	}
}

// TestLateAckOfFirstSettlesQueuedFirst: node 1's First packet X to node 3
// waits in the MAC queue until just before MaxAge (the channel busy), goes
// on air and is given up at MaxAge; node 3 has it, and its Ack is held. Node 1, not synchronised,
// sends Y, marked First: node 3 delivers it, its Ack is lost, and Y's First
// retransmission waits in the MAC queue behind one to node 2 (the channel
// busy again) when X's Ack comes, late, and synchronises node 1
// (arq.TestLateAckOfFirstSyncs). The next packet Z, unmarked, of a flow with
// nothing waiting, would go on air ahead of Y's retransmission; Z's Ack is
// lost. The ARQ reports Y to the engine at X's late Ack and the engine
// takes Y's First retransmission out of its queue (arqSink.Settled), so
// node 3 delivers X, Y and Z once each. Without it node 3 took Y's late
// First fragment for node 1's restart: it forgot Z, delivered Y again and
// Z again at its retransmission.
func TestLateAckOfFirstSettlesQueuedFirst(t *testing.T) {
	m := newMedium(t, 9600)
	bc := arq.DefaultConfig(3, 200, 2000, arq.Timing{BitRate: 9600, Propagation: 10 * time.Millisecond, Margin: 20 * time.Millisecond})
	bc.DupLifetime = 10 * time.Minute // longer than any of node 1's retries, as a daemon's
	r := newPeerRig(t, m, Config{Node: 1}, func(*node) arq.Config { return bc })
	a, peer, toB := r.a, r.peer, r.toB
	inject, takeAcks := r.inject, r.takeAcks
	stats := func() Stats { return a.e.Stats(m.Now()) }
	runUntil := func(what string, done func() bool) {
		t.Helper()
		for i := 0; i < 3000 && !done(); i++ {
			m.run(100 * time.Millisecond)
		}
		if !done() {
			t.Fatalf("%s: not after 300 s (%d transmissions, stats %+v)", what, len(r.log), stats().ARQ)
		}
	}
	// W to node 2, which never answers, and X to node 3 wait until just
	// before MaxAge (past it they would not go on air: TestNoFrameOnAirPastMaxAge).
	m.event(a, phy.Event{Kind: phy.CarrierOn})
	m.hostFrame(a, numbered(2, 1, 1, 40))
	m.hostFrame(a, numbered(3, 1, 2, 40))
	m.run(a.e.arq.Config().MaxAge - a.e.AckTimeout()/2)
	m.event(a, phy.Event{Kind: phy.CarrierOff})
	runUntil("W and X on air and given up", func() bool { return len(r.log) == 2 && stats().ARQ.GiveUps == 2 })
	toB()
	if len(peer.rx) != 1 {
		t.Fatalf("node 3 delivered %d packets, want X", len(peer.rx))
	}
	xAck := takeAcks() // held: it comes after the give-up
	// V to node 2 and Y to node 3, both First; node 3 delivers Y, its Ack
	// is lost.
	m.hostFrame(a, numbered(2, 1, 3, 40))
	m.hostFrame(a, numbered(3, 1, 4, 40))
	runUntil("V and Y on air", func() bool { return len(r.log) == 4 })
	toB()
	takeAcks()
	if len(peer.rx) != 2 {
		t.Fatalf("node 3 delivered %d packets, want X and Y", len(peer.rx))
	}
	// The channel goes busy: V and Y time out, and their First
	// retransmissions wait in the MAC queue, V's first.
	m.event(a, phy.Event{Kind: phy.CarrierOn})
	runUntil("V's and Y's retransmissions queued", func() bool { return stats().ARQ.Retransmissions == 2 })
	if len(r.log) != 4 {
		t.Fatalf("%d transmissions, want none more on air", len(r.log))
	}
	inject(xAck) // late: synchronises node 1
	m.event(a, phy.Event{Kind: phy.CarrierOff})
	m.hostFrame(a, numbered(3, 1, 5, 40)) // Z
	// Node 3 hears all of node 1's frames; its first Ack to Z is lost.
	zAcks := 0
	for i := 0; i < 1200; i++ {
		m.run(100 * time.Millisecond)
		toB()
		for _, f := range takeAcks() {
			if len(peer.rx) >= 3 && zAcks == 0 {
				zAcks++
				continue // Z's Ack, lost
			}
			inject([]arqFrame{f})
		}
	}
	ids := r.delivered()
	if len(peer.rx) != 3 || ids[2] != 1 || ids[4] != 1 || ids[5] != 1 {
		r.logAir(t)
		t.Errorf("node 3 delivered %d packets %v (id: times), want X (2), Y (4) and Z (5) once each", len(peer.rx), ids)
	}
	if s := stats(); s.SettledDropped != 1 || zAcks != 1 {
		t.Errorf("settled dropped %d, Z's Acks lost %d; want Y's retransmission dropped, Z's Ack lost once", s.SettledDropped, zAcks)
	}
}
