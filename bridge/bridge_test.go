package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// fakeTAP hands out the frames it is given, one per Read, and blocks when it
// has none; it counts reads. The end-to-end tests use real TAP devices.
type fakeTAP struct {
	frames chan []byte
	done   chan struct{}
}

func (f *fakeTAP) Read(p []byte) (int, error) {
	select {
	case b := <-f.frames:
		return copy(p, b), nil
	case <-f.done:
		return 0, errors.New("closed")
	}
}

func (f *fakeTAP) Write(p []byte) (int, error) { return len(p), nil }

// fakePHY records transmissions and reports only what the test sends on ev.
type fakePHY struct {
	ev  chan phy.Event
	txs chan []byte
}

func (f *fakePHY) Info() phy.Info           { return phy.Info{BitRate: 9600} }
func (f *fakePHY) Events() <-chan phy.Event { return f.ev }
func (f *fakePHY) Close() error             { return nil }
func (f *fakePHY) Transmit(b []byte) error {
	f.txs <- append([]byte(nil), b...)
	return nil
}

func ethFrame(dst, src framing.NodeID) []byte {
	b := make([]byte, 14+100)
	copy(b, framing.MACFor(dst))
	copy(b[6:], framing.MACFor(src))
	b[12], b[13] = 0x08, 0x00
	return b
}

func startBridge(t *testing.T, policy Policy) (*Bridge, *fakeTAP, *fakePHY) {
	t.Helper()
	return startBridgeConfig(t, Config{Node: 1, Policy: policy, Log: zerolog.Nop()})
}

func startBridgeConfig(t *testing.T, cfg Config) (*Bridge, *fakeTAP, *fakePHY) {
	t.Helper()
	tp := &fakeTAP{frames: make(chan []byte, 64), done: make(chan struct{})}
	ph := &fakePHY{ev: make(chan phy.Event, 16), txs: make(chan []byte, 64)}
	b, err := New(cfg, tp, ph, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		close(tp.done)
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	ph.ev <- phy.Event{Kind: phy.Up}
	return b, tp, ph
}

// waitReads waits until the bridge has read want frames and then checks
// that it reads no more for a while.
func waitReads(t *testing.T, b *Bridge, want uint64) Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().TAPReads < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for a wrong extra read
	st := b.Stats()
	if st.TAPReads != want {
		t.Fatalf("read %d frames from the TAP, want %d", st.TAPReads, want)
	}
	return st
}

// TestBlockReadsOnlyWithRoom: with policy block the bridge leaves frames in
// the TAP (where, on a real host, the qdisc holds them) once the MAC queue is
// full, and reads one more for each frame that leaves the air. (Without
// ARQ: no node answers here, and the ARQ's window would close first.)
func TestBlockReadsOnlyWithRoom(t *testing.T) {
	b, tp, ph := startBridgeConfig(t, Config{Node: 1, Policy: Block, NoARQ: true, Log: zerolog.Nop()})
	for range 10 {
		tp.frames <- ethFrame(2, 1)
	}
	queue := DefaultMAC(9600, Block).QueueLen
	st := waitReads(t, b, uint64(queue))
	if st.Drops.Total() != 0 || st.QueueDepth != queue {
		t.Fatalf("drops %+v, queue %d; want none and a full queue of %d", st.Drops, st.QueueDepth, queue)
	}
	// The first frame went on air; its TxDone frees one slot.
	select {
	case <-ph.txs:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing transmitted")
	}
	ph.ev <- phy.Event{Kind: phy.TxDone}
	waitReads(t, b, uint64(queue)+1)
}

// TestDropTailReadsEverything: with drop-tail the bridge reads at once and
// drops what it cannot hold, counting it: without ARQ what the MAC queue
// cannot take; with ARQ (the default) what the destination's window cannot
// take, plus the one packet held for it. No node answers here, and until a
// destination has acknowledged a packet its window is one packet.
func TestDropTailReadsEverything(t *testing.T) {
	for _, noARQ := range []bool{true, false} {
		b, tp, _ := startBridgeConfig(t, Config{Node: 1, Policy: DropTail, NoARQ: noARQ, Log: zerolog.Nop()})
		for range 30 {
			tp.frames <- ethFrame(2, 1)
		}
		st := waitReads(t, b, 30)
		kept := uint64(DefaultMAC(9600, DropTail).QueueLen)
		if !noARQ {
			kept = uint64(st.ARQ.Packets) + 1 // window, and the held one
			if !st.Holding || st.ARQ.Packets != 1 {
				t.Errorf("ARQ accepted %d packets, holding %v; want the first packet's window of 1 and one held", st.ARQ.Packets, st.Holding)
			}
		}
		if st.Drops.QueueFull != 30-kept {
			t.Fatalf("no ARQ %v: queue-full drops %d, want %d", noARQ, st.Drops.QueueFull, 30-kept)
		}
	}
}

// TestGarbageFromTheAirIsCounted: bytes that are no frame never reach the
// TAP and leave the decoder in sync for the next good frame.
func TestGarbageFromTheAirIsCounted(t *testing.T) {
	b, _, ph := startBridge(t, Block)
	payload := ethFrame(1, 2)
	h, p, err := framing.Compact(payload, 2)
	if err != nil {
		t.Fatal(err)
	}
	good := framing.AppendFrame(nil, h, p)
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0x40 // a bit error
	ph.ev <- phy.Event{Kind: phy.Received, Data: []byte{1, 2, 3, 0, 0xff, 0xfe}}
	ph.ev <- phy.Event{Kind: phy.Received, Data: bad}
	ph.ev <- phy.Event{Kind: phy.Received, Data: good}
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().RxFrames < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := b.Stats()
	// The junk and the damaged frame are counted (a flipped bit breaks the
	// CRC or, inside COBS, the framing itself).
	if st.RxFrames != 1 || st.Drops.BadCRC+st.Drops.Garbage != 2 {
		t.Fatalf("rx %d frames, bad crc %d, garbage %d; want 1 good frame and 2 bad runs counted",
			st.RxFrames, st.Drops.BadCRC, st.Drops.Garbage)
	}
}

// scriptPHY is a modem for tests in a synctest bubble: it reports what the
// test sends on ev, records the bursts it accepts and refuses Transmit
// calls with the errors queued in errs, in order.
type scriptPHY struct {
	ev chan phy.Event

	mu    sync.Mutex
	errs  []error // returned by the next Transmit calls (nil: accept)
	calls int
	sent  [][]byte
}

func (p *scriptPHY) Info() phy.Info           { return phy.Info{BitRate: 9600} }
func (p *scriptPHY) Events() <-chan phy.Event { return p.ev }
func (p *scriptPHY) Close() error             { return nil }
func (p *scriptPHY) Transmit(b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if len(p.errs) > 0 {
		err := p.errs[0]
		p.errs = p.errs[1:]
		if err != nil {
			return err
		}
	}
	p.sent = append(p.sent, append([]byte(nil), b...))
	return nil
}

// counts returns the Transmit calls and the bursts accepted so far.
func (p *scriptPHY) counts() (calls, sent int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, len(p.sent)
}

// lockedBuf collects log lines written by the loop goroutine.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// bubble is a bridge (node 1 unless cfg says otherwise) on a scriptPHY and
// a recTAP, running in virtual time.
type bubble struct {
	b   *Bridge
	tap *recTAP
	phy *scriptPHY
	log *lockedBuf
}

// after lets d of virtual time pass and returns once the bridge has
// handled everything due by then.
func (x *bubble) after(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// inBubble runs f against a bridge inside a synctest bubble, after the
// modem's first Up has been handled.
func inBubble(t *testing.T, cfg Config, f func(t *testing.T, x *bubble)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		x := &bubble{
			tap: &recTAP{fakeTAP: fakeTAP{frames: make(chan []byte, 64), done: make(chan struct{})}},
			phy: &scriptPHY{ev: make(chan phy.Event, 64)},
			log: &lockedBuf{},
		}
		if cfg.Node == 0 {
			cfg.Node = 1
		}
		cfg.Seed = 1
		cfg.Log = zerolog.New(x.log)
		b, err := New(cfg, x.tap, x.phy, nil)
		if err != nil {
			t.Fatal(err)
		}
		x.b = b
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		defer func() { // also after t.Fatal in f
			cancel()
			close(x.tap.done)
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		x.phy.ev <- phy.Event{Kind: phy.Up}
		synctest.Wait()
		f(t, x)
	})
}

// TestBridgeCarrierHeldAcrossTxDone: a CarrierOn reported while our frame
// is on air, before its TxDone, keeps the next frame back until the
// CarrierOff; the modem does not report it again after TxDone (phy.go).
func TestBridgeCarrierHeldAcrossTxDone(t *testing.T) {
	inBubble(t, Config{NoARQ: true}, func(t *testing.T, x *bubble) {
		x.tap.frames <- ethFrame(2, 1)
		x.tap.frames <- ethFrame(2, 1)
		x.after(time.Second)
		if _, sent := x.phy.counts(); sent != 1 {
			t.Fatalf("%d frames on air, want the first one", sent)
		}
		x.phy.ev <- phy.Event{Kind: phy.CarrierOn} // another node starts during our frame
		x.phy.ev <- phy.Event{Kind: phy.TxDone}
		x.after(time.Minute)
		if _, sent := x.phy.counts(); sent != 1 {
			t.Fatalf("%d frames on air while another node's frame is still arriving, want 1", sent)
		}
		x.phy.ev <- phy.Event{Kind: phy.CarrierOff}
		x.after(time.Second)
		if _, sent := x.phy.counts(); sent != 2 {
			t.Fatalf("%d frames on air after CarrierOff, want 2", sent)
		}
	})
}

// TestBridgeTransmitRefused: each error a modem wraps (phy.go) is counted
// under its own reason; the frame is dropped and the next one goes on air.
// ErrBusy is a bug and logged once however often it happens.
func TestBridgeTransmitRefused(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		err   error
		times int
		count func(Drops) uint64
		logs  string // logged once
	}{
		{"busy", fmt.Errorf("sim: %w", phy.ErrBusy), 2, func(d Drops) uint64 { return d.PHYBusy }, "phy_busy"},
		{"too large", fmt.Errorf("kiss: 5000 bytes: %w", phy.ErrTooLarge), 1, func(d Drops) uint64 { return d.PHYTooLarge }, ""},
		{"empty", fmt.Errorf("serial: %w", phy.ErrEmpty), 1, func(d Drops) uint64 { return d.PHYEmpty }, ""},
		{"closed", fmt.Errorf("sim: %w", phy.ErrClosed), 1, func(d Drops) uint64 { return d.PHYError }, ""},
		{"other", errors.New("something else"), 1, func(d Drops) uint64 { return d.PHYError }, ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			inBubble(t, Config{NoARQ: true}, func(t *testing.T, x *bubble) {
				for range tc.times {
					x.phy.errs = append(x.phy.errs, tc.err)
				}
				for range tc.times + 1 {
					x.tap.frames <- ethFrame(2, 1)
				}
				x.after(time.Second)
				calls, sent := x.phy.counts()
				st := x.b.Stats()
				if calls != tc.times+1 || sent != 1 {
					t.Fatalf("%d Transmit calls, %d accepted; want %d and 1", calls, sent, tc.times+1)
				}
				if n := tc.count(st.Drops); n != uint64(tc.times) || st.Drops.Total() != uint64(tc.times) {
					t.Fatalf("drops %+v: want %d under this reason and no other", st.Drops, tc.times)
				}
				if !st.Up {
					t.Fatal("the bridge took the modem for down")
				}
				if tc.logs != "" && x.log.count(tc.logs) != 1 {
					t.Fatalf("%q logged %d times, want once", tc.logs, x.log.count(tc.logs))
				}
			})
		})
	}
}

// TestBridgeTransmitDown: a Transmit refused with ErrDown loses the frame
// to the ARQ's retransmission and holds every transmission until the
// modem's Up, even when the ARQ's timer fires meanwhile.
func TestBridgeTransmitDown(t *testing.T) {
	inBubble(t, Config{}, func(t *testing.T, x *bubble) {
		x.phy.errs = []error{fmt.Errorf("serial: write: %w", phy.ErrDown)}
		first := ethFrame(2, 1)
		x.tap.frames <- first
		x.after(time.Second)
		st := x.b.Stats()
		if calls, _ := x.phy.counts(); calls != 1 || st.Drops.PHYDown != 1 || st.Up {
			t.Fatalf("%d Transmit calls, drops %+v, up %v; want 1 call, 1 phy_down drop, down", calls, st.Drops, st.Up)
		}
		// The modem's Down comes a little later; meanwhile the ARQ's
		// timer runs out and more traffic arrives: nothing is sent.
		x.tap.frames <- ethFrame(2, 1)
		x.after(time.Minute)
		if calls, _ := x.phy.counts(); calls != 1 {
			t.Fatalf("%d Transmit calls while the modem is down, want 1", calls)
		}
		x.phy.ev <- phy.Event{Kind: phy.Down}
		x.after(time.Minute)
		x.phy.ev <- phy.Event{Kind: phy.Up}
		x.after(time.Second)
		st = x.b.Stats()
		if _, sent := x.phy.counts(); sent != 1 || !st.Up || st.ARQ.Retransmissions == 0 || st.PHYDowns != 1 {
			t.Fatalf("after Up: %d accepted, up %v, arq %+v, downs %d; want the lost fragment sent again",
				sent, st.Up, st.ARQ, st.PHYDowns)
		}
	})
}
