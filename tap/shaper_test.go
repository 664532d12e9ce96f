//go:build linux

package tap

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// TestNoShaperDrops keeps the other tests honest: with the default qdisc
// and nobody reading, a UDP blast is lost at the TAP (tx_dropped), because
// the tun driver drops once its ring is full.
func TestNoShaperDrops(t *testing.T) {
	d := newTAP(t, "slt-drop0", 16)
	res := blast(t, time.Second, 100_000)
	st, err := d.LinkStats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("no shaper, no reader: sent %d, EAGAIN %d, TAP tx_dropped %d, tx_packets %d",
		res.sent, res.eagain, st.TxDropped, st.TxPackets)
	if st.TxDropped == 0 {
		t.Errorf("TAP tx_dropped = 0 after %d datagrams with nobody reading; the kernel fact no longer holds", res.sent)
	}
}

func TestShaperBackpressure(t *testing.T) {
	const rate, burst = 20_000, 3028
	d := newTAP(t, "slt-bp0", 16)
	s, err := NewShaper(d.Index(), ShaperConfig{Rate: rate, Burst: burst, FlowLimit: 1000})
	if err != nil {
		t.Fatalf("NewShaper: %v", err)
	}
	defer s.Close()
	r := startReader(d)
	res := blast(t, 1500*time.Millisecond, 100_000)
	qs, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	ls, err := d.LinkStats()
	if err != nil {
		t.Fatal(err)
	}
	r.stop(t, d)
	var got int
	for _, n := range r.perPort {
		got += n
	}
	t.Logf("shaper %d B/s: sent %d, EAGAIN %d in %v; read %d payload bytes; root %+v; child %+v; TAP tx_dropped %d",
		rate, res.sent, res.eagain, res.elapsed, got, qs.Root, qs.Root, ls.TxDropped)
	if res.eagain == 0 {
		t.Errorf("the sender never saw EAGAIN: no backpressure")
	}
	if qs.Root.Drops != 0 {
		t.Errorf("qdisc drops: %d; want 0", qs.Root.Drops)
	}
	if ls.TxDropped != 0 {
		t.Errorf("TAP tx_dropped = %d, want 0", ls.TxDropped)
	}
	if got == 0 {
		t.Errorf("nothing came through the shaper")
	}
	// Loose: at most four times what the rate allows (a slow machine only
	// makes this smaller); without the shaper it is hundreds of times more.
	if limit := 4 * (int(rate*res.elapsed.Seconds()) + 2*burst); got > limit {
		t.Errorf("read %d bytes in %v, more than 4x the rate allows (%d)", got, res.elapsed, limit)
	}
}

// twoFlows runs two blocking UDP senders, one with a send buffer four times
// the other's, through d for dur, and returns the bytes read per flow and,
// if s is not nil, the shaper's counters at the end (before d is closed).
func twoFlows(t *testing.T, d *Device, s *Shaper, dur time.Duration) (a, b int, qs QdiscStats) {
	t.Helper()
	r := startReader(d)
	type flow struct {
		c      *net.UDPConn
		sndbuf int
	}
	flows := []flow{{sndbuf: 4 * 212992}, {sndbuf: 212992}}
	for i := range flows {
		// Consecutive source ports: the flow hash puts them in different
		// buckets (TestFlowHashProgram), so the result does not hang on
		// which ephemeral ports the kernel picks.
		laddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(tapIP, uint16(41000+i)))
		c, err := net.DialUDP("udp4", laddr, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peerIP, peerPort)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		raw, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var serr error
		raw.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, flows[i].sndbuf/2) // the kernel doubles it
		})
		if serr != nil {
			t.Fatal(serr)
		}
		flows[i].c = c
	}
	done := make(chan error, len(flows))
	deadline := time.Now().Add(dur)
	for _, f := range flows {
		go func() { // exits at the deadline or after 100,000 datagrams
			f.c.SetWriteDeadline(deadline)
			payload := make([]byte, 1000)
			for range 100_000 {
				if _, err := f.c.Write(payload); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						err = nil
					}
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range flows {
		if err := <-done; err != nil {
			t.Errorf("sender: %v", err)
		}
	}
	if s != nil {
		var err error
		if qs, err = s.Stats(); err != nil {
			t.Error(err)
		}
	}
	r.stop(t, d)
	pa := uint16(flows[0].c.LocalAddr().(*net.UDPAddr).Port)
	pb := uint16(flows[1].c.LocalAddr().(*net.UDPAddr).Port)
	return r.perPort[pa], r.perPort[pb], qs
}

func jain(xs ...int) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += float64(x)
		sq += float64(x) * float64(x)
	}
	if sq == 0 {
		return 0
	}
	return sum * sum / (float64(len(xs)) * sq)
}

func TestShaperFairShares(t *testing.T) {
	d := newTAP(t, "slt-fair0", 16)
	s, err := NewShaper(d.Index(), ShaperConfig{Rate: 400_000})
	if err != nil {
		t.Fatalf("NewShaper: %v", err)
	}
	defer s.Close()
	a, b, qs := twoFlows(t, d, s, 1500*time.Millisecond)
	j := jain(a, b)
	t.Logf("flow shares: big-buffer %d bytes, small-buffer %d bytes, Jain %.3f; qdisc %+v", a, b, j, qs.Root)
	if j <= 0.9 {
		t.Errorf("Jain's index %.3f (flows %d and %d bytes), want > 0.9", j, a, b)
	}
	if qs.Root.Drops != 0 {
		t.Errorf("qdisc drops: %d; want 0", qs.Root.Drops)
	}
}

// TestFIFOChildIsUnfair shows that TestShaperFairShares can fail: with the
// flow hash removed, so that one FIFO holds every flow, the flow with the bigger socket
// buffer takes the bigger share.
func TestFIFOChildIsUnfair(t *testing.T) {
	d := newTAP(t, "slt-fifo0", 16)
	s, err := NewShaper(d.Index(), ShaperConfig{Rate: 400_000})
	if err != nil {
		t.Fatalf("NewShaper: %v", err)
	}
	defer s.Close()
	// Without the flow hash every packet lands in the default bucket 1:1,
	// one FIFO.
	info := netlink.MakeHandle(filterPrio, nl.Swap16(unix.ETH_P_ALL))
	if err := tcRequest(unix.RTM_DELTFILTER, 0, d.Index(), 1, childHandle, info, "bpf", nil); err != nil {
		t.Fatalf("remove the flow hash: %v", err)
	}
	a, b, _ := twoFlows(t, d, nil, 1500*time.Millisecond)
	j := jain(a, b)
	t.Logf("FIFO child: big-buffer %d bytes, small-buffer %d bytes, Jain %.3f", a, b, j)
	if j > 0.9 {
		t.Errorf("Jain's index %.3f with one FIFO: the fairness test cannot tell a fair scheduler from none", j)
	}
}

func TestShaperSetRateAndClose(t *testing.T) {
	d := newTAP(t, "slt-rate0", 16)
	s, err := NewShaper(d.Index(), ShaperConfig{Rate: 20_000})
	if err != nil {
		t.Fatalf("NewShaper: %v", err)
	}
	defer s.Close()
	for _, rate := range []uint64{50_000, 1_000, 5_000_000_000} {
		if err := s.SetRate(rate); err != nil {
			t.Fatalf("SetRate(%d): %v", rate, err)
		}
		if got := pacerRate(t, d.Index()); got != rate {
			t.Errorf("pacer class rate %d after SetRate(%d)", got, rate)
		}
		if root := rootQdisc(t, d.Index()); root == nil || root.Type() != "htb" {
			t.Errorf("root qdisc after SetRate: %v, want htb", root)
		}
	}
	if err := s.SetRate(0); err == nil {
		t.Error("SetRate(0) succeeded")
	}
	if _, err := s.Stats(); err != nil {
		t.Errorf("Stats: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if root := rootQdisc(t, d.Index()); root != nil && (root.Type() == "htb" || root.Attrs().Handle == rootHandle) {
		t.Errorf("after Close: root %v; want the kernel default", root)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.SetRate(1000); err == nil {
		t.Error("SetRate after Close succeeded")
	}
}

func rootQdisc(t *testing.T, ifindex int) netlink.Qdisc {
	t.Helper()
	qs, err := listQdiscs(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Attrs().Parent == netlink.HANDLE_ROOT {
			return q
		}
	}
	return nil
}

// pacerRate reads back the rate of class 1:100, bytes/s.
func pacerRate(t *testing.T, ifindex int) uint64 {
	t.Helper()
	link, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := netlink.ClassList(link, rootHandle)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if h, ok := c.(*netlink.HtbClass); ok && h.Handle == netlink.MakeHandle(1, pacerMinor) {
			return h.Rate
		}
	}
	t.Fatal("no pacer class 1:100")
	return 0
}
