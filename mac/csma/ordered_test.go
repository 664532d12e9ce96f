package csma

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/slided/slided/phy"
)

// orderedMAC is a saturated MAC with the adaptive window and ordered turns
// (Config.TurnFrame) on a 9600 bit/s channel of 100-byte frames, delay d,
// one frame a turn.
func orderedMAC(t *testing.T, d time.Duration, seed uint64) (*MAC, time.Duration) {
	t.Helper()
	cfg := ConfigFor(Channel{BitRate: 9600, PropDelay: d, CarrierAtArrival: true, FrameBytes: 100})
	air := phy.Airtime(100, 9600)
	cfg.TurnFrame = air
	cfg.Burst = 1 // a turn of one frame: a backoff after every TxDone
	m, err := New(cfg, rand.New(rand.NewPCG(seed, 7)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	for m.Room() > 0 {
		if err := m.Enqueue(now, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	return m, air
}

// turnSlots runs one turn of m from its deadline: the frame, another
// carrier during it if collide (on and off before the frame ends), TxDone
// and a refill; it returns the backoff drawn for the next turn and the
// window it was drawn from.
func turnSlots(t *testing.T, m *MAC, air time.Duration, collide bool) (slots, cw int) {
	t.Helper()
	at, ok := m.Deadline()
	if !ok {
		t.Fatal("no deadline")
	}
	if _, ok := m.Poll(at); !ok {
		t.Fatalf("Poll at the deadline %v sent nothing", at)
	}
	if collide {
		m.Carrier(at.Add(air/4), true)
		m.Carrier(at.Add(air/2), false)
	}
	end := at.Add(air)
	m.TxDone(end)
	if err := m.Enqueue(end, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	return m.slots, m.cw
}

// TestOrderedTurns: with Config.TurnFrame, the backoff after a turn during
// which no other carrier came is half the window within turnJitter slots
// (the nodes that have not had a turn since go first: CSMA/ECA); after a
// turn another carrier came into, even one that went again before the
// frame ended (two frames of one length that collided end at once), it is
// drawn from the whole window; and with a delay too long for a collision
// to be heard during the frame (a = 1) it is always drawn. Before the
// option every backoff was drawn from the whole window, and with exactly
// half the window (no jitter) simbench's five hidden nodes collided at
// every turn.
func TestOrderedTurns(t *testing.T) {
	m, air := orderedMAC(t, air100()/100, 1)
	seen := map[int]bool{}
	for i := range 200 {
		slots, cw := turnSlots(t, m, air, false)
		if lo := max(cw/2-turnJitter/2, 0); slots < lo || slots >= lo+turnJitter {
			t.Fatalf("turn %d, clean: backoff %d slots, window %d; want %d..%d", i, slots, cw, lo, lo+turnJitter-1)
		}
		seen[slots-(cw/2-turnJitter/2)] = true
	}
	if len(seen) < 2 {
		t.Errorf("clean turns: backoff offsets %v from half the window; want the jitter to vary them", seen)
	}
	low, high := spread(t, m, air, true)
	if low == 0 || high == 0 {
		t.Errorf("turns with another carrier: %d backoffs in the window's first quarter, %d in its last; want both (drawn)", low, high)
	}
	m, air = orderedMAC(t, air100(), 2)
	low, high = spread(t, m, air, false)
	if low == 0 || high == 0 {
		t.Errorf("a = 1, clean turns: %d backoffs in the window's first quarter, %d in its last; want both (drawn, TurnFrame too short)", low, high)
	}
}

func air100() time.Duration { return phy.Airtime(100, 9600) }

// spread runs 200 turns and counts the backoffs in the first and in the
// last quarter of the window.
func spread(t *testing.T, m *MAC, air time.Duration, collide bool) (low, high int) {
	t.Helper()
	for range 200 {
		slots, cw := turnSlots(t, m, air, collide)
		switch {
		case 4*slots < cw:
			low++
		case 4*slots >= 3*cw:
			high++
		}
	}
	return low, high
}
