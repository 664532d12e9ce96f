//go:build linux

package tap

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sendGSO sends n UDP_SEGMENT datagrams of segs segments of size bytes
// each to the peer from one non-blocking socket, and returns how many the
// socket took.
func sendGSO(t *testing.T, n, segs, size int) int {
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

// TestShaperCutsUDPGSO: a socket that asks for segmentation offload itself
// (UDP_SEGMENT) hands the qdisc one skb that becomes up to 64 packets after
// it. Nobody reads the TAP: the credit must let no more into the ring than
// about one grant and its kick, counted in packets, not skbs, so the ring
// (16) never drops.
//
// Not solved (docs/backpressure.md, "UDP segmentation offload"): one grant
// of 2 packets and the kick lets 3 GSO skbs into the ring: 120 packets of
// 40-segment skbs, of which the ring (16) drops 104. The test is skipped unless SLIDED_KNOWN_GAPS is set; it is the
// failing-first test of whatever fixes it. (With the experiment of commit
// 8604201, which cuts such skbs at the credit, it passes, but the segments
// cost their length in bytes and the link stalls on the leak.)
func TestShaperCutsUDPGSO(t *testing.T) {
	if os.Getenv("SLIDED_KNOWN_GAPS") == "" {
		t.Skip("known gap: a UDP_SEGMENT skb passes the credit as one packet (docs/backpressure.md); set SLIDED_KNOWN_GAPS=1 to run")
	}
	for _, c := range []struct {
		name       string
		segs, size int
	}{
		{"1000x40", 40, 1000},
		{"1472x20", 20, 1472}, // full frames, as QUIC stacks send
		{"1000x64", 64, 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, s, _ := creditRig(t, "slt-gso0", 16)
			sent := sendGSO(t, 10, c.segs, c.size)
			time.Sleep(500 * time.Millisecond) // what the kernel releases meanwhile; no assertion on time
			ls, err := d.LinkStats()
			if err != nil {
				t.Fatal(err)
			}
			qs, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("sent %d skbs of %d segments; qdisc %+v; TAP tx_dropped %d", sent, c.segs, qs.Root, ls.TxDropped)
			if ls.TxDropped != 0 || qs.Root.Drops != 0 {
				t.Errorf("dropped: ring %d, qdisc %d", ls.TxDropped, qs.Root.Drops)
			}
			// The qdisc counts a GSO skb it passes whole as its
			// segments: what it sent is what went into the ring.
			if max := uint64(s.GrantSize() + 1); qs.Root.Packets > max {
				t.Errorf("the ring got %d packets from one grant of %d and its kick", qs.Root.Packets, s.GrantSize())
			}
		})
	}
}
