package csma

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// Two nodes that hear the same transmissions see the same idle gaps, but
// they need not start counting them together: one joins a couple of
// transmissions later (its frame came later, or Contenders restarted its
// count). Their windows must still agree. With a window moved once per
// batch of five gaps the two batches held different gaps; near the target
// one batch's mean fell under it and the other's did not, so one window
// took the additive step and the other did not, and the 6-slot difference
// took some 16 batches to halve (docs/mac.md, "Why two windows drifted
// apart"). Here the gaps hover around the target, as two saturated
// senders' do.
func TestWindowsAgreeOutOfPhase(t *testing.T) {
	cfg := adaptiveConfig()
	cfg.PropDelay = 0
	a, _ := newPair(t, cfg, 1)
	b, _ := newPair(t, cfg, 2)
	rng := rand.New(rand.NewPCG(3, 4))
	busy := 20 * cfg.SlotTime
	now := t0
	var worst float64
	for i := range 3000 {
		if i == 0 {
			mustEnqueue(t, a, now, []byte("a"))
		}
		if i == 2 {
			mustEnqueue(t, b, now, []byte("b")) // b counts from the third gap on
		}
		gap := time.Duration(rng.IntN(int(2*cfg.IdleTarget)+1)) * cfg.SlotTime
		now = now.Add(cfg.IFS + gap)
		a.Carrier(now, true)
		b.Carrier(now, true)
		now = now.Add(busy)
		a.Carrier(now, false)
		b.Carrier(now, false)
		if i >= 1000 {
			worst = max(worst, math.Abs(a.cwf-b.cwf))
		}
	}
	if worst > 1 {
		t.Errorf("windows apart by up to %.1f slots after the first 1000 gaps; want at most 1", worst)
	}
}
