package link

import (
	"testing"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// pollFrame is a one-fragment packet from src to dst that asks for an Ack
// (ack) or not, as on air.
func pollFrame(t *testing.T, src, dst framing.NodeID, ack bool) []byte {
	t.Helper()
	p, err := framing.AppendFrag(nil, framing.FragHeader{AckReq: ack, Inner: framing.KindEthernet, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	p = append(p, ethFrame(dst, src)...)
	return framing.AppendFrame(nil, framing.Header{Kind: framing.KindFragment, Src: src, Dst: dst}, p)
}

// pollSeq is a poll from src to dst with sequence number seq (fragFrame).
func pollSeq(t *testing.T, src, dst framing.NodeID, seq uint8) []byte {
	t.Helper()
	return fragFrame(t, src, dst, seq, true, ethFrame(dst, src))
}

// ackFrame is an Ack from src to dst for a one-fragment packet.
func ackFrame(t *testing.T, src, dst framing.NodeID) []byte {
	t.Helper()
	p, err := framing.AppendAck(nil, framing.Ack{Count: 1, Have: 1})
	if err != nil {
		t.Fatal(err)
	}
	return framing.AppendFrame(nil, framing.Header{Kind: framing.KindAck, Src: src, Dst: dst}, p)
}

// oneSlotBubble runs f in a bubble whose MAC has a window of one slot (a
// frame goes IFS after the channel is free, and a reservation shows to the
// slot), with the medium's log of transmissions.
func oneSlotBubble(t *testing.T, f func(t *testing.T, x *bubble, log *[]*burst)) {
	t.Helper()
	mac := DefaultMAC(9600, Block)
	mac.CWMin, mac.CWMax, mac.CWPerSender = 1, 1, 0
	inBubble(t, Config{MAC: mac}, func(t *testing.T, x *bubble) {
		var log []*burst
		x.m.Bursts = &log
		f(t, x, &log)
	})
}

// TestNAVKeepsChannelForOthersAck: a node that overhears a poll from node
// 2 to node 3 keeps the channel for node 3's Ack from the end of node 2's
// transmission (nav.go): navWait if it has not heard node 3 (hidden, it
// seems: the room for broadcasts riding behind the Ack included), without
// that room if it has (the Ack's carrier would cover them), and only until
// the Ack's end if it hears the Ack. A frame to node 3 that does not ask
// for an Ack keeps nothing. Before, our data frame went IFS after node 2's
// frame, over the Ack, whichever came.
func TestNAVKeepsChannelForOthersAck(t *testing.T) {
	const (
		none  = iota // IFS and backoff only
		short        // navWait without the room for riders
		full         // navWait
	)
	for _, tc := range []struct {
		name     string
		heard3   bool // node 3 was heard before (a broadcast of its own)
		poll     bool // node 2's frame asks node 3 for an Ack
		ackHeard bool // node 3's Ack reaches us, 1 ms after
		wait     int
	}{
		{"poll, node 3 hidden", false, true, false, full},
		{"poll, node 3 heard, ack lost", true, true, false, short},
		{"poll, ack heard", true, true, true, none},
		{"no poll", false, false, false, none},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oneSlotBubble(t, func(t *testing.T, x *bubble, log *[]*burst) {
				e := x.n.e
				if e.navWait-e.navRide <= e.MACConfig().IFS+8*e.MACConfig().SlotTime || e.navRide <= 0 {
					t.Fatalf("navWait %v, of it %v for riders: not longer than IFS and a few slots", e.navWait, e.navRide)
				}
				if tc.heard3 {
					b := ethFrame(2, 3)
					copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
					x.m.inject(x.n, airFrame(t, 3, b, nil))
				}
				// Node 2 on air to node 3; our frame for node 2 waits.
				x.m.event(x.n, phy.Event{Kind: phy.CarrierOn})
				x.m.hostFrame(x.n, ethFrame(2, 1))
				x.after(50 * time.Millisecond)
				x.m.event(x.n, phy.Event{Kind: phy.CarrierOff})
				x.m.inject(x.n, pollFrame(t, 2, 3, tc.poll))
				end := x.m.Now()
				if tc.ackHeard {
					x.after(time.Millisecond)
					x.m.event(x.n, phy.Event{Kind: phy.CarrierOn})
					x.after(2 * time.Millisecond)
					x.m.event(x.n, phy.Event{Kind: phy.CarrierOff})
					x.m.inject(x.n, ackFrame(t, 3, 2))
				}
				x.after(time.Second)
				if len(*log) == 0 {
					t.Fatal("our frame never went")
				}
				gap := (*log)[0].Start.Sub(end)
				got := none
				switch {
				case gap >= e.navWait:
					got = full
				case gap >= e.navWait-e.navRide:
					got = short
				}
				if got != tc.wait {
					t.Errorf("our frame went %v after node 2's frame ended (navWait %v, of it %v for riders); want wait kind %d, got %d",
						gap, e.navWait, e.navRide, tc.wait, got)
				}
			})
		})
	}
}

// TestNAVPolls: what an overheard poll keeps depends on the polls before it
// (review of nav.go). A poll repeated (the same sequence number: its Ack did
// not come, the polled node may be gone) keeps the channel for the Ack only,
// not for riders: each room is 1.84 s of silence at 1200 bit/s at every
// overhearer, nine times a packet to a node that left. And a later poll
// between nodes we hear does not shorten the wait kept for a hidden node's
// Ack and riders (one poll's state replaced the other's before).
func TestNAVPolls(t *testing.T) {
	const (
		short = iota + 1 // navWait without the room for riders
		full             // navWait
	)
	for _, tc := range []struct {
		name string
		// first: a poll from node 2 to node 3 (hidden) before the one
		// measured, which comes later by gap.
		first, second []byte
		gap           time.Duration
		wait          int
	}{
		{"retransmitted poll", pollSeq(t, 2, 3, 7), pollSeq(t, 2, 3, 7), 500 * time.Millisecond, short},
		{"next poll", pollSeq(t, 2, 3, 7), pollSeq(t, 2, 3, 8), 500 * time.Millisecond, full},
		{"a heard pair's poll right after", pollSeq(t, 2, 3, 7), pollSeq(t, 4, 5, 1), 0, full},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oneSlotBubble(t, func(t *testing.T, x *bubble, log *[]*burst) {
				e := x.n.e
				// Node 5 is heard (a broadcast of its own); node 3 is not.
				b := ethFrame(2, 5)
				copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
				x.m.inject(x.n, airFrame(t, 5, b, nil))
				x.m.event(x.n, phy.Event{Kind: phy.CarrierOn})
				x.after(20 * time.Millisecond)
				x.m.event(x.n, phy.Event{Kind: phy.CarrierOff})
				x.m.inject(x.n, tc.first)
				first := x.m.Now()
				x.after(tc.gap)
				x.m.event(x.n, phy.Event{Kind: phy.CarrierOn})
				x.m.hostFrame(x.n, ethFrame(2, 1))
				x.after(20 * time.Millisecond)
				x.m.event(x.n, phy.Event{Kind: phy.CarrierOff})
				x.m.inject(x.n, tc.second)
				end := x.m.Now()
				x.after(5 * time.Second)
				if len(*log) == 0 {
					t.Fatal("our frame never went")
				}
				start := (*log)[0].Start
				got := 0
				switch {
				case tc.wait == full && tc.gap == 0 && !start.Before(first.Add(e.navWait)):
					got = full // the first poll's wait, kept
				case !start.Before(end.Add(e.navWait)):
					got = full
				case !start.Before(end.Add(e.navWait - e.navRide)):
					got = short
				}
				if got != tc.wait {
					t.Errorf("our frame went %v after the poll (navWait %v, of it %v for riders): want wait kind %d, got %d",
						start.Sub(end), e.navWait, e.navRide, tc.wait, got)
				}
			})
		})
	}
}

// TestHeldBroadcastKeepsFlowOrder: while a hidden sender is known (we
// overheard node 2 Ack node 3, whom we do not hear, and we Ack node 2
// ourselves), a small broadcast is held for the ride with our next Ack; a
// larger broadcast of the same flow that follows must not overtake it
// (review of nav.go: it went to the MAC at once and left first).
func TestHeldBroadcastKeepsFlowOrder(t *testing.T) {
	inBubble(t, Config{}, func(t *testing.T, x *bubble) {
		var log []*burst
		x.m.Bursts = &log
		// We overhear node 2 Ack node 3, and Ack node 2 (its poll to
		// us).
		x.m.inject(x.n, ackFrame(t, 2, 3))
		x.m.inject(x.n, pollFrame(t, 2, 1, true))
		x.after(time.Second)
		if !x.n.e.hiding(x.m.Now()) {
			t.Fatal("no hidden sender known after an Ack overheard to a node we do not hear")
		}
		bcast := func(n int) []byte {
			b := make([]byte, n)
			copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
			copy(b[6:], framing.MACFor(1))
			b[12], b[13] = 0x88, 0xb5 // local experimental: one flow, not IP
			return b
		}
		x.m.hostFrame(x.n, bcast(60))  // rides, or waits for a ride
		x.m.hostFrame(x.n, bcast(600)) // too large to ride
		x.after(30 * time.Second)
		var sizes []int
		d := framing.NewDecoder(4096)
		for _, b := range log[1:] { // after our Ack to node 2
			d.Feed(b.Data, func(h framing.Header, p []byte) {
				if h.Dst == framing.Broadcast {
					sizes = append(sizes, len(p))
				}
			})
		}
		if len(sizes) != 2 {
			t.Fatalf("broadcast frames on air, payload bytes in order: %v; want the small one, then the large one", sizes)
		}
		if sizes[0] > sizes[1] {
			t.Errorf("broadcast frames on air, payload bytes in order: %v: the large one overtook the small one held for a ride", sizes)
		}
	})
}
