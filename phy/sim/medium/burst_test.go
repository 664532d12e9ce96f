package medium

import (
	"errors"
	"testing"
	"time"

	"github.com/slided/slided/phy"
)

func (h *harness) burst(at time.Duration, from NodeID, frames ...string) time.Duration {
	h.t.Helper()
	h.runUntil(at)
	bs := make([][]byte, len(frames))
	for i, f := range frames {
		bs[i] = []byte(f)
	}
	end, err := h.m.TransmitBurst(t0.Add(at), from, bs)
	if err != nil {
		h.t.Fatalf("TransmitBurst(%v, %d): %v", at, from, err)
	}
	return end.Sub(t0)
}

// TestBurstBackToBack: the frames of a burst go on air one right after
// the other, with no gap for the sender's process to hand over the next
// (through real daemons that hand-over was half a millisecond a frame):
// each is received at its own end, the receivers' carrier stays on from
// the first to the last, and one TxDone ends the burst.
func TestBurstBackToBack(t *testing.T) {
	h := newHarness(t, slow, 1, 2, 3)
	end := h.burst(0, 1, "aa", "b", "ccc") // 16 + 8 + 24 ms
	if end != ms(48) {
		t.Errorf("TransmitBurst end = %v, want 48ms", end)
	}
	h.runUntil(ms(20))
	if _, err := h.m.Transmit(t0.Add(ms(20)), 1, []byte("x")); !errors.Is(err, ErrTransmitting) {
		t.Errorf("Transmit during the burst: %v, want ErrTransmitting", err)
	}
	h.runAll()
	h.checkLog([]rec{
		{ms(48), 1, phy.TxDone, ""},
		{ms(100), 2, phy.CarrierOn, ""},
		{ms(100), 3, phy.CarrierOn, ""},
		{ms(116), 2, phy.Received, "aa"},
		{ms(116), 3, phy.Received, "aa"},
		{ms(124), 2, phy.Received, "b"},
		{ms(124), 3, phy.Received, "b"},
		{ms(148), 2, phy.CarrierOff, ""},
		{ms(148), 2, phy.Received, "ccc"},
		{ms(148), 3, phy.CarrierOff, ""},
		{ms(148), 3, phy.Received, "ccc"},
	})
	st := h.m.Stats()
	if st.Transmissions != 3 || st.Deliveries != 6 || st.Collisions != 0 || st.BusyTime != ms(48) {
		t.Errorf("stats = %+v, want 3 transmissions, 6 deliveries, busy 48ms", st)
	}
	h.checkDrained()
	// The node may send again after its TxDone.
	h.log = nil
	h.transmit(ms(200), 1, "d")
	h.runAll()
	if len(h.log) != 7 {
		t.Errorf("after the burst: %s", fmtRecs(h.log))
	}
}

// TestBurstCollisionSpoilsOneFrame: another signal that overlaps one frame
// of a burst at a receiver costs that frame only.
func TestBurstCollisionSpoilsOneFrame(t *testing.T) {
	cfg := slow
	cfg.PropDelay = 0
	h := newHarness(t, cfg, 1, 2, 3)
	h.burst(0, 1, "aa", "bb", "cc") // 0-16, 16-32, 32-48 ms
	h.transmit(ms(20), 3, "x")      // 20-28 ms: over "bb"
	h.runAll()
	var got []string
	for _, r := range h.log {
		if r.to == 2 && r.kind == phy.Received {
			got = append(got, r.data)
		}
	}
	if len(got) != 2 || got[0] != "aa" || got[1] != "cc" {
		t.Errorf("node 2 received %q, want [aa cc]", got)
	}
	h.checkDrained()
}

// TestBurstDetach: a sender that detaches in the middle of a burst cuts
// the frame on air and sends none of the rest; the receivers' carrier ends.
func TestBurstDetach(t *testing.T) {
	for _, at := range []time.Duration{ms(20), ms(16), ms(0), ms(40)} {
		h := newHarness(t, slow, 1, 2)
		h.burst(0, 1, "aa", "bb", "cc")
		h.runUntil(at)
		h.m.Detach(t0.Add(at), 1)
		h.runAll()
		on, off := 0, 0
		for _, r := range h.log {
			switch r.kind {
			case phy.CarrierOn:
				on++
			case phy.CarrierOff:
				off++
			case phy.TxDone:
				t.Errorf("detached at %v: a TxDone", at)
			}
		}
		if on != off {
			t.Errorf("detached at %v: carrier on %d times, off %d: %s", at, on, off, fmtRecs(h.log))
		}
		h.checkDrained()
		if err := h.m.Attach(1); err != nil {
			t.Fatal(err)
		}
		if _, err := h.m.Transmit(t0.Add(h.now), 1, []byte("again")); err != nil {
			t.Errorf("detached at %v: Transmit after re-Attach: %v", at, err)
		}
	}
}

func TestBurstErrors(t *testing.T) {
	h := newHarness(t, slow, 1, 2)
	big := make([]byte, MaxFrame+1)
	many := make([][]byte, MaxBurstFrames+1)
	for i := range many {
		many[i] = []byte("x")
	}
	for _, c := range []struct {
		desc   string
		from   NodeID
		frames [][]byte
		want   error
	}{
		{"no frames", 1, nil, ErrFrameSize},
		{"too many frames", 1, many, ErrFrameSize},
		{"an empty frame", 1, [][]byte{[]byte("a"), nil}, ErrFrameSize},
		{"a frame too long", 1, [][]byte{[]byte("a"), big}, ErrFrameSize},
		{"not attached", 3, [][]byte{[]byte("a")}, ErrNotAttached},
	} {
		if _, err := h.m.TransmitBurst(t0, c.from, c.frames); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.desc, err, c.want)
		}
	}
	if st := h.m.Stats(); st.Transmissions != 0 {
		t.Errorf("refused bursts counted: %+v", st)
	}
}
