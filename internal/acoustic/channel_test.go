package acoustic

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// write is one input of a script: modem i's serial side got data at at.
type write struct {
	at   time.Duration
	i    int
	data []byte
}

// runScript feeds the writes in order and runs the channel until it has no
// events left (bounded), returning every delivery.
func runScript(t testing.TB, c *Channel, ws []write) []Delivery {
	t.Helper()
	var out []Delivery
	for _, w := range ws {
		out = append(out, c.Write(w.i, w.at, w.data)...)
	}
	for range 1_000_000 {
		next, ok := c.Next()
		if !ok {
			return out
		}
		out = append(out, c.Advance(next)...)
	}
	t.Fatal("channel did not settle")
	return nil
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func to(ds []Delivery, j int) []Delivery {
	var out []Delivery
	for _, d := range ds {
		if d.Modem == j {
			out = append(out, d)
		}
	}
	return out
}

func joined(ds []Delivery) []byte {
	var b []byte
	for _, d := range ds {
		b = append(b, d.Data...)
	}
	return b
}

const (
	sb  = time.Second * 10 / 19200 // a byte at 19200 baud, truncated as the code does
	gap = 20 * sb
	pre = 250 * time.Millisecond
)

func air(n int) time.Duration { return time.Duration(int64(n) * 8 * int64(time.Second) / 2400) }

func twoModems(mode Mode, prop time.Duration) Config {
	mc := ModemConfig{Mode: mode, Baud: 19200, AirRate: 2400, Preamble: pre}
	return Config{Modems: []ModemConfig{mc, mc}, Delay: UniformDelay(2, prop)}
}

// TestPacketTiming: a packet reaches the far serial side at last byte in +
// gap + preamble + airtime + propagation, and the size rule cuts packets at
// MaxPacket without waiting for the gap.
func TestPacketTiming(t *testing.T) {
	tests := []struct {
		desc string
		n    int
		prop time.Duration
		want []time.Duration // At of each delivery to modem 1
		lens []int
	}{
		{
			desc: "64 bytes, 1 s",
			n:    64, prop: time.Second,
			want: []time.Duration{64*sb + gap + pre + air(64) + time.Second},
			lens: []int{64},
		},
		{
			desc: "one byte, no propagation",
			n:    1, prop: 0,
			want: []time.Duration{sb + gap + pre + air(1)},
			lens: []int{1},
		},
		{
			desc: "exactly 256 bytes: the size rule, no gap",
			n:    256, prop: time.Second,
			want: []time.Duration{256*sb + pre + air(256) + time.Second},
			lens: []int{256},
		},
		{
			desc: "300 bytes: 256 then 44 queued behind it",
			n:    300, prop: time.Second,
			want: []time.Duration{
				256*sb + pre + air(256) + time.Second,
				256*sb + pre + air(256) + pre + air(44) + time.Second,
			},
			lens: []int{256, 44},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			c, err := NewChannel(twoModems(Packet, tt.prop))
			if err != nil {
				t.Fatal(err)
			}
			data := pattern(tt.n, 1)
			ds := runScript(t, c, []write{{0, 0, data}})
			got := to(ds, 1)
			if len(got) != len(tt.want) {
				t.Fatalf("%d deliveries, want %d: %+v", len(got), len(tt.want), got)
			}
			for k, d := range got {
				if d.At != tt.want[k] || len(d.Data) != tt.lens[k] {
					t.Errorf("delivery %d: %d bytes at %s, want %d at %s", k, len(d.Data), d.At, tt.lens[k], tt.want[k])
				}
			}
			if !bytes.Equal(joined(got), data) {
				t.Errorf("data differs")
			}
			if len(to(ds, 0)) != 0 {
				t.Errorf("the sender heard itself")
			}
			st0, st1 := c.Stats(0), c.Stats(1)
			if st0.Sent != uint64(len(tt.want)) || st1.Delivered != uint64(len(tt.want)) || st0.BytesIn != uint64(tt.n) {
				t.Errorf("stats %+v / %+v", st0, st1)
			}
		})
	}
}

// TestGapSplitsPackets: bytes written further apart than the gap make two
// packets; closer ones make one.
func TestGapSplitsPackets(t *testing.T) {
	for _, tt := range []struct {
		desc  string
		pause time.Duration // between the end of the first write and the second
		want  int
	}{
		{"pause of exactly the gap: one packet", gap, 1},
		{"pause longer than the gap: two", gap + time.Millisecond, 2},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			c, err := NewChannel(twoModems(Packet, 0))
			if err != nil {
				t.Fatal(err)
			}
			runScript(t, c, []write{{0, 0, pattern(10, 0)}, {10*sb + tt.pause - sb, 0, pattern(10, 50)}})
			if got := c.Stats(0).Sent; got != uint64(tt.want) {
				t.Errorf("%d packets, want %d", got, tt.want)
			}
		})
	}
}

// TestHalfDuplex: a packet that arrives while the receiver transmits is lost
// there; the receiver's own packet still arrives at the other side.
func TestHalfDuplex(t *testing.T) {
	c, err := NewChannel(twoModems(Packet, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	a, b := pattern(40, 1), pattern(40, 2)
	// A's packet is at B from about 0.52 s to 0.9 s; B keys up at 0.6 s.
	ds := runScript(t, c, []write{{0, 0, a}, {600 * time.Millisecond, 1, b}})
	if st := c.Stats(1); st.LostHalfDuplex != 1 || st.Delivered != 0 {
		t.Errorf("B: %+v, want one packet lost to half duplex", st)
	}
	if st := c.Stats(0); st.Delivered != 1 || st.LostHalfDuplex != 0 {
		t.Errorf("A: %+v, want B's packet delivered", st)
	}
	if !bytes.Equal(joined(to(ds, 0)), b) || len(to(ds, 1)) != 0 {
		t.Errorf("deliveries %+v", ds)
	}
}

// TestCollision: two packets that overlap at a receiver are both lost there
// and counted; packets that only touch (one ends as the other starts) are
// both delivered.
func TestCollision(t *testing.T) {
	far := 5 * time.Second
	delay := [][]time.Duration{
		{0, 500 * time.Millisecond, far},
		{500 * time.Millisecond, 0, 500 * time.Millisecond},
		{far, 500 * time.Millisecond, 0},
	}
	mc := ModemConfig{Baud: 19200, AirRate: 2400, Preamble: pre}
	n := 40
	// C's packet starts at B exactly when A's ends: C keys up at
	// n*sb + gap + pre + air(n) after A, having written n bytes.
	touch := pre + air(n)
	for _, tt := range []struct {
		desc      string
		cAt       time.Duration
		collision uint64
	}{
		{"overlap", 100 * time.Millisecond, 2},
		{"touching", touch, 0},
		{"one nanosecond of overlap", touch - 1, 2},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			c, err := NewChannel(Config{Modems: []ModemConfig{mc, mc, mc}, Delay: delay})
			if err != nil {
				t.Fatal(err)
			}
			runScript(t, c, []write{{0, 0, pattern(n, 1)}, {tt.cAt, 2, pattern(n, 3)}})
			st := c.Stats(1)
			if st.LostCollision != tt.collision || st.Delivered != 2-tt.collision {
				t.Errorf("B: %+v, want %d lost to collision", st, tt.collision)
			}
			// A and C are far apart: each hears the other.
			if c.Stats(0).Delivered != 1 || c.Stats(2).Delivered != 1 {
				t.Errorf("A %+v, C %+v", c.Stats(0), c.Stats(2))
			}
		})
	}
}

// TestStreamingTiming: bytes go on air as they arrive, after one preamble,
// and reach the far serial side one by one at the air rate.
func TestStreamingTiming(t *testing.T) {
	prop := time.Second
	c, err := NewChannel(twoModems(Streaming, prop))
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(10, 9)
	ds := runScript(t, c, []write{{0, 0, data}})
	got := to(ds, 1)
	if !bytes.Equal(joined(got), data) {
		t.Fatalf("got %x, want %x", joined(got), data)
	}
	if len(got) != 10 {
		t.Fatalf("%d deliveries, want one per byte (the air is slower than the line)", len(got))
	}
	ab := air(1)
	for k, d := range got {
		// the first byte keys up the modem when it arrives (sb)
		want := sb + pre + time.Duration(k+1)*ab + prop
		if d.At != want {
			t.Errorf("byte %d at %s, want %s", k, d.At, want)
		}
	}
	if c.Stats(0).Sent != 1 || c.Stats(1).Delivered != 1 {
		t.Errorf("stats %+v / %+v", c.Stats(0), c.Stats(1))
	}
	// The first byte arrives long before a packet modem would deliver.
	if pk := 10*sb + gap + pre + air(10) + prop; got[0].At >= pk {
		t.Errorf("streaming first byte at %s, packet mode at %s", got[0].At, pk)
	}
}

// TestStreamingHalfDuplex: a streaming burst that starts arriving while the
// receiver transmits is lost there.
func TestStreamingHalfDuplex(t *testing.T) {
	c, err := NewChannel(twoModems(Streaming, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runScript(t, c, []write{{0, 0, pattern(50, 1)}, {0, 1, pattern(50, 2)}})
	for i := range 2 {
		if st := c.Stats(i); st.LostHalfDuplex != 1 || st.BytesOut != 0 {
			t.Errorf("modem %d: %+v", i, st)
		}
	}
}

// TestStreamingTail: a receiver that keys up after the last byte of a burst
// arrived, while the sender still holds its carrier, loses nothing; one that
// keys up before the last byte loses the rest of the burst.
func TestStreamingTail(t *testing.T) {
	last := sb + pre + 10*air(1) // the last byte's end on air (and at B, prop 0)
	for _, tt := range []struct {
		desc   string
		bKeyUp time.Duration
		lost   bool
	}{
		{"in the hold", last + gap/2, false},
		{"before the last byte", last - air(1)/2, true},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			c, err := NewChannel(twoModems(Streaming, 0))
			if err != nil {
				t.Fatal(err)
			}
			ds := runScript(t, c, []write{{0, 0, pattern(10, 1)}, {tt.bKeyUp - sb, 1, []byte{7}}})
			st := c.Stats(1)
			if tt.lost != (st.LostHalfDuplex == 1) || tt.lost == (st.Delivered == 1) {
				t.Errorf("%+v", st)
			}
			if n := len(joined(to(ds, 1))); tt.lost != (n < 10) {
				t.Errorf("%d bytes delivered", n)
			}
		})
	}
}

// TestErrors: bit errors, drops, queue overflow, serial overrun and garbage
// are applied and counted.
func TestErrors(t *testing.T) {
	t.Run("every bit flipped", func(t *testing.T) {
		cfg := twoModems(Packet, 0)
		cfg.BER = 1
		c, _ := NewChannel(cfg)
		data := pattern(100, 5)
		got := joined(to(runScript(t, c, []write{{0, 0, data}}), 1))
		for k := range data {
			if got[k] != ^data[k] {
				t.Fatalf("byte %d: %x, want %x", k, got[k], ^data[k])
			}
		}
		if c.Stats(1).Corrupted != 100 {
			t.Errorf("corrupted %d, want 100", c.Stats(1).Corrupted)
		}
	})
	t.Run("some bits flipped", func(t *testing.T) {
		cfg := twoModems(Packet, 0)
		cfg.BER = 1e-3
		cfg.Seed = 7
		c, _ := NewChannel(cfg)
		var ws []write
		for k := range 40 {
			ws = append(ws, write{time.Duration(k) * 2 * time.Second, 0, pattern(250, byte(k))})
		}
		runScript(t, c, ws)
		st := c.Stats(1)
		// 80,000 bits at 1e-3: about 80 flips.
		if st.Delivered != 40 || st.Corrupted < 20 || st.Corrupted > 200 {
			t.Errorf("%+v", st)
		}
	})
	t.Run("every byte dropped", func(t *testing.T) {
		cfg := twoModems(Packet, 0)
		cfg.DropRate = 1
		c, _ := NewChannel(cfg)
		if ds := runScript(t, c, []write{{0, 0, pattern(30, 0)}}); len(ds) != 0 {
			t.Errorf("deliveries %+v", ds)
		}
		if c.Stats(1).Dropped != 30 {
			t.Errorf("%+v", c.Stats(1))
		}
	})
	t.Run("queue overflow", func(t *testing.T) {
		cfg := twoModems(Packet, 0)
		cfg.Modems[0].Queue = 1
		c, _ := NewChannel(cfg)
		runScript(t, c, []write{{0, 0, pattern(4*256, 0)}})
		if st := c.Stats(0); st.Overflow != 2 || st.Sent != 2 {
			t.Errorf("%+v, want 2 sent, 2 overflowed", st)
		}
	})
	t.Run("serial overrun", func(t *testing.T) {
		c, _ := NewChannel(twoModems(Packet, 0))
		c.Write(0, 0, make([]byte, MaxInBacklog+100))
		if st := c.Stats(0); st.Overrun != 100 {
			t.Errorf("%+v", st)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		c, _ := NewChannel(twoModems(Packet, 0))
		ds := c.Inject(1, time.Second, []byte("junk"))
		if len(ds) != 1 || ds[0].Modem != 1 || ds[0].At != time.Second || string(ds[0].Data) != "junk" {
			t.Errorf("%+v", ds)
		}
		if c.Stats(1).Garbage != 4 {
			t.Errorf("%+v", c.Stats(1))
		}
	})
}

func TestPositions(t *testing.T) {
	mc := ModemConfig{}
	c, err := NewChannel(Config{Modems: []ModemConfig{mc, mc}, Positions: []Point{{}, {X: 1200, Y: 900}}})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Delay(0, 1); d != time.Second {
		t.Errorf("1.5 km at 1500 m/s: %s", d)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := ModemConfig{}
	for _, tt := range []struct {
		desc string
		cfg  Config
	}{
		{"no modems", Config{}},
		{"ber above 1", Config{Modems: []ModemConfig{ok}, BER: 2}},
		{"drop rate NaN", Config{Modems: []ModemConfig{ok}, DropRate: nanf()}},
		{"short delay matrix", Config{Modems: []ModemConfig{ok, ok}, Delay: UniformDelay(1, 0)}},
		{"negative delay", Config{Modems: []ModemConfig{ok, ok}, Delay: [][]time.Duration{{0, -1}, {0, 0}}}},
		{"positions count", Config{Modems: []ModemConfig{ok, ok}, Positions: []Point{{}}}},
		{"gap below a byte", Config{Modems: []ModemConfig{{Gap: time.Microsecond}}}},
		{"unknown mode", Config{Modems: []ModemConfig{{Mode: 9}}}},
		{"negative preamble", Config{Modems: []ModemConfig{{Preamble: -1}}}},
		{"negative baud", Config{Modems: []ModemConfig{{Baud: -1}}}},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			if _, err := NewChannel(tt.cfg); !errors.Is(err, ErrConfig) {
				t.Errorf("err %v, want ErrConfig", err)
			}
		})
	}
}

func nanf() float64 {
	z := 0.0
	return z / z
}

// FuzzChannel drives random writes, garbage and time steps through three
// modems and checks that the channel never panics, never delivers in the
// past and never hands out more than it was given.
func FuzzChannel(f *testing.F) {
	f.Add([]byte{0, 10, 40, 1, 20, 5, 2, 0, 255}, uint8(0))
	f.Add([]byte{3, 3, 3, 3, 3, 3}, uint8(1))
	f.Add(bytes.Repeat([]byte{1, 0, 200}, 30), uint8(2))
	f.Fuzz(func(t *testing.T, script []byte, flags uint8) {
		mc := ModemConfig{Mode: Mode(flags & 1), Preamble: 10 * time.Millisecond, MaxPacket: 64, Queue: 2}
		cfg := Config{
			Modems: []ModemConfig{mc, mc, mc},
			Delay:  [][]time.Duration{{0, 30 * time.Millisecond, 50 * time.Millisecond}, {30 * time.Millisecond, 0, 0}, {50 * time.Millisecond, 0, 0}},
			Seed:   uint64(flags),
		}
		if flags&2 != 0 {
			cfg.BER, cfg.DropRate = 0.01, 0.05
		}
		c, err := NewChannel(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var now, prev time.Duration
		var in, out uint64
		check := func(ds []Delivery) {
			for _, d := range ds {
				if d.At < prev || d.Modem < 0 || d.Modem > 2 {
					t.Fatalf("delivery %+v at now %s", d, now)
				}
				out += uint64(len(d.Data))
			}
			prev = now
		}
		for len(script) >= 3 {
			op, dt, n := script[0], script[1], int(script[2])
			script = script[3:]
			now += time.Duration(dt) * time.Millisecond
			i := int(op % 3)
			switch op / 3 % 3 {
			case 0:
				in += uint64(n) * 2
				check(c.Write(i, now, pattern(n, op)))
			case 1:
				in += uint64(n)
				check(c.Inject(i, now, pattern(n, op)))
			default:
				check(c.Advance(now))
			}
		}
		for range 100_000 {
			next, ok := c.Next()
			if !ok {
				break
			}
			now = next
			check(c.Advance(now))
		}
		if _, ok := c.Next(); ok {
			t.Fatal("did not settle")
		}
		if out > in {
			t.Fatalf("delivered %d bytes, given %d (each write reaches two modems)", out, in)
		}
	})
}
