package link

import (
	"testing"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// TestEngineRejects: everything the bridge rejected is rejected by the
// engine, counted under the same reason, and nothing reaches the host or
// the air that should not.
func TestEngineRejects(t *testing.T) {
	frameFrom := func(src, dst framing.NodeID) []byte {
		h, p, err := framing.Compact(ethFrame(dst, src), src)
		if err != nil {
			t.Fatal(err)
		}
		return framing.AppendFrame(nil, h, p)
	}
	sealed := func() []byte {
		s, err := auth.NewSealer(auth.Key{4, 4}, 2, 1)
		if err != nil {
			t.Fatal(err)
		}
		h, p, _ := framing.Compact(ethFrame(1, 2), 2)
		h, p, err = s.Seal(time.Now(), nil, h, p)
		if err != nil {
			t.Fatal(err)
		}
		return framing.AppendFrame(nil, h, p)
	}
	badCRC := frameFrom(2, 1)
	badCRC[len(badCRC)-3] ^= 1
	big := make([]byte, 1600)
	copy(big, ethFrame(2, 1))
	toNowhere := ethFrame(2, 1)
	copy(toNowhere, []byte{0x02, 0x99, 0x99, 0x99, 0x99, 0x99})
	for _, tc := range []struct {
		name  string
		air   []byte // from the modem
		host  []byte // from the host
		fail  bool   // the host refuses writes
		count func(Stats) uint64
	}{
		{name: "garbage", air: []byte{1, 2, 3, 0, 0xff, 0xfe, 0}, count: func(s Stats) uint64 { return s.Drops.Garbage }},
		{name: "bad crc", air: badCRC, count: func(s Stats) uint64 { return s.Drops.BadCRC + s.Drops.Garbage }},
		{name: "echo", air: frameFrom(1, 2), count: func(s Stats) uint64 { return s.Drops.Echo }},
		{name: "not for us", air: frameFrom(2, 3), count: func(s Stats) uint64 { return s.NotForUs }},
		{name: "sealed without a key", air: sealed(), count: func(s Stats) uint64 { return s.Drops.Sealed }},
		{name: "host refuses", air: frameFrom(2, 1), fail: true, count: func(s Stats) uint64 { return s.Drops.TAPWrite }},
		{name: "short host frame", host: []byte{1, 2, 3}, count: func(s Stats) uint64 { return s.Drops.BadFrame }},
		{name: "no route", host: toNowhere, count: func(s Stats) uint64 { return s.Drops.NoRoute }},
		{name: "too big", host: big, count: func(s Stats) uint64 { return s.Drops.TooBig }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, Config{}, func(t *testing.T, x *bubble) {
				x.n.fail = tc.fail
				if tc.air != nil {
					x.m.inject(x.n, tc.air)
				}
				if tc.host != nil {
					x.m.hostFrame(x.n, tc.host)
				}
				x.after(time.Second)
				st := x.n.e.Stats(x.m.Now())
				if n := tc.count(st); n != 1 {
					t.Errorf("counted %d, want 1; drops %+v", n, st.Drops)
				}
				if len(x.n.host) != 0 || x.m.Stats().Bursts != 0 || st.RxFrames != 0 {
					t.Errorf("%d frames to the host (%d counted), %d on air; want none", len(x.n.host), st.RxFrames, x.m.Stats().Bursts)
				}
			})
		})
	}
}

// TestEngineHostBeforeUp: a frame from the host before the modem's first
// Up is dropped and counted, not a crash (WantRead was false).
func TestEngineHostBeforeUp(t *testing.T) {
	e, err := New(Config{Node: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	if e.WantRead() {
		t.Fatal("WantRead before Up")
	}
	e.Host(now, ethFrame(2, 1))
	e.Modem(now, phy.Event{Kind: phy.Received, Data: []byte{1, 2, 0}}, phy.Info{})
	if f, ok := e.Poll(now); ok {
		t.Fatalf("frame %x before Up", f)
	}
	if st := e.Stats(now); st.Drops.PHYDown != 1 {
		t.Fatalf("drops %+v, want one phy_down", st.Drops)
	}
}

// TestEngineBlockBounded: a driver that gives an engine with policy Block
// frames while it does not want them (WantRead false) cannot grow its
// queues without bound: beyond a packet's fragments waiting, frames are
// dropped as queue-full.
func TestEngineBlockBounded(t *testing.T) {
	inBubble(t, Config{Policy: Block, NoARQ: true, FrameMax: 64}, func(t *testing.T, x *bubble) {
		big := make([]byte, 1000)
		copy(big, ethFrame(2, 1))
		for range 50 {
			x.m.hostFrame(x.n, big)
		}
		if e := x.n.e; len(e.pend) > 2*framing.MaxFragments {
			t.Fatalf("%d frames waiting outside the MAC", len(e.pend))
		}
		if st := x.n.e.Stats(x.m.Now()); st.Drops.QueueFull == 0 {
			t.Fatalf("drops %+v, want queue-full drops", st.Drops)
		}
	})
}

// TestEngineOutboxBounded: a driver that never takes its deliveries does
// not grow the outbox without bound; what does not fit is counted as a
// frame the host did not take.
func TestEngineOutboxBounded(t *testing.T) {
	inBubble(t, Config{NoARQ: true}, func(t *testing.T, x *bubble) {
		h, p, err := framing.Compact(ethFrame(1, 2), 2)
		if err != nil {
			t.Fatal(err)
		}
		one := framing.AppendFrame(nil, h, p)
		var burst []byte
		for range 2 * maxOut {
			burst = append(burst, one...)
		}
		e := x.n.e
		e.Modem(x.m.Now(), phy.Event{Kind: phy.Received, Data: burst}, phy.Info{})
		if n := len(e.Deliveries()); n > maxOut {
			t.Fatalf("%d deliveries waiting, more than %d", n, maxOut)
		}
		if st := e.Stats(x.m.Now()); st.Drops.TAPWrite != maxOut {
			t.Fatalf("drops %+v, want %d tap_write", st.Drops, maxOut)
		}
	})
}
