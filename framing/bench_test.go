package framing

import (
	"strconv"
	"testing"
)

var benchSizes = []int{64, 1000}

func BenchmarkAppendFrame(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			payload := randPayload(n, 1)
			buf := make([]byte, 0, MaxEncodedLen(n))
			h := Header{Kind: KindData, Dst: 2, Src: 1}
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				buf = AppendFrame(buf[:0], h, payload)
			}
		})
	}
}

func BenchmarkDecoderFeed(b *testing.B) {
	for _, n := range benchSizes {
		for _, chunk := range []int{0, 1} {
			name := strconv.Itoa(n) + "/whole"
			if chunk == 1 {
				name = strconv.Itoa(n) + "/bytewise"
			}
			b.Run(name, func(b *testing.B) {
				wire := AppendFrame(nil, Header{Kind: KindData, Dst: 2, Src: 1}, randPayload(n, 1))
				d := NewDecoder(1500)
				frames := 0
				emit := func(Header, []byte) { frames++ }
				b.ReportAllocs()
				b.SetBytes(int64(n))
				for b.Loop() {
					if chunk == 0 {
						d.Feed(wire, emit)
						continue
					}
					for i := range wire {
						d.Feed(wire[i:i+1], emit)
					}
				}
				if uint64(frames) != d.Stats().Frames || d.Stats().Frames == 0 {
					b.Fatalf("stats %+v", d.Stats())
				}
			})
		}
	}
}

func BenchmarkCompactAppendEthernet(b *testing.B) {
	eth := append(append(MACFor(2), MACFor(1)...), randPayload(1002, 1)...)
	out := make([]byte, 0, 2000)
	b.ReportAllocs()
	b.SetBytes(int64(len(eth)))
	for b.Loop() {
		h, p, err := Compact(eth, 1)
		if err != nil {
			b.Fatal(err)
		}
		out, _ = AppendEthernet(out[:0], h, p)
	}
}

// BenchmarkIPHC: compressing a 1000-byte UDP datagram over IPv4 (its
// checksum right, as a kernel sends it) and rebuilding it, in version 3
// (checksum carried) and version 4 (elided: summed by the sender to decide,
// by its rebuilding check and by the receiver).
func BenchmarkIPHC(b *testing.B) {
	data := withSum(ipv4(0, 0x1c46, 0x4000, 64, 17, udp(5000, 5001, 0, seq(1, 1000)), false))
	for _, v := range []uint8{Version3, Version4} {
		b.Run("v"+strconv.Itoa(int(v)), func(b *testing.B) {
			c := make([]byte, 0, len(data))
			back := make([]byte, 0, len(data))
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				c, _ = AppendIPHCVersion(c[:0], data, v)
				back, _ = AppendIPHCData(back[:0], c)
			}
			if len(back) != len(data) {
				b.Fatalf("rebuilt %d bytes of %d", len(back), len(data))
			}
		})
	}
}
