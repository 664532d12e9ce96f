package link

import (
	"testing"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
)

func TestSenders(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	s := senders{window: 5 * time.Second}
	for i, step := range []struct {
		at   time.Duration // since t0
		src  framing.NodeID
		kind framing.Kind
		want int // count right after
	}{
		{0, 2, framing.KindFragment, 1},
		{time.Second, 3, framing.KindAck, 1},          // Acks answer us: not counted
		{2 * time.Second, 3, framing.KindEthernet, 2}, // now it sends data
		{3 * time.Second, 2, framing.KindSealed, 2},   // heard again: still one node
		{6 * time.Second, 4, framing.KindFragment, 3},
		{7*time.Second + time.Millisecond, 9, framing.KindFragment, 3}, // 3 fell out (last heard at 2 s)
		{9 * time.Second, 9, framing.KindFragment, 2},                  // and so did 2 (3 s)
		{20 * time.Second, 9, framing.KindAck, 0},                      // everyone silent for longer than the window
	} {
		now := t0.Add(step.at)
		s.heard(now, step.src, step.kind)
		if got := s.count(now); got != step.want {
			t.Errorf("step %d (%v from node %d at %v): %d senders, want %d", i, step.kind, step.src, step.at, got, step.want)
		}
	}
}

// TestSendersAuthenticated: with a key, a frame addressed to another node
// counts its sender only once it opened under the key: a forged, unsealed
// or replayed frame names any sender it likes. A sealed Ack to another
// node is not counted either (its kind shows once opened).
func TestSendersAuthenticated(t *testing.T) {
	key := auth.Key{5, 5, 5}
	inBubble(t, Config{Key: &key}, func(t *testing.T, x *bubble) {
		rx := func(b []byte) {
			x.m.inject(x.n, b)
			x.after(time.Millisecond)
		}
		forged := framing.AppendFrame(nil, framing.Header{Kind: framing.KindSealed, Dst: 3, Src: 5}, make([]byte, 40))
		rx(forged)
		rx(airFrame(t, 6, ethFrame(3, 6), nil)) // unsealed
		s4, err := auth.NewSealer(key, 4, 1)
		if err != nil {
			t.Fatal(err)
		}
		h, p, err := s4.Seal(time.Now(), nil, framing.Header{Kind: framing.KindAck, Dst: 3, Src: 4}, []byte{0, 0, 0, 0})
		if err != nil {
			t.Fatal(err)
		}
		rx(framing.AppendFrame(nil, h, p))
		if st := x.n.e.Stats(x.m.Now()); st.Senders != 0 || st.NotForUs != 3 {
			t.Fatalf("%d senders after a forged, an unsealed and an Ack frame (%d not for us); want none", st.Senders, st.NotForUs)
		}
		good := airFrame(t, 4, ethFrame(3, 4), s4)
		rx(good)
		if st := x.n.e.Stats(x.m.Now()); st.Senders != 1 {
			t.Fatalf("%d senders after node 4's sealed frame to node 3, want 1", st.Senders)
		}
		// The same frame again, once node 4 has fallen out of the count:
		// a replay, not a sender.
		x.after(time.Hour)
		rx(good)
		if st := x.n.e.Stats(x.m.Now()); st.Senders != 0 {
			t.Fatalf("%d senders after a replayed frame, want none", st.Senders)
		}
	})
}

// TestSendersAfterRestart: a fresh engine (just restarted) does not count
// as a sender the replay of a recorded frame between two other nodes (4 to
// 3) that its maximum age (KeyMaxAge) or the floor its previous life saved
// for that sender (KeyState) refuses: the openers for frames to other
// nodes apply both, without writing anything.
func TestSendersAfterRestart(t *testing.T) {
	key := auth.Key{5, 5, 5}
	for _, tc := range []struct {
		name  string
		cfg   Config
		start uint64 // node 4's counter in the recording
	}{
		{"max age", Config{Key: &key, KeyMaxAge: time.Minute}, 1},
		{"saved floor", Config{Key: &key, KeyState: [2]AuthState{&memState{st: auth.State{Recv: [256]uint64{4: 1000}}}}}, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, tc.cfg, func(t *testing.T, x *bubble) {
				s4, err := auth.NewSealer(key, 4, tc.start)
				if err != nil {
					t.Fatal(err)
				}
				x.m.inject(x.n, airFrame(t, 4, ethFrame(3, 4), s4))
				x.after(time.Millisecond)
				if st := x.n.e.Stats(x.m.Now()); st.Senders != 0 || st.NotForUs != 1 {
					t.Fatalf("%d senders after a recorded frame from before the restart (%d not for us); want none", st.Senders, st.NotForUs)
				}
				if w := tc.cfg.KeyState[0]; w != nil && w.State().Recv[4] != 1000 {
					t.Fatalf("the engine saved floor %d for node 4 after a frame to another node", w.State().Recv[4])
				}
			})
		})
	}
}

// TestTurnFrames: the turn's budget shrinks with the other senders heard,
// never below minTurnFrames nor minTurnSlots slots, and does not bound a
// node that hears one other node or none (a lone flow's sender hears its
// receiver) — docs/mac.md, "A turn for each sender".
func TestTurnFrames(t *testing.T) {
	frame := 100 * 8 * time.Second / 9600 // 83.3 ms: 100 bytes at 9600 bit/s
	for _, c := range []struct {
		others int
		slot   time.Duration
		want   int
	}{
		{0, time.Millisecond, 0},
		{1, time.Millisecond, 0},
		{2, time.Millisecond, 32},
		{3, time.Millisecond, 21},
		{9, time.Millisecond, 7},          // ten nodes
		{16, time.Millisecond, 4},         // 64/16
		{99, time.Millisecond, 3},         // a hundred: minTurnFrames
		{9, frame / 10, 13},               // a = 0.1: 128 slots of 8.3 ms
		{9, frame / 2, 64},                // a = 0.5: longer than any turn
		{9, 0, 7},                         // no slot given
		{99, 100 * time.Millisecond, 154}, // 12.8 s of 83.3 ms frames, rounded up
	} {
		if got := turnFrames(c.others, frame, c.slot); got != c.want {
			t.Errorf("turnFrames(%d others, slot %v) = %d, want %d", c.others, c.slot, got, c.want)
		}
	}
}
