package arq

import (
	"testing"
	"time"

	"github.com/slided/slided/framing"
)

// TestQueuedPollGivenUpAtMaxAge: with ArmOnTxDone a round's timer starts
// when its poll leaves the driver, and on a crowded channel the poll may
// wait there for minutes, past MaxAge. The packet is given up at MaxAge all
// the same (a give-up, not a timeout: nothing timed out), its first
// transmission's as a retransmission round's, and the window opens. Before,
// MaxAge was checked only when a timer ran or an Ack came: the packet was
// held, with no deadline at all, until the poll left, and the link put its
// frames on air after the receiver had forgotten the delivery
// (docs/link-arq.md, "DupLifetime").
func TestQueuedPollGivenUpAtMaxAge(t *testing.T) {
	c := testConfig(1)
	c.ArmOnTxDone = true
	a := newNode(t, c)
	send := func(at time.Time, seed byte) {
		t.Helper()
		if err := a.Send(at, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(50, seed)); err != nil {
			t.Fatal(err)
		}
	}
	// X: its first transmission's poll never leaves.
	send(t0, 1)
	a.rec.take()
	end := t0.Add(c.MaxAge)
	if d, ok := a.Deadline(); !ok || !d.Equal(end) {
		t.Fatalf("deadline %v, %v; want MaxAge (%v) after Send", d.Sub(t0), ok, c.MaxAge)
	}
	a.Poll(end.Add(-time.Nanosecond))
	if st := a.Stats(); st.GiveUps != 0 {
		t.Fatalf("given up before MaxAge: %+v", st)
	}
	a.Poll(end)
	if st := a.Stats(); st.GiveUps != 1 || st.Timeouts != 0 || st.HeldBytes != 0 {
		t.Fatalf("at MaxAge: %d given up, %d timeouts, %d bytes held; want 1, 0, 0", st.GiveUps, st.Timeouts, st.HeldBytes)
	}
	if _, ok := a.Deadline(); ok {
		t.Fatal("a deadline after the give-up")
	}
	// Y: its first poll leaves and times out; the retransmission round's
	// poll never leaves.
	sentY := end
	send(sentY, 2)
	fs := a.rec.take()
	for _, f := range fs {
		a.TxDone(sentY, f.h, f.p)
	}
	d, ok := a.Deadline()
	if !ok || !d.Before(sentY.Add(c.MaxAge)) {
		t.Fatalf("Y's timer %v, %v; want one before its MaxAge", d.Sub(sentY), ok)
	}
	a.Poll(d)
	if retx := a.rec.take(); len(retx) != 1 {
		t.Fatalf("%d frames after Y's timeout, want its poll again", len(retx))
	}
	if d, ok := a.Deadline(); !ok || !d.Equal(sentY.Add(c.MaxAge)) {
		t.Fatalf("deadline %v, %v; want Y's MaxAge", d.Sub(sentY), ok)
	}
	a.Poll(sentY.Add(c.MaxAge))
	if st := a.Stats(); st.GiveUps != 2 || st.Timeouts != 1 || st.HeldBytes != 0 {
		t.Fatalf("at Y's MaxAge: %d given up, %d timeouts, %d bytes held; want 2, 1, 0", st.GiveUps, st.Timeouts, st.HeldBytes)
	}
}

// expiresSink records each frame's Expires.
type expiresSink struct {
	recorder
	expires []time.Time
}

func (s *expiresSink) Transmit(now time.Time, f Frame) {
	s.recorder.Transmit(now, f)
	s.expires = append(s.expires, f.Expires)
}

// TestFrameExpires: every fragment of a unicast packet, first transmission
// and retransmissions, grouped or not, carries the end of the packet's
// life (Send's now + MaxAge), where the driver stops sending it; Acks and
// broadcast frames carry none, nor anything without MaxAge.
func TestFrameExpires(t *testing.T) {
	for _, grouped := range []bool{false, true} {
		c := testConfig(1)
		c.ArmOnTxDone = true
		s := &expiresSink{}
		var sink Sink = s
		if grouped {
			c.GroupPolls = true
			sink = &groupExpiresSink{s}
		}
		a, err := New(c, sink)
		if err != nil {
			t.Fatal(err)
		}
		b := newNode(t, testConfig(2))
		check := func(what string, from int, want time.Time) {
			t.Helper()
			if from == len(s.expires) {
				t.Fatalf("grouped %v, %s: no frames", grouped, what)
			}
			for i := from; i < len(s.expires); i++ {
				if !s.expires[i].Equal(want) {
					t.Errorf("grouped %v, %s: frame %d expires %v, want %v", grouped, what, i, s.expires[i], want)
				}
			}
		}
		n := len(s.expires)
		if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: framing.Broadcast}, pattern(60, 1)); err != nil {
			t.Fatal(err)
		}
		check("broadcast", n, time.Time{})
		// The First packet (one at a time), then two more once synchronised.
		n = len(s.expires)
		if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(60, 2)); err != nil {
			t.Fatal(err)
		}
		check("First packet", n, t0.Add(c.MaxAge))
		for _, f := range s.take() {
			a.TxDone(t0, f.h, f.p)
			b.Receive(t0, f.h, f.p)
		}
		for _, f := range b.rec.take() {
			a.Receive(t0, f.h, f.p)
		}
		later := t0.Add(time.Second)
		n = len(s.expires)
		for i := range 2 {
			if err := a.Send(later, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(60, byte(3+i))); err != nil {
				t.Fatal(err)
			}
		}
		a.Flush(later)
		check("packets", n, later.Add(c.MaxAge))
		for _, f := range s.take() {
			a.TxDone(later, f.h, f.p)
		}
		d, ok := a.Deadline()
		if !ok {
			t.Fatal("no timer")
		}
		n = len(s.expires)
		a.Poll(d)
		check("retransmissions", n, later.Add(c.MaxAge))
		// The receiver's Ack to the poll carries none.
		r := &expiresSink{}
		rb, _ := New(testConfig(2), r)
		rb.Receive(d, s.tx[len(s.tx)-1].h, s.tx[len(s.tx)-1].p)
		if len(r.tx) != 1 || r.tx[0].h.Kind != framing.KindAck || !r.expires[0].IsZero() {
			t.Errorf("grouped %v: %d frames from the receiver, expires %v; want its Ack, with none", grouped, len(r.tx), r.expires)
		}
	}
	// Without MaxAge, none.
	c := testConfig(1)
	c.MaxAge = 0
	s := &expiresSink{}
	a, _ := New(c, s)
	if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(60, 2)); err != nil {
		t.Fatal(err)
	}
	for i, x := range s.expires {
		if !x.IsZero() {
			t.Errorf("MaxAge 0: frame %d expires %v, want none", i, x)
		}
	}
}

// groupExpiresSink groups towards every peer.
type groupExpiresSink struct{ *expiresSink }

func (groupExpiresSink) Grouped(time.Time, framing.NodeID) bool { return true }

// TestResendPollsYoungest: a retransmission batch that one grouped Ack
// starts polls with its youngest packet, so that its riders, older, reach
// their MaxAge first. Before, the Ack's order (the polled packet's record
// first, older ones after) made the oldest packet the poll: when it expired
// waiting in the MAC queue the driver dropped it (no frame goes on air past
// MaxAge), its TxDone armed the younger riders, whose frames had not left,
// and each timed out and backed the peer's timeout off (found in review:
// 63 riders timed out so in a 100-node ring).
func TestResendPollsYoungest(t *testing.T) {
	c := testConfig(1)
	c.ArmOnTxDone = true
	a, _ := newGroupNodeWith(t, c, true)
	b, _ := newGroupNodeWith(t, testConfig(2), true)
	send := func(at time.Time, seed byte) {
		t.Helper()
		if err := a.Send(at, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(40, seed)); err != nil {
			t.Fatal(err)
		}
	}
	// Synchronise: the First packet and its Ack.
	send(t0, 1)
	runUntilAcked(a, b, t0, 1)
	// P1, then P2 a second later, each of two fragments, in one group;
	// only their last fragments arrive.
	t1 := t0.Add(time.Minute)
	send(t1, 2)
	send(t1.Add(time.Second), 3)
	now := t1.Add(time.Second)
	a.Flush(now)
	fs := a.rec.take()
	for _, f := range fs {
		a.TxDone(now, f.h, f.p)
	}
	deliverAll(now, b, fs, func(_ int, f frame) bool {
		h, _, err := framing.ParseFrag(f.p)
		return err == nil && h.Index == 0
	})
	acks := b.rec.take()
	if len(acks) != 1 {
		t.Fatalf("%d frames from the receiver; want one Ack", len(acks))
	}
	deliverAll(now, a, acks, nil)
	retx := a.rec.take()
	if len(retx) != 2 {
		t.Fatalf("%d frames sent again; want the two first fragments", len(retx))
	}
	seqs := map[uint8]bool{}
	var pollSeq, youngest uint8
	for _, f := range retx {
		h, _, err := framing.ParseFrag(f.p)
		if err != nil {
			t.Fatal(err)
		}
		seqs[h.Seq] = true
		youngest = max(youngest, h.Seq)
		if h.AckReq {
			pollSeq = h.Seq
		}
	}
	if len(seqs) != 2 || pollSeq != youngest {
		t.Fatalf("the batch polls with seq %d; want %d, the packet sent last", pollSeq, youngest)
	}
	// P1 reaches its MaxAge with its rider still queued: the driver drops
	// the rider, P2's poll goes and its Ack comes. Nothing times out.
	end := t1.Add(c.MaxAge)
	a.Poll(end)
	if st := a.Stats(); st.GiveUps != 1 {
		t.Fatalf("%d given up at P1's MaxAge; want 1", st.GiveUps)
	}
	var poll frame
	for _, f := range retx {
		if h, _, _ := framing.ParseFrag(f.p); h.AckReq {
			poll = f
		}
	}
	a.TxDone(end, poll.h, poll.p)
	deliverAll(end, b, []frame{poll}, nil)
	deliverAll(end, a, b.rec.take(), nil)
	if st := a.Stats(); st.Timeouts != 0 || st.Acked != 2 || st.HeldBytes != 0 {
		t.Errorf("%d timeouts, %d acked, %d bytes held; want 0, 2 (the First packet and P2), 0", st.Timeouts, st.Acked, st.HeldBytes)
	}
}
