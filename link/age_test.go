package link

import (
	"testing"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/arq"
	"github.com/slided/slided/phy"
)

// TestNoFrameOnAirPastMaxAge: node 1 sends A to node 3, which delivers it;
// its Ack is lost, and the channel goes busy, so A's retransmission waits
// in the MAC queue; B follows much later and waits too. The channel
// stays busy past node 3's DupLifetime (the same lifetimes as node 1's, as
// two daemons of one configuration), as a turn minutes away does on a
// crowded channel (100 nodes: docs/mac.md). When it clears, A's
// retransmission, past A's MaxAge, is dropped, not sent: A is given up
// (counted) and node 3 delivers it once; B, within its life, goes and is
// delivered and acknowledged. Before, A's retransmission went on air after
// node 3 had forgotten A and node 3 handed A up again. With the modem's
// bursts too (fillBurst).
func TestNoFrameOnAirPastMaxAge(t *testing.T) {
	for _, burstMax := range []int{1, 4} {
		m := newMedium(t, 9600)
		m.burstMax = burstMax
		r := newPeerRig(t, m, Config{Node: 1}, func(a *node) arq.Config {
			ac := a.e.arq.Config()
			bc := arq.DefaultConfig(3, ac.MaxPayload, ac.MaxPacket, arq.Timing{BitRate: 9600})
			bc.MaxAge, bc.DupLifetime, bc.ReorderTimeout = ac.MaxAge, ac.DupLifetime, ac.ReorderTimeout
			return bc
		})
		r.atEnd = true
		a, peer, toB := r.a, r.peer, r.toB
		acksToA := func() { r.acksToA(nil) }
		ac := a.e.arq.Config()
		t.Logf("bursts %d: MaxAge %v, DupLifetime %v", burstMax, ac.MaxAge, ac.DupLifetime)
		sentA := m.Now()
		m.hostFrame(a, numbered(3, 1, 1, 40)) // A
		for i := 0; i < 100 && len(r.log) < 1; i++ {
			m.run(10 * time.Millisecond)
		}
		if len(r.log) != 1 {
			t.Fatalf("bursts %d: %d transmissions, want A", burstMax, len(r.log))
		}
		toB()
		peer.tx = nil // A's Ack, lost
		m.event(a, phy.Event{Kind: phy.CarrierOn})
		m.run(ac.DupLifetime - 20*time.Second)
		sentB := m.Now()
		m.hostFrame(a, numbered(3, 1, 2, 40)) // B
		// Busy past node 3's memory of A (and A's life).
		busy := max(sentA.Add(ac.DupLifetime+10*time.Second).Sub(m.Now()), 0)
		if !sentB.Add(ac.MaxAge).After(m.Now().Add(busy + 10*time.Second)) {
			t.Fatalf("bursts %d: B's life ends before the test does", burstMax)
		}
		m.run(busy)
		if len(r.log) != 1 || a.e.Stats(m.Now()).ARQ.Retransmissions != 1 {
			t.Fatalf("bursts %d: %d transmissions, %d retransmissions; want A's queued", burstMax, len(r.log), a.e.Stats(m.Now()).ARQ.Retransmissions)
		}
		m.event(a, phy.Event{Kind: phy.CarrierOff})
		for range 600 {
			m.run(100 * time.Millisecond)
			toB()
			acksToA()
		}
		// No frame of A goes on air from the end of its life on.
		seqA, _ := fragsOf(r.log[0])
		for _, bu := range r.log[1:] {
			if _, seqs := fragsOf(bu); seqs[seqA] && !bu.Air.Before(sentA.Add(ac.MaxAge)) {
				t.Errorf("bursts %d: a frame of A on air %v after its Send (MaxAge %v)", burstMax, bu.Air.Sub(sentA), ac.MaxAge)
			}
		}
		ids := r.delivered()
		if len(peer.rx) != 2 || ids[1] != 1 || ids[2] != 1 {
			t.Errorf("bursts %d: node 3 delivered %d packets %v (id: times), want A (1) and B (2) once each", burstMax, len(peer.rx), ids)
		}
		s := a.e.Stats(m.Now())
		if s.ARQ.GiveUps != 1 || s.ARQ.Acked != 1 || s.AgedDropped != 1 {
			t.Errorf("bursts %d: %d given up, %d acknowledged, %d frames dropped for age; want A given up (its retransmission dropped), B acknowledged",
				burstMax, s.ARQ.GiveUps, s.ARQ.Acked, s.AgedDropped)
		}
	}
}

// fragsOf is the sequence number of the first fragment for node 3 in bu,
// and the set of all of them.
func fragsOf(bu *burst) (uint8, map[uint8]bool) {
	var first uint8
	seqs := map[uint8]bool{}
	d := framing.NewDecoder(4096)
	check := func(h framing.Header, p []byte) {
		if f, _, err := framing.ParseFrag(p); h.Kind == framing.KindFragment && err == nil && h.Dst == 3 {
			if len(seqs) == 0 {
				first = f.Seq
			}
			seqs[f.Seq] = true
		}
	}
	d.Feed(bu.Data, check)
	d.Feed([]byte{0}, check)
	return first, seqs
}

// TestDupLifetimeCoversAFrameOnItsWay: a frame handed to the modem before
// its packet's MaxAge (dropAged) reaches the receiver within DupLifetime of
// the delivery it may repeat: DupLifetime - MaxAge (QueueDelay and an ack
// timeout) covers the longest time from the hand-over to the end of its
// arrival: the whole burst it is part of (the modem's burst bound, or the
// link's), a TNC's key-up and access wait (8 mean waits: one in 5,000
// waits of p = 1/4 is longer), and the propagation delay. The receiver
// delivered the packet no earlier than Send, so it still remembers it.
func TestDupLifetimeCoversAFrameOnItsWay(t *testing.T) {
	for _, tc := range []struct {
		desc       string
		rate       int
		burstMax   int
		keyUp      time.Duration
		accessWait time.Duration
		burstAir   time.Duration
		noCarrier  bool
		frameMax   int
		prop       time.Duration
	}{
		{desc: "radio, 9600 bit/s", rate: 9600},
		{desc: "100 nodes' medium (bursts of 16), a = 0.01", rate: 9600, burstMax: 16, prop: 833333 * time.Nanosecond},
		{desc: "same, a = 1", rate: 9600, burstMax: 16, prop: 83333333 * time.Nanosecond},
		{desc: "TNC, bursts of 64 within 53.6 s, 9600 bit/s", rate: 9600, burstMax: 64, keyUp: 300 * time.Millisecond, accessWait: 100 * time.Millisecond, burstAir: 53640 * time.Millisecond},
		{desc: "TNC, bursts of 64 within 53.6 s, 1200 bit/s", rate: 1200, burstMax: 64, keyUp: 300 * time.Millisecond, accessWait: 100 * time.Millisecond, burstAir: 53640 * time.Millisecond},
		{desc: "TNC, bursts of 64 within 10 min, 1200 bit/s", rate: 1200, burstMax: 64, keyUp: 300 * time.Millisecond, accessWait: 100 * time.Millisecond, burstAir: 10 * time.Minute},
		{desc: "TNC, one frame a key-up, 1200 bit/s", rate: 1200, keyUp: 300 * time.Millisecond, accessWait: 100 * time.Millisecond},
		{desc: "acoustic, 1 km of water", rate: 2400, noCarrier: true, frameMax: 256, prop: 670 * time.Millisecond},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			m := newMedium(t, tc.rate)
			m.burstMax, m.KeyUp, m.accessWait, m.burstAir, m.NoCarrier = tc.burstMax, tc.keyUp, tc.accessWait, tc.burstAir, tc.noCarrier
			n := m.add(Config{Node: 1, FrameMax: tc.frameMax, PropDelay: tc.prop})
			ac := n.e.arq.Config()
			frame := n.e.FrameCap()
			if tc.frameMax > 0 {
				frame = min(frame, tc.frameMax)
			}
			way := phy.Airtime(frame, tc.rate)
			if tc.burstMax > 1 {
				way = min(time.Duration(tc.burstMax)*way, burstAir(m.info()))
			}
			way += tc.keyUp + 8*tc.accessWait + tc.prop
			if slack := ac.DupLifetime - ac.MaxAge; slack < way {
				t.Errorf("DupLifetime %v - MaxAge %v = %v, less than a frame's way of %v", ac.DupLifetime, ac.MaxAge, slack, way)
			} else {
				t.Logf("DupLifetime %v - MaxAge %v = %v against a frame's way of %v", ac.DupLifetime, ac.MaxAge, slack, way)
			}
		})
	}
}
