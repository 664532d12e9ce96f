package arq

import (
	"bytes"
	"testing"
	"time"

	"github.com/slided/slided/framing"
)

// stall is the driver finding that its process did not run from from to
// to (a SIGSTOP): the timer it armed for n's Deadline (or, if that had
// passed, for from) fires late by lost, which it reports (internal/selfstall).
func stall(n node, from, to time.Time) {
	due := from
	if d, ok := n.Deadline(); ok && d.After(from) {
		due = d
	}
	n.Stalled(to, to.Sub(due))
}

// stallSender syncs a (ArmOnTxDone, as the daemon runs it) with b, sends
// four packets that leave the modem and, if reach, reach b, and returns
// the frames b answered with (its Acks) and the time.
func stallSender(t *testing.T, reach bool) (a, b node, acks []frame, now time.Time) {
	t.Helper()
	c := testConfig(1)
	c.ArmOnTxDone = true
	a, b = newNode(t, c), newNode(t, testConfig(2))
	now = exchange(t, t0, a, b, 2, 1, 0) // the First handshake: the window opens
	for i := range 4 {
		if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, byte(20+i))); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Millisecond)
	fs := a.rec.take()
	for _, f := range fs {
		a.TxDone(now, f.h, f.p)
	}
	if reach {
		deliverAll(now, b, fs, nil)
	}
	return a, b, b.rec.take(), now
}

// drive runs a's timers (every frame leaves at once: TxDone) and passes
// its frames to b and b's to a unless silent, until a holds nothing; it
// returns when a gave its last packet up or had it acknowledged.
func drive(t *testing.T, a, b node, now time.Time, silent bool) time.Time {
	t.Helper()
	for range 1000 {
		d, ok := a.Deadline()
		if !ok {
			return now
		}
		if d.After(now) {
			now = d
		}
		a.Poll(now)
		fs := a.rec.take()
		for _, f := range fs {
			a.TxDone(now, f.h, f.p)
		}
		if !silent {
			deliverAll(now, b, fs, nil)
			deliverAll(now, a, b.rec.take(), nil)
		}
	}
	t.Fatal("the sender never finished")
	return now
}

// TestStalledSender: the sender's process does not run for 20 s (far
// longer than MaxAge) while four packets await their Acks. Acks that came
// during the stall are read before any timer gives a packet up: every
// packet acknowledged, none given up, none sent again (the old code gave
// all four up). Packets really lost are older than MaxAge by then and are
// given up without being sent again, since the peer may have forgotten
// delivering them. A peer that really is silent is given up within MaxAge
// and one ack timeout of the resumption; and without a stall reported the
// packets are given up as before.
func TestStalledSender(t *testing.T) {
	const stop = 20 * time.Second
	t.Run("acks wait to be read", func(t *testing.T) {
		a, b, acks, now := stallSender(t, true)
		resumed := now.Add(stop)
		stall(a, now, resumed)
		a.Poll(resumed) // the timer that found the stall runs before the read
		deliverAll(resumed.Add(time.Millisecond), a, acks, nil)
		if st := a.Stats(); st.GiveUps != 0 || st.Acked != 5 || st.Timeouts != 0 || st.Retransmissions != 0 {
			t.Fatalf("sender %+v: want 5 acknowledged, no give-up, no timeout", st)
		}
		if _, ok := a.Deadline(); ok {
			t.Fatal("a timer still armed with nothing outstanding")
		}
		if got := len(b.rec.rx); got != 5 {
			t.Fatalf("%d delivered, want 5", got)
		}
	})
	t.Run("packets lost: past MaxAge, not sent again", func(t *testing.T) {
		// The peer ran on through the stall and may have forgotten what it
		// delivered (DupLifetime of its own time): a packet older than
		// MaxAge is given up, never sent again, so nothing is delivered
		// twice.
		a, b, _, now := stallSender(t, false)
		resumed := now.Add(stop)
		stall(a, now, resumed)
		drive(t, a, b, resumed, false)
		if st := a.Stats(); st.GiveUps != 4 || st.Retransmissions != 0 {
			t.Fatalf("sender %+v: want the 4 packets given up, none sent again", st)
		}
		if got := len(b.rec.rx); got != 1 {
			t.Fatalf("%d delivered, want 1 (the handshake's)", got)
		}
	})
	t.Run("silent peer after a stall: given up", func(t *testing.T) {
		a, b, _, now := stallSender(t, true)
		resumed := now.Add(stop)
		stall(a, now, resumed)
		end := drive(t, a, b, resumed, true)
		st := a.Stats()
		if st.GiveUps != 4 || st.Acked != 1 {
			t.Fatalf("sender %+v: want the 4 packets given up", st)
		}
		if limit := resumed.Add(a.cfg.MaxAge + a.cfg.MaxAckTimeout); end.After(limit) {
			t.Fatalf("given up %v after the resumption, want at most MaxAge + one ack timeout (%v)", end.Sub(resumed), limit.Sub(resumed))
		}
	})
	t.Run("no stall reported: given up as before", func(t *testing.T) {
		a, b, _, now := stallSender(t, true)
		a.Poll(now.Add(stop))
		drive(t, a, b, now.Add(stop), false)
		if st := a.Stats(); st.GiveUps != 4 {
			t.Fatalf("sender %+v: want the 4 packets given up (older than MaxAge)", st)
		}
	})
}

// TestStalledReceiver: the receiver's process does not run for 20 s (far
// longer than its reorder wait and its duplicate lifetime). A packet held
// behind a gap waits for the retransmission that came during the stall and
// is read after the timer that found it: both are handed up in order. A
// retransmission of a packet delivered just before the stall, read after
// it, is still a duplicate.
func TestStalledReceiver(t *testing.T) {
	const stop = 20 * time.Second
	t.Run("in order across the stall", func(t *testing.T) {
		b := newNode(t, testConfig(2))
		now := t0
		b.Receive(now, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 1}, oneFrag(t, 10, true, []byte{10}))
		b.Receive(now, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 1}, oneFrag(t, 12, false, []byte{12})) // 11 missing
		if st := b.Stats(); st.ReorderHeld != 1 {
			t.Fatalf("stats %+v: want packet 12 held", st)
		}
		from := now.Add(time.Second)
		resumed := from.Add(stop)
		stall(b, from, resumed)
		b.Poll(resumed)
		b.Receive(resumed.Add(time.Millisecond), framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 1}, oneFrag(t, 11, false, []byte{11}))
		var got []byte
		for _, f := range b.rec.rx {
			got = append(got, f.p...)
		}
		if !bytes.Equal(got, []byte{10, 11, 12}) {
			t.Fatalf("handed up %v, want [10 11 12]; %+v", got, b.Stats())
		}
		if st := b.Stats(); st.ReorderTimeouts != 0 || st.ReorderLate != 0 {
			t.Fatalf("stats %+v: want no reorder time-out and nothing late", st)
		}
	})
	t.Run("duplicates across the stall", func(t *testing.T) {
		b := newNode(t, testConfig(2))
		now := t0
		b.Receive(now, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 1}, oneFrag(t, 10, true, []byte{10}))
		b.Receive(now, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 1}, oneFrag(t, 11, false, []byte{11}))
		if stop < b.cfg.DupLifetime {
			t.Fatalf("the stall (%v) must outlast the duplicate lifetime (%v)", stop, b.cfg.DupLifetime)
		}
		resumed := now.Add(stop)
		stall(b, now, resumed)
		b.Receive(resumed, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 1}, oneFrag(t, 11, false, []byte{11}))
		if got := len(b.rec.rx); got != 2 || b.Stats().Duplicates != 1 {
			t.Fatalf("%d handed up, %+v; want 2 and the retransmission suppressed", got, b.Stats())
		}
	})
}

// TestRecurringStalls: a process stopped for 0.7 s from 100 ms before each
// of its Ack deadlines, the peer silent. Each stall restarts a round's
// timer at most once, so the packets still time out, run out of retries
// or MaxAge, and are given up; restarting every time pushed the deadlines
// back for ever (an hour: no time-out, nothing given up, the window held).
func TestRecurringStalls(t *testing.T) {
	a, b, _, now := stallSender(t, false)
	end := now.Add(time.Hour)
	for now.Before(end) {
		d, ok := a.Deadline()
		if !ok {
			break
		}
		from := d.Add(-100 * time.Millisecond)
		if from.Before(now) {
			from = now
		}
		to := from.Add(700 * time.Millisecond)
		stall(a, from, to)
		now = to
		a.Poll(now)
		for _, f := range a.rec.take() {
			a.TxDone(now, f.h, f.p)
		}
		b.rec.take()
	}
	if st := a.Stats(); st.GiveUps != 4 {
		t.Fatalf("after an hour of recurring stalls: %+v; want the 4 packets given up", st)
	}
	if !now.Before(end) {
		t.Fatal("a timer was still armed after an hour")
	}
}
