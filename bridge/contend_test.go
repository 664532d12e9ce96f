package bridge

import (
	"testing"
	"time"

	"github.com/slided/slided/framing"
)

func TestSenders(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	s := senders{window: 5 * time.Second}
	for i, step := range []struct {
		at   time.Duration // since t0
		src  framing.NodeID
		kind framing.Kind
		want int // count right after
	}{
		{0, 2, framing.KindFragment, 1},
		{time.Second, 3, framing.KindAck, 1},          // Acks answer us: not counted
		{2 * time.Second, 3, framing.KindEthernet, 2}, // now it sends data
		{3 * time.Second, 2, framing.KindSealed, 2},   // heard again: still one node
		{6 * time.Second, 4, framing.KindFragment, 3},
		{7*time.Second + time.Millisecond, 9, framing.KindFragment, 3}, // 3 fell out (last heard at 2 s)
		{9 * time.Second, 9, framing.KindFragment, 2},                  // and so did 2 (3 s)
		{20 * time.Second, 9, framing.KindAck, 0},                      // everyone silent for longer than the window
	} {
		now := t0.Add(step.at)
		s.heard(now, step.src, step.kind)
		if got := s.count(now); got != step.want {
			t.Errorf("step %d (%v from node %d at %v): %d senders, want %d", i, step.kind, step.src, step.at, got, step.want)
		}
	}
}
