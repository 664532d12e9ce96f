package medium

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/phy"
)

func TestThorpAndBudget(t *testing.T) {
	if got := ThorpAbsorption(10); math.Abs(got-1.187) > 0.001 {
		t.Errorf("Thorp(10 kHz) = %.4f dB/km, want 1.187", got)
	}
	b := AcousticBudget{FrequencyKHz: 10, SourceLevel: 170, Spreading: 1.5, NoiseLevel: 50, Threshold: 10}
	// TL(1 km) = 15·3 + 1.187 = 46.19 dB: SNR 73.8 dB.
	if got := b.SNR(1000); math.Abs(got-73.81) > 0.01 {
		t.Errorf("SNR(1 km) = %.2f, want 73.81", got)
	}
	p := Propagation{Speed: SpeedOfSound, Acoustic: &b}
	near, far := p.Link(1000), p.Link(60_000)
	if !near.Reach || near.BitErrorRate > 1e-12 || near.Delay != 666_666_666 {
		t.Errorf("1 km: %+v, want reach, no bit errors, 0.667 s", near)
	}
	// At 60 km: 15·4.78 + 71.2 = 142.9 dB loss, SNR -23 dB: out of reach.
	if far.Reach {
		t.Errorf("60 km: %+v, want out of reach", far)
	}
	if ber := BitErrorBPSK(0); math.Abs(ber-0.0786) > 0.001 {
		t.Errorf("BPSK BER at 0 dB = %.4f, want 0.0786", ber)
	}
}

// TestTopologyHiddenTerminal: 1 and 3 both reach 2 but not each other, so
// neither senses the other's carrier and their frames collide at 2.
func TestTopologyHiddenTerminal(t *testing.T) {
	h := newHarness(t, Config{BitRate: 8000}, 1, 2, 3)
	tp, err := FullMesh(Link{Reach: true}, 1, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	tp.SetLink(1, 3, Link{})
	tp.SetLink(3, 1, Link{})
	h.m.SetTopology(tp)
	h.transmit(0, 1, "aaaa")
	h.runUntil(ms(1))
	h.transmit(ms(1), 3, "cccc") // 3 senses nothing of 1
	h.runUntil(ms(100))
	for _, r := range h.log {
		if r.to == 3 && r.kind == phy.CarrierOn && r.at < ms(4) {
			t.Errorf("node 3 sensed node 1: %v", r)
		}
		if r.kind == phy.Received {
			t.Errorf("something got through: %v", r)
		}
	}
	if st := h.m.Stats(); st.Collisions != 2 {
		t.Errorf("collisions %d, want 2 (both frames at node 2)", st.Collisions)
	}
}

// TestSetTopologyWhileRunning: node 2 moves out of range; a transmission
// already under way still arrives, the next one does not.
func TestSetTopologyWhileRunning(t *testing.T) {
	h := newHarness(t, Config{BitRate: 8000, PropDelay: ms(10)}, 1, 2)
	h.transmit(0, 1, "one")
	h.runUntil(ms(1))
	away, _ := NewTopology(1, 2)
	h.m.SetTopology(away)
	h.runUntil(ms(50))
	h.transmit(ms(50), 1, "two")
	h.runUntil(ms(200))
	var got []string
	for _, r := range h.log {
		if r.kind == phy.Received {
			got = append(got, r.data)
		}
	}
	if strings.Join(got, ",") != "one" {
		t.Errorf("received %v, want [one]", got)
	}
	if h.m.Topology() != away {
		t.Error("Topology() does not return what was set")
	}
}

func TestTopologyErrors(t *testing.T) {
	if _, err := NewTopology(1, 0); !errors.Is(err, ErrInvalidNode) {
		t.Errorf("id 0: %v", err)
	}
	if _, err := NewTopology(1, 1); err == nil {
		t.Error("duplicate accepted")
	}
	tp, _ := NewTopology(1, 2)
	for _, c := range []struct {
		desc     string
		from, to NodeID
		l        Link
	}{
		{"unknown node", 1, 3, Link{Reach: true}},
		{"self", 1, 1, Link{Reach: true}},
		{"negative delay", 1, 2, Link{Reach: true, Delay: -1}},
		{"loss above one", 1, 2, Link{Reach: true, LossRate: 2}},
	} {
		if err := tp.SetLink(c.from, c.to, c.l); err == nil {
			t.Errorf("%s: accepted", c.desc)
		}
	}
}

// TestTopologyBuildersValidate: FullMesh and PlaceNodes refuse links that
// SetLink refuses: a negative delay, or positions so far apart that the
// delay overflows time.Duration (it came out negative).
func TestTopologyBuildersValidate(t *testing.T) {
	if _, err := FullMesh(Link{Reach: true, Delay: -1}, 1, 2); err == nil {
		t.Error("FullMesh: negative delay accepted")
	}
	if _, err := FullMesh(Link{Reach: true, LossRate: 2}, 1, 2); err == nil {
		t.Error("FullMesh: loss rate 2 accepted")
	}
	far := map[NodeID]Position{1: {}, 2: {X: 1e300}}
	if tp, err := PlaceNodes(far, Propagation{Speed: SpeedOfLight}); err == nil {
		t.Errorf("PlaceNodes: 1e300 m accepted, link %+v", tp.Link(1, 2))
	}
	near := map[NodeID]Position{1: {}, 2: {X: 1500}}
	tp, err := PlaceNodes(near, Propagation{Speed: SpeedOfSound})
	if err != nil {
		t.Fatal(err)
	}
	if l := tp.Link(2, 1); !l.Reach || l.Delay != time.Second {
		t.Errorf("1500 m at the speed of sound: %+v, want reach in 1 s", l)
	}
}
