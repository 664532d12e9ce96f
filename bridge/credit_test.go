package bridge

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/link"
	"github.com/slided/slided/phy"
)

// creditTAP is a TAP behind a fake credit qdisc, as tap.CreditTAP's: packets
// wait in the qdisc (a greedy flow's and a small flow's, the small one
// served first when both wait, as the qdisc's round robin does after a
// greedy packet) and go into the ring two per grant. A grant follows every
// second packet counted: taken (Credit) if the bridge asked for that, read
// otherwise.
type creditTAP struct {
	done chan struct{}

	mu      sync.Mutex
	cond    *sync.Cond
	greedy  [][]byte
	small   [][]byte
	ring    [][]byte
	onTake  bool
	counted int
	taken   int
	read    int
	closed  bool
	// sent counts the transmissions (set by the test); released is its
	// value when the small packet went into the ring (-1: not yet).
	sent, released int
}

func newCreditTAP() *creditTAP {
	c := &creditTAP{done: make(chan struct{}), released: -1}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// release lets n packets from the qdisc into the ring. c.mu is held.
func (c *creditTAP) release(n int) {
	for ; n > 0; n-- {
		switch {
		case len(c.small) > 0:
			c.ring, c.small = append(c.ring, c.small[0]), c.small[1:]
			c.released = c.sent
		case len(c.greedy) > 0:
			c.ring, c.greedy = append(c.ring, c.greedy[0]), c.greedy[1:]
		default:
			return
		}
	}
	c.cond.Broadcast()
}

func (c *creditTAP) count() {
	if c.counted++; c.counted%2 == 0 {
		c.release(2)
	}
}

func (c *creditTAP) queue(greedy, small [][]byte, grant int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.greedy = append(c.greedy, greedy...)
	c.small = append(c.small, small...)
	c.release(grant)
}

func (c *creditTAP) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.ring) == 0 && !c.closed {
		c.cond.Wait()
	}
	if c.closed {
		return 0, errors.New("closed")
	}
	n := copy(p, c.ring[0])
	c.ring = c.ring[1:]
	c.read++
	if !c.onTake {
		c.count()
	}
	return n, nil
}

func (c *creditTAP) Write(p []byte) (int, error) { return len(p), nil }

func (c *creditTAP) GrantOnTake() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onTake = true
	return true
}

func (c *creditTAP) Taken() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.taken++
	c.count()
}

func (c *creditTAP) close() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
}

// udpEth is an IPv4 UDP frame from node 1 to node 2 from source port sport
// with size bytes of payload.
func udpEth(sport uint16, size int) []byte {
	b := make([]byte, 14+20+8+size)
	copy(b, framing.MACFor(2))
	copy(b[6:], framing.MACFor(1))
	b[12], b[13] = 0x08, 0x00
	b[14], b[14+9] = 0x45, 17
	copy(b[14+12:], []byte{192, 0, 2, 1, 192, 0, 2, 2})
	binary.BigEndian.PutUint16(b[14+2:], uint16(20+8+size))
	binary.BigEndian.PutUint16(b[34:], sport)
	binary.BigEndian.PutUint16(b[36:], 9)
	return b
}

// TestCreditSmallFlowGoesNext: behind a credit, with a greedy flow's
// packets filling the MAC queue and the ring, a small flow's packet goes
// on air right after the frame on air when the qdisc releases it, not
// behind the greedy packets already in the ring: the bridge reads the ring
// ahead and hands the engine the small packet first. Every packet handed
// to the engine is counted for the grants, and no more than that, so what
// the credit lets out stays bounded.
func TestCreditSmallFlowGoesNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tp := newCreditTAP()
		b, p := runOnTAP(t, Config{Config: link.Config{Node: 1, Seed: 1, Policy: Block, NoARQ: true, Log: zerolog.Nop()}}, tp)
		var greedy [][]byte
		for range 40 {
			greedy = append(greedy, udpEth(7000, 200))
		}
		tp.queue(greedy, nil, 3) // the first grant (and the kick's token)
		time.Sleep(time.Second)
		synctest.Wait()
		small := func(f []byte) bool { return len(f) < 150 }
		at := -1 // the transmission that carried the small packet
		for i := 1; i < 20 && at < 0; i++ {
			if i == 6 {
				tp.queue(nil, [][]byte{udpEth(7001, 20)}, 0)
				synctest.Wait()
			}
			tp.mu.Lock()
			tp.sent = i // transmission i starts at this TxDone
			tp.mu.Unlock()
			p.ev <- phy.Event{Kind: phy.TxDone}
			time.Sleep(time.Second)
			synctest.Wait()
			p.mu.Lock()
			for j, f := range p.sent {
				if small(f) {
					at = j
				}
			}
			p.mu.Unlock()
		}
		st := b.Stats()
		tp.mu.Lock()
		defer tp.mu.Unlock()
		// Released at the TxDone that started transmission r, it goes
		// next: in r+1.
		if at < 0 || tp.released < 0 || at > tp.released+1 {
			t.Errorf("the small packet went into the ring during transmission %d and on air in transmission %d; want the next one", tp.released, at)
		}
		t.Logf("small packet released during transmission %d, sent in %d; read %d, taken %d, engine reads %d", tp.released, at, tp.read, tp.taken, st.TAPReads)
		if tp.taken < int(st.TAPReads) || tp.taken > int(st.TAPReads)+1 {
			t.Errorf("counted %d packets for the grants, the engine took %d", tp.taken, st.TAPReads)
		}
	})
}

// TestCreditSmallFlowBeatsTheBurst: with link ARQ, the packet a grant
// releases at a greedy frame's TxDone is read while the far node's Ack is
// on air, and goes in the very next transmission: the bridge hands it to
// the engine when the Ack has come, before it lets the engine start the
// next frame (the adaptive MAC's burst goes on right after the Ack it
// reserved the channel for, docs/mac.md). Before, the loop polled the
// engine first, so a greedy frame left ahead of the small packet, which
// waited for its whole airtime. Node 2 is a link.Engine the test drives
// as the medium would: the test carries each burst across after its
// airtime and returns node 2's Ack after its own.
func TestCreditSmallFlowBeatsTheBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tp := newCreditTAP()
		p := &scriptPHY{ev: make(chan phy.Event, 64)}
		cfg := Config{Config: link.Config{Node: 1, Seed: 1, Policy: Block, Log: zerolog.Nop()}}
		b, err := New(cfg, tp, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		far, err := link.New(link.Config{Node: 2, Seed: 2, Policy: Block, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		stop := runBridge(t, b, tp)
		defer stop()
		info := p.Info()
		p.ev <- phy.Event{Kind: phy.Up}
		if err := far.Modem(time.Now(), phy.Event{Kind: phy.Up}, info); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		var greedy [][]byte
		for range 40 {
			greedy = append(greedy, udpEth(7000, 200))
		}
		tp.queue(greedy, nil, 3) // the first grant (and the kick's token)
		small := func(f []byte) bool { return len(f) < 150 }
		// farAnswer lets node 2 take burst f and returns what it sends
		// back within 50 ms (its Ack), nil if nothing.
		farAnswer := func(f []byte) []byte {
			if err := far.Modem(time.Now(), phy.Event{Kind: phy.Received, Data: f}, info); err != nil {
				t.Fatal(err)
			}
			for _, d := range far.Deliveries() {
				far.Written(time.Now(), d, nil)
			}
			end := time.Now().Add(50 * time.Millisecond)
			for time.Now().Before(end) {
				if a, ok := far.Poll(time.Now()); ok {
					return a
				}
				d, ok := far.Deadline()
				if !ok || d.After(end) {
					break
				}
				time.Sleep(time.Until(d))
			}
			return nil
		}
		farDone := func() {
			if err := far.Modem(time.Now(), phy.Event{Kind: phy.TxDone}, info); err != nil {
				t.Fatal(err)
			}
		}
		// Node 2's Hello, which node 1 need not hear.
		if h, ok := far.Poll(time.Now()); ok {
			time.Sleep(phy.Airtime(len(h), info.BitRate))
			farDone()
		}
		at := -1 // the transmission that carried the small packet
		for i := 0; i < 30 && at < 0; i++ {
			synctest.Wait()
			var f []byte
			for wait := 0; f == nil; wait++ {
				p.mu.Lock()
				if len(p.sent) > i {
					f = p.sent[i]
				}
				p.mu.Unlock()
				if f == nil {
					if wait == 10000 {
						t.Fatalf("transmission %d never started", i)
					}
					time.Sleep(time.Millisecond) // let the backoff run
					synctest.Wait()
				}
			}
			if small(f) {
				at = i
				break
			}
			if i == 6 {
				tp.queue(nil, [][]byte{udpEth(7001, 20)}, 0) // arrives in the qdisc on air
			}
			time.Sleep(phy.Airtime(len(f), info.BitRate))
			tp.mu.Lock()
			tp.sent = i
			tp.mu.Unlock()
			p.ev <- phy.Event{Kind: phy.TxDone}
			ack := farAnswer(f)
			synctest.Wait() // the grant; the reader reads what it released
			if ack != nil {
				time.Sleep(phy.Airtime(len(ack), info.BitRate))
				farDone()
				p.ev <- phy.Event{Kind: phy.Received, Data: ack}
			}
		}
		tp.mu.Lock()
		released := tp.released
		tp.mu.Unlock()
		t.Logf("small packet released at the end of transmission %d, sent in %d", released, at)
		if at < 0 || released < 0 || at != released+1 {
			t.Errorf("the small packet went into the ring at the end of transmission %d and on air in transmission %d; want the next one", released, at)
		}
	})
}

// closer is a test TAP that ends its readers (creditTAP, bucketTAP).
type closer interface {
	TAP
	close()
}

// runBridge runs b inside the caller's synctest bubble; stop cancels it,
// closes tp once the loop is idle, and checks that Run returned nil.
func runBridge(t *testing.T, b *Bridge, tp closer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	return func() {
		cancel()
		synctest.Wait()
		tp.close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// runOnTAP runs a bridge with cfg on tp and a scriptPHY inside the
// caller's synctest bubble, until the test ends, and returns it and its
// modem once the modem's first Up has been handled.
func runOnTAP(t *testing.T, cfg Config, tp closer) (*Bridge, *scriptPHY) {
	t.Helper()
	p := &scriptPHY{ev: make(chan phy.Event, 64)}
	b, err := New(cfg, tp, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runBridge(t, b, tp))
	p.ev <- phy.Event{Kind: phy.Up}
	synctest.Wait()
	return b, p
}
