//go:build linux

package main

// A blocking UDP sender that asks for segmentation offload itself
// (UDP_SEGMENT, as QUIC stacks do) must lose nothing on the host either
// (docs/backpressure.md, "UDP segmentation offload"; issue 11).

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/slided/slided/internal/lab"
)

// gsoSend is one UDP_SEGMENT send: segs segments of size bytes (the last
// one last bytes if last > 0).
type gsoSend struct{ segs, size, last int }

// gsoBlast sends each of sends as one UDP_SEGMENT datagram from c to dst:
// the kernel hands one skb to the qdisc, and the device (or the qdisc)
// cuts it into the segments. Every segment starts with flow and its own
// sequence number, so the receiver counts segments as datagrams. Sent
// counts segments.
func gsoBlast(t testing.TB, c *net.UDPConn, dst *net.UDPAddr, flow uint64, sends []gsoSend) lab.SendStats {
	t.Helper()
	var st lab.SendStats
	seq := uint64(0)
	buf := make([]byte, 0, 65507)
	start := time.Now()
	c.SetWriteDeadline(start.Add(120 * time.Second))
	defer c.SetWriteDeadline(time.Time{})
	for _, s := range sends {
		buf = buf[:0]
		for i := range s.segs {
			n := s.size
			if i == s.segs-1 && s.last > 0 {
				n = s.last
			}
			seg := make([]byte, n)
			binary.BigEndian.PutUint64(seg, flow)
			binary.BigEndian.PutUint64(seg[8:], seq+uint64(i))
			buf = append(buf, seg...)
		}
		if _, _, err := c.WriteMsgUDP(buf, gsoCmsg(uint16(s.size)), dst); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			t.Fatalf("UDP_SEGMENT send of %d bytes in %d segments: %v", len(buf), s.segs, err)
		}
		seq += uint64(s.segs)
		st.Sent += s.segs
		st.Bytes += int64(len(buf))
	}
	st.Elapsed = time.Since(start)
	return st
}

// gsoCmsg is the UDP_SEGMENT control message asking the kernel to cut the
// datagram into segments of size bytes.
func gsoCmsg(size uint16) []byte {
	b := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], size)
	return b
}

// gsoSends is what TestBackpressureUDPGSO and BenchmarkHostLoss/udp-gso
// send: UDP_SEGMENT datagrams of 1000-byte segments, 8 to 64 segments
// each, and some whose segments fit in one frame together (two segments,
// the second short, as a QUIC stack's last packet of a burst): 304
// segments.
func gsoSends() []gsoSend {
	var sends []gsoSend
	for _, n := range []int{8, 64, 16, 48, 32, 24, 40, 56} {
		sends = append(sends, gsoSend{segs: n, size: 1000}, gsoSend{segs: 2, size: 1000, last: 100})
	}
	return sends
}

// TestBackpressureUDPGSO: a blocking sender with the default buffer that
// asks for segmentation offload (gsoSends) loses nothing on the host, and
// every segment arrives. The credit cuts an skb longer than a frame into
// its segments and pays for the segments a grant let in before the next
// (docs/backpressure.md, "UDP segmentation offload"). On the old code
// node 1's ring dropped 265 of 304 segments and 47 were delivered.
func TestBackpressureUDPGSO(t *testing.T) {
	p, cs, before := blastPair(t)
	recvd := receiveAsync(t, cs[1], 15*time.Second, time.Now().Add(150*time.Second))
	ss := gsoBlast(t, cs[0], udpAddr(p.Addr[1], 6000), 1, gsoSends())
	checkDelivered(t, p, ss, <-recvd, 1, before)
}

// runUDPGSO (BenchmarkHostLoss/udp-gso) measures what TestBackpressureUDPGSO
// asserts, with the figures: a blocking sender with the default buffer
// that asks for segmentation offload itself (UDP_SEGMENT, as QUIC stacks
// do; gsoSends). Before the credit cut such skbs (docs/backpressure.md,
// "UDP segmentation offload") node 1's ring dropped 265 of 304 segments
// and 45 were delivered (29a2bc8).
func runUDPGSO(b *testing.B) {
	l, p := startPair(b, 115200, "192.0.2")
	if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-w", "15", p.Addr[1]); err != nil {
		b.Fatalf("ping: %v\n%s", err, out)
	}
	cs := udpPair(b, p, 6000, 0)
	receiveBuffer(b, cs[1])
	before := readHostLoss(b, p)
	recvd := make(chan *lab.RecvStats, 1)
	go func() {
		rs, err := lab.Receive(cs[1], 15*time.Second, time.Now().Add(150*time.Second))
		if err != nil {
			b.Error(err)
		}
		recvd <- rs
	}()
	ss := gsoBlast(b, cs[0], udpAddr(p.Addr[1], 6000), 1, gsoSends())
	rs := <-recvd
	var got, reordered int
	if f := rs.Flows[1]; f != nil {
		got, reordered = f.Received, f.Reordered
	}
	b.ReportMetric(float64(ss.Sent), "sent")
	b.ReportMetric(float64(got), "delivered")
	b.ReportMetric(float64(ss.Sent-got), "lost")
	b.ReportMetric(float64(reordered), "reordered")
	readHostLoss(b, p).report(b, before)
}
