//go:build linux

package tap

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	tapIP6  = netip.MustParseAddr("fd00:5d::1")
	peerIP6 = netip.MustParseAddr("fd00:5d::2")
)

// TestShaperSocketsOwnBuckets: with the socket classifier, each socket
// sending to one address and port gets a flow bucket of its own, and all
// its packets go there. With the flow hash alone sockets shared buckets by
// chance (100 UDP sockets in 64 buckets, or in 128: 71 buckets, one
// holding four sockets' packets), and the sockets of a shared bucket left
// it one after the other (BenchmarkHostLoss/sockets100: Jain over a window
// 0.48–0.53). A TCP listener's SYN-ACKs, sent from request sockets, take
// no turn: 128 sockets, half before them and half after, still get 128
// buckets (with the SYN-ACKs taking turns, the last two sockets shared the
// first two's buckets). The TAP is never
// read, so the queues hold what was sent, but for the credit's first
// grant.
func TestShaperSocketsOwnBuckets(t *testing.T) {
	for _, c := range []struct {
		name    string
		v6      bool
		synacks int // SYNs to a listener on the TAP's address before the sockets send
		sockets int
	}{
		{name: "udp4", sockets: 100},
		{name: "udp6", v6: true, sockets: 100},
		{name: "synacks", synacks: 2, sockets: flowBuckets},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := LoadSocketFilter()
			if err != nil {
				t.Fatalf("LoadSocketFilter: %v", err)
			}
			defer f.Close()
			const name = "slt-sock0"
			d := newTAP(t, name, 16)
			if c.v6 {
				addIPv6(t, d, name)
			} else if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0); err != nil {
				t.Fatal(err)
			}
			s, err := NewShaper(d.Index(), ShaperConfig{Rate: NoPacing, StallLimit: 1000 * time.Hour, Sockets: f})
			if err != nil {
				t.Fatalf("NewShaper: %v", err)
			}
			defer s.Close()
			if err := s.SocketsErr(); err != nil || !s.SocketBuckets() {
				t.Fatalf("socket classifier not attached: %v", err)
			}
			const each = 5
			fds := make([]int, c.sockets)
			for i := range fds {
				fds[i] = udpSocket(t, c.v6)
			}
			send := func(fds []int) {
				for _, fd := range fds {
					if _, err := unix.Write(fd, make([]byte, 100)); err != nil {
						t.Fatalf("send: %v", err)
					}
				}
			}
			// With SYN-ACKs, half the sockets take their turns before
			// them and half after: had the SYN-ACKs taken turns, the
			// last sockets' would come round to the first ones' buckets.
			half := len(fds) / 2
			if c.synacks > 0 {
				send(fds[:half])
				synAcks(t, d, c.synacks)
				send(fds[half:])
			} else {
				send(fds)
			}
			// The rest in rounds, so that the few packets the credit lets
			// through at first leave no socket without a packet queued.
			for range each - 1 {
				send(fds)
			}
			used, most, queued := bucketQueues(t, d.Index())
			t.Logf("%d sockets × %d datagrams: %d buckets hold packets, the fullest %d, %d queued", c.sockets, each, used, most, queued)
			// The kernel's own packets (IPv6's MLD and router
			// solicitations from their sockets, the SYN-ACKs through the
			// hash) may add a packet to a bucket or hold one of their own.
			if used < c.sockets || most > each+c.synacks {
				t.Errorf("%d sockets in %d buckets, the fullest holding %d packets: want a bucket each, at most %d packets in one",
					c.sockets, used, most, each+c.synacks)
			}
			if queued < c.sockets*each-2*int(s.GrantSize()+1) {
				t.Errorf("%d packets queued of %d sent: more left than the first grant", queued, c.sockets*each)
			}
		})
	}
}

// udpSocket is a non-blocking UDP socket connected to the peer's discard
// port, closed at cleanup.
func udpSocket(t *testing.T, v6 bool) int {
	t.Helper()
	family := unix.AF_INET
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: peerPort, Addr: peerIP.As4()}
	if v6 {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: peerPort, Addr: peerIP6.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Connect(fd, sa); err != nil {
		t.Fatal(err)
	}
	return fd
}

// addIPv6 gives the TAP tapIP6/64 (no duplicate address detection, so it
// can send at once) and a permanent neighbour entry for peerIP6.
func addIPv6(t *testing.T, d *Device, name string) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/accept_dad", []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	link, err := netlink.LinkByIndex(d.Index())
	if err != nil {
		t.Fatal(err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: tapIP6.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
	if err := netlink.AddrAdd(link, addr); err != nil {
		t.Fatalf("add %v: %v", tapIP6, err)
	}
	if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: d.Index(), State: netlink.NUD_PERMANENT,
		IP: peerIP6.AsSlice(), HardwareAddr: peerMAC}); err != nil {
		t.Fatalf("add neighbour %v: %v", peerIP6, err)
	}
}

// synAcks makes the kernel send n SYN-ACKs through the TAP: a TCP listener
// on the TAP's address, and n SYNs from the peer written into the TAP (as
// if received). It waits until the listener holds the n requests.
func synAcks(t *testing.T, d *Device, n int) {
	t.Helper()
	const port = 7070
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(tapIP, port).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	_, _, before := bucketQueues(t, d.Index())
	for i := range n {
		if _, err := d.Write(synFrame(uint16(40000+i), port)); err != nil {
			t.Fatalf("write SYN: %v", err)
		}
	}
	// The SYN-ACKs leave from the SYNs' softirq, before Write returns on
	// a TAP (netif_rx then the backlog): look for them in the qdisc.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, queued := bucketQueues(t, d.Index())
		if queued >= n+before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d SYN-ACKs in the qdisc after 5 s", queued-before, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// synFrame is an Ethernet frame with a TCP SYN from the peer's sport to
// the TAP's dport.
func synFrame(sport, dport uint16) []byte {
	f := make([]byte, 14+20+20)
	copy(f[0:6], tapMAC)
	copy(f[6:12], peerMAC)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IP)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(ip[2:], 40)
	src, dst := peerIP.As4(), tapIP.As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], ^onesSum(0, ip))
	tcp := f[34:54]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	tcp[12], tcp[13] = 5<<4, 0x02 // data offset 5, SYN
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	pseudo := make([]byte, 12)
	copy(pseudo[0:4], src[:])
	copy(pseudo[4:8], dst[:])
	pseudo[9] = unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(pseudo[10:], 20)
	binary.BigEndian.PutUint16(tcp[16:], ^onesSum(onesSum(0, pseudo), tcp))
	return f
}

// onesSum adds b's 16-bit words to s in ones' complement.
func onesSum(s uint16, b []byte) uint16 {
	sum := uint32(s)
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// bucketQueues returns how many flow buckets on ifindex hold packets, the
// most one holds, and the packets they hold in all.
func bucketQueues(t *testing.T, ifindex int) (used, most, total int) {
	t.Helper()
	qs, err := listQdiscs(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		a := q.Attrs()
		major := a.Handle >> 16
		if major <= leafMajor || major > leafMajor+flowBuckets || a.Statistics == nil {
			continue
		}
		if n := int(queueStats(a.Statistics).Qlen); n > 0 {
			used++
			most = max(most, n)
			total += n
		}
	}
	return used, most, total
}

// TestLoadSocketFilterWhileSignalled: the verifier gives up with EAGAIN
// when a signal is pending for the loading thread, and the Go runtime
// signals its threads (SIGURG, to preempt goroutines). Loading must try
// again: a CI run once failed TestShaperManyFlowsKeepFlowing on it
// ("resource temporarily unavailable (verifier: processed 1 insns").
// Loads the classifier on one locked thread while another goroutine sends
// that thread SIGURG every 500 µs or so (the runtime takes a spurious one
// in its stride); before the retry, a good part of the loads failed.
func TestLoadSocketFilterWhileSignalled(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := unix.Getpid(), unix.Gettid()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // ends when stop closes
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = unix.Tgkill(pid, tid, unix.SIGURG)
			time.Sleep(500 * time.Microsecond) // often, not always: a load has gaps to succeed in
		}
	}()
	defer func() {
		close(stop)
		<-done
	}()
	failed := 0
	var last error
	const loads = 100
	for range loads {
		f, err := LoadSocketFilter()
		if err != nil {
			failed++
			last = err
			continue
		}
		f.Close()
	}
	if failed > 0 {
		t.Errorf("%d of %d loads failed while signalled; the last: %v", failed, loads, last)
	}
}
