package main

import (
	"testing"
	"time"

	"github.com/slided/slided/tap"
)

// TestAutoStallLimit: the default stall limit keeps the leak at most an
// eighth of what the link carries in full-size frames, and is never below
// tap.DefaultStallLimit.
func TestAutoStallLimit(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		ring, mtu int
		bitRate   int
		want      time.Duration // 0: only check the rule
	}{
		{desc: "115200 bit/s", ring: 16, mtu: 1500, bitRate: 115200, want: tap.DefaultStallLimit},
		{desc: "9600 bit/s", ring: 16, mtu: 1500, bitRate: 9600},
		{desc: "acoustic 2400 bit/s, MTU 1500", ring: 16, mtu: 1500, bitRate: 2400},
		{desc: "acoustic 300 bit/s, MTU 576", ring: 16, mtu: 576, bitRate: 300},
		{desc: "rate unknown", ring: 16, mtu: 1500, bitRate: 0, want: tap.DefaultStallLimit},
		{desc: "ring too short for room", ring: 4, mtu: 1500, bitRate: 2400, want: tap.DefaultStallLimit},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			rate := uint64(tc.bitRate) * 9 / 80 // the pacer's start: 90% of the raw rate, bytes/s
			got := autoStallLimit(uint32(tc.ring), tc.mtu, rate)
			if got < tap.DefaultStallLimit {
				t.Fatalf("stall limit %v below the default %v", got, tap.DefaultStallLimit)
			}
			if tc.want != 0 && got != tc.want {
				t.Fatalf("stall limit %v, want %v", got, tc.want)
			}
			room := tap.LeakRoom(uint32(tc.ring), tap.DefaultGrant)
			if rate == 0 || room <= 1 {
				return
			}
			leak := room / got.Seconds()
			frames := float64(rate) / float64(tc.mtu+14)
			if leak > frames/8*1.001 {
				t.Errorf("leak %.3f packets/s against %.3f full frames/s: more than an eighth", leak, frames)
			}
			t.Logf("stall limit %v, leak %.3f packets/s, link %.3f frames/s", got, leak, frames)
		})
	}
}

// TestStallLimitAutoOnlyByDefault: -stall-limit given on the command line
// (or in the config file) is used as given; without it the daemon scales it.
func TestStallLimitAutoOnlyByDefault(t *testing.T) {
	f, err := parseRun([]string{"-tap", "s0", "-node", "1", "-phy", "sim:/x"})
	if err != nil {
		t.Fatal(err)
	}
	if !f.stallAuto {
		t.Error("no -stall-limit: not scaled to the link")
	}
	f, err = parseRun([]string{"-tap", "s0", "-node", "1", "-phy", "sim:/x", "-stall-limit", "60s"})
	if err != nil {
		t.Fatal(err)
	}
	if f.stallAuto || f.stallLimit != time.Minute {
		t.Errorf("-stall-limit 60s: auto %v, limit %v; want the limit as given", f.stallAuto, f.stallLimit)
	}
}
