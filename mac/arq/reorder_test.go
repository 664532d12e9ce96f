package arq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/slided/slided/framing"
)

// ev is one step of a scripted reorder test: a one-fragment packet from
// src with number seq carrying id, or (src 0) dt of time passing and a
// Poll.
type ev struct {
	src          framing.NodeID
	seq          uint8
	first, bcast bool
	id           byte
	dt           time.Duration
}

// uni is a one-fragment unicast packet from src to node 2.
func uni(src framing.NodeID, seq, id byte) ev { return ev{src: src, seq: seq, id: id} }

// oneFrag encodes a one-fragment packet whose body is body.
func oneFrag(t testing.TB, seq uint8, first bool, body []byte) []byte {
	t.Helper()
	b, err := framing.AppendFrag(nil, framing.FragHeader{First: first, Inner: framing.KindData, Seq: seq, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	return append(b, body...)
}

// TestReorder: complete packets from one sender are handed up in the order
// of their numbers; a gap is waited for until it fills, the sender shows it
// has moved past it (a number a window beyond, or a First packet), or
// ReorderTimeout passes; broadcast is never held.
func TestReorder(t *testing.T) {
	tmo := testConfig(2).ReorderTimeout
	tests := []struct {
		desc string
		cfg  func(*Config)
		evs  []ev
		want []byte // ids handed up, in order
		held int    // packets still held at the end
		// Stats at the end: packets released by timeout, skipped past a
		// gap the sender moved past, late.
		timeouts, skipped, late uint64
	}{
		{desc: "in order", evs: []ev{uni(3, 10, 1), uni(3, 11, 2), uni(3, 12, 3)}, want: []byte{1, 2, 3}},
		{desc: "gap filled: the held packets follow the missing one",
			evs:  []ev{uni(3, 10, 1), uni(3, 12, 3), uni(3, 13, 4), uni(3, 11, 2)},
			want: []byte{1, 2, 3, 4}},
		{desc: "gap not filled: held",
			evs:  []ev{uni(3, 10, 1), uni(3, 12, 3), uni(3, 13, 4)},
			want: []byte{1}, held: 2},
		{desc: "numbers wrap across the window",
			evs:  []ev{uni(3, 254, 1), uni(3, 0, 3), uni(3, 1, 4), uni(3, 255, 2), uni(3, 2, 5)},
			want: []byte{1, 2, 3, 4, 5}},
		{desc: "sender past the span: the gap is given up at once, and its packet comes late",
			// SeqSpan 16: 27 means 11 is resolved (acknowledged or given up).
			evs:  []ev{uni(3, 10, 1), uni(3, 12, 3), uni(3, 13, 4), uni(3, 26, 6), uni(3, 27, 7), uni(3, 11, 2)},
			want: []byte{1, 3, 4, 2}, held: 2, skipped: 2, late: 1},
		{desc: "within the span: still waiting",
			evs:  []ev{uni(3, 10, 1), uni(3, 12, 3), uni(3, 26, 6), uni(3, 11, 2)},
			want: []byte{1, 2, 3}, held: 1},
		{desc: "timeout: released after ReorderTimeout, not before",
			evs: []ev{uni(3, 10, 1), uni(3, 12, 3), uni(3, 13, 4), {dt: tmo - 1}, {dt: 1}, uni(3, 11, 2)},
			// id 2 comes after its gap was given up: handed up late.
			want: []byte{1, 3, 4, 2}, timeouts: 2, late: 1},
		{desc: "timeout counts from the packet held first",
			evs:  []ev{uni(3, 10, 1), uni(3, 12, 3), {dt: tmo / 2}, uni(3, 14, 5), {dt: tmo/2 - 1}, {dt: 1}},
			want: []byte{1, 3}, held: 1, timeouts: 1},
		{desc: "a First packet (the sender restarted) releases its previous life",
			evs:  []ev{uni(3, 10, 1), uni(3, 12, 2), {src: 3, seq: 50, first: true, id: 3}, uni(3, 51, 4)},
			want: []byte{1, 2, 3, 4}, skipped: 1},
		{desc: "peers are ordered apart",
			evs:  []ev{uni(3, 10, 1), uni(4, 10, 2), uni(3, 12, 3), uni(4, 11, 4), uni(3, 11, 5)},
			want: []byte{1, 2, 4, 5, 3}},
		{desc: "broadcast is not held",
			evs:  []ev{uni(3, 10, 1), uni(3, 12, 2), {src: 3, seq: 20, bcast: true, id: 3}},
			want: []byte{1, 3}, held: 1},
		{desc: "the first packet heard mid-stream (receiver restarted) waits for nothing",
			evs:  []ev{uni(3, 100, 1), uni(3, 99, 2), uni(3, 101, 3)},
			want: []byte{1, 2, 3}, late: 1},
		{desc: "no room: the longest waiting peer goes past its gap", cfg: func(c *Config) { c.ReorderPackets = 2 },
			evs:  []ev{uni(3, 10, 1), uni(4, 10, 2), uni(3, 12, 4), uni(4, 12, 6), uni(4, 13, 7), uni(4, 11, 5), uni(3, 11, 3)},
			want: []byte{1, 2, 4, 5, 6, 7, 3}, late: 1},
		{desc: "no room, the packet itself before the held ones: the gap ends at it", cfg: func(c *Config) { c.ReorderPackets = 2 },
			evs:  []ev{uni(3, 10, 1), uni(3, 13, 4), uni(3, 14, 5), uni(3, 12, 3), uni(3, 11, 2)},
			want: []byte{1, 3, 4, 5, 2}, late: 1},
		{desc: "NoReorder: handed up as complete", cfg: func(c *Config) { c.NoReorder = true },
			evs:  []ev{uni(3, 10, 1), uni(3, 12, 3), uni(3, 11, 2)},
			want: []byte{1, 3, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c := testConfig(2)
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			b := newNode(t, c)
			now := t0
			for _, e := range tc.evs {
				if e.src == 0 {
					now = now.Add(e.dt)
					if d, ok := b.Deadline(); ok && !now.Before(d) {
						b.Poll(now)
					}
					continue
				}
				dst := framing.NodeID(2)
				if e.bcast {
					dst = framing.Broadcast
				}
				b.Receive(now, framing.Header{Kind: framing.KindFragment, Dst: dst, Src: e.src}, oneFrag(t, e.seq, e.first, []byte{e.id}))
			}
			var got []byte
			for _, f := range b.rec.rx {
				got = append(got, f.p[0])
			}
			st := b.Stats()
			if !bytes.Equal(got, tc.want) || st.ReorderHeld != tc.held || st.ReorderTimeouts != tc.timeouts ||
				st.ReorderSkipped != tc.skipped || st.ReorderLate != tc.late {
				t.Fatalf("handed up %v, held %d, timeouts %d, skipped %d, late %d; want %v, %d, %d, %d, %d",
					got, st.ReorderHeld, st.ReorderTimeouts, st.ReorderSkipped, st.ReorderLate,
					tc.want, tc.held, tc.timeouts, tc.skipped, tc.late)
			}
			if st.ReorderHeldBytes != st.ReorderHeld {
				t.Fatalf("%d bytes held for %d one-byte packets", st.ReorderHeldBytes, st.ReorderHeld)
			}
		})
	}
}

// TestReorderRetransmission: one fragment of the first of three packets
// is lost; the two behind it are complete (and acknowledged) first, but
// handed up only after the retransmission completes the first, in order.
func TestReorderRetransmission(t *testing.T) {
	a, b := newNode(t, testConfig(1)), newNode(t, testConfig(2))
	now := exchange(t, t0, a, b, 2, 1, 0) // the First handshake: the window opens
	for i := range 3 {
		if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(50, byte(10+i))); err != nil {
			t.Fatal(err)
		}
	}
	fs := a.rec.take() // 3 fragments each
	deliverAll(now, b, fs, func(i int, _ frame) bool { return i == 1 })
	if got, held := len(b.rec.rx), b.Stats().ReorderHeld; got != 1 || held != 2 {
		t.Fatalf("after the loss: %d handed up, %d held; want 1 (the handshake) and 2", got, held)
	}
	deliverAll(now, a, b.rec.take(), nil) // the Acks: the first with a gap
	retx := a.rec.take()
	if len(retx) != 1 {
		t.Fatalf("%d frames retransmitted, want 1", len(retx))
	}
	deliverAll(now, b, retx, nil)
	if len(b.rec.rx) != 4 {
		t.Fatalf("%d handed up after the retransmission, want 4", len(b.rec.rx))
	}
	for i, f := range b.rec.rx[1:] {
		if !bytes.Equal(f.p, pattern(50, byte(10+i))) {
			t.Fatalf("packet %d handed up is % x, want packet %d", i, f.p[:4], i)
		}
	}
	if st := b.Stats(); st.ReorderHeld != 0 || st.ReorderHeldBytes != 0 || st.ReorderWaited != 2 {
		t.Fatalf("stats %+v: want nothing held, 2 waited", st)
	}
}

// TestReorderGiveUp: every frame of the first of three packets is lost, so
// the sender gives it up; the two behind it are handed up when
// ReorderTimeout has passed since they were held, not later, and in order.
func TestReorderGiveUp(t *testing.T) {
	a, b := newNode(t, testConfig(1)), newNode(t, testConfig(2))
	now := exchange(t, t0, a, b, 2, 1, 0)
	start := now
	for i := range 3 {
		if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(50, byte(10+i))); err != nil {
			t.Fatal(err)
		}
	}
	fs := a.rec.take()
	lost, _, _ := framing.ParseFrag(fs[0].p)
	dropLost := func(_ int, f frame) bool {
		h, _, err := framing.ParseFrag(f.p)
		return err == nil && h.Seq == lost.Seq
	}
	deliverAll(now, b, fs, dropLost)
	for range 1000 {
		deliverAll(now, a, b.rec.take(), nil)
		deliverAll(now, b, a.rec.take(), dropLost)
		da, oka := a.Deadline()
		db, okb := b.Deadline()
		if !oka && !okb {
			break
		}
		if !oka || okb && db.Before(da) {
			da = db
		}
		now = da
		a.Poll(now)
		b.Poll(now)
	}
	if g := a.Stats().GiveUps; g != 1 {
		t.Fatalf("%d given up, want 1", g)
	}
	if len(b.rec.rx) != 3 {
		t.Fatalf("%d handed up, want 3", len(b.rec.rx))
	}
	want := start.Add(b.cfg.ReorderTimeout)
	for i, f := range b.rec.rx[1:] {
		if !bytes.Equal(f.p, pattern(50, byte(11+i))) {
			t.Fatalf("packet %d handed up is % x, want packet %d", i, f.p[:4], i+1)
		}
		if at := b.rec.rxAt[1+i]; !at.Equal(want) {
			t.Fatalf("packet %d handed up %v after it was complete, want %v (ReorderTimeout)", i+1, at.Sub(start), want.Sub(start))
		}
	}
	if st := b.Stats(); st.ReorderTimeouts != 2 || st.ReorderHeld != 0 {
		t.Fatalf("stats %+v: want 2 released by timeout, nothing held", st)
	}
}

// TestReorderBounded: peers that send only packets ahead of a gap, of the
// largest size, from many node ids, never make the buffer hold more than
// SeqSpan-1 packets per peer, ReorderPackets packets or ReorderBytes bytes;
// and every packet accepted is handed up exactly once.
func TestReorderBounded(t *testing.T) {
	c := testConfig(2)
	b := newNode(t, c)
	rng := rand.New(rand.NewPCG(3, 3))
	now := t0
	next := map[framing.NodeID]uint8{}
	var sent uint32
	for i := range 20000 {
		src := framing.NodeID(3 + rng.IntN(60))
		// Always at least one ahead of the last: a gap at every step,
		// sometimes far past the window.
		s := next[src] + 1 + uint8(rng.IntN(2*c.SeqSpan))
		next[src] = s
		body := make([]byte, 4+rng.IntN(c.MaxPacket-4))
		binary.BigEndian.PutUint32(body, sent)
		sent++
		b.Receive(now, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: src}, oneFrag(t, s, false, body))
		st := b.Stats()
		if st.ReorderHeld > c.ReorderPackets || st.ReorderHeldBytes > c.ReorderBytes || st.ReorderHeld < 0 || st.ReorderHeldBytes < 0 {
			t.Fatalf("step %d: holding %d packets, %d bytes; bounds %d, %d", i, st.ReorderHeld, st.ReorderHeldBytes, c.ReorderPackets, c.ReorderBytes)
		}
		if p := b.peers[src]; p.rxHeld > c.SeqSpan-1 {
			t.Fatalf("step %d: node %d holds %d packets, span %d", i, src, p.rxHeld, c.SeqSpan)
		}
		now = now.Add(time.Millisecond)
	}
	b.Poll(now.Add(c.ReorderTimeout))
	st := b.Stats()
	if st.ReorderOverflows == 0 {
		t.Fatalf("no overflow with 60 peers holding %d packets: %+v", c.ReorderPackets, st)
	}
	seen := map[uint32]bool{}
	for _, f := range b.rec.rx {
		id := binary.BigEndian.Uint32(f.p)
		if seen[id] {
			t.Fatalf("packet %d handed up twice", id)
		}
		seen[id] = true
	}
	if uint64(len(seen))+st.Duplicates != uint64(sent) || st.ReorderHeld != 0 {
		t.Fatalf("%d handed up + %d duplicates of %d sent, %d held", len(seen), st.Duplicates, sent, st.ReorderHeld)
	}
}

// FuzzReorder feeds a receiver one-fragment unicast packets whose numbers,
// sources, First flags and timing come from the fuzzer, each with a body of
// its own. Whatever the order: no packet is handed up twice, the buffer
// stays within its bounds, and once ReorderTimeout has passed every packet
// not taken for a duplicate has been handed up.
func FuzzReorder(f *testing.F) {
	f.Add([]byte{0, 10, 0, 0, 12, 0, 0, 13, 0, 0, 11, 0})
	f.Add([]byte{0, 254, 0, 0, 0, 0, 0, 255, 0, 0, 1, 200})
	f.Add([]byte{1, 5, 0, 0, 9, 0x80, 1, 6, 0, 0, 50, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		c := testConfig(2)
		b := newNode(t, c)
		now := t0
		var sent uint32
		for len(in) >= 3 {
			src := framing.NodeID(3 + in[0]%4)
			seq, ctl := in[1], in[2]
			in = in[3:]
			body := make([]byte, 4+int(ctl&0x3f))
			binary.BigEndian.PutUint32(body, sent)
			sent++
			b.Receive(now, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: src}, oneFrag(t, seq, ctl&0x80 != 0, body))
			if ctl&0x40 != 0 {
				now = now.Add(time.Duration(ctl&0x3f) * c.ReorderTimeout / 16)
			}
			if d, ok := b.Deadline(); ok && !now.Before(d) {
				b.Poll(now)
			}
			st := b.Stats()
			if st.ReorderHeld > c.ReorderPackets || st.ReorderHeldBytes > c.ReorderBytes || st.ReorderHeld < 0 || st.ReorderHeldBytes < 0 {
				t.Fatalf("holding %d packets, %d bytes", st.ReorderHeld, st.ReorderHeldBytes)
			}
			if p := b.peers[src]; p.rxHeld > c.SeqSpan-1 {
				t.Fatalf("node %d holds %d packets", src, p.rxHeld)
			}
		}
		if d, ok := b.Deadline(); ok {
			if d.After(now.Add(c.ReorderTimeout)) {
				t.Fatalf("deadline %v after the timeout", d.Sub(now))
			}
			b.Poll(d)
		}
		b.Poll(now.Add(c.ReorderTimeout))
		seen := map[uint32]bool{}
		for _, f := range b.rec.rx {
			id := binary.BigEndian.Uint32(f.p)
			if seen[id] {
				t.Fatalf("packet %d handed up twice", id)
			}
			seen[id] = true
		}
		if st := b.Stats(); uint64(len(seen))+st.Duplicates != uint64(sent) || st.ReorderHeld != 0 || st.ReorderHeldBytes != 0 {
			t.Fatal(fmt.Sprintf("%d handed up + %d duplicates of %d sent; %d held", len(seen), st.Duplicates, sent, st.ReorderHeld))
		}
	})
}

// BenchmarkReorder: a receiver fed packets with one gap in every four, all
// filled one packet late.
func BenchmarkReorder(b *testing.B) {
	n, err := New(testConfig(2), sinkFuncs{})
	if err != nil {
		b.Fatal(err)
	}
	frames := make([][]byte, 256)
	for s := range frames {
		frames[s] = oneFrag(b, uint8(s), false, pattern(100, byte(s)))
	}
	h := framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 3}
	order := []uint8{0, 2, 3, 1}
	b.ReportAllocs()
	now := t0
	for i := 0; b.Loop(); i++ {
		base := uint8(i * 4)
		for _, o := range order {
			n.Receive(now, h, frames[base+o])
		}
		now = now.Add(time.Hour) // past DupLifetime: numbers may repeat
	}
}

// TestSeqSpan: while one packet is still unacknowledged, the sender numbers
// at most SeqSpan-1 packets after it, however many of those are
// acknowledged: the receiver relies on it to know when a gap is resolved.
func TestSeqSpan(t *testing.T) {
	a, b := newNode(t, testConfig(1)), newNode(t, testConfig(2))
	now := exchange(t, t0, a, b, 2, 1, 0)
	if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, 0)); err != nil {
		t.Fatal(err)
	}
	a.rec.take() // lost
	sent := 0
	for ; sent < 100; sent++ {
		if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, byte(sent))); err != nil {
			if !errors.Is(err, ErrWindowFull) {
				t.Fatal(err)
			}
			break
		}
		deliverAll(now, b, a.rec.take(), nil)
		deliverAll(now, a, b.rec.take(), nil)
	}
	if want := a.cfg.SeqSpan - 1; sent != want {
		t.Fatalf("%d packets numbered after the outstanding one, want %d (SeqSpan-1)", sent, want)
	}
	if held := b.Stats().ReorderHeld; held != sent {
		t.Fatalf("receiver holds %d, want %d", held, sent)
	}
}

// TestReorderStartFarBehind: with SeqSpan 127 (a window of 48, as the link
// sets beside the MAC's bursts), a gap the sender gave up (11), and the one
// packet exactly SeqSpan after it lost too (138), the sender's next packets
// are more than 127 after the window start. They are the newest the
// receiver has seen, so the start moves up behind them: everything is
// handed up once, in order. Before, they were taken for late packets, the
// start stayed at the gap, and after the numbers wrapped a new packet under
// the number of one still held from 256 earlier (12) was dropped as a
// duplicate, acknowledged and never delivered.
func TestReorderStartFarBehind(t *testing.T) {
	c := testConfig(2)
	c.Window = 48
	c.SizeForWindow()
	b := newNode(t, c)
	var ids []uint16 // the packets sent, in order
	for id := uint16(10); id < 256+13; id++ {
		if id == 11 || id == 138 || id == 256+11 {
			continue // lost: given up by the sender
		}
		ids = append(ids, id)
		body := binary.BigEndian.AppendUint16(nil, id)
		b.Receive(t0, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 3}, oneFrag(t, uint8(id), false, body))
	}
	var got []uint16
	for _, f := range b.rec.rx {
		got = append(got, binary.BigEndian.Uint16(f.p))
	}
	// The last packet, 256+12, waits for the gap before it.
	if want := ids[:len(ids)-1]; !slices.Equal(got, want) || b.Stats().ReorderHeld != 1 {
		t.Fatalf("handed up %d packets (%d held), want %d in order; first out of place: %v", len(got), b.Stats().ReorderHeld, len(want), firstDiff(got, want))
	}
}

// firstDiff describes where got and want first differ.
func firstDiff(got, want []uint16) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("#%d is %d, want %d", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}
