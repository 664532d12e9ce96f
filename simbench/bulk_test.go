package simbench

import (
	"testing"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/link"
)

// daemonDefaults is the engine slided run builds with no flags
// (-adaptive-mac on), as slided bench -protocol link runs it.
func daemonDefaults(id framing.NodeID) link.Config { return link.Config{Node: id, AdaptiveMAC: true} }

// TestEngineOneFlowOneAckPerBurst: one saturated flow of 1000-byte
// datagrams with the daemon's defaults (the adaptive MAC's bursts on a
// carrier-sense channel) pays one Ack for several datagrams, not one each:
// the Acks were 13 of every 1,070 bytes on air and their turnarounds,
// about 1 ms each through real daemons, the largest items of the overhead
// budget after the frame's own bytes (docs/performance.md, "Where the
// channel goes"). On the old code every datagram had its own Ack: 2.0
// transmissions per datagram.
func TestEngineOneFlowOneAckPerBurst(t *testing.T) {
	r, err := RunEngine(EngineConfig{Duration: 20 * time.Second, Seed: 1, Engine: daemonDefaults})
	if err != nil {
		t.Fatal(err)
	}
	got := r.Flows[0].Datagrams
	per := float64(r.Transmissions) / float64(got)
	t.Logf("%d datagrams, %d transmissions (%.2f per datagram), goodput/channel %.4f, %d retransmissions",
		got, r.Transmissions, per, r.GoodputPerChannel, r.Retransmissions)
	if per > 1.3 {
		t.Errorf("%.2f transmissions per datagram; want at most 1.3 (an Ack per burst of 4 or more)", per)
	}
	if r.Retransmissions != 0 || r.GiveUps != 0 {
		t.Errorf("%d retransmissions, %d give-ups on a clean channel; want none", r.Retransmissions, r.GiveUps)
	}
}

// TestEngineDatagramCompressed: the engine mode's datagrams carry the
// header a kernel gives them (a valid IPv4 checksum, don't-fragment, an
// identification, a valid UDP checksum), so their headers are compressed
// on air as the daemon's are: 1,029 bytes a 1000-byte datagram to a
// version-4 peer. Before the engine's datagrams had an IPv4 checksum of
// 0, AppendIPHC left the header as it was (13 bytes more a frame); before
// they had a UDP checksum (0: none), version 4 could not elide it and
// each frame was 2 bytes longer than through the daemons (1,031).
func TestEngineDatagramCompressed(t *testing.T) {
	r := &engRunner{cfg: EngineConfig{Flows: []Flow{{1, 2}}, Payload: 1000}}
	for i := range 3 { // the buffer is reused: every datagram, not only the first
		p := r.datagram(&engNode{id: 1, seq: uint32(i * 1000)}, 0)
		c, ok := framing.AppendIPHC(nil, p[12:])
		if !ok {
			t.Fatalf("datagram % x: not compressed", p[:42])
		}
		if got := len(p[12:]) - len(c); got != 13 {
			t.Errorf("compressed by %d bytes; want 13 (IPv4 and UDP headers of 30 bytes in 17)", got)
		}
		c4, ok := framing.AppendIPHCVersion(nil, p[12:], framing.Version4)
		if !ok {
			t.Fatalf("datagram % x: not compressed for version 4", p[:42])
		}
		if got := len(p[12:]) - len(c4); got != 15 {
			t.Errorf("compressed by %d bytes for version 4; want 15 (the UDP checksum elided too: valid, the receiver computes it again)", got)
		}
	}
}

// TestEngineBulkWholeBursts: one saturated flow of 1000-byte datagrams
// with the daemon's defaults fills the simulated medium's bursts of 16
// frames (sim.BurstFrames), as the daemons do, where the bridge hands its
// engine a packet whenever it wants one, one Poll after another, until its
// MAC queue is full (bridge.loop.pump), and no sooner than the Acks to its
// last transmission have come. Before, the engine mode handed over at most
// a few packets per input (four, and four after Poll, of which the engine
// took one each, as a packet waits outside the MAC until the next Poll):
// every Ack was followed by a contention, one frame and a burst of 6
// (seed 1, 60 s: 6.9 datagrams per Ack, payload / channel 0.9618; now
// 13.5 and 0.9664), where the daemons sent bursts of 16 (a trace of the
// medium server, docs/performance.md).
func TestEngineBulkWholeBursts(t *testing.T) {
	r, err := RunEngine(EngineConfig{Duration: 60 * time.Second, Seed: 1, Engine: daemonDefaults})
	if err != nil {
		t.Fatal(err)
	}
	got := r.Flows[0].Datagrams
	// The medium counts every frame of a burst: node 1's frames are its
	// datagrams, node 2's its Acks (one a burst). A contention costs
	// one Ack for the lone frame and the burst after it.
	acks := r.Transmissions - got
	perAck := float64(got) / float64(acks)
	t.Logf("%d datagrams, %d other transmissions (%.1f datagrams each), goodput/channel %.4f", got, acks, perAck, r.GoodputPerChannel)
	if perAck < 12 {
		t.Errorf("%.1f datagrams per Ack; want at least 12 (bursts of 16)", perAck)
	}
	if r.Retransmissions != 0 || r.GiveUps != 0 {
		t.Errorf("%d retransmissions, %d give-ups on a clean channel; want none", r.Retransmissions, r.GiveUps)
	}
}

// TestHandOverClearsTakeAt: a wait for Acks that handOver noted is
// forgotten at its next call, also when the engine does not want to read:
// left set, the runner would service the node at that time again and
// again (nextDeadline), as the time does not move.
func TestHandOverClearsTakeAt(t *testing.T) {
	e, err := link.New(link.Config{Node: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := &engRunner{cfg: EngineConfig{Flows: []Flow{{1, 2}}, Payload: 1000}, now: epoch.Add(time.Second)}
	n := &engNode{id: 1, e: e, flows: []int{0}, takeAt: epoch.Add(time.Second)}
	if r.handOver(n) {
		t.Fatal("handed a packet to an engine that is not started")
	}
	if d, ok := n.nextDeadline(); ok || !n.takeAt.IsZero() {
		t.Errorf("after handOver: takeAt %v, next deadline %v (%v); want none", n.takeAt, d, ok)
	}
}
