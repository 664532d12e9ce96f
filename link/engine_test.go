package link

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/arq"
)

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

// checkDelivered checks that every frame n's host got is one of the sent
// frames, intact and only once, and returns how many there are.
func checkDelivered(t *testing.T, n *node, sent map[uint32][]byte) int {
	t.Helper()
	seen := map[uint32]bool{}
	for _, f := range n.host {
		if len(f) < 18 {
			t.Fatalf("short frame to the host: %x", f)
		}
		id := binary.BigEndian.Uint32(f[14:])
		orig, ok := sent[id]
		if !ok || string(orig) != string(f) {
			t.Fatalf("frame %d to the host is not the one sent (%d bytes, %d sent)", id, len(f), len(orig))
		}
		if seen[id] {
			t.Fatalf("frame %d delivered twice", id)
		}
		seen[id] = true
	}
	return len(seen)
}

// lossy loses each burst with probability p, from a seeded coin.
func lossy(p float64) func(from, to *node, data []byte) bool {
	rng := rand.New(rand.NewPCG(7, 7))
	return func(*node, *node, []byte) bool { return rng.Float64() < p }
}

// pair is two engines of cfg (nodes 1 and 2) on a medium of rate bit/s.
func pair(t *testing.T, rate int, c1, c2 Config) (*medium, *node, *node) {
	m := newMedium(t, rate)
	c1.Node, c2.Node = 1, 2
	return m, m.add(c1), m.add(c2)
}

// sendAll gives n1's host the frames one by one, as the bridge does under
// policy Block (only when the engine wants to read), running the medium
// meanwhile.
func sendAll(m *medium, n *node, frames [][]byte) {
	for _, f := range frames {
		for i := 0; !n.e.WantRead() && i < 10000; i++ {
			m.run(10 * time.Millisecond)
		}
		m.hostFrame(n, f)
	}
}

// TestARQRecoversLosses: 40 packets of 300 bytes cut into 64-byte frames
// over a wire that loses 20% of the frames (and Acks) arrive all, intact,
// once each, and the ARQ's counters show the work.
func TestARQRecoversLosses(t *testing.T) {
	cfg := Config{FrameMax: 64}
	m, n1, n2 := pair(t, 115200, cfg, cfg)
	m.lose = lossy(0.2)
	sent := map[uint32][]byte{}
	var frames [][]byte
	const n = 40
	for id := range uint32(n) {
		f := numbered(2, 1, id, 300)
		sent[id] = f
		frames = append(frames, f)
	}
	sendAll(m, n1, frames)
	m.run(time.Minute)
	if got := checkDelivered(t, n2, sent); got != n {
		t.Fatalf("%d of %d packets delivered; sender arq %+v", got, n, n1.e.Stats(m.Now()).ARQ)
	}
	st := n1.e.Stats(m.Now())
	if st.ARQ.Retransmissions == 0 || st.ARQ.Acked != n || st.ARQ.GiveUps != 0 {
		t.Errorf("sender arq %+v: want retransmissions, %d acked, no give-ups; receiver arq %+v, drops %+v %+v", st.ARQ, n, n2.e.Stats(m.Now()).ARQ, st.Drops, n2.e.Stats(m.Now()).Drops)
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
	m, n1, n2 := pair(t, 115200, cfg, cfg)
	m.lose = lossy(0.2)
	sent := map[uint32][]byte{}
	var frames [][]byte
	const n = 40
	for id := range uint32(n) {
		f := numbered(2, 1, id, 300)
		sent[id] = f
		frames = append(frames, f)
	}
	sendAll(m, n1, frames)
	m.run(time.Minute)
	got := checkDelivered(t, n2, sent)
	if got == n || got == 0 {
		t.Errorf("%d of %d packets delivered without ARQ at 20%% frame loss; want some but not all", got, n)
	}
	if st := n1.e.Stats(m.Now()); st.ARQ.AcksReceived != 0 || st.ARQ.Retransmissions != 0 {
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
			m, n1, n2 := pair(t, 115200, Config{Key: tc.key1, NoARQ: true, KeyMode: tc.mode1}, Config{Key: tc.key2, NoARQ: true, KeyMode: tc.mode2})
			var rec [][]byte
			m.lose = func(from, _ *node, b []byte) bool {
				if from == n1 {
					rec = append(rec, append([]byte(nil), b...))
				}
				return false
			}
			sent := map[uint32][]byte{}
			var frames [][]byte
			for id := range uint32(5) {
				f := numbered(2, 1, id, 100)
				sent[id] = f
				frames = append(frames, f)
			}
			sendAll(m, n1, frames)
			m.run(time.Second)
			want := 5
			if !tc.delivered {
				want = 0
			}
			if got := checkDelivered(t, n2, sent); got != want {
				t.Fatalf("%d packets delivered, want %d", got, want)
			}
			d := n2.e.Stats(m.Now()).Drops
			if n := tc.drop(d); (tc.delivered && n != 0) || (!tc.delivered && n != 5) {
				t.Fatalf("drops %+v", d)
			}
			if !tc.delivered {
				return
			}
			// Replay what node 1 sent: every frame is refused.
			for _, b := range rec {
				m.inject(n2, b)
			}
			if d := n2.e.Stats(m.Now()).Drops; d.Replayed != uint64(len(rec)) || len(n2.host) != 5 {
				t.Fatalf("after replaying %d frames: drops %+v, %d to the host; want all replays dropped", len(rec), d, len(n2.host))
			}
		})
	}
}

// TestFrameMaxTooSmall: a frame limit that cannot carry a full-size packet
// in 64 fragments is refused with a clear error at New.
func TestFrameMaxTooSmall(t *testing.T) {
	_, err := New(Config{Node: 1, FrameMax: 20})
	if !errors.Is(err, arq.ErrInvalidConfig) {
		t.Fatalf("New with frame max 20: %v, want an error", err)
	}
	if _, err := New(Config{Node: 1, FrameMax: 64}); err != nil {
		t.Fatalf("New with frame max 64: %v", err)
	}
}

// TestEngineAcksJumpAndReserve: the receiver's Acks go to the front of its
// MAC queue (urgent: no IFS, no backoff), and the sender keeps the channel
// for each after its poll, so the Ack's carrier counts as reserved, not as
// a competing sender (busy periods with no data frame waiting are not
// counted either way).
func TestEngineAcksJumpAndReserve(t *testing.T) {
	m, n1, n2 := pair(t, 115200, Config{}, Config{})
	var frames [][]byte
	sent := map[uint32][]byte{}
	for id := range uint32(10) {
		f := numbered(2, 1, id, 300)
		sent[id] = f
		frames = append(frames, f)
	}
	sendAll(m, n1, frames)
	m.run(10 * time.Second)
	if got := checkDelivered(t, n2, sent); got != 10 {
		t.Fatalf("%d of 10 delivered", got)
	}
	s1, s2 := n1.e.Stats(m.Now()), n2.e.Stats(m.Now())
	// The receiver's hello (link/version.go) goes in front of its first
	// Ack, urgent as well.
	// An Ack may report several packets (arq.Config.GroupPolls): one
	// record each.
	if s2.MAC.Urgent != s2.ARQ.AcksSent+s2.HellosSent || s2.ARQ.AcksSent+s2.ARQ.AckRecords < 10 || s2.HellosSent != 1 {
		t.Errorf("receiver: %d urgent frames, %d Acks and %d hellos sent; want every Ack urgent, one hello", s2.MAC.Urgent, s2.ARQ.AcksSent, s2.HellosSent)
	}
	if s1.MAC.Reserved == 0 || s1.MAC.Deferrals != 0 {
		t.Errorf("sender: %d busy periods reserved, %d deferrals; want every Ack inside its reservation", s1.MAC.Reserved, s1.MAC.Deferrals)
	}
}
