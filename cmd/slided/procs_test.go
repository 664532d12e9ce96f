package main

import (
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestSetProcs: `slided run` runs on one P unless the GOMAXPROCS
// environment variable asks for more, which it leaves alone.
func TestSetProcs(t *testing.T) {
	was := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(was) })
	if got := setProcs(""); got != 1 || runtime.GOMAXPROCS(0) != 1 {
		t.Errorf("no GOMAXPROCS in the environment: %d (runtime %d), want 1", got, runtime.GOMAXPROCS(0))
	}
	runtime.GOMAXPROCS(3) // as the runtime would have from GOMAXPROCS=3
	if got := setProcs("3"); got != 3 || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("GOMAXPROCS=3: %d (runtime %d), want 3", got, runtime.GOMAXPROCS(0))
	}
}

// TestReleaseAfterStart: the start-up's memory is released once, after
// settleDelay, and never again.
func TestReleaseAfterStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		tm := releaseAfterStart(func() { n.Add(1) })
		defer tm.Stop()
		time.Sleep(settleDelay - time.Millisecond)
		synctest.Wait()
		if got := n.Load(); got != 0 {
			t.Errorf("released %d times before settleDelay, want 0", got)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := n.Load(); got != 1 {
			t.Errorf("released %d times in the first hour, want 1", got)
		}
	})
}
