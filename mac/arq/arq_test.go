package arq

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy/kiss/kissproto"
)

type frame struct {
	h framing.Header
	p []byte
}

// recorder is a Sink that copies what it is given.
type recorder struct {
	tx, rx []frame
	rxAt   []time.Time // when each of rx was delivered
}

func (r *recorder) Transmit(_ time.Time, f Frame) {
	r.tx = append(r.tx, frame{f.Header, append([]byte(nil), f.Payload...)})
}

func (r *recorder) Deliver(now time.Time, h framing.Header, p []byte) {
	r.rx = append(r.rx, frame{h, append([]byte(nil), p...)})
	r.rxAt = append(r.rxAt, now)
}

func (r *recorder) take() []frame { f := r.tx; r.tx = nil; return f }

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// inFlight is the frames on their way in a two-node test loop (slowLink,
// channelRun): each reaches its node at its time.
type inFlight []arrival

type arrival struct {
	at time.Time
	to node
	f  frame
}

// next is when the loop must act next: the earliest of a's and b's
// deadlines and the arrivals; ok is false when nothing is pending.
func (fl inFlight) next(a, b node) (time.Time, bool) {
	next, ok := a.Deadline()
	if d, okb := b.Deadline(); okb && (!ok || d.Before(next)) {
		next, ok = d, true
	}
	for _, e := range fl {
		if !ok || e.at.Before(next) {
			next, ok = e.at, true
		}
	}
	return next, ok
}

// deliver hands every frame due by now to its node, in order of arrival,
// calling after (if not nil) after each.
func (fl *inFlight) deliver(now time.Time, after func()) {
	for i := 0; i < len(*fl); {
		if e := (*fl)[i]; !e.at.After(now) {
			*fl = slices.Delete(*fl, i, i+1)
			e.to.Receive(now, e.f.h, e.f.p)
			if after != nil {
				after()
			}
			continue
		}
		i++
	}
}

// node is an ARQ with its recorder.
type node struct {
	*ARQ
	rec *recorder
}

func testConfig(self framing.NodeID) Config {
	c := DefaultConfig(self, 24, 200, Timing{BitRate: 9600, Propagation: 10 * time.Millisecond, Margin: 20 * time.Millisecond})
	return c
}

func newNode(t testing.TB, c Config) node {
	t.Helper()
	rec := &recorder{}
	a, err := New(c, rec)
	if err != nil {
		t.Fatal(err)
	}
	return node{a, rec}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// deliverAll hands frames to dst, skipping those for which drop says so.
func deliverAll(now time.Time, dst node, fs []frame, drop func(i int, f frame) bool) {
	for i, f := range fs {
		if drop == nil || !drop(i, f) {
			dst.Receive(now, f.h, f.p)
		}
	}
}

func fragIndex(t *testing.T, f frame) uint8 {
	t.Helper()
	h, _, err := framing.ParseFrag(f.p)
	if err != nil {
		t.Fatalf("not a fragment: %v", err)
	}
	return h.Index
}

func TestTimingAckTimeout(t *testing.T) {
	tm := Timing{BitRate: 1200, Propagation: 670 * time.Millisecond, Turnaround: 50 * time.Millisecond, Margin: 100 * time.Millisecond}
	// largest Ack: 10 bytes payload, 17 inner, 20 on the wire = 160 bits = 133.333 ms.
	want := 133333333*time.Nanosecond + 2*670*time.Millisecond + 150*time.Millisecond
	if got := tm.AckTimeout(); got != want {
		t.Fatalf("AckTimeout %v, want %v", got, want)
	}
}

func TestSendFragments(t *testing.T) {
	a := newNode(t, testConfig(1))
	pkt := pattern(50, 1) // 20 bytes per fragment: 3 fragments
	if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: 2}, pkt); err != nil {
		t.Fatal(err)
	}
	fs := a.rec.take()
	if len(fs) != 3 {
		t.Fatalf("%d frames, want 3", len(fs))
	}
	for i, f := range fs {
		h, body, err := framing.ParseFrag(f.p)
		// The first packet to a node is marked First on every fragment.
		want := framing.FragHeader{AckReq: i == 2, First: true, Inner: framing.KindData, Seq: h.Seq, Index: uint8(i), Count: 3}
		if err != nil || h != want || f.h != (framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 1}) || len(f.p) > 24 {
			t.Fatalf("fragment %d: %+v %+v %v", i, f.h, h, err)
		}
		if !bytes.Equal(body, pkt[i*20:min(i*20+20, 50)]) {
			t.Fatalf("fragment %d body % x", i, body)
		}
	}
}

func TestARQ(t *testing.T) {
	tests := []struct {
		desc string
		size int
		// drop decides, per round (0 = first transmission) and frame index
		// within the round, whether the frame from A to B is lost.
		drop           func(round, i int) bool
		ackLost        func(round int) bool
		wantDelivered  int
		wantRetx       uint64 // fragments retransmitted
		wantGiveUps    uint64
		wantDuplicates uint64
		fixed          bool // MaxAckTimeout 0: every round waits AckTimeout
	}{
		{desc: "no loss", size: 150, wantDelivered: 1},
		{desc: "one middle fragment lost: only it is resent", size: 150,
			drop: func(r, i int) bool { return r == 0 && i == 3 }, wantDelivered: 1, wantRetx: 1},
		{desc: "last fragment (the poll) lost: timeout resends only it", size: 150,
			drop: func(r, i int) bool { return r == 0 && i == 7 }, wantDelivered: 1, wantRetx: 1},
		{desc: "two fragments lost, one of them the poll", size: 150,
			drop: func(r, i int) bool { return r == 0 && (i == 1 || i == 7) }, wantDelivered: 1, wantRetx: 2},
		{desc: "ack lost: retransmission is acked, not delivered twice", size: 60,
			ackLost: func(r int) bool { return r == 0 }, wantDelivered: 1, wantRetx: 1, wantDuplicates: 1},
		{desc: "everything lost, fixed timeout: give up after the retry limit", size: 60, fixed: true,
			drop: func(r, i int) bool { return true }, wantGiveUps: 1, wantRetx: 8},
		// Timeouts at T, 3T, 7T, 15T, 31T (doubling up to 16T), then MaxAge
		// (36T) ends the packet before the retry limit.
		{desc: "everything lost: backoff, give up at MaxAge", size: 60,
			drop: func(r, i int) bool { return true }, wantGiveUps: 1, wantRetx: 5},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			ca := testConfig(1)
			if tc.fixed {
				ca.MaxAckTimeout = 0
			}
			a, b := newNode(t, ca), newNode(t, testConfig(2))
			pkt := pattern(tc.size, 9)
			now := t0
			if err := a.Send(now, framing.Header{Kind: framing.KindEthernet, Dst: 2}, pkt); err != nil {
				t.Fatal(err)
			}
			for round := 0; round < 20; round++ {
				fs := a.rec.take()
				if len(fs) == 0 {
					d, ok := a.Deadline()
					if !ok {
						break
					}
					now = d
					a.Poll(now)
					continue
				}
				deliverAll(now, b, fs, func(i int, f frame) bool { return tc.drop != nil && tc.drop(round, i) })
				acks := b.rec.take()
				if tc.ackLost == nil || !tc.ackLost(round) {
					deliverAll(now, a, acks, nil)
				}
			}
			st, sb := a.Stats(), b.Stats()
			if len(b.rec.rx) != tc.wantDelivered || st.Retransmissions != tc.wantRetx || st.GiveUps != tc.wantGiveUps || sb.Duplicates != tc.wantDuplicates {
				t.Fatalf("delivered %d retx %d giveups %d dups %d; want %d %d %d %d\nA %+v\nB %+v",
					len(b.rec.rx), st.Retransmissions, st.GiveUps, sb.Duplicates,
					tc.wantDelivered, tc.wantRetx, tc.wantGiveUps, tc.wantDuplicates, st, sb)
			}
			if tc.wantDelivered == 1 {
				got := b.rec.rx[0]
				if !bytes.Equal(got.p, pkt) || got.h != (framing.Header{Kind: framing.KindEthernet, Dst: 2, Src: 1}) {
					t.Fatalf("delivered %+v % x", got.h, got.p)
				}
			}
			if st.HeldBytes != 0 || sb.ReasmBytes != 0 {
				t.Fatalf("memory still held: sender %d, receiver %d", st.HeldBytes, sb.ReasmBytes)
			}
			if _, ok := a.Deadline(); ok {
				t.Fatalf("sender still has a timer")
			}
		})
	}
}

func TestBroadcastUnacked(t *testing.T) {
	a, b := newNode(t, testConfig(1)), newNode(t, testConfig(2))
	small, big := pattern(20, 1), pattern(100, 2)
	for _, p := range [][]byte{small, big} {
		if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: framing.Broadcast}, p); err != nil {
			t.Fatal(err)
		}
	}
	fs := a.rec.take()
	if fs[0].h.Kind != framing.KindData || !bytes.Equal(fs[0].p, small) {
		t.Fatalf("a broadcast that fits one frame must go plain, got %+v", fs[0].h)
	}
	for _, f := range fs[1:] {
		if h, _, err := framing.ParseFrag(f.p); err != nil || h.AckReq {
			t.Fatalf("broadcast fragment %+v asks for an ack (%v)", h, err)
		}
	}
	deliverAll(t0, b, fs, nil)
	if len(b.rec.tx) != 0 {
		t.Fatalf("receiver acknowledged a broadcast: %+v", b.rec.tx)
	}
	if len(b.rec.rx) != 2 || !bytes.Equal(b.rec.rx[1].p, big) {
		t.Fatalf("delivered %d packets", len(b.rec.rx))
	}
	if _, ok := a.Deadline(); ok || a.Stats().HeldBytes != 0 {
		t.Fatal("sender keeps state for a broadcast")
	}
}

func TestReassemblyTimeout(t *testing.T) {
	a, b := newNode(t, testConfig(1)), newNode(t, testConfig(2))
	if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: framing.Broadcast}, pattern(100, 3)); err != nil {
		t.Fatal(err)
	}
	fs := a.rec.take()
	deliverAll(t0, b, fs[:len(fs)-1], nil)
	if got := b.Stats().ReasmBytes; got != 80 {
		t.Fatalf("holding %d bytes, want 80", got)
	}
	d, ok := b.Deadline()
	if !ok || d != t0.Add(b.cfg.ReasmTimeout) {
		t.Fatalf("deadline %v %v", d, ok)
	}
	b.Poll(d.Add(-time.Nanosecond))
	if b.Stats().ReasmBytes == 0 {
		t.Fatal("freed before the time-out")
	}
	b.Poll(d)
	if st := b.Stats(); st.ReasmBytes != 0 || st.ReasmTimeouts != 1 || len(b.rec.rx) != 0 {
		t.Fatalf("after time-out: %+v", st)
	}
	deliverAll(d, b, fs[len(fs)-1:], nil) // the straggler alone cannot complete a packet
	if len(b.rec.rx) != 0 {
		t.Fatal("delivered a packet missing its fragments")
	}
}

func TestReassemblyBounded(t *testing.T) {
	c := testConfig(2)
	c.ReasmBuffers, c.ReasmBytes = 3, 250
	a, b := newNode(t, testConfig(1)), newNode(t, c)
	var last []frame
	for i := range 6 {
		if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: framing.Broadcast}, pattern(200, byte(i))); err != nil {
			t.Fatal(err)
		}
		fs := a.rec.take()
		deliverAll(t0.Add(time.Duration(i)), b, fs[:len(fs)-1], nil) // never complete
		last = fs
		if st := b.Stats(); st.ReasmBytes > 250 {
			t.Fatalf("holding %d bytes, cap 250", st.ReasmBytes)
		}
	}
	if st := b.Stats(); st.ReasmEvicted < 5 {
		t.Fatalf("evicted %d", st.ReasmEvicted)
	}
	deliverAll(t0.Add(9), b, last[len(last)-1:], nil) // the newest survives eviction
	if len(b.rec.rx) != 1 || !bytes.Equal(b.rec.rx[0].p, pattern(200, 5)) {
		t.Fatalf("newest packet not completed: %d delivered", len(b.rec.rx))
	}
}

func TestWindowFull(t *testing.T) {
	c := testConfig(1)
	c.Window = 2
	a, b := newNode(t, c), newNode(t, testConfig(2))
	// Before node 2 has acknowledged anything the window is one packet.
	if err := a.Send(t0, framing.Header{Dst: 2}, pattern(10, 0)); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(t0, framing.Header{Dst: 2}, pattern(10, 0)); !errors.Is(err, ErrWindowFull) {
		t.Fatalf("second packet before the first Ack: %v, want ErrWindowFull", err)
	}
	deliverAll(t0, b, a.rec.take(), nil)
	deliverAll(t0, a, b.rec.take(), nil)
	for i := range 3 {
		err := a.Send(t0, framing.Header{Dst: 2}, pattern(10, 0))
		if (i < 2) != (err == nil) {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := a.Send(t0, framing.Header{Dst: 3}, pattern(10, 0)); err != nil {
		t.Fatalf("another destination has its own window: %v", err)
	}
	if err := a.Send(t0, framing.Header{Dst: 3}, pattern(201, 0)); err == nil {
		t.Fatal("oversize packet accepted")
	}
}

// TestRandomLoss: over a lossy link in both directions, every packet is
// delivered exactly once or given up and counted, and all state drains.
func TestRandomLoss(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			loss := 0.05 + 0.3*rng.Float64()
			ca := testConfig(1)
			ca.Window = 1 + rng.IntN(6)
			a, b := newNode(t, ca), newNode(t, testConfig(2))
			const n = 60
			sent, now, next := 0, t0, 0
			for step := 0; step < 100000 && (next < n || a.Stats().HeldBytes > 0 || b.Stats().ReorderHeld > 0 || len(a.rec.tx)+len(b.rec.tx) > 0); step++ {
				now = now.Add(time.Millisecond)
				if next < n {
					size := 1 + rng.IntN(200)
					pkt := pattern(size, byte(next))
					pkt[0] = byte(next)
					if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pkt); err == nil {
						next++
						sent++
					}
				}
				// Deliver in random order within a step, with loss; late
				// duplicates are possible via retransmission.
				fs := a.rec.take()
				rng.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
				deliverAll(now, b, fs, func(int, frame) bool { return rng.Float64() < loss })
				deliverAll(now, a, b.rec.take(), func(int, frame) bool { return rng.Float64() < loss })
				if d, ok := a.Deadline(); ok && !now.Before(d) {
					a.Poll(now)
				}
				if d, ok := b.Deadline(); ok && !now.Before(d) {
					b.Poll(now)
				}
			}
			st := a.Stats()
			seen := map[byte]int{}
			for _, f := range b.rec.rx {
				seen[f.p[0]]++
				if !bytes.Equal(f.p[1:], pattern(len(f.p), f.p[0])[1:]) {
					t.Fatalf("packet %d corrupted", f.p[0])
				}
			}
			for id, c := range seen {
				if c != 1 {
					t.Fatalf("packet %d delivered %d times", id, c)
				}
			}
			// Every acknowledged packet was delivered; every packet not
			// delivered was given up (a delivered packet whose Acks were all
			// lost is given up too, and counted there).
			if uint64(len(seen)) < st.Acked || uint64(sent-len(seen)) > st.GiveUps {
				t.Fatalf("sent %d, delivered %d, acked %d, given up %d", sent, len(seen), st.Acked, st.GiveUps)
			}
			if st.Acked+st.GiveUps != uint64(sent) || st.HeldBytes != 0 {
				t.Fatalf("sent %d but acked %d + given up %d (held %d)", sent, st.Acked, st.GiveUps, st.HeldBytes)
			}
			t.Logf("loss %.2f window %d: %+v", loss, ca.Window, st)
		})
	}
}

func TestNoAllocs(t *testing.T) {
	a, b := newNode(t, testConfig(1)), newNode(t, testConfig(2))
	discard := sinkFunc{}
	a.sink, b.sink = discard, discard
	pkt := pattern(150, 1)
	var frames []frame
	a.sink = sinkFunc{tx: func(h framing.Header, p []byte) { frames = append(frames, frame{h, append([]byte(nil), p...)}) }}
	_ = a.Send(t0, framing.Header{Dst: framing.Broadcast}, pkt)
	now := t0
	n := testing.AllocsPerRun(50, func() {
		now = now.Add(time.Second)
		for _, f := range frames {
			b.Receive(now, f.h, f.p)
		}
		b.Poll(now)
	})
	if n != 0 {
		t.Fatalf("%v allocations per reassembled packet", n)
	}
}

type sinkFunc struct {
	tx func(framing.Header, []byte)
}

func (s sinkFunc) Transmit(_ time.Time, f Frame) {
	if s.tx != nil {
		s.tx(f.Header, f.Payload)
	}
}
func (s sinkFunc) Deliver(time.Time, framing.Header, []byte) {}

func BenchmarkSendReceive(b *testing.B) {
	rx, err := New(testConfig(2), sinkFunc{})
	if err != nil {
		b.Fatal(err)
	}
	tx, err := New(testConfig(1), sinkFunc{tx: func(h framing.Header, p []byte) { rx.Receive(t0, h, p) }})
	if err != nil {
		b.Fatal(err)
	}
	pkt := pattern(150, 1)
	b.ReportAllocs()
	for b.Loop() {
		_ = tx.Send(t0, framing.Header{Dst: framing.Broadcast}, pkt)
	}
}

// TestAirBytes reports the bytes on air per IP datagram with -frame-max 64
// (inner frames of at most 64 bytes: MaxPayload 57) against Ethernet in
// KISS, averaged over random payloads. Run with -v to see the figures;
// docs/link-arq.md quotes them.
func TestAirBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, frameMax := range []int{64, 0} {
		maxPayload := 1514 + framing.FragHeaderLen // no limit: one fragment
		if frameMax > 0 {
			maxPayload = framing.MaxPayloadLen(frameMax)
		}
		per := maxPayload - framing.FragHeaderLen // packet bytes a fragment
		for _, ip := range []int{64, 1000} {
			const runs = 200
			var arqBytes, ackBytes, kissBytes, frags int
			for range runs {
				pkt := make([]byte, 2+ip) // KindData payload: EtherType + IP datagram
				for i := range pkt {
					pkt[i] = byte(rng.UintN(256))
				}
				var wire []byte
				a, err := New(DefaultConfig(1, maxPayload, 1514, Timing{BitRate: 1200}), sinkFunc{tx: func(h framing.Header, p []byte) {
					if frameMax > 0 && framing.MaxEncodedLen(len(p)) > frameMax {
						t.Fatalf("a %d-byte payload may take more than %d bytes on the wire", len(p), frameMax)
					}
					wire = framing.AppendFrame(wire, h, p)
					frags++
				}})
				if err != nil {
					t.Fatal(err)
				}
				if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: 2}, pkt); err != nil {
					t.Fatal(err)
				}
				arqBytes += len(wire)
				eth := append(make([]byte, 12, 14+ip), pkt...) // 14-byte header + IP
				copy(eth, framing.MACFor(2))
				copy(eth[6:], framing.MACFor(1))
				kissBytes += len(kissproto.AppendFrame(nil, 0, kissproto.CmdData, eth))
			}
			count := (2 + ip + per - 1) / per
			a, _ := framing.AppendAck(nil, framing.Ack{Count: uint8(count), Have: countMask(uint8(count))})
			ackBytes = len(framing.AppendFrame(nil, framing.Header{Kind: framing.KindAck, Dst: 1, Src: 2}, a))
			if frags/runs != count {
				t.Fatalf("%d fragments, want %d", frags/runs, count)
			}
			t.Logf("frame-max %d, IP %4d bytes: slided %d fragments, %.1f bytes on air + %d-byte ack = %.1f (overhead %.1f); Ethernet in KISS %.1f (overhead %.1f)",
				frameMax, ip, count, float64(arqBytes)/runs, ackBytes, float64(arqBytes)/runs+float64(ackBytes),
				float64(arqBytes)/runs+float64(ackBytes)-float64(ip), float64(kissBytes)/runs, float64(kissBytes)/runs-float64(ip))
		}
	}
}

// TestArmOnTxDone: with ArmOnTxDone the Ack timer of a round runs from the
// TxDone of its poll, however long the frames waited in the driver's queue,
// and a retry round is unarmed again until its own poll has gone. (Until
// then the only deadline is the end of the packet's life, MaxAge after
// Send: TestQueuedPollGivenUpAtMaxAge.)
func TestArmOnTxDone(t *testing.T) {
	c := testConfig(1)
	c.ArmOnTxDone = true
	a := newNode(t, c)
	if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(50, 1)); err != nil {
		t.Fatal(err)
	}
	fs := a.rec.take()
	unarmed := func() bool {
		d, ok := a.Deadline()
		return ok && d.Equal(t0.Add(c.MaxAge))
	}
	if !unarmed() {
		t.Fatal("deadline armed before the poll went on air")
	}
	queued := t0.Add(10 * c.AckTimeout) // far longer than AckTimeout in the queue
	a.Poll(queued)
	if st := a.Stats(); st.Timeouts != 0 {
		t.Fatalf("timed out while the poll was still queued: %+v", st)
	}
	for _, f := range fs[:len(fs)-1] {
		a.TxDone(queued, f.h, f.p) // not polls: no timer
	}
	if !unarmed() {
		t.Fatal("deadline armed by a fragment without AckReq")
	}
	poll := fs[len(fs)-1]
	a.TxDone(queued, poll.h, poll.p)
	d, ok := a.Deadline()
	if !ok || !d.Equal(queued.Add(c.AckTimeout)) {
		t.Fatalf("deadline %v, %v; want AckTimeout after the poll's TxDone", d.Sub(t0), ok)
	}
	a.Poll(d)
	retry := a.rec.take()
	if st := a.Stats(); st.Timeouts != 1 || len(retry) != 1 {
		t.Fatalf("after the timeout: %+v, %d frames; want one timeout and the poll again", st, len(retry))
	}
	if !unarmed() {
		t.Fatal("retry round armed before its poll went on air")
	}
	a.TxDone(d, retry[0].h, retry[0].p)
	if d2, ok := a.Deadline(); !ok || !d2.Equal(d.Add(2*c.AckTimeout)) { // doubled by the timeout
		t.Fatalf("retry deadline %v, %v", d2.Sub(t0), ok)
	}
}

// TestReceiverForgetsPartialPacket: the receiver frees a partial packet
// (reassembly time-out) while the sender still retries it. The next Ack
// holds only what came after; the sender must send the forgotten fragments
// again instead of adding the two Acks up and counting the packet done.
func TestReceiverForgetsPartialPacket(t *testing.T) {
	a, b := newNode(t, testConfig(1)), newNode(t, testConfig(2))
	pkt := pattern(50, 4) // 3 fragments
	if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: 2}, pkt); err != nil {
		t.Fatal(err)
	}
	fs := a.rec.take()
	deliverAll(t0, b, fs, func(i int, f frame) bool { return i == 0 }) // fragment 0 lost
	deliverAll(t0, a, b.rec.take(), nil)                               // Ack {1,2}: round 2 resends 0
	retry := a.rec.take()
	if len(retry) != 1 || fragIndex(t, retry[0]) != 0 {
		t.Fatalf("round 2 sent %d frames, want fragment 0", len(retry))
	}
	late := t0.Add(b.cfg.ReasmTimeout)
	b.Poll(late) // the receiver gives the partial packet up
	if b.Stats().ReasmTimeouts != 1 {
		t.Fatalf("receiver stats %+v: want one reassembly time-out", b.Stats())
	}
	deliverAll(late, b, retry, nil)        // fragment 0 alone now
	deliverAll(late, a, b.rec.take(), nil) // Ack {0}
	if st := a.Stats(); st.Acked != 0 {
		t.Fatalf("sender counted the packet acknowledged with fragments 1 and 2 forgotten: %+v", st)
	}
	again := a.rec.take()
	if len(again) != 2 || fragIndex(t, again[0]) != 1 || fragIndex(t, again[1]) != 2 {
		t.Fatalf("round 3 sent %d frames, want fragments 1 and 2", len(again))
	}
	deliverAll(late, b, again, nil)
	deliverAll(late, a, b.rec.take(), nil)
	if len(b.rec.rx) != 1 || !bytes.Equal(b.rec.rx[0].p, pkt) || a.Stats().Acked != 1 {
		t.Fatalf("delivered %d packets, sender %+v; want the packet once and acknowledged", len(b.rec.rx), a.Stats())
	}
}

// TestLifetimes: the default configuration's lifetimes keep a late
// retransmission from being delivered twice, whatever the queueing delay.
func TestLifetimes(t *testing.T) {
	for _, q := range []time.Duration{0, 500 * time.Millisecond, 10 * time.Second} {
		c := DefaultConfig(1, 54, 1514, Timing{BitRate: 9600, Margin: 50 * time.Millisecond, QueueDelay: q})
		if c.MaxAge+q > c.DupLifetime {
			t.Errorf("queue %v: max age %v + queue > duplicate lifetime %v", q, c.MaxAge, c.DupLifetime)
		}
	}
}

// TestMaxAge: with ArmOnTxDone and a poll that waits long in the queue every
// round, rounds take far longer than AckTimeout; the packet is given up once
// MaxAge has passed since Send, and nothing of it is sent after that.
func TestMaxAge(t *testing.T) {
	c := testConfig(1)
	c.ArmOnTxDone = true
	a := newNode(t, c)
	if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, 1)); err != nil {
		t.Fatal(err)
	}
	now := t0
	var last time.Time
	for round := 0; round < 100 && a.Stats().GiveUps == 0; round++ {
		fs := a.rec.take()
		if len(fs) > 0 {
			last = now
		}
		now = now.Add(3 * c.AckTimeout) // waited in the queue
		for _, f := range fs {
			a.TxDone(now, f.h, f.p)
		}
		now = now.Add(c.AckTimeout) // no Ack
		a.Poll(now)
	}
	if a.Stats().GiveUps != 1 {
		t.Fatalf("not given up: %+v", a.Stats())
	}
	if last.Sub(t0) >= c.MaxAge || now.Sub(t0) > c.MaxAge+4*c.AckTimeout {
		t.Fatalf("last retransmission %v after Send, given up at %v; max age %v", last.Sub(t0), now.Sub(t0), c.MaxAge)
	}
}

// TestSeqReuse: sequence numbers wrap without a pause. After 256 packets,
// each delivered and acknowledged at once, the next packet reuses number 0
// within the receiver's duplicate lifetime; it is ahead of the most advanced
// packet delivered, so it is delivered, not taken for the old packet 0. A
// retransmission of an old packet, behind it, is still suppressed.
func TestSeqReuse(t *testing.T) {
	c := testConfig(1)
	a, b := newNode(t, c), newNode(t, testConfig(2))
	now := t0
	var old []frame
	for i := range 258 {
		if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, byte(i))); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		fs := a.rec.take()
		if i == 255 {
			old = fs // seq 255
		}
		deliverAll(now, b, fs, nil)
		deliverAll(now, a, b.rec.take(), nil) // acknowledged at once
		now = now.Add(time.Millisecond)
	}
	if got := len(b.rec.rx); got != 258 {
		t.Fatalf("%d of 258 packets delivered (%+v)", got, b.Stats())
	}
	if !bytes.Equal(b.rec.rx[256].p, pattern(10, 0)) {
		t.Fatal("packet 256 (seq 0 again) delivered with the wrong payload")
	}
	deliverAll(now, b, old, nil) // a late retransmission of seq 255
	if got := len(b.rec.rx); got != 258 || b.Stats().Duplicates != 1 {
		t.Fatalf("late retransmission: %d delivered, %+v; want it suppressed", got, b.Stats())
	}
}

// exchange sends n packets from a to dst, each delivered and acknowledged at
// once, and returns the time after the last.
func exchange(t *testing.T, now time.Time, a, b node, dst framing.NodeID, n int, seed byte) time.Time {
	t.Helper()
	for i := range n {
		if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: dst}, pattern(10, seed+byte(i))); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		deliverAll(now, b, a.rec.take(), nil)
		deliverAll(now, a, b.rec.take(), nil)
		now = now.Add(time.Millisecond)
	}
	return now
}

// TestSenderRestart: a sender that restarts (a new ARQ for the same node:
// the daemon was restarted) numbers its packets afresh, and the receiver
// must deliver them, not take them for duplicates of the packets it
// delivered from the sender's previous life; a retransmission of the new
// first packet is still suppressed.
func TestSenderRestart(t *testing.T) {
	a, b := newNode(t, testConfig(1)), newNode(t, testConfig(2))
	now := exchange(t, t0, a, b, 2, 20, 0)
	if got := len(b.rec.rx); got != 20 {
		t.Fatalf("before the restart: %d of 20 delivered", got)
	}
	a = newNode(t, testConfig(1)) // restarted, within the receiver's DupLifetime
	now = now.Add(time.Second)
	// Its first packet waits for an Ack before the next one goes: the
	// receiver has to learn where the new numbering starts.
	if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, 100)); err != nil {
		t.Fatal(err)
	}
	first := a.rec.take()
	if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, 101)); !errors.Is(err, ErrWindowFull) {
		t.Fatalf("second packet before the first Ack: %v, want ErrWindowFull", err)
	}
	deliverAll(now, b, first, nil)
	b.rec.take()                   // the Ack is lost
	deliverAll(now, b, first, nil) // the retransmission
	if got, d := len(b.rec.rx), b.Stats().Duplicates; got != 21 || d != 1 {
		t.Fatalf("first packet after the restart: %d delivered (want 21), %d duplicates (want 1)", got, d)
	}
	deliverAll(now, a, b.rec.take(), nil) // this Ack arrives
	now = exchange(t, now, a, b, 2, 10, 102)
	if got := len(b.rec.rx); got != 31 {
		t.Fatalf("after the restart: %d of 31 delivered (%+v)", got, b.Stats())
	}
	for i, f := range b.rec.rx[20:] {
		want := pattern(10, 100)
		if i > 0 {
			want = pattern(10, 102+byte(i-1))
		}
		if !bytes.Equal(f.p, want) {
			t.Fatalf("packet %d after the restart: wrong payload", i)
		}
	}
}

// TestSenderRestartSameSeq: a sender restarted so that its numbering starts
// at the same sequence number as in its previous life (it starts from the
// clock's milliseconds modulo 256) is still recognised as new, because the
// receiver has delivered later packets of the previous life since its First
// packet; a partial packet of the previous life under that number is not
// mixed into the new one.
func TestSenderRestartSameSeq(t *testing.T) {
	a, b := newNode(t, testConfig(1)), newNode(t, testConfig(2))
	now := exchange(t, t0, a, b, 2, 5, 0)
	// A 3-fragment packet of the previous life, only its first fragment heard.
	if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(50, 50)); err != nil {
		t.Fatal(err)
	}
	deliverAll(now, b, a.rec.take()[:1], nil)
	a = newNode(t, testConfig(1))
	now = t0.Add(256 * time.Millisecond) // same starting number as at t0
	pkt := pattern(50, 200)
	if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pkt); err != nil {
		t.Fatal(err)
	}
	fs := a.rec.take()
	if h, _, _ := framing.ParseFrag(fs[0].p); !h.First {
		t.Fatalf("first packet after the restart not marked First: %+v", h)
	}
	deliverAll(now, b, fs, nil)
	if got := len(b.rec.rx); got != 6 || !bytes.Equal(b.rec.rx[5].p, pkt) {
		t.Fatalf("%d delivered (want 6, the last the new packet whole); %+v", got, b.Stats())
	}
	// Its retransmission is a duplicate, and later packets go through, up
	// to seq 5, where the previous life left a partial packet.
	deliverAll(now, b, fs, nil)
	deliverAll(now, a, b.rec.take(), nil)
	now = exchange(t, now, a, b, 2, 4, 210)
	if got, d := len(b.rec.rx), b.Stats().Duplicates; got != 10 || d != 3 {
		t.Fatalf("%d delivered (want 10), %d duplicate fragments (want 3)", got, d)
	}
	pkt = pattern(50, 220) // seq 5, three fragments
	if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pkt); err != nil {
		t.Fatal(err)
	}
	deliverAll(now, b, a.rec.take()[1:], nil) // fragments 1 and 2 only
	if got := len(b.rec.rx); got != 10 {
		t.Fatalf("seq 5 delivered from the previous life's fragment 0 and the new 1 and 2: %d packets", got)
	}
}

// TestReorderAfterWrap: once the sequence numbers have wrapped within
// DupLifetime, a packet that arrives after a later one (a lost fragment
// retransmitted while the next packet got through) is new, not a duplicate
// of the packet that had its number 256 packets earlier. Before the fix the
// receiver acknowledged it and never delivered it: the acked-but-lost
// datagrams of the 4 MiB backpressure test.
func TestReorderAfterWrap(t *testing.T) {
	a, b := newNode(t, testConfig(1)), newNode(t, testConfig(2))
	now := exchange(t, t0, a, b, 2, 256, 0) // every number used once, just now
	// Two packets in flight; the first one's frames are lost, the second's
	// arrive, then the first is retransmitted.
	for i := range 2 {
		if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, byte(100+i))); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	fs := a.rec.take()
	first, second := fs[:len(fs)/2], fs[len(fs)/2:]
	deliverAll(now, b, second, nil)
	deliverAll(now, b, first, nil)
	if got := len(b.rec.rx); got != 258 {
		t.Fatalf("%d of 258 packets delivered (%+v); the reordered one was taken for a duplicate", got, b.Stats())
	}
	if d := b.Stats().Duplicates; d != 0 {
		t.Fatalf("%d duplicates counted, want 0", d)
	}
}

// TestLateAckOfFirstSyncs: a sender's First packet whose last round went on
// air after MaxAge is given up at that TxDone, just before its Ack comes
// (on a crowded channel a round waits minutes in the MAC queue). The Ack
// still shows that the receiver has seen where the numbering starts, so
// the sender is synchronised: its next packets are not marked First and
// more than one may be outstanding. Before, the Ack was only stale: a node
// of the 100-node ring sent one First packet at a time, each given up the
// same way, its timeout backed off to minutes for want of a sample, and
// delivered 2 datagrams in 1,667 s (docs/mac.md).
func TestLateAckOfFirstSyncs(t *testing.T) {
	c := testConfig(1)
	c.ArmOnTxDone = true
	a, b := newNode(t, c), newNode(t, testConfig(2))
	if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, 1)); err != nil {
		t.Fatal(err)
	}
	fs := a.rec.take()
	if len(fs) != 1 {
		t.Fatalf("%d frames, want 1", len(fs))
	}
	if h, _, _ := framing.ParseFrag(fs[0].p); !h.First {
		t.Fatalf("first packet not marked First: %+v", h)
	}
	// On air only after MaxAge: given up at once.
	now := t0.Add(c.MaxAge + time.Second)
	a.TxDone(now, fs[0].h, fs[0].p)
	a.Poll(now)
	if a.Stats().GiveUps != 1 {
		t.Fatalf("not given up on air after MaxAge: %+v", a.Stats())
	}
	// The receiver got it and answers: the Ack comes after the give-up.
	deliverAll(now, b, fs, nil)
	now = now.Add(20 * time.Millisecond)
	deliverAll(now, a, b.rec.take(), nil)
	for i := range 3 {
		if err := a.Send(now, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, byte(2+i))); err != nil {
			t.Fatalf("packet %d after the late Ack: %v (one outstanding at a time: not synchronised)", i, err)
		}
	}
	fs = a.rec.take()
	if len(fs) != 3 {
		t.Fatalf("after the late Ack %d packets sent at once, want 3 (one outstanding at a time: not synchronised)", len(fs))
	}
	for _, f := range fs {
		if h, _, _ := framing.ParseFrag(f.p); h.First {
			t.Fatalf("packet after the late Ack of the First one still marked First: %+v", h)
		}
	}
	deliverAll(now, b, fs, nil)
	if got := len(b.rec.rx); got != 4 {
		t.Errorf("receiver delivered %d packets, want 4", got)
	}
}
