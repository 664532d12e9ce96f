package sim

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/slided/slided/phy/sim/medium"
)

// ErrScenario is wrapped by every ScenarioError.
var ErrScenario = errors.New("sim: bad scenario")

// ScenarioError says what is wrong with a scenario file and where.
type ScenarioError struct {
	Path string
	Line int // 1-based; 0 when unknown
	Msg  string
}

func (e *ScenarioError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

// Unwrap lets errors.Is find ErrScenario.
func (e *ScenarioError) Unwrap() error { return ErrScenario }

// Scenario is a medium described by a file: its channel and its topology.
// docs/simulation.md describes the format.
type Scenario struct {
	// Path is the file it was read from.
	Path string
	// BitRate is the channel's bit rate; 0 when the file does not set it.
	BitRate int
	// Seed is the medium's seed; HasSeed says whether the file set it.
	Seed    uint64
	HasSeed bool
	// Topology is the nodes and their links.
	Topology *medium.Topology
}

// scenarioFile is the TOML layout of a scenario.
type scenarioFile struct {
	BitRate     *int64          `toml:"bit_rate"`
	Seed        *int64          `toml:"seed"`
	Propagation *propagationDoc `toml:"propagation"`
	Node        []nodeDoc       `toml:"node"`
	Link        []linkDoc       `toml:"link"`
}

type propagationDoc struct {
	Speed    any          `toml:"speed"` // metres per second, or "sound" / "light"
	Range    *float64     `toml:"range"`
	Loss     *float64     `toml:"loss"`
	BER      *float64     `toml:"ber"`
	Acoustic *acousticDoc `toml:"acoustic"`
}

type acousticDoc struct {
	FrequencyKHz *float64 `toml:"frequency_khz"`
	SourceLevel  *float64 `toml:"source_level"`
	Spreading    *float64 `toml:"spreading"`
	NoiseLevel   *float64 `toml:"noise_level"`
	Threshold    *float64 `toml:"threshold"`
}

type nodeDoc struct {
	ID       *int64    `toml:"id"`
	Position []float64 `toml:"position"`
}

type linkDoc struct {
	From     *int64         `toml:"from"`
	To       *int64         `toml:"to"`
	BothWays *bool          `toml:"both_ways"`
	Reach    *bool          `toml:"reach"`
	Distance *float64       `toml:"distance"`
	Delay    *time.Duration `toml:"delay"`
	Loss     *float64       `toml:"loss"`
	BER      *float64       `toml:"ber"`
}

// LoadScenario reads and checks the scenario file at path. Every problem is
// reported as a *ScenarioError naming the file and, where it can, the line:
// syntax, unknown keys, wrong types, impossible values (negative distances,
// a speed or rate of zero), links naming nodes that are not declared.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sim: scenario: %w", err)
	}
	return ParseScenario(path, data)
}

var lineRE = regexp.MustCompile(`^toml: line (\d+)(?: \(last key "[^"]*"\))?: `)

// ParseScenario parses a scenario from data; path is only used in errors.
func ParseScenario(path string, data []byte) (*Scenario, error) {
	var f scenarioFile
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		e := &ScenarioError{Path: path, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			e.Line, e.Msg = pe.Position.Line, pe.Message
		} else if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = err.Error()[len(m[0]):]
		}
		return nil, e
	}
	lines := indexLines(data)
	fail := func(key, format string, a ...any) error {
		return &ScenarioError{Path: path, Line: lines.find(key), Msg: fmt.Sprintf(format, a...)}
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0].String()
		return nil, fail(lines.keyFor(und[0]), "unknown key %q", k)
	}

	sc := &Scenario{Path: path}
	if f.BitRate != nil {
		if *f.BitRate <= 0 || *f.BitRate > 1_000_000_000 {
			return nil, fail("bit_rate", "bit_rate %d: must be in 1..1000000000 bit/s", *f.BitRate)
		}
		sc.BitRate = int(*f.BitRate)
	}
	if f.Seed != nil {
		if *f.Seed < 0 {
			return nil, fail("seed", "seed %d: must not be negative", *f.Seed)
		}
		sc.Seed, sc.HasSeed = uint64(*f.Seed), true
	}

	prop := medium.Propagation{Speed: medium.SpeedOfSound}
	if p := f.Propagation; p != nil {
		switch v := p.Speed.(type) {
		case nil:
		case string:
			switch v {
			case "sound":
				prop.Speed = medium.SpeedOfSound
			case "light":
				prop.Speed = medium.SpeedOfLight
			default:
				return nil, fail("propagation.speed", `speed %q: want metres per second, "sound" or "light"`, v)
			}
		case int64:
			prop.Speed = float64(v)
		case float64:
			prop.Speed = v
		default:
			return nil, fail("propagation.speed", `speed: want metres per second, "sound" or "light", got %T`, v)
		}
		if !(prop.Speed > 0) || math.IsInf(prop.Speed, 0) {
			return nil, fail("propagation.speed", "speed %v m/s: must be positive", prop.Speed)
		}
		if p.Range != nil {
			if !(*p.Range > 0) || math.IsInf(*p.Range, 0) {
				return nil, fail("propagation.range", "range %v m: must be positive (leave it out for no limit)", *p.Range)
			}
			prop.Range = *p.Range
		}
		if p.Loss != nil {
			if !(*p.Loss >= 0 && *p.Loss <= 1) {
				return nil, fail("propagation.loss", "loss %v: not in [0, 1]", *p.Loss)
			}
			prop.LossRate = *p.Loss
		}
		if p.BER != nil {
			if !(*p.BER >= 0 && *p.BER <= 1) {
				return nil, fail("propagation.ber", "ber %v: not in [0, 1]", *p.BER)
			}
			prop.BitErrorRate = *p.BER
		}
		if a := p.Acoustic; a != nil {
			b := medium.AcousticBudget{Spreading: 1.5}
			for _, fv := range []struct {
				key string
				p   *float64
				dst *float64
			}{
				{"frequency_khz", a.FrequencyKHz, &b.FrequencyKHz},
				{"source_level", a.SourceLevel, &b.SourceLevel},
				{"spreading", a.Spreading, &b.Spreading},
				{"noise_level", a.NoiseLevel, &b.NoiseLevel},
				{"threshold", a.Threshold, &b.Threshold},
			} {
				if fv.p == nil {
					if fv.key == "spreading" {
						continue
					}
					return nil, fail("propagation.acoustic", "acoustic budget: %s is required", fv.key)
				}
				*fv.dst = *fv.p
			}
			if err := b.Validate(); err != nil {
				return nil, fail("propagation.acoustic", "%s", strings.TrimPrefix(err.Error(), "sim: "))
			}
			prop.Acoustic = &b
		}
	}

	if len(f.Node) == 0 {
		return nil, fail("", "no [[node]] declared")
	}
	pos := make(map[NodeID]medium.Position, len(f.Node))
	placed := make(map[NodeID]bool, len(f.Node))
	posKey := make(map[NodeID]string, len(f.Node))
	var ids []NodeID
	for i, n := range f.Node {
		key := fmt.Sprintf("node.%d", i)
		if n.ID == nil {
			return nil, fail(key, "node: id is required")
		}
		if *n.ID < 1 || *n.ID > 254 {
			return nil, fail(key+".id", "node id %d: must be in 1..254", *n.ID)
		}
		id := NodeID(*n.ID)
		if _, dup := pos[id]; dup {
			return nil, fail(key+".id", "node %d declared twice", id)
		}
		pos[id] = medium.Position{}
		ids = append(ids, id)
		if n.Position != nil {
			if len(n.Position) < 2 || len(n.Position) > 3 {
				return nil, fail(key+".position", "node %d: position wants [x, y] or [x, y, z] in metres", id)
			}
			var p medium.Position
			p.X, p.Y = n.Position[0], n.Position[1]
			if len(n.Position) == 3 {
				p.Z = n.Position[2]
			}
			for _, c := range n.Position {
				if math.IsNaN(c) || math.IsInf(c, 0) {
					return nil, fail(key+".position", "node %d: position %v is not finite", id, n.Position)
				}
			}
			pos[id], placed[id], posKey[id] = p, true, key+".position"
		}
	}
	topo, err := medium.NewTopology(ids...)
	if err != nil {
		return nil, fail("node", "%s", strings.TrimPrefix(err.Error(), "sim: "))
	}
	for _, a := range ids {
		for _, b := range ids {
			if a != b && placed[a] && placed[b] {
				d := pos[a].Distance(pos[b])
				if err := topo.SetLink(a, b, prop.Link(d)); err != nil {
					return nil, fail(posKey[b], "node %d: %v m from node %d: %s", b, d, a, strings.TrimPrefix(err.Error(), "sim: "))
				}
			}
		}
	}

	for i, l := range f.Link {
		key := fmt.Sprintf("link.%d", i)
		if l.From == nil || l.To == nil {
			return nil, fail(key, "link: from and to are required")
		}
		from, to := *l.From, *l.To
		for _, e := range []struct {
			k  string
			id int64
		}{{"from", from}, {"to", to}} {
			if e.id < 1 || e.id > 254 || !topo.Has(NodeID(e.id)) {
				return nil, fail(key+"."+e.k, "link %s node %d: no such [[node]]", e.k, e.id)
			}
		}
		if from == to {
			return nil, fail(key+".to", "link from node %d to itself", from)
		}
		var lk medium.Link
		switch {
		case l.Reach != nil && !*l.Reach:
			if l.Distance != nil || l.Delay != nil || l.Loss != nil || l.BER != nil {
				return nil, fail(key+".reach", "link %d-%d: reach = false takes no distance, delay, loss or ber", from, to)
			}
		case l.Distance != nil && l.Delay != nil:
			return nil, fail(key+".delay", "link %d-%d: give distance or delay, not both", from, to)
		case l.Distance != nil:
			if !(*l.Distance >= 0) || math.IsInf(*l.Distance, 0) {
				return nil, fail(key+".distance", "link %d-%d: distance %v m: must not be negative", from, to, *l.Distance)
			}
			lk = prop.Link(*l.Distance)
			if !lk.Reach {
				return nil, fail(key+".distance", "link %d-%d: %v m is out of range (set reach = false to cut a link)", from, to, *l.Distance)
			}
		case l.Delay != nil:
			if *l.Delay < 0 {
				return nil, fail(key+".delay", "link %d-%d: delay %v: negative", from, to, *l.Delay)
			}
			lk = medium.Link{Reach: true, Delay: *l.Delay, LossRate: prop.LossRate, BitErrorRate: prop.BitErrorRate}
		default:
			lk = topo.Link(NodeID(from), NodeID(to))
			if !lk.Reach {
				return nil, fail(key, "link %d-%d: needs distance or delay (the nodes have no positions in range)", from, to)
			}
		}
		if lk.Reach && l.Loss != nil {
			if !(*l.Loss >= 0 && *l.Loss <= 1) {
				return nil, fail(key+".loss", "link %d-%d: loss %v: not in [0, 1]", from, to, *l.Loss)
			}
			lk.LossRate = *l.Loss
		}
		if lk.Reach && l.BER != nil {
			if !(*l.BER >= 0 && *l.BER <= 1) {
				return nil, fail(key+".ber", "link %d-%d: ber %v: not in [0, 1]", from, to, *l.BER)
			}
			lk.BitErrorRate = *l.BER
		}
		if err := topo.SetLink(NodeID(from), NodeID(to), lk); err != nil {
			return nil, fail(key+".distance", "link %d-%d: %s", from, to, strings.TrimPrefix(err.Error(), "sim: "))
		}
		if l.BothWays == nil || *l.BothWays {
			topo.SetLink(NodeID(to), NodeID(from), lk) // valid: the same link
		}
	}
	sc.Topology = topo
	return sc, nil
}

// lineIndex maps dotted key paths ("bit_rate", "propagation.acoustic",
// "node.2.position") to the 1-based line that sets them; arrays of tables
// are numbered from 0 in file order. It understands `key = value` lines and
// `[table]` / `[[array]]` headers, enough to point at a problem.
type lineIndex map[string]int

func indexLines(data []byte) lineIndex {
	idx := lineIndex{}
	counts := map[string]int{}
	prefix := ""
	for i, raw := range bytes.Split(data, []byte("\n")) {
		s := strings.TrimSpace(string(raw))
		if s == "" || s[0] == '#' {
			continue
		}
		switch {
		case strings.HasPrefix(s, "[["):
			name := strings.TrimSpace(strings.Trim(strings.SplitN(s, "#", 2)[0], "[] \t"))
			prefix = fmt.Sprintf("%s.%d", name, counts[name])
			counts[name]++
			idx.set(prefix, i+1)
		case strings.HasPrefix(s, "["):
			name := strings.TrimSpace(strings.Trim(strings.SplitN(s, "#", 2)[0], "[] \t"))
			// A sub-table of the latest array element ([propagation.x]
			// stays plain; [node.x] would belong to the last [[node]]).
			prefix = name
			idx.set(prefix, i+1)
		default:
			j := strings.IndexByte(s, '=')
			if j < 0 {
				continue
			}
			k := strings.Trim(strings.TrimSpace(s[:j]), `"'`)
			if prefix != "" {
				k = prefix + "." + k
			}
			idx.set(k, i+1)
		}
	}
	return idx
}

func (x lineIndex) set(k string, line int) {
	if _, ok := x[k]; !ok {
		x[k] = line
	}
}

// find returns the line of key, or of its closest enclosing table, or 0.
func (x lineIndex) find(key string) int {
	for key != "" {
		if l, ok := x[key]; ok {
			return l
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// keyFor turns an undecoded TOML key into a lineIndex path. Keys inside
// arrays of tables carry no element number in the metadata, so the path
// names the first element that sets that key.
func (x lineIndex) keyFor(k toml.Key) string {
	if len(k) >= 2 && (k[0] == "node" || k[0] == "link") {
		rest := strings.Join(k[1:], ".")
		for i := 0; ; i++ {
			elem := fmt.Sprintf("%s.%d", k[0], i)
			if _, ok := x[elem]; !ok {
				break
			}
			if _, ok := x[elem+"."+rest]; ok {
				return elem + "." + rest
			}
		}
	}
	return k.String()
}
