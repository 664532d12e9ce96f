//go:build linux

package tap

import (
	"net"
	"os"
	"testing"
	"time"
)

// TestShaperForwardClass: with a ForwardFilter, a packet that no local
// socket sends (here the kernel's ARP requests for an unknown neighbour)
// goes to the forward class 1:82 and its head-drop queue of ForwardLimit
// packets, counted in Stats().Forward; a local UDP sender's packets do
// not. The TAP is never read, so the queue fills and drops.
func TestShaperForwardClass(t *testing.T) {
	f, err := LoadForwardFilter()
	if err != nil {
		t.Fatalf("LoadForwardFilter: %v", err)
	}
	defer f.Close()
	d := newTAP(t, "slt-fwd0", 16)
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/slt-fwd0/disable_ipv6", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	const limit = 5
	s, err := NewShaper(d.Index(), ShaperConfig{Rate: NoPacing, StallLimit: 1000 * time.Hour, Forward: f, ForwardLimit: limit})
	if err != nil {
		t.Fatalf("NewShaper: %v", err)
	}
	defer s.Close()
	if err := s.ForwardErr(); err != nil {
		t.Fatalf("forward class: %v", err)
	}
	// Local: datagrams to the permanent neighbour, from a socket.
	const local = 20
	if sent := sendFlows(t, 1, local, 0); sent != local {
		t.Fatalf("sent %d local datagrams, want %d", sent, local)
	}
	// No socket: each datagram to a new unknown neighbour makes the
	// kernel send an ARP request (arp_send: no socket).
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const arps = 3 * limit
	for i := range arps {
		if _, err := c.WriteToUDP([]byte("x"), &net.UDPAddr{IP: net.IPv4(192, 0, 2, byte(100+i)), Port: peerPort}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	fw := st.Forward
	if fw == nil {
		t.Fatal("Stats().Forward is nil with a forward filter")
	}
	t.Logf("forward queue: %+v; root: %+v", *fw, st.Root)
	if fw.Limit != limit {
		t.Errorf("forward limit %d, want %d", fw.Limit, limit)
	}
	if fw.Qlen > limit {
		t.Errorf("forward queue holds %d packets, over its limit %d", fw.Qlen, limit)
	}
	// Up to the credit's grant (and the ring) may have left the qdisc.
	if in := uint64(fw.Qlen) + fw.Packets + uint64(fw.Drops); in < arps {
		t.Errorf("forward class saw %d packets (queued %d, sent %d, dropped %d), want at least the %d ARP requests",
			in, fw.Qlen, fw.Packets, fw.Drops, arps)
	}
	if in := uint64(fw.Qlen) + fw.Packets + uint64(fw.Drops); in > arps+2 {
		t.Errorf("forward class saw %d packets, more than the %d ARP requests: local datagrams went there", in, arps)
	}
	if fw.Drops == 0 {
		t.Errorf("no forward drops with %d packets into a queue of %d that nobody reads", arps, limit)
	}
	if st.Root.Drops != fw.Drops {
		t.Errorf("root drops %d, want the forward queue's %d (local senders lose nothing)", st.Root.Drops, fw.Drops)
	}
}

func TestForwardLimit(t *testing.T) {
	for _, c := range []struct {
		budget uint64
		mtu    int
		want   uint32
	}{
		{0, 1500, DefaultForwardQueue / (1514 + ForwardOverhead)},
		{4 << 20, 1500, (4 << 20) / 2538},
		{1, 1500, minForwardLimit},
		{1 << 40, 1500, MaxFlowLimit},
		{1 << 20, 576, (1 << 20) / (590 + ForwardOverhead)},
	} {
		if got := ForwardLimit(c.budget, c.mtu); got != c.want {
			t.Errorf("ForwardLimit(%d, %d) = %d, want %d", c.budget, c.mtu, got, c.want)
		}
	}
}
