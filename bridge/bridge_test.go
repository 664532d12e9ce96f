package bridge

import (
	"context"
	"errors"
	"testing"
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
