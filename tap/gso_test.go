//go:build linux

package tap

import (
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
// (16) never drops. The credit cuts such an skb into its segments (gsoCut),
// which then cost their length in bytes: a segment of at least packetUnit
// bytes costs at least one packet. (Smaller segments are the limit of the
// cut: 60 segments of 100 bytes let 21 packets into the ring in one grant,
// docs/backpressure.md.)
func TestShaperCutsUDPGSO(t *testing.T) {
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
