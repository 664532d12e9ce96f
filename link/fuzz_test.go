package link

import (
	"fmt"
	"testing"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// FuzzEngine feeds an engine arbitrary modem bytes (cut into bursts where
// cuts says) and an arbitrary host frame, with and without a key, next to a
// well-behaved peer, on modems that take bursts or not: nothing panics, nothing larger than the MTU reaches
// the host, every frame on air decodes, and the engine's queues stay
// within their bounds.
func FuzzEngine(f *testing.F) {
	h, p, _ := framing.Compact(ethFrame(1, 2), 2)
	good := framing.AppendFrame(nil, h, p)
	frag, _ := framing.AppendFrag(nil, framing.FragHeader{AckReq: true, First: true, Inner: framing.KindEthernet, Count: 2})
	fragFrame := framing.AppendFrame(nil, framing.Header{Kind: framing.KindFragment, Dst: 1, Src: 2}, append(frag, 1, 2, 3))
	ack, _ := framing.AppendAck(nil, framing.Ack{Seq: 3, Count: 1, Have: 1})
	ackFrame := framing.AppendFrame(nil, framing.Header{Kind: framing.KindAck, Dst: 1, Src: 2}, ack)
	f.Add(good, []byte{5}, ethFrame(2, 1), false)
	f.Add(append(append([]byte{0, 1, 2}, fragFrame...), ackFrame...), []byte{3, 9}, arpFrame(1, hostMAC, "192.0.2.1", "192.0.2.2"), false)
	f.Add(good, []byte{}, ethFrame(framing.Broadcast, 1), true)
	f.Add([]byte{0, 0, 0}, []byte{1}, []byte{}, true)
	// Version 2: a hello, then a compressed packet in a fragment, and one
	// whose header cannot be rebuilt.
	hello := framing.AppendFrame(nil, framing.Header{Kind: framing.KindHello, Dst: 1, Src: 2}, []byte{2})
	c, _ := framing.AppendIPHC(nil, udpFrame(1, 2, 5, 40)[12:])
	iphc, _ := framing.AppendFrag(nil, framing.FragHeader{AckReq: true, First: true, Inner: framing.KindIPHC, Count: 1})
	iphcFrame := framing.AppendFrame(nil, framing.Header{Kind: framing.KindFragment, Dst: 1, Src: 2, Version: 2}, append(iphc, c...))
	bad := framing.AppendFrame(nil, framing.Header{Kind: framing.KindIPHC, Dst: 1, Src: 2, Version: 2}, []byte{0xb0, 1})
	f.Add(append(append(hello, iphcFrame...), bad...), []byte{200, 200}, udpFrame(2, 1, 6, 300), false)
	f.Fuzz(func(t *testing.T, air, cuts, host []byte, keyed bool) {
		if len(air) > 1<<16 || len(host) > 1<<14 {
			return
		}
		var key *auth.Key
		if keyed {
			key = &auth.Key{1, 2, 3}
		}
		m := newMedium(t, 115200)
		if len(host)%2 == 1 {
			m.burstMax = 8 // modems that take bursts of frames
		}
		n1 := m.add(Config{Node: 1, Key: key, FrameMax: 200, Policy: DropHead})
		m.add(Config{Node: 2, Key: key})
		for len(air) > 0 {
			n := len(air)
			if len(cuts) > 0 {
				n = min(n, int(cuts[0])+1)
				cuts = cuts[1:]
			}
			m.inject(n1, air[:n])
			air = air[n:]
		}
		for range 3 {
			m.hostFrame(n1, host)
		}
		m.run(time.Minute)
		for _, b := range n1.host {
			if len(b) > 1514 {
				t.Fatalf("%d bytes to the host, more than the MTU", len(b))
			}
		}
		e := n1.e
		if len(e.held) > maxHeld || len(e.acks) > maxAcks || len(e.pend) > 2*framing.MaxFragments {
			t.Fatalf("held %d, acks %d, pend %d", len(e.held), len(e.acks), len(e.pend))
		}
		st := e.Stats(m.Now())
		if st.QueueDepth > st.QueueLen+ackReserve {
			t.Fatalf("queue %d of %d", st.QueueDepth, st.QueueLen)
		}
	})
}

// BenchmarkEngine is the per-frame path of two engines with ARQ: a packet
// from the host, on air, decoded, delivered, acknowledged and the Ack
// taken, without a medium in between, on a modem that takes one frame at a
// time and on one that takes bursts. The steady state allocates nothing.
func BenchmarkEngine(b *testing.B) {
	for _, burst := range []int{0, 8} {
		b.Run(fmt.Sprintf("burst=%d", burst), func(b *testing.B) { benchEngine(b, burst) })
	}
}

func benchEngine(b *testing.B, burst int) {
	now := time.Unix(1_000_000, 0)
	info := phy.Info{BitRate: 115200, MaxBurstFrames: burst}
	e1, _ := New(Config{Node: 1, Seed: 1})
	e2, _ := New(Config{Node: 2, Seed: 2})
	e1.Modem(now, phy.Event{Kind: phy.Up}, info)
	e2.Modem(now, phy.Event{Kind: phy.Up}, info)
	eth := ethFrame(2, 1)
	// send runs from's next frame to the air and into to; false if none.
	send := func(from, to *Engine) bool {
		f, ok := from.Poll(now)
		for i := 0; !ok && i < 100; i++ {
			d, dok := from.Deadline()
			if !dok {
				return false
			}
			now = d
			f, ok = from.Poll(now)
		}
		if !ok {
			return false
		}
		now = now.Add(phy.Airtime(len(f), info.BitRate))
		to.Modem(now, phy.Event{Kind: phy.Received, Data: f}, info)
		from.Modem(now, phy.Event{Kind: phy.TxDone}, info)
		for _, d := range to.Deliveries() {
			to.Written(now, d, nil)
		}
		return true
	}
	// Behind a modem that takes bursts the packets of a lone flow go in
	// groups, one Ack a group (arq.Config.GroupPolls): node 2 answers
	// when it has something to say.
	round := func() {
		e1.Host(now, eth)
		if !send(e1, e2) || burst == 0 && !send(e2, e1) {
			b.Fatal("no frame or no Ack")
		}
		if burst > 0 {
			send(e2, e1)
		}
	}
	for range 100 {
		round()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		round()
	}
	b.StopTimer()
	if st := e2.Stats(now); st.RxFrames < 100 || st.ARQ.AcksSent < 100 && burst == 0 || st.ARQ.AcksSent == 0 {
		b.Fatalf("rx %d, acks %d", st.RxFrames, st.ARQ.AcksSent)
	}
}
