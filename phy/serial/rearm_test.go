package serial

import (
	"testing"
	"time"

	"github.com/slided/slided/phy"
)

// rearms is the number of times the port set its timer so far.
func (c *fakeClock) rearms() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resets
}

// TestBusyLineRearmsRarely: on a busy line (carrier from received bytes,
// a chunk every 10 ms, each moving the hang-over's end later) the port sets
// its timer again only when its deadline moves earlier or after it fired,
// not once per read: a timer moved later keeps its old time in the
// runtime's heap, which wakes the process for nothing, and each Reset
// costs the timer's lock. The carrier still goes off exactly a hang-over
// after the last chunk.
func TestBusyLineRearmsRarely(t *testing.T) {
	const (
		hang   = 200 * time.Millisecond
		chunks = 100 // 1 s: five hang-overs, one path check
		every  = 10 * time.Millisecond
	)
	h := newHarness(t, Config{AirRate: 1200, Hangover: hang}, options{})
	before := h.clk.rearms()
	for i := range chunks {
		if _, err := h.master.Write([]byte("abc")); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			h.expect(phy.CarrierOn)
		}
		h.received(3)
		h.advance(every)
	}
	if n := h.clk.rearms() - before; n > 15 {
		t.Errorf("timer set %d times for %d chunks received, want at most 15", n, chunks)
	}
	h.advance(hang - every - time.Nanosecond)
	h.none()
	h.advance(time.Nanosecond)
	h.expect(phy.CarrierOff)
	h.advance(time.Hour)
	h.none()
}
