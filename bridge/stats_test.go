package bridge

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/link"
	"github.com/slided/slided/phy"
)

// slowShaper is a Shaper whose Released stalls the loop for stall once
// armed (a qdisc query that hangs).
type slowShaper struct {
	stall chan time.Duration // the next Released sleeps this long
}

func (s *slowShaper) SetRate(uint64) error { return nil }
func (s *slowShaper) Released() (uint64, uint64, error) {
	select {
	case d := <-s.stall:
		time.Sleep(d)
	default:
	}
	return 0, 0, nil
}

// TestStatsDuringLoopStall: while the loop is stuck (here in the shaper for
// 2 s), Stats returns the counters of the last tick, marked stale, not an
// all-zero snapshot (which Prometheus would read as counters reset).
func TestStatsDuringLoopStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tap := &recTAP{fakeTAP: fakeTAP{frames: make(chan []byte, 64), done: make(chan struct{})}}
		p := &scriptPHY{ev: make(chan phy.Event, 64)}
		sh := &slowShaper{stall: make(chan time.Duration, 1)}
		b, stop := startBridge(t, Config{Config: link.Config{Node: 1, Seed: 1, NoARQ: true, Log: zerolog.Nop()}}, tap, p, sh)
		defer stop()
		p.ev <- phy.Event{Kind: phy.Up}
		for range 3 {
			tap.frames <- ethFrame(2, 1)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		live := b.Stats()
		if live.TAPReads != 3 || live.StaleSeconds != 0 {
			t.Fatalf("live snapshot: %d reads, stale %v s; want 3 reads, not stale", live.TAPReads, live.StaleSeconds)
		}
		sh.stall <- 2 * time.Second
		time.Sleep(300 * time.Millisecond) // the next tick enters the stall
		synctest.Wait()
		st := b.Stats() // the loop does not answer within 1 s
		if st.TAPReads != 3 || !st.Up {
			t.Fatalf("during the stall: %d reads, up %v; want the last counters (3 reads, up)", st.TAPReads, st.Up)
		}
		if st.StaleSeconds < 1 {
			t.Fatalf("during the stall: stale %v s, want at least 1 s", st.StaleSeconds)
		}
	})
}
