package link

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// udpFrame is an Ethernet frame from node src to node dst carrying an IPv4
// UDP datagram of size payload bytes (id in its first 4), with a correct
// IPv4 header checksum and TTL 64: a packet KindIPHC compresses.
func udpFrame(dst, src framing.NodeID, id uint32, size int) []byte {
	b := make([]byte, 14+20+8+size)
	copy(b, framing.MACFor(dst))
	copy(b[6:], framing.MACFor(src))
	b[12], b[13] = 0x08, 0x00
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+size))
	binary.BigEndian.PutUint16(ip[4:], uint16(id))
	ip[6], ip[8], ip[9] = 0x40, 64, 17
	copy(ip[12:], []byte{192, 0, 2, byte(src), 192, 0, 2, byte(dst)})
	binary.BigEndian.PutUint16(ip[10:], framing.IPv4HeaderChecksum(ip))
	u := b[34:42]
	binary.BigEndian.PutUint16(u[0:], 5000)
	binary.BigEndian.PutUint16(u[2:], 5001)
	binary.BigEndian.PutUint16(u[4:], uint16(8+size))
	binary.BigEndian.PutUint16(u[6:], 0xbeef)
	binary.BigEndian.PutUint32(b[42:], id)
	for i := 46; i < len(b); i++ {
		b[i] = byte(uint32(i) * (id + 1))
	}
	return b
}

// airVersions records the version of every frame each node puts on air.
func airVersions(m *medium) map[*node]map[uint8]int {
	got := map[*node]map[uint8]int{}
	decs := map[*node]*framing.Decoder{}
	m.lose = func(from, _ *node, data []byte) bool {
		d := decs[from]
		if d == nil {
			d = framing.NewDecoder(4000)
			decs[from] = d
			got[from] = map[uint8]int{}
		}
		d.Feed(data, func(h framing.Header, _ []byte) { got[from][h.Ver()]++ })
		return false
	}
	return got
}

// exchange sends n packets each way, a and b interleaved, and checks that
// each host got exactly the frames sent to it.
func exchange(t *testing.T, m *medium, a, b *node, n int) {
	t.Helper()
	want := map[*node]map[string]bool{a: {}, b: {}}
	for i := range uint32(n) {
		fa := udpFrame(2, 1, i, 1000)
		fb := udpFrame(1, 2, 1000+i, 200)
		want[b][string(fa)], want[a][string(fb)] = true, true
		sendAll(m, a, [][]byte{fa})
		sendAll(m, b, [][]byte{fb})
	}
	m.run(20 * time.Second)
	for _, x := range []*node{a, b} {
		if len(x.host) != n {
			t.Errorf("node %d: %d frames to the host, want %d", x.e.cfg.Node, len(x.host), n)
		}
		for _, f := range x.host {
			if !want[x][string(f)] {
				t.Fatalf("node %d: a frame that was not sent to it (%d bytes)", x.e.cfg.Node, len(f))
			}
			delete(want[x], string(f))
		}
	}
}

func peerVer(s Stats, node int) int {
	for _, p := range s.Peers {
		if p.Node == node {
			return p.Version
		}
	}
	return -1
}

// TestVersionNewNew: two version-3 nodes learn each other's version with
// one hello and then send UDP with compressed headers, delivered exactly;
// with a key too (the envelope authenticates the version nibble).
func TestVersionNewNew(t *testing.T) {
	key := auth.Key{1, 2, 3}
	for _, tc := range []struct {
		desc string
		cfg  Config
	}{{"plain", Config{}}, {"sealed", Config{Key: &key}}, {"signed", Config{Key: &key, KeyMode: auth.Sign}}} {
		t.Run(tc.desc, func(t *testing.T) {
			m, n1, n2 := pair(t, 115200, tc.cfg, tc.cfg)
			air := airVersions(m)
			exchange(t, m, n1, n2, 10)
			s1, s2 := n1.e.Stats(m.Now()), n2.e.Stats(m.Now())
			if v1, v2 := peerVer(s1, 2), peerVer(s2, 1); v1 != framing.MaxVersion || v2 != framing.MaxVersion {
				t.Errorf("peer versions %d and %d, want %d", v1, v2, framing.MaxVersion)
			}
			// The first packets each way go before the peer is known
			// (the window's worth given to the ARQ before the hello).
			if s1.Compressed < 3 || s2.Compressed < 3 {
				t.Errorf("compressed %d and %d packets of 10", s1.Compressed, s2.Compressed)
			}
			if s1.CompressSaved != 13*s1.Compressed {
				t.Errorf("saved %d bytes in %d packets, want 13 each", s1.CompressSaved, s1.Compressed)
			}
			if h := s1.HellosSent + s2.HellosSent; h < 1 || h > 2 {
				t.Errorf("%d hellos, want 1 or 2", h)
			}
			if air[n1][framing.MaxVersion] == 0 || air[n2][framing.MaxVersion] == 0 {
				t.Errorf("frames on air by version: %v and %v; want version %d from both", air[n1], air[n2], framing.MaxVersion)
			}
			// (Replayed may count a duplicate on the fake medium, with
			// or without version 2.)
			for _, d := range []Drops{s1.Drops, s2.Drops} {
				if d.Decompress+d.BadFrame+d.AuthFailed+d.Garbage != 0 {
					t.Errorf("drops %+v", d)
				}
			}
		})
	}
}

// TestVersionOldNew: a version-2 node and a version-1 build keep exchanging
// packets both ways; nothing in version 2 goes on air, nothing compressed.
func TestVersionOldNew(t *testing.T) {
	m, n1, n2 := pair(t, 115200, Config{}, Config{})
	n2.e.vers.v1Only = true
	air := airVersions(m)
	var log []*burst
	m.Bursts = &log
	exchange(t, m, n1, n2, 10)
	m.run(2 * time.Minute)
	n1.host, n2.host = nil, nil
	exchange(t, m, n1, n2, 3) // after hellos expire: still version 1
	s1, s2 := n1.e.Stats(m.Now()), n2.e.Stats(m.Now())
	if len(air[n1]) != 1 || len(air[n2]) != 1 || air[n1][1] == 0 || air[n2][1] == 0 {
		t.Errorf("frames on air by version: %v and %v; want version 1 only", air[n1], air[n2])
	}
	if s1.Compressed != 0 || s2.Drops.BadFrame != 0 {
		t.Errorf("compressed %d, old node's bad frames %d; want 0", s1.Compressed, s2.Drops.BadFrame)
	}
	// No grouped polls or Acks of several records with a version-1 peer:
	// every packet polls, every Ack reports one.
	if s1.ARQ.Riders+s2.ARQ.Riders+s1.ARQ.AckRecords+s2.ARQ.AckRecords != 0 || s1.ARQ.Malformed+s2.ARQ.Malformed != 0 {
		t.Errorf("riders %d, %d; extra Ack records %d, %d; malformed %d, %d: want none with a version-1 peer",
			s1.ARQ.Riders, s2.ARQ.Riders, s1.ARQ.AckRecords, s2.ARQ.AckRecords, s1.ARQ.Malformed, s2.ARQ.Malformed)
	}
	if v := peerVer(s1, 2); v != 1 {
		t.Errorf("node 2 shown as version %d, want 1", v)
	}
	// The old build ignored the hellos that reached it as a reserved kind
	// (a hello is not sent again, and one can collide with the other's
	// frame that started in the same slot).
	heard := uint64(0)
	for _, b := range log {
		if m.from(b) == n1 && !b.Collided {
			for _, h := range frames(t, b.Data) {
				if h.Kind == framing.KindHello {
					heard++
				}
			}
		}
	}
	if heard == 0 || s2.ARQ.Ignored != heard {
		t.Errorf("%d hellos sent, %d heard, %d frames ignored by the old node; want every hello heard ignored", s1.HellosSent, heard, s2.ARQ.Ignored)
	}
}

// tcpFrame is an Ethernet frame from node src to node dst carrying an IPv4
// TCP segment (ports 40000 -> 5201, sequence id, timestamps, ACK) with
// size bytes of payload; a pure ACK when size is 0.
func tcpFrame(dst, src framing.NodeID, id uint32, size int) []byte {
	b := udpFrame(dst, src, id, 32-8+size)
	ip := b[14:34]
	ip[9] = 6
	binary.BigEndian.PutUint16(ip[10:], 0)
	binary.BigEndian.PutUint16(ip[10:], framing.IPv4HeaderChecksum(ip))
	t := b[34:66]
	binary.BigEndian.PutUint16(t[0:], 40000)
	binary.BigEndian.PutUint16(t[2:], 5201)
	binary.BigEndian.PutUint32(t[4:], id)
	binary.BigEndian.PutUint32(t[8:], 7)
	t[12], t[13] = 8<<4, 0x10
	binary.BigEndian.PutUint16(t[14:], 502)
	binary.BigEndian.PutUint16(t[16:], uint16(id)^0xbeef)
	t[18], t[19] = 0, 0
	copy(t[20:], []byte{1, 1, 8, 10, 0, 0, 1, byte(id), 0, 0, 2, byte(id)})
	return b
}

// TestVersionTCP: compressed TCP headers go only between version-3 nodes;
// a version-3 node and a version-2 build exchange TCP with the version-2
// form (protocol carried, TCP header as it is), in version-2 frames, and
// every segment arrives exactly.
func TestVersionTCP(t *testing.T) {
	for _, tc := range []struct {
		desc string
		upTo [2]uint8
		// wantVer is each node's view of the other; saved the bytes
		// each compressed packet saves (a pure ACK with timestamps: 54
		// bytes as kind 0, 44 in version 2, 36 in version 3; its
		// checksum, wrong, stays in version 4).
		wantVer int
		saved   uint64
	}{
		{"new new", [2]uint8{}, framing.MaxVersion, 18},
		{"new, version-3 build", [2]uint8{0, 3}, 3, 18},
		{"new, version-2 build", [2]uint8{0, 2}, 2, 10},
		{"version-2 build, new", [2]uint8{2, 0}, 2, 10},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			m, n1, n2 := pair(t, 115200, Config{}, Config{})
			n1.e.vers.upTo, n2.e.vers.upTo = tc.upTo[0], tc.upTo[1]
			air := airVersions(m)
			exchange(t, m, n1, n2, 3) // the versions are known after this
			n1.host, n2.host = nil, nil
			s1, s2 := n1.e.Stats(m.Now()), n2.e.Stats(m.Now())
			c1, c2, sv1, sv2 := s1.Compressed, s2.Compressed, s1.CompressSaved, s2.CompressSaved
			tenEachWay(t, m, n1, n2, func(i uint32) []byte { return tcpFrame(2, 1, 1+i, 0) }, // identification not 0
				func(i uint32) []byte { return tcpFrame(1, 2, 101+i, 0) })
			s1, s2 = n1.e.Stats(m.Now()), n2.e.Stats(m.Now())
			if v1, v2 := peerVer(s1, 2), peerVer(s2, 1); min(v1, v2) != tc.wantVer {
				t.Errorf("peer versions %d and %d, want %d at least one way", v1, v2, tc.wantVer)
			}
			if s1.Compressed-c1 != 10 || s2.Compressed-c2 != 10 {
				t.Errorf("compressed %d and %d segments of 10", s1.Compressed-c1, s2.Compressed-c2)
			}
			if s1.CompressSaved-sv1 != 10*tc.saved || s2.CompressSaved-sv2 != 10*tc.saved {
				t.Errorf("saved %d and %d bytes in 10 segments, want %d each", s1.CompressSaved-sv1, s2.CompressSaved-sv2, tc.saved)
			}
			if v3 := air[n1][3] + air[n2][3] + air[n1][4] + air[n2][4]; (v3 > 0) != (tc.wantVer >= 3) {
				t.Errorf("frames on air by version: %v and %v", air[n1], air[n2])
			}
			for _, d := range []Drops{s1.Drops, s2.Drops} {
				if d.Decompress+d.BadFrame != 0 {
					t.Errorf("drops %+v", d)
				}
			}
		})
	}
}

// TestVersionRules: what a node learns from each frame, expiry and restart.
func TestVersionRules(t *testing.T) {
	t0 := time.Now()
	frag := func(first, poll bool) []byte {
		b, _ := framing.AppendFrag(nil, framing.FragHeader{First: first, AckReq: poll, Count: 1})
		return b
	}
	h1 := framing.Header{Kind: framing.KindFragment, Dst: 1, Src: 2}
	h2 := h1
	h2.Version = 2
	hello := framing.Header{Kind: framing.KindHello, Dst: 1, Src: 2}
	var v versions
	if w := v.heard(t0, h1, h1.Kind, frag(true, false), true); w != helloNone || v.of(2) != 1 {
		t.Fatalf("v1 fragment, no poll: hello %d, version %d; want none, 1", w, v.of(2))
	}
	if w := v.heard(t0, h1, h1.Kind, frag(false, true), true); w != helloUrgent {
		t.Fatalf("v1 poll: hello %d, want urgent", w)
	}
	// A hello may be lost: the first three go at most one a second, then
	// one per helloEvery.
	for _, c := range []struct {
		at   time.Duration
		want helloWhen
	}{
		{500 * time.Millisecond, helloNone}, {time.Second, helloUrgent}, {2 * time.Second, helloUrgent},
		{3 * time.Second, helloNone}, {2*time.Second + helloEvery - time.Millisecond, helloNone},
		{2*time.Second + helloEvery, helloUrgent},
	} {
		if w := v.heard(t0.Add(c.at), h1, h1.Kind, frag(false, true), true); w != c.want {
			t.Fatalf("v1 poll at +%v: hello %d, want %d", c.at, w, c.want)
		}
	}
	if v.sendVersion(t0, 2) != 1 {
		t.Fatal("version 2 sent before hearing it")
	}
	v.heard(t0, hello, framing.KindHello, []byte{2}, true)
	if v.sendVersion(t0, 2) != 2 || v.of(2) != 2 || v.sendVersion(t0, framing.Broadcast) != 1 {
		t.Fatal("hello: not version 2 (or broadcast is)")
	}
	if v.sendVersion(t0.Add(versionHold), 2) != 1 {
		t.Fatal("version 2 kept past versionHold")
	}
	v.heard(t0.Add(versionHold), h2, h2.Kind, frag(false, false), true)
	if v.sendVersion(t0.Add(versionHold), 2) != 2 {
		t.Fatal("a v2 frame does not renew")
	}
	// Restarted (maybe as a version-1 build): a v1 First fragment.
	v.heard(t0.Add(versionHold), h1, h1.Kind, frag(true, false), true)
	if v.sendVersion(t0.Add(versionHold), 2) != 1 || v.of(2) != 1 {
		t.Fatal("a v1 First fragment does not reset")
	}
	// A hello announcing 3: version 3, as long as we speak it.
	v.heard(t0, hello, framing.KindHello, []byte{3}, true)
	if v.sendVersion(t0, 2) != 3 || v.of(2) != 3 {
		t.Fatal("hello 3: not version 3")
	}
	if v.upTo = 2; v.sendVersion(t0, 2) != 2 {
		t.Fatal("a version-2 build sends version 3")
	}
	v.upTo = 0
	// A hello announcing 4: version 4, unless we are a version-3 build.
	v.heard(t0, hello, framing.KindHello, []byte{4}, true)
	if v.sendVersion(t0, 2) != 4 || v.of(2) != 4 {
		t.Fatal("hello 4: not version 4")
	}
	if v.upTo = 3; v.sendVersion(t0, 2) != 3 {
		t.Fatal("a version-3 build sends version 4")
	}
	v.upTo = 0
	// Unknown later versions count as the highest we decode.
	v.heard(t0, hello, framing.KindHello, []byte{9}, true)
	if v.sendVersion(t0, 2) != framing.MaxVersion || v.of(2) != framing.MaxVersion {
		t.Fatal("hello 9: not our highest version")
	}
	// A v1 Ack from a node we do not know: a hello behind the data.
	ack := framing.Header{Kind: framing.KindAck, Dst: 1, Src: 3}
	if w := v.heard(t0, ack, ack.Kind, []byte{0, 1, 1}, true); w != helloQueued {
		t.Fatalf("v1 Ack: hello %d, want queued", w)
	}
	// Not for us, or plain data: no hello.
	if w := v.heard(t0, framing.Header{Kind: framing.KindData, Dst: 1, Src: 4}, framing.KindData, []byte{8, 0}, true); w != helloNone {
		t.Fatalf("plain data: hello %d", w)
	}
	if w := v.heard(t0, framing.Header{Kind: framing.KindFragment, Dst: 9, Src: 5}, framing.KindFragment, frag(false, true), false); w != helloNone {
		t.Fatalf("a poll to another node: hello %d", w)
	}
}

// TestDecompressDrop: a compressed header that cannot be rebuilt is dropped
// and counted, never delivered.
func TestDecompressDrop(t *testing.T) {
	inBubble(t, Config{}, func(t *testing.T, x *bubble) {
		p, _ := framing.AppendFrag(nil, framing.FragHeader{First: true, AckReq: true, Inner: framing.KindIPHC, Count: 1})
		p = append(p, 0x90, 1, 2, 3) // CK without NH or TC
		x.m.inject(x.n, framing.AppendFrame(nil, framing.Header{Kind: framing.KindFragment, Dst: 1, Src: 2, Version: 2}, p))
		good, _ := framing.AppendIPHC(nil, udpFrame(1, 2, 7, 30)[12:])
		x.m.inject(x.n, framing.AppendFrame(nil, framing.Header{Kind: framing.KindIPHC, Dst: 1, Src: 2, Version: 2}, good))
		x.after(time.Second)
		st := x.n.e.Stats(x.m.Now())
		if st.Drops.Decompress != 1 || len(x.n.host) != 1 || string(x.n.host[0]) != string(udpFrame(1, 2, 7, 30)) {
			t.Fatalf("drops %+v, %d frames to the host; want 1 decompress drop and the good packet", st.Drops, len(x.n.host))
		}
	})
}

// restart replaces n's engine by a fresh one of the same node (a daemon
// restarted, v1Only for an older build) on an idle medium.
func restart(t *testing.T, m *medium, n *node, v1Only bool) {
	t.Helper()
	if m.Busy() {
		t.Fatal("restart on a busy medium")
	}
	cfg := n.e.cfg
	cfg.Seed++
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.vers.v1Only = v1Only
	n.e, n.host = e, nil
	m.event(n, phy.Event{Kind: phy.Up})
}

// TestVersionPeerRestarts: a version-2 peer restarted as a version-1 build
// is talked to in version 1 again as soon as it sends (its First fragment),
// and a version-1 peer restarted as a version-2 build is upgraded to; in
// both cases packets flow both ways afterwards.
func TestVersionPeerRestarts(t *testing.T) {
	for _, tc := range []struct {
		desc            string
		before, after   bool // node 2 is a version-1 build
		wantVer, wantV2 int  // node 1's view of node 2 at the end, and frames it then sends in version 2
	}{
		{"new restarted as old", false, true, 1, 0},
		{"old restarted as new", true, false, framing.MaxVersion, 1},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			m, n1, n2 := pair(t, 115200, Config{}, Config{})
			n2.e.vers.v1Only = tc.before
			exchange(t, m, n1, n2, 5)
			restart(t, m, n2, tc.after)
			// Node 2 speaks first after its restart, as a restarted
			// daemon's neighbours usually hear it (ARP, a reply) before
			// they lose a packet to it.
			n1.host = nil
			sendAll(m, n2, [][]byte{udpFrame(1, 2, 77, 100)})
			m.run(5 * time.Second)
			n1.host = nil
			air := airVersions(m)
			exchange(t, m, n1, n2, 5)
			s1 := n1.e.Stats(m.Now())
			if v := peerVer(s1, 2); v != tc.wantVer {
				t.Errorf("node 1 shows node 2 as version %d, want %d", v, tc.wantVer)
			}
			if got := len(air[n1]) - min(air[n1][1], 1); (got > 0) != (tc.wantV2 > 0) {
				t.Errorf("node 1 sent frames in versions %v after the restart; want some later than 1: %v", air[n1], tc.wantV2 > 0)
			}
			if d := n2.e.Stats(m.Now()).Drops; d.BadFrame != 0 {
				t.Errorf("node 2 refused %d frames (version 2 to a version-1 build)", d.BadFrame)
			}
		})
	}
}

// withL4Sum fills in the UDP or TCP checksum of b, an Ethernet frame with
// an IPv4 packet without options (UDP sends a computed 0 as 0xFFFF), and
// returns b.
func withL4Sum(b []byte) []byte {
	ip, seg := b[14:34], b[34:]
	off := 6
	if ip[9] == 6 {
		off = 16
	}
	seg[off], seg[off+1] = 0, 0
	var s uint32
	add := func(p []byte) {
		for i := 0; i < len(p); i += 2 {
			w := uint32(p[i]) << 8
			if i+1 < len(p) {
				w |= uint32(p[i+1])
			}
			s += w
		}
	}
	add(ip[12:20])
	add([]byte{0, ip[9], byte(len(seg) >> 8), byte(len(seg))})
	add(seg)
	for s > 0xFFFF {
		s = s>>16 + s&0xFFFF
	}
	c := ^uint16(s)
	if c == 0 && ip[9] == 17 {
		c = 0xFFFF
	}
	binary.BigEndian.PutUint16(seg[off:], c)
	return b
}

// airCK counts, for each node, the packets with compressed headers it puts
// on air (plain KindIPHC, or the first fragment of one) whose dispatch has
// CK set and those without.
func airCK(m *medium) map[*node]*[2]int {
	got := map[*node]*[2]int{}
	decs := map[*node]*framing.Decoder{}
	m.lose = func(from, _ *node, data []byte) bool {
		d := decs[from]
		if d == nil {
			d = framing.NewDecoder(4000)
			decs[from] = d
			got[from] = &[2]int{}
		}
		d.Feed(data, func(h framing.Header, p []byte) {
			if h.Kind == framing.KindFragment {
				f, rest, err := framing.ParseFrag(p)
				if err != nil || f.Inner != framing.KindIPHC || f.Index != 0 || len(rest) == 0 {
					return
				}
				p = rest
			} else if h.Kind != framing.KindIPHC || len(p) == 0 {
				return
			}
			if p[0]&0x80 != 0 {
				got[from][1]++
			} else {
				got[from][0]++
			}
		})
		return false
	}
	return got
}

// TestVersionChecksum: UDP and TCP checksums are elided (the dispatch's
// CK) only between version-4 nodes; a version-4 node and a version-3 build
// compress headers but carry the checksums, and every packet arrives
// exactly, its checksum as it was sent.
func TestVersionChecksum(t *testing.T) {
	for _, tc := range []struct {
		desc string
		upTo [2]uint8
		ck   bool
		// saved is the bytes each compressed packet saves: a UDP
		// datagram 13 (15 with CK), a pure TCP ACK with timestamps 18
		// (20 with CK).
		udp, tcp uint64
	}{
		{"new new", [2]uint8{}, true, 15, 20},
		{"new, version-3 build", [2]uint8{0, 3}, false, 13, 18},
		{"version-3 build, new", [2]uint8{3, 0}, false, 13, 18},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			m, n1, n2 := pair(t, 115200, Config{}, Config{})
			n1.e.vers.upTo, n2.e.vers.upTo = tc.upTo[0], tc.upTo[1]
			exchange(t, m, n1, n2, 3) // the versions are known after this
			n1.host, n2.host = nil, nil
			air := airCK(m)
			s1, s2 := n1.e.Stats(m.Now()), n2.e.Stats(m.Now())
			c1, c2, sv1, sv2 := s1.Compressed, s2.Compressed, s1.CompressSaved, s2.CompressSaved
			tenEachWay(t, m, n1, n2, func(i uint32) []byte { return withL4Sum(udpFrame(2, 1, 1+i, 999)) },
				func(i uint32) []byte { return withL4Sum(tcpFrame(1, 2, 101+i, 0)) })
			s1, s2 = n1.e.Stats(m.Now()), n2.e.Stats(m.Now())
			if s1.Compressed-c1 != 10 || s2.Compressed-c2 != 10 {
				t.Errorf("compressed %d and %d packets of 10", s1.Compressed-c1, s2.Compressed-c2)
			}
			if s1.CompressSaved-sv1 != 10*tc.udp || s2.CompressSaved-sv2 != 10*tc.tcp {
				t.Errorf("saved %d and %d bytes in 10 packets each, want %d and %d", s1.CompressSaved-sv1, s2.CompressSaved-sv2, 10*tc.udp, 10*tc.tcp)
			}
			for _, x := range []*node{n1, n2} {
				a := air[x]
				if a == nil || a[0]+a[1] < 10 || (a[1] > 0) != tc.ck || tc.ck && a[0] > 0 {
					t.Errorf("node %d put on air compressed packets without and with CK: %v; want CK %v", x.e.cfg.Node, a, tc.ck)
				}
			}
			for _, d := range []Drops{s1.Drops, s2.Drops} {
				if d.Decompress+d.BadFrame != 0 {
					t.Errorf("drops %+v", d)
				}
			}
		})
	}
}

// tenEachWay sends ten frames from n1's host (to(i), i = 0..9) and ten from
// n2's (from(i)), runs the medium 20 s and checks that each host got the
// other's ten whole and in order.
func tenEachWay(t *testing.T, m *medium, n1, n2 *node, to, from func(i uint32) []byte) {
	t.Helper()
	want := map[*node][]byte{}
	for i := range uint32(10) {
		fa, fb := to(i), from(i)
		want[n2], want[n1] = append(want[n2], fa...), append(want[n1], fb...)
		sendAll(m, n1, [][]byte{fa})
		sendAll(m, n2, [][]byte{fb})
	}
	m.run(20 * time.Second)
	for _, x := range []*node{n1, n2} {
		var got []byte
		for _, f := range x.host {
			got = append(got, f...)
		}
		if string(got) != string(want[x]) {
			t.Errorf("node %d: %d frames to the host, not the 10 sent in order", x.e.cfg.Node, len(x.host))
		}
	}
}
