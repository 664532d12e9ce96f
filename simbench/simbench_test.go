package simbench

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/slided/slided/phy/sim/medium"
)

// TestTheory checks the medium and the driver against the classic results:
// pure ALOHA S = G·e^(−2G) and non-persistent CSMA (Kleinrock and Tobagi
// 1975) for a = 0.01, 0.1 and 1. Fixed seeds make it deterministic.
func TestTheory(t *testing.T) {
	cases := []struct {
		desc  string
		proto string
		a, g  float64
	}{
		{"aloha G=0.25", Aloha, 0, 0.25},
		{"aloha G=0.5", Aloha, 0, 0.5},
		{"aloha G=1", Aloha, 0, 1},
		{"aloha G=1.5", Aloha, 0, 1.5},
		{"np-csma a=0.01 G=0.5", NPCSMA, 0.01, 0.5},
		{"np-csma a=0.01 G=2", NPCSMA, 0.01, 2},
		{"np-csma a=0.01 G=8", NPCSMA, 0.01, 8},
		{"np-csma a=0.1 G=0.5", NPCSMA, 0.1, 0.5},
		{"np-csma a=0.1 G=2", NPCSMA, 0.1, 2},
		{"np-csma a=0.1 G=5", NPCSMA, 0.1, 5},
		{"np-csma a=1 G=0.5", NPCSMA, 1, 0.5},
		{"np-csma a=1 G=1", NPCSMA, 1, 1},
		{"np-csma a=1 G=3", NPCSMA, 1, 3},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			r, err := Run(Config{Protocol: c.proto, Nodes: 100, A: c.a, Load: c.g, Frames: 5000, Seed: 7})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(r.G-c.g) > 0.05*c.g {
				t.Errorf("measured G = %.3f, offered %.3f: more than 5%% apart", r.G, c.g)
			}
			want := AlohaS(r.G)
			if c.proto == NPCSMA {
				want = NPCSMAS(r.G, c.a)
			}
			if math.Abs(r.S-want) > 0.03 {
				t.Errorf("S = %.4f at G = %.3f, theory %.4f: off by more than 0.03", r.S, r.G, want)
			}
			t.Logf("a=%v G=%.3f S=%.4f theory=%.4f", c.a, r.G, r.S, want)
		})
	}
}

func TestDeterministic(t *testing.T) {
	for _, cfg := range []Config{
		{Protocol: NPCSMA, Nodes: 20, A: 0.1, Load: 1, Frames: 300, Seed: 3},
		{Protocol: CSMA, Nodes: 10, A: 0.01, Saturated: true, Frames: 300, Seed: 3},
		{Protocol: CSMA, Nodes: 10, A: 0.5, Load: 0.5, Frames: 300, Seed: 3},
	} {
		t.Run(cfg.Protocol, func(t *testing.T) {
			a, err := Run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := Run(cfg)
			a.WallSeconds, a.Speed, b.WallSeconds, b.Speed = 0, 0, 0, 0
			if a != b {
				t.Errorf("two runs differ:\n%+v\n%+v", a, b)
			}
			if a.Successes == 0 {
				t.Errorf("nothing delivered: %+v", a)
			}
			cfg.Seed++
			c, _ := Run(cfg)
			if c.Successes == a.Successes && c.Transmissions == a.Transmissions {
				t.Errorf("seed %d and %d gave the same counts", cfg.Seed-1, cfg.Seed)
			}
		})
	}
}

// TestSlidedMAC pins the figures docs/simulation.md quotes for the daemon's
// own MAC: ten saturated nodes at a = 0.01 with 200-byte frames.
func TestSlidedMAC(t *testing.T) {
	r, err := Run(Config{Protocol: CSMA, Nodes: 10, A: 0.01, Saturated: true, Frames: 3000, Seed: 1, FrameBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	if r.S < 0.80 {
		t.Errorf("S = %.3f, want at least 0.80", r.S)
	}
	if r.Jain < 0.95 {
		t.Errorf("Jain = %.3f, want at least 0.95", r.Jain)
	}
}

// TestHiddenTerminal: 1 and 3 cannot hear each other, both reach 2. With
// np-csma the hidden pair collide at 2 far more than a full mesh does.
func TestHiddenTerminal(t *testing.T) {
	run := func(hidden bool) Result {
		topo, err := medium.FullMesh(medium.Link{Reach: true}, 1, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		if hidden {
			topo.SetLink(1, 3, medium.Link{})
			topo.SetLink(3, 1, medium.Link{})
		}
		r, err := Run(Config{Protocol: NPCSMA, Nodes: 3, Load: 0.6, Frames: 3000, Seed: 5, Topology: topo})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	mesh, hidden := run(false), run(true)
	if !(hidden.CollisionRate > 2*mesh.CollisionRate+0.05) {
		t.Errorf("collision rate hidden %.3f, mesh %.3f: want hidden well above", hidden.CollisionRate, mesh.CollisionRate)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Protocol: Aloha, Nodes: 10, Load: 1, Frames: 10}
	cases := []struct {
		desc string
		mod  func(*Config)
	}{
		{"unknown protocol", func(c *Config) { c.Protocol = "tdma" }},
		{"one node", func(c *Config) { c.Nodes = 1 }},
		{"too many nodes", func(c *Config) { c.Nodes = MaxNodes + 1 }},
		{"negative a", func(c *Config) { c.A = -1 }},
		{"NaN a", func(c *Config) { c.A = math.NaN() }},
		{"zero load", func(c *Config) { c.Load = 0 }},
		{"saturated aloha", func(c *Config) { c.Saturated = true }},
		{"no frames", func(c *Config) { c.Frames = 0 }},
		{"tiny frame", func(c *Config) { c.FrameBytes = 4 }},
		{"bad mac", func(c *Config) { c.Protocol = CSMA; c.MAC.SlotTime = -1 }},
		{"fama not saturated", func(c *Config) { c.Protocol = FAMA }},
		{"tlohi not saturated", func(c *Config) { c.Protocol = TLohi }},
		{"fama control too short", func(c *Config) { c.Protocol, c.Saturated, c.Control = FAMA, true, 4 }},
		{"tlohi control a frame long", func(c *Config) { c.Protocol, c.Saturated, c.Control = TLohi, true, 100 }},
		{"fama window negative", func(c *Config) { c.Protocol, c.Saturated, c.Window = FAMA, true, -1 }},
		{"fama window too wide", func(c *Config) { c.Protocol, c.Saturated, c.Window = FAMA, true, 1025 }},
		{"tlohi window", func(c *Config) { c.Protocol, c.Saturated, c.Window = TLohi, true, 4 }},
		{"aloha control", func(c *Config) { c.Control = 12 }},
		{"csma window", func(c *Config) { c.Protocol, c.Saturated, c.Window = CSMA, true, 4 }},
		{"fama topology", func(c *Config) {
			topo, _ := medium.FullMesh(medium.Link{Reach: true}, 1, 2)
			c.Protocol, c.Saturated, c.Nodes, c.Topology = FAMA, true, 2, topo
		}},
		{"senders above nodes", func(c *Config) { c.Protocol, c.Saturated, c.senders = TLohi, true, 11 }},
	}
	for _, good := range []Config{ok,
		{Protocol: FAMA, Nodes: 2, Saturated: true, Frames: 10},
		{Protocol: FAMA, Nodes: 2, Saturated: true, Frames: 10, Control: 99, Window: 1024},
		{Protocol: TLohi, Nodes: 2, Saturated: true, Frames: 10, Control: 5},
	} {
		if err := good.Validate(); err != nil {
			t.Fatalf("valid config %+v: %v", good, err)
		}
	}
	for _, c := range cases {
		cfg := ok
		c.mod(&cfg)
		if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Validate = %v, want ErrConfig", c.desc, err)
		}
		if _, err := Run(cfg); err == nil {
			t.Errorf("%s: Run accepted it", c.desc)
		}
	}
}

func TestTimers(t *testing.T) {
	tm := newTimers(8, epoch)
	order := []int{5, 3, 7, 0, 6, 1}
	for i, s := range order {
		tm.set(s, epoch.Add(time.Duration(10-i)*time.Second))
	}
	tm.set(7, epoch.Add(100*time.Second)) // move to the back
	tm.set(0, epoch.Add(6*time.Second))   // and 0 to 6 s, tied with 6: slot order
	tm.clear(3)
	var got []int
	for {
		s, _, ok := tm.peek()
		if !ok {
			break
		}
		tm.clear(s)
		got = append(got, s)
	}
	if fmt.Sprint(got) != "[1 0 6 5 7]" {
		t.Errorf("order %v, want [1 0 6 5 7] (ties in slot order)", got)
	}
}

func BenchmarkRun(b *testing.B) {
	for _, c := range []Config{
		{Protocol: Aloha, Nodes: 100, Load: 1, Frames: 1000, Seed: 1},
		{Protocol: NPCSMA, Nodes: 100, A: 0.1, Load: 2, Frames: 1000, Seed: 1},
		{Protocol: CSMA, Nodes: 10, A: 0.01, Saturated: true, Frames: 1000, Seed: 1},
		{Protocol: CSMA, Nodes: 100, A: 0.01, Saturated: true, Frames: 1000, Seed: 1},
		{Protocol: CSMA, Nodes: 1000, A: 0.01, Saturated: true, Frames: 1000, Seed: 1},
	} {
		b.Run(fmt.Sprintf("%s/nodes=%d", c.Protocol, c.Nodes), func(b *testing.B) {
			b.ReportAllocs()
			var ft float64
			for b.Loop() {
				r, err := Run(c)
				if err != nil {
					b.Fatal(err)
				}
				ft += r.FrameTimes + float64(min(c.Frames/10, 1000))
			}
			b.ReportMetric(ft/b.Elapsed().Seconds(), "frametimes/s")
		})
	}
}

// TestFastMediumMatches runs the same configurations on medium.Medium and on
// fastMedium: every count must agree, since both fire the same events in the
// same order.
func TestFastMediumMatches(t *testing.T) {
	for _, c := range []Config{
		{Protocol: Aloha, Nodes: 20, Load: 1, Frames: 2000, Seed: 3},
		{Protocol: NPCSMA, Nodes: 20, A: 0.1, Load: 2, Frames: 2000, Seed: 4},
		{Protocol: NPCSMA, Nodes: 5, A: 0, Load: 3, Frames: 2000, Seed: 4},
		{Protocol: CSMA, Nodes: 10, A: 0.01, Saturated: true, Frames: 2000, Seed: 5},
		{Protocol: CSMA, Nodes: 30, A: 0.01, Load: 0.7, Frames: 2000, Seed: 6},
		{Protocol: CSMA, Nodes: 10, A: 1, Saturated: true, Frames: 2000, Seed: 7},
		{Protocol: CSMA, Nodes: 4, A: 0.5, Saturated: true, Frames: 2000, Seed: 8},
		{Protocol: CSMA, Nodes: 40, A: 0.01, Saturated: true, Frames: 1000, Seed: 9},
		{Protocol: FAMA, Nodes: 10, A: 0.1, Saturated: true, Frames: 2000, Seed: 10},
		{Protocol: FAMA, Nodes: 5, A: 0, Saturated: true, Frames: 2000, Seed: 11},
		{Protocol: TLohi, Nodes: 10, A: 1, Saturated: true, Frames: 2000, Seed: 12},
		{Protocol: TLohi, Nodes: 5, A: 0, Saturated: true, Frames: 2000, Seed: 13},
	} {
		name := fmt.Sprintf("%s/n=%d/a=%g", c.Protocol, c.Nodes, c.A)
		fast, err := Run(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		slowMedium = true
		slow, err := Run(c)
		slowMedium = false
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fast.WallSeconds, fast.Speed, slow.WallSeconds, slow.Speed = 0, 0, 0, 0
		if fast != slow {
			t.Errorf("%s: fast medium\n%+v\nmedium.Medium\n%+v", name, fast, slow)
		}
		if fast.Successes == 0 {
			t.Errorf("%s: nothing delivered", name)
		}
	}
}

// TestAdaptiveGoals checks the goals of issue 13 on slided's MAC with the
// defaults for each delay (csma.ConfigFor of the simulated channel):
// throughput near the optimum and long-term fairness, from 2 to 100
// saturated nodes and at the delays of acoustic modems. Deterministic: fixed
// seeds, virtual time.
func TestAdaptiveGoals(t *testing.T) {
	for _, tc := range []struct {
		nodes   int
		a       float64
		frames  int
		minS    float64
		minJain float64
	}{
		{2, 0.01, 20000, 0.85, 0.99},
		{10, 0.01, 20000, 0.85, 0.99},
		{100, 0.01, 5000, 0.80, 0.97}, // Jain over 5000 T: ~40 frames a node
		{10, 0.5, 20000, 0.35, 0.99},
		{10, 1, 20000, 0.30, 0.99},
		{2, 1, 20000, 0.40, 0.99},
	} {
		r, err := Run(Config{Protocol: CSMA, Nodes: tc.nodes, A: tc.a, Saturated: true, Frames: tc.frames, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d nodes a=%g: S %.3f collisions %.3f Jain %.4f", tc.nodes, tc.a, r.S, r.CollisionRate, r.Jain)
		if r.S < tc.minS || r.Jain < tc.minJain {
			t.Errorf("%d nodes a=%g: S %.3f Jain %.4f, want S >= %v and Jain >= %v", tc.nodes, tc.a, r.S, r.Jain, tc.minS, tc.minJain)
		}
	}
}

// TestQuantile: the selection finds what sorting finds, duplicates and all.
func TestQuantile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 1; n < 300; n += 7 {
		for _, levels := range []int{2, 10, 1000} {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = float64(rng.IntN(levels))
			}
			sorted := slices.Clone(xs)
			slices.Sort(sorted)
			for _, q := range []float64{0, 0.5, 0.95, 1} {
				want := sorted[min(n-1, int(q*float64(n)))]
				if got := quantile(slices.Clone(xs), q); got != want {
					t.Fatalf("n=%d levels=%d q=%v: %v, sorting gives %v", n, levels, q, got, want)
				}
			}
		}
	}
}
