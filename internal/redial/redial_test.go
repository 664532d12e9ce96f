package redial

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

var testPolicy = Policy{Min: 100 * time.Millisecond, Max: 2 * time.Second, Stable: 5 * time.Second}

func TestStep(t *testing.T) {
	for _, tc := range []struct {
		desc string
		n    int
		want time.Duration
	}{
		{"first", 0, 100 * time.Millisecond},
		{"second", 1, 200 * time.Millisecond},
		{"fifth", 4, 1600 * time.Millisecond},
		{"capped", 5, 2 * time.Second},
		{"far", 1000, 2 * time.Second},
	} {
		if got := testPolicy.Step(tc.n); got != tc.want {
			t.Errorf("%s: Step(%d) = %v, want %v", tc.desc, tc.n, got, tc.want)
		}
	}
	if got := (Policy{Max: time.Second}).Step(10); got != 0 {
		t.Errorf("Step with Min 0 = %v, want 0 (and no endless loop)", got)
	}
}

// TestWaitJitter: every wait lies between its step and twice that (capped
// at Max), and the waits of one step are spread over that range, not equal.
func TestWaitJitter(t *testing.T) {
	for n := range 7 {
		lo, hi := testPolicy.Step(n), min(2*testPolicy.Step(n), testPolicy.Max)
		first, spread := testPolicy.Wait(n), false
		for range 1000 {
			w := testPolicy.Wait(n)
			if w < lo || w > hi {
				t.Fatalf("Wait(%d) = %v, want within [%v, %v]", n, w, lo, hi)
			}
			spread = spread || w != first
		}
		if !spread && lo != hi {
			t.Errorf("Wait(%d): 1000 waits all %v, want them spread over [%v, %v]", n, first, lo, hi)
		}
	}
	zero := testPolicy
	zero.Rand = func() float64 { return 0 }
	for n := range 7 {
		if got := zero.Wait(n); got != testPolicy.Step(n) {
			t.Errorf("Wait(%d) with Rand 0 = %v, want the plain step %v", n, got, testPolicy.Step(n))
		}
	}
}

// TestLoopGrows: the waits after a loss grow step by step and stay within
// [Min, Max].
func TestLoopGrows(t *testing.T) {
	l := New(testPolicy, "test", zerolog.Nop())
	now := time.Unix(1000, 0)
	l.Up(now)
	now = now.Add(time.Minute)
	waits := []time.Duration{l.Lost(now, errors.New("gone"))}
	for range 10 {
		waits = append(waits, l.Failed(now, errors.New("refused")))
	}
	for n, w := range waits {
		lo, hi := testPolicy.Step(n), min(2*testPolicy.Step(n), testPolicy.Max)
		if w < lo || w > hi {
			t.Errorf("wait %d = %v, want within [%v, %v] (all: %v)", n, w, lo, hi, waits)
		}
	}
	if last := waits[len(waits)-1]; last != testPolicy.Max {
		t.Errorf("wait after 10 failures = %v, want the cap %v", last, testPolicy.Max)
	}
}

// TestLoopReset: a connection that stayed up Stable starts the backoff
// again; one that dropped sooner carries on from where it was.
func TestLoopReset(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		upFor  time.Duration
		lo, hi time.Duration
	}{
		{"stable", testPolicy.Stable, testPolicy.Min, 2 * testPolicy.Min},
		{"long", time.Hour, testPolicy.Min, 2 * testPolicy.Min},
		{"flapping", testPolicy.Stable - time.Millisecond, 1600 * time.Millisecond, 2 * time.Second},
		{"at once", 0, 1600 * time.Millisecond, 2 * time.Second},
	} {
		l := New(testPolicy, "test", zerolog.Nop())
		now := time.Unix(1000, 0)
		l.Up(now)
		l.Lost(now, errors.New("gone"))
		for range 3 {
			l.Failed(now, errors.New("refused")) // steps 1, 2, 3: the next is 1.6 s
		}
		l.Up(now)
		now = now.Add(tc.upFor)
		if w := l.Lost(now, errors.New("gone again")); w < tc.lo || w > tc.hi {
			t.Errorf("%s: wait after a connection up for %v = %v, want within [%v, %v]", tc.desc, tc.upFor, w, tc.lo, tc.hi)
		}
	}
}

// TestLoopLogs: the loss, the failures while the wait grows or the error
// changes, and the new connection are logged; failures at the cap with the
// same error are not.
func TestLoopLogs(t *testing.T) {
	var buf bytes.Buffer
	p := Policy{Min: time.Second, Max: 4 * time.Second, Rand: func() float64 { return 0 }}
	l := New(p, "kiss: tnc", zerolog.New(&buf))
	now := time.Unix(1000, 0)
	l.Up(now)
	if buf.Len() != 0 {
		t.Errorf("first Up logged %q, want nothing (the modem logs its own start)", buf.String())
	}
	now = now.Add(90 * time.Second)
	l.Lost(now, errors.New("eof"))
	refused := errors.New("connection refused")
	for range 5 { // waits 2 s, 4 s (the cap), 4 s, 4 s, 4 s
		now = now.Add(time.Second)
		l.Failed(now, refused)
	}
	now = now.Add(time.Second)
	l.Failed(now, errors.New("no route to host"))
	now = now.Add(time.Second)
	l.Up(now)
	want := []string{
		`{"level":"warn","error":"eof","up_for":"1m30s","retry_in":"1s","message":"kiss: tnc connection lost, reconnecting"}`,
		`{"level":"warn","error":"connection refused","attempt":1,"retry_in":"2s","down_for":"1s","message":"kiss: tnc cannot connect, retrying"}`,
		`{"level":"warn","error":"connection refused","attempt":2,"retry_in":"4s","down_for":"2s","message":"kiss: tnc cannot connect, retrying"}`,
		`{"level":"warn","error":"no route to host","attempt":6,"retry_in":"4s","down_for":"6s","message":"kiss: tnc cannot connect, retrying"}`,
		`{"level":"info","down_for":"7s","attempts":7,"message":"kiss: tnc connected"}`,
	}
	if got := strings.Split(strings.TrimSpace(buf.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRedial: failures wait the backoff, in virtual time, then the
// connection is made and returned.
func TestRedial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := testPolicy
		p.Rand = func() float64 { return 0.5 }
		l := New(p, "test", zerolog.Nop())
		l.Up(time.Now())
		start := time.Now()
		wait := l.Lost(start, errors.New("gone"))
		var at []time.Duration
		conn, err := Redial(context.Background(), l, wait, func(context.Context) (int, error) {
			at = append(at, time.Since(start))
			if len(at) < 3 {
				return 0, errors.New("refused")
			}
			return 42, nil
		}, nil)
		if conn != 42 || err != nil {
			t.Fatalf("Redial = %d, %v, want 42, nil", conn, err)
		}
		want := []time.Duration{150 * time.Millisecond, 450 * time.Millisecond, 1050 * time.Millisecond}
		if fmt.Sprint(at) != fmt.Sprint(want) {
			t.Errorf("attempts at %v, want %v", at, want)
		}
	})
}

// TestRedialGiveUp: a failure giveUp calls final ends Redial at once.
func TestRedialGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		final := errors.New("rejected")
		calls := 0
		_, err := Redial(context.Background(), New(testPolicy, "test", zerolog.Nop()), 0, func(context.Context) (int, error) {
			calls++
			if calls < 2 {
				return 0, errors.New("refused")
			}
			return 0, final
		}, func(err error) bool { return errors.Is(err, final) })
		if !errors.Is(err, final) || calls != 2 {
			t.Errorf("Redial = %v after %d calls, want %v after 2", err, calls, final)
		}
	})
}

// TestRedialCancel: cancelling the context (a modem's Close) while Redial
// waits out a backoff ends it at once, with the context's error and the
// last failure, and its goroutine exits.
func TestRedialCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		l := New(Policy{Min: time.Minute, Max: time.Hour}, "test", zerolog.Nop())
		refused := errors.New("refused")
		done := make(chan error, 1)
		go func() {
			_, err := Redial(ctx, l, 0, func(context.Context) (int, error) { return 0, refused }, nil)
			done <- err
		}()
		time.Sleep(30 * time.Minute) // virtual: Redial waits its first backoff (1 to 2 minutes)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Redial returned %v before the cancel", err)
		default:
		}
		start := time.Now()
		cancel()
		synctest.Wait() // every goroutine of the bubble blocked or exited
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) || !errors.Is(err, refused) {
				t.Errorf("Redial = %v, want context.Canceled and the last failure", err)
			}
		default:
			t.Fatal("Redial still waiting after the cancel")
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Redial returned %v after the cancel, want at once", d)
		}
	})
}

// TestWaitCancel: Wait returns at once when its context is done, and after
// d otherwise.
func TestWaitCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := Wait(context.Background(), time.Second); err != nil || time.Since(start) != time.Second {
			t.Errorf("Wait = %v after %v, want nil after 1s", err, time.Since(start))
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start = time.Now()
		if err := Wait(ctx, time.Hour); !errors.Is(err, context.Canceled) || time.Since(start) != 0 {
			t.Errorf("Wait on a done context = %v after %v, want context.Canceled at once", err, time.Since(start))
		}
	})
}
