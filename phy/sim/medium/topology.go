package medium

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Propagation speeds, in metres per second.
const (
	// SpeedOfSound is the nominal speed of sound in sea water.
	SpeedOfSound = 1500.0
	// SpeedOfLight is the speed of a radio signal.
	SpeedOfLight = 299_792_458.0
)

// Link is what a transmission from one node does at another: whether it
// arrives at all (a node out of reach senses no carrier either), after which
// delay, and with which whole-frame loss and bit-error rates.
type Link struct {
	Reach        bool
	Delay        time.Duration
	LossRate     float64
	BitErrorRate float64
}

// Validate reports the first impossible value in l, or nil.
func (l Link) Validate() error {
	switch {
	case l.Delay < 0:
		return fmt.Errorf("sim: link delay %v: negative", l.Delay)
	case !(l.LossRate >= 0 && l.LossRate <= 1):
		return fmt.Errorf("sim: link loss rate %v: not in [0, 1]", l.LossRate)
	case !(l.BitErrorRate >= 0 && l.BitErrorRate <= 1):
		return fmt.Errorf("sim: link bit error rate %v: not in [0, 1]", l.BitErrorRate)
	}
	return nil
}

// Topology is a table of directed links between the nodes it names. A pair
// it has no entry for, and any node it does not name, is out of reach: a node
// that attaches to a medium with a topology but is not in it hears nothing
// and is heard by nobody.
//
// A Topology is a value the medium reads; do not change one after handing it
// to Medium.SetTopology (build a new one instead). Links are asymmetric in
// general (an acoustic budget is symmetric, a link table need not be).
type Topology struct {
	ids   []NodeID // ascending
	idx   [256]int16
	links []Link // len(ids)², row = from
}

// NewTopology returns a topology of the given nodes with no link between
// any two. Invalid ids (0, 255) and duplicates are an error.
func NewTopology(ids ...NodeID) (*Topology, error) {
	t := &Topology{}
	for i := range t.idx {
		t.idx[i] = -1
	}
	s := slices.Clone(ids)
	slices.Sort(s)
	for i, id := range s {
		if id == 0 || id == 0xFF {
			return nil, fmt.Errorf("%w: %d", ErrInvalidNode, id)
		}
		if i > 0 && s[i-1] == id {
			return nil, fmt.Errorf("sim: node %d listed twice", id)
		}
		t.idx[id] = int16(i)
	}
	t.ids = s
	t.links = make([]Link, len(s)*len(s))
	return t, nil
}

// FullMesh returns a topology in which every node reaches every other over
// link l, which must be valid.
func FullMesh(l Link, ids ...NodeID) (*Topology, error) {
	return linkAll(ids, func(NodeID, NodeID) Link { return l })
}

// linkAll returns a topology of ids in which each node reaches each other
// over link(from, to); an invalid link (Link.Validate) is an error.
func linkAll(ids []NodeID, link func(from, to NodeID) Link) (*Topology, error) {
	t, err := NewTopology(ids...)
	if err != nil {
		return nil, err
	}
	for _, a := range t.ids {
		for _, b := range t.ids {
			if a == b {
				continue
			}
			if err := t.SetLink(a, b, link(a, b)); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// Nodes returns the node ids, ascending. The slice is the topology's own.
func (t *Topology) Nodes() []NodeID { return t.ids }

// Has reports whether the topology names id.
func (t *Topology) Has(id NodeID) bool { return t.idx[id] >= 0 }

func (t *Topology) pos(from, to NodeID) int {
	return int(t.idx[from])*len(t.ids) + int(t.idx[to])
}

// SetLink sets the link from one node to another. Both must be in the
// topology and differ, and l must be valid.
func (t *Topology) SetLink(from, to NodeID, l Link) error {
	switch {
	case !t.Has(from):
		return fmt.Errorf("sim: node %d not in the topology", from)
	case !t.Has(to):
		return fmt.Errorf("sim: node %d not in the topology", to)
	case from == to:
		return fmt.Errorf("sim: link from node %d to itself", from)
	}
	if err := l.Validate(); err != nil {
		return err
	}
	t.links[t.pos(from, to)] = l
	return nil
}

// Link returns the link from one node to another; the zero Link (out of
// reach) for a node the topology does not name.
func (t *Topology) Link(from, to NodeID) Link {
	if t.idx[from] < 0 || t.idx[to] < 0 || from == to {
		return Link{}
	}
	return t.links[t.pos(from, to)]
}

// Position is a node's place, in metres.
type Position struct{ X, Y, Z float64 }

// Distance returns the straight-line distance between p and q in metres.
func (p Position) Distance(q Position) float64 {
	return math.Sqrt((p.X-q.X)*(p.X-q.X) + (p.Y-q.Y)*(p.Y-q.Y) + (p.Z-q.Z)*(p.Z-q.Z))
}

// Propagation turns distances into links.
type Propagation struct {
	// Speed of the signal in m/s (SpeedOfSound, SpeedOfLight); > 0.
	Speed float64
	// Range in metres beyond which nothing arrives; 0 means no limit.
	Range float64
	// LossRate and BitErrorRate apply to every link in reach. With an
	// acoustic budget, the bit errors the budget predicts are added.
	LossRate, BitErrorRate float64
	// Acoustic, when set, decides reach and bit errors from a link budget
	// (after Range, if both are set).
	Acoustic *AcousticBudget
}

// Validate reports the first impossible value in p, or nil.
func (p Propagation) Validate() error {
	switch {
	case !(p.Speed > 0) || math.IsInf(p.Speed, 0):
		return fmt.Errorf("sim: propagation speed %v m/s: must be positive", p.Speed)
	case !(p.Range >= 0) || math.IsInf(p.Range, 0):
		return fmt.Errorf("sim: range %v m: must not be negative", p.Range)
	case !(p.LossRate >= 0 && p.LossRate <= 1):
		return fmt.Errorf("sim: loss rate %v: not in [0, 1]", p.LossRate)
	case !(p.BitErrorRate >= 0 && p.BitErrorRate <= 1):
		return fmt.Errorf("sim: bit error rate %v: not in [0, 1]", p.BitErrorRate)
	}
	if p.Acoustic != nil {
		return p.Acoustic.Validate()
	}
	return nil
}

// Link returns the link over a distance of d metres.
func (p Propagation) Link(d float64) Link {
	if p.Range > 0 && d > p.Range {
		return Link{}
	}
	l := Link{
		Reach:        true,
		Delay:        time.Duration(d / p.Speed * float64(time.Second)),
		LossRate:     p.LossRate,
		BitErrorRate: p.BitErrorRate,
	}
	if p.Acoustic != nil {
		snr := p.Acoustic.SNR(d)
		if snr < p.Acoustic.Threshold {
			return Link{}
		}
		// Independent errors: the link's rate and the budget's combine.
		l.BitErrorRate = 1 - (1-l.BitErrorRate)*(1-BitErrorBPSK(snr))
	}
	return l
}

// AcousticBudget is the passive sonar equation for an underwater acoustic
// link: SNR = SL − TL(d) − NL, with transmission loss
// TL(d) = k·10·log10(d/1 m) + α(f)·d/1 km, where α is Thorp's absorption.
// A link exists when SNR reaches Threshold; its bit errors are those of BPSK
// at Eb/N0 = SNR (a coarse stand-in for a real modem's curve).
type AcousticBudget struct {
	// FrequencyKHz is the carrier frequency in kHz; > 0.
	FrequencyKHz float64
	// SourceLevel is SL in dB re 1 µPa at 1 m.
	SourceLevel float64
	// Spreading is k: 1 cylindrical, 1.5 practical, 2 spherical; in [1, 2].
	Spreading float64
	// NoiseLevel is NL in the modem's band, dB re 1 µPa.
	NoiseLevel float64
	// Threshold is the SNR in dB a frame needs to be received at all.
	Threshold float64
}

// Validate reports the first impossible value in b, or nil.
func (b AcousticBudget) Validate() error {
	switch {
	case !(b.FrequencyKHz > 0 && b.FrequencyKHz <= 1000):
		return fmt.Errorf("sim: acoustic frequency %v kHz: not in (0, 1000]", b.FrequencyKHz)
	case !(b.Spreading >= 1 && b.Spreading <= 2):
		return fmt.Errorf("sim: spreading factor %v: not in [1, 2]", b.Spreading)
	case math.IsNaN(b.SourceLevel) || math.IsInf(b.SourceLevel, 0):
		return fmt.Errorf("sim: source level %v dB: not a number", b.SourceLevel)
	case math.IsNaN(b.NoiseLevel) || math.IsInf(b.NoiseLevel, 0):
		return fmt.Errorf("sim: noise level %v dB: not a number", b.NoiseLevel)
	case math.IsNaN(b.Threshold) || math.IsInf(b.Threshold, 0):
		return fmt.Errorf("sim: threshold %v dB: not a number", b.Threshold)
	}
	return nil
}

// ThorpAbsorption returns Thorp's absorption coefficient in dB/km for a
// frequency of f kHz (valid from a few hundred Hz to about 50 kHz):
// 0.11 f²/(1+f²) + 44 f²/(4100+f²) + 2.75·10⁻⁴ f² + 0.003.
func ThorpAbsorption(f float64) float64 {
	f2 := f * f
	return 0.11*f2/(1+f2) + 44*f2/(4100+f2) + 2.75e-4*f2 + 0.003
}

// TransmissionLoss returns TL in dB over d metres (d below 1 m counts as 1 m).
func (b AcousticBudget) TransmissionLoss(d float64) float64 {
	d = math.Max(d, 1)
	return b.Spreading*10*math.Log10(d) + ThorpAbsorption(b.FrequencyKHz)*d/1000
}

// SNR returns the signal-to-noise ratio in dB at d metres.
func (b AcousticBudget) SNR(d float64) float64 {
	return b.SourceLevel - b.TransmissionLoss(d) - b.NoiseLevel
}

// BitErrorBPSK returns the bit-error rate of coherent BPSK at an Eb/N0 of
// snr dB: ½·erfc(√(Eb/N0)).
func BitErrorBPSK(snr float64) float64 {
	return 0.5 * math.Erfc(math.Sqrt(math.Pow(10, snr/10)))
}

// PlaceNodes returns the topology of nodes at the given positions, every pair
// linked as p says for its distance.
func PlaceNodes(pos map[NodeID]Position, p Propagation) (*Topology, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	ids := make([]NodeID, 0, len(pos))
	for id := range pos {
		ids = append(ids, id)
	}
	return linkAll(ids, func(a, b NodeID) Link { return p.Link(pos[a].Distance(pos[b])) })
}
