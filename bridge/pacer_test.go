package bridge

import (
	"fmt"
	"testing"
	"time"
)

// TestPacer drives the pacer with synthetic ticks: a 9600 bit/s channel
// (1200 B/s raw), MAC queue 4, ring 16, so the backlog target is 4 + 2.
func TestPacer(t *testing.T) {
	const tick = 250 * time.Millisecond
	for _, tc := range []struct {
		desc      string
		ticks     int
		delivered uint64 // Ethernet bytes per tick
		saturated bool
		backlog   int
		check     func(t *testing.T, rate float64)
	}{
		{
			desc: "saturated at target converges to the delivered rate", ticks: 200,
			delivered: 250, saturated: true, backlog: 6, // 1000 B/s delivered
			check: func(t *testing.T, r float64) {
				if r < 950 || r > 1050 {
					t.Errorf("rate %.0f B/s, want about the 1000 B/s delivered", r)
				}
			},
		},
		{
			desc: "a growing backlog pulls the rate below the capacity", ticks: 200,
			delivered: 250, saturated: true, backlog: 20,
			check: func(t *testing.T, r float64) {
				if r > 600 {
					t.Errorf("rate %.0f B/s with a full ring, want at most half the 1000 B/s capacity plus margin", r)
				}
			},
		},
		{
			desc: "an empty backlog lets the rate rise a little above capacity", ticks: 200,
			delivered: 250, saturated: true, backlog: 0,
			check: func(t *testing.T, r float64) {
				if r <= 1000 || r > 1101 {
					t.Errorf("rate %.0f B/s, want in (1000, 1101]", r)
				}
			},
		},
		{
			desc: "an idle link opens up to the raw rate", ticks: 40,
			delivered: 0, saturated: false, backlog: 0,
			check: func(t *testing.T, r float64) {
				if r != 1200 {
					t.Errorf("rate %.0f B/s, want the raw 1200", r)
				}
			},
		},
		{
			desc: "a stalled reader never drives the rate below raw/64", ticks: 400,
			delivered: 0, saturated: false, backlog: 30,
			check: func(t *testing.T, r float64) {
				if r != 1200.0/64 {
					t.Errorf("rate %.2f B/s, want the floor %.2f", r, 1200.0/64)
				}
			},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			p := newPacer(9600, 4, 16, time.Second)
			var r float64
			for range tc.ticks {
				r = p.update(tick, tc.delivered, tc.saturated, tc.backlog, tc.backlog-4)
				if r < p.min || r > p.max {
					t.Fatalf("rate %.1f outside [%.1f, %.1f]", r, p.min, p.max)
				}
			}
			tc.check(t, r)
		})
	}
}

// TestPacerIgnoresEmptyTick: at 9600 bit/s a 1000-byte frame takes longer
// than a tick, so ticks in which no frame finished alternate with ticks in
// which one did; the smoothed capacity must not collapse on the empty ones.
func TestPacerIgnoresEmptyTick(t *testing.T) {
	p := newPacer(9600, 4, 16, phyAirtime9600)
	var r float64
	for i := range 200 {
		d := uint64(0)
		if i%2 == 1 {
			d = 1042
		}
		r = p.update(250*time.Millisecond, d, true, 6, 2)
	}
	// 1042 bytes every 0.5 s is 2084 B/s, clamped to the raw 1200.
	if r < 1100 {
		t.Errorf("rate %.0f B/s after alternating empty and full ticks, want near the raw 1200", r)
	}
}

const phyAirtime9600 = 870 * time.Millisecond

// TestPacerFollowsASuddenHalving: the link has carried 1000 B/s for a
// minute; then another node starts sending and our share halves. The ring
// (16 packets) fills in seconds, so the rate must fall below the new share
// within two ticks of the ring passing half full, not after the smoothed
// capacity has caught up.
func TestPacerFollowsASuddenHalving(t *testing.T) {
	const tick = 250 * time.Millisecond
	p := newPacer(9600, 4, 16, phy1000(9600))
	for range 240 {
		p.update(tick, 250, true, 6, 2)
	}
	p.update(tick, 125, true, 13, 9) // 500 B/s now, the ring past half
	if r := p.update(tick, 125, true, 14, 10); r > 500 {
		t.Fatalf("rate %.0f B/s two ticks after the share halved to 500 B/s; want at most that", r)
	}
}

// TestPacerSmallFrames: with -frame-max a packet takes many ticks to
// deliver (21 fragments of 64 bytes at 9600 bit/s: 1.5 s), so most ticks
// deliver nothing while the MAC queue is full of fragments. The rate must
// stay near the packet rate, not collapse towards its floor.
func TestPacerSmallFrames(t *testing.T) {
	const tick = 250 * time.Millisecond
	p := newPacer(9600, 4, 16, phy1000(9600))
	var r float64
	for i := range 240 {
		var d uint64
		if i%6 == 5 {
			d = 1042 // one packet every 1.5 s: 695 B/s
		}
		r = p.update(tick, d, true, 8, 2) // MAC: 4 fragments and 2 Acks; ring 2
	}
	if r < 350 || r > 1000 {
		t.Fatalf("rate %.0f B/s with one 1042-byte packet every 1.5 s (695 B/s); want about that", r)
	}
}

// phy1000 is the airtime of a 1000-byte frame at bitRate.
func phy1000(bitRate int) time.Duration {
	return time.Duration(1000*8) * time.Second / time.Duration(bitRate)
}

// TestPacerIdleReplaysTicks: idle(n) leaves the pacer as n idle ticks
// would (what the bridge's loop skips while the link is idle), from states
// left by a saturated link, a backed-up ring and a low rate.
func TestPacerIdleReplaysTicks(t *testing.T) {
	const tick = 250 * time.Millisecond
	for _, tc := range []struct {
		desc string
		prep func(p *pacer)
	}{
		{"fresh", func(*pacer) {}},
		{"after saturation", func(p *pacer) {
			for range 40 {
				p.update(tick, 250, true, 6, 2)
			}
		}},
		{"at the floor", func(p *pacer) {
			for range 60 {
				p.update(tick, 0, false, 30, 12)
			}
		}},
	} {
		for _, n := range []int{0, 1, 3, 4, 5, 19, 31, 32, 33, 34, 35, 36, 100, 1001} {
			t.Run(fmt.Sprintf("%s/%d", tc.desc, n), func(t *testing.T) {
				want := newPacer(9600, 4, 16, phy1000(9600))
				tc.prep(want)
				got := *want
				for range n {
					want.update(tick, 0, false, 0, 0)
				}
				if r := got.idle(n, tick); r != want.rate || got != *want {
					t.Fatalf("idle(%d): rate %.1f, pacer %+v; want %.1f, %+v", n, r, got, want.rate, *want)
				}
			})
		}
	}
}
