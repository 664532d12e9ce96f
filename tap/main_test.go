//go:build linux

package tap

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/slided/slided/internal/netnstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Every test in this package runs inside a namespace of its own.
func TestMain(m *testing.M) { netnstest.Main(m) }

var (
	tapMAC  = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x53, 0x01}
	peerMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x53, 0x02}
	tapIP   = netip.MustParseAddr("192.0.2.1")
	peerIP  = netip.MustParseAddr("192.0.2.2")
)

const peerPort = 9 // discard: the peer never answers, it does not exist

// newTAP creates a device with tapIP/24 and a permanent neighbour entry for
// peerIP, and closes it at cleanup.
func newTAP(t testing.TB, name string, txqlen int) *Device {
	t.Helper()
	d, err := Create(Config{
		Name:       name,
		TxQueueLen: txqlen,
		MAC:        tapMAC,
		Addrs:      []netip.Prefix{netip.PrefixFrom(tapIP, 24)},
	})
	if err != nil {
		t.Fatalf("Create(%s): %v", name, err)
	}
	t.Cleanup(func() { d.Close() })
	err = netlink.NeighAdd(&netlink.Neigh{
		LinkIndex:    d.Index(),
		State:        netlink.NUD_PERMANENT,
		IP:           peerIP.AsSlice(),
		HardwareAddr: peerMAC,
	})
	if err != nil {
		t.Fatalf("add neighbour %v: %v", peerIP, err)
	}
	return d
}

func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func linkNames(t *testing.T) map[string]bool {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, l := range links {
		m[l.Attrs().Name] = true
	}
	return m
}

// udpToPeer parses frame as IPv4/UDP sent to peerIP:peerPort and returns
// the source port and payload length.
func udpToPeer(frame []byte) (srcPort uint16, n int, ok bool) {
	if len(frame) < 14+20+8 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return 0, 0, false
	}
	ip := frame[14:]
	ihl := int(ip[0]&0xf) * 4
	if ip[9] != unix.IPPROTO_UDP || netip.AddrFrom4([4]byte(ip[16:20])) != peerIP || len(ip) < ihl+8 {
		return 0, 0, false
	}
	udp := ip[ihl:]
	if binary.BigEndian.Uint16(udp[2:]) != peerPort {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(udp[0:]), len(udp) - 8, true
}

// reader reads d as fast as it can until d is closed and counts the UDP
// payload bytes sent to the peer, per source port.
type reader struct {
	perPort map[uint16]int
	frames  int
	done    chan error
}

// If s is not nil, the reader grants s's credit each time it has read a
// grant's worth and kicks the qdisc, as the daemon does.
func startReader(d *Device, s *Shaper) *reader {
	r := &reader{perPort: map[uint16]int{}, done: make(chan error, 1)}
	var k *Kicker
	if s != nil && s.Credit() {
		var err error
		if k, err = NewKicker(d.Index(), tapMAC); err != nil {
			r.done <- err
			return r
		}
	}
	go func() { // exits when d is closed
		if k != nil {
			defer k.Close()
		}
		buf := make([]byte, 65536)
		for {
			n, err := d.Read(buf)
			if err != nil {
				if errors.Is(err, os.ErrClosed) {
					err = nil
				}
				r.done <- err
				return
			}
			r.frames++
			if k != nil && r.frames%int(s.GrantSize()) == 0 {
				if err := s.Grant(); err != nil {
					r.done <- err
					return
				}
				if err := k.Kick(); err != nil {
					r.done <- err
					return
				}
			}
			if port, size, ok := udpToPeer(buf[:n]); ok {
				r.perPort[port] += size
			}
		}
	}()
	return r
}

// stop closes d and waits for the reader; its counts are then safe to read.
func (r *reader) stop(t *testing.T, d *Device) {
	t.Helper()
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("reader: %v", err)
		}
	case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("Close did not unblock Read")
	}
}

// blast sends 1000-byte datagrams from a non-blocking socket to the peer
// for at most dur or max datagrams, and counts what happened.
type blastResult struct {
	sent, eagain int
	elapsed      time.Duration
}

func blast(t *testing.T, dur time.Duration, max int) blastResult {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: peerPort, Addr: peerIP.As4()}); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 1000)
	var r blastResult
	start := time.Now()
	for i := 0; i < max && time.Since(start) < dur; i++ {
		_, err := unix.Write(fd, payload)
		switch {
		case err == nil:
			r.sent++
		case errors.Is(err, unix.EAGAIN):
			r.eagain++
			time.Sleep(time.Millisecond)
		default:
			t.Fatalf("send: %v", err)
		}
	}
	r.elapsed = time.Since(start)
	return r
}
