package arq

import (
	"testing"
	"time"

	"github.com/slided/slided/framing"
)

// flags records the kind and flags of every frame transmitted.
type flags struct{ got []Frame }

func (f *flags) Transmit(_ time.Time, fr Frame) {
	fr.Payload = nil
	f.got = append(f.got, fr)
}
func (f *flags) Deliver(time.Time, framing.Header, []byte) {}

// TestFrameFlags: the ARQ says which frame asks for an Ack (Poll) and which
// completes a packet's first transmission (Last), so that its driver never
// parses the fragment header.
func TestFrameFlags(t *testing.T) {
	type want struct {
		kind       framing.Kind
		poll, last bool
	}
	for _, tc := range []struct {
		name string
		dst  framing.NodeID
		n    int
		want []want
	}{
		{"unicast, 3 fragments", 2, 60, []want{
			{framing.KindFragment, false, false}, {framing.KindFragment, false, false}, {framing.KindFragment, true, true}}},
		{"broadcast, plain", framing.Broadcast, 10, []want{{framing.KindData, false, true}}},
		{"broadcast, 2 fragments", framing.Broadcast, 30, []want{
			{framing.KindFragment, false, false}, {framing.KindFragment, false, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &flags{}
			a, err := New(testConfig(1), rec)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: tc.dst}, pattern(tc.n, 1)); err != nil {
				t.Fatal(err)
			}
			if len(rec.got) != len(tc.want) {
				t.Fatalf("%d frames, want %d", len(rec.got), len(tc.want))
			}
			for i, w := range tc.want {
				g := rec.got[i]
				if g.Header.Kind != w.kind || g.Poll != w.poll || g.Last != w.last {
					t.Errorf("frame %d: kind %v poll %v last %v, want %v %v %v", i, g.Header.Kind, g.Poll, g.Last, w.kind, w.poll, w.last)
				}
			}
		})
	}
	t.Run("retransmission and ack", func(t *testing.T) {
		rec := &flags{}
		a, _ := New(testConfig(1), rec)
		b := newNode(t, testConfig(2))
		if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: 2}, pattern(10, 1)); err != nil {
			t.Fatal(err)
		}
		d, ok := a.Deadline()
		if !ok {
			t.Fatal("no ack timer")
		}
		rec.got = nil
		a.Poll(d)
		if len(rec.got) != 1 || !rec.got[0].Poll || rec.got[0].Last {
			t.Fatalf("retransmission: %+v, want one poll, not last", rec.got)
		}
		b.Receive(d, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 1}, func() []byte {
			p, _ := framing.AppendFrag(nil, framing.FragHeader{AckReq: true, First: true, Inner: framing.KindData, Seq: 0, Count: 1})
			return append(p, pattern(10, 1)...)
		}())
		for _, f := range b.rec.take() {
			if f.h.Kind != framing.KindAck {
				t.Errorf("receiver sent %v, want an Ack", f.h.Kind)
			}
		}
	})
}
