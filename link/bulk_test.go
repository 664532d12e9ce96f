package link

import (
	"testing"
	"time"

	"github.com/slided/slided/framing"
)

// TestGroupsBesideOccasionalTraffic: a greedy flow from node 1 to node 2
// with the daemon's MAC shares polls (one per burst) even though each
// node's host now and then sends a multicast packet (as the kernels'
// neighbour discovery and MLD do through real daemons: a few broadcast
// frames in a 10-second transfer). Groups stop for a moment after such a
// packet, not for seconds: before, a packet of another flow stopped them
// for 16 of the largest frames' airtime and any frame of the far node for
// the MAC's count of senders (2.7 s at 115200 bit/s): 0.05 riders a
// packet here, and through real daemons 80 of 104 Acks answered one
// datagram each.
func TestGroupsBesideOccasionalTraffic(t *testing.T) {
	m, n1, n2 := pair(t, 115200, Config{AdaptiveMAC: true}, Config{AdaptiveMAC: true})
	var gid uint32
	for step := 0; step < 30_000; step++ { // 30 s in 1 ms steps
		if step%3000 == 1500 {
			m.hostFrame(n1, multicast(flowUDP(2, 1, 5353, uint32(step), 40)))
			m.hostFrame(n2, multicast(flowUDP(1, 2, 5353, uint32(step), 40)))
		}
		for n1.e.WantRead() {
			m.hostFrame(n1, flowUDP(2, 1, 7000, gid, 1000))
			gid++
		}
		m.run(time.Millisecond)
	}
	s := n1.e.Stats(m.Now())
	riders := float64(s.ARQ.Riders) / float64(s.ARQ.Packets)
	t.Logf("%d packets, %d riders (%.2f a packet), %d retransmissions, %d delivered", s.ARQ.Packets, s.ARQ.Riders, riders, s.ARQ.Retransmissions, len(n2.host))
	if riders < 0.5 {
		t.Errorf("%.2f riders a packet; want at least 0.5 (groups of 4 give 0.75)", riders)
	}
	if s.ARQ.Retransmissions > 2 {
		t.Errorf("%d retransmissions on a clean channel", s.ARQ.Retransmissions)
	}
}

// multicast gives eth an IPv6 multicast destination MAC (33:33:00:00:00:01):
// the engine sends it to every node.
func multicast(eth []byte) []byte {
	copy(eth, []byte{0x33, 0x33, 0, 0, 0, 1})
	return eth
}

// TestLoneSenderLongBursts: a node that hears nobody else sends bursts of
// 16 data frames per won contention (csma.Config.LoneBurst, MACFor), not
// 4: three of every four contentions (IFS and a backoff, 2.5 ms at 115200
// bit/s) were idle time that protected nobody. On the old code 0.74 of the
// data frames went as a burst's continuation.
func TestLoneSenderLongBursts(t *testing.T) {
	m, n1, _ := pair(t, 115200, Config{AdaptiveMAC: true}, Config{AdaptiveMAC: true})
	var gid uint32
	for step := 0; step < 20_000; step++ {
		for n1.e.WantRead() {
			m.hostFrame(n1, flowUDP(2, 1, 7000, gid, 1000))
			gid++
		}
		m.run(time.Millisecond)
	}
	s := n1.e.Stats(m.Now()).MAC
	data := s.Transmitted - s.Urgent
	cont := float64(s.Burst) / float64(data)
	t.Logf("%d data frames, %d continued a burst (%.2f)", data, s.Burst, cont)
	if cont < 0.85 {
		t.Errorf("%.2f of the data frames continued a burst; want at least 0.85 (bursts of 16: 0.94)", cont)
	}
}

// TestRiderKeepsChannel: a fragment for us without a poll (a rider of a
// group, arq.Config.GroupPolls) says the sender's next frame follows at
// once, so the receiver keeps the channel for it: none of its own data
// frames (a neighbour solicitation, say) goes before IFS, two slots and a
// millisecond of scheduling have passed. Through real daemons the gaps
// between a burst's frames (about 1.2 ms from TxDone to the next frame on
// the simulated medium) outlast the 1 ms IFS, and a frame of the receiver
// that waited could start in one and collide with the next rider
// (BenchmarkBulk115200: 6 frames lost on air in one run of three). On the
// old code its frame was due after IFS and its backoff only.
func TestRiderKeepsChannel(t *testing.T) {
	m, _, n2 := pair(t, 115200, Config{AdaptiveMAC: true}, Config{AdaptiveMAC: true})
	m.run(time.Second)
	m.hostFrame(n2, multicast(flowUDP(1, 2, 5353, 1, 40)))
	p, err := framing.AppendFrag(nil, framing.FragHeader{Inner: framing.KindData, Seq: 9, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	p = append(p, 0x08, 0x00, 1, 2, 3, 4)
	m.inject(n2, framing.AppendFrame(nil, framing.Header{Kind: framing.KindFragment, Version: framing.Version2, Dst: 2, Src: 1}, p))
	mc := n2.e.MACConfig()
	follow := mc.IFS + 2*mc.SlotTime + time.Millisecond
	if d, ok := n2.e.Deadline(); ok && d.Before(m.Now().Add(follow)) {
		t.Errorf("after a rider, our frame is due in %v; want the channel kept for the sender's next frame (%v)", d.Sub(m.Now()), follow)
	}
}
