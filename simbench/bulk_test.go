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
// header a kernel gives them (a valid checksum, don't-fragment, an
// identification), so their headers are compressed on air as the
// daemon's are: 1,031 bytes a 1000-byte datagram. On the old code the
// checksum was 0, AppendIPHC left the header as it was, and each frame
// was 13 bytes longer than through real daemons.
func TestEngineDatagramCompressed(t *testing.T) {
	r := &engRunner{cfg: EngineConfig{Flows: []Flow{{1, 2}}, Payload: 1000}}
	p := r.datagram(&engNode{id: 1}, 0)
	c, ok := framing.AppendIPHC(nil, p[12:])
	if !ok {
		t.Fatalf("datagram % x: not compressed", p[:42])
	}
	if got := len(p[12:]) - len(c); got != 13 {
		t.Errorf("compressed by %d bytes; want 13 (IPv4 and UDP headers of 30 bytes in 17)", got)
	}
}
