package framing

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// ipv4 builds a KindData payload: EtherType 0x0800, a 20-byte IPv4 header
// with a correct checksum (unless badSum), then l4.
func ipv4(tos byte, id uint16, flags uint16, ttl, proto byte, l4 []byte, badSum bool) []byte {
	b := []byte{0x08, 0x00, 0x45, tos, 0, 0, byte(id >> 8), byte(id), byte(flags >> 8), byte(flags), ttl, proto, 0, 0,
		192, 0, 2, 1, 192, 0, 2, 2}
	ip := b[2:]
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	sum := ^checksum(ip)
	if badSum {
		sum ^= 0x0101
	}
	binary.BigEndian.PutUint16(ip[10:], sum)
	return append(b, l4...)
}

// ipv6 builds a KindData payload: EtherType 0x86DD, an IPv6 header
// (fd00::1 -> fd00::2), then l4.
func ipv6(first4 [4]byte, nh, hop byte, l4 []byte) []byte {
	b := []byte{0x86, 0xdd}
	b = append(b, first4[:]...)
	b = append(b, byte(len(l4)>>8), byte(len(l4)), nh, hop)
	src := [16]byte{0xfd, 15: 1}
	dst := [16]byte{0xfd, 15: 2}
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	return append(b, l4...)
}

// udp builds a UDP header (length from the payload, checksum as given)
// and payload.
func udp(sport, dport, sum uint16, payload []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(payload)))
	b = binary.BigEndian.AppendUint16(b, sum)
	return append(b, payload...)
}

func TestIPHC(t *testing.T) {
	p1000 := seq(1, 1000)
	tcp := seq(3, 40) // a TCP header and some payload, carried as it is
	badUDPLen := udp(5000, 5001, 0x1234, seq(1, 10))
	binary.BigEndian.PutUint16(badUDPLen[4:], 99)
	for _, tc := range []struct {
		desc string
		data []byte
		// want is the compressed length, 0 when the packet must travel
		// uncompressed.
		want int
	}{
		{"ipv4 udp 1000, DF, TTL 64", ipv4(0, 0x1c46, 0x4000, 64, 17, udp(5000, 5001, 0xabcd, p1000), false), 1 + 2 + 8 + 6 + 1000},
		{"ipv4 udp, id 0, TOS, TTL 3, no DF", ipv4(0xb8, 0, 0, 3, 17, udp(53, 53, 0, seq(1, 20)), false), 1 + 1 + 1 + 8 + 6 + 20},
		{"ipv4 tcp: protocol carried", ipv4(0, 7, 0x4000, 64, 6, tcp, false), 1 + 2 + 1 + 8 + 40},
		{"ipv4 udp shorter than its header: protocol carried", ipv4(0, 7, 0x4000, 64, 17, seq(1, 5), false), 1 + 2 + 1 + 8 + 5},
		{"ipv4 empty payload, icmp", ipv4(0, 1, 0, 255, 1, nil, false), 1 + 2 + 1 + 1 + 8},
		{"ipv4 udp length wrong: protocol carried, UDP header as is", ipv4(0, 7, 0x4000, 64, 17, badUDPLen, false), 1 + 2 + 1 + 8 + 18},
		{"ipv6 udp 1000", ipv6([4]byte{0x60}, 17, 64, udp(5000, 5001, 0xabcd, p1000)), 1 + 32 + 6 + 1000},
		{"ipv6 udp flow label, hop 255", ipv6([4]byte{0x60, 0x0a, 0xbc, 0xde}, 17, 255, udp(1, 2, 3, nil)), 1 + 4 + 1 + 32 + 6},
		{"ipv6 icmpv6", ipv6([4]byte{0x60}, 58, 255, seq(1, 8)), 1 + 1 + 1 + 32 + 8},

		{"ipv4 bad header checksum", ipv4(0, 7, 0x4000, 64, 17, udp(1, 2, 3, nil), true), 0},
		{"ipv4 fragment (MF)", ipv4(0, 7, 0x2000, 64, 17, udp(1, 2, 3, nil), false), 0},
		{"ipv4 fragment offset", ipv4(0, 7, 0x0001, 64, 17, udp(1, 2, 3, nil), false), 0},
		{"ipv4 evil bit", ipv4(0, 7, 0x8000, 64, 17, udp(1, 2, 3, nil), false), 0},
		{"ipv4 padded after the packet", append(ipv4(0, 7, 0x4000, 64, 17, udp(1, 2, 3, nil), false), 0, 0), 0},
		{"ipv4 options (IHL 6)", func() []byte {
			b := ipv4(0, 7, 0x4000, 64, 17, udp(1, 2, 3, nil), false)
			b[2] = 0x46
			return b
		}(), 0},
		{"ipv4 truncated", ipv4(0, 7, 0x4000, 64, 17, nil, false)[:15], 0},
		{"ipv6 payload length wrong", func() []byte {
			b := ipv6([4]byte{0x60}, 17, 64, udp(1, 2, 3, nil))
			b[7]++
			return b
		}(), 0},
		{"ipv6 version nibble 4", ipv6([4]byte{0x40}, 17, 64, udp(1, 2, 3, nil)), 0},
		{"arp", append([]byte{0x08, 0x06}, seq(1, 28)...), 0},
		{"ethertype only", []byte{0x08, 0x00}, 0},
		{"empty", nil, 0},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c, ok := AppendIPHC([]byte{0xee}, tc.data)
			if ok != (tc.want > 0) {
				t.Fatalf("AppendIPHC ok = %v, want %v", ok, tc.want > 0)
			}
			if !ok {
				if !bytes.Equal(c, []byte{0xee}) {
					t.Fatalf("refused, but dst changed: % x", c)
				}
				return
			}
			if got := len(c) - 1; got != tc.want {
				t.Errorf("compressed %d bytes to %d, want %d", len(tc.data), got, tc.want)
			}
			back, err := AppendIPHCData([]byte{0xdd}, c[1:])
			if err != nil {
				t.Fatalf("AppendIPHCData: %v", err)
			}
			if !bytes.Equal(back[1:], tc.data) || back[0] != 0xdd {
				t.Fatalf("round trip:\n got % x\nwant % x", back[1:], tc.data)
			}
			eth, err := AppendEthernet(nil, Header{Kind: KindIPHC, Dst: 2, Src: 1}, c[1:])
			want, _ := AppendEthernet(nil, Header{Kind: KindData, Dst: 2, Src: 1}, tc.data)
			if err != nil || !bytes.Equal(eth, want) {
				t.Fatalf("AppendEthernet(KindIPHC) = % x, %v; want % x", eth, err, want)
			}
		})
	}
}

func TestIPHCBad(t *testing.T) {
	for _, tc := range []struct {
		desc string
		p    string // hex
		want error
	}{
		{"empty", "", ErrShort},
		{"ipv4 CK without NH or TC", "90" + strings.Repeat("00", 20), ErrHeader},
		{"ipv6 CK without NH or TC", "d0" + strings.Repeat("00", 40), ErrHeader},
		{"ipv4 CK, NH and TC", "b3" + strings.Repeat("00", 40), ErrHeader},
		{"ipv4 udp CK: ports cut", "b2" + "c0000201c0000202" + "138813", ErrShort},
		{"ipv6 udp CK: ports cut", "f0" + strings.Repeat("00", 32) + "1388", ErrShort},
		{"reserved bit 0", "31" + strings.Repeat("00", 20), ErrHeader},
		{"ipv6 with DF", "74" + strings.Repeat("00", 40), ErrHeader},
		{"ipv6 with ID0", "72" + strings.Repeat("00", 40), ErrHeader},
		{"ipv6 TF without version 6", "78" + "40000000" + strings.Repeat("00", 40), ErrHeader},
		{"ipv4 udp: addresses cut", "32" + "c0000201c0", ErrShort},
		{"ipv4 udp: ports cut", "32" + "c0000201c0000202" + "0001", ErrShort},
		{"ipv6 addresses cut", "50" + strings.Repeat("00", 31), ErrShort},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			p, _ := hex.DecodeString(tc.p)
			out, err := AppendIPHCData([]byte{1}, p)
			if !errors.Is(err, tc.want) || !bytes.Equal(out, []byte{1}) {
				t.Fatalf("AppendIPHCData(%s) = % x, %v; want %v, dst unchanged", tc.p, out, err, tc.want)
			}
			eth, err := AppendEthernet([]byte{1}, Header{Kind: KindIPHC, Dst: 2, Src: 1}, p)
			if !errors.Is(err, tc.want) || !bytes.Equal(eth, []byte{1}) {
				t.Fatalf("AppendEthernet = % x, %v; want %v, dst unchanged", eth, err, tc.want)
			}
		})
	}
	// An IPv4 length beyond 65535.
	// Dispatch 0x30: IPv4, UDP, TTL 64, identification carried (17
	// header bytes); 20 + 8 + rest = 65536.
	p := append([]byte{0x30}, make([]byte, 16+65536-28)...)
	if _, err := AppendIPHCData(nil, p); !errors.Is(err, ErrHeader) {
		t.Errorf("ipv4 of 65536 bytes: err %v, want ErrHeader", err)
	}
	p = append([]byte{0x70}, make([]byte, 32+6+65536-8)...)
	if _, err := AppendIPHCData(nil, p); !errors.Is(err, ErrHeader) {
		t.Errorf("ipv6 payload of 65536 bytes: err %v, want ErrHeader", err)
	}
}

func TestIPHCNoAllocs(t *testing.T) {
	data := ipv4(0, 0x1c46, 0x4000, 64, 17, udp(5000, 5001, 0xabcd, seq(1, 1000)), false)
	c := make([]byte, 0, len(data))
	back := make([]byte, 0, len(data))
	if n := testing.AllocsPerRun(100, func() {
		c, _ = AppendIPHC(c[:0], data)
		back, _ = AppendIPHCData(back[:0], c)
	}); n != 0 {
		t.Errorf("%v allocations per compress and rebuild", n)
	}
	withSum(data)
	if n := testing.AllocsPerRun(100, func() {
		c, _ = AppendIPHCVersion(c[:0], data, Version4)
		back, _ = AppendIPHCData(back[:0], c)
	}); n != 0 || c[0]&iphcCK == 0 {
		t.Errorf("%v allocations per compress and rebuild in version 4 (dispatch %#x)", n, c[0])
	}
}

// FuzzIPHC: any KindData payload either compresses to what rebuilds it
// exactly or is refused with dst untouched; the version-2 form never sets
// TC, versions before 4 never set CK, CK only elides a checksum that the
// long way (refSum) finds right, and each version's form is never longer
// than the version-2 one.
func FuzzIPHC(f *testing.F) {
	f.Add(ipv4(0, 0x1c46, 0x4000, 64, 17, udp(5000, 5001, 0xabcd, seq(1, 30)), false), uint8(2))
	f.Add(ipv4(0xb8, 0, 0, 3, 6, seq(1, 30), false), uint8(3))
	f.Add(ipv4(0, 7, 0x4000, 64, 17, udp(1, 2, 3, nil), true), uint8(2))
	f.Add(ipv6([4]byte{0x60, 1, 2, 3}, 17, 64, udp(1, 2, 3, seq(1, 9))), uint8(3))
	f.Add(ipv6([4]byte{0x60}, 58, 255, nil), uint8(3))
	f.Add([]byte{0x08, 0x06, 1, 2}, uint8(3))
	f.Add(ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 9, 0, tsOpts, nil), false), uint8(3))
	f.Add(ipv4(0, 0, 0x4000, 64, 6, tcpSeg(1, 0, tSYN|tECE|tCWR, 9, 0, []byte{2, 4, 5, 0xb4}, nil), false), uint8(3))
	f.Add(ipv6([4]byte{0x60}, 6, 64, tcpSeg(1, 2, tACK|tURG, 9, 7, tsOpts, seq(1, 9))), uint8(3))
	f.Add(withSum(ipv4(0, 0x1c46, 0x4000, 64, 17, udp(5000, 5001, 0, seq(1, 31)), false)), uint8(4))
	f.Add(withSum(ipv6([4]byte{0x60}, 17, 64, udp(1, 2, 0, seq(1, 9)))), uint8(4))
	f.Add(withSum(ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 0, 0, tsOpts, seq(1, 9)), false)), uint8(4))
	f.Add(withSum(ipv6([4]byte{0x60}, 6, 64, tcpSeg(1, 2, tACK|tURG, 0, 7, tsOpts, seq(1, 9)))), uint8(4))
	f.Add(sumZero(ipv4(0, 7, 0x4000, 64, 17, udp(1, 2, 0, seq(1, 20)), false), 0), uint8(4))
	f.Add(sumZero(ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 0, 0, nil, seq(1, 20)), false), 0xFFFF), uint8(4))
	f.Add(ipv4(0, 7, 0x4000, 64, 17, udp(1, 2, 3, seq(1, 9)), false), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, version uint8) {
		c, ok := AppendIPHCVersion([]byte{0xee}, data, version)
		if !ok {
			if !bytes.Equal(c, []byte{0xee}) {
				t.Fatalf("refused, but dst changed")
			}
			return
		}
		if len(c)-1 >= len(data) {
			t.Fatalf("compressed %d bytes to %d", len(data), len(c)-1)
		}
		if version < Version3 && c[1]&iphcTC != 0 {
			t.Fatalf("version %d with TC", version)
		}
		if c[1]&iphcCK != 0 && (version < Version4 || !refSumOK(data)) {
			t.Fatalf("version %d with CK; checksum right: %v", version, refSumOK(data))
		}
		if c2, ok2 := AppendIPHC(nil, data); !ok2 || len(c2) < len(c)-1 {
			t.Fatalf("version 2 form: %v, %d bytes; version %d: %d", ok2, len(c2), version, len(c)-1)
		}
		back, err := AppendIPHCData(nil, c[1:])
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("round trip: % x, %v; want % x", back, err, data)
		}
	})
}

// FuzzIPHCData: arbitrary bytes as a KindIPHC payload never panic; what
// rebuilds is a well-formed packet that compresses back (in version 4) to
// the same size or smaller and rebuilds to itself, and whose checksum,
// when CK elided it, is the one the long way (refSum) computes.
func FuzzIPHCData(f *testing.F) {
	c, _ := AppendIPHC(nil, ipv4(0, 0x1c46, 0x4000, 64, 17, udp(5000, 5001, 0xabcd, seq(1, 30)), false))
	f.Add(c)
	c, _ = AppendIPHC(nil, ipv6([4]byte{0x60, 1, 2, 3}, 58, 9, seq(1, 9)))
	f.Add(c)
	c, _ = AppendIPHCVersion(nil, ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 9, 0, tsOpts, nil), false), Version3)
	f.Add(c)
	c, _ = AppendIPHCVersion(nil, ipv6([4]byte{0x60}, 6, 64, tcpSeg(1, 2, tACK|tURG|tCWR, 9, 7, []byte{2, 4, 5, 0xb4}, seq(1, 9))), Version3)
	f.Add(c)
	c, _ = AppendIPHCVersion(nil, withSum(ipv4(0, 7, 0x4000, 64, 17, udp(1, 2, 0, seq(1, 9)), false)), Version4)
	f.Add(c)
	c, _ = AppendIPHCVersion(nil, withSum(ipv6([4]byte{0x60}, 6, 64, tcpSeg(1, 2, tACK|tURG, 0, 7, tsOpts, seq(1, 9)))), Version4)
	f.Add(c)
	f.Add([]byte{0x08, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13})
	f.Add([]byte{0xff})
	f.Add([]byte{0x90, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13})
	f.Fuzz(func(t *testing.T, p []byte) {
		data, err := AppendIPHCData([]byte{}, p)
		if err != nil {
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrHeader) {
				t.Fatalf("error %v wraps neither ErrShort nor ErrHeader", err)
			}
			return
		}
		if p[0]&iphcCK != 0 && !refSumOK(data) {
			t.Fatalf("CK rebuilt a wrong checksum: % x", data)
		}
		c, ok := AppendIPHCVersion(nil, data, Version4)
		if !ok {
			t.Fatalf("rebuilt packet % x does not compress", data)
		}
		if len(c) > len(p) {
			t.Fatalf("recompressed to %d bytes, was %d", len(c), len(p))
		}
		again, err := AppendIPHCData(nil, c)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("second round trip differs")
		}
	})
}

// iphcVectors are the compressed-header vectors of docs/frame-format.md: a
// KindData payload (EtherType + IP packet) and its KindIPHC form in the
// given version. The first two carry UDP 5000 -> 5001, checksum 0xbeef,
// payload "hello world!"; the TCP ones 40000 -> 5201, sequence 0x01020304,
// acknowledgement 0x0a0b0c0d, window 502, checksum 0xbeef, timestamps
// 0x00123456 and 0x00abcdef.
var iphcVectors = []struct {
	desc, data, iphc string
	version          uint8 // 0: 2
}{
	{
		desc: "IPv4 192.0.2.1 -> 192.0.2.2, id 0x1c46, DF, TTL 64",
		data: "0800450000281c46400040119a7bc0000201c0000202138813890014beef68656c6c6f20776f726c6421",
		iphc: "341c46c0000201c000020213881389beef68656c6c6f20776f726c6421",
	},
	{
		desc: "IPv6 fd00::1 -> fd00::2, flow label 0xabcde, hop limit 64",
		data: "86dd600abcde00141140fd000000000000000000000000000001fd000000000000000000000000000002138813890014beef68656c6c6f20776f726c6421",
		iphc: "78600abcdefd000000000000000000000000000001fd00000000000000000000000000000213881389beef68656c6c6f20776f726c6421",
	},
	{
		desc:    "version 3, IPv4 192.0.2.1 -> 192.0.2.2, id 0x1c46, DF, TTL 64, pure TCP ACK",
		data:    "0800450000341c46400040069a7ac0000201c00002029c401451010203040a0b0c0d801001f6beef00000101080a0012345600abcdef",
		iphc:    "151c46c0000201c0000202509c401451010203040a0b0c0d01f6beef0012345600abcdef",
		version: Version3,
	},
	{
		desc:    "version 3, IPv6 fd00::1 -> fd00::2, hop limit 64, TCP PSH ACK, payload \"hello world!\"",
		data:    "86dd60000000002c0640fd000000000000000000000000000001fd0000000000000000000000000000029c401451010203040a0b0c0d801801f6beef00000101080a0012345600abcdef68656c6c6f20776f726c6421",
		iphc:    "51fd000000000000000000000000000001fd000000000000000000000000000002589c401451010203040a0b0c0d01f6beef0012345600abcdef68656c6c6f20776f726c6421",
		version: Version3,
	},
	{
		desc:    "version 4, vector 1 with its UDP checksum (0xc2c1) elided",
		data:    "0800450000281c46400040119a7bc0000201c0000202138813890014c2c168656c6c6f20776f726c6421",
		iphc:    "b41c46c0000201c00002021388138968656c6c6f20776f726c6421",
		version: Version4,
	},
	{
		desc:    "version 4, vector 4 with its TCP checksum (0x1b0d) elided",
		data:    "86dd60000000002c0640fd000000000000000000000000000001fd0000000000000000000000000000029c401451010203040a0b0c0d801801f61b0d00000101080a0012345600abcdef68656c6c6f20776f726c6421",
		iphc:    "d1fd000000000000000000000000000001fd000000000000000000000000000002589c401451010203040a0b0c0d01f60012345600abcdef68656c6c6f20776f726c6421",
		version: Version4,
	},
}

func TestIPHCVectors(t *testing.T) {
	for _, v := range iphcVectors {
		t.Run(v.desc, func(t *testing.T) {
			data, c := unhex(t, v.data), unhex(t, v.iphc)
			if got, ok := AppendIPHCVersion(nil, data, max(v.version, Version2)); !ok || !bytes.Equal(got, c) {
				t.Errorf("AppendIPHC = %x, %v; want %x", got, ok, c)
			}
			if got, err := AppendIPHCData(nil, c); err != nil || !bytes.Equal(got, data) {
				t.Errorf("AppendIPHCData = %x, %v; want %x", got, err, data)
			}
			if v.version == Version4 && !refSumOK(data) {
				t.Errorf("the vector's checksum is wrong")
			}
		})
	}
}

// TestIPHCOverhead: the bytes on the wire of a 1000-byte UDP datagram sent
// as one fragment (link ARQ, no frame limit), as kind 0 and compressed.
// The payload has a zero every 200 bytes (real packets have them more
// often), so COBS costs one byte.
func TestIPHCOverhead(t *testing.T) {
	payload := make([]byte, 1000)
	for i := range payload {
		payload[i] = byte(i % 200)
	}
	data := ipv4(0, 0x1c46, 0x4000, 64, 17, udp(5000, 5001, 0xabcd, payload), false)
	c, ok := AppendIPHC(nil, data)
	if !ok {
		t.Fatal("not compressed")
	}
	size := func(v uint8, inner Kind, p []byte) int {
		fh, _ := AppendFrag(nil, FragHeader{AckReq: true, Inner: inner, Count: 1})
		return len(AppendFrame(nil, Header{Kind: KindFragment, Dst: 2, Src: 1, Version: v}, append(fh, p...)))
	}
	plain, comp := size(1, KindData, data), size(2, KindIPHC, c)
	t.Logf("1000-byte UDP datagram on the wire: %d bytes as kind 0, %d compressed (overhead %d and %d)", plain, comp, plain-1000, comp-1000)
	if plain != 1044 || comp != 1031 {
		t.Errorf("frames of %d and %d bytes, want 1044 and 1031", plain, comp)
	}
	// Version 4, the datagram with its right checksum: 2 bytes fewer.
	withSum(data)
	c4, ok := AppendIPHCVersion(nil, data, Version4)
	if !ok {
		t.Fatal("not compressed in version 4")
	}
	v4 := size(4, KindIPHC, c4)
	t.Logf("in version 4 (checksum elided): %d bytes (overhead %d)", v4, v4-1000)
	if v4 != 1029 {
		t.Errorf("version 4 frame of %d bytes, want 1029", v4)
	}
}

// tcpSeg builds a TCP header and payload: data offset from opts (a
// multiple of 4 bytes long), the given flags, window 0x1f6 (502), checksum
// sum and urgent pointer urg.
func tcpSeg(seq, ack uint32, flags byte, sum, urg uint16, opts, payload []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, 40000)
	b = binary.BigEndian.AppendUint16(b, 5201)
	b = binary.BigEndian.AppendUint32(b, seq)
	b = binary.BigEndian.AppendUint32(b, ack)
	b = append(b, byte((20+len(opts))/4)<<4, flags)
	b = binary.BigEndian.AppendUint16(b, 0x1f6)
	b = binary.BigEndian.AppendUint16(b, sum)
	b = binary.BigEndian.AppendUint16(b, urg)
	b = append(b, opts...)
	return append(b, payload...)
}

// tsOpts is Linux's timestamp option layout: NOP, NOP, TS val, TS ecr.
var tsOpts = []byte{1, 1, 8, 10, 0x00, 0x12, 0x34, 0x56, 0x00, 0xab, 0xcd, 0xef}

// TCP flags.
const (
	tFIN, tSYN, tRST, tPSH, tACK, tURG, tECE, tCWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
)

// TestIPHCTCPAck: a pure TCP ACK with timestamps, the packet a TCP
// receiver sends for every other segment, compresses to at most 36 bytes
// in version 3 (IPv4 11, TCP 25); version 2 leaves its TCP header as it
// is (44 bytes), and kind 0 is 54.
func TestIPHCTCPAck(t *testing.T) {
	data := ipv4(0, 0x1c46, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 0x5555, 0, tsOpts, nil), false)
	c, ok := AppendIPHCVersion(nil, data, Version3)
	if !ok || len(c) > 36 {
		t.Fatalf("pure ACK with timestamps: %d bytes (compressed %v), want at most 36", len(c), ok)
	}
	back, err := AppendIPHCData(nil, c)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("round trip: % x, %v", back, err)
	}
	if c2, ok := AppendIPHC(nil, data); !ok || len(c2) != 44 || c2[0]&iphcTC != 0 {
		t.Errorf("version 2 form: %d bytes, dispatch %#x; want 44, no TC", len(c2), c2[0])
	}
}

func TestIPHCTCP(t *testing.T) {
	p := seq(1, 100)
	sack := []byte{1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2}                              // NOP, NOP, SACK one block
	syn := []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7} // MSS, SACK ok, TS, NOP, WS
	const ip4 = 1 + 2 + 8                                                            // dispatch, id, addresses
	for _, tc := range []struct {
		desc string
		data []byte
		want int // compressed length in version 3
		tcp  bool
	}{
		{"pure ack, timestamps", ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 9, 0, tsOpts, nil), false), ip4 + 25, true},
		{"data, timestamps, PSH", ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK|tPSH, 9, 0, tsOpts, p), false), ip4 + 25 + 100, true},
		{"no options", ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 9, 0, nil, p), false), ip4 + 17 + 100, true},
		{"syn, options carried", ipv4(0, 0, 0x4000, 64, 6, tcpSeg(1, 0, tSYN, 9, 0, syn, nil), false), 1 + 8 + 17 + 1 + 20, true},
		{"sack carried", ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 9, 0, sack, nil), false), ip4 + 17 + 1 + 12, true},
		{"ecn flags: flags byte carried", ipv4(2, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK|tECE|tCWR, 9, 0, tsOpts, p), false), ip4 + 1 + 26 + 100, true},
		{"urgent", ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK|tURG, 9, 3, nil, p), false), ip4 + 18 + 2 + 100, true},
		{"fin, rst", ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tFIN|tRST|tACK, 9, 0, nil, nil), false), ip4 + 17, true},
		{"ipv6, timestamps", ipv6([4]byte{0x60}, 6, 64, tcpSeg(1, 2, tACK, 9, 0, tsOpts, p)), 1 + 32 + 25 + 100, true},
		{"ipv6 flow label, hop 1", ipv6([4]byte{0x60, 1, 2, 3}, 6, 1, tcpSeg(1, 2, tACK, 9, 0, tsOpts, nil)), 1 + 4 + 1 + 32 + 25, true},

		// The version-2 form: the TCP header as it is.
		{"urgent pointer without URG", ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 9, 3, nil, p), false), ip4 + 1 + 20 + 100, false},
		{"reserved bits in the data offset byte", func() []byte {
			b := ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 9, 0, nil, nil), false)
			b[2+20+12] |= 0x01 // AE
			return b
		}(), ip4 + 1 + 20, false},
		{"data offset below 5", func() []byte {
			b := ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 9, 0, nil, nil), false)
			b[2+20+12] = 0x40
			return b
		}(), ip4 + 1 + 20, false},
		{"data offset past the packet", func() []byte {
			b := ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 9, 0, nil, nil), false)
			b[2+20+12] = 0x60
			return b
		}(), ip4 + 1 + 20, false},
		{"shorter than a tcp header", ipv4(0, 7, 0x4000, 64, 6, seq(1, 19), false), ip4 + 1 + 19, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c, ok := AppendIPHCVersion([]byte{0xee}, tc.data, Version3)
			if !ok {
				t.Fatalf("not compressed")
			}
			if got := len(c) - 1; got != tc.want || (c[1]&iphcTC != 0) != tc.tcp {
				t.Errorf("compressed %d bytes to %d (TC %v), want %d (TC %v)", len(tc.data), got, c[1]&iphcTC != 0, tc.want, tc.tcp)
			}
			back, err := AppendIPHCData([]byte{0xdd}, c[1:])
			if err != nil || !bytes.Equal(back[1:], tc.data) {
				t.Fatalf("round trip: %v\n got % x\nwant % x", err, back[1:], tc.data)
			}
			v2, ok := AppendIPHC(nil, tc.data)
			if !ok || v2[0]&iphcTC != 0 {
				t.Fatalf("version 2: compressed %v, dispatch %#x; want compressed without TC", ok, v2[0])
			}
			if !tc.tcp && !bytes.Equal(v2, c[1:]) {
				t.Errorf("refused TCP form differs from version 2's:\n% x\n% x", c[1:], v2)
			}
		})
	}
}

func TestIPHCTCPBad(t *testing.T) {
	addrs := "c0000201c0000202"
	tcp := func(ctl string, more int) string { return ctl + strings.Repeat("00", more) }
	for _, tc := range []struct {
		desc string
		p    string // hex
		want error
	}{
		{"NH and TC", "33" + addrs + strings.Repeat("00", 40), ErrHeader},
		{"options form 11", "17" + addrs + tcp("d0", 40), ErrHeader},
		{"carried options, 0 words", "17" + addrs + tcp("9000", 40), ErrHeader},
		{"carried options, 11 words", "17" + addrs + tcp("900b", 60), ErrHeader},
		{"FL with flag bits", "17" + addrs + tcp("31", 40), ErrHeader},
		{"control cut", "17" + addrs, ErrShort},
		{"options length cut", "17" + addrs + "80", ErrShort},
		{"flags cut", "17" + addrs + "20", ErrShort},
		{"fields cut", "17" + addrs + tcp("10", 15), ErrShort},
		{"urgent pointer cut", "17" + addrs + tcp("2020", 16), ErrShort},
		{"timestamps cut", "17" + addrs + tcp("50", 16+7), ErrShort},
		{"carried options cut", "17" + addrs + tcp("8002", 16+7), ErrShort},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			p, _ := hex.DecodeString(tc.p)
			out, err := AppendIPHCData([]byte{1}, p)
			if !errors.Is(err, tc.want) || !bytes.Equal(out, []byte{1}) {
				t.Fatalf("AppendIPHCData(%s) = % x, %v; want %v, dst unchanged", tc.p, out, err, tc.want)
			}
		})
	}
	// A TCP segment of 65536 bytes in all.
	p := append([]byte{0x17}, make([]byte, 8+1+16+65536-40)...)
	if _, err := AppendIPHCData(nil, p); !errors.Is(err, ErrHeader) {
		t.Errorf("ipv4 tcp of 65536 bytes: err %v, want ErrHeader", err)
	}
}

// TestIPHCTCPOverhead: the bytes on the wire of a pure TCP ACK and of a
// 1000-byte data segment, each as one fragment (link ARQ), as kind 0, in
// version 2 and in version 3. The headers and the payload have a zero at
// least every 200 bytes, so COBS costs one byte.
func TestIPHCTCPOverhead(t *testing.T) {
	size := func(v uint8, inner Kind, p []byte) int {
		fh, _ := AppendFrag(nil, FragHeader{AckReq: true, Inner: inner, Count: 1})
		return len(AppendFrame(nil, Header{Kind: KindFragment, Dst: 2, Src: 1, Version: v}, append(fh, p...)))
	}
	payload := make([]byte, 1000)
	for i := range payload {
		payload[i] = byte(i % 200)
	}
	for _, tc := range []struct {
		desc          string
		data          []byte
		want0, w2, w3 int
	}{
		{"pure ack", ipv4(0, 0x1c46, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 9, 0, tsOpts, nil), false), 68, 58, 50},
		{"1000-byte segment", ipv4(0, 0x1c46, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 9, 0, tsOpts, payload), false), 1068, 1058, 1050},
	} {
		c2, _ := AppendIPHC(nil, tc.data)
		c3, _ := AppendIPHCVersion(nil, tc.data, Version3)
		k0, v2, v3 := size(1, KindData, tc.data), size(2, KindIPHC, c2), size(3, KindIPHC, c3)
		t.Logf("%s on the wire: %d bytes as kind 0, %d in version 2, %d in version 3", tc.desc, k0, v2, v3)
		if k0 != tc.want0 || v2 != tc.w2 || v3 != tc.w3 {
			t.Errorf("%s: %d, %d, %d bytes; want %d, %d, %d", tc.desc, k0, v2, v3, tc.want0, tc.w2, tc.w3)
		}
	}
}

// TestIPv4HeaderChecksum: the header of Wikipedia's worked example
// (192.168.0.1 -> 192.168.0.199, UDP) sums to 0xb861, and a header with
// its checksum filled in sums to zero.
func TestIPv4HeaderChecksum(t *testing.T) {
	h := []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
		0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}
	if got := IPv4HeaderChecksum(h); got != 0xb861 {
		t.Fatalf("checksum %#04x, want 0xb861", got)
	}
	h[10], h[11] = 0xb8, 0x61
	if got := IPv4HeaderChecksum(h); got != 0 {
		t.Errorf("a header with its checksum gives %#04x, want 0", got)
	}
}

// refSum is the UDP or TCP checksum of the KindData payload data (IPv4 or
// IPv6 without options), its field taken as 0, computed the long way: the
// pseudo-header written out, the segment appended, padded to even length,
// summed by checksum. UDP's 0 stays 0 here.
func refSum(data []byte) uint16 {
	var ph, seg []byte
	var proto byte
	if data[0] == 0x08 {
		ip := data[2:22]
		proto, seg = ip[9], append([]byte(nil), data[22:]...)
		ph = append(append([]byte(nil), ip[12:20]...), 0, proto)
		ph = binary.BigEndian.AppendUint16(ph, uint16(len(seg)))
	} else {
		ip := data[2:42]
		proto, seg = ip[6], append([]byte(nil), data[42:]...)
		ph = append([]byte(nil), ip[8:40]...)
		ph = binary.BigEndian.AppendUint32(ph, uint32(len(seg)))
		ph = append(ph, 0, 0, 0, proto)
	}
	off := 6
	if proto == 6 {
		off = 16
	}
	seg[off], seg[off+1] = 0, 0
	b := append(ph, seg...)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	return ^checksum(b)
}

// sumOffset is where data's UDP or TCP checksum field is.
func sumOffset(data []byte) int {
	if data[0] == 0x08 {
		if data[2+9] == 6 {
			return 22 + 16
		}
		return 22 + 6
	}
	if data[2+6] == 6 {
		return 42 + 16
	}
	return 42 + 6
}

// withSum fills in data's UDP or TCP checksum (UDP's computed 0 as 0xFFFF)
// and returns data.
func withSum(data []byte) []byte {
	c := refSum(data)
	if c == 0 && isUDP(data) {
		c = 0xFFFF
	}
	binary.BigEndian.PutUint16(data[sumOffset(data):], c)
	return data
}

func isUDP(data []byte) bool {
	if data[0] == 0x08 {
		return data[2+9] == 17
	}
	return data[2+6] == 17
}

// refSumOK reports whether data's checksum field is the one the long way
// computes (UDP: a computed 0 as 0xFFFF).
func refSumOK(data []byte) bool {
	c := refSum(data)
	if c == 0 && isUDP(data) {
		c = 0xFFFF
	}
	return binary.BigEndian.Uint16(data[sumOffset(data):]) == c
}

// sumZero makes data's computed checksum 0 by setting its last two bytes
// (at an even offset into the segment), and writes field into the
// checksum field.
func sumZero(data []byte, field uint16) []byte {
	n := len(data)
	binary.BigEndian.PutUint16(data[n-2:], 0)
	binary.BigEndian.PutUint16(data[n-2:], refSum(data)) // the sum becomes 0xFFFF
	binary.BigEndian.PutUint16(data[sumOffset(data):], field)
	return data
}

// TestIPHCChecksum: in version 4 a UDP or TCP checksum is elided (CK)
// exactly when the receiver recomputes the same bytes, over IPv4 and IPv6;
// a wrong checksum, UDP's "no checksum" 0 and the other zero of ones'
// complement travel as they were. Every case rebuilds exactly, and
// version 3 never sets CK.
func TestIPHCChecksum(t *testing.T) {
	p1000, odd := seq(1, 1000), seq(7, 33)
	u4 := func(sum uint16, p []byte) []byte {
		return ipv4(0, 0x1c46, 0x4000, 64, 17, udp(5000, 5001, sum, p), false)
	}
	u6 := func(sum uint16, p []byte) []byte { return ipv6([4]byte{0x60}, 17, 64, udp(5000, 5001, sum, p)) }
	t4 := func(sum uint16, p []byte) []byte {
		return ipv4(0, 0x1c46, 0x4000, 64, 6, tcpSeg(1, 2, tACK|tPSH, sum, 0, tsOpts, p), false)
	}
	t6 := func(sum uint16, p []byte) []byte {
		return ipv6([4]byte{0x60}, 6, 64, tcpSeg(1, 2, tACK|tPSH, sum, 0, tsOpts, p))
	}
	const (
		u4h = 1 + 2 + 8 + 6  // dispatch, id, addresses, ports and checksum
		u6h = 1 + 32 + 6     // dispatch, addresses, ports and checksum
		t4h = 1 + 2 + 8 + 25 // dispatch, id, addresses, TCP with timestamps
		t6h = 1 + 32 + 25
	)
	for _, tc := range []struct {
		desc string
		data []byte
		ck   bool
		want int // compressed length in version 4
	}{
		{"udp ipv4 1000", withSum(u4(0, p1000)), true, u4h - 2 + 1000},
		{"udp ipv4 odd length", withSum(u4(0, odd)), true, u4h - 2 + 33},
		{"udp ipv4 empty", withSum(u4(0, nil)), true, u4h - 2},
		{"udp ipv6 1000", withSum(u6(0, p1000)), true, u6h - 2 + 1000},
		{"udp ipv6 odd length", withSum(u6(0, odd)), true, u6h - 2 + 33},
		{"tcp ipv4 1000", withSum(t4(0, p1000)), true, t4h - 2 + 1000},
		{"tcp ipv4 pure ack", withSum(t4(0, nil)), true, t4h - 2},
		{"tcp ipv4 odd length", withSum(t4(0, odd)), true, t4h - 2 + 33},
		{"tcp ipv6 1000", withSum(t6(0, p1000)), true, t6h - 2 + 1000},
		{"tcp ipv6 options carried", withSum(ipv6([4]byte{0x60}, 6, 64, tcpSeg(1, 0, tSYN|tECE|tCWR, 0, 0, []byte{2, 4, 5, 0xb4}, nil))), true, 1 + 32 + 3 + 16 - 2 + 4},
		{"udp ipv4 computed 0, sent as 0xffff", sumZero(u4(0, seq(1, 20)), 0xFFFF), true, u4h - 2 + 20},
		{"udp ipv6 computed 0, sent as 0xffff", sumZero(u6(0, seq(1, 20)), 0xFFFF), true, u6h - 2 + 20},
		{"tcp ipv4 computed 0, sent as 0", sumZero(t4(0, seq(1, 20)), 0), true, t4h - 2 + 20},
		{"tcp ipv6 computed 0, sent as 0", sumZero(t6(0, seq(1, 20)), 0), true, t6h - 2 + 20},

		// Carried as they were.
		{"udp ipv4 wrong checksum", u4(0xabcd, p1000), false, u4h + 1000},
		{"udp ipv4 checksum off by one", func() []byte {
			b := withSum(u4(0, p1000))
			b[sumOffset(b)+1]++
			return b
		}(), false, u4h + 1000},
		{"udp ipv4 no checksum (0)", u4(0, p1000), false, u4h + 1000},
		{"udp ipv4 computed 0, sent as 0 (no checksum)", sumZero(u4(0, seq(1, 20)), 0), false, u4h + 20},
		{"udp ipv6 computed 0, sent as 0", sumZero(u6(0, seq(1, 20)), 0), false, u6h + 20},
		{"udp ipv6 checksum 0", u6(0, p1000), false, u6h + 1000},
		{"tcp ipv4 computed 0, sent as 0xffff", sumZero(t4(0, seq(1, 20)), 0xFFFF), false, t4h + 20},
		{"tcp ipv6 computed 0, sent as 0xffff", sumZero(t6(0, seq(1, 20)), 0xFFFF), false, t6h + 20},
		{"tcp ipv4 wrong checksum", t4(0x5555, p1000), false, t4h + 1000},
		{"tcp ipv6 wrong checksum", t6(0x5555, p1000), false, t6h + 1000},
		{"tcp header the version-2 form keeps (urgent pointer without URG)", func() []byte {
			return withSum(ipv4(0, 7, 0x4000, 64, 6, tcpSeg(1, 2, tACK, 0, 3, nil, p1000), false))
		}(), false, 1 + 2 + 1 + 8 + 20 + 1000},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if tc.ck && !refSumOK(tc.data) {
				t.Fatal("test packet: checksum not the computed one")
			}
			c, ok := AppendIPHCVersion([]byte{0xee}, tc.data, Version4)
			if !ok {
				t.Fatal("not compressed")
			}
			if got := len(c) - 1; got != tc.want || (c[1]&iphcCK != 0) != tc.ck {
				t.Errorf("compressed %d bytes to %d (CK %v), want %d (CK %v)", len(tc.data), got, c[1]&iphcCK != 0, tc.want, tc.ck)
			}
			back, err := AppendIPHCData([]byte{0xdd}, c[1:])
			if err != nil || back[0] != 0xdd || !bytes.Equal(back[1:], tc.data) {
				t.Fatalf("round trip: %v\n got % x\nwant % x", err, back[1:], tc.data)
			}
			eth, err := AppendEthernet(nil, Header{Kind: KindIPHC, Dst: 2, Src: 1, Version: 3}, c[1:])
			want, _ := AppendEthernet(nil, Header{Kind: KindData, Dst: 2, Src: 1}, tc.data)
			if err != nil || !bytes.Equal(eth, want) {
				t.Fatalf("AppendEthernet(KindIPHC) in a version-3 frame = % x, %v", eth, err)
			}
			c3, ok := AppendIPHCVersion(nil, tc.data, Version3)
			if !ok || c3[0]&iphcCK != 0 || len(c3) != tc.want+2*b2i(tc.ck) {
				t.Errorf("version 3: compressed %v to %d bytes, dispatch %#x; want %d, no CK", ok, len(c3), c3[0], tc.want+2*b2i(tc.ck))
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
