package framing

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// gotFrame is one emitted frame, copied out of the decoder's buffer.
type gotFrame struct {
	h       Header
	payload []byte
}

// collectFrames feeds stream to d in chunks of chunk bytes (all at once if
// chunk <= 0) and returns the frames emitted and the decoder's stats.
func collectFrames(d *Decoder, stream []byte, chunk int) ([]gotFrame, DecoderStats) {
	var frames []gotFrame
	emit := func(h Header, payload []byte) {
		frames = append(frames, gotFrame{h, append([]byte(nil), payload...)})
	}
	if chunk <= 0 {
		chunk = len(stream) + 1
	}
	for p := stream; len(p) > 0; {
		n := min(chunk, len(p))
		d.Feed(p[:n], emit)
		p = p[n:]
	}
	return frames, d.Stats()
}

// randPayload returns n bytes from a fixed seed; about 1 in 256 is 0x00.
func randPayload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// rawFrame builds 0x00 COBS(inner) 0x00 for an arbitrary inner frame with a
// correct CRC: byte0, dst, src, payload.
func rawFrame(byte0, dst, src byte, payload []byte) []byte {
	inner := append([]byte{byte0, dst, src}, payload...)
	inner = binary.BigEndian.AppendUint32(inner, crc32.Update(0, castagnoli, inner))
	return cat([]byte{0}, appendCOBS(nil, inner), []byte{0})
}

func sameFrames(a, b []gotFrame) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].h != b[i].h || !bytes.Equal(a[i].payload, b[i].payload) {
			return false
		}
	}
	return true
}

// TestDecoderChunking feeds the same stream of frames in chunks of many
// sizes, one byte at a time included; frames and stats must not change.
func TestDecoderChunking(t *testing.T) {
	var stream []byte
	var want []gotFrame
	for i, n := range []int{0, 1, 2, 100, 247, 248, 253, 254, 255, 600, 1000, 1500} {
		h := Header{Kind: Kind(i % 16), Dst: NodeID(i + 1), Src: NodeID(200 - i)}
		p := randPayload(n, uint64(i))
		if i%3 == 0 {
			p = seq(1, n) // no zeros at all: full 0xFF blocks
		}
		stream = AppendFrame(stream, h, p)
		want = append(want, gotFrame{h, p})
	}
	for _, chunk := range []int{1, 2, 3, 7, 64, 253, 254, 255, 1000, 0} {
		got, st := collectFrames(NewDecoder(1500), stream, chunk)
		if !sameFrames(got, want) {
			t.Errorf("chunk %d: got %d frames, want %d (or contents differ)", chunk, len(got), len(want))
		}
		if st != (DecoderStats{Frames: uint64(len(want))}) {
			t.Errorf("chunk %d: stats %+v", chunk, st)
		}
	}
}

// TestDecoderNonCanonicalCOBS: an encoder that writes an empty final block
// after a full 0xFF block produces the same frame; accept it.
func TestDecoderNonCanonicalCOBS(t *testing.T) {
	h := Header{Kind: KindData, Dst: 2, Src: 1}
	for first := byte(1); first != 0; first++ {
		p := seq(first, 254-Overhead) // inner frame of exactly 254 bytes
		inner := append([]byte{0x10, 2, 1}, p...)
		inner = binary.BigEndian.AppendUint32(inner, crc32.Update(0, castagnoli, inner))
		if bytes.IndexByte(inner, 0) >= 0 {
			continue // need a CRC without 0x00 so that the block is full
		}
		wire := cat([]byte{0}, refCOBSEncode(inner, true), []byte{0})
		if len(wire) != 2+256 || wire[len(wire)-2] != 0x01 {
			t.Fatalf("reference did not write the empty block: % x", wire[len(wire)-4:])
		}
		got, st := collectFrames(NewDecoder(len(p)), wire, 1)
		if !sameFrames(got, []gotFrame{{h, p}}) || st != (DecoderStats{Frames: 1}) {
			t.Fatalf("got %d frames, stats %+v", len(got), st)
		}
		return
	}
	t.Fatal("no payload with a CRC free of 0x00")
}

func TestDecoderResync(t *testing.T) {
	h1, p1 := Header{Kind: KindData, Dst: 2, Src: 1}, []byte{0x08, 0x00, 0x45, 0x00, 0x00, 0x1c}
	h2, p2 := Header{Kind: KindEthernet, Dst: Broadcast, Src: 7}, randPayload(40, 9)
	f1 := AppendFrame(nil, h1, p1) // 00 05 10 02 01 08 02 45 01 06 1c 04 4f f9 f6 00
	f2 := AppendFrame(nil, h2, p2)
	g1, g2 := gotFrame{h1, p1}, gotFrame{h2, p2}
	flip := func(f []byte, i int) []byte {
		f = append([]byte(nil), f...)
		f[i] ^= 0x40
		return f
	}
	long := AppendFrame(nil, Header{Kind: KindData, Dst: 2, Src: 1}, randPayload(101, 3))

	tests := []struct {
		desc   string
		stream []byte
		want   []gotFrame
		stats  DecoderStats
	}{
		{"two clean frames", cat(f1, f2), []gotFrame{g1, g2}, DecoderStats{Frames: 2}},
		{"empty runs between delimiters are ignored", cat([]byte{0, 0, 0}, f1, []byte{0, 0}, f2, []byte{0}),
			[]gotFrame{g1, g2}, DecoderStats{Frames: 2}},
		{"garbage before the first delimiter", cat([]byte("junk"), f1), []gotFrame{g1},
			DecoderStats{Frames: 1, GarbageBytes: 4}},
		{"joined mid-frame", cat(f1[5:], f2), []gotFrame{g2},
			DecoderStats{Frames: 1, GarbageBytes: uint64(len(f1) - 5 - 1)}},
		{"garbage between frames: a truncated block", cat(f1, []byte("xyz"), f2), []gotFrame{g1, g2},
			DecoderStats{Frames: 2, BadCOBS: 1, GarbageBytes: 3}},
		{"garbage between frames, delimited, long enough to decode", cat(f1, []byte{0, 3, 1, 2, 3, 1, 2, 3, 4, 5, 6, 7, 8}, f2),
			[]gotFrame{g1, g2}, DecoderStats{Frames: 2, BadCOBS: 1, GarbageBytes: 12}},
		{"garbage run with valid COBS and a bad CRC", cat(f1, []byte{0, 8, 1, 2, 3, 4, 5, 6, 7}, f2),
			[]gotFrame{g1, g2}, DecoderStats{Frames: 2, BadCRC: 1, GarbageBytes: 8}},
		{"a flipped payload bit", cat(flip(f1, 3), f2), []gotFrame{g2},
			DecoderStats{Frames: 1, BadCRC: 1, GarbageBytes: uint64(len(f1) - 2)}},
		{"a flipped CRC bit", cat(flip(f1, len(f1)-3), f2), []gotFrame{g2},
			DecoderStats{Frames: 1, BadCRC: 1, GarbageBytes: uint64(len(f1) - 2)}},
		{"a corrupted code byte", cat(f1[:1], []byte{0x07}, f1[2:], f2), []gotFrame{g2},
			DecoderStats{Frames: 1, BadCRC: 1, GarbageBytes: uint64(len(f1) - 2)}},
		{"a 0x00 inside a frame splits it in two bad runs", cat(f1[:7], []byte{0}, f1[7:], f2), []gotFrame{g2},
			// "05 10 02 01 08 02" ends in a truncated block; "45 01 06 1c 04 4f f9 f6" too.
			DecoderStats{Frames: 1, BadCOBS: 2, GarbageBytes: uint64(len(f1) - 2)}},
		{"truncated inside a block", cat(f1[:len(f1)-5], f2), []gotFrame{g2},
			DecoderStats{Frames: 1, BadCOBS: 1, GarbageBytes: uint64(len(f1) - 6)}},
		{"truncated at a block boundary: bad CRC", cat(f1[:9], f2), []gotFrame{g2},
			DecoderStats{Frames: 1, BadCRC: 1, GarbageBytes: 8}},
		{"truncated to fewer than 7 bytes", cat(f1[:6], f2), []gotFrame{g2},
			DecoderStats{Frames: 1, Short: 1, GarbageBytes: 5}},
		{"truncated, stream ends", cat(f2, f1[:len(f1)-5]), []gotFrame{g2}, DecoderStats{Frames: 1}},
		{"oversize frame", cat(f1, long, f2), []gotFrame{g1, g2},
			DecoderStats{Frames: 2, TooLong: 1, GarbageBytes: uint64(len(long) - 2)}},
		{"bad version", cat(rawFrame(0x50, 2, 1, p1), f1), []gotFrame{g1},
			DecoderStats{Frames: 1, BadVersion: 1, GarbageBytes: uint64(len(rawFrame(0x50, 2, 1, p1)) - 2)}},
		{"version 4", cat(rawFrame(0x46, 2, 1, p1), f1), []gotFrame{{Header{Kind: KindIPHC, Dst: 2, Src: 1, Version: 4}, p1}, g1},
			DecoderStats{Frames: 2}},
		{"version 3", cat(rawFrame(0x36, 2, 1, p1), f1), []gotFrame{{Header{Kind: KindIPHC, Dst: 2, Src: 1, Version: 3}, p1}, g1},
			DecoderStats{Frames: 2}},
		{"version 2", cat(rawFrame(0x26, 2, 1, p1), f1), []gotFrame{{Header{Kind: KindIPHC, Dst: 2, Src: 1, Version: 2}, p1}, g1},
			DecoderStats{Frames: 2}},
		{"version 0", cat(rawFrame(0x00, 2, 1, nil), f1), []gotFrame{g1},
			DecoderStats{Frames: 1, BadVersion: 1, GarbageBytes: uint64(len(rawFrame(0x00, 2, 1, nil)) - 2)}},
		{"dst 0x00", cat(AppendFrame(nil, Header{Kind: KindData, Dst: 0, Src: 1}, nil), f1), []gotFrame{g1},
			DecoderStats{Frames: 1, BadAddr: 1, GarbageBytes: 8}},
		{"src 0x00", cat(AppendFrame(nil, Header{Kind: KindData, Dst: 1, Src: 0}, nil), f1), []gotFrame{g1},
			DecoderStats{Frames: 1, BadAddr: 1, GarbageBytes: 8}},
		{"src broadcast", cat(AppendFrame(nil, Header{Kind: KindData, Dst: 1, Src: Broadcast}, nil), f1), []gotFrame{g1},
			DecoderStats{Frames: 1, BadAddr: 1, GarbageBytes: 8}},
		{"reserved kinds pass through", rawFrame(0x1F, 4, 5, []byte{9}), []gotFrame{{Header{Kind: 15, Dst: 4, Src: 5}, []byte{9}}},
			DecoderStats{Frames: 1}},
		{"only garbage, no delimiter", []byte("no delimiter here"), nil, DecoderStats{GarbageBytes: 17}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			for _, chunk := range []int{1, 3, 0} {
				got, st := collectFrames(NewDecoder(100), tt.stream, chunk)
				if !sameFrames(got, tt.want) {
					t.Errorf("chunk %d: frames %+v, want %+v", chunk, got, tt.want)
				}
				if st != tt.stats {
					t.Errorf("chunk %d: stats\n got %+v\nwant %+v", chunk, st, tt.stats)
				}
			}
		})
	}
}

// TestDecoderMaxPayload checks the length limit at its edge.
func TestDecoderMaxPayload(t *testing.T) {
	for _, n := range []int{0, 1, 247, 248, 1000} {
		p := randPayload(n, uint64(n))
		f := AppendFrame(nil, Header{Kind: KindData, Dst: 1, Src: 2}, p)
		if _, st := collectFrames(NewDecoder(n), f, 1); st != (DecoderStats{Frames: 1}) {
			t.Errorf("n=%d, max %d: stats %+v", n, n, st)
		}
		if n == 0 {
			continue
		}
		if _, st := collectFrames(NewDecoder(n-1), f, 1); st != (DecoderStats{TooLong: 1, GarbageBytes: uint64(len(f) - 2)}) {
			t.Errorf("n=%d, max %d: stats %+v", n, n-1, st)
		}
	}
	if _, st := collectFrames(NewDecoder(-5), AppendFrame(nil, Header{Kind: KindData, Dst: 1, Src: 2}, nil), 0); st.Frames != 1 {
		t.Errorf("negative maxPayload: stats %+v, want an empty payload accepted", st)
	}
}

func TestDecoderReset(t *testing.T) {
	f1 := AppendFrame(nil, Header{Kind: KindData, Dst: 2, Src: 1}, []byte{8, 0, 1, 2, 3})
	f2 := AppendFrame(nil, Header{Kind: KindData, Dst: 1, Src: 2}, []byte{8, 6})
	d := NewDecoder(100)
	n := 0
	emit := func(Header, []byte) { n++ }
	d.Feed(f1[:8], emit)
	d.Reset()
	d.Feed(f1[8:], emit) // the rest of f1: garbage up to its closing 0x00
	d.Feed(f2, emit)
	want := DecoderStats{Frames: 1, GarbageBytes: uint64(len(f1) - 2)}
	if n != 1 || d.Stats() != want {
		t.Errorf("emitted %d, stats %+v; want 1, %+v", n, d.Stats(), want)
	}
}

func TestDecoderNilEmit(t *testing.T) {
	d := NewDecoder(10)
	d.Feed(AppendFrame(nil, Header{Kind: KindData, Dst: 2, Src: 1}, []byte{8, 0}), nil)
	if d.Stats().Frames != 1 {
		t.Errorf("stats %+v", d.Stats())
	}
}

// TestDecoderRandomCorruption sends frames through a channel that flips
// bits, drops and inserts bytes, and checks that every frame emitted is one
// that was sent (no corrupted frame gets through) and that the decoder
// catches every clean frame after the damage.
func TestDecoderRandomCorruption(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 42))
	sent := map[string]bool{}
	var stream []byte
	var clean []gotFrame // frames sent without damage, in order
	for i := range 2000 {
		h := Header{Kind: Kind(r.IntN(2)), Dst: NodeID(1 + r.IntN(254)), Src: NodeID(1 + r.IntN(254))}
		p := randPayload(r.IntN(300), uint64(i))
		f := AppendFrame(nil, h, p)
		sent[string(f)] = true
		damaged := false
		for range r.IntN(3) {
			damaged = true
			i := 1 + r.IntN(len(f)-2)
			switch r.IntN(3) {
			case 0:
				f[i] ^= 1 << r.IntN(8)
			case 1:
				f = append(f[:i], f[i+1:]...)
			default:
				f = append(f[:i], append([]byte{byte(r.Uint32())}, f[i:]...)...)
			}
		}
		if !damaged {
			clean = append(clean, gotFrame{h, p})
		}
		stream = append(stream, f...)
	}
	d := NewDecoder(300)
	var got []gotFrame
	d.Feed(stream, func(h Header, p []byte) {
		if !sent[string(AppendFrame(nil, h, p))] {
			t.Errorf("emitted a frame that was never sent: %+v % x", h, p)
		}
		got = append(got, gotFrame{h, append([]byte(nil), p...)})
	})
	// Every clean frame must come out, in order; a damaged frame may survive
	// only as itself (a flip that cancels, say), which the check above allows.
	j := 0
	for _, g := range got {
		if j < len(clean) && sameFrames([]gotFrame{g}, clean[j:j+1]) {
			j++
		}
	}
	if j != len(clean) {
		t.Errorf("recovered %d of %d clean frames", j, len(clean))
	}
	st := d.Stats()
	if bad := st.BadCRC + st.BadCOBS + st.TooLong + st.Short + st.BadVersion + st.BadAddr; bad == 0 || st.Frames != uint64(len(got)) {
		t.Errorf("stats %+v", st)
	}
	t.Logf("%d frames sent, %d clean, %d emitted, stats %+v", len(sent), len(clean), len(got), st)
}
