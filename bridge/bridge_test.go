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
	"github.com/slided/slided/link"
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

// recTAP is a TAP whose reads come from a channel and whose writes are
// recorded.
type recTAP struct {
	fakeTAP
	mu     sync.Mutex
	writes [][]byte
}

func (r *recTAP) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, append([]byte(nil), p...))
	r.mu.Unlock()
	return len(p), nil
}

func (r *recTAP) got() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.writes...)
}

func ethFrame(dst, src framing.NodeID) []byte {
	b := make([]byte, 14+100)
	copy(b, framing.MACFor(dst))
	copy(b[6:], framing.MACFor(src))
	b[12], b[13] = 0x08, 0x00
	return b
}

// TestBlockReadsOnlyWithRoom: with policy block the bridge leaves frames in
// the TAP (where, on a real host, the qdisc holds them) once the MAC queue is
// full, and reads one more for each frame that leaves the air. (Without
// ARQ: no node answers here, and the ARQ's window would close first.)
func TestBlockReadsOnlyWithRoom(t *testing.T) {
	inBubble(t, Config{Config: link.Config{Policy: Block, NoARQ: true}}, func(t *testing.T, x *bubble) {
		for range 10 {
			x.tap.frames <- ethFrame(2, 1)
		}
		x.after(time.Second)
		queue := DefaultMAC(9600, Block).QueueLen
		st := x.b.Stats()
		if st.TAPReads != uint64(queue) || st.Drops.Total() != 0 || st.QueueDepth != queue {
			t.Fatalf("read %d, drops %+v, queue %d; want %d reads, no drops and a full queue", st.TAPReads, st.Drops, st.QueueDepth, queue)
		}
		// The first frame went on air; its TxDone frees one slot.
		if _, sent := x.phy.counts(); sent != 1 {
			t.Fatalf("%d frames on air, want 1", sent)
		}
		x.phy.ev <- phy.Event{Kind: phy.TxDone}
		x.after(time.Millisecond)
		if st := x.b.Stats(); st.TAPReads != uint64(queue)+1 {
			t.Fatalf("read %d frames after a TxDone, want %d", st.TAPReads, queue+1)
		}
	})
}

// TestDropTailReadsEverything: with drop-tail the bridge reads at once and
// drops what it cannot hold, counting it: without ARQ what the MAC queue
// cannot take; with ARQ (the default) what the destination's window cannot
// take, plus the one packet held for it. No node answers here, and until a
// destination has acknowledged a packet its window is one packet.
func TestDropTailReadsEverything(t *testing.T) {
	for _, noARQ := range []bool{true, false} {
		inBubble(t, Config{Config: link.Config{Policy: DropTail, NoARQ: noARQ}}, func(t *testing.T, x *bubble) {
			for range 30 {
				x.tap.frames <- ethFrame(2, 1)
			}
			x.after(time.Millisecond)
			st := x.b.Stats()
			if st.TAPReads != 30 {
				t.Fatalf("read %d frames, want 30", st.TAPReads)
			}
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
		})
	}
}

// TestGarbageFromTheAirIsCounted: bytes that are no frame never reach the
// TAP and leave the decoder in sync for the next good frame.
func TestGarbageFromTheAirIsCounted(t *testing.T) {
	inBubble(t, Config{}, func(t *testing.T, x *bubble) {
		payload := ethFrame(1, 2)
		h, p, err := framing.Compact(payload, 2)
		if err != nil {
			t.Fatal(err)
		}
		good := framing.AppendFrame(nil, h, p)
		bad := append([]byte(nil), good...)
		bad[len(bad)/2] ^= 0x40 // a bit error
		x.phy.ev <- phy.Event{Kind: phy.Received, Data: []byte{1, 2, 3, 0, 0xff, 0xfe}}
		x.phy.ev <- phy.Event{Kind: phy.Received, Data: bad}
		x.phy.ev <- phy.Event{Kind: phy.Received, Data: good}
		x.after(time.Millisecond)
		st := x.b.Stats()
		// The junk and the damaged frame are counted (a flipped bit breaks the
		// CRC or, inside COBS, the framing itself).
		if st.RxFrames != 1 || st.Drops.BadCRC+st.Drops.Garbage != 2 || len(x.tap.got()) != 1 {
			t.Fatalf("rx %d frames, bad crc %d, garbage %d, %d on the TAP; want 1 good frame and 2 bad runs counted",
				st.RxFrames, st.Drops.BadCRC, st.Drops.Garbage, len(x.tap.got()))
		}
	})
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
		var stop func()
		x.b, stop = startBridge(t, cfg, x.tap, x.phy, nil)
		defer stop() // also after t.Fatal in f
		x.phy.ev <- phy.Event{Kind: phy.Up}
		synctest.Wait()
		f(t, x)
	})
}

// startBridge makes a bridge of cfg on tap and p (and sh, which may be nil)
// and runs it, in the caller's bubble. stop ends Run, closes the TAP and
// checks Run's error; call it before the bubble ends, from the bubble.
func startBridge(t *testing.T, cfg Config, tap *recTAP, p *scriptPHY, sh Shaper) (b *Bridge, stop func()) {
	t.Helper()
	b, err := New(cfg, tap, p, sh)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	return b, func() {
		cancel()
		synctest.Wait() // Run sees the cancel before the TAP closes under its reader
		close(tap.done)
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// TestBridgeCarrierHeldAcrossTxDone: a CarrierOn reported while our frame
// is on air, before its TxDone, keeps the next frame back until the
// CarrierOff; the modem does not report it again after TxDone (phy.go).
func TestBridgeCarrierHeldAcrossTxDone(t *testing.T) {
	inBubble(t, Config{Config: link.Config{NoARQ: true}}, func(t *testing.T, x *bubble) {
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
			inBubble(t, Config{Config: link.Config{NoARQ: true}}, func(t *testing.T, x *bubble) {
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
