package main

import (
	"testing"
	"time"
)

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
