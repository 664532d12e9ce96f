//go:build linux

package main

// End-to-end tests of the backpressure promise (docs/backpressure.md, issue
// 11): a blocking sender loses nothing on the host, whatever its socket
// buffer holds, and while its daemon is stopped for a while. They assert
// counts only (zero host loss, every datagram delivered once), never times.

import (
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slided/slided/internal/lab"
)

// hostDrops sums what node i dropped on the host: the TAP ring's
// tx_dropped, the qdisc's drops and the daemon's own drops.
func hostDrops(t testing.TB, p *lab.Pair, i int) (ring, qdisc, daemon uint64) {
	t.Helper()
	st, err := p.Status(i)
	if err != nil {
		t.Fatalf("node%d status: %v", i+1, err)
	}
	if st.Link != nil {
		ring = st.Link.TxDropped
	}
	if st.Qdisc != nil {
		qdisc = uint64(st.Qdisc.Root.Drops)
	}
	if st.Bridge != nil {
		daemon = st.Bridge.Drops.QueueFull + st.Bridge.Drops.QueueHead
	}
	return ring, qdisc, daemon
}

// counts are what checkDelivered compares before and after a blast.
type counts struct {
	ring, qdisc, daemon uint64 // node 1's host drops
	acked               uint64 // node 1's link: packets the far node acknowledged
	dups                uint64 // node 2's link: packets suppressed as duplicates
}

func readCounts(t testing.TB, p *lab.Pair) counts {
	t.Helper()
	var c counts
	c.ring, c.qdisc, c.daemon = hostDrops(t, p, 0)
	if st, err := p.Status(0); err == nil && st.Bridge != nil {
		c.acked = st.Bridge.ARQ.Acked
	}
	if st, err := p.Status(1); err == nil && st.Bridge != nil {
		c.dups = st.Bridge.ARQ.Duplicates
	}
	return c
}

// checkDelivered fails unless node 1 dropped nothing on the host, node 2
// acknowledged every datagram, and the receiver got every one of them: with
// a blocking sender nothing may be lost, so a datagram node 2's link
// acknowledged but never handed up fails the test. The duplicates node 2's
// link suppressed are logged, not counted towards delivery (they once hid
// such losses: docs/backpressure.md, "Measured with the credit").
func checkDelivered(t testing.TB, p *lab.Pair, ss lab.SendStats, rs *lab.RecvStats, flow uint64, before counts) {
	t.Helper()
	got := 0
	if f := rs.Flows[flow]; f != nil {
		got = f.Received
		// Reordering is the link ARQ's (a retransmission overtaken by
		// later packets), not the host's: logged, not asserted here.
		t.Logf("flow %d: %d duplicates, %d reordered", flow, f.Duplicates, f.Reordered)
	}
	after := readCounts(t, p)
	ring, qdisc, daemon := after.ring-before.ring, after.qdisc-before.qdisc, after.daemon-before.daemon
	acked, dups := after.acked-before.acked, after.dups-before.dups
	t.Logf("sent %d (send errors %d), acked by node 2 %d, delivered %d, suppressed as duplicates by node 2 %d; host drops: ring %d, qdisc %d, daemon %d",
		ss.Sent, ss.Errors, acked, got, dups, ring, qdisc, daemon)
	if ss.Sent == 0 {
		t.Fatal("the sender sent nothing")
	}
	if ring != 0 || qdisc != 0 || daemon != 0 {
		t.Errorf("host lost datagrams: ring %d, qdisc %d, daemon %d", ring, qdisc, daemon)
	}
	if acked < uint64(ss.Sent) {
		t.Errorf("node 2 acknowledged %d of %d datagrams", acked, ss.Sent)
	}
	if got != ss.Sent {
		t.Errorf("delivered %d of %d datagrams (node 2's link suppressed %d duplicates)", got, ss.Sent, dups)
		for i := range 2 {
			if st, err := p.Status(i); err == nil && st.Bridge != nil {
				t.Logf("node%d: drops %+v; link %+v", i+1, st.Bridge.Drops, st.Bridge.ARQ)
			}
			if b, err := exec.Command("ip", "netns", "exec", p.NS[i], "sh", "-c", "grep -E '^(Udp|Ip):' /proc/net/snmp").CombinedOutput(); err == nil {
				t.Logf("node%d kernel counters:\n%s", i+1, b)
			}
		}
	}
}

// TestBackpressureBigSendBuffer: one blocking sender with a 4 MiB send
// buffer (8 MiB once the kernel doubles it, if wmem_max allows) sends 1,500
// small datagrams at once, more than a 1000-packet flow queue holds. Every
// one must be delivered and none dropped on the host.
func TestBackpressureBigSendBuffer(t *testing.T) {
	l, p := startPair(t, 115200, "192.0.2")
	if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-w", "15", p.Addr[1]); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	if b, err := os.ReadFile("/proc/sys/net/core/wmem_max"); err == nil {
		t.Logf("net.core.wmem_max %s", strings.TrimSpace(string(b)))
	}
	cs := udpPair(t, p, 6000, 4<<20)
	receiveBuffer(t, cs[1])
	if got, err := sockBuf(cs[0]); err == nil {
		t.Logf("effective SO_SNDBUF %d", got)
	}
	before := readCounts(t, p)
	recvd := make(chan *lab.RecvStats, 1)
	go func() {
		rs, err := lab.Receive(cs[1], 15*time.Second, time.Now().Add(150*time.Second))
		if err != nil {
			t.Error(err)
		}
		recvd <- rs
	}()
	ss := lab.Blast(cs[0], udpAddr(p.Addr[1], 6000), 1, 64, 60*time.Second, 1500)
	rs := <-recvd
	checkDelivered(t, p, ss, rs, 1, before)
}

// TestBackpressureStoppedDaemon: a blocking sender with the default buffer
// blasts while node 1's daemon is stopped (SIGSTOP) for 10 s, well inside
// the stall limit. After SIGCONT every datagram must be delivered, in
// order, and the TAP ring must not have dropped any.
func TestBackpressureStoppedDaemon(t *testing.T) {
	p, cs, before := blastPair(t)
	ss, rs := stoppedBlast(t, p, cs, 10*time.Second)
	checkDelivered(t, p, ss, rs, 1, before)
}

// blastPair starts two daemons at 115200 bit/s on 192.0.2.0/24, checks
// that node 1 reaches node 2, and opens flow 1's UDP pair (port 6000, the
// receiver with a large buffer); it returns the host's counts before.
func blastPair(t testing.TB) (*lab.Pair, [2]*net.UDPConn, counts) {
	t.Helper()
	l, p := startPair(t, 115200, "192.0.2")
	if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-w", "15", p.Addr[1]); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	cs := udpPair(t, p, 6000, 0)
	receiveBuffer(t, cs[1])
	return p, cs, readCounts(t, p)
}

// receiveAsync receives on c in the background until nothing came for
// idle or until is reached.
func receiveAsync(t testing.TB, c *net.UDPConn, idle time.Duration, until time.Time) <-chan *lab.RecvStats {
	recvd := make(chan *lab.RecvStats, 1)
	go func() {
		rs, err := lab.Receive(c, idle, until)
		if err != nil {
			t.Error(err)
		}
		recvd <- rs
	}()
	return recvd
}

// stoppedBlast: a blocking sender with the default buffer blasts 1000-byte
// datagrams from node 1 for stop + 8 s while node 1's daemon is stopped
// (SIGSTOP) for stop, from 3 s in; it returns what was sent and received.
func stoppedBlast(t testing.TB, p *lab.Pair, cs [2]*net.UDPConn, stop time.Duration) (lab.SendStats, *lab.RecvStats) {
	t.Helper()
	recvd := receiveAsync(t, cs[1], max(15*time.Second, stop+5*time.Second), time.Now().Add(150*time.Second+stop))
	sent := make(chan lab.SendStats, 1)
	go func() { sent <- lab.Blast(cs[0], udpAddr(p.Addr[1], 6000), 1, 1000, stop+8*time.Second, 1<<20) }()
	d := p.Daemons[0]
	time.Sleep(3 * time.Second)
	if err := d.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			d.Signal(syscall.SIGCONT)
		}
	}()
	time.Sleep(stop)
	if err := d.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	return <-sent, <-recvd
}

// receiveBuffer gives the test's receiver a 4 MiB buffer: on a loaded
// machine the receiving goroutine may fall behind, and what its socket
// drops is not the host under test losing (node 2's Udp RcvbufErrors).
func receiveBuffer(t testing.TB, c *net.UDPConn) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 4<<20)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
}

// sockBuf is the socket's effective SO_SNDBUF.
func sockBuf(c interface {
	SyscallConn() (syscall.RawConn, error)
}) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	}); err != nil {
		return 0, err
	}
	return v, serr
}

// TestBackpressureSmallFlowDelay: a small flow (64 bytes every 200 ms) beside
// a greedy blocking one. It logs the small flow's one-way delay percentiles
// (the target: p95 at most its airtime plus two greedy frames, about
// 160 ms at 115200 bit/s) and asserts only counts: the small flow loses
// nothing and the host drops nothing.
func TestBackpressureSmallFlowDelay(t *testing.T) {
	l, p := startPair(t, 115200, "192.0.2")
	if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-w", "15", p.Addr[1]); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	greedy := udpPair(t, p, 6000, 0)
	small := udpPair(t, p, 6001, 0)
	receiveBuffer(t, greedy[1])
	before := readCounts(t, p)
	// The greedy flow's arrivals, to count its goodput while the small
	// flow runs; the reader drains it until it has been idle 10 s.
	arrivals := make(chan time.Time, 4096)
	go func() {
		defer close(arrivals)
		buf := make([]byte, 2048)
		end := time.Now().Add(120 * time.Second)
		for {
			wait := time.Now().Add(10 * time.Second)
			if wait.After(end) {
				wait = end
			}
			greedy[1].SetReadDeadline(wait)
			if _, err := greedy[1].Read(buf); err != nil {
				return
			}
			select {
			case arrivals <- time.Now():
			default:
			}
		}
	}()
	const n = 60
	delays := make(chan []time.Duration, 1)
	go func() {
		var ds []time.Duration
		buf := make([]byte, 2048)
		small[1].SetReadDeadline(time.Now().Add(60 * time.Second))
		for len(ds) < n {
			m, err := small[1].Read(buf)
			if err != nil {
				break
			}
			if m >= 8 {
				ds = append(ds, time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(buf)))))
			}
		}
		delays <- ds
	}()
	sent := make(chan lab.SendStats, 1)
	go func() { sent <- lab.Blast(greedy[0], udpAddr(p.Addr[1], 6000), 1, 1000, 14*time.Second, 1<<20) }()
	time.Sleep(2 * time.Second) // the greedy flow fills its queue first
	dst := udpAddr(p.Addr[1], 6001)
	msg := make([]byte, 64)
	from := time.Now()
	for range n {
		binary.BigEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
		if _, err := small[0].WriteToUDP(msg, dst); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	to := time.Now()
	ss := <-sent
	ds := <-delays
	// Greedy datagrams delivered while the small flow ran (the channel was
	// busy with the greedy backlog all along).
	during := 0
	for at := range arrivals {
		if !at.Before(from) && at.Before(to) {
			during++
		}
		if at.After(to) {
			break
		}
	}
	// In order of arrival: the first datagrams, sent while a lone flow's
	// burst was on air, show apart from the rest (docs/backpressure.md,
	// "Behind the simulated medium's bursts").
	var order strings.Builder
	for _, d := range ds {
		order.WriteString(strconv.FormatInt(d.Milliseconds(), 10) + " ")
	}
	t.Logf("small flow one-way delays in order of arrival (ms): %s", order.String())
	slices.Sort(ds)
	if len(ds) > 0 {
		q := func(f float64) time.Duration { return ds[int(f*float64(len(ds)-1))] }
		t.Logf("small flow one-way delay over %d datagrams: median %v, p95 %v, max %v (greedy sent %d; delivered %d in the small flow's %v, %.1f/s)",
			len(ds), q(0.5).Round(time.Millisecond), q(0.95).Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond), ss.Sent,
			during, to.Sub(from).Round(time.Millisecond), float64(during)/to.Sub(from).Seconds())
	}
	if len(ds) != n {
		t.Errorf("small flow: %d of %d datagrams arrived", len(ds), n)
	}
	after := readCounts(t, p)
	if after.ring != before.ring || after.qdisc != before.qdisc || after.daemon != before.daemon {
		t.Errorf("host drops: ring %d, qdisc %d, daemon %d", after.ring-before.ring, after.qdisc-before.qdisc, after.daemon-before.daemon)
	}
}
