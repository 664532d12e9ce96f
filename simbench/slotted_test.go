package simbench

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/slided/slided/phy"
)

// slotOf is a slot (fama) or round (tlohi) of cfg's channel: the
// propagation delay plus a control packet's airtime and the guard, and the data slots: the
// slots from a data frame's start to its end at every node.
func slotOf(cfg Config) (slot, dataSlots float64) {
	cfg.defaults()
	T := phy.Airtime(cfg.FrameBytes, cfg.BitRate)
	delay := time.Duration(math.Round(cfg.A * float64(T)))
	s := delay + phy.Airtime(cfg.Control, cfg.BitRate) + guard
	return float64(s), math.Ceil(float64(delay+T) / float64(s))
}

// TestSlottedNoDataCollision: on a channel where every node hears every
// other, FAMA's handshake and T-Lohi's tones keep data frames from
// colliding: every data frame sent reaches its addressee (but the one on
// air when the run ends), and FAMA gets an Ack for each.
func TestSlottedNoDataCollision(t *testing.T) {
	for _, proto := range []string{FAMA, TLohi} {
		for _, c := range []struct {
			nodes int
			a     float64
		}{{10, 0.01}, {10, 0.1}, {10, 1}, {30, 0.5}, {2, 2}} {
			t.Run(fmt.Sprintf("%s/n=%d/a=%g", proto, c.nodes, c.a), func(t *testing.T) {
				res, r, err := run(Config{Protocol: proto, Nodes: c.nodes, A: c.a, Saturated: true, Frames: 3000, Seed: 1}, monoEpoch)
				if err != nil {
					t.Fatal(err)
				}
				sl := r.sl
				if sl.sent < 100 || sl.sent-sl.delivered > 1 || sl.noAck != 0 {
					t.Errorf("%d data frames sent, %d delivered, %d without an Ack: want at least 100, all but the last delivered, all acked",
						sl.sent, sl.delivered, sl.noAck)
				}
				if res.Collisions > 1 {
					t.Errorf("%d collisions in the measured span", res.Collisions)
				}
				if sl.backoffs == 0 {
					t.Errorf("no back-off among %d saturated nodes", c.nodes)
				}
				t.Logf("S %.3f Jain %.3f sent %d back-offs %d", res.S, res.Jain, sl.sent, sl.backoffs)
			})
		}
	}
}

// TestSlottedLoneSender: a node alone with traffic never backs off, and its
// throughput is one data frame per cycle, which follows from the slot: for
// T-Lohi a round of its tone, then the data rounds (the frame's airtime and
// delay, rounded up to rounds); for FAMA the RTS slot, the CTS slot, the
// data slots, the Ack slot, the slot in which it hears the Ack and the
// back-off it draws after each frame (uniform over the least window: with
// window 1, none).
func TestSlottedLoneSender(t *testing.T) {
	for _, c := range []struct {
		proto  string
		nodes  int
		a      float64
		window int
	}{
		{TLohi, 2, 0.01, 0}, {TLohi, 2, 0.5, 0}, {TLohi, 5, 1, 0}, {TLohi, 3, 2, 0},
		{FAMA, 2, 0.01, 1}, {FAMA, 2, 0.5, 1}, {FAMA, 5, 1, 1}, {FAMA, 3, 2, 1},
		{FAMA, 2, 0.1, 4}, {FAMA, 4, 1, 8},
	} {
		t.Run(fmt.Sprintf("%s/n=%d/a=%g/w=%d", c.proto, c.nodes, c.a, c.window), func(t *testing.T) {
			cfg := Config{Protocol: c.proto, Nodes: c.nodes, A: c.a, Saturated: true, Frames: 4000, Seed: 2, Window: c.window, senders: 1}
			res, r, err := run(cfg, monoEpoch)
			if err != nil {
				t.Fatal(err)
			}
			slot, data := slotOf(cfg)
			cycle := 1 + data // tlohi
			tol := 1.0 / float64(cfg.Frames)
			if c.proto == FAMA {
				cycle = 4 + data + float64(c.window-1)/2
				if c.window > 1 {
					tol = 0.02 * res.S // the draws' mean over a few hundred cycles
				}
			}
			T := float64(phy.Airtime(100, 9600))
			want := T / (cycle * slot)
			if math.Abs(res.S-want) > tol {
				t.Errorf("S %.5f, want %.5f (one frame per %.3g slots of %.3g T) ± %.5f", res.S, want, cycle, slot/T, tol)
			}
			if r.sl.backoffs != 0 {
				t.Errorf("%d back-offs", r.sl.backoffs)
			}
			if res.Collisions > 1 || res.Jain != 1/float64(c.nodes) {
				t.Errorf("collisions %d, Jain %.4f: want at most the frame on air at the end, and 1/N", res.Collisions, res.Jain)
			}
		})
	}
}

// TestFAMATwoNodes: two saturated nodes can do no better than the handshake
// cycle (RTS, CTS, data slots, Ack and the slot after it) with no back-off
// at all, and lose less than a least window (4 slots) a cycle to back-offs
// and colliding RTSs, with fair shares.
func TestFAMATwoNodes(t *testing.T) {
	for _, a := range []float64{0.01, 0.1, 0.5, 1, 2} {
		t.Run(fmt.Sprint(a), func(t *testing.T) {
			cfg := Config{Protocol: FAMA, Nodes: 2, A: a, Saturated: true, Frames: 10000, Seed: 3}
			res, err := Run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			slot, data := slotOf(cfg)
			T := float64(phy.Airtime(100, 9600))
			best := T / ((4 + data) * slot)
			worst := T / ((4 + data + DefaultWindow) * slot)
			if !(res.S <= best && res.S >= worst) || res.Jain < 0.95 {
				t.Errorf("S %.4f Jain %.4f: want S in [%.4f, %.4f], Jain >= 0.95", res.S, res.Jain, worst, best)
			}
			t.Logf("S %.4f (handshake bound %.4f), Jain %.4f", res.S, best, res.Jain)
		})
	}
}

// TestSlottedDeterministic: a run is a function of its Config; another seed
// is another run.
func TestSlottedDeterministic(t *testing.T) {
	for _, proto := range []string{FAMA, TLohi} {
		cfg := Config{Protocol: proto, Nodes: 10, A: 0.5, Saturated: true, Frames: 2000, Seed: 4}
		a, ra, err := run(cfg, monoEpoch)
		if err != nil {
			t.Fatal(err)
		}
		b, rb, err := run(cfg, epoch)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Seed = 5
		c, rc, err := run(cfg, monoEpoch)
		if err != nil {
			t.Fatal(err)
		}
		fa, fb, fc := fingerprint(a, ra), fingerprint(b, rb), fingerprint(c, rc)
		if fa != fb {
			t.Errorf("%s: two runs of one config differ:\n%s\n%s", proto, fa, fb)
		}
		if fa == fc {
			t.Errorf("%s: seeds 4 and 5 gave the same run: %s", proto, fa)
		}
	}
}

// TestSlotGuard: a data frame takes the slots that exact arithmetic gives,
// ⌈(a + 1) / (a + control/frame)⌉ in frame times, not one more for the
// rounding of the delay and airtimes to nanoseconds (at a = 0.1 with 12-byte
// control packets and 100-byte frames they ended 1 ns past the fifth slot).
func TestSlotGuard(t *testing.T) {
	for _, a := range []float64{0.01, 0.1, 0.2, 0.5, 1, 2} {
		for _, proto := range []string{FAMA, TLohi} {
			cfg := Config{Protocol: proto, Nodes: 2, A: a, Saturated: true, Frames: 10}
			_, r, err := run(cfg, monoEpoch)
			if err != nil {
				t.Fatal(err)
			}
			want := int64(math.Ceil((a+1)/(a+12.0/100) - 1e-9))
			if r.sl.dataSlots != want {
				t.Errorf("%s a=%g: a data frame takes %d slots, want %d", proto, a, r.sl.dataSlots, want)
			}
		}
	}
}
