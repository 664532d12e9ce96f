package framing

import (
	"bytes"
	"errors"
	"testing"
)

const fuzzMaxPayload = 600

// FuzzDecoder feeds arbitrary bytes. The decoder must not panic; chunking
// must not change what it emits or counts; every candidate frame must be
// counted exactly once; every emitted frame must re-encode to bytes that a
// fresh decoder accepts as the identical frame.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte("garbage"), uint8(1))
	f.Add(AppendFrame(nil, Header{Kind: KindData, Dst: 2, Src: 1}, []byte{8, 0, 0x45, 0}), uint8(1))
	f.Add(cat([]byte("xx"), AppendFrame(nil, Header{Kind: KindEthernet, Dst: Broadcast, Src: 3}, seq(1, 300)), []byte{0, 5, 1}), uint8(7))
	f.Add(AppendFrame(nil, Header{Kind: KindData, Dst: 2, Src: 1}, make([]byte, fuzzMaxPayload+1)), uint8(200))
	f.Add(rawFrame(0x25, 1, 2, []byte{1}), uint8(3))
	f.Add(AppendFrame(nil, Header{Kind: KindIPHC, Dst: 2, Src: 1, Version: 2}, []byte{0x34, 1, 2}), uint8(2))
	f.Add(rawFrame(0x36, 1, 2, []byte{1}), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		stream := append(append([]byte(nil), data...), 0) // close the last run
		whole, st := collectFrames(NewDecoder(fuzzMaxPayload), stream, 0)
		pieces, st2 := collectFrames(NewDecoder(fuzzMaxPayload), stream, int(chunk%31)+1)
		if !sameFrames(whole, pieces) || st != st2 {
			t.Fatalf("chunking changed the result: %+v vs %+v", st, st2)
		}
		if st.Frames != uint64(len(whole)) {
			t.Fatalf("Frames %d, emitted %d", st.Frames, len(whole))
		}
		// Candidates: non-empty runs after the first 0x00 and closed by one.
		runs := 0
		if i := bytes.IndexByte(stream, 0); i < len(stream)-1 {
			for _, r := range bytes.Split(stream[i+1:len(stream)-1], []byte{0}) {
				if len(r) > 0 {
					runs++
				}
			}
		}
		if sum := st.Frames + st.BadCRC + st.BadCOBS + st.TooLong + st.Short + st.BadVersion + st.BadAddr; sum != uint64(runs) {
			t.Fatalf("%d candidate runs, counted %d: %+v", runs, sum, st)
		}
		if st.GarbageBytes > uint64(len(stream)) {
			t.Fatalf("GarbageBytes %d > %d bytes fed", st.GarbageBytes, len(stream))
		}
		for _, g := range whole {
			if len(g.payload) > fuzzMaxPayload || !validAddr(g.h) || g.h.Kind > 15 {
				t.Fatalf("emitted an invalid frame %+v (%d bytes)", g.h, len(g.payload))
			}
			again, st := collectFrames(NewDecoder(fuzzMaxPayload), AppendFrame(nil, g.h, g.payload), 0)
			if !sameFrames(again, []gotFrame{g}) || st != (DecoderStats{Frames: 1}) {
				t.Fatalf("re-encoded frame %+v decodes to %+v, %+v", g.h, again, st)
			}
		}
	})
}

// FuzzRoundTrip encodes a frame and decodes it again.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(0), uint8(2), uint8(1), []byte{8, 0})
	f.Add(uint8(1), uint8(0xFF), uint8(3), seq(1, 254))
	f.Add(uint8(7), uint8(0), uint8(3), []byte{})
	f.Add(uint8(0x1F), uint8(5), uint8(0xFF), make([]byte, 300))
	f.Fuzz(func(t *testing.T, kind, dst, src uint8, payload []byte) {
		h := Header{Kind: Kind(kind), Dst: NodeID(dst), Src: NodeID(src)}
		wire := AppendFrame([]byte{0xEE}, h, payload)
		if wire[0] != 0xEE {
			t.Fatal("prefix clobbered")
		}
		wire = wire[1:]
		if len(wire) > MaxEncodedLen(len(payload)) {
			t.Fatalf("%d bytes > MaxEncodedLen %d", len(wire), MaxEncodedLen(len(payload)))
		}
		if wire[0] != 0 || wire[len(wire)-1] != 0 || bytes.IndexByte(wire[1:len(wire)-1], 0) >= 0 {
			t.Fatalf("0x00 only at both ends expected")
		}
		inner, err := refCOBSDecode(wire[1 : len(wire)-1])
		if err != nil || len(inner) != len(payload)+Overhead || !bytes.Equal(inner[HeaderLen:len(inner)-CRCLen], payload) {
			t.Fatalf("reference decode: %v", err)
		}
		got, st := collectFrames(NewDecoder(len(payload)), wire, 1)
		h.Kind &= 0x0F
		if !validAddr(h) {
			if len(got) != 0 || st != (DecoderStats{BadAddr: 1, GarbageBytes: uint64(len(wire) - 2)}) {
				t.Fatalf("bad address %+v: emitted %d, stats %+v", h, len(got), st)
			}
			return
		}
		if !sameFrames(got, []gotFrame{{h, payload}}) || st != (DecoderStats{Frames: 1}) {
			t.Fatalf("round trip of %+v: %+v, stats %+v", h, got, st)
		}
		if len(payload) > 0 {
			if _, st := collectFrames(NewDecoder(len(payload)-1), wire, 0); st.TooLong != 1 || st.Frames != 0 {
				t.Fatalf("one byte over the limit: %+v", st)
			}
		}
	})
}

// FuzzCompact checks Compact -> AppendEthernet, and the whole path through
// the wire, against the input frame.
func FuzzCompact(f *testing.F) {
	f.Add(unhex(f, "ffffffffffff02534c44000108060001"), uint8(1))
	f.Add(unhex(f, "02534c44000702534c4400010800"), uint8(1))
	f.Add(unhex(f, "333300000001aabbccddeeff86dd"), uint8(3))
	f.Add(unhex(f, "aabbccddeeff02534c4400010800"), uint8(1))
	f.Add(unhex(f, "ffff"), uint8(1))
	f.Fuzz(func(t *testing.T, eth []byte, self uint8) {
		h, p, err := Compact(eth, NodeID(self))
		switch {
		case self == 0 || self == 0xFF:
			if !errors.Is(err, ErrBadAddr) {
				t.Fatalf("self %d: err %v", self, err)
			}
			return
		case len(eth) < EthHeaderLen:
			if !errors.Is(err, ErrShort) {
				t.Fatalf("%d bytes: err %v", len(eth), err)
			}
			return
		}
		_, node := NodeOf(eth[:6])
		unroutable := eth[0]&1 == 0 && !node
		if unroutable != errors.Is(err, ErrNoRoute) || (err != nil && !unroutable) {
			t.Fatalf("dst %x: err %v", eth[:6], err)
		}
		if err != nil {
			return
		}
		if h.Src != NodeID(self) || (h.Kind != KindData && h.Kind != KindEthernet) {
			t.Fatalf("header %+v", h)
		}
		back, err := AppendEthernet(nil, h, p)
		if err != nil || !bytes.Equal(back, eth) {
			t.Fatalf("AppendEthernet: %v\n got % x\nwant % x", err, back, eth)
		}
		got, _ := collectFrames(NewDecoder(len(p)), AppendFrame(nil, h, p), 0)
		if len(got) != 1 {
			t.Fatalf("frame %+v lost on the wire", h)
		}
		back, err = AppendEthernet(nil, got[0].h, got[0].payload)
		if err != nil || !bytes.Equal(back, eth) {
			t.Fatalf("through the wire: %v", err)
		}
	})
}
