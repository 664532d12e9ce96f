//go:build linux

package tap

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// newBenchTAP is newTAP for benchmarks.
func newBenchTAP(b *testing.B, name string) *Device {
	b.Helper()
	d, err := Create(Config{Name: name, MAC: tapMAC, Addrs: []netip.Prefix{netip.PrefixFrom(tapIP, 24)}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: d.Index(), State: netlink.NUD_PERMANENT,
		IP: peerIP.AsSlice(), HardwareAddr: peerMAC}); err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkSendRead: a socket sends one datagram, Read takes its frame.
func BenchmarkSendRead(b *testing.B) {
	d := newBenchTAP(b, "slt-bsr0")
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peerIP, peerPort)))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	payload, buf := make([]byte, 1000), make([]byte, 2048)
	b.ReportAllocs()
	b.SetBytes(1000)
	for b.Loop() {
		if _, err := c.Write(payload); err != nil {
			b.Fatal(err)
		}
		for { // skip the kernel's own IPv6 frames
			n, err := d.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, ok := udpToPeer(buf[:n]); ok {
				break
			}
		}
	}
}

// BenchmarkWrite injects one frame addressed to a closed port.
func BenchmarkWrite(b *testing.B) {
	d := newBenchTAP(b, "slt-bwr0")
	frame := udpFrame(tapMAC, peerMAC, peerIP, tapIP, 5555, 9, make([]byte, 1000))
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := d.Write(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetRate: the bridge retunes the shaper a few times a second.
func BenchmarkSetRate(b *testing.B) {
	d := newBenchTAP(b, "slt-bsetr0")
	s, err := NewShaper(d.Index(), ShaperConfig{Rate: 20_000})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	rate := uint64(20_000)
	for b.Loop() {
		rate ^= 1 // alternate 20000 and 20001
		if err := s.SetRate(rate); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewShaper: installing the whole tree as the daemon does (the
// credit, htb, pacer class, 128 bucket classes and queues, the kick class,
// the socket classifier and the flow hash) and removing it.
func BenchmarkNewShaper(b *testing.B) {
	d := newBenchTAP(b, "slt-bnew0")
	f, err := LoadSocketFilter()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.ReportAllocs()
	for b.Loop() {
		s, err := NewShaper(d.Index(), ShaperConfig{Rate: 20_000, Sockets: f})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
