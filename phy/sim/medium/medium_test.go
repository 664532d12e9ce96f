package medium

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/phy"
)

// t0 is the virtual epoch of the medium tests.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

// rec is one delivered event in virtual time.
type rec struct {
	at   time.Duration
	to   NodeID
	kind phy.EventKind
	data string
}

func (r rec) String() string {
	s := fmt.Sprintf("%v n%d %v", r.at, r.to, r.kind)
	if r.data != "" {
		s += " " + fmt.Sprintf("%q", r.data)
	}
	return s
}

// harness drives a Medium in virtual time and records what it delivers.
type harness struct {
	t    *testing.T
	m    *Medium
	now  time.Duration
	log  []rec
	hook func(h *harness, r rec) // optional: react to an event (e.g. transmit)
}

func newHarness(t *testing.T, cfg Config, ids ...NodeID) *harness {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, id := range ids {
		if err := m.Attach(id); err != nil {
			t.Fatalf("Attach(%d): %v", id, err)
		}
	}
	h := &harness{t: t, m: m}
	m.Advance(t0, h.deliver) // sets the epoch
	return h
}

func (h *harness) deliver(to NodeID, ev phy.Event) {
	r := rec{at: h.now, to: to, kind: ev.Kind, data: string(ev.Data)}
	h.log = append(h.log, r)
	if h.hook != nil {
		h.hook(h, r)
	}
}

// runUntil fires every event up to and including t0+until.
func (h *harness) runUntil(until time.Duration) {
	for {
		next, ok := h.m.Next()
		if !ok || next.Sub(t0) > until {
			break
		}
		h.now = next.Sub(t0)
		h.m.Advance(next, h.deliver)
	}
	h.now = until
	h.m.Advance(t0.Add(until), h.deliver)
}

func (h *harness) runAll() {
	for {
		next, ok := h.m.Next()
		if !ok {
			return
		}
		h.now = next.Sub(t0)
		h.m.Advance(next, h.deliver)
	}
}

func (h *harness) transmit(at time.Duration, from NodeID, data string) time.Duration {
	h.t.Helper()
	h.runUntil(at)
	end, err := h.m.Transmit(t0.Add(at), from, []byte(data))
	if err != nil {
		h.t.Fatalf("Transmit(%v, %d): %v", at, from, err)
	}
	return end.Sub(t0)
}

func (h *harness) checkLog(want []rec) {
	h.t.Helper()
	if !slices.Equal(h.log, want) {
		h.t.Errorf("events:\n got: %s\nwant: %s", fmtRecs(h.log), fmtRecs(want))
	}
}

func (h *harness) checkDrained() {
	h.t.Helper()
	if txs, rxs, evs := h.m.inFlight(); txs != 0 || rxs != 0 || evs != 0 {
		h.t.Errorf("after all events: %d transmissions, %d receptions, %d events still held", txs, rxs, evs)
	}
}

func fmtRecs(rs []rec) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("\n  " + r.String())
	}
	return b.String()
}

// 1000 bit/s: one byte is 8 ms on air.
var slow = Config{BitRate: 1000, PropDelay: ms(100), Seed: 1}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		desc string
		cfg  Config
		ok   bool
	}{
		{"typical", Config{BitRate: 1200, PropDelay: time.Second, LossRate: 0.1, BitErrorRate: 1e-4}, true},
		{"zero rates", Config{BitRate: 1}, true},
		{"zero bit rate", Config{}, false},
		{"negative bit rate", Config{BitRate: -5}, false},
		{"absurd bit rate", Config{BitRate: 2_000_000_000}, false},
		{"negative delay", Config{BitRate: 1000, PropDelay: -1}, false},
		{"loss above one", Config{BitRate: 1000, LossRate: 1.5}, false},
		{"loss NaN", Config{BitRate: 1000, LossRate: math.NaN()}, false},
		{"ber negative", Config{BitRate: 1000, BitErrorRate: -0.1}, false},
		{"ber NaN", Config{BitRate: 1000, BitErrorRate: math.NaN()}, false},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.desc, err, tc.ok)
		}
		if _, merr := New(tc.cfg); (merr == nil) != tc.ok {
			t.Errorf("%s: New error = %v, want ok=%v", tc.desc, merr, tc.ok)
		}
	}
}

func TestAttachTransmitErrors(t *testing.T) {
	h := newHarness(t, slow, 1, 2)
	for _, tc := range []struct {
		desc string
		err  error
		want error
	}{
		{"node 0", h.m.Attach(0), ErrInvalidNode},
		{"node 255", h.m.Attach(0xFF), ErrInvalidNode},
		{"node twice", h.m.Attach(1), ErrNodeInUse},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.desc, tc.err, tc.want)
		}
	}
	for _, tc := range []struct {
		desc string
		from NodeID
		data []byte
		want error
	}{
		{"not attached", 3, []byte("x"), ErrNotAttached},
		{"empty", 1, nil, ErrFrameSize},
		{"too long", 1, make([]byte, MaxFrame+1), ErrFrameSize},
	} {
		if _, err := h.m.Transmit(t0, tc.from, tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: Transmit err = %v, want %v", tc.desc, err, tc.want)
		}
	}
	if _, err := h.m.Transmit(t0, 1, []byte("ab")); err != nil {
		t.Fatalf("Transmit: %v", err)
	}
	if _, err := h.m.Transmit(t0.Add(ms(1)), 1, []byte("c")); !errors.Is(err, ErrTransmitting) {
		t.Errorf("second Transmit during the first: err = %v, want ErrTransmitting", err)
	}
	h.runAll()
	if _, err := h.m.Transmit(t0.Add(h.now), 1, []byte("c")); err != nil {
		t.Errorf("Transmit after TxDone: %v", err)
	}
}

func TestCarrierAndTxDoneTiming(t *testing.T) {
	h := newHarness(t, slow, 1, 2)
	end := h.transmit(0, 1, "hello") // 5 bytes: 40 ms
	if end != ms(40) {
		t.Errorf("Transmit end = %v, want 40ms", end)
	}
	h.runAll()
	h.checkLog([]rec{
		{ms(40), 1, phy.TxDone, ""},
		{ms(100), 2, phy.CarrierOn, ""},
		{ms(140), 2, phy.CarrierOff, ""},
		{ms(140), 2, phy.Received, "hello"},
	})
	st := h.m.Stats()
	if st.Transmissions != 1 || st.Deliveries != 1 || st.Collisions != 0 || st.BusyTime != ms(40) {
		t.Errorf("stats = %+v, want 1 transmission, 1 delivery, busy 40ms", st)
	}
	h.checkDrained()
}

func TestThreeNodesAndBackToBack(t *testing.T) {
	// No propagation delay; node 1 sends twice back to back from its TxDone,
	// node 3 answers after the second one: nothing collides.
	cfg := slow
	cfg.PropDelay = 0
	h := newHarness(t, cfg, 1, 2, 3)
	sent := 0
	h.hook = func(h *harness, r rec) {
		if r.to == 1 && r.kind == phy.TxDone && sent == 1 {
			sent++
			if _, err := h.m.Transmit(t0.Add(r.at), 1, []byte("b")); err != nil {
				t.Errorf("back-to-back Transmit: %v", err)
			}
		}
	}
	sent = 1
	h.transmit(0, 1, "a")
	h.runUntil(ms(16))
	h.transmit(ms(16), 3, "c")
	h.runAll()
	h.checkLog([]rec{
		{0, 2, phy.CarrierOn, ""},
		{0, 3, phy.CarrierOn, ""},
		// Intervals are half-open: the first burst ends (carrier off, frame
		// delivered) before the second, sent from the TxDone, begins.
		{ms(8), 2, phy.CarrierOff, ""},
		{ms(8), 2, phy.Received, "a"},
		{ms(8), 3, phy.CarrierOff, ""},
		{ms(8), 3, phy.Received, "a"},
		{ms(8), 1, phy.TxDone, ""},
		{ms(8), 2, phy.CarrierOn, ""},
		{ms(8), 3, phy.CarrierOn, ""},
		{ms(16), 2, phy.CarrierOff, ""},
		{ms(16), 2, phy.Received, "b"},
		{ms(16), 3, phy.CarrierOff, ""},
		{ms(16), 3, phy.Received, "b"},
		{ms(16), 1, phy.TxDone, ""},
		{ms(16), 1, phy.CarrierOn, ""},
		{ms(16), 2, phy.CarrierOn, ""},
		{ms(24), 1, phy.CarrierOff, ""},
		{ms(24), 1, phy.Received, "c"},
		{ms(24), 2, phy.CarrierOff, ""},
		{ms(24), 2, phy.Received, "c"},
		{ms(24), 3, phy.TxDone, ""},
	})
	if st := h.m.Stats(); st.Deliveries != 6 || st.Collisions != 0 {
		t.Errorf("stats = %+v, want 6 deliveries, no collision", st)
	}
	h.checkDrained()
}

func TestCollision(t *testing.T) {
	// Nodes 1 and 2 overlap by 5 ms (no propagation delay): node 3 hears
	// both and loses both; 1 and 2 each lose the other's (half duplex).
	cfg := slow
	cfg.PropDelay = 0
	h := newHarness(t, cfg, 1, 2, 3)
	h.transmit(0, 1, "aa")     // 0..16 ms
	h.transmit(ms(11), 2, "b") // 11..19 ms
	h.runAll()
	h.checkLog([]rec{
		{0, 2, phy.CarrierOn, ""},
		{0, 3, phy.CarrierOn, ""},
		{ms(11), 1, phy.CarrierOn, ""},  // sensed while 1 is on air
		{ms(16), 2, phy.CarrierOff, ""}, // 1's signal ends while 2 is on air
		{ms(16), 1, phy.TxDone, ""},
		{ms(19), 1, phy.CarrierOff, ""},
		{ms(19), 3, phy.CarrierOff, ""},
		{ms(19), 2, phy.TxDone, ""},
	})
	if st := h.m.Stats(); st.Deliveries != 0 || st.Collisions != 4 || st.BusyTime != ms(19) {
		t.Errorf("stats = %+v, want 0 deliveries, 4 collisions, busy 19ms", st)
	}
	h.checkDrained()
}

func TestCollisionWithPropagationDelay(t *testing.T) {
	// With 100 ms delay, 1 and 2 both sense an idle channel and send 50 ms
	// apart: their bursts overlap at 3, but each of 1 and 2 hears the other
	// only after its own transmission ended, so both of those succeed.
	h := newHarness(t, slow, 1, 2, 3)
	h.transmit(0, 1, "x")     // on air 0..8, arrives 100..108
	h.transmit(ms(5), 2, "y") // on air 5..13, arrives 105..113
	h.runAll()
	got := map[NodeID][]string{}
	for _, r := range h.log {
		if r.kind == phy.Received {
			got[r.to] = append(got[r.to], r.data)
		}
	}
	want := map[NodeID][]string{1: {"y"}, 2: {"x"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("received %v, want %v (node 3 loses both)", got, want)
	}
	if st := h.m.Stats(); st.Collisions != 2 {
		t.Errorf("collisions = %d, want 2 (both at node 3)", st.Collisions)
	}
}

func TestHalfDuplex(t *testing.T) {
	for _, tc := range []struct {
		desc string
		at   time.Duration // when node 2 starts its own transmission
		want []rec
	}{
		{
			desc: "transmit in the middle of a reception",
			at:   ms(120),
			want: []rec{
				{ms(40), 1, phy.TxDone, ""},
				{ms(100), 2, phy.CarrierOn, ""},
				// no CarrierOn repeated at 128
				{ms(128), 2, phy.TxDone, ""},
				{ms(140), 2, phy.CarrierOff, ""},
				{ms(220), 1, phy.CarrierOn, ""},
				{ms(228), 1, phy.CarrierOff, ""},
				{ms(228), 1, phy.Received, "z"},
			},
		},
		{
			desc: "signal ends while transmitting",
			at:   ms(136),
			want: []rec{
				{ms(40), 1, phy.TxDone, ""},
				{ms(100), 2, phy.CarrierOn, ""},
				{ms(140), 2, phy.CarrierOff, ""}, // while 2 is on air
				{ms(144), 2, phy.TxDone, ""},
				{ms(236), 1, phy.CarrierOn, ""},
				{ms(244), 1, phy.CarrierOff, ""},
				{ms(244), 1, phy.Received, "z"},
			},
		},
		{
			desc: "signal arrives while transmitting",
			at:   ms(95),
			want: []rec{
				{ms(40), 1, phy.TxDone, ""},
				// Carrier is sensed while 2 transmits (phy/phy.go,
				// rule 3), though the reception is lost.
				{ms(100), 2, phy.CarrierOn, ""},
				{ms(103), 2, phy.TxDone, ""},
				{ms(140), 2, phy.CarrierOff, ""},
				{ms(195), 1, phy.CarrierOn, ""},
				{ms(203), 1, phy.CarrierOff, ""},
				{ms(203), 1, phy.Received, "z"},
			},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			h := newHarness(t, slow, 1, 2)
			h.transmit(0, 1, "hello") // arrives at 2 over 100..140 ms
			h.transmit(tc.at, 2, "z")
			h.runAll()
			h.checkLog(tc.want)
			if st := h.m.Stats(); st.Collisions != 1 || st.Deliveries != 1 {
				t.Errorf("stats = %+v, want 1 collision (hello at 2), 1 delivery", st)
			}
			h.checkDrained()
		})
	}
}

func TestBitErrorRate(t *testing.T) {
	const (
		ber    = 1e-3
		frames = 200
		size   = 1000
	)
	cfg := Config{BitRate: 1_000_000, BitErrorRate: ber, Seed: 42}
	h := newHarness(t, cfg, 1, 2)
	payload := bytes.Repeat([]byte{0x55}, size)
	flipped := 0
	h.hook = func(h *harness, r rec) {
		if r.kind == phy.Received {
			for i := range size {
				flipped += bits.OnesCount8(r.data[i] ^ payload[i])
			}
		}
	}
	for range frames {
		if _, err := h.m.Transmit(t0.Add(h.now), 1, payload); err != nil {
			t.Fatal(err)
		}
		h.runAll()
	}
	nbits := float64(frames * size * 8)
	rate := float64(flipped) / nbits
	// 1.6 million bits at 1e-3: 1600 errors expected, sd 40; allow 5 sd.
	if math.Abs(rate-ber) > 5*math.Sqrt(ber/nbits) {
		t.Errorf("measured bit error rate %.5f, want %.5f", rate, ber)
	}
	if st := h.m.Stats(); st.BitErrors != uint64(flipped) || st.Deliveries != frames {
		t.Errorf("stats = %+v, want %d bit errors, %d deliveries", st, flipped, frames)
	}
}

func TestLossRate(t *testing.T) {
	const (
		loss   = 0.2
		frames = 5000
	)
	cfg := Config{BitRate: 1_000_000, LossRate: loss, Seed: 7}
	h := newHarness(t, cfg, 1, 2)
	for range frames {
		if _, err := h.m.Transmit(t0.Add(h.now), 1, []byte("frame")); err != nil {
			t.Fatal(err)
		}
		h.runAll()
	}
	st := h.m.Stats()
	got := float64(st.Losses) / frames
	if sd := math.Sqrt(loss * (1 - loss) / frames); math.Abs(got-loss) > 5*sd {
		t.Errorf("measured loss rate %.4f, want %.2f", got, loss)
	}
	if st.Losses+st.Deliveries != frames {
		t.Errorf("losses %d + deliveries %d != %d frames", st.Losses, st.Deliveries, frames)
	}
}

// scenario is an ALOHA-ish run with noise, for the determinism test.
func scenario(t *testing.T, seed uint64) []rec {
	cfg := Config{BitRate: 9600, PropDelay: ms(3), LossRate: 0.1, BitErrorRate: 1e-3, Seed: seed}
	h := newHarness(t, cfg, 1, 2, 3, 4)
	for i := range 200 {
		at := time.Duration(i) * ms(40)
		h.runUntil(at)
		from := NodeID(1 + i%4)
		h.m.Transmit(t0.Add(at), from, bytes.Repeat([]byte{byte(i)}, 20+i%50)) // ErrTransmitting is part of the scenario
	}
	h.runAll()
	if st := h.m.Stats(); st.Collisions == 0 || st.Deliveries == 0 || st.Losses == 0 || st.BitErrors == 0 {
		t.Errorf("scenario should mix collisions, deliveries, losses and bit errors: %+v", st)
	}
	return h.log
}

func TestDeterministicForSeed(t *testing.T) {
	a, b, c := scenario(t, 1), scenario(t, 1), scenario(t, 2)
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Errorf("same seed: runs differ (%d vs %d events)", len(a), len(b))
	}
	if slices.Equal(a, c) {
		t.Errorf("different seeds gave identical runs")
	}
}

func TestDetachMidTransmission(t *testing.T) {
	h := newHarness(t, slow, 1, 2, 3)
	h.transmit(0, 1, "long frame") // 80 ms on air, arrives 100..180
	h.runUntil(ms(50))
	h.m.Detach(t0.Add(ms(50)), 1)
	h.runAll()
	// The first 50 ms still arrive; the frame is lost; 1 hears nothing.
	h.checkLog([]rec{
		{ms(100), 2, phy.CarrierOn, ""},
		{ms(100), 3, phy.CarrierOn, ""},
		{ms(150), 2, phy.CarrierOff, ""},
		{ms(150), 3, phy.CarrierOff, ""},
	})
	st := h.m.Stats()
	if st.Truncated != 2 || st.Deliveries != 0 || st.BusyTime != ms(50) {
		t.Errorf("stats = %+v, want 2 truncated, 0 deliveries, busy 50ms", st)
	}
	h.checkDrained()

	// Node 1 comes back and works; node 3 leaves while receiving: it gets
	// nothing more, node 2 is unaffected.
	if err := h.m.Attach(1); err != nil {
		t.Fatalf("re-Attach: %v", err)
	}
	h.log = nil
	h.transmit(ms(200), 1, "ok")
	h.runUntil(ms(310))
	h.m.Detach(t0.Add(ms(310)), 3)
	h.runAll()
	h.checkLog([]rec{
		{ms(216), 1, phy.TxDone, ""},
		{ms(300), 2, phy.CarrierOn, ""},
		{ms(300), 3, phy.CarrierOn, ""},
		{ms(316), 2, phy.CarrierOff, ""},
		{ms(316), 2, phy.Received, "ok"},
	})
	h.checkDrained()
}

func TestDetachBeforeStart(t *testing.T) {
	h := newHarness(t, slow, 1, 2)
	if _, err := h.m.Transmit(t0, 1, []byte("never")); err != nil {
		t.Fatal(err)
	}
	h.m.Detach(t0, 1) // before any Advance: the transmission never happens
	h.runAll()
	h.checkLog(nil)
	h.checkDrained()
	if err := h.m.Attach(1); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Transmit(t0, 1, []byte("again")); err != nil {
		t.Errorf("Transmit after re-Attach: %v", err)
	}
}

func TestFlipBitsAll(t *testing.T) {
	m, _ := New(Config{BitRate: 1})
	b := []byte{0x0F, 0xF0}
	if n := m.flipBits(b, 1); n != 16 || b[0] != 0xF0 || b[1] != 0x0F {
		t.Errorf("flipBits(p=1) = %d, % x; want 16, f0 0f", n, b)
	}
	if n := m.flipBits(b, 0); n != 0 {
		t.Errorf("flipBits(p=0) = %d, want 0", n)
	}
}

func TestPureAlohaThroughput(t *testing.T) {
	// Poisson arrivals at offered load G per frame time, no propagation
	// delay: a reception succeeds when no other burst (the receiver's own
	// included) starts within one frame time either side, e^{-2G}. The
	// sender cannot overlap itself, so the competing load is G(N-1)/N.
	const (
		nodes = 50
		g     = 0.5
		count = 20000
	)
	h := newHarness(t, Config{BitRate: 9600, Seed: 9}, func() []NodeID {
		var ids []NodeID
		for id := 1; id <= nodes; id++ {
			ids = append(ids, NodeID(id))
		}
		return ids
	}()...)
	frame := make([]byte, 100)
	frameTime := phy.Airtime(len(frame), 9600)
	rng := rand.New(rand.NewPCG(5, 6))
	var at time.Duration
	for range count {
		at += time.Duration(rng.ExpFloat64() * float64(frameTime) / g)
		h.runUntil(at)
		h.m.Transmit(t0.Add(at), NodeID(1+rng.IntN(nodes)), frame) // a busy node skips its turn
		h.log = h.log[:0]
	}
	h.runAll()
	st := h.m.Stats()
	got := float64(st.Deliveries) / float64(st.Deliveries+st.Collisions)
	want := math.Exp(-2 * g * (nodes - 1) / nodes)
	if math.Abs(got-want) > 0.015 { // sd about 0.004
		t.Errorf("per-reception success %.4f, want %.4f", got, want)
	}
	if testing.Verbose() {
		t.Logf("per-reception success %.4f (theory %.4f)", got, want)
	}
}
