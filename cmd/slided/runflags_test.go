package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/link"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/tap"
)

// TestRunFlagsReachTheEngine: -adaptive-mac (on by default) and the config
// file's adaptive_mac reach the link engine the daemon builds (its MAC runs the
// adaptive window, and the "link up" log line shows its idle target);
// -stall-limit and stall_limit reach the daemon's settings. The command
// line wins over the file.
func TestRunFlagsReachTheEngine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "slided.toml")
	if err := os.WriteFile(file, []byte("adaptive_mac = true\nstall_limit = \"90s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc     string
		args     []string
		adaptive bool
		stall    time.Duration
	}{
		{"defaults", nil, true, tap.DefaultStallLimit},
		{"flags", []string{"-adaptive-mac=false", "-stall-limit", "2m"}, false, 2 * time.Minute},
		{"config file", []string{"-config", file}, true, 90 * time.Second},
		{"command line wins", []string{"-config", file, "-adaptive-mac=false", "-stall-limit", "30s"}, false, 30 * time.Second},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f, err := parseRun(append(tc.args, "-tap", "t0", "-node", "1", "-phy", "sim:/run/medium.sock"))
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.validate()
			if err != nil {
				t.Fatal(err)
			}
			if f.stallLimit != tc.stall {
				t.Errorf("stall limit %v, want %v", f.stallLimit, tc.stall)
			}
			var log bytes.Buffer
			cfg := f.engineConfig(c)
			cfg.Log, cfg.Seed = zerolog.New(&log), 1
			e, err := link.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Modem(time.Unix(1, 0), phy.Event{Kind: phy.Up}, phy.Info{BitRate: 9600, CarrierAtArrival: true}); err != nil {
				t.Fatal(err)
			}
			if got := e.MACConfig().IdleTarget > 0; got != tc.adaptive {
				t.Errorf("the engine's MAC has idle target %v; want the adaptive window %v", e.MACConfig().IdleTarget, tc.adaptive)
			}
			if got := !strings.Contains(log.String(), `"idle_target":0,`); got != tc.adaptive || !strings.Contains(log.String(), "link up") {
				t.Errorf("log %q: want a link up line with the adaptive window's idle target %v", log.String(), tc.adaptive)
			}
		})
	}
}
