package selfstall

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestWatch(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	tests := []struct {
		desc string
		due  time.Time
		now  time.Time
		want time.Duration
	}{
		{"nothing expected", time.Time{}, t0.Add(time.Hour), 0},
		{"woken early (a message)", t0.Add(time.Second), t0.Add(time.Millisecond), 0},
		{"on time", t0, t0, 0},
		{"late within the slack", t0, t0.Add(Slack), 0},
		{"late past the slack", t0, t0.Add(Slack + time.Millisecond), Slack + time.Millisecond},
		{"stopped 50 s", t0, t0.Add(50 * time.Second), 50 * time.Second},
		{"due long passed: at once", t0.Add(-time.Hour), t0.Add(Slack), 0},
		{"due long passed, then stopped", t0.Add(-time.Hour), t0.Add(time.Minute), time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var w Watch
			w.Expect(t0, tc.due)
			if got := w.Stalled(tc.now); got != tc.want {
				t.Errorf("Stalled = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLog(t *testing.T) {
	var buf bytes.Buffer
	Log(zerolog.New(&buf), 50*time.Second+123*time.Millisecond, "the medium")
	got := buf.String()
	for _, want := range []string{`"level":"info"`, "process was not running for at least 50.1s; giving the medium a grace period", `"late":"50.123s"`} {
		if !strings.Contains(got, want) {
			t.Errorf("log line %s lacks %q", got, want)
		}
	}
}
