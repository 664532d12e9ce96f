package link

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
)

var hostMAC = []byte{0x02, 0xaa, 0, 0, 0, 1} // a host on our TAP (the kernel)

func ethHdr(dst, src []byte, typ uint16) []byte {
	b := append(append([]byte(nil), dst...), src...)
	return binary.BigEndian.AppendUint16(b, typ)
}

func arpFrame(oper uint16, sha []byte, spa, tpa string) []byte {
	b := ethHdr([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, sha, etherARP)
	b = append(b, 0, 1, 0x08, 0x00, 6, 4)
	b = binary.BigEndian.AppendUint16(b, oper)
	b = append(b, sha...)
	b = append(b, netip.MustParseAddr(spa).AsSlice()...)
	b = append(b, 0, 0, 0, 0, 0, 0)
	return append(b, netip.MustParseAddr(tpa).AsSlice()...)
}

// ipv4From is a UDP datagram from node (its MAC) with IPv4 source src.
func ipv4From(node framing.NodeID, src string) []byte {
	b := ethHdr(framing.MACFor(1), framing.MACFor(node), etherIPv4)
	ip := make([]byte, 20+8)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 28)
	ip[8], ip[9] = 64, 17 // TTL, UDP
	copy(ip[12:], netip.MustParseAddr(src).AsSlice())
	copy(ip[16:], netip.MustParseAddr("192.0.2.1").AsSlice())
	binary.BigEndian.PutUint16(ip[20:], 5001)
	binary.BigEndian.PutUint16(ip[22:], 5001)
	binary.BigEndian.PutUint16(ip[24:], 8)
	return append(b, ip...)
}

func ipv6From(node framing.NodeID, src string) []byte {
	b := ethHdr(framing.MACFor(1), framing.MACFor(node), etherIPv6)
	ip := make([]byte, 40)
	ip[0] = 0x60
	copy(ip[8:], netip.MustParseAddr(src).AsSlice())
	return append(b, ip...)
}

// nsFrame is a neighbour solicitation from src for target, as the kernel
// sends it (to the solicited-node multicast address, with its source
// link-layer address option).
func nsFrame(src, target string) []byte { return nsFrameFrom(hostMAC, src, target, true) }

// nsFrameFrom is a neighbour solicitation from the host with link address
// mac, with or without its source link-layer address option.
func nsFrameFrom(mac []byte, src, target string, slla bool) []byte {
	t := netip.MustParseAddr(target).As16()
	b := ethHdr([]byte{0x33, 0x33, 0xff, t[13], t[14], t[15]}, mac, etherIPv6)
	plen := byte(24)
	if slla {
		plen = 32
	}
	ip := []byte{0x60, 0, 0, 0, 0, plen, icmpv6, 255}
	ip = append(ip, netip.MustParseAddr(src).AsSlice()...)
	ip = append(ip, 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15])
	icmp := []byte{ndSolicit, 0, 0, 0, 0, 0, 0, 0}
	icmp = append(icmp, t[:]...)
	if slla {
		icmp = append(icmp, 1, 1)
		icmp = append(icmp, mac...)
	}
	binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(ip[8:24], ip[24:40], icmp))
	return append(append(b, ip...), icmp...)
}

// naFrame is a solicited neighbour advertisement from node for target,
// sent to node 1, with the target link-layer address option tlla (none if
// nil) and the given hop limit.
func naFrame(node framing.NodeID, target string, tlla []byte, hop byte) []byte {
	b := ethHdr(framing.MACFor(1), framing.MACFor(node), etherIPv6)
	plen := byte(24)
	if tlla != nil {
		plen = 32
	}
	ip := []byte{0x60, 0, 0, 0, 0, plen, icmpv6, hop}
	ip = append(ip, netip.MustParseAddr("fe80::2").AsSlice()...)
	ip = append(ip, netip.MustParseAddr("fd00::1").AsSlice()...)
	icmp := []byte{ndAdvertise, 0, 0, 0, 0x60, 0, 0, 0}
	icmp = append(icmp, netip.MustParseAddr(target).AsSlice()...)
	if tlla != nil {
		icmp = append(icmp, ndOptTgtLink, 1)
		icmp = append(icmp, tlla...)
	}
	binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(ip[8:24], ip[24:40], icmp))
	return append(append(b, ip...), icmp...)
}

func TestNeighLearn(t *testing.T) {
	now := time.Unix(1000, 0)
	badSum := naFrame(3, "fd00::3", framing.MACFor(3), 255)
	badSum[len(badSum)-1] ^= 1
	for _, tc := range []struct {
		desc string
		src  framing.NodeID
		eth  []byte
		addr string // "" when nothing may be learned
	}{
		{"arp reply", 2, arpFrame(2, framing.MACFor(2), "192.0.2.2", "192.0.2.1"), "192.0.2.2"},
		{"arp request", 2, arpFrame(1, framing.MACFor(2), "192.0.2.2", "192.0.2.1"), "192.0.2.2"},
		{"arp announcement", 2, arpFrame(1, framing.MACFor(2), "192.0.2.2", "192.0.2.2"), "192.0.2.2"},
		{"arp probe (sender 0.0.0.0)", 2, arpFrame(1, framing.MACFor(2), "0.0.0.0", "192.0.2.2"), ""},
		{"arp with another node's hardware address", 2, append(ethHdr(framing.MACFor(1), framing.MACFor(2), etherARP), arpFrame(2, framing.MACFor(3), "192.0.2.3", "192.0.2.1")[14:]...), ""},
		{"neighbour advertisement", 3, naFrame(3, "fd00::3", framing.MACFor(3), 255), "fd00::3"},
		{"advertisement without the target's link address", 3, naFrame(3, "fd00::3", nil, 255), "fd00::3"},
		{"advertisement naming another node's link address", 3, naFrame(3, "fd00::3", framing.MACFor(4), 255), ""},
		{"advertisement with hop limit below 255", 3, naFrame(3, "fd00::3", framing.MACFor(3), 64), ""},
		{"advertisement with a bad checksum", 3, badSum, ""},
		{"advertisement for a multicast target", 3, naFrame(3, "ff02::1", framing.MACFor(3), 255), ""},
		{"solicitation with the source's link address", 3, nsFrameFrom(framing.MACFor(3), "fd00::3", "fd00::1", true), "fd00::3"},
		{"solicitation without it", 3, nsFrameFrom(framing.MACFor(3), "fd00::3", "fd00::1", false), ""},
		{"solicitation for duplicate address detection", 3, nsFrameFrom(framing.MACFor(3), "::", "fd00::3", false), ""},
		{"ipv4 packet: no claim", 2, ipv4From(2, "192.0.2.2"), ""},
		{"ipv6 packet: no claim", 3, ipv6From(3, "fd00::3"), ""},
		{"frame bridged from another MAC", 2, append(ethHdr(framing.MACFor(1), hostMAC, etherARP), arpFrame(2, hostMAC, "192.0.2.9", "192.0.2.1")[14:]...), ""},
		{"link says node 3, MAC says node 2", 3, arpFrame(2, framing.MACFor(2), "192.0.2.2", "192.0.2.1"), ""},
		{"truncated arp", 2, arpFrame(2, framing.MACFor(2), "192.0.2.2", "192.0.2.1")[:30], ""},
		{"truncated advertisement", 3, naFrame(3, "fd00::3", framing.MACFor(3), 255)[:70], ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			nt := newNeighTable()
			nt.learn(now, tc.src, tc.eth)
			if tc.addr == "" {
				if len(nt.m) != 0 {
					t.Fatalf("learned %v from a frame it must not trust", nt.m)
				}
				return
			}
			if n, ok := nt.lookup(now, netip.MustParseAddr(tc.addr)); !ok || n != tc.src {
				t.Fatalf("lookup %s = %d, %v; want node %d", tc.addr, n, ok, tc.src)
			}
		})
	}
}

// TestNeighSpoofedPacket: a packet from another node that merely carries
// a node's address as its source (one spoofed UDP datagram) does not
// change who the daemon answers for.
func TestNeighSpoofedPacket(t *testing.T) {
	now := time.Unix(1000, 0)
	nt := newNeighTable()
	nt.learn(now, 2, arpFrame(2, framing.MACFor(2), "192.0.2.2", "192.0.2.1"))
	nt.learn(now, 3, naFrame(3, "fd00::3", framing.MACFor(3), 255))
	nt.learn(now.Add(time.Second), 3, ipv4From(3, "192.0.2.2"))
	nt.learn(now.Add(time.Second), 2, ipv6From(2, "fd00::3"))
	for addr, want := range map[string]framing.NodeID{"192.0.2.2": 2, "fd00::3": 3} {
		if n, ok := nt.lookup(now.Add(time.Second), netip.MustParseAddr(addr)); !ok || n != want {
			t.Errorf("after a spoofed packet, %s is node %d (%v); want node %d", addr, n, ok, want)
		}
	}
}

// TestNeighNoMoveWhileFresh: another node's claim to an address whose
// owner was heard within neighTTL does not move it; the daemon then
// answers for neither node (the requests go on air, where the owner
// answers) until the dispute is neighTTL old. A claim after the owner has
// been quiet for neighTTL takes the address.
func TestNeighNoMoveWhileFresh(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := netip.MustParseAddr("192.0.2.2")
	claim := func(node framing.NodeID) []byte {
		return arpFrame(2, framing.MACFor(node), "192.0.2.2", "192.0.2.1")
	}
	type step struct {
		at    time.Duration // since t0
		from  framing.NodeID
		want  framing.NodeID // answered for right after (0: nobody)
		known bool           // the table holds the address for want (or for the owner when want is 0)
	}
	for _, tc := range []struct {
		desc  string
		steps []step
	}{
		{"second node while the first is fresh", []step{
			{0, 2, 2, true},
			{time.Minute, 3, 0, true}, // refused; the daemon steps aside
			{2 * time.Minute, 2, 0, true},
			{time.Minute + neighTTL + time.Second, 2, 2, true}, // the dispute is over; 2 refreshed
		}},
		{"the owner keeps it fresh", []step{
			{0, 2, 2, true},
			{9 * time.Minute, 2, 2, true},
			{11 * time.Minute, 3, 0, true}, // 2 heard 2 minutes ago
		}},
		{"the owner went quiet", []step{
			{0, 2, 2, true},
			{neighTTL + time.Second, 3, 3, true},
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			nt := newNeighTable()
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				nt.learn(now, s.from, claim(s.from))
				n, ok := nt.lookup(now, a)
				if s.want == 0 && ok {
					t.Fatalf("step %d: answering for node %d after a disputed claim", i, n)
				}
				if s.want != 0 && (!ok || n != s.want) {
					t.Fatalf("step %d (claim from %d at %v): answering for %d (%v), want node %d", i, s.from, s.at, n, ok, s.want)
				}
			}
		})
	}
}

func TestNeighAnswerARP(t *testing.T) {
	now := time.Unix(1000, 0)
	nt := newNeighTable()
	nt.learn(now, 2, arpFrame(2, framing.MACFor(2), "192.0.2.2", "192.0.2.1"))
	nt.learn(now, 1, arpFrame(2, framing.MACFor(1), "192.0.2.1", "192.0.2.2")) // our own address, heard back
	for _, tc := range []struct {
		desc   string
		req    []byte
		at     time.Time
		answer bool
	}{
		{"known node", arpFrame(1, hostMAC, "192.0.2.1", "192.0.2.2"), now, true},
		{"unknown address", arpFrame(1, hostMAC, "192.0.2.1", "192.0.2.7"), now, false},
		{"our own address", arpFrame(1, hostMAC, "192.0.2.5", "192.0.2.1"), now, false},
		{"probe (sender 0.0.0.0)", arpFrame(1, hostMAC, "0.0.0.0", "192.0.2.2"), now, false},
		{"announcement", arpFrame(1, hostMAC, "192.0.2.2", "192.0.2.2"), now, false},
		{"a reply, not a request", arpFrame(2, hostMAC, "192.0.2.1", "192.0.2.2"), now, false},
		{"heard too long ago", arpFrame(1, hostMAC, "192.0.2.1", "192.0.2.2"), now.Add(neighTTL + time.Second), false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r, ok := nt.answer(nil, tc.at, 1, tc.req)
			if ok != tc.answer {
				t.Fatalf("answered %v, want %v", ok, tc.answer)
			}
			if !ok {
				return
			}
			want := ethHdr(hostMAC, framing.MACFor(2), etherARP)
			want = append(want, 0, 1, 8, 0, 6, 4, 0, 2)
			want = append(want, framing.MACFor(2)...)
			want = append(want, 192, 0, 2, 2)
			want = append(want, hostMAC...)
			want = append(want, 192, 0, 2, 1)
			if !bytes.Equal(r, want) {
				t.Fatalf("reply\n% x\nwant\n% x", r, want)
			}
		})
	}
}

func TestNeighAnswerNS(t *testing.T) {
	now := time.Unix(1000, 0)
	nt := newNeighTable()
	nt.learn(now, 2, naFrame(2, "fd00::2", framing.MACFor(2), 255))
	r, ok := nt.answer(nil, now, 1, nsFrame("fd00::1", "fd00::2"))
	if !ok {
		t.Fatal("no answer for a known node")
	}
	if len(r) != 14+40+32 {
		t.Fatalf("advertisement is %d bytes, want 86", len(r))
	}
	if !bytes.Equal(r[:6], hostMAC) || !bytes.Equal(r[6:12], framing.MACFor(2)) {
		t.Fatalf("Ethernet header % x", r[:14])
	}
	ip, icmp := r[14:54], r[54:]
	if ip[6] != icmpv6 || ip[7] != 255 || binary.BigEndian.Uint16(ip[4:6]) != 32 {
		t.Fatalf("IPv6 header % x", ip)
	}
	if netip.AddrFrom16([16]byte(ip[8:24])) != netip.MustParseAddr("fd00::2") ||
		netip.AddrFrom16([16]byte(ip[24:40])) != netip.MustParseAddr("fd00::1") {
		t.Fatalf("addresses % x", ip[8:40])
	}
	if icmp[0] != ndAdvertise || icmp[4] != 0x60 || icmp[24] != ndOptTgtLink || icmp[25] != 1 ||
		!bytes.Equal(icmp[26:32], framing.MACFor(2)) {
		t.Fatalf("advertisement % x", icmp)
	}
	// A correct checksum sums, with itself included, to zero.
	if sum := icmpv6Checksum(ip[8:24], ip[24:40], icmp); sum != 0 {
		t.Fatalf("checksum does not verify (%#04x)", sum)
	}
	for _, tc := range []struct {
		desc string
		req  []byte
	}{
		{"duplicate address detection", nsFrame("::", "fd00::2")},
		{"unknown target", nsFrame("fd00::1", "fd00::9")},
		{"truncated", nsFrame("fd00::1", "fd00::2")[:70]},
	} {
		if _, ok := nt.answer(nil, now, 1, tc.req); ok {
			t.Errorf("%s: answered", tc.desc)
		}
	}
}

// TestNeighTableBounded: the table keeps at most maxNeigh addresses,
// forgetting the one heard longest ago.
func TestNeighTableBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	nt := newNeighTable()
	for i := range maxNeigh + 10 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		nt.learn(now.Add(time.Duration(i)*time.Millisecond), 2, arpFrame(1, framing.MACFor(2), a.String(), "192.0.2.1"))
	}
	if len(nt.m) != maxNeigh {
		t.Fatalf("%d entries, want %d", len(nt.m), maxNeigh)
	}
	if _, ok := nt.lookup(now.Add(time.Second), netip.MustParseAddr("10.0.0.0")); ok {
		t.Fatal("the oldest entry survived")
	}
}

func BenchmarkNeighLearn(b *testing.B) {
	nt := newNeighTable()
	f := arpFrame(2, framing.MACFor(2), "192.0.2.2", "192.0.2.1")
	now := time.Unix(1000, 0)
	b.ReportAllocs()
	for b.Loop() {
		nt.learn(now, 2, f)
	}
}

// airFrame is eth as node src puts it on air, sealed with s if s is set.
func airFrame(t *testing.T, src framing.NodeID, eth []byte, s *auth.Sealer) []byte {
	t.Helper()
	h, p, err := framing.Compact(eth, src)
	if err != nil {
		t.Fatal(err)
	}
	if s != nil {
		if h, p, err = s.Seal(time.Now(), nil, h, p); err != nil {
			t.Fatal(err)
		}
	}
	return framing.AppendFrame(nil, h, p)
}

// askARP has the host on the TAP ask for addr and returns the link address
// the daemon answered with (nil: no answer, the request went on air).
func askARP(t *testing.T, x *bubble, addr string) net.HardwareAddr {
	t.Helper()
	before := len(x.n.host)
	x.m.hostFrame(x.n, arpFrame(1, hostMAC, "192.0.2.1", addr))
	x.after(time.Second)
	for _, w := range x.n.host[before:] {
		if len(w) >= 42 && bytes.Equal(w[:6], hostMAC) && binary.BigEndian.Uint16(w[12:14]) == etherARP {
			return net.HardwareAddr(w[22:28])
		}
	}
	return nil
}

// TestEngineNeighSpoofedPacket: a UDP datagram from node 3 that carries
// node 2's address as its source does not make the daemon answer for node
// 3; node 2's ARP reply taught it, and it keeps answering for node 2.
func TestEngineNeighSpoofedPacket(t *testing.T) {
	inBubble(t, Config{}, func(t *testing.T, x *bubble) {
		x.m.inject(x.n, airFrame(t, 2, arpFrame(2, framing.MACFor(2), "192.0.2.2", "192.0.2.1"), nil))
		x.after(time.Second)
		if got := askARP(t, x, "192.0.2.2"); !bytes.Equal(got, framing.MACFor(2)) {
			t.Fatalf("answered %v for 192.0.2.2 after node 2's ARP reply, want %v", got, framing.MACFor(2))
		}
		x.m.inject(x.n, airFrame(t, 3, ipv4From(3, "192.0.2.2"), nil))
		x.after(time.Second)
		if got := askARP(t, x, "192.0.2.2"); !bytes.Equal(got, framing.MACFor(2)) {
			t.Fatalf("answered %v for 192.0.2.2 after node 3's spoofed datagram, want %v", got, framing.MACFor(2))
		}
		// A claim from node 3 while node 2 is fresh: no answer for either.
		x.m.inject(x.n, airFrame(t, 3, arpFrame(2, framing.MACFor(3), "192.0.2.2", "192.0.2.1"), nil))
		x.after(time.Second)
		if got := askARP(t, x, "192.0.2.2"); got != nil {
			t.Fatalf("answered %v for a disputed address", got)
		}
		if st := x.n.e.Stats(x.m.Now()); st.NeighRefused != 1 || x.n.logCount("two nodes claim") != 1 {
			t.Fatalf("neigh_refused %d, logged %d times; want 1 and 1", st.NeighRefused, x.n.logCount("two nodes claim"))
		}
	})
}

// TestEngineNeighKeyed: with a key, only claims in frames sealed with it
// teach: an unsealed ARP reply is dropped before it could.
func TestEngineNeighKeyed(t *testing.T) {
	key := auth.Key{7, 7, 7}
	inBubble(t, Config{Key: &key}, func(t *testing.T, x *bubble) {
		claim := arpFrame(2, framing.MACFor(2), "192.0.2.2", "192.0.2.1")
		x.m.inject(x.n, airFrame(t, 2, claim, nil))
		x.after(time.Second)
		if got := askARP(t, x, "192.0.2.2"); got != nil {
			t.Fatalf("answered %v from an unsealed claim", got)
		}
		s, err := auth.NewSealer(key, 2, 1)
		if err != nil {
			t.Fatal(err)
		}
		x.m.inject(x.n, airFrame(t, 2, claim, s))
		x.after(time.Second)
		if got := askARP(t, x, "192.0.2.2"); !bytes.Equal(got, framing.MACFor(2)) {
			t.Fatalf("answered %v after a sealed claim, want %v", got, framing.MACFor(2))
		}
	})
}

// FuzzNeighLearn: any frame from the air or the TAP is parsed without a
// panic, and an address is learned only from a frame whose Ethernet source
// is the sending node's.
func FuzzNeighLearn(f *testing.F) {
	f.Add(byte(2), arpFrame(2, framing.MACFor(2), "192.0.2.2", "192.0.2.1"))
	f.Add(byte(3), naFrame(3, "fd00::3", framing.MACFor(3), 255))
	f.Add(byte(3), nsFrameFrom(framing.MACFor(3), "fd00::3", "fd00::1", true))
	f.Add(byte(2), ipv4From(2, "192.0.2.2"))
	f.Add(byte(1), nsFrame("fd00::1", "fd00::2"))
	f.Fuzz(func(t *testing.T, src byte, eth []byte) {
		now := time.Unix(1000, 0)
		nt := newNeighTable()
		nt.learn(now, framing.NodeID(src), eth)
		for a, e := range nt.m {
			if !a.IsValid() || e.node != framing.NodeID(src) || !bytes.Equal(eth[6:12], framing.MACFor(e.node)) {
				t.Fatalf("learned %v -> %d from a frame of node %d with source % x", a, e.node, src, eth[6:12])
			}
		}
		nt.answer(nil, now, 1, eth)
	})
}
