package bridge

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/link"
	"github.com/slided/slided/phy"
)

// slowWriter is a key state file whose durable writes take 2 s (an SD
// card).
type slowWriter struct {
	mu     sync.Mutex
	st     auth.State
	writes int
}

func (w *slowWriter) State() auth.State { w.mu.Lock(); defer w.mu.Unlock(); return w.st }
func (w *slowWriter) Write(st *auth.State) error {
	time.Sleep(2 * time.Second)
	w.mu.Lock()
	w.st, w.writes = *st, w.writes+1
	w.mu.Unlock()
	return nil
}

// TestKeyStateWritesOffTheLoop: writes to the key state that take 2 s do
// not hold up the loop: while one is under way, Stats is answered live and
// a TxDone is handled; while the first reservation is written the TAP is
// not read (its packet waits there rather than go unsealed,
// link.Engine.WantRead), and the packet is read, sealed and sent once the
// counters are durable.
func TestKeyStateWritesOffTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tap := &recTAP{fakeTAP: fakeTAP{frames: make(chan []byte, 64), done: make(chan struct{})}}
		p := &scriptPHY{ev: make(chan phy.Event, 64)}
		key := auth.Key{7}
		w := &slowWriter{}
		st := auth.NewAsyncState(w)
		defer st.Close()
		b, stop := startBridge(t, Config{Config: link.Config{Node: 1, Seed: 1, NoARQ: true, Key: &key, KeyState: [2]AuthState{st}, Log: zerolog.Nop()}}, tap, p, nil)
		defer stop()
		p.ev <- phy.Event{Kind: phy.Up}
		tap.frames <- ethFrame(2, 1)
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if s := b.Stats(); s.StaleSeconds != 0 || s.TAPReads != 0 {
			t.Fatalf("during the first key state write: stale %v s, %d reads; want a live answer, no read", s.StaleSeconds, s.TAPReads)
		}
		p.ev <- phy.Event{Kind: phy.TxDone} // handled at once, not after the write
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if s := b.Stats(); s.StaleSeconds != 0 {
			t.Fatalf("stale %v s after a TxDone during a key state write", s.StaleSeconds)
		}
		// Once the reservation is durable, the packet is read, sealed and
		// sent.
		time.Sleep(3 * time.Second)
		synctest.Wait()
		s := b.Stats()
		if _, sent := p.counts(); sent == 0 || s.TAPReads != 1 || s.Drops.SealFailed != 0 {
			t.Fatalf("once the counters were durable: %d sent, %d reads, drops %+v; want the packet read and sent", sent, s.TAPReads, s.Drops)
		}
		if got, _ := st.Reserved(); got == 0 || w.State().Send != got {
			t.Fatal("no reservation written")
		}
	})
}
