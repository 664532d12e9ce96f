package bridge

import (
	"runtime"
	"testing"
	"testing/synctest"
	"time"
)

// TestAlarmRearmsOnlyWhenMoved: the loop's timer is set again only when
// the engine's deadline moves (or after it fired), and fires at the
// deadline it was last set for.
func TestAlarmRearmsOnlyWhenMoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAlarm(false)
		defer a.stop()
		start := time.Now()
		d1 := start.Add(5 * time.Millisecond)
		a.set(d1, true)
		a.set(d1, true) // another input, the same deadline
		a.set(d1, true)
		if a.resets != 1 {
			t.Errorf("set %d times for one deadline, want 1", a.resets)
		}
		d2 := start.Add(3 * time.Millisecond)
		a.set(d2, true)
		if a.resets != 2 {
			t.Errorf("set %d times after the deadline moved, want 2", a.resets)
		}
		<-a.c
		a.fired()
		if got := time.Since(start); got != 3*time.Millisecond {
			t.Errorf("fired after %v, want 3ms", got)
		}
		a.set(d2, true) // the engine did not advance: due now, fires again
		if a.resets != 3 {
			t.Errorf("set %d times after firing, want 3", a.resets)
		}
		<-a.c
		a.fired()
		a.set(time.Time{}, false)
		a.set(time.Time{}, false)
		if a.resets != 3 {
			t.Errorf("a stopped alarm was set: %d", a.resets)
		}
		time.Sleep(time.Hour)
		select {
		case <-a.c:
			t.Error("a stopped alarm fired")
		default:
		}
	})
}

// TestAlarmStartsStopped: a new alarm does not fire (the loop of an idle
// daemon sleeps until an input).
func TestAlarmStartsStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAlarm(false)
		a.set(time.Time{}, false)
		time.Sleep(2 * time.Hour)
		select {
		case <-a.c:
			t.Error("a new alarm fired")
		default:
		}
	})
}

// TestPreciseAlarm: the daemon's alarm (Config.PreciseTimer, a timerfd on
// Linux) fires for a deadline, does not fire once stopped, and a stop for
// good releases it. In real time: a timerfd does not follow a synctest
// bubble's clock. The bounds are far beyond the deadlines.
func TestPreciseAlarm(t *testing.T) {
	a := newAlarm(true)
	if runtime.GOOS == "linux" && !a.t.Exact() {
		t.Fatal("no timerfd on Linux")
	}
	a.set(time.Now().Add(300*time.Microsecond), true)
	select {
	case <-a.c:
		a.fired()
	case <-time.After(10 * time.Second):
		t.Fatal("the alarm did not fire")
	}
	a.set(time.Now().Add(time.Millisecond), true)
	a.set(time.Time{}, false)
	select {
	case <-a.c:
		t.Fatal("a stopped alarm fired")
	case <-time.After(50 * time.Millisecond):
	}
	a.stop()
}
