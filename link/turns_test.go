package link

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/slided/slided/framing"
)

// Two daemons on transparent acoustic modems (issue 16), in virtual time:
// store and forward over 19200-baud serial lines, 2400 bit/s, 256-byte
// frames, a 260 ms key-up (preamble and the modem's gap), 1 s of water,
// half duplex and no carrier sense (the medium's prop).

// acousticPair is two engines on such a medium.
func acousticPair(t *testing.T, seed uint64) (*medium, *node, *node) {
	m := newMedium(t, 2400)
	m.prop, m.keyUp, m.baud = time.Second, 260*time.Millisecond, 19200
	cfg := Config{MTU: 576, FrameMax: 256, PropDelay: time.Second}
	c1, c2 := cfg, cfg
	c1.Node, c2.Node = 1, 2
	c1.Seed, c2.Seed = seed, seed+100
	return m, m.add(c1), m.add(c2)
}

// udp200 is the Ethernet frame of a 200-byte UDP datagram over IPv4 (242
// bytes) from src to dst, numbered id.
func udp200(dst, src framing.NodeID, id uint32) []byte { return numbered(dst, src, id, 228) }

// saturate runs m for d, giving each node's host a new frame for the other
// whenever its engine wants to read (policy Block, as the bridge does),
// and returns the frames each node's host received from the other.
func saturate(m *medium, n1, n2 *node, d time.Duration) (got1, got2 int) {
	end := m.now.Add(d)
	var id [2]uint32
	for m.now.Before(end) {
		for i, n := range []*node{n1, n2} {
			for k := 0; n.e.WantRead() && k < 4; k++ {
				id[i]++
				src := framing.NodeID(i + 1)
				m.hostFrame(n, udp200(3-src, src, id[i]))
			}
		}
		m.run(10 * time.Millisecond)
	}
	return len(n1.host), len(n2.host)
}

// TestAcousticBothWaysTakeTurns: two saturated no-carrier nodes, each
// sending 200-byte datagrams to the other, must take turns: what the
// other sends arrives while a half-duplex modem is quiet. Delivered UDP
// payload both ways together over 10 minutes of virtual time ÷ the air
// rate: at least 0.2 (the turn of each node is an Ack and a data frame,
// about 0.245 of the channel when nothing is lost), and neither direction
// starved. Before turn-taking the nodes kept transmitting into each other's
// arrivals.
func TestAcousticBothWaysTakeTurns(t *testing.T) {
	const dur = 10 * time.Minute
	for _, seed := range []uint64{1, 2, 3} {
		m, n1, n2 := acousticPair(t, seed)
		got1, got2 := saturate(m, n1, n2, dur)
		share := float64((got1+got2)*200*8) / (2400 * dur.Seconds())
		t.Logf("seed %d: delivered 1→2 %d, 2→1 %d, payload/air %.3f; lost to half duplex %d, to collisions %d; bursts %d",
			seed, got2, got1, share, m.lostHalfDuplex, m.lostCollision, m.sent)
		if share < 0.2 || min(got1, got2) < (got1+got2)/3 {
			t.Errorf("seed %d: payload/air %.3f (1→2 %d, 2→1 %d); want at least 0.2, neither side under a third", seed, share, got2, got1)
		}
	}
}

// TestAcousticEchoNoBackoff: a 64-byte UDP echo over the same channel, one
// at a time, node 2's host answering each at once. The floor is two
// one-way trips of the 106-byte frame (both serial lines, key-up, airtime,
// 1 s of water): 3.6 s; the far node's link Ack goes on air before the
// echo (0.35 s).
// The median must stay under 1.25 times the floor: with backoff slots as
// long as the water (1 s, 4-slot window) each echo waited up to 6 s more.
func TestAcousticEchoNoBackoff(t *testing.T) {
	m, n1, n2 := acousticPair(t, 1)
	var rtts []time.Duration
	for id := uint32(1); id <= 20; id++ {
		f := numbered(2, 1, id, 92) // 14 + 20 (IPv4) + 8 (UDP) + 64
		start := m.now
		m.hostFrame(n1, f)
		answered := false
		for i := 0; i < 3000 && !answered; i++ { // 30 s
			m.run(10 * time.Millisecond)
			for _, r := range n2.host {
				back := append([]byte(nil), r...)
				copy(back, framing.MACFor(1))
				copy(back[6:], framing.MACFor(2))
				m.hostFrame(n2, back)
			}
			n2.host = n2.host[:0]
			for _, r := range n1.host {
				if binary.BigEndian.Uint32(r[14:]) == id {
					answered = true
				}
			}
			n1.host = n1.host[:0]
		}
		if !answered {
			t.Fatalf("echo %d not answered within 30 s", id)
		}
		rtts = append(rtts, m.now.Sub(start))
		m.run(time.Second)
	}
	sortDurations(rtts)
	const wire = 106 + 14 // the frame on the wire: link header, fragment header, CRC, COBS
	floor := 2 * (2*m.serial(wire) + 260*time.Millisecond + framingAir(wire, 2400) + time.Second)
	med := rtts[len(rtts)/2]
	t.Logf("median %v (%.2f of the floor %v), max %v", med, med.Seconds()/floor.Seconds(), floor, rtts[len(rtts)-1])
	if med > floor*5/4 {
		t.Errorf("median echo %v, want at most 1.25 × %v", med, floor)
	}
}

func framingAir(n, rate int) time.Duration {
	return time.Duration(n) * 8 * time.Second / time.Duration(rate)
}

func sortDurations(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}
