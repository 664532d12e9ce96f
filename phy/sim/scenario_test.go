package sim

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/phy"
)

const goodScenario = `# three nodes on a line, 1 km apart; 1 and 3 are out of each other's range
bit_rate = 1200
seed = 9

[propagation]
speed = "sound"
range = 1500
loss = 0.01

[[node]]
id = 1
position = [0, 0]

[[node]]
id = 2
position = [1000, 0]

[[node]]
id = 3
position = [2000, 0, 0]

[[node]]
id = 4   # no position: only its links below

[[link]]
from = 4
to = 2
delay = "50ms"
ber = 1e-4
`

func TestParseScenario(t *testing.T) {
	sc, err := ParseScenario("good.toml", []byte(goodScenario))
	if err != nil {
		t.Fatal(err)
	}
	if sc.BitRate != 1200 || !sc.HasSeed || sc.Seed != 9 {
		t.Errorf("bit rate %d seed %d (%v), want 1200 and 9", sc.BitRate, sc.Seed, sc.HasSeed)
	}
	tp := sc.Topology
	cases := []struct {
		desc     string
		from, to NodeID
		want     Link
	}{
		{"1 km of water", 1, 2, Link{Reach: true, Delay: 666_666_666, LossRate: 0.01}},
		{"and back", 2, 1, Link{Reach: true, Delay: 666_666_666, LossRate: 0.01}},
		{"2 km is out of range", 1, 3, Link{}},
		{"link table, both ways", 2, 4, Link{Reach: true, Delay: 50 * time.Millisecond, LossRate: 0.01, BitErrorRate: 1e-4}},
		{"unplaced node", 4, 1, Link{}},
		{"undeclared node", 1, 9, Link{}},
	}
	for _, c := range cases {
		if got := tp.Link(c.from, c.to); got != c.want {
			t.Errorf("%s: Link(%d, %d) = %+v, want %+v", c.desc, c.from, c.to, got, c.want)
		}
	}
}

func TestParseScenarioErrors(t *testing.T) {
	cases := []struct {
		desc string
		file string
		line int
		msg  string
	}{
		{"unknown top-level key", "bit_rate = 1200\nspeeed = 3\n[[node]]\nid = 1\n", 2, `unknown key "speeed"`},
		{"unknown node key", "[[node]]\nid = 1\n[[node]]\nid = 2\npos = [1, 2]\n", 5, `unknown key "node.pos"`},
		{"syntax", "bit_rate = \n", 1, ""},
		{"wrong type", "bit_rate = \"fast\"\n", 1, "incompatible types"},
		{"zero bit rate", "bit_rate = 0\n[[node]]\nid = 1\n", 1, "bit_rate 0"},
		{"zero speed", "[propagation]\nspeed = 0\n[[node]]\nid = 1\n", 2, "speed 0"},
		{"negative range", "[propagation]\nrange = -5\n[[node]]\nid = 1\n", 2, "range -5"},
		{"loss above one", "[propagation]\nloss = 1.5\n[[node]]\nid = 1\n", 2, "loss 1.5"},
		{"no nodes", "bit_rate = 1\n", 0, "no [[node]]"},
		{"node id 0", "[[node]]\nid = 0\n", 2, "node id 0"},
		{"node twice", "[[node]]\nid = 3\n[[node]]\nid = 3\n", 4, "declared twice"},
		{"node without id", "[[node]]\nposition = [1, 2]\n", 1, "id is required"},
		{"bad position", "[[node]]\nid = 1\nposition = [1]\n", 3, "position wants"},
		{"link to a node that does not exist", "[[node]]\nid = 1\n[[link]]\nfrom = 1\nto = 7\ndelay = \"1s\"\n", 5, "no such [[node]]"},
		{"negative distance", "[[node]]\nid = 1\n[[node]]\nid = 2\n[[link]]\nfrom = 1\nto = 2\ndistance = -3\n", 8, "distance -3"},
		{"negative delay", "[[node]]\nid = 1\n[[node]]\nid = 2\n[[link]]\nfrom = 1\nto = 2\ndelay = \"-1s\"\n", 8, "negative"},
		{"link to itself", "[[node]]\nid = 1\n[[link]]\nfrom = 1\nto = 1\ndelay = \"1s\"\n", 5, "itself"},
		{"acoustic without frequency", "[propagation.acoustic]\nsource_level = 180\nnoise_level = 50\nthreshold = 10\n[[node]]\nid = 1\n", 1, "frequency_khz is required"},
		{"link without distance or delay", "[[node]]\nid = 1\n[[node]]\nid = 2\n[[link]]\nfrom = 1\nto = 2\n", 5, "needs distance or delay"},
		// A delay past time.Duration's range converts to a negative one.
		{"distance too far for a delay", "[[node]]\nid = 1\n[[node]]\nid = 2\n[[link]]\nfrom = 1\nto = 2\ndistance = 1e300\n", 8, "delay"},
		{"positions too far apart for a delay", "[[node]]\nid = 1\nposition = [0, 0]\n[[node]]\nid = 2\nposition = [1e300, 0]\n", 6, "delay"},
	}
	for _, c := range cases {
		_, err := ParseScenario("s.toml", []byte(c.file))
		var se *ScenarioError
		if !errors.As(err, &se) || !errors.Is(err, ErrScenario) {
			t.Errorf("%s: error %v, want a *ScenarioError", c.desc, err)
			continue
		}
		if se.Path != "s.toml" || se.Line != c.line || !strings.Contains(se.Msg, c.msg) {
			t.Errorf("%s: got %q (line %d), want line %d and %q", c.desc, err, se.Line, c.line, c.msg)
		}
	}
}

func TestLoadScenarioFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.toml")
	if err := os.WriteFile(path, []byte("[[node]]\nid = 1\nwhat = 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadScenario(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":3: ") {
		t.Errorf("error %v, want it to start with %s:3:", err, path)
	}
	if _, err := LoadScenario(filepath.Join(t.TempDir(), "none.toml")); err == nil {
		t.Error("missing file accepted")
	}
}

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

// FuzzParseScenario: no input makes the parser panic, and what it accepts
// has a topology with the nodes it declared.
func FuzzParseScenario(f *testing.F) {
	f.Add([]byte(goodScenario))
	f.Add([]byte("[[node]]\nid = 1\n[[link]]\nfrom = 1\nto = 2\n"))
	f.Add([]byte("[propagation.acoustic]\nfrequency_khz = 12\nsource_level = 180\nnoise_level = 60\nthreshold = 10\n[[node]]\nid = 1\nposition = [0, 0]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := ParseScenario("f.toml", data)
		if err == nil && (sc.Topology == nil || len(sc.Topology.Nodes()) == 0) {
			t.Fatalf("accepted without nodes: %q", data)
		}
	})
}
