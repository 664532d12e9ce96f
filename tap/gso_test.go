//go:build linux

package tap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
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

// BenchmarkShaperUDPGSO measures what one grant lets into the ring from a
// socket that asks for segmentation offload itself (UDP_SEGMENT): the
// kernel hands the qdisc one skb that becomes up to 128 packets after it.
// The credit cuts an skb longer than a frame into its segments, each
// costing its bytes, so a grant lets in as many segments as its bytes
// hold (docs/backpressure.md, "UDP segmentation offload"). Nobody reads
// the TAP; per case it reports the packets the qdisc let into the ring
// (segments count one each) against the grant and its kick, and the
// ring's drops. Full-size and 1000-byte segments stay within the ring
// (1000x40: 4 packets, 0 dropped; before the cut 120 and 104); small
// segments are the known remainder: 100-byte ones, cut (100x100) or in an
// skb no longer than a frame, which passes whole (100x8), still fill more
// than the ring in one grant.
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
		{"100x100", 100, 100},
		{"100x8", 8, 100}, // 842 bytes: passes the credit whole, 8 packets after it
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

// gsoSender sends from one blocking socket (default send buffer) with
// UDP_SEGMENT of size bytes: one send of segs segments for each entry of
// sends, each segment starting with its sequence number (uint32). It
// returns the number of segments it sent; a send of more segments than the
// kernel allows (UDP_MAX_SEGMENTS, 64 before Linux 6.13) is retried as two.
func gsoSender(t testing.TB, sends []int, size int) (total int, err error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT, size); err != nil {
		return 0, fmt.Errorf("UDP_SEGMENT: %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: peerPort, Addr: peerIP.As4()}); err != nil {
		return 0, err
	}
	seq := uint32(0)
	var send func(segs int) error
	send = func(segs int) error {
		payload := make([]byte, segs*size)
		for i := range segs {
			binary.BigEndian.PutUint32(payload[i*size:], seq+uint32(i))
		}
		if _, err := unix.Write(fd, payload); err != nil {
			if err == unix.EINVAL && segs > 64 {
				t.Logf("a send of %d segments: EINVAL (UDP_MAX_SEGMENTS 64 here); sending it as two", segs)
				if err := send(segs / 2); err != nil {
					return err
				}
				return send(segs - segs/2)
			}
			return fmt.Errorf("UDP_SEGMENT send of %d segments: %w", segs, err)
		}
		seq += uint32(segs)
		return nil
	}
	for _, segs := range sends {
		if err := send(segs); err != nil {
			return int(seq), err
		}
	}
	return int(seq), nil
}

// TestCreditUDPGSO: a blocking sender that asks the kernel to segment its
// datagrams (UDP_SEGMENT, as QUIC stacks do) hands the qdisc skbs that
// become up to UDP_MAX_SEGMENTS packets each after it, in the TAP's ring.
// Read as the daemon reads (the credit's LazyShaper and CreditTAP, read
// ahead as far as the bridge does, each packet taken one at a time), the
// ring must drop nothing and every segment must arrive, in order
// (docs/backpressure.md, "UDP segmentation offload").
func TestCreditUDPGSO(t *testing.T) {
	for _, size := range []int{1472, 1000, 500} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { testCreditUDPGSO(t, size) })
	}
}

func testCreditUDPGSO(t *testing.T, size int) {
	const name = "slt-gsoc0"
	d := newTAP(t, name, 16)
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	k, err := NewKicker(d.Index(), tapMAC)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	s := NewLazyShaper(d, LazyShaperConfig{RingLen: 16, MTU: 1500, StallLimit: 1000 * time.Hour, Kick: k}, zerolog.Nop())
	if err := s.SetRate(10_000); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := CreditTAP{Device: d, Shaper: s}
	if !c.GrantOnTake() {
		t.Fatal("GrantOnTake: false")
	}
	readAhead := func() int { return 16 } // the bridge's bound: its RingLen
	if ra, ok := any(c).(interface{ ReadAhead() int }); ok {
		readAhead = ra.ReadAhead
	}
	before, err := d.LinkStats()
	if err != nil {
		t.Fatal(err)
	}

	sends := []int{8, 64, 2, 128, 40, 1, 64, 128, 16, 2, 64, 128, 32}
	want := 0
	for i, n := range sends {
		n = min(n, 65507/size) // a datagram holds at most 64 KiB
		sends[i] = n
		want += n
	}
	type result struct {
		n   int
		err error
	}
	sent := make(chan result, 1)
	go func() {
		n, err := gsoSender(t, sends, size)
		sent <- result{n, err}
	}()

	// The reader reads ahead while fewer than readAhead packets wait to be
	// taken, as the bridge's reader does; a stall ends the test through
	// the read deadline, it is not a measurement.
	if err := d.f.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	type frame struct {
		seq uint32
		ok  bool
	}
	var (
		mu     sync.Mutex
		queue  []frame
		rerr   error
		wakeup = make(chan struct{}, 1)
	)
	go func() {
		buf := make([]byte, 2048)
		for {
			mu.Lock()
			full := len(queue) >= readAhead()
			mu.Unlock()
			if full {
				time.Sleep(100 * time.Microsecond)
				continue
			}
			n, err := c.Read(buf)
			var f frame
			if err == nil {
				if _, l, ok := udpToPeer(buf[:n]); ok && l >= 4 {
					f = frame{seq: binary.BigEndian.Uint32(buf[14+20+8:]), ok: true}
				}
			}
			mu.Lock()
			if err != nil {
				rerr = err
			} else {
				queue = append(queue, f)
			}
			mu.Unlock()
			select {
			case wakeup <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	got, other, outOfOrder := 0, 0, 0
	for got < want {
		mu.Lock()
		if len(queue) == 0 {
			err := rerr
			mu.Unlock()
			if err != nil {
				break
			}
			<-wakeup
			continue
		}
		f := queue[0]
		queue = queue[1:]
		mu.Unlock()
		c.Taken() // the engine takes one packet: what grants the next ones
		if !f.ok {
			other++
			continue
		}
		if f.seq != uint32(got) {
			outOfOrder++
		}
		got++
		// The link is slower than the host: a 542-byte frame is 38 ms at
		// 115200 bit/s. The bound on the read-ahead counts what was read,
		// so a reader that falls behind by more than a grant while the
		// engine takes (a starved CPU) can still overfill the ring; taken
		// a thousand times faster than the link, a loaded machine saw it.
		time.Sleep(2 * time.Millisecond)
	}
	after, err := d.LinkStats()
	if err != nil {
		t.Fatal(err)
	}
	ring := -1
	if l, err := netlink.LinkByIndex(d.Index()); err == nil {
		ring = l.Attrs().TxQLen
	}
	var r result
	select {
	case r = <-sent:
	case <-time.After(5 * time.Second):
		r.err = errors.New("the sender is still blocked")
	}
	d.Close() // ends the reader
	dropped := after.TxDropped - before.TxDropped
	t.Logf("%d segments sent (%v), %d read, %d out of order, %d other frames; ring %d (read ahead %d); TAP tx_dropped %d; read error %v",
		r.n, r.err, got, outOfOrder, other, ring, readAhead(), dropped, rerr)
	if dropped != 0 {
		t.Errorf("the TAP's ring dropped %d packets", dropped)
	}
	if r.err != nil || r.n != want {
		t.Errorf("sent %d of %d segments: %v", r.n, want, r.err)
	}
	if got != want || outOfOrder != 0 {
		t.Errorf("read %d of %d segments, %d out of order", got, want, outOfOrder)
	}
}
