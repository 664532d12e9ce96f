package csma

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

// testConfig has round numbers so expected times are easy to read.
func testConfig() Config {
	return Config{
		SlotTime:    10 * time.Millisecond,
		IFS:         25 * time.Millisecond,
		Persistence: 1,
		CWMin:       4,
		CWMax:       32,
		QueueLen:    4,
	}
}

// newPair returns a MAC and a twin generator with the same seed: the test
// replays the MAC's draws on the twin to predict its decisions.
func newPair(t *testing.T, cfg Config, seed uint64) (*MAC, *rand.Rand) {
	t.Helper()
	m, err := New(cfg, rand.New(rand.NewPCG(seed, 99)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, rand.New(rand.NewPCG(seed, 99))
}

func slots(cfg Config, n int) time.Duration { return time.Duration(n) * cfg.SlotTime }

func mustEnqueue(t *testing.T, m *MAC, now time.Time, f []byte) {
	t.Helper()
	if err := m.Enqueue(now, f); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
}

// wantDeadline checks Deadline and that Poll sends nothing just before it.
func wantDeadline(t *testing.T, m *MAC, want time.Time) {
	t.Helper()
	d, ok := m.Deadline()
	if !ok || !d.Equal(want) {
		t.Fatalf("Deadline = %v, %v; want %v, true", d.Sub(t0), ok, want.Sub(t0))
	}
	if f, ok := m.Poll(want.Add(-time.Nanosecond)); ok {
		t.Fatalf("Poll 1ns before the deadline sent %q", f)
	}
}

func wantSend(t *testing.T, m *MAC, now time.Time, want string) {
	t.Helper()
	f, ok := m.Poll(now)
	if !ok || string(f) != want {
		t.Fatalf("Poll(%v) = %q, %v; want %q, true", now.Sub(t0), f, ok, want)
	}
	if !m.Transmitting() {
		t.Fatalf("not transmitting after Poll returned a frame")
	}
	if f, ok := m.Poll(now); ok {
		t.Fatalf("second Poll at the same time sent %q", f)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		modify func(*Config)
		ok     bool
	}{
		{desc: "test config", modify: func(*Config) {}, ok: true},
		{desc: "zero IFS", modify: func(c *Config) { c.IFS = 0 }, ok: true},
		{desc: "CWMin equals CWMax equals 1", modify: func(c *Config) { c.CWMin, c.CWMax = 1, 1 }, ok: true},
		{desc: "zero slot", modify: func(c *Config) { c.SlotTime = 0 }},
		{desc: "negative slot", modify: func(c *Config) { c.SlotTime = -time.Second }},
		{desc: "huge slot", modify: func(c *Config) { c.SlotTime = math.MaxInt64 / 4 }},
		{desc: "negative IFS", modify: func(c *Config) { c.IFS = -1 }},
		{desc: "zero persistence", modify: func(c *Config) { c.Persistence = 0 }},
		{desc: "persistence above 1", modify: func(c *Config) { c.Persistence = 1.01 }},
		{desc: "NaN persistence", modify: func(c *Config) { c.Persistence = math.NaN() }},
		{desc: "zero CWMin", modify: func(c *Config) { c.CWMin = 0 }},
		{desc: "CWMin above CWMax", modify: func(c *Config) { c.CWMin, c.CWMax = 64, 32 }},
		{desc: "CWMax too large", modify: func(c *Config) { c.CWMax = 1 << 20 }},
		{desc: "zero queue", modify: func(c *Config) { c.QueueLen = 0 }},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := testConfig()
			tc.modify(&c)
			err := c.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			if _, err := New(c, rand.New(rand.NewPCG(1, 1))); (err == nil) != tc.ok {
				t.Errorf("New() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := New(testConfig(), nil); err == nil {
		t.Errorf("New with a nil rand source succeeded")
	}
}

func TestDefaultConfig(t *testing.T) {
	for _, rate := range []int{-1, 0, 50, 300, 1200, 9600, 115200, 1_000_000, math.MaxInt32} {
		c := DefaultConfig(rate)
		if err := c.Validate(); err != nil {
			t.Errorf("DefaultConfig(%d) invalid: %v", rate, err)
		}
		if c.SlotTime < maxPropagation {
			t.Errorf("DefaultConfig(%d).SlotTime = %v, shorter than propagation", rate, c.SlotTime)
		}
	}
	if a, b := DefaultConfig(1200), DefaultConfig(9600); a.SlotTime <= b.SlotTime {
		t.Errorf("slot at 1200 bit/s (%v) not longer than at 9600 (%v)", a.SlotTime, b.SlotTime)
	}
}

func TestIdleChannel(t *testing.T) {
	cfg := testConfig()
	for _, tc := range []struct {
		desc      string
		idleSince time.Duration // before t0; the channel was busy before that
		wantStart time.Duration // the countdown starts this long after t0
	}{
		{desc: "idle since long ago: backoff counts from enqueue", idleSince: time.Hour, wantStart: 0},
		{desc: "idle for 5ms: IFS ends 20ms after enqueue", idleSince: 5 * time.Millisecond, wantStart: 20 * time.Millisecond},
		{desc: "went idle at enqueue: full IFS", idleSince: 0, wantStart: cfg.IFS},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			for seed := range uint64(20) {
				m, twin := newPair(t, cfg, seed)
				m.Carrier(t0.Add(-tc.idleSince-time.Second), true)
				m.Carrier(t0.Add(-tc.idleSince), false)
				// The MAC had no frame while busy: no deferral, no draw.
				mustEnqueue(t, m, t0, []byte("a"))
				b := twin.IntN(cfg.CWMin)
				want := t0.Add(tc.wantStart + slots(cfg, b))
				wantDeadline(t, m, want)
				wantSend(t, m, want, "a")
				if _, ok := m.Deadline(); ok {
					t.Errorf("Deadline set while transmitting")
				}
				st := m.Stats()
				if st.Transmitted != 1 || st.Enqueued != 1 || st.Backoffs != uint64(b) || st.Deferrals != 0 {
					t.Errorf("stats = %+v, want 1 enqueued, 1 sent, %d backoff slots, no deferral", st, b)
				}
			}
		})
	}
}

func TestBusyDefersAndResumes(t *testing.T) {
	cfg := testConfig()
	for _, tc := range []struct {
		desc      string
		busyAt    time.Duration // after t0 (enqueue on a long-idle channel)
		busyFor   time.Duration
		minSlots  int // first draw must be at least this for the busy to interrupt it
		wantCount uint64
	}{
		{desc: "busy in the middle of slot 1", busyAt: 15 * time.Millisecond, busyFor: 100 * time.Millisecond, minSlots: 2, wantCount: 1},
		{desc: "busy right at enqueue", busyAt: 0, busyFor: time.Second, minSlots: 1, wantCount: 0},
		{desc: "busy exactly at a slot boundary", busyAt: 20 * time.Millisecond, busyFor: 3 * time.Millisecond, minSlots: 3, wantCount: 2},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tested := 0
			for seed := range uint64(200) {
				m, twin := newPair(t, cfg, seed)
				first := twin.IntN(cfg.CWMin)
				if first < tc.minSlots {
					continue
				}
				tested++
				mustEnqueue(t, m, t0, []byte("a"))
				busy := t0.Add(tc.busyAt)
				m.Carrier(busy, true)
				if _, ok := m.Deadline(); ok {
					t.Fatalf("Deadline set while the carrier is busy")
				}
				// Frozen: nothing goes out while busy, however late.
				for _, d := range []time.Duration{0, slots(cfg, first), tc.busyFor - 1} {
					if f, ok := m.Poll(busy.Add(d)); ok {
						t.Fatalf("Poll while busy sent %q", f)
					}
				}
				idle := busy.Add(tc.busyFor)
				m.Carrier(idle, false)
				// Resumed where it stopped: the slots counted before the
				// busy period are not counted again.
				left := first - int(tc.wantCount)
				want := idle.Add(cfg.IFS + slots(cfg, left))
				wantDeadline(t, m, want)
				wantSend(t, m, want, "a")
				st := m.Stats()
				if st.Deferrals != 1 || st.BusyTime != tc.busyFor || m.cw != cfg.CWMin {
					t.Errorf("deferrals %d busy %v cw %d; want 1, %v, %d", st.Deferrals, st.BusyTime, m.cw, tc.busyFor, cfg.CWMin)
				}
				if st.Backoffs != uint64(first) {
					t.Errorf("backoff slots = %d, want %d", st.Backoffs, first)
				}
			}
			if tested == 0 {
				t.Fatalf("no seed drew at least %d slots", tc.minSlots)
			}
		})
	}
}

// TestWindowFollowsContention: the window after a transmission grows with
// the smoothed number of deferrals per own transmission, doubling per step
// and capped at CWMax, and shrinks back when the others fall silent.
// sendAfterDeferrals queues a frame at now, lets the channel turn busy
// deferrals times while it waits, sends it at its deadline and ends the
// transmission; it returns the time after TxDone.
func sendAfterDeferrals(t *testing.T, m *MAC, now time.Time, deferrals int) time.Time {
	t.Helper()
	mustEnqueue(t, m, now, []byte("a"))
	for range deferrals {
		now = now.Add(time.Millisecond)
		m.Carrier(now, true)
		m.Carrier(now, true) // idempotent
		now = now.Add(100 * time.Millisecond)
		m.Carrier(now, false)
	}
	d, ok := m.Deadline()
	if !ok {
		t.Fatal("no deadline")
	}
	wantSend(t, m, d, "a")
	now = d.Add(10 * time.Millisecond)
	m.TxDone(now)
	return now
}

func TestWindowFollowsContention(t *testing.T) {
	cfg := testConfig() // CWMin 4
	cfg.CWMax = 24      // not a power-of-two multiple of CWMin: capped, not doubled
	m, _ := newPair(t, cfg, 5)
	now := t0
	for i, step := range []struct{ deferrals, cw, hits int }{
		// load = 0.75 load + 0.25 deferrals (0 below 0.1); window: the
		// smallest CWMin·2^j >= CWMin·(1+load), capped at CWMax.
		{4, 8, 0},  // load 1.00
		{4, 16, 0}, // 1.75
		{4, 16, 0}, // 2.31
		{4, 16, 0}, // 2.73
		{4, 24, 1}, // 3.05: 32 wanted, capped
		{4, 24, 2}, // 3.29
		{0, 16, 2}, // 2.47
		{0, 16, 2}, // 1.85
		{0, 16, 2}, // 1.39
		{0, 16, 2}, // 1.04
		{0, 8, 2},  // 0.78
		{0, 8, 2},  // 0.59
		{0, 8, 2},  // 0.44
		{0, 8, 2},  // 0.33
		{0, 8, 2},  // 0.25
		{0, 8, 2},  // 0.19
		{0, 8, 2},  // 0.14
		{0, 8, 2},  // 0.104
		{0, 4, 2},  // 0.078: silent, back to CWMin
	} {
		now = sendAfterDeferrals(t, m, now, step.deferrals)
		if m.cw != step.cw || m.Stats().CWMaxHits != uint64(step.hits) {
			t.Fatalf("cycle %d (%d deferrals): cw %d hits %d; want %d, %d", i, step.deferrals, m.cw, m.Stats().CWMaxHits, step.cw, step.hits)
		}
	}
}

// TestWindowFollowsContenders: once the caller says how many others send,
// the window follows that count and ignores the deferrals the node hears;
// Contenders(-1) hands the window back to the deferral estimate.
func TestWindowFollowsContenders(t *testing.T) {
	cfg := testConfig() // CWMin 4, CWPerSender 0: 4 slots a sender
	cfg.CWMax = 64
	m, _ := newPair(t, cfg, 6)
	now := t0
	for i, step := range []struct{ others, deferrals, cw int }{
		{1, 0, 8},   // 4 + 4·1 = 8, deferrals or not
		{1, 6, 8},   // a node that falls behind hears more: same window
		{1, 6, 8},   //
		{3, 0, 16},  // 4 + 12 = 16
		{20, 0, 64}, // capped
		{0, 6, 4},   // alone, though deferrals were heard
		// Back to the estimate, which kept counting all along (load =
		// 0.75 load + 0.25 deferrals): 0, 1.5, 2.63, 1.97, 1.48, 2.61, now
		// 3.46 → 4 + 13.8 → 32.
		{-1, 6, 32},
		{-5, 0, 16}, // below -1 means -1: load 2.59 → 4 + 10.4 → 16
	} {
		m.Contenders(step.others)
		now = sendAfterDeferrals(t, m, now, step.deferrals)
		if m.cw != step.cw {
			t.Fatalf("step %d (%d others, %d deferrals): cw %d, want %d", i, step.others, step.deferrals, m.cw, step.cw)
		}
	}
}

func TestNextBackoffAfterTransmission(t *testing.T) {
	cfg := testConfig()
	m, twin := newPair(t, cfg, 11)
	mustEnqueue(t, m, t0, []byte("a"))
	mustEnqueue(t, m, t0, []byte("b"))
	twin.IntN(cfg.CWMin)
	m.Carrier(t0, true) // deferral: the window changes only after the transmission
	m.Carrier(t0.Add(time.Second), false)
	d, _ := m.Deadline()
	wantSend(t, m, d, "a")
	if m.cw != cfg.CWMin {
		t.Fatalf("cw = %d before TxDone, want %d", m.cw, cfg.CWMin)
	}
	// A carrier that came and went while transmitting leaves no trace:
	// the node's own frame was on air, so it was no deferral.
	m.Carrier(d.Add(time.Millisecond), true)
	m.Carrier(d.Add(2*time.Millisecond), false)
	m.Carrier(d.Add(3*time.Millisecond), true)
	m.Carrier(d.Add(4*time.Millisecond), false)
	end := d.Add(time.Second)
	m.TxDone(end)
	m.TxDone(end.Add(time.Millisecond)) // no frame on air: no-op
	// One deferral (the reports while on air do not count): load 0.25, so
	// the window is the next doubling above CWMin·1.25.
	if m.cw != 2*cfg.CWMin || m.Len() != 1 || m.Transmitting() {
		t.Fatalf("after TxDone: cw %d len %d transmitting %v; want %d, 1, false", m.cw, m.Len(), m.Transmitting(), 2*cfg.CWMin)
	}
	// A fresh backoff from that window, after IFS, for the next frame.
	b := twin.IntN(2 * cfg.CWMin)
	want := end.Add(cfg.IFS + slots(cfg, b))
	wantDeadline(t, m, want)
	wantSend(t, m, want, "b")
	if st := m.Stats(); st.Deferrals != 1 || st.BusyTime != time.Second {
		t.Errorf("stats %+v: carrier during transmission was not ignored", st)
	}
}

// TestCarrierHeldAcrossTxDone: a carrier that starts while the node's own
// frame is on air, and is still on at its TxDone, keeps the next frame
// back until CarrierOff (phy.go's contract, point 3: the modem reports the
// channel at all times and does not repeat itself after TxDone). The busy
// period counts as a deferral and from TxDone on as busy time; the next
// backoff, drawn at TxDone, counts after CarrierOff and IFS.
func TestCarrierHeldAcrossTxDone(t *testing.T) {
	cfg := testConfig()
	for _, tc := range []struct {
		desc    string
		reports []bool // carrier reports while "a" is on air, 1 ms apart
		busy    bool   // the last one: the channel is busy at TxDone
	}{
		{"on before TxDone", []bool{true}, true},
		{"on, off, on", []bool{true, false, true}, true},
		{"on, off", []bool{true, false}, false},
		{"none", nil, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			m, twin := newPair(t, cfg, 5)
			mustEnqueue(t, m, t0, []byte("a"))
			mustEnqueue(t, m, t0, []byte("b"))
			first := twin.IntN(cfg.CWMin)
			start := t0.Add(slots(cfg, first))
			wantSend(t, m, start, "a")
			for i, on := range tc.reports {
				m.Carrier(start.Add(time.Duration(i+1)*time.Millisecond), on)
			}
			end := start.Add(time.Second)
			m.TxDone(end)
			second := twin.IntN(cfg.CWMin) // the others were silent before: CWMin
			if !tc.busy {
				want := end.Add(cfg.IFS + slots(cfg, second))
				wantDeadline(t, m, want)
				wantSend(t, m, want, "b")
				if st := m.Stats(); st.Deferrals != 0 || st.BusyTime != 0 {
					t.Errorf("stats %+v: want no deferral, no busy time", st)
				}
				return
			}
			if d, ok := m.Deadline(); ok {
				t.Fatalf("Deadline %v set while the carrier is on", d.Sub(t0))
			}
			for _, after := range []time.Duration{0, cfg.IFS + slots(cfg, cfg.CWMax), time.Hour - 1} {
				if f, ok := m.Poll(end.Add(after)); ok {
					t.Fatalf("Poll %v after TxDone sent %q while the carrier is on", after, f)
				}
			}
			off := end.Add(time.Hour)
			m.Carrier(off, false)
			want := off.Add(cfg.IFS + slots(cfg, second))
			wantDeadline(t, m, want)
			wantSend(t, m, want, "b")
			if st := m.Stats(); st.Deferrals != 1 || st.BusyTime != time.Hour {
				t.Errorf("stats %+v: want 1 deferral and an hour busy", st)
			}
		})
	}
}

func TestPersistence(t *testing.T) {
	for _, tc := range []struct {
		desc string
		p    float64
	}{
		{desc: "p=1 sends at the end of the backoff", p: 1},
		{desc: "p=0.3 waits whole slots", p: 0.3},
		{desc: "p=0.9", p: 0.9},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := testConfig()
			cfg.Persistence = tc.p
			var persisted uint64
			for seed := range uint64(50) {
				m, twin := newPair(t, cfg, seed)
				mustEnqueue(t, m, t0, []byte("a"))
				want := t0.Add(slots(cfg, twin.IntN(cfg.CWMin)))
				for i := 0; ; i++ {
					if i > 1000 {
						t.Fatalf("no transmission after 1000 slots")
					}
					wantDeadline(t, m, want)
					if tc.p < 1 && twin.Float64() >= tc.p {
						if f, ok := m.Poll(want); ok {
							t.Fatalf("Poll sent %q where the twin says wait", f)
						}
						if f, ok := m.Poll(want); ok { // idempotent
							t.Fatalf("repeated Poll sent %q", f)
						}
						persisted++
						want = want.Add(cfg.SlotTime)
						continue
					}
					wantSend(t, m, want, "a")
					break
				}
				if got := m.Stats().Persisted; tc.p == 1 && got != 0 {
					t.Fatalf("p=1 waited %d persistence slots", got)
				}
			}
			if tc.p < 0.5 && persisted == 0 {
				t.Errorf("p=%v never waited a persistence slot in 50 runs", tc.p)
			}
		})
	}
}

func TestLatePoll(t *testing.T) {
	cfg := testConfig()
	cfg.Persistence = 0.5
	m, twin := newPair(t, cfg, 3)
	mustEnqueue(t, m, t0, []byte("a"))
	d := t0.Add(slots(cfg, twin.IntN(cfg.CWMin)))
	// Poll 3.5 slots late: one draw; if it fails, the next slot boundary
	// after now is the deadline.
	late := d.Add(35 * time.Millisecond)
	for twin.Float64() >= cfg.Persistence {
		if _, ok := m.Poll(late); ok {
			t.Fatalf("late Poll sent where the twin says wait")
		}
		next, ok := m.Deadline()
		if want := late.Add(5 * time.Millisecond); !ok || !next.Equal(want) {
			t.Fatalf("deadline after a late Poll = %v, want %v", next.Sub(t0), want.Sub(t0))
		}
		late = next.Add(35 * time.Millisecond)
	}
	wantSend(t, m, late, "a")
}

func TestQueue(t *testing.T) {
	cfg := testConfig() // QueueLen 4
	m, _ := newPair(t, cfg, 1)
	if _, ok := m.DropOldest(); ok {
		t.Fatalf("DropOldest on an empty queue returned a frame")
	}
	for _, f := range []string{"a", "b", "c", "d"} {
		mustEnqueue(t, m, t0, []byte(f))
	}
	if err := m.Enqueue(t0, []byte("e")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Enqueue on a full queue = %v, want ErrQueueFull", err)
	}
	if m.Room() != 0 || m.Len() != 4 || m.Stats().Rejected != 1 {
		t.Fatalf("room %d len %d rejected %d; want 0, 4, 1", m.Room(), m.Len(), m.Stats().Rejected)
	}
	d, _ := m.Deadline()
	wantSend(t, m, d, "a")
	// The frame on air ("a") is never dropped.
	for _, want := range []string{"b", "c"} {
		f, ok := m.DropOldest()
		if !ok || string(f) != want {
			t.Fatalf("DropOldest = %q, %v; want %q", f, ok, want)
		}
	}
	mustEnqueue(t, m, d, []byte("e"))
	mustEnqueue(t, m, d, []byte("f"))
	if err := m.Enqueue(d, []byte("g")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Enqueue = %v, want ErrQueueFull (the frame on air counts)", err)
	}
	if f, ok := m.DropOldest(); !ok || string(f) != "d" {
		t.Fatalf("DropOldest = %q, %v; want d", f, ok)
	}
	m.TxDone(d.Add(time.Second))
	// FIFO order survives the drops: e, f.
	for _, want := range []string{"e", "f"} {
		d, ok := m.Deadline()
		if !ok {
			t.Fatalf("no deadline with %d frames queued", m.Len())
		}
		wantSend(t, m, d, want)
		m.TxDone(d.Add(time.Second))
	}
	// Only the on-air frame left: DropOldest refuses.
	mustEnqueue(t, m, t0.Add(time.Hour), []byte("h"))
	d, _ = m.Deadline()
	wantSend(t, m, d, "h")
	if f, ok := m.DropOldest(); ok {
		t.Fatalf("DropOldest returned %q, the frame on air", f)
	}
	if m.Len() != 1 || m.Room() != 3 {
		t.Fatalf("len %d room %d, want 1, 3", m.Len(), m.Room())
	}
	m.TxDone(d.Add(time.Second))
	if _, ok := m.Deadline(); ok || m.Len() != 0 {
		t.Fatalf("empty MAC has a deadline or frames (len %d)", m.Len())
	}
	if st := m.Stats(); st.Dropped != 3 || st.Enqueued != 7 || st.Transmitted != 4 {
		t.Errorf("stats %+v; want 3 dropped, 7 enqueued, 4 transmitted", st)
	}
}

func TestEnqueueWhileBusy(t *testing.T) {
	cfg := testConfig()
	m, twin := newPair(t, cfg, 8)
	m.Carrier(t0, true)
	mustEnqueue(t, m, t0.Add(time.Millisecond), []byte("a"))
	if st := m.Stats(); st.Deferrals != 1 || m.cw != cfg.CWMin {
		t.Fatalf("enqueue on a busy channel: deferrals %d cw %d; want 1, %d", st.Deferrals, m.cw, cfg.CWMin)
	}
	b := twin.IntN(cfg.CWMin)
	idle := t0.Add(time.Second)
	m.Carrier(idle, false)
	wantDeadline(t, m, idle.Add(cfg.IFS+slots(cfg, b)))
}

// script drives a MAC with a random sequence of inputs, calling Poll after
// each input and at deadlines as the daemon does, and checks invariants. It
// returns the times at which frames went on air.
func script(t *testing.T, m *MAC, r *rand.Rand, steps int) []time.Duration {
	t.Helper()
	now := t0
	var sent []time.Duration
	onAirUntil := time.Time{}
	for range steps {
		// Advance to the next deadline, or by a random amount.
		if d, ok := m.Deadline(); ok && r.IntN(2) == 0 {
			now = d
		} else {
			now = now.Add(time.Duration(r.IntN(200)) * time.Millisecond)
		}
		switch r.IntN(6) {
		case 0, 1:
			room := m.Room()
			err := m.Enqueue(now, []byte("x"))
			if (room == 0) != errors.Is(err, ErrQueueFull) || (room > 0 && err != nil) {
				t.Fatalf("Enqueue: %v with room %d", err, room)
			}
		case 2:
			m.Carrier(now, r.IntN(2) == 0)
		case 3:
			if m.Transmitting() && !now.Before(onAirUntil) {
				m.TxDone(now)
			}
		case 4:
			if r.IntN(4) == 0 {
				m.DropOldest()
			}
		}
		if f, ok := m.Poll(now); ok {
			if string(f) != "x" {
				t.Fatalf("Poll returned %q", f)
			}
			sent = append(sent, now.Sub(t0))
			onAirUntil = now.Add(50 * time.Millisecond)
		}
		if _, ok := m.Poll(now); ok {
			t.Fatalf("Poll not idempotent at %v", now.Sub(t0))
		}
		if m.Len()+m.Room() != m.cfg.QueueLen || m.Len() < 0 {
			t.Fatalf("len %d + room %d != %d", m.Len(), m.Room(), m.cfg.QueueLen)
		}
		d, ok := m.Deadline()
		waiting := m.Len() > 0 && !m.Transmitting() && !m.busy
		if ok != waiting {
			t.Fatalf("Deadline ok = %v with len %d transmitting %v busy %v", ok, m.Len(), m.Transmitting(), m.busy)
		}
		if ok && !d.After(now) {
			t.Fatalf("Deadline %v not after the last event %v", d.Sub(t0), now.Sub(t0))
		}
		if m.cw < m.cfg.CWMin || m.cw > m.cfg.CWMax || m.slots < 0 || m.slots >= m.cfg.CWMax {
			t.Fatalf("cw %d slots %d out of range", m.cw, m.slots)
		}
	}
	return sent
}

func TestInvariantsAndDeterminism(t *testing.T) {
	for _, p := range []float64{1, 0.4} {
		cfg := testConfig()
		cfg.Persistence = p
		for seed := range uint64(10) {
			m1, _ := newPair(t, cfg, seed)
			m2, _ := newPair(t, cfg, seed)
			a := script(t, m1, rand.New(rand.NewPCG(seed, 1)), 2000)
			b := script(t, m2, rand.New(rand.NewPCG(seed, 1)), 2000)
			if len(a) == 0 {
				t.Fatalf("seed %d: nothing sent", seed)
			}
			if len(a) != len(b) || m1.Stats() != m2.Stats() {
				t.Fatalf("seed %d: runs differ: %d vs %d frames, %+v vs %+v", seed, len(a), len(b), m1.Stats(), m2.Stats())
			}
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("seed %d: frame %d sent at %v and %v", seed, i, a[i], b[i])
				}
			}
		}
	}
}

func TestCycleAllocs(t *testing.T) {
	m, _ := newPair(t, DefaultConfig(115200), 1)
	frame := make([]byte, 1050)
	now := t0
	if n := testing.AllocsPerRun(1000, func() { now = cycle(m, now, frame) }); n != 0 {
		t.Errorf("Enqueue/Poll/TxDone cycle allocates %v times", n)
	}
}

// cycle queues one frame, polls at its deadline and completes it.
func cycle(m *MAC, now time.Time, frame []byte) time.Time {
	if err := m.Enqueue(now, frame); err != nil {
		panic(err)
	}
	if d, ok := m.Deadline(); ok {
		now = d
	}
	if _, ok := m.Poll(now); !ok {
		panic("no frame at the deadline")
	}
	now = now.Add(time.Millisecond)
	m.TxDone(now)
	return now
}

func BenchmarkCycle(b *testing.B) {
	m, err := New(DefaultConfig(115200), rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, 1050)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = cycle(m, now, frame)
	}
}

func BenchmarkPollIdle(b *testing.B) {
	m, err := New(DefaultConfig(115200), rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Enqueue(t0, make([]byte, 100)); err != nil {
		b.Fatal(err)
	}
	m.Carrier(t0, true)
	m.Carrier(t0.Add(time.Millisecond), false)
	b.ReportAllocs()
	for b.Loop() {
		m.Poll(t0.Add(time.Millisecond)) // in IFS: nothing to send
	}
}

func TestEnqueueFront(t *testing.T) {
	cfg := testConfig() // QueueLen 4, IFS 25ms, slot 10ms
	m, _ := newPair(t, cfg, 3)
	mustEnqueue(t, m, t0, []byte("a"))
	mustEnqueue(t, m, t0, []byte("b"))
	// An urgent frame goes at once on an idle channel: no IFS, no backoff.
	if err := m.EnqueueFront(t0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if d, ok := m.Deadline(); !ok || d.After(t0) {
		t.Fatalf("Deadline with an urgent frame = %v, %v; want now", d.Sub(t0), ok)
	}
	wantSend(t, m, t0, "x")
	// Behind the frame on air, in front of the data; the queue still bounds.
	if err := m.EnqueueFront(t0, []byte("y")); err != nil {
		t.Fatal(err)
	}
	if err := m.EnqueueFront(t0, []byte("z")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("EnqueueFront on a full queue = %v, want ErrQueueFull", err)
	}
	if f, ok := m.DropOldest(); !ok || string(f) != "a" {
		t.Fatalf("DropOldest = %q, %v; want the oldest data frame a, not the urgent y", f, ok)
	}
	t1 := t0.Add(time.Second)
	m.TxDone(t1)
	wantSend(t, m, t1, "y") // the moment the channel is ours again
	// After the urgent frame the data frame draws a fresh backoff, counted
	// after IFS, and the contention estimate is untouched.
	t2 := t1.Add(time.Second)
	m.TxDone(t2)
	d, ok := m.Deadline()
	if !ok || d.Before(t2.Add(cfg.IFS)) || d.After(t2.Add(cfg.IFS+slots(cfg, cfg.CWMin))) {
		t.Fatalf("data deadline %v after the urgent frame left at %v; want IFS plus a backoff of at most CWMin slots", d.Sub(t0), t2.Sub(t0))
	}
	// An urgent frame on a busy channel waits for the carrier to drop, then
	// goes at once; waiting does not count as a deferral.
	m.Carrier(t2, true)
	before := m.Stats().Deferrals
	if err := m.EnqueueFront(t2, []byte("w")); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Deadline(); ok {
		t.Fatal("deadline while the carrier is busy")
	}
	t3 := t2.Add(50 * time.Millisecond)
	m.Carrier(t3, false)
	wantSend(t, m, t3, "w")
	m.TxDone(t3.Add(time.Second))
	d, _ = m.Deadline()
	wantSend(t, m, d, "b")
	m.TxDone(d.Add(time.Second))
	st := m.Stats()
	if st.Urgent != 3 || st.Transmitted != 4 || st.Dropped != 1 || st.Deferrals != before {
		t.Errorf("stats %+v; want 3 urgent, 4 transmitted, 1 dropped, %d deferrals", st, before)
	}
	// With only urgent frames waiting the carrier changes nothing either.
	if err := m.EnqueueFront(t3.Add(time.Hour), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if m.Len() != 1 || m.Room() != 3 {
		t.Fatalf("len %d room %d, want 1, 3", m.Len(), m.Room())
	}
	m.Carrier(t3.Add(time.Hour), true)
	if got := m.Stats().Deferrals; got != st.Deferrals {
		t.Errorf("deferrals %d → %d: a busy channel with only an urgent frame waiting counted as a deferral", st.Deferrals, got)
	}
}

// TestReplaceUrgent: a frame replaces the first matching urgent frame in
// its place, never the frame on air nor a data frame, and the queue's
// length and counters stay as they were.
func TestReplaceUrgent(t *testing.T) {
	m, _ := newPair(t, testConfig(), 3) // QueueLen 4
	mustEnqueue(t, m, t0, []byte("d1"))
	for _, f := range []string{"a1", "b1"} {
		if err := m.EnqueueFront(t0, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	wantSend(t, m, t0, "a1") // on air: never replaced
	if err := m.EnqueueFront(t0, []byte("a2")); err != nil {
		t.Fatal(err)
	}
	prefix := func(p string) func([]byte) bool {
		return func(f []byte) bool { return len(f) > 0 && f[0] == p[0] }
	}
	if old, ok := m.ReplaceUrgent(prefix("d"), []byte("d2")); ok {
		t.Fatalf("a data frame (%q) was replaced", old)
	}
	old, ok := m.ReplaceUrgent(prefix("a"), []byte("a3"))
	if !ok || string(old) != "a2" {
		t.Fatalf("ReplaceUrgent = %q, %v; want the waiting a2, not a1 on air", old, ok)
	}
	before := m.Stats()
	if m.Len() != 4 {
		t.Fatalf("len %d after a replacement, want 4", m.Len())
	}
	t1 := t0.Add(time.Second)
	m.TxDone(t1)
	wantSend(t, m, t1, "b1") // the order of the urgent frames is kept
	m.TxDone(t1)
	wantSend(t, m, t1, "a3")
	if st := m.Stats(); st.Enqueued != before.Enqueued || st.Urgent != before.Urgent {
		t.Errorf("counters moved on a replacement: %+v, then %+v", before, st)
	}
}

// TestReserve: a reservation holds data frames back until it ends (or is
// ended), and a carrier that starts inside it is not counted as a competing
// sender; one that starts after it is.
func TestReserve(t *testing.T) {
	cfg := testConfig()
	m, _ := newPair(t, cfg, 5)
	mustEnqueue(t, m, t0, []byte("a"))
	d, _ := m.Deadline()
	until := d.Add(time.Second)
	m.Reserve(t0, until)
	wantDeadline(t, m, until)
	// The answer comes: busy inside the reservation, no deferral.
	m.Carrier(d, true)
	if st := m.Stats(); st.Deferrals != 0 || st.Reserved != 1 {
		t.Fatalf("stats %+v: want the answer counted as reserved, not as a deferral", st)
	}
	end := d.Add(100 * time.Millisecond)
	m.Carrier(end, false)
	m.Reserve(end, end) // the answer has come: the reservation ends early
	got, ok := m.Deadline()
	if !ok || got.Before(end.Add(cfg.IFS)) || got.After(until) {
		t.Fatalf("deadline %v after the reservation ended at %v", got.Sub(t0), end.Sub(t0))
	}
	// Urgent frames ignore a reservation.
	m.Reserve(end, end.Add(time.Hour))
	if err := m.EnqueueFront(end, []byte("u")); err != nil {
		t.Fatal(err)
	}
	wantSend(t, m, end, "u")
	m.TxDone(end.Add(time.Millisecond))
	m.Reserve(end, end)
	// A carrier after the reservation is a competitor again.
	m.Carrier(end.Add(time.Second), true)
	if st := m.Stats(); st.Deferrals != 1 {
		t.Fatalf("stats %+v: want one deferral", st)
	}
}

// TestUrgentKeepsCountdown: an urgent frame sent in the middle of a data
// frame's backoff leaves that countdown where it was: after the urgent
// frame, the data frame waits IFS and only the slots it had left. (A fresh
// draw there let a node that acknowledges the other's every frame never
// send its own: one direction of the demo got nothing through.)
func TestUrgentKeepsCountdown(t *testing.T) {
	cfg := testConfig() // IFS 25ms, slot 10ms, CWMin 4
	cfg.CWMin, cfg.CWMax = 16, 64
	var m *MAC
	var slotsDrawn int
	for seed := uint64(1); ; seed++ {
		var twin *rand.Rand
		m, twin = newPair(t, cfg, seed)
		if slotsDrawn = twin.IntN(cfg.CWMin); slotsDrawn >= 4 {
			break
		}
	}
	mustEnqueue(t, m, t0, []byte("data")) // idle since long ago: counts from t0
	wantDeadline(t, m, t0.Add(slots(cfg, slotsDrawn)))
	at := t0.Add(slots(cfg, 2)) // two slots have run
	if err := m.EnqueueFront(at, []byte("ack")); err != nil {
		t.Fatal(err)
	}
	wantSend(t, m, at, "ack")
	done := at.Add(5 * time.Millisecond)
	m.TxDone(done)
	wantDeadline(t, m, done.Add(cfg.IFS+slots(cfg, slotsDrawn-2)))
	wantSend(t, m, done.Add(cfg.IFS+slots(cfg, slotsDrawn-2)), "data")
}
