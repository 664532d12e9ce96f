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

// ackFrame is an Ack from src to dst for a one-fragment packet.
func ackFrame(t *testing.T, src, dst framing.NodeID) []byte {
	t.Helper()
	p, err := framing.AppendAck(nil, framing.Ack{Count: 1, Have: 1})
	if err != nil {
		t.Fatal(err)
	}
	return framing.AppendFrame(nil, framing.Header{Kind: framing.KindAck, Src: src, Dst: dst}, p)
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
			// A window of one slot: the frame goes IFS after the channel
			// is free, and the reservation shows to the slot.
			mac := DefaultMAC(9600, Block)
			mac.CWMin, mac.CWMax, mac.CWPerSender = 1, 1, 0
			inBubble(t, Config{MAC: mac}, func(t *testing.T, x *bubble) {
				var log []*burst
				x.m.Bursts = &log
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
				if len(log) == 0 {
					t.Fatal("our frame never went")
				}
				gap := log[0].Start.Sub(end)
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
