//go:build linux

package tap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestCreateAppliesConfig(t *testing.T) {
	v4 := netip.MustParsePrefix("192.0.2.1/24")
	v6 := netip.MustParsePrefix("fd00:5d::1/64")
	d, err := Create(Config{Name: "slt-cfg0", MTU: 1300, TxQueueLen: 16, MAC: tapMAC, Addrs: []netip.Prefix{v4, v6}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer d.Close()
	if d.Name() != "slt-cfg0" {
		t.Errorf("Name() = %q, want slt-cfg0", d.Name())
	}
	link, err := netlink.LinkByName("slt-cfg0")
	if err != nil {
		t.Fatalf("link after Create: %v", err)
	}
	a := link.Attrs()
	if a.Index != d.Index() {
		t.Errorf("Index() = %d, netlink says %d", d.Index(), a.Index)
	}
	if link.Type() != "tuntap" {
		t.Errorf("link type %q, want tuntap", link.Type())
	}
	if a.MTU != 1300 {
		t.Errorf("MTU %d, want 1300", a.MTU)
	}
	if a.TxQLen != 16 {
		t.Errorf("txqueuelen %d, want 16", a.TxQLen)
	}
	if !bytes.Equal(a.HardwareAddr, tapMAC) {
		t.Errorf("MAC %v, want %v", a.HardwareAddr, tapMAC)
	}
	if a.Flags&net.FlagUp == 0 {
		t.Errorf("link not up: %v", a.Flags)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []netip.Prefix{v4, v6} {
		found := false
		for _, got := range addrs {
			ip, _ := netip.AddrFromSlice(got.IP)
			ones, _ := got.Mask.Size()
			if netip.PrefixFrom(ip.Unmap(), ones) == want {
				found = true
			}
		}
		if !found {
			t.Errorf("address %v missing, have %v", want, addrs)
		}
	}

	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := netlink.LinkByName("slt-cfg0"); !errors.As(err, &netlink.LinkNotFoundError{}) {
		t.Errorf("link after Close: err = %v, want LinkNotFoundError", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	busy, err := Create(Config{Name: "slt-busy0"})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	tests := []struct {
		desc    string
		cfg     Config
		wantErr error // nil: any error
	}{
		{desc: "empty name", cfg: Config{}, wantErr: ErrBadName},
		{desc: "name too long", cfg: Config{Name: "slt-0123456789ab"}, wantErr: ErrBadName},
		{desc: "slash in name", cfg: Config{Name: "slt/0"}, wantErr: ErrBadName},
		{desc: "existing non-tap device", cfg: Config{Name: "lo"}, wantErr: unix.EINVAL},
		{desc: "tap in use by another fd", cfg: Config{Name: "slt-busy0"}, wantErr: unix.EBUSY},
		{desc: "MTU above the tun maximum", cfg: Config{Name: "slt-fail0", MTU: 1 << 20}},
		{desc: "multicast MAC", cfg: Config{Name: "slt-fail1", MAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}}},
		{desc: "short MAC", cfg: Config{Name: "slt-fail2", MAC: net.HardwareAddr{2, 0, 0}}},
		{desc: "duplicate address", cfg: Config{Name: "slt-fail3", Addrs: []netip.Prefix{
			netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("198.51.100.1/24")}}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			fds, links := fdCount(t), linkNames(t)
			d, err := Create(tc.cfg)
			if err == nil {
				d.Close()
				t.Fatalf("Create(%+v) succeeded, want an error", tc.cfg)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Create: %v, want errors.Is %v", err, tc.wantErr)
			}
			t.Logf("error: %v", err)
			if got := fdCount(t); got != fds {
				t.Errorf("open fds %d after failed Create, %d before", got, fds)
			}
			after := linkNames(t)
			for name := range after {
				if !links[name] {
					t.Errorf("failed Create left link %q behind", name)
				}
			}
		})
	}
}

func TestReadFrameSentBySocket(t *testing.T) {
	d := newTAP(t, "slt-rd0", 0)
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peerIP, peerPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := []byte("hello, slow link")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	local := c.LocalAddr().(*net.UDPAddr)

	if err := d.f.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil { // hang guard
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for i := 0; i < 100; i++ { // the kernel may send IPv6 chatter first
		n, err := d.Read(buf)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		f := buf[:n]
		port, size, ok := udpToPeer(f)
		if !ok {
			continue
		}
		if !bytes.Equal(f[0:6], peerMAC) || !bytes.Equal(f[6:12], tapMAC) {
			t.Errorf("frame dst %x src %x, want %v %v", f[0:6], f[6:12], peerMAC, tapMAC)
		}
		if int(port) != local.Port || size != len(msg) || !bytes.Equal(f[n-len(msg):], msg) {
			t.Errorf("datagram from port %d, %d bytes %q; want port %d, %q", port, size, f[n-size:], local.Port, msg)
		}
		return
	}
	t.Fatal("no UDP frame to the peer among 100 frames")
}

func TestWriteFrameReachesSocket(t *testing.T) {
	d := newTAP(t, "slt-wr0", 0)
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(tapIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
	msg := []byte("hello from the air")
	frame := udpFrame(tapMAC, peerMAC, peerIP, tapIP, 5555, port, msg)
	if n, err := d.Write(frame); err != nil || n != len(frame) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(frame))
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) // hang guard
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("socket read: %v", err)
	}
	if !bytes.Equal(buf[:n], msg) || from != netip.AddrPortFrom(peerIP, 5555) {
		t.Errorf("got %q from %v, want %q from %v:5555", buf[:n], from, msg, peerIP)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	d := newTAP(t, "slt-cl0", 0)
	r := startReader(d, nil)
	r.stop(t, d) // fails if Read does not return after Close
	if _, err := d.Read(make([]byte, 1514)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close: %v, want os.ErrClosed", err)
	}
	if _, err := d.Write(make([]byte, 60)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: %v, want os.ErrClosed", err)
	}
}

func TestFeaturesAndBackpressure(t *testing.T) {
	feat, err := Features()
	if err != nil {
		t.Fatalf("Features: %v", err)
	}
	if feat&unix.IFF_TAP == 0 || feat&unix.IFF_NO_PI == 0 {
		t.Errorf("Features() = %#x, lacks IFF_TAP or IFF_NO_PI", feat)
	}
	t.Logf("TUNGETFEATURES = %#x, IFF_BACKPRESSURE supported: %v", feat, feat&IFFBackpressure != 0)
	for _, ask := range []bool{false, true} {
		d, err := Create(Config{Name: "slt-feat0", Backpressure: ask})
		if err != nil {
			t.Fatal(err)
		}
		want := ask && feat&IFFBackpressure != 0
		if d.Backpressure() != want {
			t.Errorf("asked %v: Backpressure() = %v, want %v", ask, d.Backpressure(), want)
		}
		d.Close()
	}
}

// udpFrame builds an Ethernet/IPv4/UDP frame (UDP checksum 0: none).
func udpFrame(dst, src net.HardwareAddr, from, to netip.Addr, sport, dport uint16, payload []byte) []byte {
	f := make([]byte, 14+20+8+len(payload))
	copy(f[0:], dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	a, b := from.As4(), to.As4()
	copy(ip[12:], a[:])
	copy(ip[16:], b[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := f[34:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(udp[8:], payload)
	return f
}

// TestCreateLimitsGSO: the TAP takes one packet per skb (gso_max_segs 1),
// so that a TCP sender's GSO skbs cannot pass the credit qdisc as one
// packet and become dozens in the ring.
func TestCreateLimitsGSO(t *testing.T) {
	d := newTAP(t, "slt-gso0", 16)
	if err := d.GSOLimit(); err != nil {
		t.Fatalf("GSOLimit: %v", err)
	}
	link, err := netlink.LinkByIndex(d.Index())
	if err != nil {
		t.Fatal(err)
	}
	if got := link.Attrs().GSOMaxSegs; got != 1 {
		t.Errorf("gso_max_segs %d, want 1", got)
	}
}
