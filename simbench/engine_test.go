package simbench

import (
	"errors"
	"testing"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/link"
)

// TestRunEngine: one bulk flow over two engines with the daemon's defaults
// keeps the channel busy with few collisions, and is deterministic for its
// seed; two flows from one node share it evenly.
func TestRunEngine(t *testing.T) {
	cfg := EngineConfig{Duration: 20 * time.Second, Seed: 1}
	a, err := RunEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.GoodputPerChannel < 0.6 || a.GoodputPerChannel > 1 || a.GiveUps != 0 {
		t.Errorf("one flow: %+v", a)
	}
	b, _ := RunEngine(cfg)
	if a.Flows[0] != b.Flows[0] || a.Transmissions != b.Transmissions {
		t.Errorf("two runs of one seed differ: %+v, %+v", a.Flows, b.Flows)
	}
	two, err := RunEngine(EngineConfig{Duration: 20 * time.Second, Seed: 1, Flows: []Flow{{1, 2}, {1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if two.Jain < 0.95 || two.GoodputPerChannel < 0.6 {
		t.Errorf("two flows: %+v", two)
	}
	noARQ, err := RunEngine(EngineConfig{Duration: 20 * time.Second, Seed: 1,
		Engine: func(id framing.NodeID) link.Config { return link.Config{Node: id, NoARQ: true} }})
	if err != nil {
		t.Fatal(err)
	}
	if noARQ.Retransmissions != 0 || noARQ.GoodputPerChannel <= a.GoodputPerChannel {
		t.Errorf("without ARQ %+v; with %+v: want no retransmissions and no Acks' airtime", noARQ, a)
	}
	t.Logf("one flow %.3f, two flows %.3f (Jain %.3f), no ARQ %.3f", a.GoodputPerChannel, two.GoodputPerChannel, two.Jain, noARQ.GoodputPerChannel)
}

func TestEngineConfigValidate(t *testing.T) {
	for _, c := range []EngineConfig{
		{Flows: []Flow{{1, 1}}},
		{Flows: []Flow{{0, 2}}},
		{Payload: 5000},
		{LossRate: 1},
		{Nodes: 300},
	} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", c, err)
		}
	}
}
