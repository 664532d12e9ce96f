package bridge

import (
	"sync"
	"testing"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// captureRec counts the frames a Capture is given, by direction.
type captureRec struct {
	mu     sync.Mutex
	rx, tx int
}

func (c *captureRec) WriteLink(_ time.Time, tx bool, _ framing.Header, _ []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tx {
		c.tx++
	} else {
		c.rx++
	}
}

func (c *captureRec) counts() (rx, tx int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rx, c.tx
}

// TestCaptureOnlyAuthenticated: with a key, a received frame is captured
// only once it has passed authentication: forged, unsealed and replayed
// frames are not, so a keyless neighbour cannot fill the capture.
func TestCaptureOnlyAuthenticated(t *testing.T) {
	k1, k2 := auth.Key{1, 2, 3}, auth.Key{9, 9, 9}
	for _, tc := range []struct {
		name   string
		sender *auth.Key
		want   int
	}{{"same key", &k1, 5}, {"wrong key", &k2, 0}, {"unsealed", nil, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &captureRec{}
			w, bs := startWire(t, 0, 115200, [2]Config{{Key: tc.sender, NoARQ: true}, {Key: &k1, NoARQ: true, Capture: rec}})
			var air [][]byte
			w.mu.Lock()
			w.hooks = func(from int, b []byte) {
				if from == 0 {
					air = append(air, append([]byte(nil), b...))
				}
			}
			w.mu.Unlock()
			tap1, tap2 := bs[0].tap.(*recTAP), bs[1].tap.(*recTAP)
			for id := range uint32(5) {
				tap1.frames <- numbered(2, 1, id, 100)
			}
			deadline := time.Now().Add(5 * time.Second)
			for bs[1].Stats().Drops.Total()+uint64(len(tap2.got())) < 5 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if rx, _ := rec.counts(); rx != tc.want {
				t.Fatalf("%d received frames captured, want %d", rx, tc.want)
			}
			// Replayed frames are authentic but not new: not captured.
			w.mu.Lock()
			for _, b := range air {
				w.ends[1].ev <- phy.Event{Kind: phy.Received, Data: b}
			}
			w.mu.Unlock()
			before := bs[1].Stats().Drops.Total()
			deadline = time.Now().Add(5 * time.Second)
			for bs[1].Stats().Drops.Total() < before+uint64(len(air)) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if rx, _ := rec.counts(); rx != tc.want {
				t.Fatalf("after replaying %d frames: %d captured, want %d", len(air), rx, tc.want)
			}
		})
	}
}
