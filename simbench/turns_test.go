package simbench

import (
	"fmt"
	"testing"
	"time"
)

// ring is n saturated flows, node i to node i+1 and the last to node 1.
func ring(n int) []Flow {
	f := make([]Flow, n)
	for i := range f {
		f[i] = Flow{i + 1, (i+1)%n + 1}
	}
	return f
}

// TestEngineRingTenShortSpan: ten saturated nodes in a ring at 9600 bit/s,
// 100-byte frames (71-byte datagrams with the headers compressed) and a =
// 0.01, with the daemon's defaults, over 20,000 frame times, share the
// channel at Jain ≥ 0.99 and keep ≥ 0.85 of it. On the old code a turn
// was the frame that won the contention and a whole modem burst of 16, so
// each node got about 117 turns in the span, and which node wins is close
// to a draw: Jain 0.9762, 0.9685, 0.9969 for seeds 1-3 (S 0.943-0.945).
// With turns that shrink with the senders heard (link's turnFrames, 7
// frames here): 0.9958-0.9988, S 0.916-0.923 (docs/mac.md, "A turn for
// each sender").
func TestEngineRingTenShortSpan(t *testing.T) {
	frame := 100 * 8 * time.Second / 9600 // 83.3 ms
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r, err := RunEngine(EngineConfig{BitRate: 9600, Payload: 71, PropDelay: frame / 100,
				Duration: 20000 * frame, Seed: seed, Flows: ring(10), Engine: daemonDefaults})
			if err != nil {
				t.Fatal(err)
			}
			var got uint64
			for _, f := range r.Flows {
				got += f.Datagrams
			}
			s := float64(got) / 20000
			t.Logf("S %.3f, Jain %.4f, %d retransmissions, %d give-ups", s, r.Jain, r.Retransmissions, r.GiveUps)
			if r.Jain < 0.99 || s < 0.85 {
				t.Errorf("Jain %.4f, S %.3f; want Jain >= 0.99, S >= 0.85", r.Jain, s)
			}
		})
	}
}
