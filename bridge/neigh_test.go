package bridge

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

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

func ipv4From(node framing.NodeID, src string) []byte {
	b := ethHdr(framing.MACFor(1), framing.MACFor(node), etherIPv4)
	ip := make([]byte, 20)
	ip[0] = 0x45
	copy(ip[12:], netip.MustParseAddr(src).AsSlice())
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
func nsFrame(src, target string) []byte {
	t := netip.MustParseAddr(target).As16()
	b := ethHdr([]byte{0x33, 0x33, 0xff, t[13], t[14], t[15]}, hostMAC, etherIPv6)
	ip := []byte{0x60, 0, 0, 0, 0, 32, icmpv6, 255}
	ip = append(ip, netip.MustParseAddr(src).AsSlice()...)
	ip = append(ip, 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15])
	icmp := []byte{ndSolicit, 0, 0, 0, 0, 0, 0, 0}
	icmp = append(icmp, t[:]...)
	icmp = append(icmp, 1, 1)
	icmp = append(icmp, hostMAC...)
	binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(ip[8:24], ip[24:40], icmp))
	return append(append(b, ip...), icmp...)
}

func TestNeighLearn(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		desc string
		src  framing.NodeID
		eth  []byte
		addr string // "" when nothing may be learned
	}{
		{"ipv4 from the node's own MAC", 2, ipv4From(2, "192.0.2.2"), "192.0.2.2"},
		{"ipv6 from the node's own MAC", 3, ipv6From(3, "fd00::3"), "fd00::3"},
		{"arp reply", 2, arpFrame(2, framing.MACFor(2), "192.0.2.2", "192.0.2.1"), "192.0.2.2"},
		{"frame bridged from another MAC", 2, append(ethHdr(framing.MACFor(1), hostMAC, etherIPv4), ipv4From(2, "192.0.2.9")[14:]...), ""},
		{"link says node 3, MAC says node 2", 3, ipv4From(2, "192.0.2.2"), ""},
		{"unspecified source", 2, ipv4From(2, "0.0.0.0"), ""},
		{"multicast source", 2, ipv6From(2, "ff02::1"), ""},
		{"truncated", 2, ipv4From(2, "192.0.2.2")[:20], ""},
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

func TestNeighAnswerARP(t *testing.T) {
	now := time.Unix(1000, 0)
	nt := newNeighTable()
	nt.learn(now, 2, ipv4From(2, "192.0.2.2"))
	nt.learn(now, 1, ipv4From(1, "192.0.2.1")) // our own address, heard back
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
	nt.learn(now, 2, ipv6From(2, "fd00::2"))
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
		nt.learn(now.Add(time.Duration(i)*time.Millisecond), 2, ipv4From(2, a.String()))
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
	f := ipv4From(2, "192.0.2.2")
	now := time.Unix(1000, 0)
	b.ReportAllocs()
	for b.Loop() {
		nt.learn(now, 2, f)
	}
}
