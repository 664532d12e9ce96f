package csma

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestNextWindow(t *testing.T) {
	cfg := Config{CWMin: 2, CWMax: 1000, IdleTarget: 8}
	for _, tc := range []struct {
		desc     string
		cw, mean float64
		sent     bool // the node transmitted after one of the last five gaps
		want     float64
	}{
		{"storm: under a quarter of the target doubles over five gaps", 100, 1.9, true, 200},
		{"storm, but the node did not send: adds", 100, 1.9, false, 106},
		{"busy: under the target adds 6 over five gaps", 100, 2, true, 106},
		{"busy, just under", 100, 7.99, true, 106},
		{"idle: at the target shrinks by 0.9375 over five gaps", 100, 8, true, 93.75},
		{"idle: far over shrinks by the same factor", 100, 50, false, 93.75},
		{"capped at CWMax", 600, 0, true, 1000},
		{"floored at CWMin", 2, 100, true, 2},
	} {
		// The window moves at every gap, by a fifth of the step (the fifth
		// root of the factor); five gaps with the same mean make the step.
		got := tc.cw
		for range idleBatch {
			got = nextWindow(got, tc.mean, tc.sent, cfg)
		}
		if math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: nextWindow(%v, %v) five times = %v, want %v", tc.desc, tc.cw, tc.mean, got, tc.want)
		}
	}
}

// Two windows that differ converge under the rule when both see the same
// idle gaps: additive steps keep the difference, multiplicative ones shrink
// it (the reason the increase is additive and the decrease multiplicative).
func TestNextWindowConverges(t *testing.T) {
	cfg := Config{CWMin: 2, CWMax: 8192, IdleTarget: 7}
	a, b := 40.0, 400.0
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		mean := 7 * 2 * rng.Float64() // the same observation for both
		a, b = nextWindow(a, mean, true, cfg), nextWindow(b, mean, true, cfg)
	}
	if math.Abs(a-b) > 1 {
		t.Errorf("windows %v and %v did not converge", a, b)
	}
}

func TestIdleTargetFor(t *testing.T) {
	T := 100 * time.Millisecond
	for _, tc := range []struct {
		desc                  string
		busy, slot, ifs, prop time.Duration
		lo, hi                float64
	}{
		// Frames 100 slots long: the optimum has x ≈ 0.13 transmissions
		// starting per slot, about 7 idle slots between transmissions.
		{"a = 0.01", T, T / 100, T / 100, T / 100, 6.5, 7.5},
		{"a = 0.1", T, T / 10, T / 10, T / 10, 1.8, 2.5},
		// A slot as long as the frame: contention is dear, the target
		// small.
		{"a = 1", T, T, T, T, 0.8, 1.4},
		{"a = 1, bursts of 4", 4 * T, T, T, T, 1.3, 1.9},
		{"no slot", T, 0, 0, 0, 1, 1},
	} {
		got := IdleTargetFor(tc.busy, tc.slot, tc.ifs, tc.prop)
		if got < tc.lo || got > tc.hi {
			t.Errorf("%s: IdleTargetFor = %v, want in [%v, %v]", tc.desc, got, tc.lo, tc.hi)
		}
	}
	// Longer frames against the slot: more idle slots are worth it.
	prev := 0.0
	for _, f := range []time.Duration{10, 100, 1000, 10000} {
		got := IdleTargetFor(f*time.Millisecond, time.Millisecond, time.Millisecond, 0)
		if got <= prev {
			t.Errorf("IdleTargetFor(%v ms frames) = %v, not above %v", f, got, prev)
		}
		prev = got
	}
}

func TestConfigFor(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		desc      string
		ch        Channel
		slot, ifs time.Duration
		burst     int
		checkErr  bool
	}{
		{"radio default: 16 bit times + 100 µs", Channel{BitRate: 9600}, 1766672 * time.Nanosecond, 3433344 * time.Nanosecond, 1, false},
		{"simulated medium, a = 0.01 of a 100-byte frame", Channel{BitRate: 9600, PropDelay: 833333, CarrierAtArrival: true, FrameBytes: 100}, 833333, 833333, 1, false},
		{"acoustic, 1 km of water", Channel{BitRate: 1200, PropDelay: 667 * ms, FrameBytes: 256}, 667*ms + 13333344, 667*ms + 2*13333344, 4, false},
		{"real-time floor", Channel{BitRate: 115200, MinSlot: ms}, ms, ms + 16*8681, 1, false},
		{"turnaround in IFS", Channel{BitRate: 9600, CarrierAtArrival: true, Turnaround: 50 * ms}, 104167, 104167 + 50*ms, 1, false},
		{"negative delay: clamped to radio", Channel{BitRate: 9600, PropDelay: -ms, CarrierAtArrival: true}, 104167, 104167, 1, true},
		{"impossible delay: clamped to MaxPropDelay", Channel{BitRate: 9600, PropDelay: time.Hour, CarrierAtArrival: true}, MaxPropDelay, MaxPropDelay, 4, true},
		{"modem profile: detect after a 100 ms preamble", Channel{BitRate: 9600, PropDelay: 300 * ms, SenseDelay: 100 * ms, FrameBytes: 256}, 400 * ms, 500 * ms, 4, false},
		{"negative detect time: none", Channel{BitRate: 9600, PropDelay: 300 * ms, SenseDelay: -1, CarrierAtArrival: true, FrameBytes: 256}, 300 * ms, 300 * ms, 4, true},
		{"zero bit rate: 1200", Channel{CarrierAtArrival: true}, 833334, 833334, 1, false},
	} {
		c := ConfigFor(tc.ch)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: ConfigFor gives an invalid config: %v", tc.desc, err)
		}
		if c.SlotTime != tc.slot || c.IFS != tc.ifs || c.Burst != tc.burst {
			t.Errorf("%s: slot %v ifs %v burst %d, want %v %v %d", tc.desc, c.SlotTime, c.IFS, c.Burst, tc.slot, tc.ifs, tc.burst)
		}
		if c.IdleTarget <= 0 || c.CWMin != 2 {
			t.Errorf("%s: adaptive window off (target %v, CWMin %d)", tc.desc, c.IdleTarget, c.CWMin)
		}
		if err := tc.ch.Check(); (err != nil) != tc.checkErr || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
			t.Errorf("%s: Check() = %v, want an error: %v", tc.desc, err, tc.checkErr)
		}
	}
}

func TestValidateAdaptive(t *testing.T) {
	for _, tc := range []struct {
		desc string
		mod  func(*Config)
	}{
		{"negative idle target", func(c *Config) { c.IdleTarget = -1 }},
		{"NaN idle target", func(c *Config) { c.IdleTarget = math.NaN() }},
		{"huge idle target", func(c *Config) { c.IdleTarget = 1e9 }},
		{"negative delay", func(c *Config) { c.PropDelay = -1 }},
		{"delay over the maximum", func(c *Config) { c.PropDelay = MaxPropDelay + 1 }},
		{"negative burst", func(c *Config) { c.Burst = -1 }},
		{"huge burst", func(c *Config) { c.Burst = 1000 }},
	} {
		c := DefaultConfig(9600)
		tc.mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", tc.desc, err)
		}
	}
}

// adaptiveConfig has round numbers: slot 10 ms, IFS 10 ms, delay 5 ms.
func adaptiveConfig() Config {
	return Config{
		SlotTime: 10 * time.Millisecond, IFS: 10 * time.Millisecond, Persistence: 1,
		CWMin: 2, CWMax: 1024, QueueLen: 4, IdleTarget: 5, PropDelay: 5 * time.Millisecond,
	}
}

// A lone sender sees only its own idle slots. Its window settles where
// those average the target (about 2·target+1 slots), not at CWMin: the idle
// slots are what lets a newcomer be heard (docs/mac.md). It stays there,
// bounded, however long it runs.
func TestLoneSenderWindow(t *testing.T) {
	cfg := adaptiveConfig()
	m, _ := newPair(t, cfg, 1)
	frame := []byte("x")
	now := t0
	var idle, frames time.Duration
	for i := range 4000 {
		mustEnqueue(t, m, now, frame)
		d, ok := m.Deadline()
		if !ok {
			t.Fatal("no deadline")
		}
		if i >= 2000 {
			idle += d.Sub(now) - cfg.PropDelay - cfg.IFS
			frames++
		}
		now = d
		if _, ok := m.Poll(now); !ok {
			t.Fatal("nothing sent at the deadline")
		}
		now = now.Add(time.Second)
		m.TxDone(now)
		if hi := 6 * int(cfg.IdleTarget+1); m.cw < cfg.CWMin || m.cw > hi {
			t.Fatalf("frame %d: window %d outside [%d, %d]", i, m.cw, cfg.CWMin, hi)
		}
	}
	mean := float64(idle) / float64(frames) / float64(cfg.SlotTime)
	// The AIMD steps settle somewhat above the target (the additive step
	// is taken as often as the multiplicative one, from noisy means).
	if mean < cfg.IdleTarget*0.7 || mean > cfg.IdleTarget*2 {
		t.Errorf("mean idle slots before a lone sender's frames = %.2f, want about the target %v", mean, cfg.IdleTarget)
	}
}

// After its own frame a node counts from when the others hear it end
// (PropDelay later); a carrier's slots are counted from when its
// transmission began (PropDelay before it came).
func TestAlignment(t *testing.T) {
	cfg := adaptiveConfig()
	m, twin := newPair(t, cfg, 4)
	twin.IntN(m.cw) // the draw Enqueue makes
	mustEnqueue(t, m, t0, []byte("a"))
	mustEnqueue(t, m, t0, []byte("b"))
	d, _ := m.Deadline()
	wantSend(t, m, d, "a")
	end := d.Add(time.Second)
	m.TxDone(end)
	k := twin.IntN(m.cw)
	start := end.Add(cfg.PropDelay + cfg.IFS)
	wantDeadline(t, m, start.Add(slots(cfg, k)))
	if k < 3 {
		t.Fatalf("the seed draws %d: pick one that draws at least 3", k)
	}
	// Another's frame that began two slots into the countdown arrives
	// PropDelay later: two slots counted, not three.
	m.Carrier(start.Add(slots(cfg, 2)+cfg.PropDelay), true)
	m.Carrier(start.Add(slots(cfg, 2)+cfg.PropDelay+time.Second), false)
	idle := start.Add(slots(cfg, 2) + cfg.PropDelay + time.Second)
	wantDeadline(t, m, idle.Add(cfg.IFS+slots(cfg, k-2)))
}

func TestBurst(t *testing.T) {
	cfg := adaptiveConfig()
	cfg.Burst = 3
	m, _ := newPair(t, cfg, 5)
	for _, f := range []string{"a", "b", "c", "d"} {
		mustEnqueue(t, m, t0, []byte(f))
	}
	d, _ := m.Deadline()
	wantSend(t, m, d, "a")
	now := d.Add(time.Second)
	m.TxDone(now)
	mustEnqueue(t, m, now, []byte("e"))
	// The burst goes on at once: no IFS, no backoff.
	wantDeadline(t, m, now)
	wantSend(t, m, now, "b")
	now = now.Add(time.Second)
	m.TxDone(now)
	wantSend(t, m, now, "c")
	now = now.Add(time.Second)
	m.TxDone(now)
	// Three frames: contend again.
	if d, _ := m.Deadline(); d.Before(now.Add(cfg.PropDelay + cfg.IFS)) {
		t.Fatalf("fourth frame due %v after the third, before IFS", d.Sub(now))
	}
	d, _ = m.Deadline()
	wantSend(t, m, d, "d")
	// Another's carrier on at TxDone ends the burst.
	m.Carrier(d.Add(time.Millisecond), true)
	now = d.Add(time.Second)
	m.TxDone(now)
	if _, ok := m.Deadline(); ok {
		t.Fatal("deadline while the carrier is on")
	}
	m.Carrier(now.Add(time.Millisecond), false)
	if d, _ := m.Deadline(); d.Before(now.Add(time.Millisecond + cfg.IFS)) {
		t.Fatalf("after another's carrier the frame is due %v later, before IFS", d.Sub(now))
	}
	if got := m.Stats().Burst; got != 2 {
		t.Errorf("Stats().Burst = %d, want 2", got)
	}
}

// TestBurstPastReservedAck: the Ack the channel was reserved for does not
// end a burst; the next frame goes as soon as the Ack is over, without IFS
// or backoff. Before, every Ack ended the burst, so a link with ARQ never
// sent one (bench -protocol link -burst 4 gave the figures of -burst 1).
func TestBurstPastReservedAck(t *testing.T) {
	cfg := adaptiveConfig()
	cfg.Burst = 3
	m, _ := newPair(t, cfg, 5)
	for _, f := range []string{"a", "b", "c", "d"} {
		mustEnqueue(t, m, t0, []byte(f))
	}
	now, _ := m.Deadline()
	for i, f := range []string{"a", "b", "c"} {
		wantSend(t, m, now, f)
		m.Reserve(now, now.Add(2*time.Second)) // the link waits for the Ack
		now = now.Add(time.Second)
		m.TxDone(now)
		// The receiver's Ack, inside the reservation.
		m.Carrier(now.Add(time.Millisecond), true)
		now = now.Add(10 * time.Millisecond)
		m.Carrier(now, false)
		m.Reserve(now, now) // the Ack came
		if i == 2 {
			break
		}
		if d, ok := m.Deadline(); !ok || !d.Equal(now) {
			t.Fatalf("frame %d of the burst due %v after the Ack (ok %v), want at once", i+2, d.Sub(now), ok)
		}
	}
	// Three frames: contend again.
	if d, _ := m.Deadline(); d.Before(now.Add(cfg.IFS)) {
		t.Fatalf("fourth frame due %v after the third's Ack, before IFS", d.Sub(now))
	}
	if got := m.Stats().Burst; got != 2 {
		t.Errorf("Stats().Burst = %d, want 2", got)
	}
}

func TestMeasuredDelay(t *testing.T) {
	cfg := adaptiveConfig() // delay 5 ms, slot 10 ms
	m, _ := newPair(t, cfg, 6)
	for _, tc := range []struct {
		desc      string
		d         time.Duration
		changed   bool
		wantDelay time.Duration
	}{
		{"shorter: kept", time.Millisecond, false, 5 * time.Millisecond},
		{"negative: kept", -time.Hour, false, 5 * time.Millisecond},
		{"longer: taken", 12 * time.Millisecond, true, 12 * time.Millisecond},
		{"a jump: at most double plus a slot", time.Second, true, 24*time.Millisecond + 17*time.Millisecond},
		{"impossible: clamped, in steps", time.Hour, true, 2*41*time.Millisecond + 46*time.Millisecond},
	} {
		if got := m.MeasuredDelay(tc.d); got != tc.changed {
			t.Errorf("%s: MeasuredDelay(%v) = %v, want %v", tc.desc, tc.d, got, tc.changed)
		}
		c := m.Config()
		if c.PropDelay != tc.wantDelay {
			t.Errorf("%s: delay %v, want %v", tc.desc, c.PropDelay, tc.wantDelay)
		}
		if c.SlotTime-c.PropDelay != cfg.SlotTime-cfg.PropDelay || c.IFS-c.PropDelay != cfg.IFS-cfg.PropDelay {
			t.Errorf("%s: slot %v and IFS %v do not follow the delay %v", tc.desc, c.SlotTime, c.IFS, c.PropDelay)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", tc.desc, err)
		}
	}
	for range 100 {
		m.MeasuredDelay(time.Hour)
	}
	if c := m.Config(); c.PropDelay != MaxPropDelay {
		t.Errorf("after many: delay %v, want the maximum %v", c.PropDelay, MaxPropDelay)
	}
}

func TestAdaptiveCycleAllocs(t *testing.T) {
	m, _ := newPair(t, adaptiveConfig(), 1)
	frame := make([]byte, 100)
	now := t0
	if n := testing.AllocsPerRun(1000, func() {
		now = cycle(m, now, frame)
		m.Carrier(now, true)
		now = now.Add(time.Second)
		m.Carrier(now, false)
	}); n != 0 {
		t.Errorf("adaptive Enqueue/Poll/TxDone/Carrier cycle allocates %v times", n)
	}
}

// With the adaptive window, Contenders(0) (the link layer heard nobody else
// sending) makes a lone sender draw from [0, 2·CWMin): it pauses IFS plus
// under two slots, not about IdleTarget slots. Told of another sender again,
// it draws from the two-sender window, where a newcomer starts, and follows
// the idle slots from there.
func TestAloneSmallWindow(t *testing.T) {
	cfg := adaptiveConfig()
	cfg.IdleTarget = 20
	m, _ := newPair(t, cfg, 1)
	frame := []byte("x")
	now := t0
	var idle time.Duration
	const n = 2000
	for i := range n {
		m.Contenders(0)
		mustEnqueue(t, m, now, frame)
		d, ok := m.Deadline()
		if !ok {
			t.Fatal("no deadline")
		}
		if gap := d.Sub(now) - cfg.PropDelay - cfg.IFS; i > 0 {
			idle += gap
			if gap >= time.Duration(2*cfg.CWMin)*cfg.SlotTime {
				t.Fatalf("frame %d: alone, %v idle after IFS, want under %d slots", i, gap, 2*cfg.CWMin)
			}
		}
		now = d
		if _, ok := m.Poll(now); !ok {
			t.Fatal("nothing sent at the deadline")
		}
		now = now.Add(time.Second)
		m.TxDone(now)
	}
	if mean := float64(idle) / float64(n-1) / float64(cfg.SlotTime); mean > float64(cfg.CWMin) {
		t.Errorf("alone: mean idle %.2f slots, want under %d", mean, cfg.CWMin)
	}
	m.Contenders(1)
	mustEnqueue(t, m, now, frame)
	d, _ := m.Deadline()
	m.Poll(d)
	m.TxDone(d.Add(time.Second))
	if want := int(4 * (cfg.IdleTarget + 1)); m.cw != want {
		t.Errorf("another sender heard: window %d, want the two-sender window %d", m.cw, want)
	}
}

// TestSumBelow: comparing the sum of the last idleBatch gaps with sumBelow's
// threshold is comparing their mean with the target, as nextWindow does, for
// every sum up to far past the targets, at targets ConfigFor gives and at
// awkward ones.
func TestSumBelow(t *testing.T) {
	targets := []float64{0, 0.01, 0.2, 1, 1.9175, 2.24, 6.37, 7.67, 7.6, 0.1 * 3, 999.99, 1000}
	for range 200 {
		targets = append(targets, math.Round(rand.Float64()*100000)/100)
	}
	for _, target := range targets {
		for _, x := range []float64{target, idleStorm * target} {
			lim := sumBelow(x)
			for s := int64(0); s <= 6000; s++ {
				if below := float64(s)/idleBatch < x; below != (s < lim) {
					t.Fatalf("x = %v: sum %d (mean %v) below: %v, sumBelow says %d", x, s, float64(s)/idleBatch, below, lim)
				}
			}
		}
	}
}

// TestEndBurst: EndBurst makes the frame on air the burst's last (the
// link's turn budget, docs/mac.md "A turn for each sender"): the next
// frame contends although Burst allows more.
func TestEndBurst(t *testing.T) {
	cfg := adaptiveConfig()
	cfg.Burst = 4
	m, _ := newPair(t, cfg, 5)
	for _, f := range []string{"a", "b", "c", "d"} {
		mustEnqueue(t, m, t0, []byte(f))
	}
	d, _ := m.Deadline()
	wantSend(t, m, d, "a")
	now := d.Add(time.Second)
	m.TxDone(now)
	wantDeadline(t, m, now) // the burst goes on
	wantSend(t, m, now, "b")
	m.EndBurst()
	now = now.Add(time.Second)
	m.TxDone(now)
	if d, _ := m.Deadline(); d.Before(now.Add(cfg.PropDelay + cfg.IFS)) {
		t.Fatalf("third frame due %v after the second, before IFS: the burst went on", d.Sub(now))
	}
	d, _ = m.Deadline()
	wantSend(t, m, d, "c")
	now = d.Add(time.Second)
	m.TxDone(now)
	wantDeadline(t, m, now) // a new burst: EndBurst ended only the last
	if got := m.Stats().Burst; got != 1 {
		t.Errorf("Stats().Burst = %d, want 1", got)
	}
}

// TestUnobserved: a carrier that begins before the time Unobserved set (an
// Ack we do not hear ends then) leaves no gap for the adaptive window, and
// one that begins later leaves the gap from that time, not from the end of
// the last carrier heard; the countdown counts from that end as before.
func TestUnobserved(t *testing.T) {
	cfg := adaptiveConfig() // slots and IFS of 10 ms, PropDelay 5 ms
	m, _ := newPair(t, cfg, 4)
	m.Contenders(1) // not alone: the window follows the gaps
	mustEnqueue(t, m, t0, []byte("a"))
	// Another's poll ends at t0 + 1 s; the Ack we do not hear ends 30
	// ms later.
	polled := t0.Add(time.Second)
	m.Carrier(polled.Add(-time.Millisecond), true)
	m.Carrier(polled, false)
	m.Unobserved(polled.Add(30 * time.Millisecond))
	n, slotsLeft := m.obsN, m.slots
	// The poller's next frame, 25 ms after its poll (inside the Ack's
	// time): no gap observed; the countdown still counts the 10 ms past
	// IFS less PropDelay (0 whole slots here).
	next := polled.Add(25 * time.Millisecond)
	m.Carrier(next, true)
	if m.obsN != n {
		t.Fatalf("a carrier inside the unheard Ack's time was observed (%d gaps, had %d)", m.obsN, n)
	}
	if m.slots != slotsLeft {
		t.Fatalf("countdown %d slots, want %d", m.slots, slotsLeft)
	}
	m.Carrier(next.Add(time.Second), false)
	// After a frame heard in full, a carrier 65 ms after its end with
	// the channel unobserved until 20 ms after it: the gap counts from
	// then, 45 ms less IFS and PropDelay, 3 slots.
	end := next.Add(time.Second)
	m.Unobserved(end.Add(20 * time.Millisecond))
	n = m.obsN
	at := m.obsAt
	m.Carrier(end.Add(65*time.Millisecond), true)
	if m.obsN != n+1 || m.gaps[at] != 3 {
		t.Fatalf("observed %d gaps (had %d), the last %d slots; want one of 3", m.obsN, n, m.gaps[at])
	}
	m.Carrier(end.Add(2*time.Second), false)
	// With the time Unobserved set behind it, a carrier's gap counts from
	// the end of the last carrier, as before: 50 ms less IFS and
	// PropDelay, 4 slots (rounded to the nearest).
	idle := end.Add(2 * time.Second)
	at = m.obsAt
	m.Carrier(idle.Add(50*time.Millisecond), true)
	if m.gaps[at] != 4 {
		t.Fatalf("gap %d slots after the unobserved time had passed, want 4", m.gaps[at])
	}
}
