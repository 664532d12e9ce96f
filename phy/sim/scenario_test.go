package sim

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/phy/sim/medium"
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
		want     medium.Link
	}{
		{"1 km of water", 1, 2, medium.Link{Reach: true, Delay: 666_666_666, LossRate: 0.01}},
		{"and back", 2, 1, medium.Link{Reach: true, Delay: 666_666_666, LossRate: 0.01}},
		{"2 km is out of range", 1, 3, medium.Link{}},
		{"link table, both ways", 2, 4, medium.Link{Reach: true, Delay: 50 * time.Millisecond, LossRate: 0.01, BitErrorRate: 1e-4}},
		{"unplaced node", 4, 1, medium.Link{}},
		{"undeclared node", 1, 9, medium.Link{}},
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
