package arq

import (
	"testing"
	"time"

	"github.com/slided/slided/framing"
)

// groupRecorder is a recorder whose peers take version-2 Acks (GroupSink)
// when v2 says so; it sends version-2 frames to them, as the link does.
type groupRecorder struct {
	recorder
	v2 bool
}

func (g *groupRecorder) Grouped(time.Time, framing.NodeID) bool { return g.v2 }

func (g *groupRecorder) Transmit(now time.Time, f Frame) {
	if g.v2 {
		f.Header.Version = framing.Version2
	}
	g.recorder.Transmit(now, f)
}

func newGroupNode(t testing.TB, self framing.NodeID, v2 bool) (node, *groupRecorder) {
	t.Helper()
	return newGroupNodeWith(t, testConfig(self), v2)
}

// newGroupNodeWith is newGroupNode with config c (GroupPolls set on it).
func newGroupNodeWith(t testing.TB, c Config, v2 bool) (node, *groupRecorder) {
	t.Helper()
	c.GroupPolls = true
	g := &groupRecorder{v2: v2}
	a, err := New(c, g)
	if err != nil {
		t.Fatal(err)
	}
	return node{a, &g.recorder}, g
}

// polls counts the fragments with AckReq among fs, and acks the Ack frames
// and their records.
func polls(t *testing.T, fs []frame) (polls, acks, records int) {
	t.Helper()
	for _, f := range fs {
		switch f.h.Kind {
		case framing.KindFragment:
			if h, _, err := framing.ParseFrag(f.p); err == nil && h.AckReq {
				polls++
			}
		case framing.KindAck:
			r, err := framing.ParseAcks(nil, f.p)
			if err != nil {
				t.Fatalf("ack % x: %v", f.p, err)
			}
			acks++
			records += len(r)
		}
	}
	return polls, acks, records
}

// groupRun runs a and b until nothing is pending or 10 minutes pass: each
// side's frames reach the other (unless drop says so, by the sender and the
// frame's number among all that sender's frames), each flushes its groups
// when it has nothing else to send, and timers run at their deadlines. It
// returns the frames each side sent.
func groupRun(t *testing.T, now time.Time, a, b node, drop func(from framing.NodeID, n int, f frame) bool) (fromA, fromB []frame, end time.Time) {
	t.Helper()
	limit := now.Add(10 * time.Minute)
	for range 10000 {
		for _, n := range []node{a, b} {
			if len(n.rec.tx) == 0 {
				n.Flush(now)
			}
		}
		fa, fb := a.rec.take(), b.rec.take()
		if len(fa)+len(fb) == 0 {
			d, ok := a.Deadline()
			if db, okb := b.Deadline(); okb && (!ok || db.Before(d)) {
				d, ok = db, true
			}
			if !ok || d.After(limit) {
				return fromA, fromB, now
			}
			now = d
			a.Poll(now)
			b.Poll(now)
			continue
		}
		now = now.Add(time.Millisecond)
		for _, f := range fa {
			if drop == nil || !drop(1, len(fromA), f) {
				b.Receive(now, f.h, f.p)
			}
			fromA = append(fromA, f)
		}
		for _, f := range fb {
			if drop == nil || !drop(2, len(fromB), f) {
				a.Receive(now, f.h, f.p)
			}
			fromB = append(fromB, f)
		}
	}
	t.Fatal("no end")
	return
}

// synced makes a's first packet to b acknowledged (a sender's first packet
// goes alone, marked First).
func synced(t *testing.T, a, b node) time.Time {
	t.Helper()
	if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, 99)); err != nil {
		t.Fatal(err)
	}
	_, _, now := groupRun(t, t0, a, b, nil)
	b.rec.rx = nil
	return now
}

// TestGroupPolls: towards a version-2 peer, packets sent together share one
// poll and get one Ack with a record each; a version-1 peer keeps one poll
// and one Ack per packet.
func TestGroupPolls(t *testing.T) {
	for _, v2 := range []bool{true, false} {
		a, _ := newGroupNode(t, 1, v2)
		b, _ := newGroupNode(t, 2, v2)
		now := synced(t, a, b)
		for i := range 4 {
			if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, byte(i))); err != nil {
				t.Fatal(err)
			}
		}
		fromA, fromB, _ := groupRun(t, now, a, b, nil)
		p, k, r := polls(t, fromA)
		_, acks, records := polls(t, fromB)
		st := a.Stats()
		t.Logf("version 2 %v: %d frames, %d polls; %d Acks, %d records; acked %d", v2, len(fromA), p, acks, records, st.Acked)
		want := 1
		if !v2 {
			want = 4
		}
		if p != want || acks != want || records != 4 || k+r != 0 || len(fromA) != 4 || st.Acked != 5 || len(b.rec.rx) != 4 {
			t.Errorf("version 2 %v: %d polls, %d Acks with %d records, %d frames, %d acked, %d delivered; want %d polls and Acks, 4 records, 4 frames, 5 acked, 4 delivered",
				v2, p, acks, records, len(fromA), st.Acked, len(b.rec.rx), want)
		}
		if _, ok := a.Deadline(); ok {
			t.Errorf("version 2 %v: a timer still runs", v2)
		}
	}
}

// TestGroupLosses: whatever of a group is lost (a rider, the poll, the Ack,
// a fragment of a rider, the receiver's memory), every packet is delivered
// once and acknowledged.
func TestGroupLosses(t *testing.T) {
	tests := []struct {
		desc string
		size int // bytes a packet: 10 is one fragment, 50 three
		drop func(from framing.NodeID, n int, f frame) bool
	}{
		{"nothing lost", 10, nil},
		{"the middle packet", 10, func(from framing.NodeID, n int, _ frame) bool { return from == 1 && n == 1 }},
		{"the first packet", 10, func(from framing.NodeID, n int, _ frame) bool { return from == 1 && n == 0 }},
		{"the poll", 10, func(from framing.NodeID, n int, _ frame) bool { return from == 1 && n == 2 }},
		{"the Ack", 10, func(from framing.NodeID, n int, _ frame) bool { return from == 2 && n == 0 }},
		{"the poll and its retransmission", 10, func(from framing.NodeID, n int, _ frame) bool { return from == 1 && (n == 2 || n == 5) }},
		{"a rider's middle fragment", 50, func(from framing.NodeID, n int, _ frame) bool { return from == 1 && n == 1 }},
		{"a rider's last fragment", 50, func(from framing.NodeID, n int, _ frame) bool { return from == 1 && n == 2 }},
		{"every other frame once", 50, func(from framing.NodeID, n int, _ frame) bool { return n < 12 && n%2 == 1 }},
	}
	for _, tc := range tests {
		a, _ := newGroupNode(t, 1, true)
		b, _ := newGroupNode(t, 2, true)
		now := synced(t, a, b)
		for i := range 3 {
			if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(tc.size, byte(i))); err != nil {
				t.Fatal(err)
			}
		}
		fromA, fromB, end := groupRun(t, now, a, b, tc.drop)
		st := a.Stats()
		p, _, _ := polls(t, fromA)
		_, acks, records := polls(t, fromB)
		t.Logf("%s: %d frames (%d polls), %d Acks (%d records), %v; %+v", tc.desc, len(fromA), p, acks, records, end.Sub(now), st)
		if st.Acked != 4 || st.GiveUps != 0 || len(b.rec.rx) != 3 {
			t.Errorf("%s: acked %d, given up %d, delivered %d; want 4, 0, 3", tc.desc, st.Acked, st.GiveUps, len(b.rec.rx))
		}
	}
}

// TestGroupReceiverRestart: a receiver that restarts between the riders and
// the poll answers the poll alone; the riders' timers recover them.
func TestGroupReceiverRestart(t *testing.T) {
	a, _ := newGroupNode(t, 1, true)
	b, _ := newGroupNode(t, 2, true)
	now := synced(t, a, b)
	for i := range 3 {
		if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	a.Flush(now)
	fs := a.rec.take()
	deliverAll(now, b, fs[:2], nil) // the riders reach the old receiver
	b2, _ := newGroupNode(t, 2, true)
	deliverAll(now, b2, fs[2:], nil)
	_, fromB, _ := groupRun(t, now, a, b2, nil)
	if st := a.Stats(); st.Acked != 4 || st.GiveUps != 0 {
		t.Errorf("acked %d, given up %d; want 4, 0 (%d Acks)", st.Acked, st.GiveUps, len(fromB))
	}
}

// TestGroupBounds: a group ends, polled, before its Ack would hold more than
// MaxAckRecords records; every Ack stays within the bounds.
func TestGroupBounds(t *testing.T) {
	for _, tc := range []struct {
		maxPayload, wantPolls int
	}{
		{24, 5},  // 24-byte Acks: 8 records of a one-fragment packet
		{100, 3}, // 16 records (48 bytes)
	} {
		c := DefaultConfig(1, tc.maxPayload, 200, Timing{BitRate: 9600, Propagation: 10 * time.Millisecond, Margin: 20 * time.Millisecond})
		c.GroupPolls, c.Window = true, 40
		c.SizeForWindow()
		g := &groupRecorder{v2: true}
		a0, err := New(c, g)
		if err != nil {
			t.Fatal(err)
		}
		a := node{a0, &g.recorder}
		c.Self = 2
		g2 := &groupRecorder{v2: true}
		b0, err := New(c, g2)
		if err != nil {
			t.Fatal(err)
		}
		b := node{b0, &g2.recorder}
		now := synced(t, a, b)
		for i := range 40 {
			if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, byte(i))); err != nil {
				t.Fatal(err)
			}
		}
		fromA, fromB, _ := groupRun(t, now, a, b, nil)
		p, _, _ := polls(t, fromA)
		_, acks, records := polls(t, fromB)
		if p != tc.wantPolls || acks != tc.wantPolls || records != 40 || a.Stats().Acked != 41 {
			t.Errorf("max payload %d, 40 packets: %d polls, %d Acks, %d records, %d acked; want %d, %d, 40, 41",
				tc.maxPayload, p, acks, records, a.Stats().Acked, tc.wantPolls, tc.wantPolls)
		}
		for _, f := range fromB {
			if len(f.p) > min(framing.AcksMaxLen, tc.maxPayload) {
				t.Errorf("max payload %d: Ack of %d bytes", tc.maxPayload, len(f.p))
			}
		}
	}
}

// TestMaxGroup: with MaxGroup 4 the fourth packet of a group polls as soon
// as it is sent, without waiting for Flush, and eight packets make two
// groups of four: two polls, two Acks of four records each.
func TestMaxGroup(t *testing.T) {
	c := testConfig(1)
	c.GroupPolls, c.MaxGroup, c.Window = true, 4, 8
	c.SizeForWindow()
	g := &groupRecorder{v2: true}
	aa, err := New(c, g)
	if err != nil {
		t.Fatal(err)
	}
	a := node{aa, &g.recorder}
	b, _ := newGroupNode(t, 2, true)
	now := synced(t, a, b)
	for i := range 4 {
		if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if p, _, _ := polls(t, a.rec.tx); p != 1 || a.Open() {
		t.Errorf("four packets: %d polls, a group open %v; want 1 poll, none open", p, a.Open())
	}
	for i := range 4 {
		if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, byte(4+i))); err != nil {
			t.Fatal(err)
		}
	}
	fromA, fromB, _ := groupRun(t, now, a, b, nil)
	p, _, _ := polls(t, fromA)
	_, acks, records := polls(t, fromB)
	if p != 2 || acks != 2 || records != 8 || len(b.rec.rx) != 8 {
		t.Errorf("eight packets: %d polls, %d Acks of %d records, %d delivered; want 2, 2, 8, 8", p, acks, records, len(b.rec.rx))
	}
	c.MaxGroup = framing.MaxAckRecords + 1
	if err := c.Validate(); err == nil {
		t.Errorf("MaxGroup %d: valid", c.MaxGroup)
	}
}

// TestRidersWaitForTheirGroupsPoll: a retransmission round's poll, handed
// over while riders of a group wait for the group's poll, does not take
// them: the driver may send it first (the link's MAC queue serves
// retransmissions as a flow of their own), and its Ack, which reports only
// what had come before it, settled nothing of the riders, whose timers then
// ran from its TxDone and expired while they waited, acknowledged or not,
// for their own poll (100 saturated nodes, a turn every two minutes: docs/mac.md).
func TestRidersWaitForTheirGroupsPoll(t *testing.T) {
	c := testConfig(1)
	c.ArmOnTxDone = true
	// The turn comes within the packets' life, as a daemon's MaxAge
	// (minutes) allows; past it their frames would not go at all
	// (Frame.Expires).
	c.MaxAge = 100 * c.MaxAckTimeout
	a, _ := newGroupNodeWith(t, c, true)
	b, _ := newGroupNode(t, 2, true)
	now := synced(t, a, b)
	send := func(seed byte) {
		t.Helper()
		if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, seed)); err != nil {
			t.Fatal(err)
		}
	}
	txDone := func(at time.Time, fs []frame) {
		for _, f := range fs {
			a.TxDone(at, f.h, f.p)
		}
	}
	// P0 goes alone, polled, and is lost.
	send(0)
	a.Flush(now)
	txDone(now, a.rec.take())
	// P1 and P2 form a group: P1 rides, P2's last fragment waits for Flush.
	send(1)
	send(2)
	riders := a.rec.take()
	if p, _, _ := polls(t, riders); p != 0 || len(riders) != 1 {
		t.Fatalf("group: %d frames, %d polls; want one rider", len(riders), p)
	}
	// P0's timer runs out: its retransmission goes first, as the MAC
	// queue's rounds may send it, and is answered at once.
	d, ok := a.Deadline()
	if !ok {
		t.Fatal("no timer for the lost poll")
	}
	now = d
	a.Poll(now)
	retx := a.rec.take()
	if p, _, _ := polls(t, retx); p != 1 || len(retx) != 1 {
		t.Fatalf("after the timeout: %d frames, %d polls; want P0's poll again", len(retx), p)
	}
	txDone(now, retx)
	deliverAll(now, b, retx, nil)
	deliverAll(now, a, b.rec.take(), nil)
	// The group's poll goes; the group goes on air only at the node's next
	// turn, long after any timer armed at P0's retransmission would have
	// run out (AckTimeout; 16 of them at the most).
	a.Flush(now)
	group := append(riders, a.rec.take()...)
	turn := now.Add(40 * c.MaxAckTimeout)
	for range 100 {
		d, ok := a.Deadline()
		if !ok || !d.Before(turn) {
			break
		}
		a.Poll(d)
	}
	if st := a.Stats(); st.Timeouts != 1 || st.Retransmissions != 1 {
		t.Fatalf("before the group went on air: %d timeouts, %d retransmissions; want P0's one", st.Timeouts, st.Retransmissions)
	}
	a.rec.take()
	txDone(turn, group)
	deliverAll(turn, b, group, nil)
	acks := b.rec.take()
	if _, n, r := polls(t, acks); n != 1 || r != 2 {
		t.Fatalf("the group's Acks: %d with %d records; want one with two", n, r)
	}
	deliverAll(turn, a, acks, nil)
	st := a.Stats()
	if st.Timeouts != 1 || st.Retransmissions != 1 || st.Acked != 4 || st.GiveUps != 0 || len(b.rec.rx) != 3 {
		t.Errorf("%d timeouts, %d retransmissions, %d acked, %d given up, %d delivered; want 1, 1, 4, 0, 3",
			st.Timeouts, st.Retransmissions, st.Acked, st.GiveUps, len(b.rec.rx))
	}
	if _, ok := a.Deadline(); ok {
		t.Error("a timer still runs")
	}
}

// TestRiderRecordWaitsForItsPoll: a rider received long before its group's
// poll (on a crowded channel the riders of the next group go in one turn,
// the poll in the sender's next, minutes later) is reported in the poll's
// Ack as long as the receiver remembers delivering it (DupLifetime), not
// only within ReasmTimeout: past that the record was dropped, the rider's
// timer ran out and a packet delivered long before went again.
func TestRiderRecordWaitsForItsPoll(t *testing.T) {
	c := testConfig(1)
	c.ArmOnTxDone = true
	a, _ := newGroupNodeWith(t, c, true)
	b, _ := newGroupNode(t, 2, true)
	now := synced(t, a, b)
	for i := range 2 {
		if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	rider := a.rec.take()
	txDone := func(at time.Time, fs []frame) {
		for _, f := range fs {
			a.TxDone(at, f.h, f.p)
		}
	}
	txDone(now, rider)
	deliverAll(now, b, rider, nil)
	a.Flush(now)
	poll := a.rec.take()
	turn := now.Add(c.ReasmTimeout + (c.DupLifetime-c.ReasmTimeout)/2)
	if d, ok := a.Deadline(); ok && d.Before(turn) {
		t.Fatalf("a timer at %v, before the poll went", d.Sub(now))
	}
	txDone(turn, poll)
	deliverAll(turn, b, poll, nil)
	acks := b.rec.take()
	if _, n, r := polls(t, acks); n != 1 || r != 2 {
		t.Fatalf("the poll's Ack, %v after the rider: %d Acks with %d records; want one with two", turn.Sub(now), n, r)
	}
	deliverAll(turn, a, acks, nil)
	st := a.Stats()
	if st.Acked != 3 || st.Timeouts != 0 || st.Retransmissions != 0 || len(b.rec.rx) != 2 {
		t.Errorf("%d acked, %d timeouts, %d retransmissions, %d delivered; want 3, 0, 0, 2", st.Acked, st.Timeouts, st.Retransmissions, len(b.rec.rx))
	}
}
