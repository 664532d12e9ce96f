package bridge

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/link"
	"github.com/slided/slided/phy"
)

// countShaper is a Shaper that counts the loop's calls.
type countShaper struct {
	setRate, released atomic.Int64
	rate              atomic.Uint64
}

func (s *countShaper) SetRate(r uint64) error {
	s.setRate.Add(1)
	s.rate.Store(r)
	return nil
}

func (s *countShaper) Released() (uint64, uint64, error) {
	s.released.Add(1)
	return 0, 0, nil
}

func (s *countShaper) calls() int64 { return s.setRate.Load() + s.released.Load() }

// idleBubble runs f against a bridge with a countShaper, in virtual time,
// after the modem's Up.
func idleBubble(t *testing.T, cfg link.Config, f func(t *testing.T, b *Bridge, tap *recTAP, p *scriptPHY, sh *countShaper)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		tap := &recTAP{fakeTAP: fakeTAP{frames: make(chan []byte, 64), done: make(chan struct{})}}
		p := &scriptPHY{ev: make(chan phy.Event, 64)}
		sh := &countShaper{}
		cfg.Node, cfg.Seed, cfg.Log = 1, 1, zerolog.Nop()
		b, stop := startBridge(t, Config{Config: cfg}, tap, p, sh)
		defer stop()
		p.ev <- phy.Event{Kind: phy.Up}
		synctest.Wait()
		f(t, b, tap, p, sh)
	})
}

// lastTick is when the loop last took the snapshot it takes at every tick.
func (b *Bridge) lastTick() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastAt
}

// TestIdleBridgeSleeps: a bridge with nothing to send and nothing heard
// neither ticks nor calls its Shaper (each call a netlink request with the
// paced qdisc) in ten minutes; before, it did both four times a second.
func TestIdleBridgeSleeps(t *testing.T) {
	for _, noARQ := range []bool{false, true} {
		idleBubble(t, link.Config{NoARQ: noARQ}, func(t *testing.T, b *Bridge, _ *recTAP, _ *scriptPHY, sh *countShaper) {
			time.Sleep(time.Second) // the tick after Up
			synctest.Wait()
			calls, at := sh.calls(), b.lastTick()
			time.Sleep(10 * time.Minute)
			synctest.Wait()
			if n := sh.calls() - calls; n != 0 {
				t.Errorf("no ARQ %v: %d Shaper calls in 10 idle minutes, want 0", noARQ, n)
			}
			if got := b.lastTick(); !got.Equal(at) {
				t.Errorf("no ARQ %v: the loop ticked %v after going idle, want no tick", noARQ, got.Sub(at))
			}
			if st := b.Stats(); !st.Up || st.StaleSeconds != 0 {
				t.Errorf("no ARQ %v: idle bridge: up %v, stale %v s; want a live answer", noARQ, st.Up, st.StaleSeconds)
			}
		})
	}
}

// TestBusyBridgeTicks: while a frame waits in the MAC (on air, its TxDone
// not yet come) the loop ticks every Tick as before; it stops within two
// ticks of the queue emptying, and starts again with the next frame, first
// retuning the rate to what the idle ticks it skipped would have left.
func TestBusyBridgeTicks(t *testing.T) {
	idleBubble(t, link.Config{NoARQ: true}, func(t *testing.T, b *Bridge, tap *recTAP, p *scriptPHY, sh *countShaper) {
		tap.frames <- ethFrame(2, 1)
		time.Sleep(time.Millisecond)
		synctest.Wait()
		before := sh.released.Load()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := sh.released.Load() - before; n != 40 {
			t.Fatalf("%d ticks in 10 s with a frame on air, want 40 (one per 250 ms)", n)
		}
		p.ev <- phy.Event{Kind: phy.TxDone}
		time.Sleep(time.Second)
		synctest.Wait()
		stopped := sh.released.Load()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := sh.released.Load() - stopped; n != 0 {
			t.Fatalf("%d ticks in the idle minute after the TxDone, want 0", n)
		}
		if r := b.Stats().PacingRate; r >= 1200 {
			t.Fatalf("pacing rate %d B/s before the idle minute; the test wants one below the raw 1200", r)
		}
		tap.frames <- ethFrame(2, 1)
		time.Sleep(time.Millisecond)
		synctest.Wait()
		// A minute of idle ticks grows the rate to the raw channel rate
		// (9600 bit/s): the shaper has it before the next tick.
		if got := b.Stats().PacingRate; got != 1200 || sh.rate.Load() != 1200 {
			t.Fatalf("pacing rate %d B/s (shaper %d) as the next frame comes after an idle minute, want the raw 1200", got, sh.rate.Load())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := sh.released.Load() - stopped; n != 4 {
			t.Fatalf("%d ticks in the second after the next frame, want 4", n)
		}
	})
}
