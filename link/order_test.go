package link

import (
	"encoding/binary"
	"testing"
	"time"
)

// TestInOrderUnderLoss: over a medium that loses 20% of the bursts (data
// and Acks), every packet node 1's host sends reaches node 2's host once,
// intact, and in the order it was sent, whether packets go in one frame
// or in fragments. Before the reorder buffer, a packet whose frame was
// retransmitted reached the host after the packets sent behind it.
func TestInOrderUnderLoss(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		frameMax int
		size     int
	}{
		{"one frame per packet", 0, 300},
		{"fragments", 64, 300},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := Config{FrameMax: tc.frameMax}
			m, n1, n2 := pair(t, 115200, cfg, cfg)
			m.lose = lossy(0.2)
			sent := map[uint32][]byte{}
			var frames [][]byte
			const n = 200
			for id := range uint32(n) {
				f := numbered(2, 1, id, tc.size)
				sent[id] = f
				frames = append(frames, f)
			}
			sendAll(m, n1, frames)
			m.run(time.Minute)
			st1, st2 := n1.e.Stats(m.Now()), n2.e.Stats(m.Now())
			if got := checkDelivered(t, n2, sent); got != n {
				t.Fatalf("%d of %d packets delivered; sender arq %+v, receiver arq %+v", got, n, st1.ARQ, st2.ARQ)
			}
			for i, f := range n2.host {
				if id := binary.BigEndian.Uint32(f[14:]); id != uint32(i) {
					t.Fatalf("packet %d reached the host in place %d (sender arq %+v, receiver arq %+v)", id, i, st1.ARQ, st2.ARQ)
				}
			}
			if st1.ARQ.Retransmissions == 0 || st2.ARQ.ReorderWaited == 0 {
				t.Fatalf("no packet waited for a retransmission: sender %+v, receiver %+v", st1.ARQ, st2.ARQ)
			}
			if st2.ARQ.ReorderHeld != 0 || st2.ARQ.ReorderHeldBytes != 0 {
				t.Fatalf("receiver still holds %d packets, %d bytes", st2.ARQ.ReorderHeld, st2.ARQ.ReorderHeldBytes)
			}
			t.Logf("sender %d retransmissions, receiver: %d waited, %d timeouts, %d skipped", st1.ARQ.Retransmissions,
				st2.ARQ.ReorderWaited, st2.ARQ.ReorderTimeouts, st2.ARQ.ReorderSkipped)
		})
	}
}
