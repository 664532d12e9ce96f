package auth

import (
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slided/slided/framing"
)

// slowWriter is a StateWriter whose writes take 2 s (an SD card).
type slowWriter struct {
	mu     sync.Mutex
	st     State
	writes int
}

func (w *slowWriter) State() State { w.mu.Lock(); defer w.mu.Unlock(); return w.st }
func (w *slowWriter) Write(st *State) error {
	time.Sleep(2 * time.Second)
	w.mu.Lock()
	w.st, w.writes = *st, w.writes+1
	w.mu.Unlock()
	return nil
}

// TestAsyncStateSeal: the Sealer never waits for the disk: it seals within
// the durable reservation while the next one is written, asks for that one
// when half of the current one is used, and refuses (ErrNotReserved) only
// a counter at or above the durable mark.
func TestAsyncStateSeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &slowWriter{}
		a := NewAsyncState(w)
		defer a.Close()
		s, err := Resume(testKey, 1, t0, 0, a)
		if err != nil {
			t.Fatal(err)
		}
		c0 := CounterAt(t0)
		seal := func(at time.Duration) error {
			_, env, err := s.Seal(t0.Add(at), nil, framing.Header{Dst: 2}, nil)
			if err == nil {
				if lim, _ := a.Reserved(); counterOf(env) >= lim {
					t.Fatalf("sealed counter %d at or above the durable mark %d", counterOf(env), lim)
				}
			}
			return err
		}
		if err := seal(0); !errors.Is(err, ErrNotReserved) {
			t.Fatalf("seal before the first reservation is durable: %v", err)
		}
		time.Sleep(2*time.Second + time.Millisecond)
		synctest.Wait()
		if lim, _ := a.Reserved(); lim != c0+ReserveAhead {
			t.Fatalf("durable mark %d, want %d", lim-c0, ReserveAhead)
		}
		for _, at := range []time.Duration{time.Second, 301 * time.Second, 599 * time.Second} {
			if err := seal(at); err != nil { // the second asks for more; its write takes 2 s
				t.Fatalf("seal at %v within the durable reservation: %v", at, err)
			}
		}
		if err := seal(601 * time.Second); !errors.Is(err, ErrNotReserved) {
			t.Fatalf("seal past the durable mark while the write is under way: %v", err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if err := seal(601 * time.Second); err != nil {
			t.Fatalf("seal once the next reservation is durable: %v", err)
		}
		if w.writes != 2 {
			t.Fatalf("%d writes, want 2", w.writes)
		}
	})
}

// TestAsyncStateOpen: the Opener accepts a sender's counters below the
// durable floor while the next floor is written (asked for half-way), and
// refuses (ErrNotSaved) those at or above it until the write is done.
func TestAsyncStateOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &slowWriter{}
		a := NewAsyncState(w)
		defer a.Close()
		o := mustOpener(t, testKey)
		o.SetSaver(a)
		s := mustSealer(t, testKey, 1, 1000)
		s.Tie(t0)
		open := func(at time.Duration) error {
			h, env, err := s.Seal(t0.Add(at), nil, framing.Header{Kind: framing.KindEthernet, Dst: 2}, []byte{1})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = o.Open(t0, nil, h, env)
			return err
		}
		if err := open(0); !errors.Is(err, ErrNotSaved) {
			t.Fatalf("first frame of a sender before its floor is durable: %v", err)
		}
		time.Sleep(2*time.Second + time.Millisecond)
		synctest.Wait()
		for _, at := range []time.Duration{time.Second, 6 * time.Second, 9 * time.Second} {
			if err := open(at); err != nil { // 6 s asks for the next floor
				t.Fatalf("frame at %v below the durable floor: %v", at, err)
			}
		}
		if err := open(11 * time.Second); !errors.Is(err, ErrNotSaved) {
			t.Fatalf("frame above the durable floor while the write is under way: %v", err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if err := open(12 * time.Second); err != nil {
			t.Fatalf("frame once the next floor is durable: %v", err)
		}
	})
}
