package medium

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/slided/slided/phy"
)

// advanceAll fires every pending event up to until, event by event.
func advanceAll(m *Medium, until time.Time, deliver func(NodeID, phy.Event)) {
	for {
		next, ok := m.Next()
		if !ok || next.After(until) {
			break
		}
		m.Advance(next, deliver)
	}
	m.Advance(until, deliver)
}

// BenchmarkMediumCycle is one Transmit and the Advance calls that carry it
// to every receiver.
func BenchmarkMediumCycle(b *testing.B) {
	for _, nodes := range []int{2, 10, 100} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			m, err := New(Config{BitRate: 9600, PropDelay: ms(10), BitErrorRate: 1e-4, Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			for id := 1; id <= nodes; id++ {
				m.Attach(NodeID(id))
			}
			frame := make([]byte, 100)
			received := 0
			deliver := func(_ NodeID, ev phy.Event) {
				if ev.Kind == phy.Received {
					received++
				}
			}
			now := t0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				end, err := m.Transmit(now, NodeID(1+i%nodes), frame)
				if err != nil {
					b.Fatal(err)
				}
				now = end.Add(ms(10))
				advanceAll(m, now, deliver)
			}
			if received == 0 {
				b.Fatal("nothing received")
			}
		})
	}
}

// BenchmarkVirtualTime runs pure ALOHA in virtual time (offered load G = 1:
// on average one new burst per frame time, from a random node) and reports
// how many simulated frame times pass per wall-clock second.
func BenchmarkVirtualTime(b *testing.B) {
	for _, nodes := range []int{10, 100} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			cfg := Config{BitRate: 9600, PropDelay: ms(20), LossRate: 0.01, BitErrorRate: 1e-5, Seed: 1}
			m, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			for id := 1; id <= nodes; id++ {
				m.Attach(NodeID(id))
			}
			frame := make([]byte, 100)
			frameTime := phy.Airtime(len(frame), cfg.BitRate)
			rng := rand.New(rand.NewPCG(1, 2))
			deliver := func(NodeID, phy.Event) {}
			now := t0
			frames := 0
			b.ReportAllocs()
			for b.Loop() {
				// Exponential gaps with mean one frame time.
				now = now.Add(time.Duration(rng.ExpFloat64() * float64(frameTime)))
				advanceAll(m, now, deliver)
				m.Transmit(now, NodeID(1+rng.IntN(nodes)), frame) // a busy node skips its turn
				frames++
			}
			advanceAll(m, now.Add(time.Second), deliver)
			simulated := float64(now.Sub(t0)) / float64(frameTime)
			b.ReportMetric(simulated/b.Elapsed().Seconds(), "frametimes/s")
			st := m.Stats()
			// Per receiver, success needs no overlap within ±T: e^{-2G}.
			b.ReportMetric(float64(st.Deliveries)/float64(st.Deliveries+st.Collisions+st.Losses), "rx-success")
		})
	}
}
