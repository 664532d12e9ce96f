package arq

import (
	"testing"
	"time"

	"github.com/slided/slided/framing"
)

// FuzzReceive feeds an ARQ a stream of frames cut from the fuzzer's bytes:
// each frame is a header byte (kind), a source byte, a length byte and that
// many payload bytes, at a time that advances by the next byte in
// milliseconds. Whatever arrives, the ARQ must not panic, must keep its
// reassembly within ReasmBytes and its reorder buffer within ReorderPackets
// and ReorderBytes, deliver nothing longer than MaxPacket, and free every
// partial and held packet, and every packet of its own (acknowledged or
// given up: no rider without a timer), once the time-outs have passed.
// Version-2 frames and grouped polls (GroupPolls) are in the mix.
func FuzzReceive(f *testing.F) {
	frag := func(flags, seq, idx, count byte, body ...byte) []byte {
		return append([]byte{flags, seq, idx, count}, body...)
	}
	seed := func(frames ...[]byte) []byte {
		var b []byte
		for _, fr := range frames {
			b = append(b, fr...)
		}
		return b
	}
	f.Add(seed([]byte{2, 1, 6}, frag(0x80, 1, 0, 2, 1, 2), []byte{5},
		[]byte{2, 1, 6}, frag(0x80, 1, 1, 2, 3, 4), []byte{5}))
	f.Add(seed([]byte{3, 1, 3, 1, 1, 1, 0}))
	f.Add(seed([]byte{1, 3, 4, 0xde, 0xad, 0xbe, 0xef, 9}))
	f.Add(seed([]byte{2, 4, 4}, frag(0x01, 9, 63, 64), []byte{200}))
	// Version 2 (0x10 in the kind byte): a rider, then a poll, then an
	// Ack of several records for the packets in flight.
	f.Add(seed([]byte{0x12, 4, 5}, frag(0x00, 3, 0, 1, 7), []byte{1},
		[]byte{0x12, 4, 5}, frag(0x80, 4, 0, 1, 8), []byte{1},
		[]byte{0x13, 1, 9, 0, 1, 1, 1, 1, 1, 2, 1, 1}))
	f.Fuzz(func(t *testing.T, in []byte) {
		c := testConfig(2)
		c.GroupPolls = true
		var delivered int
		a, err := New(c, sinkFuncs{grouped: true, deliver: func(h framing.Header, p []byte) {
			delivered++
			if len(p) > c.MaxPacket {
				t.Fatalf("delivered %d bytes, max packet %d", len(p), c.MaxPacket)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		// Give the ARQ a packet of its own in flight, so Acks have
		// something to match.
		if err := a.Send(t0, framing.Header{Kind: framing.KindData, Dst: 1}, pattern(60, 1)); err != nil {
			t.Fatal(err)
		}
		sends := 0
		now := t0
		for len(in) >= 3 {
			in0 := in[0]
			kind, src, n := framing.Kind(in[0]&0x0F), framing.NodeID(in[1]), int(in[2])
			in = in[3:]
			n = min(n, len(in))
			payload := in[:n]
			in = in[n:]
			dst := framing.NodeID(2)
			if src&1 == 1 {
				dst = framing.Broadcast
			}
			h := framing.Header{Kind: kind, Dst: dst, Src: src}
			if in0&0x10 != 0 {
				h.Version = framing.Version2 // Acks of several records
			}
			a.Receive(now, h, payload)
			// Packets of our own, grouped once the peer has answered:
			// riders, polls and Flush between the frames.
			if in0&0x20 != 0 && sends < 64 {
				sends++
				_ = a.Send(now, framing.Header{Kind: framing.KindData, Dst: 1}, pattern(int(in0), 2))
			}
			if in0&0x40 != 0 {
				a.Flush(now)
			}
			if st := a.Stats(); st.ReasmBytes > c.ReasmBytes || st.ReasmBytes < 0 {
				t.Fatalf("holding %d reassembly bytes, limit %d", st.ReasmBytes, c.ReasmBytes)
			}
			if st := a.Stats(); st.ReorderHeld > c.ReorderPackets || st.ReorderHeldBytes > c.ReorderBytes || st.ReorderHeld < 0 || st.ReorderHeldBytes < 0 {
				t.Fatalf("reorder buffer holds %d packets, %d bytes; limits %d, %d", st.ReorderHeld, st.ReorderHeldBytes, c.ReorderPackets, c.ReorderBytes)
			}
			if len(in) > 0 {
				now = now.Add(time.Duration(in[0]) * time.Millisecond)
				in = in[1:]
			}
			if d, ok := a.Deadline(); ok && !now.Before(d) {
				a.Poll(now)
			}
		}
		a.Flush(now)
		end := now.Add(c.ReasmTimeout + c.DupLifetime + time.Duration(c.MaxRetries+2)*c.AckTimeout)
		for range 2000 {
			d, ok := a.Deadline()
			if !ok || d.After(end) {
				break
			}
			a.Poll(d)
		}
		a.Poll(end)
		if st := a.Stats(); st.ReasmBytes != 0 || st.ReorderHeld != 0 || st.ReorderHeldBytes != 0 || st.HeldBytes != 0 {
			t.Fatalf("%d reassembly bytes, %d packets in the reorder buffer still held after the time-outs: %+v", st.ReasmBytes, st.ReorderHeld, st)
		}
	})
}

type sinkFuncs struct {
	deliver func(framing.Header, []byte)
	grouped bool
}

func (s sinkFuncs) Grouped(time.Time, framing.NodeID) bool { return s.grouped }

func (sinkFuncs) Transmit(time.Time, Frame) {}
func (s sinkFuncs) Deliver(_ time.Time, h framing.Header, p []byte) {
	if s.deliver != nil {
		s.deliver(h, p)
	}
}
