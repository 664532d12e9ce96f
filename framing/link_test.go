package framing

import (
	"bytes"
	"errors"
	"testing"
)

func TestFragVectors(t *testing.T) {
	tests := []struct {
		desc string
		f    FragHeader
		wire []byte
	}{
		{"single fragment, ack requested, data", FragHeader{AckReq: true, Inner: KindData, Seq: 7, Index: 0, Count: 1}, []byte{0x80, 7, 0, 1}},
		{"middle fragment, ethernet, no ack", FragHeader{Inner: KindEthernet, Seq: 255, Index: 3, Count: 17}, []byte{0x01, 0xff, 3, 17}},
		{"last of 64", FragHeader{AckReq: true, Inner: 15, Seq: 0, Index: 63, Count: 64}, []byte{0x8f, 0, 63, 64}},
		{"first packet of a sender, polled", FragHeader{AckReq: true, First: true, Inner: KindEthernet, Seq: 42, Count: 1}, []byte{0xc1, 42, 0, 1}},
		{"first packet, middle fragment", FragHeader{First: true, Inner: KindData, Seq: 9, Index: 1, Count: 3}, []byte{0x40, 9, 1, 3}},
	}
	for _, tc := range tests {
		got, err := AppendFrag([]byte{0xAA}, tc.f)
		if err != nil || !bytes.Equal(got, append([]byte{0xAA}, tc.wire...)) {
			t.Errorf("%s: AppendFrag = % x, %v; want aa % x", tc.desc, got, err, tc.wire)
		}
		f, body, err := ParseFrag(append(tc.wire, 1, 2))
		if err != nil || f != tc.f || !bytes.Equal(body, []byte{1, 2}) {
			t.Errorf("%s: ParseFrag = %+v, % x, %v", tc.desc, f, body, err)
		}
	}
}

func TestParseFragErrors(t *testing.T) {
	tests := []struct {
		desc string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"three bytes", []byte{0x80, 1, 0}, ErrShort},
		{"reserved bit 4", []byte{0x90, 1, 0, 1}, ErrMalformed},
		{"reserved bit 5", []byte{0x20, 1, 0, 1}, ErrMalformed},
		{"count zero", []byte{0x00, 1, 0, 0}, ErrMalformed},
		{"count 65", []byte{0x00, 1, 0, 65}, ErrMalformed},
		{"index equals count", []byte{0x00, 1, 4, 4}, ErrMalformed},
	}
	for _, tc := range tests {
		if _, _, err := ParseFrag(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.desc, err, tc.want)
		}
	}
	for _, f := range []FragHeader{{Count: 0}, {Index: 2, Count: 2}, {Inner: 16, Count: 1}, {Count: 65}} {
		if got, err := AppendFrag(nil, f); !errors.Is(err, ErrMalformed) || len(got) != 0 {
			t.Errorf("AppendFrag(%+v) = % x, %v; want ErrMalformed", f, got, err)
		}
	}
}

func TestAckVectors(t *testing.T) {
	tests := []struct {
		desc     string
		a        Ack
		wire     []byte
		complete bool
	}{
		{"one of one", Ack{Seq: 9, Count: 1, Have: 1}, []byte{9, 1, 0x01}, true},
		{"none of one", Ack{Seq: 9, Count: 1}, []byte{9, 1, 0x00}, false},
		{"9 fragments, 4 missing", Ack{Seq: 200, Count: 9, Have: 0x1EF}, []byte{200, 9, 0xEF, 0x01}, false},
		{"all of 64", Ack{Seq: 0, Count: 64, Have: ^uint64(0)}, []byte{0, 64, 255, 255, 255, 255, 255, 255, 255, 255}, true},
	}
	for _, tc := range tests {
		got, err := AppendAck(nil, tc.a)
		if err != nil || !bytes.Equal(got, tc.wire) || len(got) != AckLen(tc.a.Count) {
			t.Errorf("%s: AppendAck = % x, %v; want % x", tc.desc, got, err, tc.wire)
		}
		a, err := ParseAck(tc.wire)
		if err != nil || a != tc.a || a.Complete() != tc.complete {
			t.Errorf("%s: ParseAck = %+v (complete %v), %v", tc.desc, a, a.Complete(), err)
		}
	}
}

func TestParseAckErrors(t *testing.T) {
	tests := []struct {
		desc string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"no bitmap", []byte{1, 1}, ErrShort},
		{"bitmap short for count 9", []byte{1, 9, 0xff}, ErrShort},
		{"count zero", []byte{1, 0, 0}, ErrMalformed},
		{"count 65", append([]byte{1, 65}, make([]byte, 9)...), ErrMalformed},
		{"trailing byte", []byte{1, 1, 1, 0}, ErrMalformed},
		{"bit beyond count", []byte{1, 3, 0x08}, ErrMalformed},
	}
	for _, tc := range tests {
		if _, err := ParseAck(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.desc, err, tc.want)
		}
	}
	if _, err := AppendAck(nil, Ack{Count: 2, Have: 4}); !errors.Is(err, ErrMalformed) {
		t.Errorf("AppendAck with a bit beyond count: %v", err)
	}
}

func TestLinkNoAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	bad := []byte{0x90, 1, 0, 1}
	n := testing.AllocsPerRun(100, func() {
		b, _ := AppendFrag(buf[:0], FragHeader{AckReq: true, Seq: 1, Count: 2})
		_, _, _ = ParseFrag(b)
		_, _, _ = ParseFrag(bad)
		b, _ = AppendAck(buf[:0], Ack{Seq: 1, Count: 40, Have: 1 << 39})
		_, _ = ParseAck(b)
		_, _ = ParseAck(bad)
	})
	if n != 0 {
		t.Fatalf("%v allocations per run, want 0", n)
	}
}

// FuzzParseFrag: no panic; anything accepted re-encodes to the same bytes.
func FuzzParseFrag(f *testing.F) {
	f.Add([]byte{0x80, 7, 0, 1, 0xAA})
	f.Add([]byte{0x01, 0xff, 63, 64})
	f.Add([]byte{0x70, 0, 0, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		h, body, err := ParseFrag(p)
		if err != nil {
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		again, err := AppendFrag(nil, h)
		if err != nil {
			t.Fatalf("accepted %+v but cannot encode it: %v", h, err)
		}
		if !bytes.Equal(append(again, body...), p) {
			t.Fatalf("round trip % x -> % x", p, again)
		}
	})
}

// FuzzParseAck: no panic; anything accepted re-encodes to the same bytes.
func FuzzParseAck(f *testing.F) {
	f.Add([]byte{9, 1, 1})
	f.Add([]byte{200, 9, 0xEF, 0x01})
	f.Add([]byte{1, 3, 0x08})
	f.Fuzz(func(t *testing.T, p []byte) {
		a, err := ParseAck(p)
		if err != nil {
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		again, err := AppendAck(nil, a)
		if err != nil || !bytes.Equal(again, p) {
			t.Fatalf("round trip % x -> % x, %v", p, again, err)
		}
	})
}

// TestAcksVectors: the version-2 Ack of several records (docs/frame-format.md
// test vectors); one record is the version-1 Ack byte for byte.
func TestAcksVectors(t *testing.T) {
	tests := []struct {
		desc string
		acks []Ack
		wire []byte
	}{
		{"one record: the version-1 Ack", []Ack{{Seq: 200, Count: 9, Have: 0x1EF}}, []byte{200, 9, 0xEF, 0x01}},
		{"three single-fragment packets, the polled one first", []Ack{{Seq: 12, Count: 1, Have: 1}, {Seq: 10, Count: 1, Have: 1}, {Seq: 11, Count: 1, Have: 1}},
			[]byte{12, 1, 0x01, 10, 1, 0x01, 11, 1, 0x01}},
		{"a whole packet and one of 9 fragments missing 4", []Ack{{Seq: 7, Count: 2, Have: 3}, {Seq: 6, Count: 9, Have: 0x1EF}},
			[]byte{7, 2, 0x03, 6, 9, 0xEF, 0x01}},
		{"More: data follows the Ack", []Ack{{Seq: 12, Count: 1, Have: 1, More: true}, {Seq: 11, Count: 1, Have: 1}},
			[]byte{12, 0x81, 0x01, 11, 1, 0x01}},
		{"More on a lone record", []Ack{{Seq: 5, Count: 9, Have: 0x1FF, More: true}}, []byte{5, 0x89, 0xFF, 0x01}},
	}
	for _, tc := range tests {
		got, err := AppendAcks(nil, tc.acks)
		if err != nil || !bytes.Equal(got, tc.wire) {
			t.Errorf("%s: AppendAcks = % x, %v; want % x", tc.desc, got, err, tc.wire)
		}
		back, err := ParseAcks(nil, tc.wire)
		if err != nil || len(back) != len(tc.acks) {
			t.Fatalf("%s: ParseAcks = %+v, %v", tc.desc, back, err)
		}
		for i := range back {
			if back[i] != tc.acks[i] {
				t.Errorf("%s: record %d = %+v, want %+v", tc.desc, i, back[i], tc.acks[i])
			}
		}
	}
}

// TestAcksFrameVector: a whole version-2 Ack frame of three records, node 2
// → node 1 (docs/frame-format.md, test vector 8).
func TestAcksFrameVector(t *testing.T) {
	p, err := AppendAcks(nil, []Ack{{Seq: 12, Count: 1, Have: 1}, {Seq: 10, Count: 1, Have: 1}, {Seq: 11, Count: 1, Have: 1}})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x00, 0x11, 0x23, 0x01, 0x02, 0x0c, 0x01, 0x01, 0x0a, 0x01, 0x01, 0x0b, 0x01, 0x01, 0x64, 0x7b, 0xf6, 0x10, 0x00}
	if got := AppendFrame(nil, Header{Kind: KindAck, Dst: 1, Src: 2, Version: Version2}, p); !bytes.Equal(got, want) {
		t.Errorf("wire % x, want % x", got, want)
	}
}

func TestParseAcksErrors(t *testing.T) {
	seventeen := make([]byte, 0, 51)
	for i := range 17 {
		seventeen = append(seventeen, byte(i), 1, 1)
	}
	long := make([]byte, 0, 70)
	for i := range 7 {
		long = append(long, byte(i), 64, 255, 255, 255, 255, 255, 255, 255, 255)
	}
	tests := []struct {
		desc string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"second record cut short", []byte{1, 1, 1, 2}, ErrShort},
		{"second bitmap cut short", []byte{1, 1, 1, 2, 9, 0xff}, ErrShort},
		{"count zero in the second", []byte{1, 1, 1, 2, 0, 0}, ErrMalformed},
		{"bit beyond count in the second", []byte{1, 1, 1, 2, 3, 0x08}, ErrMalformed},
		{"one seq twice", []byte{1, 1, 1, 1, 1, 1}, ErrMalformed},
		{"More on the second record", []byte{1, 1, 1, 2, 0x81, 1}, ErrMalformed},
		{"More with count zero", []byte{1, 0x80, 1}, ErrMalformed},
		{"17 records", seventeen, ErrMalformed},
		{"70 bytes", long, ErrMalformed},
	}
	for _, tc := range tests {
		got, err := ParseAcks(nil, tc.in)
		if !errors.Is(err, tc.want) || len(got) != 0 {
			t.Errorf("%s: %+v, err %v, want %v", tc.desc, got, err, tc.want)
		}
	}
	if _, err := AppendAcks(nil, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("AppendAcks of none: %v", err)
	}
	if _, err := AppendAcks(nil, []Ack{{Seq: 1, Count: 1, Have: 1}, {Seq: 1, Count: 2}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("AppendAcks with one seq twice: %v", err)
	}
	if _, err := AppendAcks(nil, []Ack{{Seq: 1, Count: 1, Have: 1}, {Seq: 2, Count: 2, More: true}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("AppendAcks with More on the second record: %v", err)
	}
	if _, err := AppendAck(nil, Ack{Seq: 1, Count: 1, More: true}); !errors.Is(err, ErrMalformed) {
		t.Errorf("AppendAck (version 1) with More: %v", err)
	}
	buf := make([]Ack, 0, MaxAckRecords)
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseAcks(buf[:0], []byte{1, 1, 1, 2, 9, 0xEF, 0x01}) }); n != 0 {
		t.Errorf("ParseAcks: %v allocations per run, want 0", n)
	}
}

// FuzzParseAcks: no panic; anything accepted is within the bounds and
// re-encodes to the same bytes; a single record parses as ParseAck does.
func FuzzParseAcks(f *testing.F) {
	f.Add([]byte{9, 1, 1})
	f.Add([]byte{12, 1, 0x01, 10, 1, 0x01, 11, 1, 0x01})
	f.Add([]byte{7, 2, 0x03, 6, 9, 0xEF, 0x01})
	f.Add([]byte{1, 1, 1, 1, 1, 1})
	f.Add([]byte{12, 0x81, 0x01, 11, 1, 0x01})
	f.Fuzz(func(t *testing.T, p []byte) {
		acks, err := ParseAcks(nil, p)
		if err != nil {
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error class: %v", err)
			}
			if len(acks) != 0 {
				t.Fatalf("error %v with %d records", err, len(acks))
			}
			return
		}
		if len(acks) < 1 || len(acks) > MaxAckRecords || len(p) > AcksMaxLen {
			t.Fatalf("%d records in %d bytes accepted", len(acks), len(p))
		}
		again, err := AppendAcks(nil, acks)
		if err != nil || !bytes.Equal(again, p) {
			t.Fatalf("round trip % x -> % x, %v", p, again, err)
		}
		if one, err := ParseAck(p); !acks[0].More && ((err == nil) != (len(acks) == 1) || err == nil && one != acks[0]) {
			t.Fatalf("ParseAck disagrees: %+v, %v; ParseAcks %+v", one, err, acks)
		}
	})
}
