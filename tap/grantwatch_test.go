package tap

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// creditModel is the credit's qdisc and the TAP's ring as a model: a
// bucket of grant tokens (set, not added to, by a grant; no leak), the
// senders' packets queued in the qdisc, released one per token into a
// ring of 16, except those lose says were lost between the qdisc and the
// ring (a ring drop, a packet the kernel dropped on the way).
type creditModel struct {
	mu       sync.Mutex
	queued   int       // packets waiting in the qdisc
	tokens   int       // the bucket
	ring     chan bool // what the daemon reads
	released int       // packets the bucket let out, lost ones included
	lose     func(n int) bool
	busy     func(n int) time.Duration // how long the reader is busy elsewhere before its read n (from 0)
	grants   int
	dumps    int
}

func newCreditModel(lose func(int) bool) *creditModel {
	return &creditModel{tokens: 2, ring: make(chan bool, 16), lose: lose}
}

func (m *creditModel) SetRate(uint64) error      { return nil }
func (m *creditModel) Close() error              { return nil }
func (m *creditModel) GrantSize() uint32         { return 2 }
func (m *creditModel) SetFlowLimit(uint32) error { return nil }

func (m *creditModel) Grant() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.grants++
	m.tokens = 2 // the kick's token is spent on the kick (none here)
	m.release()
	return nil
}

func (m *creditModel) Stats() (QdiscStats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dumps++
	return QdiscStats{Root: QueueStats{Qlen: uint32(m.queued)}}, nil
}

// send queues n packets of a blocking sender.
func (m *creditModel) send(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queued += n
	m.release()
}

func (m *creditModel) release() {
	for m.tokens > 0 && m.queued > 0 {
		m.tokens--
		m.queued--
		m.released++
		if m.lose != nil && m.lose(m.released) {
			continue
		}
		select {
		case m.ring <- true:
		default: // the ring is full: dropped
		}
	}
}

func (m *creditModel) counts() (grants, dumps, queued int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.grants, m.dumps, m.queued
}

// runCreditModel installs a LazyShaper on m and reads its ring as the
// bridge does with a Credit (read ahead; the engine, always with room,
// takes each packet at once), up to limit packets if limit > 0 (then it
// is busy elsewhere). It returns the shaper, a counter of the packets read
// and a stop function.
func runCreditModel(t *testing.T, m *creditModel, limit int) (*LazyShaper, func() int, func()) {
	s := &LazyShaper{log: zerolog.Nop(), install: func(ShaperConfig) (qdisc, error) { return m, nil }}
	if err := s.SetRate(1000); err != nil {
		t.Fatal(err)
	}
	c := CreditTAP{Shaper: s}
	c.GrantOnTake()
	done := make(chan struct{})
	var mu sync.Mutex
	reads := 0
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for n := 0; ; n++ {
			if limit > 0 && n == limit {
				<-done
				return
			}
			if m.busy != nil {
				if d := m.busy(n); d > 0 {
					time.Sleep(d)
				}
			}
			s.reading(true)
			select {
			case <-done:
				return
			case <-m.ring:
			}
			s.read(false)
			mu.Lock()
			reads++
			mu.Unlock()
			c.Taken()
		}
	}()
	read := func() int {
		mu.Lock()
		defer mu.Unlock()
		return reads
	}
	stop := func() {
		close(done)
		<-exited
		s.Close()
	}
	return s, read, stop
}

// TestGrantLostIsGrantedAgain: a grant whose packets never reach the
// daemon (lost between the qdisc and the ring) is granted again within a
// bounded time while a sender waits, not only when the leak (here none)
// lets the next packets in: the second packet of a grant lost (the grant
// partly used), or both (the grant wholly unused, the qdisc reporting a
// backlog).
func TestGrantLostIsGrantedAgain(t *testing.T) {
	for _, tc := range []struct {
		desc string
		lost map[int]bool
		in   time.Duration // the watchdog's delays, doubling from 250 ms
	}{
		{"partly used", map[int]bool{4: true}, time.Second},
		{"wholly lost", map[int]bool{3: true, 4: true}, time.Second},
		// Four grants in a row lose packets: 0.25 + 0.5 + 1 + 2 s.
		{"lost again", map[int]bool{4: true, 6: true, 7: true, 10: true}, 4 * time.Second},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newCreditModel(func(n int) bool { return tc.lost[n] })
				s, read, stop := runCreditModel(t, m, 0)
				defer stop()
				const sent = 40
				m.send(sent)
				// The leak would let one packet in every 6.7 s.
				time.Sleep(tc.in)
				synctest.Wait()
				grants, dumps, queued := m.counts()
				if got, want := read(), sent-len(tc.lost); got != want || queued != 0 {
					t.Fatalf("read %d of %d in %v, %d still queued (grants %d, dumps %d); want all read",
						got, want, tc.in, queued, grants, dumps)
				}
				// Status and the metrics count the grants made again.
				if q, err := s.Stats(); err != nil || q.Regrants == 0 {
					t.Fatalf("Stats: %+v, %v; want the watchdog's grants counted", q, err)
				}
				t.Logf("grants %d, dumps %d, regrants %d", grants, dumps, s.regrants)
			})
		})
	}
}

// TestGrantWatchdogIdle: the watchdog that grants again is one-shot: once
// the senders stop, at most a re-grant and a qdisc dump follow the last
// grant, and then an idle daemon makes no netlink request for an hour
// (issue 11: no netlink while nothing is queued).
func TestGrantWatchdogIdle(t *testing.T) {
	for _, sent := range []int{4, 5} {
		synctest.Test(t, func(t *testing.T) {
			m := newCreditModel(nil)
			s, read, stop := runCreditModel(t, m, 0)
			defer stop()
			m.send(sent)
			time.Sleep(time.Minute)
			synctest.Wait()
			grants, dumps, _ := m.counts()
			if read() != sent {
				t.Fatalf("read %d of %d", read(), sent)
			}
			if want := sent / 2; grants > want+1 || dumps > 1 {
				t.Fatalf("%d sent: %d grants and %d dumps after the burst; want at most %d and 1", sent, grants, dumps, want+1)
			}
			time.Sleep(time.Hour)
			synctest.Wait()
			if g, d, _ := m.counts(); g != grants || d != dumps {
				t.Fatalf("%d sent, idle for an hour: grants %d -> %d, dumps %d -> %d; want none", sent, grants, g, dumps, d)
			}
			// Nothing was lost: the last grant, wholly unused with nothing
			// queued (4) or partly used (5), is granted again at most once.
			if q, err := s.Stats(); err != nil || q.Regrants > 1 || sent == 4 && q.Regrants != 0 {
				t.Fatalf("%d sent, none lost: Stats %+v, %v; want at most one grant made again, none after a whole grant", sent, q, err)
			}
		})
	}
}

// TestGrantWatchdogNeedsRoom: the watchdog grants again only while the
// reader waits in Read (the ring is empty): a reader busy elsewhere after
// a grant partly read gets no grant more, however long it stays busy.
func TestGrantWatchdogNeedsRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newCreditModel(func(n int) bool { return n == 4 })
		_, read, stop := runCreditModel(t, m, 3)
		defer stop()
		m.send(10)
		time.Sleep(time.Hour)
		synctest.Wait()
		if g, d, _ := m.counts(); read() != 3 || g != 1 || d != 0 {
			t.Fatalf("a busy reader: %d read, %d grants, %d dumps; want 3, 1 (the reads') and 0", read(), g, d)
		}
	})
}

// TestGrantWatchdogBusyThenBack: packets of a grant are lost while the
// reader is busy elsewhere for 10 s (a full MAC queue on a slow link: what
// makes a ring drop); once it reads again the grant is made again within
// the watchdog's longest delay. The watchdog gave up after 7.75 s without
// room, and then only the leak (here none) let packets in: 2 of 8 read in
// an hour.
func TestGrantWatchdogBusyThenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newCreditModel(func(n int) bool { return n == 3 || n == 4 })
		m.busy = func(n int) time.Duration {
			if n == 2 {
				return 10 * time.Second
			}
			return 0
		}
		_, read, stop := runCreditModel(t, m, 0)
		defer stop()
		m.send(8)
		time.Sleep(10*time.Second + watchMax + time.Second)
		synctest.Wait()
		if g, d, q := m.counts(); read() != 6 || q != 0 {
			t.Fatalf("read %d of 6, %d still queued (grants %d, dumps %d); want all read", read(), q, g, d)
		}
	})
}

// TestGrantWatchdogTrickle: a steady sender slower than a grant a
// watchDelay (5 packets a second, none lost) gets one grant per grant's
// worth read, not one more from the watchdog each time (2.1 times as many
// grants, a tc change and a kick frame each, before).
func TestGrantWatchdogTrickle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newCreditModel(nil)
		_, read, stop := runCreditModel(t, m, 0)
		defer stop()
		for range 3000 { // 10 minutes
			m.send(1)
			time.Sleep(200 * time.Millisecond)
		}
		synctest.Wait()
		g, d, _ := m.counts()
		if n := read(); n != 3000 || g > n/2+2 {
			t.Fatalf("read %d of 3000 with %d grants and %d dumps; want all read, at most %d grants", n, g, d, n/2+2)
		}
		t.Logf("%d grants, %d dumps for %d packets", g, d, read())
	})
}
