//go:build linux

package precise

import (
	"sort"
	"testing"
	"time"
)

// wait is far longer than any timer here is set for: the tests check what
// fires and what does not, never how soon.
const wait = 10 * time.Second

func TestFires(t *testing.T) {
	tm, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()
	for _, d := range []time.Duration{-time.Second, 0, 200 * time.Microsecond, 3 * time.Millisecond} {
		start := time.Now()
		tm.Reset(d)
		select {
		case at := <-tm.C:
			if at.Sub(start) < d {
				t.Errorf("Reset(%v): fired after %v, before its time", d, at.Sub(start))
			}
		case <-time.After(wait):
			t.Fatalf("Reset(%v): did not fire within %v", d, wait)
		}
	}
}

// TestStopAndResetLeaveNothing: a stopped timer does not fire, and a Reset
// replaces the earlier setting: C holds no value from it.
func TestStopAndResetLeaveNothing(t *testing.T) {
	tm, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()

	tm.Reset(time.Millisecond)
	time.Sleep(20 * time.Millisecond) // it has fired: a value waits in C
	tm.Stop()
	select {
	case <-tm.C:
		t.Fatal("a value from before Stop was left in C")
	default:
	}

	tm.Reset(time.Millisecond)
	tm.Stop()
	select {
	case <-tm.C:
		t.Fatal("a stopped timer fired")
	case <-time.After(50 * time.Millisecond):
	}

	tm.Reset(time.Hour)
	start := time.Now()
	tm.Reset(time.Millisecond) // replaces the hour
	select {
	case <-tm.C:
	case <-time.After(wait):
		t.Fatalf("Reset did not replace the earlier setting (%v)", time.Since(start))
	}
}

// TestCloseEndsGoroutine: Close returns only once the reader has exited
// (it waits on done), also while the timer is armed.
func TestCloseEndsGoroutine(t *testing.T) {
	tm, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tm.Reset(time.Hour)
	closed := make(chan error, 1)
	go func() { closed <- tm.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
}

// BenchmarkLateness reports how late a timer set for one MAC slot at
// 115200 bit/s (239 µs) fires, for this package's timer and for
// time.Timer, as medians and 95th percentiles over b.N settings
// (docs/performance.md has a run). Run with -benchtime 500x.
func BenchmarkLateness(b *testing.B) {
	const d = 239 * time.Microsecond
	report := func(b *testing.B, late []time.Duration) {
		sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
		b.ReportMetric(float64(late[len(late)/2].Microseconds()), "late_median_us")
		b.ReportMetric(float64(late[len(late)*95/100].Microseconds()), "late_p95_us")
	}
	b.Run("precise", func(b *testing.B) {
		b.ReportAllocs()
		tm, err := New()
		if err != nil {
			b.Fatal(err)
		}
		defer tm.Close()
		late := make([]time.Duration, 0, b.N)
		for range b.N {
			s := time.Now()
			tm.Reset(d)
			<-tm.C
			late = append(late, time.Since(s)-d)
		}
		report(b, late)
	})
	b.Run("time.Timer", func(b *testing.B) {
		b.ReportAllocs()
		tm := time.NewTimer(time.Hour)
		tm.Stop()
		late := make([]time.Duration, 0, b.N)
		for range b.N {
			s := time.Now()
			tm.Reset(d)
			<-tm.C
			late = append(late, time.Since(s)-d)
		}
		report(b, late)
	})
}
