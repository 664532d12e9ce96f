package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// TestRetryOpenBacksOff: a modem that cannot be opened is tried again after
// waits that grow within the shared policy's bounds (each between its step
// and twice that, so daemons started together spread out), with one log
// line per new error or longer wait, and a cancelled context ends a wait
// at once.
func TestRetryOpenBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		log := zerolog.New(&logs)
		var at []time.Time
		v, err := retryOpen(context.Background(), log, func() (int, error) {
			at = append(at, time.Now())
			if len(at) < 5 {
				return 0, errors.New("no such device")
			}
			return 7, nil
		})
		if err != nil || v != 7 {
			t.Fatalf("retryOpen = %d, %v; want 7, nil", v, err)
		}
		for i := 1; i < len(at); i++ {
			gap, step := at[i].Sub(at[i-1]), openPolicy.Step(i-1)
			if gap < step || gap > 2*step {
				t.Errorf("wait before attempt %d: %v, want within [%v, %v]", i+1, gap, step, 2*step)
			}
		}
		if n := strings.Count(logs.String(), "modem cannot connect, retrying"); n != 4 {
			t.Errorf("%d retry lines, want 4 (the wait grew each time):\n%s", n, logs.String())
		}

		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(time.Second)
			cancel()
		}()
		start := time.Now()
		_, err = retryOpen(ctx, log, func() (int, error) { return 0, errors.New("no such device") })
		if !errors.Is(err, context.Canceled) || time.Since(start) != time.Second {
			t.Errorf("after cancel at 1s: %v after %v; want context.Canceled at once", err, time.Since(start))
		}
	})
}
