package link

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// flowUDP is udpFrame from source port sport.
func flowUDP(dst, src framing.NodeID, sport uint16, id uint32, size int) []byte {
	b := udpFrame(dst, src, id, size)
	binary.BigEndian.PutUint16(b[34:], sport)
	return b
}

// TestSparseFlowNotBehindGreedy: node 1 sends a greedy flow of 1000-byte
// UDP datagrams to node 2 (read whenever the engine wants to read, as the
// bridge does under policy block) and beside it a 64-byte datagram every
// 200 ms, which the host (an ideal round robin, no ring) hands over at the
// next read. Each small datagram reaches node 2 within its own airtime and
// two of the greedy flow's transmissions of being given to the host (it
// waits for the frame on air to end, then goes next, not behind the greedy
// frames queued in the MAC), in virtual time; the greedy flow keeps the
// channel otherwise. On the old code (one FIFO) the median was 238 ms,
// the worst 310 ms.
//
// The same on a modem that takes whole bursts of 16 frames and leaves the
// access to the MAC (the simulated medium), once the engine has seen the
// second flow: there the greedy flow went in bursts of 16 (1.2 s) and the
// small datagrams waited for them (median 1.42 s, worst 2.14 s, 28
// spurious timeouts, on the code before mixedBursts; through the daemons
// TestBackpressureSmallFlowDelay read p95 1.85-2.6 s against 0.15 s before
// the medium took bursts). The first small datagram comes while a lone
// flow's burst is on air and waits for it (1.24 s). One that starts 2 s
// into the greedy flow (as TestBackpressureSmallFlowDelay's does) waited for
// the burst on air and the next one too (1.56 s), formed from what the
// engine read as the burst on air formed, until the engine read the host
// late in a long burst (Engine.readLate): 406 ms. Those sent in the first
// 2.5 s are held to the burst's airtime plus the limit instead. And those
// sent while the first waited catch up with it (each arrives within the
// limit of the first's arrival or of its own sending): they drained in
// turns with the greedy flow, one a contention (about 90 ms: the tenth
// arrived 918 ms after the first), until the engine queued its data frames
// by bytes (csma.EnqueueFlowCost); through the daemons that drain was most
// of the start's 1.2-1.6 s p95 (docs/backpressure.md).
func TestSparseFlowNotBehindGreedy(t *testing.T) {
	for _, tc := range []struct {
		burst int
		from  time.Duration // when the small flow begins, after the greedy one
	}{{1, 0}, {16, 0}, {16, 2 * time.Second}} {
		t.Run(fmt.Sprintf("modem-burst=%d/from=%v", tc.burst, tc.from), func(t *testing.T) { testSparseFlowNotBehindGreedy(t, tc.burst, tc.from) })
	}
}

func testSparseFlowNotBehindGreedy(t *testing.T, burst int, from time.Duration) {
	const rate = 115200
	// As the daemon runs by default: the adaptive MAC with its bursts of
	// 4 (MACFor), no reordering at the receiver (with it, node 2 would
	// hold the small datagram for the greedy ones it overtook).
	m := newMedium(t, rate)
	m.burstMax = burst
	n1 := m.add(Config{Node: 1, NoReorder: true, AdaptiveMAC: true})
	n2 := m.add(Config{Node: 2, NoReorder: true, AdaptiveMAC: true})
	const greedyPort, sparsePort = 7000, 7001
	oneAir := func(eth []byte) time.Duration {
		return phy.Airtime(framing.MaxEncodedLen(len(eth)+framing.FragHeaderLen+8), rate)
	}
	greedyAir := oneAir(flowUDP(2, 1, greedyPort, 0, 1000))
	limit := oneAir(flowUDP(2, 1, sparsePort, 0, 64)) + 2*greedyAir
	start := m.Now().Add(from)
	// The datagrams sent while the engine may not know of the second flow
	// yet, and their bound: a whole modem burst on air before them.
	firstFor, firstLimit := time.Duration(0), limit
	if burst > 1 {
		firstFor, firstLimit = 2500*time.Millisecond, limit+time.Duration(burst)*greedyAir
	}

	sentAt := map[uint32]time.Time{} // small datagrams given to the host, by id
	var hostQ []uint32               // small datagrams on the host, not read yet
	var delays, steady []time.Duration
	var gid, sid uint32
	var firstAt time.Time // when the first small datagram arrived
	seen, greedyGot := 0, 0
	fromStep := int(from / time.Millisecond)
	for step := 0; step < fromStep+10_000; step++ { // 10 s of the small flow in 1 ms steps
		if step%200 == 100 && step >= fromStep {
			hostQ = append(hostQ, sid)
			sentAt[sid] = m.Now()
			sid++
		}
		for n1.e.WantRead() {
			if len(hostQ) > 0 {
				id := hostQ[0]
				hostQ = hostQ[1:]
				m.hostFrame(n1, flowUDP(2, 1, sparsePort, id, 64))
				continue
			}
			m.hostFrame(n1, flowUDP(2, 1, greedyPort, gid, 1000))
			gid++
		}
		m.run(time.Millisecond)
		for ; seen < len(n2.host); seen++ {
			f := n2.host[seen]
			id := binary.BigEndian.Uint32(f[42:])
			switch binary.BigEndian.Uint16(f[34:]) {
			case sparsePort:
				d := m.Now().Sub(sentAt[id])
				delays = append(delays, d)
				if id == 0 {
					firstAt = m.Now()
				}
				if sentAt[id].Sub(start) >= firstFor {
					steady = append(steady, d)
				} else if d > firstLimit {
					t.Errorf("small datagram %d, sent before the second flow was known, took %v (limit %v)", id, d, firstLimit)
				}
				// Those that waited with the first for the burst
				// catch up with it: the backlog goes at once, not one
				// per greedy transmission.
				if due := later(firstAt, sentAt[id]).Add(limit); id > 0 && m.Now().After(due) {
					t.Errorf("small datagram %d, sent at %v, arrived %v after the first small one (%v after it was sent; limit %v)",
						id, sentAt[id].Sub(start), m.Now().Sub(firstAt), d, limit)
				}
			case greedyPort:
				greedyGot++
			}
		}
	}
	if len(delays) < 45 || len(steady) == 0 {
		t.Fatalf("%d small datagrams delivered of %d (%d after the first %v)", len(delays), sid, len(steady), firstFor)
	}
	slices.Sort(delays)
	slices.Sort(steady)
	st := n1.e.Stats(m.Now())
	t.Logf("small flow: %d delivered, median %v, max %v; after the first %v: median %v, max %v (limit %v); greedy flow: %d delivered; node 1: %d retransmissions",
		len(delays), delays[len(delays)/2], delays[len(delays)-1], firstFor, steady[len(steady)/2], steady[len(steady)-1], limit,
		greedyGot, st.ARQ.Retransmissions)
	if worst := steady[len(steady)-1]; worst > limit {
		t.Errorf("a small datagram took %v, more than its airtime and two greedy frames (%v)", worst, limit)
	}
	// The greedy flow still has the channel: about 13 frames a second.
	if greedyGot < 100 {
		t.Errorf("greedy flow: %d delivered in 10 s", greedyGot)
	}
	// And it goes without spurious timeouts (the medium loses nothing).
	if r := st.ARQ.Retransmissions; r > 0 {
		t.Errorf("node 1: %d retransmissions on a lossless medium", r)
	}
}

// TestFlowKey: a flow's packets share a key, other ports or addresses make
// another, and the fragments of one IPv4 datagram (the first with its
// ports, the rest without) share one.
func TestFlowKey(t *testing.T) {
	a := flowUDP(2, 1, 7000, 1, 1000)
	if FlowKey(a) != FlowKey(flowUDP(2, 1, 7000, 2, 64)) {
		t.Error("two datagrams of one flow: different keys")
	}
	if FlowKey(a) == FlowKey(flowUDP(2, 1, 7001, 1, 1000)) {
		t.Error("another source port: same key")
	}
	if FlowKey(a) == FlowKey(flowUDP(3, 1, 7000, 1, 1000)) {
		t.Error("another destination: same key")
	}
	first := flowUDP(2, 1, 7000, 1, 1000)
	first[14+6] = 0x20 // more fragments, offset 0
	later := flowUDP(2, 1, 7000, 1, 1000)
	later[14+6], later[14+7] = 0x00, 0xb9              // last fragment, offset 1480
	copy(later[34:42], []byte{1, 2, 3, 4, 5, 6, 7, 8}) // payload, not ports
	if FlowKey(first) != FlowKey(later) {
		t.Error("fragments of one datagram: different keys")
	}
	six := func(sport byte) []byte {
		b := make([]byte, 14+40+8)
		b[12], b[13] = 0x86, 0xdd
		b[14+6] = 17
		b[14+8], b[14+24] = 0xfd, 0xfd
		b[14+40+1] = sport
		return b
	}
	if FlowKey(six(1)) == FlowKey(six(2)) || FlowKey(six(1)) != FlowKey(six(1)) {
		t.Error("ipv6 ports not in the key")
	}
	arp := make([]byte, 42)
	arp[12], arp[13] = 0x08, 0x06
	if FlowKey(arp) != FlowKey(append(arp, 1)) {
		t.Error("arp frames: different keys")
	}
	for n := range len(a) {
		FlowKey(a[:n]) // short frames: no panic
	}
}

// FuzzFlowKey: any bytes from the host hash without a panic, and the same
// bytes hash the same.
func FuzzFlowKey(f *testing.F) {
	f.Add(flowUDP(2, 1, 7000, 1, 10))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00, 0x4f})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xdd})
	f.Fuzz(func(t *testing.T, b []byte) {
		if FlowKey(b) != FlowKey(append([]byte(nil), b...)) {
			t.Fatal("same bytes, different keys")
		}
	})
}

// TestFlowQueuedAndAwaitingAck: the engine says which flows it holds, and
// that it keeps the channel for the Ack to the frame it just sent until
// that Ack has come.
func TestFlowQueuedAndAwaitingAck(t *testing.T) {
	m, n1, _ := pair(t, 115200, Config{NoReorder: true}, Config{NoReorder: true})
	greedy, small := flowUDP(2, 1, 7000, 1, 1000), flowUDP(2, 1, 7001, 1, 64)
	m.hostFrame(n1, greedy)
	if !n1.e.FlowQueued(FlowKey(greedy)) || n1.e.FlowQueued(FlowKey(small)) {
		t.Fatalf("FlowQueued(greedy, small) = %v %v; want true false", n1.e.FlowQueued(FlowKey(greedy)), n1.e.FlowQueued(FlowKey(small)))
	}
	awaited := false
	for range 200 {
		m.run(time.Millisecond)
		_, waiting := n1.e.AwaitingAck(m.Now())
		if waiting {
			awaited = true
		}
		if awaited && !waiting {
			break
		}
	}
	_, still := n1.e.AwaitingAck(m.Now())
	if !awaited || still || n1.e.FlowQueued(FlowKey(greedy)) {
		t.Fatalf("awaited an Ack %v, still %v, greedy queued %v; want true, false, false", awaited, still, n1.e.FlowQueued(FlowKey(greedy)))
	}
}

// TestMixedBurstsNeedInterleavedFlows: on a modem that takes bursts where
// the MAC does the access, data frames go one per transmission only while
// two flows interleave; a flow that starts after another (a bulk transfer
// after the ARP exchange of a ping), broadcasts, and a modem without bursts
// keep the bursts. Counting every change of flow cut the bulk benchmark's
// first 1.5 s to one frame a transmission (BenchmarkBulk115200: 57 Acks
// from the receiver against 19, goodput/channel 0.944 against 0.957).
func TestMixedBurstsNeedInterleavedFlows(t *testing.T) {
	const a, b, c = 0xa, 0xb, 0xc
	type pkt struct {
		at   time.Duration
		dst  framing.NodeID
		flow uint64
	}
	for _, tc := range []struct {
		name  string
		burst int
		pkts  []pkt
		mixed bool // at the last packet's time
	}{
		{"one flow", 16, []pkt{{0, 2, a}, {time.Millisecond, 2, a}}, false},
		{"a flow after another", 16, []pkt{{0, 2, a}, {time.Millisecond, 2, b}, {2 * time.Millisecond, 2, b}}, false},
		{"a sparse packet amid a greedy flow", 16, []pkt{{0, 2, a}, {time.Millisecond, 2, b}, {2 * time.Millisecond, 2, a}}, true},
		{"three flows in turn", 16, []pkt{{0, 2, a}, {time.Millisecond, 3, b}, {2 * time.Millisecond, 2, c}, {3 * time.Millisecond, 3, b}}, true},
		{"the return after the hold", 16, []pkt{{0, 2, a}, {time.Millisecond, 2, b}, {3 * time.Second, 2, a}}, false},
		{"broadcasts between", 16, []pkt{{0, 2, a}, {time.Millisecond, framing.Broadcast, b}, {2 * time.Millisecond, 2, a}}, false},
		{"a modem without bursts", 1, []pkt{{0, 2, a}, {time.Millisecond, 2, b}, {2 * time.Millisecond, 2, a}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMedium(t, 115200)
			m.burstMax = tc.burst
			n := m.add(Config{Node: 1, AdaptiveMAC: true})
			start := m.Now()
			var last time.Time
			for _, p := range tc.pkts {
				last = start.Add(p.at)
				n.e.sawFlow(last, p.dst, p.flow)
			}
			if got := n.e.mixedBursts(last); got != tc.mixed {
				t.Errorf("mixedBursts = %v, want %v", got, tc.mixed)
			}
		})
	}
}

// TestReadLateEndsWithTransmission: the host's reads held back during a long
// burst (Engine.readLate) resume when the transmission ends, however it
// ends: a burst the modem refused left them held for most of its would-be
// airtime (790 ms of a 1.06 s burst at 115200 bit/s) with the MAC empty
// and nothing on air.
func TestReadLateEndsWithTransmission(t *testing.T) {
	m := newMedium(t, 115200)
	m.burstMax = 16
	e := m.add(Config{Node: 1, NoARQ: true, AdaptiveMAC: true}).e
	now := m.Now()
	// The channel busy while the queue fills, so that it goes as a burst.
	e.Modem(now, phy.Event{Kind: phy.CarrierOn}, phy.Info{})
	for n := uint32(0); e.WantRead(); n++ {
		e.Host(now, numbered(2, 1, n, 1000))
		e.Poll(now)
	}
	e.Modem(now, phy.Event{Kind: phy.CarrierOff}, phy.Info{})
	for range 100 {
		now = now.Add(50 * time.Millisecond)
		b, ok := e.Poll(now)
		if !ok {
			continue
		}
		if len(frames(t, b)) < 2 {
			now = now.Add(phy.Airtime(len(b), 115200))
			e.Modem(now, phy.Event{Kind: phy.TxDone}, phy.Info{})
			continue
		}
		if e.WantRead() {
			t.Fatal("a long burst on air: the host is read at once (readLate not engaged)")
		}
		e.Refused(now, phy.ErrTooLarge)
		e.Poll(now)
		if !e.WantRead() {
			d, _ := e.Deadline()
			t.Fatalf("burst refused, nothing on air: the host is not read for %v", d.Sub(now))
		}
		return
	}
	t.Fatal("no burst of several frames went on air")
}

// BenchmarkTwoGreedyFlowsOneNode measures how two greedy UDP flows of one
// node share a minute at 9600 bit/s in virtual time when the host is read
// as the bridge reads it (bridge.loop.pick: the oldest packet of a flow with
// nothing queued in the engine first, else the oldest; eight of each flow
// read ahead), flow a starting 2 s before flow b, behind a modem that takes
// one frame a transmission and one that takes bursts of 16. It reports each
// flow's datagrams after the first 10 s: the MAC queue forgets where a
// flow's last frame finished once it has gone, so the flow whose next packet
// comes at once keeps starting at the round in progress (docs/mac.md, "Known
// weakness"). A figure, not a goal: nothing is asserted.
func BenchmarkTwoGreedyFlowsOneNode(b *testing.B) {
	b.ReportAllocs()
	for _, burst := range []int{1, 16} {
		b.Run(fmt.Sprintf("modem-burst=%d", burst), func(b *testing.B) {
			var a, c int
			for range b.N {
				a, c = twoGreedyFlows(b, burst)
			}
			b.ReportMetric(float64(a), "flow-a-datagrams")
			b.ReportMetric(float64(c), "flow-b-datagrams")
		})
	}
}

// twoGreedyFlows runs BenchmarkTwoGreedyFlowsOneNode's minute and returns
// what each flow delivered after the first 10 s.
func twoGreedyFlows(b *testing.B, burst int) (a, c int) {
	m := newMedium(b, 9600)
	m.burstMax = burst
	n1 := m.add(Config{Node: 1, NoReorder: true, AdaptiveMAC: true})
	n2 := m.add(Config{Node: 2, NoReorder: true, AdaptiveMAC: true})
	const pa, pb = 7000, 7001
	type pkt struct {
		port uint16
		id   uint32
	}
	var hostq []pkt
	next := map[uint16]uint32{}
	seen := 0
	for step := 0; step < 60_000; step++ { // a minute in 1 ms steps
		held := map[uint16]int{}
		for _, p := range hostq {
			held[p.port]++
		}
		for _, port := range []uint16{pa, pb} {
			if port == pb && step < 2000 {
				continue
			}
			for ; held[port] < 8; held[port]++ {
				hostq = append(hostq, pkt{port, next[port]})
				next[port]++
			}
		}
		for n1.e.WantRead() && len(hostq) > 0 {
			i := 0
			for j, p := range hostq {
				if !n1.e.FlowQueued(FlowKey(flowUDP(2, 1, p.port, p.id, 200))) {
					i = j
					break
				}
			}
			p := hostq[i]
			hostq = append(hostq[:i], hostq[i+1:]...)
			m.hostFrame(n1, flowUDP(2, 1, p.port, p.id, 200))
		}
		m.run(time.Millisecond)
		for ; seen < len(n2.host); seen++ {
			if step < 10_000 {
				continue
			}
			switch binary.BigEndian.Uint16(n2.host[seen][34:]) {
			case pa:
				a++
			case pb:
				c++
			}
		}
	}
	return a, c
}
