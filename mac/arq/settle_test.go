package arq

import (
	"testing"
	"time"

	"github.com/slided/slided/framing"
)

// settleRecorder is a recorder that is also a SettleSink.
type settleRecorder struct {
	recorder
	settled []framing.Ack // Seq, and the destination in Count
}

func (r *settleRecorder) Settled(_ time.Time, dst framing.NodeID, seq uint8) {
	r.settled = append(r.settled, framing.Ack{Seq: seq, Count: uint8(dst)})
}

// TestSettledFirstRetransmissionOvertaken: until the receiver acknowledges
// one of its packets the sender marks them First. A First retransmission
// of X waits in the driver's queue when the Ack of X's first round comes:
// the sender is synchronised and sends Z unmarked, which (another flow in
// the MAC queue) goes on air before X's retransmission, and Z's Ack is
// lost. The ARQ reports X settled (SettleSink) from that Ack, and a driver
// that then takes X's queued First retransmission out, as the link engine
// does, gets each packet delivered once. Sent, the late First fragment
// made the receiver take it for a restart: it forgot Z, delivered X again
// and Z's retransmission again (4 deliveries before SettleSink).
func TestSettledFirstRetransmissionOvertaken(t *testing.T) {
	c, a, b, srec := settleRig(t)
	send := func(now time.Time, seed byte) []frame {
		t.Helper()
		return sendTo2(t, a, now, pattern(10, seed))
	}
	x := send(t0, 1)
	now := t0
	a.TxDone(now, x[0].h, x[0].p)
	deliverAll(now, b, x, nil)
	xAck := b.rec.take() // delayed
	now = now.Add(2*c.AckTimeout + time.Millisecond)
	a.Poll(now)
	xr := a.rec.take() // X's retransmission, First, waits in the MAC queue
	if len(xr) != 1 {
		t.Fatalf("%d frames retransmitted, want 1", len(xr))
	}
	if h, _, _ := framing.ParseFrag(xr[0].p); !h.First {
		t.Fatal("X's retransmission not marked First")
	}
	deliverAll(now, a, xAck, nil) // the first round's Ack: synchronised, X settled
	if len(srec.settled) != 1 || srec.settled[0] != (framing.Ack{Seq: xHead(t, x).Seq, Count: 2}) {
		t.Fatalf("settled %+v, want X's seq %d to node 2 once", srec.settled, xHead(t, x).Seq)
	}
	// The driver takes X's First frames out of its queue (the link
	// engine's arqSink.Settled); it still reports the poll to TxDone.
	var queued []frame
	for _, f := range xr {
		if h, _, _ := framing.ParseFrag(f.p); h.First && h.Seq == srec.settled[0].Seq {
			a.TxDone(now, f.h, f.p)
			continue
		}
		queued = append(queued, f)
	}
	z := send(now, 3)
	if h, _, _ := framing.ParseFrag(z[0].p); h.First {
		t.Fatal("Z marked First after the Ack")
	}
	a.TxDone(now, z[0].h, z[0].p)
	deliverAll(now, b, z, nil)
	b.rec.take() // Z's Ack lost
	now = now.Add(50 * time.Millisecond)
	for _, f := range queued { // what was left of the queue, after Z
		a.TxDone(now, f.h, f.p)
	}
	deliverAll(now, b, queued, nil)
	deliverAll(now, a, b.rec.take(), nil)
	runUntilAcked(a, b, now, 2)
	if len(b.rec.rx) != 2 || b.rec.rx[0].p[0] != pattern(10, 1)[0] || b.rec.rx[1].p[0] != pattern(10, 3)[0] {
		for i, f := range b.rec.rx {
			t.Logf("delivered %d: % x", i, f.p)
		}
		t.Fatalf("receiver delivered %d packets, want 2: X then Z, once each", len(b.rec.rx))
	}
	if st := a.Stats(); st.Acked != 2 || len(srec.settled) != 2 {
		t.Errorf("acked %d, settled %+v; want 2 and 2", st.Acked, srec.settled)
	}
}

// settleRig is node 1 (ArmOnTxDone, its sink a settleRecorder) and node 2.
func settleRig(t *testing.T) (Config, node, node, *settleRecorder) {
	t.Helper()
	c := testConfig(1)
	c.ArmOnTxDone = true
	srec := &settleRecorder{}
	sa, err := New(c, srec)
	if err != nil {
		t.Fatal(err)
	}
	return c, node{sa, &srec.recorder}, newNode(t, testConfig(2)), srec
}

// sendTo2 sends p from a to node 2 and returns the frames it transmitted.
func sendTo2(t *testing.T, a node, now time.Time, p []byte) []frame {
	t.Helper()
	if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, p); err != nil {
		t.Fatal(err)
	}
	return a.rec.take()
}

// runUntilAcked lets a's timers run (a second a step, at most 50) with
// every frame on air and delivered, until a has had acked packets
// acknowledged.
func runUntilAcked(a, b node, now time.Time, acked uint64) {
	for i := 0; i < 50 && a.Stats().Acked < acked; i++ {
		now = now.Add(time.Second)
		a.Poll(now)
		fs := a.rec.take()
		for _, f := range fs {
			a.TxDone(now, f.h, f.p)
		}
		deliverAll(now, b, fs, nil)
		deliverAll(now, a, b.rec.take(), nil)
	}
}

// xHead is the fragment header of the first frame of fs.
func xHead(t *testing.T, fs []frame) framing.FragHeader {
	t.Helper()
	h, _, err := framing.ParseFrag(fs[0].p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestSettledNotForGiveUpsOrStaleAcks: SettleSink hears of packets an Ack
// completes, once each: not of a packet given up, not again for a late
// duplicate Ack. (The one exception, a late Ack of the First packet given
// up last, which synchronises the sender, is TestLateAckOfFirstSyncs's.)
func TestSettledNotForGiveUpsOrStaleAcks(t *testing.T) {
	c := testConfig(1)
	srec := &settleRecorder{}
	sa, err := New(c, srec)
	if err != nil {
		t.Fatal(err)
	}
	a, b := node{sa, &srec.recorder}, newNode(t, testConfig(2))
	if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, 1)); err != nil {
		t.Fatal(err)
	}
	x := a.rec.take()
	deliverAll(t0, b, x, nil)
	ack := b.rec.take()
	deliverAll(t0, a, ack, nil)
	deliverAll(t0, a, ack, nil) // a duplicate: stale
	if len(srec.settled) != 1 {
		t.Fatalf("settled %+v after an Ack and its duplicate, want once", srec.settled)
	}
	// Y is never answered: given up, not settled.
	now := t0
	if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, 2)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000 && a.Stats().GiveUps == 0; i++ {
		now = now.Add(time.Second)
		a.Poll(now)
		a.rec.take()
	}
	if st := a.Stats(); st.GiveUps != 1 || len(srec.settled) != 1 {
		t.Errorf("give-ups %d, settled %+v; want 1 give-up, still one settled", st.GiveUps, srec.settled)
	}
}

// TestSettledFirstAckInPart: as TestSettledFirstRetransmissionOvertaken,
// but the first Ack acknowledges X only in part (its first fragment was
// lost): the sender is synchronised by it all the same and sends Z
// unmarked, so X's First frames still queued must go too, and the ARQ
// reports X to SettleSink then (X stays outstanding, its missing fragment
// goes again unmarked). Before, only a whole Ack was reported, X's queued
// First retransmission went on air after Z, the receiver took it for a
// restart, and Z (its Ack lost) was delivered twice.
func TestSettledFirstAckInPart(t *testing.T) {
	c, a, b, srec := settleRig(t)
	send := func(now time.Time, seed byte) []frame {
		t.Helper()
		return sendTo2(t, a, now, pattern(30, seed))
	}
	txDone := func(now time.Time, fs []frame) {
		for _, f := range fs {
			a.TxDone(now, f.h, f.p)
		}
	}
	x := send(t0, 1)
	if len(x) != 2 {
		t.Fatalf("X went as %d frames, want 2 fragments", len(x))
	}
	now := t0
	txDone(now, x)
	deliverAll(now, b, x, func(_ int, f frame) bool { return fragIndex(t, f) == 0 }) // fragment 0 lost
	xAck := b.rec.take()                                                             // in part, delayed
	now = now.Add(2*c.AckTimeout + time.Millisecond)
	a.Poll(now)
	xr := a.rec.take() // X's First retransmission, waiting in the MAC queue
	if len(xr) == 0 {
		t.Fatal("no retransmission of X")
	}
	deliverAll(now, a, xAck, nil) // the first Ack: synchronised
	reported := len(srec.settled) == 1 && srec.settled[0].Seq == xHead(t, x).Seq
	if !reported {
		t.Errorf("settled %+v, want X's seq %d reported at the first Ack", srec.settled, xHead(t, x).Seq)
	}
	// The driver drops X's queued First frames when told (reporting them
	// to TxDone, as the link engine does); the rest stays queued.
	var queued []frame
	for _, f := range append(xr, a.rec.take()...) {
		if h, _, _ := framing.ParseFrag(f.p); reported && h.First && h.Seq == srec.settled[0].Seq {
			a.TxDone(now, f.h, f.p)
			continue
		}
		queued = append(queued, f)
	}
	z := send(now, 3)
	for _, f := range z {
		if h, _, _ := framing.ParseFrag(f.p); h.First {
			t.Fatal("Z marked First after the first Ack")
		}
	}
	txDone(now, z)
	deliverAll(now, b, z, nil)
	b.rec.take() // Z's Ack lost
	now = now.Add(50 * time.Millisecond)
	txDone(now, queued)
	deliverAll(now, b, queued, nil)
	deliverAll(now, a, b.rec.take(), nil)
	runUntilAcked(a, b, now, 2)
	got := map[byte]int{}
	for _, f := range b.rec.rx {
		got[f.p[0]]++
	}
	if len(b.rec.rx) != 2 || got[pattern(30, 1)[0]] != 1 || got[pattern(30, 3)[0]] != 1 {
		for i, f := range b.rec.rx {
			t.Logf("delivered %d: % x", i, f.p)
		}
		t.Fatalf("receiver delivered %d packets, want X and Z once each", len(b.rec.rx))
	}
	if st := a.Stats(); st.Acked != 2 {
		t.Errorf("acked %d, want 2", st.Acked)
	}
}

// TestLateAckOfFirstSettlesQueuedFirst: X, the sender's First packet, goes
// on air after MaxAge and is given up at its TxDone; the sender, still not
// synchronised, sends the next packet Y, marked First, which waits in the
// driver's queue; then X's Ack comes, late, and synchronises the sender
// (TestLateAckOfFirstSyncs). The next packet Z goes unmarked and, in
// another flow of the MAC queue, on air before Y; Z's Ack is lost. The ARQ
// reports Y (and X) to SettleSink at that Ack, and a driver that takes
// their queued First frames out, as the link engine does, gets X, Y and Z
// delivered once each: Y goes again unmarked when its timer runs out.
// Without it (7f15105 alone) Y's late First fragment made the receiver
// take it for a restart: it forgot Z and delivered it again at its
// retransmission.
func TestLateAckOfFirstSettlesQueuedFirst(t *testing.T) {
	c, a, b, srec := settleRig(t)
	x := sendTo2(t, a, t0, pattern(10, 1))
	now := t0.Add(c.MaxAge + time.Second) // on air after MaxAge: given up at once
	a.TxDone(now, x[0].h, x[0].p)
	a.Poll(now)
	if st := a.Stats(); st.GiveUps != 1 {
		t.Fatalf("%d give-ups, want X's", st.GiveUps)
	}
	deliverAll(now, b, x, nil)
	xAck := b.rec.take() // comes after the give-up
	y := sendTo2(t, a, now, pattern(10, 2))
	if !xHead(t, y).First {
		t.Fatal("Y not marked First before any Ack")
	}
	now = now.Add(20 * time.Millisecond)
	deliverAll(now, a, xAck, nil) // late: synchronises the sender
	settled := func(f frame) bool {
		h, _, _ := framing.ParseFrag(f.p)
		for _, s := range srec.settled {
			if h.First && s.Seq == h.Seq && s.Count == 2 {
				return true
			}
		}
		return false
	}
	// The driver takes the settled packets' First frames out of its
	// queue and reports their polls to TxDone (arqSink.Settled).
	var queued []frame
	for _, f := range y {
		if settled(f) {
			a.TxDone(now, f.h, f.p)
			continue
		}
		queued = append(queued, f)
	}
	z := sendTo2(t, a, now, pattern(10, 3))
	if xHead(t, z).First {
		t.Fatal("Z marked First after the late Ack")
	}
	a.TxDone(now, z[0].h, z[0].p)
	deliverAll(now, b, z, nil)
	b.rec.take() // Z's Ack lost
	now = now.Add(50 * time.Millisecond)
	for _, f := range queued { // what was left of the queue, after Z
		a.TxDone(now, f.h, f.p)
	}
	deliverAll(now, b, queued, nil)
	deliverAll(now, a, b.rec.take(), nil)
	runUntilAcked(a, b, now, 2)
	got := map[byte]int{}
	for _, f := range b.rec.rx {
		got[f.p[0]]++
	}
	if len(b.rec.rx) != 3 || got[pattern(10, 1)[0]] != 1 || got[pattern(10, 2)[0]] != 1 || got[pattern(10, 3)[0]] != 1 {
		for i, f := range b.rec.rx {
			t.Logf("delivered %d: % x", i, f.p)
		}
		t.Fatalf("receiver delivered %d packets, want X, Y and Z once each", len(b.rec.rx))
	}
	if st := a.Stats(); st.Acked != 2 || st.GiveUps != 1 {
		t.Errorf("acked %d, give-ups %d; want Y and Z acked, X given up", st.Acked, st.GiveUps)
	}
}
