package framing

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// refCRC32C is a bitwise CRC-32C (reflected polynomial 0x82F63B78, initial
// value and final XOR 0xFFFFFFFF), independent of hash/crc32's tables.
func refCRC32C(b []byte) uint32 {
	crc := ^uint32(0)
	for _, v := range b {
		crc ^= uint32(v)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82F63B78
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

func TestCRC32C(t *testing.T) {
	tests := []struct {
		desc string
		in   []byte
		want uint32
	}{
		// Check values from RFC 3720 (iSCSI) appendix B.4 and the CRC catalogue.
		{"check string 123456789", []byte("123456789"), 0xE3069283},
		{"32 bytes of zeros", make([]byte, 32), 0x8A9136AA},
		{"32 bytes of 0xff", bytes.Repeat([]byte{0xFF}, 32), 0x62A8AB43},
		{"32 incrementing bytes", func() []byte {
			b := make([]byte, 32)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}(), 0x46DD794E},
		{"empty", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := crc32.Update(0, castagnoli, tt.in); got != tt.want {
				t.Errorf("hash/crc32 = %#08x, want %#08x", got, tt.want)
			}
			if got := refCRC32C(tt.in); got != tt.want {
				t.Errorf("reference = %#08x, want %#08x", got, tt.want)
			}
		})
	}
}

// frameVectors are the test vectors of docs/frame-format.md.
var frameVectors = []struct {
	desc    string
	h       Header
	payload string
	inner   string // header, payload, CRC-32C
	wire    string
}{
	{
		desc:    "data, node 1 to node 2, IPv4 ethertype and 4 bytes",
		h:       Header{Kind: KindData, Dst: 2, Src: 1},
		payload: "08004500001c",
		inner:   "10020108004500001c044ff9f6",
		wire:    "000510020108024501061c044ff9f600",
	},
	{
		desc:    "reserved kind 2, node 2 to node 1, empty payload",
		h:       Header{Kind: 2, Dst: 1, Src: 2},
		payload: "",
		inner:   "120102ad30647d",
		wire:    "0008120102ad30647d00",
	},
	{
		desc:    "data, node 10 to broadcast, ARP ethertype only",
		h:       Header{Kind: KindData, Dst: Broadcast, Src: 10},
		payload: "0806",
		inner:   "10ff0a08062ed8b73c",
		wire:    "000a10ff0a08062ed8b73c00",
	},
	{
		desc:    "ethernet, node 3 to broadcast, IPv6 multicast from a foreign MAC",
		h:       Header{Kind: KindEthernet, Dst: Broadcast, Src: 3},
		payload: "333300000001aabbccddeeff86dd6000",
		inner:   "11ff03333300000001aabbccddeeff86dd6000369fe39b",
		wire:    "000611ff03333301010b01aabbccddeeff86dd6005369fe39b00",
	},
	{
		desc:    "version 2, iphc, node 1 to node 2, IPv4 UDP (iphcVectors[0])",
		h:       Header{Kind: KindIPHC, Dst: 2, Src: 1, Version: 2},
		payload: "341c46c0000201c000020213881389beef68656c6c6f20776f726c6421",
		inner:   "260201341c46c0000201c000020213881389beef68656c6c6f20776f726c642180be3ae8",
		wire:    "0008260201341c46c0040201c019020213881389beef68656c6c6f20776f726c642180be3ae800",
	},
	{
		desc:    "hello (version 1 frame), node 2 to node 1, version 2 spoken",
		h:       Header{Kind: KindHello, Dst: 1, Src: 2},
		payload: "02",
		inner:   "17010202db3c9057",
		wire:    "000917010202db3c905700",
	},
	{
		desc:    "version 3, fragment of iphc, node 1 to node 2, IPv4 pure TCP ACK (iphcVectors[2])",
		h:       Header{Kind: KindFragment, Dst: 2, Src: 1, Version: 3},
		payload: "86090001151c46c0000201c0000202509c401451010203040a0b0c0d01f6beef0012345600abcdef",
		inner:   "32020186090001151c46c0000201c0000202509c401451010203040a0b0c0d01f6beef0012345600abcdef6696315c",
		wire:    "0006320201860906011" + "51c46c0040201c0140202509c401451010203040a0b0c0d01f6beef0412345608abcdef6696315c00",
	},
	{
		desc:    "hello (version 1 frame), node 2 to node 1, version 3 spoken",
		h:       Header{Kind: KindHello, Dst: 1, Src: 2},
		payload: "03",
		inner:   "1701020329571354",
		wire:    "0009170102032957135400",
	},
}

func TestFrameVectors(t *testing.T) {
	for _, tt := range frameVectors {
		t.Run(tt.desc, func(t *testing.T) {
			payload := unhex(t, tt.payload)
			inner := unhex(t, tt.inner)
			wire := unhex(t, tt.wire)
			if crc := refCRC32C(inner[:len(inner)-4]); crc != binary.BigEndian.Uint32(inner[len(inner)-4:]) {
				t.Fatalf("vector's CRC is wrong: reference CRC %#08x", crc)
			}
			if ref := cat([]byte{0}, refCOBSEncode(inner, false), []byte{0}); !bytes.Equal(ref, wire) {
				t.Fatalf("vector's wire bytes disagree with reference COBS: % x", ref)
			}
			got := AppendFrame(nil, tt.h, payload)
			if !bytes.Equal(got, wire) {
				t.Errorf("AppendFrame\n got %x\nwant %x", got, wire)
			}
			frames, st := collectFrames(NewDecoder(len(payload)), wire, 1)
			if len(frames) != 1 || frames[0].h != tt.h || !bytes.Equal(frames[0].payload, payload) {
				t.Errorf("decoded %+v, want one frame %+v % x", frames, tt.h, payload)
			}
			if want := (DecoderStats{Frames: 1}); st != want {
				t.Errorf("stats %+v, want %+v", st, want)
			}
		})
	}
}

func TestAppendFrameLayout(t *testing.T) {
	tests := []struct {
		desc    string
		h       Header
		payload []byte
	}{
		{"empty payload", Header{Kind: KindData, Dst: 1, Src: 2}, nil},
		{"kind 15", Header{Kind: 15, Dst: Broadcast, Src: 0xFE}, []byte{1, 2, 3}},
		{"kind above 15 is masked", Header{Kind: 0x21, Dst: 5, Src: 6}, []byte{7}},
		{"zeros", Header{Kind: KindEthernet, Dst: 9, Src: 8}, make([]byte, 600)},
		{"no zeros, 1000 bytes", Header{Kind: KindData, Dst: 3, Src: 4}, seq(1, 1000)},
		{"247 bytes: inner frame is 254", Header{Kind: KindData, Dst: 3, Src: 4}, seq(1, 247)},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			prefix := []byte{0xEE}
			got := AppendFrame(prefix, tt.h, tt.payload)
			if got[0] != 0xEE {
				t.Fatalf("prefix clobbered")
			}
			wire := got[1:]
			if len(wire) > MaxEncodedLen(len(tt.payload)) {
				t.Errorf("len %d > MaxEncodedLen %d", len(wire), MaxEncodedLen(len(tt.payload)))
			}
			if wire[0] != 0 || wire[len(wire)-1] != 0 || bytes.IndexByte(wire[1:len(wire)-1], 0) >= 0 {
				t.Fatalf("0x00 only at both ends expected: % x", wire)
			}
			inner, err := refCOBSDecode(wire[1 : len(wire)-1])
			if err != nil {
				t.Fatal(err)
			}
			wantHdr := []byte{0x10 | byte(tt.h.Kind&0x0F), byte(tt.h.Dst), byte(tt.h.Src)}
			if !bytes.Equal(inner[:3], wantHdr) {
				t.Errorf("header % x, want % x", inner[:3], wantHdr)
			}
			if !bytes.Equal(inner[3:len(inner)-4], tt.payload) {
				t.Errorf("payload differs")
			}
			if crc := refCRC32C(inner[:len(inner)-4]); binary.BigEndian.Uint32(inner[len(inner)-4:]) != crc {
				t.Errorf("crc % x, want %#08x", inner[len(inner)-4:], crc)
			}
		})
	}
}

func TestMaxEncodedLen(t *testing.T) {
	tests := []struct {
		desc string
		n    int
		want int
	}{
		{"negative", -1, 0},
		{"empty payload: 7 inner bytes", 0, 2 + 7 + 1},
		{"inner 254 bytes: one block", 247, 2 + 254 + 1},
		{"inner 255 bytes: two blocks", 248, 2 + 255 + 2},
		{"1000-byte payload", 1000, 2 + 1007 + 4},
		{"1500-byte payload", 1500, 2 + 1507 + 6},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := MaxEncodedLen(tt.n); got != tt.want {
				t.Errorf("MaxEncodedLen(%d) = %d, want %d", tt.n, got, tt.want)
			}
		})
	}
}

// TestMaxEncodedLenReached finds, for each payload length, a payload with no
// 0x00 whose CRC has none either, and checks that its frame is exactly
// MaxEncodedLen long: the bound is tight, not just safe.
func TestMaxEncodedLenReached(t *testing.T) {
	for _, n := range []int{0, 1, 246, 247, 248, 500, 501, 1000, 1500} {
		var got []byte
		for first := byte(1); first != 0; first++ {
			got = AppendFrame(got[:0], Header{Kind: KindData, Dst: 1, Src: 2}, seq(first, n))
			if len(got) == MaxEncodedLen(n) {
				break
			}
			if len(got) > MaxEncodedLen(n) {
				t.Fatalf("n=%d: frame of %d bytes exceeds MaxEncodedLen %d", n, len(got), MaxEncodedLen(n))
			}
		}
		if len(got) != MaxEncodedLen(n) {
			t.Errorf("n=%d: no payload reached MaxEncodedLen %d", n, MaxEncodedLen(n))
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindData: "data", KindEthernet: "ethernet", 2: "fragment", 6: "iphc", 7: "hello", 8: "kind(8)", 15: "kind(15)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	payload := randPayload(1000, 1)
	buf := make([]byte, 0, MaxEncodedLen(len(payload)))
	h := Header{Kind: KindData, Dst: 2, Src: 1}
	if n := testing.AllocsPerRun(100, func() { buf = AppendFrame(buf[:0], h, payload) }); n != 0 {
		t.Errorf("AppendFrame: %v allocs per frame, want 0", n)
	}
	d := NewDecoder(1500)
	count := 0
	emit := func(Header, []byte) { count++ }
	if n := testing.AllocsPerRun(100, func() { d.Feed(buf, emit) }); n != 0 {
		t.Errorf("Decoder.Feed: %v allocs per frame, want 0", n)
	}
	if count != 101 { // AllocsPerRun makes one warm-up run
		t.Errorf("emitted %d frames, want 101", count)
	}
	eth := append(append(MACFor(2), MACFor(1)...), payload...)
	out := make([]byte, 0, 2000)
	if n := testing.AllocsPerRun(100, func() {
		h, p, err := Compact(eth, 1)
		if err != nil {
			t.Fatal(err)
		}
		out, _ = AppendEthernet(out[:0], h, p)
	}); n != 0 {
		t.Errorf("Compact+AppendEthernet: %v allocs per frame, want 0", n)
	}
}

func TestCRCHeader(t *testing.T) {
	for _, hdr := range [][HeaderLen]byte{{0, 0, 0}, {0x10, 2, 1}, {0xFF, 0xFF, 0xFF}, {0x1F, 0x80, 0x7F}} {
		if got, want := crcHeader(hdr), refCRC32C(hdr[:]); got != want {
			t.Errorf("crcHeader(% x) = %#08x, want %#08x", hdr, got, want)
		}
	}
}

// TestMaxPayloadLen: for every wire size up to 3000 bytes, MaxPayloadLen
// is the largest payload whose frame fits: n fits and n+1 does not.
func TestMaxPayloadLen(t *testing.T) {
	if got := MaxPayloadLen(MaxEncodedLen(0) - 1); got >= 0 {
		t.Errorf("MaxPayloadLen below an empty frame = %d, want negative", got)
	}
	for wire := MaxEncodedLen(0); wire <= 3000; wire++ {
		n := MaxPayloadLen(wire)
		if n < 0 || MaxEncodedLen(n) > wire || MaxEncodedLen(n+1) <= wire {
			t.Fatalf("MaxPayloadLen(%d) = %d: MaxEncodedLen(%d) = %d, MaxEncodedLen(%d) = %d",
				wire, n, n, MaxEncodedLen(n), n+1, MaxEncodedLen(n+1))
		}
	}
	if got := MaxPayloadLen(64); got != 54 {
		t.Errorf("MaxPayloadLen(64) = %d, want 54 (docs/link-arq.md)", got)
	}
}

func TestCountFrames(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want int
	}{
		{nil, 0},
		{[]byte{0, 0}, 0},
		{[]byte{1, 2}, 1},
		{[]byte{0, 1, 2, 0}, 1},
		{[]byte{0, 1, 0, 0, 2, 3, 0, 4}, 3},
	} {
		if got := CountFrames(tc.in); got != tc.want {
			t.Errorf("CountFrames(% x) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
