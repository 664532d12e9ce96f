package framing

import (
	"bytes"
	"fmt"
	"testing"
)

type kissFrame struct {
	port, cmd byte
	data      string
}

func kissCollect(d *KISSDecoder, in []byte) []kissFrame {
	var got []kissFrame
	d.Feed(in, func(port, cmd byte, data []byte) {
		got = append(got, kissFrame{port, cmd, string(data)})
	})
	return got
}

func TestAppendKISS(t *testing.T) {
	tests := []struct {
		desc      string
		port, cmd byte
		data      []byte
		want      []byte
	}{
		{"data port 0", 0, KISSData, []byte("hi"), []byte{0xC0, 0x00, 'h', 'i', 0xC0}},
		{"data port 3", 3, KISSData, []byte{1}, []byte{0xC0, 0x30, 1, 0xC0}},
		{"escapes", 0, KISSData, []byte{0xC0, 0xDB, 0xDC, 0xDD}, []byte{0xC0, 0x00, 0xDB, 0xDC, 0xDB, 0xDD, 0xDC, 0xDD, 0xC0}},
		{"txdelay", 0, KISSTXDelay, []byte{30}, []byte{0xC0, 0x01, 30, 0xC0}},
		{"full duplex port 1", 1, KISSFullDuplex, []byte{1}, []byte{0xC0, 0x15, 1, 0xC0}},
		{"return", 5, KISSReturn, nil, []byte{0xC0, 0xFF, 0xC0}},
		{"type byte FEND escaped", 12, KISSData, nil, []byte{0xC0, 0xDB, 0xDC, 0xC0}},
		{"type byte FESC escaped", 13, 11, nil, []byte{0xC0, 0xDB, 0xDD, 0xC0}},
		{"port masked to 4 bits", 0x12, KISSData, nil, []byte{0xC0, 0x20, 0xC0}},
	}
	for _, tt := range tests {
		got := AppendKISS([]byte{0xAA}, tt.port, tt.cmd, tt.data)
		want := append([]byte{0xAA}, tt.want...)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got % x, want % x", tt.desc, got, want)
		}
		if len(got)-1 > 2*len(tt.data)+4 {
			t.Errorf("%s: %d bytes, more than the documented bound %d", tt.desc, len(got)-1, 2*len(tt.data)+4)
		}
	}
}

func TestKISSDecoder(t *testing.T) {
	tests := []struct {
		desc  string
		max   int
		in    []byte
		want  []kissFrame
		stats KISSStats
	}{
		{"one frame", 100, []byte{0xC0, 0x00, 'a', 'b', 0xC0},
			[]kissFrame{{0, 0, "ab"}}, KISSStats{Frames: 1}},
		{"shared FEND between frames", 100, []byte{0xC0, 0x00, 'a', 0xC0, 0x10, 'b', 0xC0},
			[]kissFrame{{0, 0, "a"}, {1, 0, "b"}}, KISSStats{Frames: 2}},
		{"double FEND counted empty", 100, []byte{0xC0, 0x00, 'a', 0xC0, 0xC0, 0x00, 'b', 0xC0},
			[]kissFrame{{0, 0, "a"}, {0, 0, "b"}}, KISSStats{Frames: 2, Empty: 1}},
		{"garbage before first FEND", 100, []byte{'x', 'y', 0xC0, 0x00, 'a', 0xC0},
			[]kissFrame{{0, 0, "a"}}, KISSStats{Frames: 1, Garbage: 2}},
		{"no closing FEND yet", 100, []byte{0xC0, 0x00, 'a'},
			nil, KISSStats{}},
		{"escapes undone", 100, []byte{0xC0, 0x00, 0xDB, 0xDC, 0xDB, 0xDD, 0xC0},
			[]kissFrame{{0, 0, "\xC0\xDB"}}, KISSStats{Frames: 1}},
		{"escaped type byte", 100, []byte{0xC0, 0xDB, 0xDC, 'a', 0xC0},
			[]kissFrame{{12, 0, "a"}}, KISSStats{Frames: 1}},
		{"bad escape drops frame and resyncs", 100, []byte{0xC0, 0x00, 'a', 0xDB, 'x', 'b', 0xC0, 0x00, 'c', 0xC0},
			[]kissFrame{{0, 0, "c"}}, KISSStats{Frames: 1, BadEscape: 1, Garbage: 1}},
		{"FESC FEND is a bad escape", 100, []byte{0xC0, 0x00, 'a', 0xDB, 0xC0, 0x00, 'c', 0xC0},
			[]kissFrame{{0, 0, "c"}}, KISSStats{Frames: 1, BadEscape: 1}},
		{"exactly max", 3, []byte{0xC0, 0x00, 'a', 'b', 'c', 0xC0},
			[]kissFrame{{0, 0, "abc"}}, KISSStats{Frames: 1}},
		{"one over max dropped", 3, []byte{0xC0, 0x00, 'a', 'b', 'c', 'd', 'e', 0xC0, 0x00, 'z', 0xC0},
			[]kissFrame{{0, 0, "z"}}, KISSStats{Frames: 1, TooLong: 1, Garbage: 1}},
		{"escaped bytes count once against max", 2, []byte{0xC0, 0x00, 0xDB, 0xDC, 0xDB, 0xDD, 0xC0},
			[]kissFrame{{0, 0, "\xC0\xDB"}}, KISSStats{Frames: 1}},
		{"command frame", 100, []byte{0xC0, 0x21, 50, 0xC0},
			[]kissFrame{{2, KISSTXDelay, "2"}}, KISSStats{Frames: 1}},
		{"type only", 100, []byte{0xC0, 0x00, 0xC0},
			[]kissFrame{{0, 0, ""}}, KISSStats{Frames: 1}},
		{"return", 100, []byte{0xC0, 0xFF, 0xC0},
			[]kissFrame{{0, KISSReturn, ""}}, KISSStats{Frames: 1}},
	}
	for _, tt := range tests {
		d := NewKISSDecoder(tt.max)
		got := kissCollect(d, tt.in)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: got %q, want %q", tt.desc, got, tt.want)
		}
		if d.Stats() != tt.stats {
			t.Errorf("%s: stats %+v, want %+v", tt.desc, d.Stats(), tt.stats)
		}
		// Byte by byte gives the same frames.
		d = NewKISSDecoder(tt.max)
		var one []kissFrame
		for i := range tt.in {
			one = append(one, kissCollect(d, tt.in[i:i+1])...)
		}
		if fmt.Sprint(one) != fmt.Sprint(tt.want) {
			t.Errorf("%s: byte by byte got %q, want %q", tt.desc, one, tt.want)
		}
	}
}

func TestKISSDecoderReset(t *testing.T) {
	d := NewKISSDecoder(10)
	kissCollect(d, []byte{0xC0, 0x00, 'a', 'b'})
	d.Reset()
	got := kissCollect(d, []byte{'c', 0xC0, 0x00, 'd', 0xC0})
	if fmt.Sprint(got) != fmt.Sprint([]kissFrame{{0, 0, "d"}}) {
		t.Fatalf("after reset got %q, want only the frame after the next FEND", got)
	}
}

// FuzzKISSDecoder decodes arbitrary bytes, re-encodes every frame and decodes
// that again: the frames must come back identical, within the limit.
func FuzzKISSDecoder(f *testing.F) {
	f.Add([]byte{0xC0, 0x00, 'a', 0xDB, 0xDC, 0xC0})
	f.Add([]byte{0xC0, 0xDB, 0xC0, 0xFF, 0xC0, 0xC0})
	f.Add([]byte{'x', 0xC0, 0x21, 0xDB, 0xDD, 0xDB, 0xC0})
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 64
		d := NewKISSDecoder(max)
		var frames []kissFrame
		var enc []byte
		d.Feed(in, func(port, cmd byte, data []byte) {
			if len(data) > max {
				t.Fatalf("frame of %d bytes, max %d", len(data), max)
			}
			frames = append(frames, kissFrame{port, cmd, string(data)})
			enc = AppendKISS(enc, port, cmd, data)
		})
		d2 := NewKISSDecoder(max)
		again := kissCollect(d2, enc)
		if fmt.Sprint(again) != fmt.Sprint(frames) {
			t.Fatalf("round trip: got %q, want %q", again, frames)
		}
		s := d2.Stats()
		if s.TooLong+s.BadEscape+s.Garbage != 0 || s.Frames != uint64(len(frames)) {
			t.Fatalf("re-encoded stream has faults: %+v", s)
		}
	})
}

func BenchmarkAppendKISS(b *testing.B) {
	data := bytes.Repeat([]byte{0x01, 0xC0, 0x55, 0xDB, 0x7F, 0x00, 0x33, 0x44}, 128)
	dst := make([]byte, 0, 2*len(data)+4)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		dst = AppendKISS(dst[:0], 0, KISSData, data)
	}
}

func BenchmarkKISSDecoder(b *testing.B) {
	data := bytes.Repeat([]byte{0x01, 0xC0, 0x55, 0xDB, 0x7F, 0x00, 0x33, 0x44}, 128)
	stream := AppendKISS(nil, 0, KISSData, data)
	d := NewKISSDecoder(2048)
	n := 0
	emit := func(port, cmd byte, data []byte) { n += len(data) }
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		d.Feed(stream, emit)
	}
	if n == 0 {
		b.Fatal("no frames decoded")
	}
}
