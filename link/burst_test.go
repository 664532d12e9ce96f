package link

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// frames decodes a burst into its frames' headers, in order.
func frames(t *testing.T, data []byte) []framing.Header {
	t.Helper()
	var hs []framing.Header
	d := framing.NewDecoder(4096)
	d.Feed(data, func(h framing.Header, _ []byte) { hs = append(hs, h) })
	d.Feed([]byte{0}, func(h framing.Header, _ []byte) { hs = append(hs, h) })
	if st := d.Stats(); st.BadCRC+st.BadCOBS+st.TooLong+st.Short+st.BadVersion+st.BadAddr != 0 {
		t.Fatalf("a burst that does not decode: %+v", st)
	}
	return hs
}

// burstPair is two engines on a 9600 bit/s medium whose modems take bursts
// of up to max frames and key up for 300 ms each transmission; every
// transmission is recorded.
func burstPair(t *testing.T, max int, c1, c2 Config) (*medium, *node, *node, *[]*burst) {
	m := newMedium(t, 9600)
	m.burstMax, m.KeyUp = max, 300*time.Millisecond
	var log []*burst
	m.Bursts = &log
	c1.Node, c2.Node = 1, 2
	return m, m.add(c1), m.add(c2), &log
}

// hostAll gives n's host the frames while its channel is busy, as frames
// pile up while another node sends: they are all ready when the MAC grants
// access.
func hostAll(m *medium, n *node, fs [][]byte) {
	m.event(n, phy.Event{Kind: phy.CarrierOn})
	for _, f := range fs {
		m.hostFrame(n, f)
	}
	m.event(n, phy.Event{Kind: phy.CarrierOff})
}

// withoutHellos leaves out the version hellos (link/version.go) that ride
// in front of the first Acks to a peer: they are not part of what a test of
// bursts counts.
func withoutHellos(hs []framing.Header) []framing.Header {
	out := hs[:0:0]
	for _, h := range hs {
		if h.Kind != framing.KindHello {
			out = append(out, h)
		}
	}
	return out
}

func numberedSet(n int, size int) ([][]byte, map[uint32][]byte) {
	var fs [][]byte
	sent := map[uint32][]byte{}
	for id := range uint32(n) {
		f := numbered(2, 1, id, size)
		sent[id] = f
		fs = append(fs, f)
	}
	return fs, sent
}

// TestBurstForms: frames ready together go in one transmission, under one
// poll (version 2: arq.Config.GroupPolls), answered by one Ack that reports
// every packet of the burst, and everything arrives once; the sender keeps
// the channel until the Ack has come. (Before grouped polls: four polls,
// answered by a transmission of four Acks.)
func TestBurstForms(t *testing.T) {
	cfg := Config{Policy: DropTail}
	m, n1, n2, log := burstPair(t, 8, cfg, cfg)
	// The first packet to a peer goes alone (the First handshake, window
	// 1); the rest are ready together once it is acknowledged.
	fs, sent := numberedSet(5, 300)
	hostAll(m, n1, fs[:1])
	m.run(5 * time.Second)
	hostAll(m, n1, fs[1:])
	m.run(20 * time.Second)
	if got := checkDelivered(t, n2, sent); got != len(fs) {
		t.Fatalf("%d of %d delivered", got, len(fs))
	}
	var data, acks []int // frames per transmission of each node
	for _, b := range *log {
		hs := withoutHellos(frames(t, b.Data))
		if m.from(b) == n1 {
			data = append(data, len(hs))
		} else {
			for _, h := range hs {
				if h.Kind != framing.KindAck {
					t.Fatalf("node 2 sent a %v", h.Kind)
				}
			}
			acks = append(acks, len(hs))
		}
	}
	if len(data) != 2 || data[0] != 1 || data[1] != 4 {
		t.Errorf("node 1's transmissions held %v frames, want [1 4]", data)
	}
	if len(acks) != 2 || acks[0] != 1 || acks[1] != 1 {
		t.Errorf("node 2's transmissions held %v Acks, want [1 1]", acks)
	}
	if s2 := n2.e.Stats(m.Now()); s2.ARQ.AcksSent != 2 || s2.ARQ.AckRecords != 3 {
		t.Errorf("receiver: %d Acks with %d records beyond the first; want 2 and 3", s2.ARQ.AcksSent, s2.ARQ.AckRecords)
	}
	s1 := n1.e.Stats(m.Now())
	if s1.TxFrames != 5 || s1.TxBursts != 1 || s1.ARQ.Retransmissions != 0 {
		t.Errorf("sender: %d frames, %d bursts, %d retransmissions; want 5, 1, 0",
			s1.TxFrames, s1.TxBursts, s1.ARQ.Retransmissions)
	}
}

// TestBurstLimits: a burst never holds more frames than the modem takes,
// and each frame stays within the frame size; a modem that takes no bursts
// (MaxBurstFrames 0 or 1) gets one frame per transmission.
func TestBurstLimits(t *testing.T) {
	for _, tc := range []struct {
		max, frameMax int
	}{{0, 0}, {1, 0}, {2, 0}, {3, 200}, {64, 200}} {
		cfg := Config{Policy: DropTail, FrameMax: tc.frameMax}
		m, n1, n2, log := burstPair(t, tc.max, cfg, cfg)
		fs, sent := numberedSet(4, 300)
		hostAll(m, n1, fs[:1])
		m.run(5 * time.Second)
		hostAll(m, n1, fs[1:])
		m.run(time.Minute)
		if got := checkDelivered(t, n2, sent); got != len(fs) {
			t.Fatalf("max %d: %d of %d delivered", tc.max, got, len(fs))
		}
		most := 0
		for _, b := range *log {
			n := len(frames(t, b.Data))
			most = max(most, n)
			if tc.max <= 1 && n != 1 {
				t.Fatalf("max %d: a transmission of %d frames", tc.max, n)
			}
			if n > tc.max && n > 1 {
				t.Fatalf("max %d: a transmission of %d frames", tc.max, n)
			}
			if tc.frameMax > 0 {
				// Each frame alone within the limit: split at the
				// delimiters.
				for _, f := range splitFrames(b.Data) {
					if len(f)+2 > tc.frameMax {
						t.Fatalf("max %d: a frame of %d bytes, limit %d", tc.max, len(f)+2, tc.frameMax)
					}
				}
			}
		}
		if tc.max > 1 && most < 2 {
			t.Errorf("max %d: no burst formed", tc.max)
		}
	}
}

// splitFrames cuts a burst at its 0x00 delimiters (without them).
func splitFrames(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i, c := range b {
		switch {
		case c != 0 && start < 0:
			start = i
		case c == 0 && start >= 0:
			out = append(out, b[start:i])
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, b[start:])
	}
	return out
}

// TestLoneFrameUnchanged: one frame ready is sent as it always was: the
// transmission is exactly the frame, with or without burst support.
func TestLoneFrameUnchanged(t *testing.T) {
	var got [2][]byte
	for i, max := range []int{0, 8} {
		m, n1, n2, log := burstPair(t, max, Config{Seed: 5}, Config{Seed: 6})
		fs, sent := numberedSet(1, 200)
		hostAll(m, n1, fs)
		m.run(5 * time.Second)
		if checkDelivered(t, n2, sent) != 1 {
			t.Fatalf("max %d: not delivered", max)
		}
		first := (*log)[0]
		if m.from(first) != n1 || len(frames(t, first.Data)) != 1 {
			t.Fatalf("max %d: first transmission not the lone frame", max)
		}
		if first.Data[0] != 0 || first.Data[len(first.Data)-1] != 0 || len(splitFrames(first.Data)) != 1 {
			t.Fatalf("max %d: the lone frame is not one delimited frame", max)
		}
		got[i] = first.Data
	}
	if len(got[0]) != len(got[1]) {
		t.Errorf("the lone frame is %d bytes without bursts, %d with", len(got[0]), len(got[1]))
	}
}

// TestAckRidesWithData: a node that owes an Ack and has data queued (for
// the same peer or another) sends both in one transmission, the Ack
// first, not the Ack in a key-up of its own.
func TestAckRidesWithData(t *testing.T) {
	m, n1, n2, log := burstPair(t, 8, Config{}, Config{})
	// Node 2 sends first so that both directions are past the First
	// handshake (window 1) before the test.
	hostAll(m, n2, [][]byte{numbered(1, 2, 100, 100)})
	m.run(5 * time.Second)
	hostAll(m, n1, [][]byte{numbered(2, 1, 101, 100)})
	m.run(5 * time.Second)
	*log = (*log)[:0]
	// Node 1 transmits; while it is on air node 2's host gives it a
	// packet for node 1 (node 2 defers to the carrier).
	hostAll(m, n1, [][]byte{numbered(2, 1, 1, 1000)})
	m.run(100 * time.Millisecond)
	if !m.Transmitting(n1.i) {
		t.Fatal("node 1 is not on air")
	}
	m.hostFrame(n2, numbered(1, 2, 2, 1000)) // the channel is busy
	m.run(20 * time.Second)
	if len(n2.host) != 2 || len(n1.host) != 2 {
		t.Fatalf("delivered %d to node 2, %d to node 1; want 2 each", len(n2.host), len(n1.host))
	}
	var from2 [][]framing.Header
	for _, b := range *log {
		if m.from(b) == n2 {
			from2 = append(from2, frames(t, b.Data))
		}
	}
	if len(from2) == 0 {
		t.Fatal("node 2 sent nothing")
	}
	first := from2[0]
	if len(first) != 2 || first[0].Kind != framing.KindAck || first[1].Kind != framing.KindFragment {
		t.Errorf("node 2's first transmission: %+v; want its Ack, then its data", first)
	}
	if len(from2) != 1 {
		for _, b := range *log {
			t.Logf("%v from %d: %+v", b.Start.Sub(m.Now()), m.from(b).e.cfg.Node, frames(t, b.Data))
		}
		t.Errorf("node 2 keyed up %d times, want once", len(from2))
	}
}

// TestBurstsSaveKeyUps: a bulk flow over a modem that costs 300 ms per
// key-up takes fewer transmissions and less time with bursts.
func TestBurstsSaveKeyUps(t *testing.T) {
	var tx [2]int
	var took [2]time.Duration
	for i, max := range []int{1, 8} {
		cfg := Config{}
		m, n1, n2, log := burstPair(t, max, cfg, cfg)
		fs, sent := numberedSet(30, 1000)
		start := m.Now()
		sendAll(m, n1, fs)
		for j := 0; j < 600 && len(n2.host) < len(fs); j++ {
			m.run(100 * time.Millisecond)
		}
		if got := checkDelivered(t, n2, sent); got != len(fs) {
			t.Fatalf("max %d: %d of %d delivered", max, got, len(fs))
		}
		tx[i], took[i] = len(*log), m.Now().Sub(start)
	}
	t.Logf("transmissions %v, took %v (one frame a key-up, bursts of 8)", tx, took)
	if tx[1] >= tx[0] || took[1] >= took[0] {
		t.Errorf("bursts: %d transmissions in %v; without: %d in %v", tx[1], took[1], tx[0], took[0])
	}
}

// TestRefusedBurstGoesSolo: a burst the modem refuses is lost whole, and
// the next transmissions carry one frame each, so that a frame the modem
// cannot take does not take the others down with it again.
func TestRefusedBurstGoesSolo(t *testing.T) {
	m := newMedium(t, 9600)
	m.burstMax = 8
	// A TNC's key-up: where key-ups cost nothing the frame that won a
	// contention goes alone (Engine.macDoesAccess).
	m.KeyUp = 10 * time.Millisecond
	e := m.add(Config{Node: 1, Policy: DropTail, NoARQ: true}).e
	now := m.Now()
	// queue gives the engine n packets while its channel is busy.
	queue := func(first, n int) {
		for i := range n {
			e.Modem(now, phy.Event{Kind: phy.CarrierOn}, phy.Info{})
			e.Host(now, numbered(2, 1, uint32(first+i), 100))
			e.Poll(now)
			e.Modem(now, phy.Event{Kind: phy.CarrierOff}, phy.Info{})
		}
	}
	queue(0, 3)
	now = now.Add(time.Second)
	b, ok := e.Poll(now)
	if !ok || len(frames(t, b)) != 3 {
		t.Fatalf("first transmission: %v, %d frames; want a burst of 3", ok, len(frames(t, b)))
	}
	e.Refused(now, phy.ErrTooLarge)
	queue(10, 4)
	var sizes []int
	for range 10 {
		now = now.Add(time.Second)
		b, ok := e.Poll(now)
		if !ok {
			continue
		}
		sizes = append(sizes, len(frames(t, b)))
		e.Modem(now, phy.Event{Kind: phy.TxDone}, phy.Info{})
	}
	if fmt.Sprint(sizes) != "[1 1 1 1]" {
		t.Fatalf("transmissions after the refusal held %v frames; want [1 1 1 1] (three alone, then what is left)", sizes)
	}
	queue(20, 2)
	now = now.Add(time.Second)
	if b, ok := e.Poll(now); !ok || len(frames(t, b)) != 2 {
		t.Fatalf("after the solo transmissions: %v, %d frames; want a burst of 2 again", ok, len(frames(t, b)))
	}
	if st := e.Stats(now); st.Drops.PHYTooLarge != 1 {
		t.Errorf("phy_too_large %d, want 1", st.Drops.PHYTooLarge)
	}
}

// TestAckWaitsForAnswer: behind a TNC that takes bursts, an Ack waits a
// moment (maxAckHold at most) for the host's answer to the packet it
// acknowledges, and both go in one key-up; with no answer the Ack goes
// alone once the moment has passed.
func TestAckWaitsForAnswer(t *testing.T) {
	for _, answer := range []bool{true, false} {
		m := newMedium(t, 9600)
		m.burstMax, m.KeyUp, m.accessWait = 8, 300*time.Millisecond, 400*time.Millisecond
		var log []*burst
		m.Bursts = &log
		n1, n2 := m.add(Config{Node: 1}), m.add(Config{Node: 2})
		// Both directions past the First handshake.
		hostAll(m, n2, [][]byte{numbered(1, 2, 100, 100)})
		m.run(5 * time.Second)
		hostAll(m, n1, [][]byte{numbered(2, 1, 101, 100)})
		m.run(5 * time.Second)
		log = log[:0]
		m.hostFrame(n1, numbered(2, 1, 1, 200))
		got := len(n2.host)
		for i := 0; i < 5000 && len(n2.host) == got; i++ {
			m.run(time.Millisecond)
		}
		delivered := m.Now()
		if answer {
			m.hostFrame(n2, numbered(1, 2, 2, 200)) // the echo, a millisecond later
		}
		m.run(10 * time.Second)
		var first *burst
		for _, b := range log {
			if m.from(b) == n2 {
				first = b
				break
			}
		}
		if first == nil {
			t.Fatalf("answer %v: node 2 sent nothing", answer)
		}
		hs := frames(t, first.Data)
		switch {
		case answer && (len(hs) != 2 || hs[0].Kind != framing.KindAck || hs[1].Kind != framing.KindFragment):
			t.Errorf("with an answer: node 2's first transmission %+v; want the Ack, then the answer", hs)
		case !answer && (len(hs) != 1 || hs[0].Kind != framing.KindAck):
			t.Errorf("without an answer: node 2's first transmission %+v; want the Ack alone", hs)
		case first.Start.Sub(delivered) > maxAckHold:
			t.Errorf("answer %v: the Ack went %v after the packet, more than %v", answer, first.Start.Sub(delivered), maxAckHold)
		}
		if s := n1.e.Stats(m.Now()); s.ARQ.Retransmissions != 0 {
			t.Errorf("answer %v: %d retransmissions", answer, s.ARQ.Retransmissions)
		}
	}
}

// fragFrame is the air frame of a one-fragment packet from src to dst with
// sequence number seq that asks for an Ack.
func fragFrame(t *testing.T, src, dst framing.NodeID, seq uint8, first bool, eth []byte) []byte {
	t.Helper()
	h, p, err := framing.Compact(eth, src)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := framing.AppendFrag(nil, framing.FragHeader{AckReq: true, First: first, Inner: h.Kind, Seq: seq, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	return framing.AppendFrame(nil, framing.Header{Kind: framing.KindFragment, Dst: dst, Src: src}, append(payload, p...))
}

// TestAcksSupersede: a sender that resends while the receiver's Acks wait
// for the channel (another node holds it, or the receiver's TNC is still
// sending) gets one Ack per packet, the newest, not a queue of copies that
// overflows and drops Acks; Acks for different packets all go.
func TestAcksSupersede(t *testing.T) {
	m, _, n2 := pair(t, 9600, Config{}, Config{})
	var log []*burst
	m.Bursts = &log
	m.event(n2, phy.Event{Kind: phy.CarrierOn})
	const packets, copies = 6, 8
	for seq := range uint8(packets) {
		f := fragFrame(t, 1, 2, seq, seq == 0, numbered(2, 1, uint32(seq), 100))
		for range copies {
			m.inject(n2, f)
		}
	}
	st := n2.e.Stats(m.Now())
	if st.Drops.AckQueue != 0 || st.AcksSuperseded != packets*(copies-1) {
		t.Errorf("while the channel was busy: %d Acks dropped, %d superseded; want 0 and %d",
			st.Drops.AckQueue, st.AcksSuperseded, packets*(copies-1))
	}
	m.event(n2, phy.Event{Kind: phy.CarrierOff})
	m.run(10 * time.Second)
	if len(n2.host) != packets {
		t.Fatalf("%d packets delivered, want %d", len(n2.host), packets)
	}
	acks := map[uint8]int{}
	for _, b := range log {
		if m.from(b) != n2 {
			continue
		}
		d := framing.NewDecoder(4096)
		d.Feed(append(b.Data, 0), func(h framing.Header, p []byte) {
			if h.Kind != framing.KindAck {
				return
			}
			a, err := framing.ParseAck(p)
			if err != nil {
				t.Fatalf("an Ack that does not parse: %v", err)
			}
			if !a.Complete() {
				t.Errorf("Ack for packet %d says %b of %d fragments", a.Seq, a.Have, a.Count)
			}
			acks[a.Seq]++
		})
	}
	for seq := range uint8(packets) {
		if acks[seq] != 1 {
			t.Errorf("packet %d answered by %d Acks, want 1 (all: %v)", seq, acks[seq], acks)
		}
	}
}

// TestBurstAirFromModem: a burst's airtime is bounded by the modem's
// Info.MaxBurstAir when it gives one (a TNC told to send long bursts), by
// maxBurstAir otherwise: at 9600 bit/s the default admits nine frames of
// 1000 bytes, a 30 s bound all twenty that are ready.
func TestBurstAirFromModem(t *testing.T) {
	for _, tc := range []struct {
		air        time.Duration
		most, less int // the largest burst must hold at least most frames, and fewer than less
	}{
		{0, 8, 10},
		{30 * time.Second, 19, 21},
	} {
		m := newMedium(t, 9600)
		m.burstMax, m.KeyUp, m.burstAir = 32, 300*time.Millisecond, tc.air
		var log []*burst
		m.Bursts = &log
		n1, n2 := m.add(Config{Policy: DropTail, Node: 1}), m.add(Config{Policy: DropTail, Node: 2})
		fs, sent := numberedSet(21, 1000)
		hostAll(m, n1, fs[:1])
		m.run(5 * time.Second)
		hostAll(m, n1, fs[1:])
		m.run(2 * time.Minute)
		if got := checkDelivered(t, n2, sent); got != len(fs) {
			t.Fatalf("air %v: %d of %d delivered", tc.air, got, len(fs))
		}
		most := 0
		for _, b := range log {
			if m.from(b) == n1 {
				most = max(most, len(frames(t, b.Data)))
			}
		}
		if most < tc.most || most >= tc.less {
			t.Errorf("air %v: the largest burst held %d frames, want %d to %d", tc.air, most, tc.most, tc.less-1)
		}
	}
}

// TestBurstPollGoesLast: packets of two flows sent together under one poll
// (a TNC burst). The MAC's rounds (csma.MACOf.EnqueueFlow) reorder the
// riders of different flows, but a group's poll is sent only once nothing
// else of ours waits (flushGroups), so it is the burst's last frame, its
// Ack reports every rider, and none is sent twice: a poll that overtook a
// rider would be answered before the rider came, and the rider's timer
// would send it again.
func TestBurstPollGoesLast(t *testing.T) {
	cfg := Config{Policy: DropTail}
	m, n1, n2, log := burstPair(t, 8, cfg, cfg)
	first := flowUDP(2, 1, 1000, 0, 300)
	hostAll(m, n1, [][]byte{first})
	m.run(5 * time.Second)
	var fs [][]byte
	for i := range uint32(3) {
		fs = append(fs, flowUDP(2, 1, 1000, i+1, 300))
	}
	fs = append(fs, flowUDP(2, 1, 2000, 4, 300))
	hostAll(m, n1, fs)
	m.run(20 * time.Second)
	if len(n2.host) != 1+len(fs) {
		t.Fatalf("%d of %d delivered", len(n2.host), 1+len(fs))
	}
	last := (*log)[len(*log)-1]
	for _, b := range *log {
		if m.from(b) != n1 || len(withoutHellos(frames(t, b.Data))) < 2 {
			continue
		}
		last = b
	}
	hs := withoutHellos(frames(t, last.Data))
	d := framing.NewDecoder(4096)
	var order []string
	show := func(h framing.Header, p []byte) {
		if h.Kind == framing.KindFragment && len(p) >= 4 {
			order = append(order, fmt.Sprintf("seq %d poll %v", p[1], p[0]&0x80 != 0))
		}
	}
	d.Feed(last.Data, show)
	d.Feed([]byte{0}, show)
	if len(order) != len(fs) || !strings.HasSuffix(order[len(order)-1], "poll true") {
		t.Errorf("the burst: %v; want the poll last", order)
	}
	for _, o := range order[:len(order)-1] {
		if strings.HasSuffix(o, "poll true") {
			t.Errorf("the burst: %v; want one poll", order)
		}
	}
	if len(hs) != len(fs) {
		t.Fatalf("the burst held %d frames, want %d", len(hs), len(fs))
	}
	s1 := n1.e.Stats(m.Now())
	if s1.ARQ.Retransmissions != 0 || s1.ARQ.Riders != 3 {
		t.Errorf("sender: %d retransmissions, %d riders; want 0 and 3", s1.ARQ.Retransmissions, s1.ARQ.Riders)
	}
}

// TestBurstRetransmissionPollGoesLast: the retransmissions of a lost burst
// go as one group whose poll, the packet sent last, goes after its riders.
// That packet's first transmission keeps its flow in the MAC queue's rounds
// (lastPacket); its retransmission kept it too, while the riders went as
// retransmissions (flow 0), so the rounds sent the poll second and the
// riders behind it: the Ack, sent when the poll came, reported none of
// them, and they timed out again (100 saturated nodes: docs/mac.md).
func TestBurstRetransmissionPollGoesLast(t *testing.T) {
	cfg := Config{Policy: DropTail}
	m, n1, n2, log := burstPair(t, 8, cfg, cfg)
	fs, sent := numberedSet(5, 300)
	hostAll(m, n1, fs[:1])
	m.run(5 * time.Second)
	lost := 0 // the four packets' first transmissions are lost
	m.lose = func(from, _ *node, data []byte) bool {
		for _, h := range frames(t, data) {
			if from == n1 && h.Kind == framing.KindFragment && lost < 4 {
				lost++
				return true
			}
		}
		return false
	}
	hostAll(m, n1, fs[1:])
	m.run(60 * time.Second)
	if got := checkDelivered(t, n2, sent); got != len(fs) {
		t.Fatalf("%d of %d delivered", got, len(fs))
	}
	var again []string // the retransmissions' burst
	for _, b := range *log {
		if m.from(b) != n1 {
			continue
		}
		var order []string
		show := func(h framing.Header, p []byte) {
			if h.Kind == framing.KindFragment && len(p) >= 4 {
				order = append(order, fmt.Sprintf("seq %d poll %v", p[1], p[0]&0x80 != 0))
			}
		}
		d := framing.NewDecoder(4096)
		d.Feed(b.Data, show)
		d.Feed([]byte{0}, show)
		if len(order) > 1 {
			again = order // the lost burst, then its retransmission: the last with several
		}
	}
	if len(again) != 4 || !strings.HasSuffix(again[3], "poll true") {
		t.Errorf("the retransmissions: %v; want four, the poll last", again)
	}
	s1 := n1.e.Stats(m.Now())
	if s1.ARQ.Timeouts != 4 || s1.ARQ.Retransmissions != 4 {
		t.Errorf("sender: %d timeouts, %d retransmissions; want 4 and 4 (one round)", s1.ARQ.Timeouts, s1.ARQ.Retransmissions)
	}
}
