package kissproto

import (
	"bytes"
	"fmt"
	"testing"
)

type frame struct {
	port, cmd byte
	data      string
}

func collect(d *Decoder, in []byte) []frame {
	var got []frame
	d.Feed(in, func(port, cmd byte, data []byte) {
		got = append(got, frame{port, cmd, string(data)})
	})
	return got
}

func TestAppendFrame(t *testing.T) {
	tests := []struct {
		desc      string
		port, cmd byte
		data      []byte
		want      []byte
	}{
		{"data port 0", 0, CmdData, []byte("hi"), []byte{0xC0, 0x00, 'h', 'i', 0xC0}},
		{"data port 3", 3, CmdData, []byte{1}, []byte{0xC0, 0x30, 1, 0xC0}},
		{"escapes", 0, CmdData, []byte{0xC0, 0xDB, 0xDC, 0xDD}, []byte{0xC0, 0x00, 0xDB, 0xDC, 0xDB, 0xDD, 0xDC, 0xDD, 0xC0}},
		{"txdelay", 0, CmdTXDelay, []byte{30}, []byte{0xC0, 0x01, 30, 0xC0}},
		{"full duplex port 1", 1, CmdFullDuplex, []byte{1}, []byte{0xC0, 0x15, 1, 0xC0}},
		{"return", 5, CmdReturn, nil, []byte{0xC0, 0xFF, 0xC0}},
		{"type byte FEND escaped", 12, CmdData, nil, []byte{0xC0, 0xDB, 0xDC, 0xC0}},
		{"type byte FESC escaped", 13, 11, nil, []byte{0xC0, 0xDB, 0xDD, 0xC0}},
		{"port masked to 4 bits", 0x12, CmdData, nil, []byte{0xC0, 0x20, 0xC0}},
	}
	for _, tt := range tests {
		got := AppendFrame([]byte{0xAA}, tt.port, tt.cmd, tt.data)
		want := append([]byte{0xAA}, tt.want...)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got % x, want % x", tt.desc, got, want)
		}
		if len(got)-1 > 2*len(tt.data)+4 {
			t.Errorf("%s: %d bytes, more than the documented bound %d", tt.desc, len(got)-1, 2*len(tt.data)+4)
		}
	}
}

func TestDecoder(t *testing.T) {
	tests := []struct {
		desc  string
		max   int
		in    []byte
		want  []frame
		stats Stats
	}{
		{"one frame", 100, []byte{0xC0, 0x00, 'a', 'b', 0xC0},
			[]frame{{0, 0, "ab"}}, Stats{Frames: 1}},
		{"shared FEND between frames", 100, []byte{0xC0, 0x00, 'a', 0xC0, 0x10, 'b', 0xC0},
			[]frame{{0, 0, "a"}, {1, 0, "b"}}, Stats{Frames: 2}},
		{"double FEND counted empty", 100, []byte{0xC0, 0x00, 'a', 0xC0, 0xC0, 0x00, 'b', 0xC0},
			[]frame{{0, 0, "a"}, {0, 0, "b"}}, Stats{Frames: 2, Empty: 1}},
		{"garbage before first FEND", 100, []byte{'x', 'y', 0xC0, 0x00, 'a', 0xC0},
			[]frame{{0, 0, "a"}}, Stats{Frames: 1, Garbage: 2}},
		{"no closing FEND yet", 100, []byte{0xC0, 0x00, 'a'},
			nil, Stats{}},
		{"escapes undone", 100, []byte{0xC0, 0x00, 0xDB, 0xDC, 0xDB, 0xDD, 0xC0},
			[]frame{{0, 0, "\xC0\xDB"}}, Stats{Frames: 1}},
		{"escaped type byte", 100, []byte{0xC0, 0xDB, 0xDC, 'a', 0xC0},
			[]frame{{12, 0, "a"}}, Stats{Frames: 1}},
		{"bad escape drops frame and resyncs", 100, []byte{0xC0, 0x00, 'a', 0xDB, 'x', 'b', 0xC0, 0x00, 'c', 0xC0},
			[]frame{{0, 0, "c"}}, Stats{Frames: 1, BadEscape: 1, Garbage: 1}},
		{"FESC FEND is a bad escape", 100, []byte{0xC0, 0x00, 'a', 0xDB, 0xC0, 0x00, 'c', 0xC0},
			[]frame{{0, 0, "c"}}, Stats{Frames: 1, BadEscape: 1}},
		{"exactly max", 3, []byte{0xC0, 0x00, 'a', 'b', 'c', 0xC0},
			[]frame{{0, 0, "abc"}}, Stats{Frames: 1}},
		{"one over max dropped", 3, []byte{0xC0, 0x00, 'a', 'b', 'c', 'd', 'e', 0xC0, 0x00, 'z', 0xC0},
			[]frame{{0, 0, "z"}}, Stats{Frames: 1, TooLong: 1, Garbage: 1}},
		{"escaped bytes count once against max", 2, []byte{0xC0, 0x00, 0xDB, 0xDC, 0xDB, 0xDD, 0xC0},
			[]frame{{0, 0, "\xC0\xDB"}}, Stats{Frames: 1}},
		{"command frame", 100, []byte{0xC0, 0x21, 50, 0xC0},
			[]frame{{2, CmdTXDelay, "2"}}, Stats{Frames: 1}},
		{"type only", 100, []byte{0xC0, 0x00, 0xC0},
			[]frame{{0, 0, ""}}, Stats{Frames: 1}},
		{"return", 100, []byte{0xC0, 0xFF, 0xC0},
			[]frame{{0, CmdReturn, ""}}, Stats{Frames: 1}},
	}
	for _, tt := range tests {
		d := NewDecoder(tt.max)
		got := collect(d, tt.in)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: got %q, want %q", tt.desc, got, tt.want)
		}
		if d.Stats() != tt.stats {
			t.Errorf("%s: stats %+v, want %+v", tt.desc, d.Stats(), tt.stats)
		}
		// Byte by byte gives the same frames.
		d = NewDecoder(tt.max)
		var one []frame
		for i := range tt.in {
			one = append(one, collect(d, tt.in[i:i+1])...)
		}
		if fmt.Sprint(one) != fmt.Sprint(tt.want) {
			t.Errorf("%s: byte by byte got %q, want %q", tt.desc, one, tt.want)
		}
	}
}

func TestDecoderReset(t *testing.T) {
	d := NewDecoder(10)
	collect(d, []byte{0xC0, 0x00, 'a', 'b'})
	d.Reset()
	got := collect(d, []byte{'c', 0xC0, 0x00, 'd', 0xC0})
	if fmt.Sprint(got) != fmt.Sprint([]frame{{0, 0, "d"}}) {
		t.Fatalf("after reset got %q, want only the frame after the next FEND", got)
	}
}

// FuzzDecoder decodes arbitrary bytes, re-encodes every frame and decodes
// that again: the frames must come back identical, within the limit.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0xC0, 0x00, 'a', 0xDB, 0xDC, 0xC0})
	f.Add([]byte{0xC0, 0xDB, 0xC0, 0xFF, 0xC0, 0xC0})
	f.Add([]byte{'x', 0xC0, 0x21, 0xDB, 0xDD, 0xDB, 0xC0})
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 64
		d := NewDecoder(max)
		var frames []frame
		var enc []byte
		d.Feed(in, func(port, cmd byte, data []byte) {
			if len(data) > max {
				t.Fatalf("frame of %d bytes, max %d", len(data), max)
			}
			frames = append(frames, frame{port, cmd, string(data)})
			enc = AppendFrame(enc, port, cmd, data)
		})
		d2 := NewDecoder(max)
		again := collect(d2, enc)
		if fmt.Sprint(again) != fmt.Sprint(frames) {
			t.Fatalf("round trip: got %q, want %q", again, frames)
		}
		s := d2.Stats()
		if s.TooLong+s.BadEscape+s.Garbage != 0 || s.Frames != uint64(len(frames)) {
			t.Fatalf("re-encoded stream has faults: %+v", s)
		}
	})
}

func BenchmarkAppendFrame(b *testing.B) {
	data := bytes.Repeat([]byte{0x01, 0xC0, 0x55, 0xDB, 0x7F, 0x00, 0x33, 0x44}, 128)
	dst := make([]byte, 0, 2*len(data)+4)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		dst = AppendFrame(dst[:0], 0, CmdData, data)
	}
}

func BenchmarkDecoder(b *testing.B) {
	data := bytes.Repeat([]byte{0x01, 0xC0, 0x55, 0xDB, 0x7F, 0x00, 0x33, 0x44}, 128)
	stream := AppendFrame(nil, 0, CmdData, data)
	d := NewDecoder(2048)
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
