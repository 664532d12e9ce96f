//go:build linux

package tap

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sendGSO sends n UDP_SEGMENT datagrams of segs segments of size bytes
// each to the peer from one non-blocking socket, and returns how many the
// socket took.
func sendGSO(t testing.TB, n, segs, size int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT, size); err != nil {
		t.Fatalf("UDP_SEGMENT: %v", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: peerPort, Addr: peerIP.As4()}); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, segs*size)
	sent := 0
	for range n {
		if _, err := unix.Write(fd, payload); err != nil {
			if err == unix.EAGAIN {
				continue
			}
			t.Fatalf("UDP_SEGMENT send of %d bytes: %v", len(payload), err)
		}
		sent++
	}
	return sent
}

// BenchmarkShaperUDPGSO measures the known gap of the credit with a
// socket that asks for segmentation offload itself (UDP_SEGMENT): it hands
// the qdisc one skb that becomes up to 64 packets after it, so one grant
// of 2 packets and the kick lets 3 such skbs, not 3 packets, into the ring
// (docs/backpressure.md, "UDP segmentation offload: a known gap"). Nobody
// reads the TAP; per case it reports the packets the qdisc let into the
// ring (segments count one each) against the grant and its kick, and the
// ring's drops. The goal, not met: ring_packets at most grant+1 and
// tap_tx_dropped 0. On 29a2bc8, 1000x40: 120 packets, 104 dropped.
//
//	go test -count=1 -run '^$' -bench ShaperUDPGSO -benchtime 1x ./tap
func BenchmarkShaperUDPGSO(b *testing.B) {
	for _, c := range []struct {
		name       string
		segs, size int
	}{
		{"1000x40", 40, 1000},
		{"1472x20", 20, 1472}, // full frames, as QUIC stacks send
		{"1000x64", 64, 1000},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := range b.N {
				d, s, _ := creditRig(b, fmt.Sprintf("slt-gso%d", i), 16)
				sent := sendGSO(b, 10, c.segs, c.size)
				time.Sleep(500 * time.Millisecond) // what the kernel releases meanwhile
				ls, err := d.LinkStats()
				if err != nil {
					b.Fatal(err)
				}
				qs, err := s.Stats()
				if err != nil {
					b.Fatal(err)
				}
				b.Logf("sent %d skbs of %d segments; qdisc %+v; TAP tx_dropped %d", sent, c.segs, qs.Root, ls.TxDropped)
				b.ReportMetric(float64(qs.Root.Packets), "ring_packets")
				b.ReportMetric(float64(s.GrantSize()+1), "grant+kick")
				b.ReportMetric(float64(ls.TxDropped), "tap_tx_dropped")
				b.ReportMetric(float64(qs.Root.Drops), "qdisc_drops")
			}
		})
	}
}
