package link

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestAckTimeoutLongDelay: a long propagation delay lengthens the MAC's
// slot (MACFor), but the ack timeout's margin does not count 128 of those
// slots: at 1 s of water and 2400 bit/s the first timeout was 133 s and a
// packet lived 80 minutes before it was given up. It must stay within a few
// round trips: twice the delay, the frame and the Ack, and a radio margin.
func TestAckTimeoutLongDelay(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		delay time.Duration
		max   time.Duration
	}{
		{"radio", 0, 2 * time.Second},
		{"1 s of water", time.Second, 8 * time.Second},
		{"5 s of water", 5 * time.Second, 20 * time.Second},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			m := newMedium(t, 2400)
			n := m.add(Config{Node: 1, FrameMax: 256, PropDelay: tc.delay})
			var got time.Duration
			for _, line := range strings.Split(n.log.String(), "\n") {
				var rec struct {
					Msg        string  `json:"message"`
					AckTimeout float64 `json:"ack_timeout"` // zerolog writes durations in ms
				}
				if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "link layer" {
					got = time.Duration(rec.AckTimeout * float64(time.Millisecond))
				}
			}
			if got <= 2*tc.delay || got > tc.max {
				t.Fatalf("ack timeout %v with a delay of %v; want above %v and at most %v", got, tc.delay, 2*tc.delay, tc.max)
			}
		})
	}
}
