package link

import (
	"testing"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
)

// captureRec counts the frames a Capture is given, by direction. The
// engine calls it from its own goroutine only.
type captureRec struct{ rx, tx int }

func (c *captureRec) WriteLink(_ time.Time, tx bool, _ framing.Header, _ []byte) {
	if tx {
		c.tx++
	} else {
		c.rx++
	}
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
			m, n1, n2 := pair(t, 115200, Config{Key: tc.sender, NoARQ: true}, Config{Key: &k1, NoARQ: true, Capture: rec})
			var air [][]byte
			m.lose = func(from, _ *node, b []byte) bool {
				if from == n1 {
					air = append(air, append([]byte(nil), b...))
				}
				return false
			}
			var frames [][]byte
			for id := range uint32(5) {
				frames = append(frames, numbered(2, 1, id, 100))
			}
			sendAll(m, n1, frames)
			m.run(time.Second)
			if rec.rx != tc.want {
				t.Fatalf("%d received frames captured, want %d", rec.rx, tc.want)
			}
			// Replayed frames are authentic but not new: not captured.
			for _, b := range air {
				m.inject(n2, b)
			}
			if rec.rx != tc.want {
				t.Fatalf("after replaying %d frames: %d captured, want %d", len(air), rec.rx, tc.want)
			}
		})
	}
}
