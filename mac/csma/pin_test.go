package csma

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"testing"
	"time"
)

// pinTrace drives a MAC with a random sequence of every input (each kind of
// enqueue, carrier reports on and off, also while on air, TxDone, Follow,
// ReplaceUrgent, DropOldest, Reserve, Contenders, MeasuredDelay), its clock
// starting at origin and stepping by fractions and multiples of a slot,
// polling after each input and at deadlines as the drivers do. It returns a
// hash of everything the MAC answered: every Poll and Follow (the frame and
// when), every Deadline (as an offset from origin), Queued, Len, the
// counters and the timing it ends with; and at every step the window and
// the countdown's slots. check, if not nil, looks at the MAC after every
// step, with what Deadline returned.
func pinTrace(cfg Config, origin time.Time, seed uint64, steps int, check func(m *MACOf[int], d time.Time, ok bool)) string {
	m, err := NewOf[int](cfg, rand.New(rand.NewPCG(seed, 7)))
	if err != nil {
		panic(err)
	}
	r := rand.New(rand.NewPCG(seed, 8))
	h := fnv.New64a()
	now := origin
	slot := cfg.SlotTime
	id := 0
	carrier := false
	var onAirUntil time.Time
	if origin.Before(time.Time{}) {
		// The channel was idle since the zero time: make it idle since
		// before it, so that the countdowns count from there.
		m.Carrier(origin, true)
		m.Carrier(origin.Add(slot), false)
	}
	for range steps {
		if d, ok := m.Deadline(); ok && r.IntN(3) > 0 {
			now = d
		} else {
			switch r.IntN(7) {
			case 0: // within a slot, to the ns
				now = now.Add(time.Duration(r.Int64N(int64(slot))))
			case 1: // a few slots
				now = now.Add(time.Duration(r.IntN(8)) * slot)
			case 2: // a frame's time
				now = now.Add(time.Duration(10+r.IntN(20)) * slot)
			case 3: // half slots and delays, to a boundary or 1 ns off it
				now = now.Add(time.Duration(r.IntN(8))*(slot/2) + time.Duration(r.IntN(3))*cfg.PropDelay + time.Duration(r.IntN(3)-1))
			case 4, 5: // to IFS and a few slots after the carrier dropped
				now = now.Add(cfg.IFS + time.Duration(r.IntN(3))*cfg.PropDelay + time.Duration(r.IntN(6))*(slot/2) + time.Duration(r.IntN(3)-1))
			}
		}
		k := r.IntN(24)
		if m.Transmitting() && !now.Before(onAirUntil) && r.IntN(4) > 0 {
			k = 15 // TxDone
		}
		switch {
		case k < 6:
			id++
			err := m.EnqueueFlowCost(now, id, uint64(r.IntN(4)), r.IntN(3))
			fmt.Fprintf(h, "e%d %v;", id, err)
		case k < 7:
			id++
			fmt.Fprintf(h, "u%d %v;", id, m.EnqueueFront(now, id))
		case k < 15:
			if r.IntN(6) > 0 {
				carrier = !carrier
			}
			m.Carrier(now, carrier)
		case k < 18:
			if m.Transmitting() && !now.Before(onAirUntil) || r.IntN(4) == 0 {
				for r.IntN(3) == 0 {
					f, ok := m.Follow(now, func(f int) bool { return f%5 != 0 })
					fmt.Fprintf(h, "f%d %v;", f, ok)
				}
				m.TxDone(now)
			}
		case k < 19 && seed%3 != 2: // one trace in three never reserves, as the simulator
			until := now.Add(time.Duration(r.IntN(40)) * slot / 4)
			if r.IntN(4) == 0 {
				until = now
			}
			m.Reserve(now, until)
		case k < 20:
			if r.IntN(4) == 0 {
				m.Contenders(r.IntN(4) - 1)
			}
			if r.IntN(16) == 0 {
				fmt.Fprintf(h, "md%v;", m.MeasuredDelay(time.Duration(r.Int64N(int64(4*cfg.PropDelay+slot)))))
			}
		case k < 21:
			f, ok := m.DropOldest()
			fmt.Fprintf(h, "d%d %v;", f, ok)
		case k < 22:
			id++
			old, ok := m.ReplaceUrgent(func(f int) bool { return f%2 == 0 }, id)
			fmt.Fprintf(h, "r%d %d %v;", id, old, ok)
		default:
			fmt.Fprintf(h, "q%v%v;", m.Queued(0), m.Queued(1))
		}
		if r.IntN(5) == 0 {
			d, ok := m.Deadline() // before Poll, as simbench asks
			fmt.Fprintf(h, "B%d %v;", d.Sub(origin), ok)
		}
		if f, ok := m.Poll(now); ok {
			fmt.Fprintf(h, "p%d@%d;", f, now.Sub(origin))
			onAirUntil = now.Add(time.Duration(1+r.IntN(12)) * slot)
		}
		d, ok := m.Deadline()
		fmt.Fprintf(h, "D%d %v %d;", d.Sub(origin), ok, m.Len())
		if check != nil {
			check(m, d, ok)
		}
		// The window and the countdown, which the outputs show only
		// now and then.
		fmt.Fprintf(h, "w%v %d %d %v;", m.cwf, m.cw, m.slots, m.gaps)
	}
	fmt.Fprintf(h, "%+v %+v", m.Stats(), m.Config())
	return fmt.Sprintf("%016x", h.Sum64())
}

// pinConfigs are MACs of each kind: the adaptive window on radio timing,
// with bursts at a long delay, with lone bursts, and the deferral rule with
// persistence below 1 and with a window that hits its cap.
func pinConfigs() map[string]Config {
	acoustic := ConfigFor(Channel{BitRate: 500, PropDelay: 400 * time.Millisecond, FrameBytes: 64})
	lone := ConfigFor(Channel{BitRate: 9600, PropDelay: time.Millisecond, CarrierAtArrival: true, FrameBytes: 100})
	lone.LoneBurst = 8
	lone.QueueLen = 6
	fixed := testConfig()
	fixed.Persistence = 0.4
	fixed.CWPerSender = 8
	fixed.CWMax = 256
	capped := testConfig()
	capped.CWMax = 8
	capped.QueueLen = 3
	return map[string]Config{
		"adaptive": DefaultConfig(9600),
		"acoustic": acoustic,
		"lone":     lone,
		"fixed":    fixed,
		"capped":   capped,
	}
}

// TestPinnedTraces: the same inputs give the same outputs, bit for bit, as
// on commit 699352a (before the MAC's times became cheaper to compute, for
// the simulator's speed), on four clocks: one starting at the zero
// time.Time (where "idle since long ago" is the clock's own start), one
// before it, a wall clock without a monotonic reading, and time.Now (with
// one, as the daemon's and the simulator's clocks are). A change here is a
// change of behaviour: say why in its commit.
func TestPinnedTraces(t *testing.T) {
	origins := map[string]time.Time{
		"zero":   {},
		"before": time.Time{}.Add(-10 * time.Second),
		"wall":   time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC),
		"now":    time.Now(),
	}
	want := map[string]string{
		"adaptive/zero/0":   "dc2cfa5556841d2c",
		"adaptive/zero/1":   "7a62b389edb12845",
		"adaptive/zero/2":   "6295eae8bdaaf2cf",
		"adaptive/before/0": "9e0aa0029724e15e",
		"adaptive/before/1": "b27d9d3d92b1afbc",
		"adaptive/before/2": "c7b263cd293b66d4",
		"adaptive/wall/0":   "340f60dea5f99c93",
		"adaptive/wall/1":   "fb32c6252613c5cd",
		"adaptive/wall/2":   "1915335e763ff914",
		"adaptive/now/0":    "340f60dea5f99c93",
		"adaptive/now/1":    "fb32c6252613c5cd",
		"adaptive/now/2":    "1915335e763ff914",
		"acoustic/zero/0":   "dce7e0cfd3e824c2",
		"acoustic/zero/1":   "f2f42f238ae42bb3",
		"acoustic/zero/2":   "5d9791aacb0bcd02",
		"acoustic/before/0": "5bc28fceaf9d1d9c",
		"acoustic/before/1": "46cc7ac510da3731",
		"acoustic/before/2": "7a6d820a46ca0c5e",
		"acoustic/wall/0":   "bf7983969e59fcc3",
		"acoustic/wall/1":   "3ef7397ded121529",
		"acoustic/wall/2":   "e8ef7e881585c12e",
		"acoustic/now/0":    "bf7983969e59fcc3",
		"acoustic/now/1":    "3ef7397ded121529",
		"acoustic/now/2":    "e8ef7e881585c12e",
		"lone/zero/0":       "70b13fc063dd4af9",
		"lone/zero/1":       "cd9a2da1d5c05c65",
		"lone/zero/2":       "be94dd91c3996ffc",
		"lone/before/0":     "11f7d98fb311250b",
		"lone/before/1":     "a5c3992a8a9e20e7",
		"lone/before/2":     "ead0cff8d202c700",
		"lone/wall/0":       "879035557b080a63",
		"lone/wall/1":       "ea5978711f02cd97",
		"lone/wall/2":       "33d9b3842d32be73",
		"lone/now/0":        "879035557b080a63",
		"lone/now/1":        "ea5978711f02cd97",
		"lone/now/2":        "33d9b3842d32be73",
		"fixed/zero/0":      "e9712061987e5765",
		"fixed/zero/1":      "2b8dfe6a6156a8c9",
		"fixed/zero/2":      "8b59c5bc213856b9",
		"fixed/before/0":    "eea68bc244ed5365",
		"fixed/before/1":    "e681200111612376",
		"fixed/before/2":    "c0bf57685b13a660",
		"fixed/wall/0":      "70bd719a962a6a61",
		"fixed/wall/1":      "b441a1cd99974344",
		"fixed/wall/2":      "f844d74eb3eab6bd",
		"fixed/now/0":       "70bd719a962a6a61",
		"fixed/now/1":       "b441a1cd99974344",
		"fixed/now/2":       "f844d74eb3eab6bd",
		"capped/zero/0":     "6659dcb7a4c168d8",
		"capped/zero/1":     "d7b6a617e5fc6aff",
		"capped/zero/2":     "84ade19a4e614f5c",
		"capped/before/0":   "359e409f777143e9",
		"capped/before/1":   "29f1c995ae2c567b",
		"capped/before/2":   "6f5a86c1ef58a8fd",
		"capped/wall/0":     "69b64708ca32ac18",
		"capped/wall/1":     "e00378f3ea670f22",
		"capped/wall/2":     "9d191dee027ac274",
		"capped/now/0":      "69b64708ca32ac18",
		"capped/now/1":      "e00378f3ea670f22",
		"capped/now/2":      "9d191dee027ac274",
	}
	for _, cn := range []string{"adaptive", "acoustic", "lone", "fixed", "capped"} {
		for _, on := range []string{"zero", "before", "wall", "now"} {
			for seed := range uint64(3) {
				key := fmt.Sprintf("%s/%s/%d", cn, on, seed)
				got := pinTrace(pinConfigs()[cn], origins[on], seed, 20000, func(m *MACOf[int], d time.Time, ok bool) {
					// DeadlineSince is Deadline less ref, for any ref.
					for _, ref := range []time.Time{origins[on], origins[on].Add(-time.Hour), {}} {
						if s, sok := m.DeadlineSince(ref); sok != ok || ok && s != d.Sub(ref) {
							t.Fatalf("%s: DeadlineSince(%v) = %v, %v; Deadline() less it %v, %v", key, ref, s, sok, d.Sub(ref), ok)
						}
					}
				})
				if w, ok := want[key]; !ok || got != w {
					t.Errorf("%s: got %s, want %s", key, got, w)
				}
			}
		}
	}
}
