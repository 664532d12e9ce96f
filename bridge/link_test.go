package bridge

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/arq"
	"github.com/slided/slided/phy"
)

// wire joins two bridges in memory: what one transmits the other receives,
// unless a seeded coin loses it; TxDone follows at once. It is a fake for
// this package's tests of the link layer; the end-to-end tests use the real
// medium, serial ports and Dire Wolf.
type wire struct {
	mu    sync.Mutex
	rng   *rand.Rand
	loss  float64
	ends  [2]*wireEnd
	sent  int
	lost  int
	taps  [2]*recTAP
	hooks func(from int, b []byte) // called with every burst, under mu
}

type wireEnd struct {
	w     *wire
	i     int
	ev    chan phy.Event
	info  phy.Info
	close sync.Once
}

func (e *wireEnd) Info() phy.Info           { return e.info }
func (e *wireEnd) Events() <-chan phy.Event { return e.ev }
func (e *wireEnd) Close() error             { return nil }
func (e *wireEnd) Transmit(b []byte) error {
	w := e.w
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sent++
	if w.hooks != nil {
		w.hooks(e.i, b)
	}
	if w.rng.Float64() >= w.loss {
		w.ends[1-e.i].ev <- phy.Event{Kind: phy.Received, Data: append([]byte(nil), b...)}
	} else {
		w.lost++
	}
	e.ev <- phy.Event{Kind: phy.TxDone}
	return nil
}

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

// startWire runs two bridges, nodes 1 and 2, on one wire with the given
// configurations (Node is set here).
func startWire(t *testing.T, loss float64, rate int, cfgs [2]Config) (*wire, [2]*Bridge) {
	t.Helper()
	w := &wire{rng: rand.New(rand.NewPCG(7, 7)), loss: loss}
	var bs [2]*Bridge
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 2 {
		w.ends[i] = &wireEnd{w: w, i: i, ev: make(chan phy.Event, 4096), info: phy.Info{BitRate: rate}}
		w.taps[i] = &recTAP{fakeTAP: fakeTAP{frames: make(chan []byte, 256), done: make(chan struct{})}}
		cfg := cfgs[i]
		cfg.Node = framing.NodeID(i + 1)
		cfg.Log = zerolog.Nop()
		cfg.Seed = uint64(i + 1)
		b, err := New(cfg, w.taps[i], w.ends[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		bs[i] = b
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Run(ctx); err != nil {
				t.Errorf("node %d: Run: %v", i+1, err)
			}
		}()
		w.ends[i].ev <- phy.Event{Kind: phy.Up}
	}
	t.Cleanup(func() {
		cancel()
		for i := range 2 {
			close(w.taps[i].done)
		}
		wg.Wait()
	})
	return w, bs
}

// numbered returns an Ethernet frame from node src to node dst whose
// payload carries id and bytes derived from it.
func numbered(dst, src framing.NodeID, id uint32, size int) []byte {
	b := make([]byte, 14+size)
	copy(b, framing.MACFor(dst))
	copy(b[6:], framing.MACFor(src))
	b[12], b[13] = 0x88, 0xb5 // local experimental EtherType
	binary.BigEndian.PutUint32(b[14:], id)
	for i := 18; i < len(b); i++ {
		b[i] = byte(uint32(i) * (id + 1))
	}
	return b
}

// checkDelivered waits until want frames arrived at tap (or 20 s passed)
// and checks that each is one of the sent frames, intact and only once.
func checkDelivered(t *testing.T, tap *recTAP, sent map[uint32][]byte, want int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(tap.got()) < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a late duplicate would show now
	seen := map[uint32]bool{}
	for _, f := range tap.got() {
		if len(f) < 18 {
			t.Fatalf("short frame on the TAP: %x", f)
		}
		id := binary.BigEndian.Uint32(f[14:])
		orig, ok := sent[id]
		if !ok || string(orig) != string(f) {
			t.Fatalf("frame %d on the TAP is not the one sent (%d bytes, %d sent)", id, len(f), len(orig))
		}
		if seen[id] {
			t.Fatalf("frame %d delivered twice", id)
		}
		seen[id] = true
	}
	return len(seen)
}

// TestARQRecoversLosses: 40 packets of 300 bytes cut into 64-byte frames
// over a wire that loses 20% of the frames (and Acks) arrive all, intact,
// once each, and the ARQ's counters show the work.
func TestARQRecoversLosses(t *testing.T) {
	cfg := Config{FrameMax: 64}
	_, bs := startWire(t, 0.2, 115200, [2]Config{cfg, cfg})
	tap1 := bs[0].tap.(*recTAP)
	tap2 := bs[1].tap.(*recTAP)
	sent := map[uint32][]byte{}
	const n = 40
	for id := range uint32(n) {
		f := numbered(2, 1, id, 300)
		sent[id] = f
		tap1.frames <- f
	}
	if got := checkDelivered(t, tap2, sent, n); got != n {
		st := bs[0].Stats()
		t.Fatalf("%d of %d packets delivered; sender arq %+v", got, n, st.ARQ)
	}
	// The last packets' Acks may still be lost and retransmitted for when
	// the receiver has delivered everything: wait (bounded) for them.
	st := bs[0].Stats()
	for deadline := time.Now().Add(10 * time.Second); st.ARQ.Acked < n && time.Now().Before(deadline); st = bs[0].Stats() {
		time.Sleep(20 * time.Millisecond)
	}
	if st.ARQ.Retransmissions == 0 || st.ARQ.Acked != n || st.ARQ.GiveUps != 0 {
		t.Errorf("sender arq %+v: want retransmissions, %d acked, no give-ups; receiver arq %+v, drops %+v %+v", st.ARQ, n, bs[1].Stats().ARQ, st.Drops, bs[1].Stats().Drops)
	}
	if st.FrameMax != 64 {
		t.Errorf("frame max %d, want 64", st.FrameMax)
	}
	// Status per peer: node 2 only, with the same counts and a measured
	// round trip.
	if len(st.Peers) != 1 {
		t.Fatalf("peers %+v, want node 2 alone", st.Peers)
	}
	p := st.Peers[0]
	if p.Node != 2 || p.Acked != st.ARQ.Acked || p.Retransmissions != st.ARQ.Retransmissions || p.Timeouts != st.ARQ.Timeouts ||
		p.Samples == 0 || p.SRTT <= 0 || p.RTO <= 0 || p.LastHeard.IsZero() || p.HeardAgo < 0 {
		t.Errorf("peer %+v; arq %+v", p, st.ARQ)
	}
}

// TestNoARQLosesWithoutDuplicates: with -arq=false the same losses cost
// whole packets (one lost fragment loses its packet), and nothing is
// delivered twice or damaged.
func TestNoARQLosesWithoutDuplicates(t *testing.T) {
	cfg := Config{FrameMax: 64, NoARQ: true}
	_, bs := startWire(t, 0.2, 115200, [2]Config{cfg, cfg})
	tap1, tap2 := bs[0].tap.(*recTAP), bs[1].tap.(*recTAP)
	sent := map[uint32][]byte{}
	const n = 40
	for id := range uint32(n) {
		f := numbered(2, 1, id, 300)
		sent[id] = f
		tap1.frames <- f
	}
	got := checkDelivered(t, tap2, sent, n)
	if got == n || got == 0 {
		t.Errorf("%d of %d packets delivered without ARQ at 20%% frame loss; want some but not all", got, n)
	}
	if st := bs[0].Stats(); st.ARQ.AcksReceived != 0 || st.ARQ.Retransmissions != 0 {
		t.Errorf("sender arq %+v: want no Acks, no retransmissions", st.ARQ)
	}
}

// TestKeyRejectsForgedUnsealedAndReplayed: two nodes with the same key talk;
// a node with another key, a node without a key and a replay of a recorded
// frame are all dropped and counted.
func TestKeyRejectsForgedUnsealedAndReplayed(t *testing.T) {
	k1 := auth.Key{1, 2, 3}
	k2 := auth.Key{9, 9, 9}
	for _, tc := range []struct {
		name      string
		key1      *auth.Key
		key2      *auth.Key
		delivered bool
		drop      func(Drops) uint64
		mode1     auth.Mode
		mode2     auth.Mode
	}{
		{"same key", &k1, &k1, true, func(d Drops) uint64 { return d.Total() }, auth.Seal, auth.Seal},
		{"wrong key", &k2, &k1, false, func(d Drops) uint64 { return d.AuthFailed }, auth.Seal, auth.Seal},
		{"unsealed", nil, &k1, false, func(d Drops) uint64 { return d.Unsealed }, auth.Seal, auth.Seal},
		{"sealed, no key here", &k1, nil, false, func(d Drops) uint64 { return d.Sealed }, auth.Seal, auth.Seal},
		{"signed, same key", &k1, &k1, true, func(d Drops) uint64 { return d.Total() }, auth.Sign, auth.Sign},
		{"signed, wrong key", &k2, &k1, false, func(d Drops) uint64 { return d.AuthFailed }, auth.Sign, auth.Sign},
		{"signed to a sealing node", &k1, &k1, false, func(d Drops) uint64 { return d.KeyMode }, auth.Sign, auth.Seal},
		{"sealed to a signing node", &k1, &k1, false, func(d Drops) uint64 { return d.KeyMode }, auth.Seal, auth.Sign},
		{"signed, no key here", &k1, nil, false, func(d Drops) uint64 { return d.Sealed }, auth.Sign, auth.Seal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, bs := startWire(t, 0, 115200, [2]Config{{Key: tc.key1, NoARQ: true, KeyMode: tc.mode1}, {Key: tc.key2, NoARQ: true, KeyMode: tc.mode2}})
			var rec [][]byte
			w.mu.Lock()
			w.hooks = func(from int, b []byte) {
				if from == 0 {
					rec = append(rec, append([]byte(nil), b...))
				}
			}
			w.mu.Unlock()
			tap1, tap2 := bs[0].tap.(*recTAP), bs[1].tap.(*recTAP)
			sent := map[uint32][]byte{}
			for id := range uint32(5) {
				f := numbered(2, 1, id, 100)
				sent[id] = f
				tap1.frames <- f
			}
			want := 5
			if !tc.delivered {
				want = 0
			}
			deadline := time.Now().Add(5 * time.Second)
			for bs[1].Stats().Drops.Total()+uint64(len(tap2.got())) < 5 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := checkDelivered(t, tap2, sent, want); got != want {
				t.Fatalf("%d packets delivered, want %d", got, want)
			}
			d := bs[1].Stats().Drops
			if n := tc.drop(d); (tc.delivered && n != 0) || (!tc.delivered && n != 5) {
				t.Fatalf("drops %+v", d)
			}
			if !tc.delivered {
				return
			}
			// Replay what node 1 sent: every frame is refused.
			w.mu.Lock()
			for _, b := range rec {
				w.ends[1].ev <- phy.Event{Kind: phy.Received, Data: b}
			}
			w.mu.Unlock()
			deadline = time.Now().Add(5 * time.Second)
			for bs[1].Stats().Drops.Replayed < uint64(len(rec)) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if d := bs[1].Stats().Drops; d.Replayed != uint64(len(rec)) || len(tap2.got()) != 5 {
				t.Fatalf("after replaying %d frames: drops %+v, %d on the TAP; want all replays dropped", len(rec), d, len(tap2.got()))
			}
		})
	}
}

// TestFrameMaxTooSmall: a frame limit that cannot carry a full-size packet
// in 64 fragments is refused with a clear error at New.
func TestFrameMaxTooSmall(t *testing.T) {
	_, err := New(Config{Node: 1, FrameMax: 20}, &fakeTAP{}, &fakePHY{}, nil)
	if !errors.Is(err, arq.ErrInvalidConfig) {
		t.Fatalf("New with frame max 20: %v, want an error", err)
	}
	if _, err := New(Config{Node: 1, FrameMax: 64}, &fakeTAP{}, &fakePHY{}, nil); err != nil {
		t.Fatalf("New with frame max 64: %v", err)
	}
}
