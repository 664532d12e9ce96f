//go:build linux

package main

// BenchmarkHostLoss measures the rows of the backpressure promise
// (docs/backpressure.md) that the tests do not assert: every kind of
// sender the kernel allows, each through two real daemons on a simulated
// medium at 115200 bit/s (2 Mbit/s to drain the largest buffers), with what the host dropped (TAP ring tx_dropped,
// qdisc, daemon) and what arrived. Run one case at a time or all of them:
//
//	go test -run '^$' -bench 'HostLoss' -benchtime 1x -timeout 60m ./cmd/slided
//
// Each case takes 20 s to 5 minutes (the 4 MiB buffer drains for
// 4½). The figures are reported with b.ReportMetric; docs/backpressure.md,
// "Every sender the kernel allows", has a run of every case.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slided/slided/internal/lab"
)

// lossCase is one kind of sender.
type lossCase struct {
	name    string
	rate    int           // the medium's bit rate (default 115200)
	size    int           // UDP payload bytes
	sockets int           // concurrent blocking senders, one socket each
	perSock int           // datagrams each sends at most
	blast   time.Duration // how long each sends at most
	sndbuf  int           // SO_SNDBUF (0: the kernel's default)
	force   int           // SO_SNDBUFFORCE (past wmem_max)
	v6      bool          // over IPv6 (fd00::/8 addresses on the TAPs)
	stop    time.Duration // SIGSTOP node 1's daemon this long, 2 s into the blast
	args    []string      // extra daemon arguments
	// window: also report Jain's index of the sockets' deliveries over a
	// window in the middle of the delivery, while every socket still has
	// datagrams queued (windowedJain), instead of only over final totals,
	// which are equal by construction when every socket sends the same
	// count and nothing is lost.
	window bool
}

var lossCases = []lossCase{
	{name: "udp1000-sndbuf-default", size: 1000, sockets: 1, perSock: 1 << 20, blast: 10 * time.Second},
	// A 32 MiB send buffer (16 MiB doubled) holds about 14,000 datagrams of
	// 1000 bytes: a faster medium drains them in about a minute.
	// SO_SNDBUF 1 MiB and 4 MiB, clamped to wmem_max and doubled: about
	// 900 and 3,600 datagrams of 1000 bytes queued at the blast's end, the
	// second past the 1000 packets a leaf fifo held before the credit.
	{name: "udp1000-sndbuf-1M", size: 1000, sockets: 1, perSock: 1 << 20, blast: 10 * time.Second, sndbuf: 1 << 20},
	{name: "udp1000-sndbuf-4M", size: 1000, sockets: 1, perSock: 1 << 20, blast: 10 * time.Second, sndbuf: 4 << 20},
	{name: "udp1000-sndbufforce-16M", rate: 2_000_000, size: 1000, sockets: 1, perSock: 1 << 20, blast: 5 * time.Second, force: 16 << 20},
	{name: "udp1000-sndbufforce-16M-droptail", rate: 2_000_000, size: 1000, sockets: 1, perSock: 1 << 20, blast: 5 * time.Second, force: 16 << 20,
		args: []string{"-policy", "drop-tail"}},
	{name: "udp1", size: 1, sockets: 1, perSock: 3000, blast: 10 * time.Second},
	{name: "udp60000", size: 60000, sockets: 1, perSock: 6, blast: 10 * time.Second},
	{name: "udp65507", size: 65507, sockets: 1, perSock: 4, blast: 10 * time.Second},
	{name: "ipv6-udp1000", size: 1000, sockets: 1, perSock: 1 << 20, blast: 10 * time.Second, v6: true},
	// 100 sockets of 200 datagrams each: every socket's buffer takes
	// about all of them at once, so all of them stay backlogged until
	// their last datagram leaves, and the windowed Jain compares them
	// while they compete. With 100 each the window gave a socket 25
	// datagrams on average, short of the 30 issue 11 asks for: the
	// luckiest sockets were done in half the time (docs/backpressure.md).
	{name: "sockets100-udp100", size: 100, sockets: 100, perSock: 200, blast: 60 * time.Second, window: true},
	{name: "sockets500-udp100", size: 100, sockets: 500, perSock: 6, blast: 60 * time.Second},
	{name: "sigstop50s-udp1000", size: 1000, sockets: 1, perSock: 1 << 20, blast: 56 * time.Second, stop: 50 * time.Second},
	// At the default stall limit: 60 s at 115200 bit/s (autoStallLimit
	// lengthens it only below about 16,000 bit/s; the stall_limit_s metric
	// is what node 1's daemon logged). A stop of exactly the limit lets
	// the leak fill the ring's spare room, no more: nothing may be lost.
	{name: "sigstop60s-udp1000", size: 1000, sockets: 1, perSock: 1 << 20, blast: 66 * time.Second, stop: 60 * time.Second},
	{name: "sigstop20s-past-limit-10s", size: 1000, sockets: 1, perSock: 1 << 20, blast: 26 * time.Second, stop: 20 * time.Second,
		args: []string{"-stall-limit", "10s"}},
}

func BenchmarkHostLoss(b *testing.B) {
	for _, c := range lossCases {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				runLossCase(b, c)
			}
		})
	}
	b.Run("ping-flood", func(b *testing.B) {
		for range b.N {
			runPingFlood(b)
		}
	})
	b.Run("udp-gso", func(b *testing.B) {
		for range b.N {
			runUDPGSO(b)
		}
	})
	b.Run("tcp50", func(b *testing.B) {
		for range b.N {
			runTCPMany(b, 50, 60*time.Second)
		}
	})
	b.Run("iperf3-tcp", func(b *testing.B) {
		for range b.N {
			runIperf3(b)
		}
	})
	b.Run("forward-veth-flood", func(b *testing.B) {
		for range b.N {
			runForwardFlood(b)
		}
	})
}

// hostLoss is node 1's host drops: TAP ring, qdisc, daemon.
type hostLoss struct{ ring, qdisc, daemon uint64 }

func readHostLoss(b *testing.B, p *lab.Pair) hostLoss { return readHostLossOf(b, p, 0) }

// readHostLossOf is node i's host drops.
func readHostLossOf(b *testing.B, p *lab.Pair, i int) hostLoss {
	b.Helper()
	st := mustStatus(b, p, i)
	var h hostLoss
	if st.Link != nil {
		h.ring = st.Link.TxDropped
	}
	if st.Qdisc != nil {
		h.qdisc = uint64(st.Qdisc.Root.Drops)
	}
	h.daemon = st.Bridge.Drops.Total()
	return h
}

func (h hostLoss) report(b *testing.B, before hostLoss) {
	b.ReportMetric(float64(h.ring-before.ring), "tap_tx_dropped")
	b.ReportMetric(float64(h.qdisc-before.qdisc), "qdisc_drops")
	b.ReportMetric(float64(h.daemon-before.daemon), "daemon_drops")
}

// addV6 gives both TAPs an fd00::/8 address (no duplicate detection) and
// returns node 2's.
func addV6(b *testing.B, l *lab.Lab, p *lab.Pair) string {
	b.Helper()
	for i := range 2 {
		if out, err := l.Exec(p.NS[i], "ip", "-6", "addr", "add", fmt.Sprintf("fd00:5d::%d/64", i+1), "dev", p.Cfg.TAP, "nodad"); err != nil {
			b.Fatalf("ip -6 addr add: %v\n%s", err, out)
		}
	}
	if out, err := l.Exec(p.NS[0], "ping", "-6", "-c", "1", "-w", "15", "fd00:5d::2"); err != nil {
		b.Fatalf("ping -6 before the blast: %v\n%s", err, out)
	}
	return "fd00:5d::2"
}

// flowRecv counts what one receiving socket got, per flow (the first 8
// bytes of a datagram of at least 16; smaller ones count under flow 0).
type flowRecv struct {
	total, dups, reordered int
	perFlow                map[uint64]int
	arrivals               []arrival // with track: each datagram counted in perFlow
}

// arrival is when one datagram of a flow arrived.
type arrival struct {
	flow uint64
	at   time.Time
}

func receiveFlows(c *net.UDPConn, idle time.Duration, deadline time.Time, track bool) flowRecv {
	r := flowRecv{perFlow: map[uint64]int{}}
	next := map[uint64]uint64{}
	seen := map[[2]uint64]bool{}
	buf := make([]byte, 65536)
	for {
		wait := min(time.Now().Add(idle).UnixNano(), deadline.UnixNano())
		c.SetReadDeadline(time.Unix(0, wait))
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			return r
		}
		r.total++
		if n < 16 {
			r.perFlow[0]++
			continue
		}
		flow, seq := binary.BigEndian.Uint64(buf), binary.BigEndian.Uint64(buf[8:])
		if seen[[2]uint64{flow, seq}] {
			r.dups++
			continue
		}
		seen[[2]uint64{flow, seq}] = true
		if seq < next[flow] {
			r.reordered++
		} else {
			next[flow] = seq + 1
		}
		r.perFlow[flow]++
		if track {
			r.arrivals = append(r.arrivals, arrival{flow, time.Now()})
		}
	}
}

// windowedJain is Jain's index of flows 1..n's deliveries over the middle
// half of the time every flow still had datagrams to come: from the first
// arrival to the earliest of the flows' last arrivals. It returns the
// index, the window's length, and the least and mean deliveries a flow
// had in it.
func windowedJain(arr []arrival, n int) (jain float64, window time.Duration, least, mean float64) {
	if len(arr) == 0 || n == 0 {
		return 0, 0, 0, 0
	}
	last := map[uint64]time.Time{}
	for _, a := range arr {
		last[a.flow] = a.at
	}
	end := arr[len(arr)-1].at
	for f := uint64(1); f <= uint64(n); f++ {
		t, ok := last[f]
		if !ok {
			return 0, 0, 0, 0 // a flow got nothing: no window where all competed
		}
		if t.Before(end) {
			end = t
		}
	}
	span := end.Sub(arr[0].at)
	from, to := arr[0].at.Add(span/4), end.Add(-span/4)
	xs := make([]float64, n)
	for _, a := range arr {
		if a.flow >= 1 && a.flow <= uint64(n) && !a.at.Before(from) && a.at.Before(to) {
			xs[a.flow-1]++
		}
	}
	least = xs[0]
	var sum float64
	for _, x := range xs {
		least = min(least, x)
		sum += x
	}
	return lab.Jain(xs...), to.Sub(from), least, sum / float64(n)
}

// forceSndbuf sets SO_SNDBUFFORCE on c.
func forceSndbuf(c *net.UDPConn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, n)
	}); err != nil {
		return err
	}
	return serr
}

// ipCounters reads the Ip: line of /proc/net/snmp in namespace ns as a
// map from counter name to value.
func ipCounters(b *testing.B, l *lab.Lab, ns string) map[string]int64 {
	return snmpCounters(b, l, ns, "/proc/net/snmp", "Ip:")
}

// snmpCounters reads the lines of file (/proc/net/snmp, /proc/net/netstat)
// in namespace ns that start with proto ("Ip:", "Tcp:", "TcpExt:") as a map
// from counter name to value.
func snmpCounters(b *testing.B, l *lab.Lab, ns, file, proto string) map[string]int64 {
	b.Helper()
	out, err := l.Exec(ns, "cat", file)
	if err != nil {
		b.Fatalf("%s: %v", file, err)
	}
	var names []string
	m := map[string]int64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != proto {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, v := range f[1:] {
			if i < len(names) {
				m[names[i]], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return m
}

func runLossCase(b *testing.B, c lossCase) {
	if c.rate == 0 {
		c.rate = 115200
	}
	l, p := startPair(b, c.rate, "192.0.2", c.args...)
	if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-w", "15", p.Addr[1]); err != nil {
		b.Fatalf("ping before the blast: %v\n%s", err, out)
	}
	dst, local := p.Addr[1], p.Addr[0]
	network := "udp4"
	if c.v6 {
		dst, local, network = addV6(b, l, p), "fd00:5d::1", "udp6"
	}
	var rc *net.UDPConn
	if err := lab.InNS(p.NS[1], func() error {
		var err error
		rc, err = net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(dst), Port: 6000})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	rcv, _ := rc.SyscallConn()
	rcv.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 16<<20) })
	senders := make([]*net.UDPConn, c.sockets)
	for i := range senders {
		if err := lab.InNS(p.NS[0], func() error {
			var err error
			senders[i], err = net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(local)})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		defer senders[i].Close()
		if c.sndbuf > 0 {
			if err := senders[i].SetWriteBuffer(c.sndbuf); err != nil {
				b.Fatal(err)
			}
		}
		if c.force > 0 {
			if err := forceSndbuf(senders[i], c.force); err != nil {
				b.Fatalf("SO_SNDBUFFORCE: %v", err)
			}
		}
	}
	if got, err := sockBuf(senders[0]); err == nil {
		b.Logf("effective SO_SNDBUF %d", got)
	}
	before := readHostLoss(b, p)
	ip0 := ipCounters(b, l, p.NS[1])
	rx0 := mustStatus(b, p, 1).Bridge.Drops.Total()
	idle := 20 * time.Second
	if c.size > 10000 {
		idle = 40 * time.Second // one datagram is seconds of air
	}
	idle = max(idle, c.stop+20*time.Second) // nothing arrives while node 1 is stopped
	got := make(chan flowRecv, 1)
	go func() { got <- receiveFlows(rc, idle, time.Now().Add(c.blast+15*time.Minute), c.window) }()
	to := &net.UDPAddr{IP: net.ParseIP(dst), Port: 6000}
	sent := make([]int, c.sockets)
	errs := make([]int, c.sockets)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, c.size)
			if c.size >= 16 {
				binary.BigEndian.PutUint64(buf, uint64(i+1))
			}
			senders[i].SetWriteDeadline(start.Add(c.blast))
			for seq := 0; seq < c.perSock; seq++ {
				if c.size >= 16 {
					binary.BigEndian.PutUint64(buf[8:], uint64(seq))
				}
				if _, err := senders[i].WriteToUDP(buf, to); err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) {
						return
					}
					errs[i]++
					continue
				}
				sent[i]++
			}
		}()
	}
	if c.stop > 0 {
		d := p.Daemons[0]
		time.Sleep(2 * time.Second)
		if err := d.Signal(syscall.SIGSTOP); err != nil {
			b.Fatal(err)
		}
		time.Sleep(c.stop)
		if err := d.Signal(syscall.SIGCONT); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	r := <-got
	after := readHostLoss(b, p)
	ip1 := ipCounters(b, l, p.NS[1])
	rx1 := mustStatus(b, p, 1).Bridge.Drops.Total()
	nsent, nerr := 0, 0
	for i := range sent {
		nsent += sent[i]
		nerr += errs[i]
	}
	b.ReportMetric(float64(nsent), "sent")
	b.ReportMetric(float64(r.total-r.dups), "delivered")
	b.ReportMetric(float64(nsent-(r.total-r.dups)), "lost")
	b.ReportMetric(float64(nerr), "send_errors")
	b.ReportMetric(float64(r.reordered), "reordered")
	b.ReportMetric(float64(r.dups), "duplicates")
	after.report(b, before)
	// What the receiving side lost, apart from the host under test: its
	// daemon, and its IP reassembly (fragments of a datagram that did not
	// all come within ipfrag_time).
	b.ReportMetric(float64(rx1-rx0), "rx_daemon_drops")
	b.ReportMetric(float64(ip1["ReasmFails"]-ip0["ReasmFails"]), "rx_reasm_fails")
	if after.daemon != before.daemon {
		b.Logf("node 1's daemon drops: %+v", mustStatus(b, p, 0).Bridge.Drops)
	}
	if c.sockets > 1 && c.size >= 16 {
		xs := make([]float64, c.sockets)
		least := -1
		for i := range xs {
			xs[i] = float64(r.perFlow[uint64(i+1)])
			if least < 0 || int(xs[i]) < least {
				least = int(xs[i])
			}
		}
		b.ReportMetric(lab.Jain(xs...), "jain")
		b.ReportMetric(float64(least), "least_per_socket")
		if c.window {
			j, w, wl, wm := windowedJain(r.arrivals, c.sockets)
			b.ReportMetric(j, "jain_window")
			b.ReportMetric(w.Seconds(), "window_s")
			b.ReportMetric(wl, "least_in_window")
			b.ReportMetric(wm, "mean_in_window")
			b.Logf("window of %.1fs in the middle of the delivery: Jain %.3f, per socket least %.0f, mean %.1f datagrams", w.Seconds(), j, wl, wm)
			if wm < 30 {
				b.Logf("the window is shorter than the issue asks: fewer than 30 datagrams a socket")
			}
			// Flows that share a bucket share its FIFO: how the
			// sockets fell into the buckets.
			if sent, err := bucketSent(l, p); err != nil {
				b.Logf("flow buckets: %v", err)
			} else {
				b.ReportMetric(float64(len(sent)), "buckets_used")
				b.Logf("packets each used flow bucket sent (%d of %d buckets): %v", len(sent), flowBuckets, sent)
			}
		}
	}
	if c.stop > 0 {
		if lim, err := stallLimitLogged(p.Logs[1]); err != nil {
			b.Logf("node 1's stall limit: %v", err)
		} else {
			b.ReportMetric(lim.Seconds(), "stall_limit_s")
			b.ReportMetric(c.stop.Seconds(), "stop_s")
			b.Logf("node 1 stopped %v; its stall limit %v", c.stop, lim)
		}
	}
	b.Logf("%s: sent %d (errors %d), delivered %d (%d duplicates, %d reordered) in %.0fs; host drops ring %d qdisc %d daemon %d; receiver: daemon drops %d, IP reassembly fails %d (timeouts %d)",
		c.name, nsent, nerr, r.total-r.dups, r.dups, r.reordered, time.Since(start).Seconds(),
		after.ring-before.ring, after.qdisc-before.qdisc, after.daemon-before.daemon,
		rx1-rx0, ip1["ReasmFails"]-ip0["ReasmFails"], ip1["ReasmTimeout"]-ip0["ReasmTimeout"])
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// runPingFlood: ping -f (a raw socket) of 100-byte echoes for 60 s: ping
// sends at least 100 a second while replies lag, and stops at the deadline
// with what the link still queues unanswered; what counts is the host drops
// at both ends.
func runPingFlood(b *testing.B) {
	l, p := startPair(b, 115200, "192.0.2")
	if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-w", "15", p.Addr[1]); err != nil {
		b.Fatalf("ping: %v\n%s", err, out)
	}
	before, before2 := readHostLoss(b, p), readHostLossOf(b, p, 1)
	out, _ := l.Exec(p.NS[0], "ping", "-f", "-q", "-s", "100", "-c", "500", "-w", "60", p.Addr[1])
	m := pingSummary.FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("ping -f: no summary:\n%s", out)
	}
	tx, _ := strconv.Atoi(m[1])
	rx, _ := strconv.Atoi(m[2])
	after, after2 := readHostLoss(b, p), readHostLossOf(b, p, 1)
	b.ReportMetric(float64(tx), "sent")
	b.ReportMetric(float64(rx), "delivered")
	b.ReportMetric(float64(tx-rx), "unanswered")
	after.report(b, before)
	// The replies go through node 2's host: its drops too.
	b.ReportMetric(float64(after2.ring-before2.ring+after2.qdisc-before2.qdisc+after2.daemon-before2.daemon), "node2_host_drops")
	b.Logf("node 2: host drops ring %d qdisc %d daemon %d", after2.ring-before2.ring, after2.qdisc-before2.qdisc, after2.daemon-before2.daemon)
	b.Logf("ping -f: %s", strings.TrimSpace(out))
}

// runIperf3: one TCP flow for 30 s with iperf3, from node 1 to node 2.
func runIperf3(b *testing.B) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Fatalf("iperf3 not found (%v): apt-get install -y iperf3", err)
	}
	l, p := startPair(b, 115200, "192.0.2")
	if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-w", "15", p.Addr[1]); err != nil {
		b.Fatalf("ping: %v\n%s", err, out)
	}
	dir := b.TempDir()
	if _, err := l.Start(p.NS[1], "iperf3-server", filepath.Join(dir, "server.log"), "iperf3", "-s", "-1", "-B", p.Addr[1]); err != nil {
		b.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	before := readHostLoss(b, p)
	airBefore := airBytes(b, p)
	out, err := l.Exec(p.NS[0], "iperf3", "-c", p.Addr[1], "-t", "30", "-J")
	if err != nil {
		b.Fatalf("iperf3: %v\n%s", err, out)
	}
	var res struct {
		End struct {
			SumSent struct {
				Bytes       float64 `json:"bytes"`
				Retransmits float64 `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				Bytes   float64 `json:"bytes"`
				Seconds float64 `json:"seconds"`
				BPS     float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		b.Fatalf("iperf3 -J: %v\n%s", err, out)
	}
	after := readHostLoss(b, p)
	// Bytes both nodes put on air per byte of TCP payload received:
	// headers, framing, Acks and retransmissions, without the timing
	// noise of goodput.
	b.ReportMetric(float64(airBytes(b, p)-airBefore)/res.End.SumReceived.Bytes, "air_bytes/payload_byte")
	// Header compression: packets compressed and bytes saved, by the
	// sender (data segments) and the receiver (mostly pure ACKs).
	for i, name := range []string{"data", "acks"} {
		if st := mustStatus(b, p, i).Bridge; st != nil && st.Compressed > 0 {
			b.ReportMetric(float64(st.Compressed), name+"_compressed")
			b.ReportMetric(float64(st.CompressSaved)/float64(st.Compressed), name+"_saved_bytes/pkt")
		}
	}
	b.ReportMetric(res.End.SumReceived.BPS, "goodput_bit/s")
	b.ReportMetric(res.End.SumReceived.BPS/115200, "goodput/channel")
	b.ReportMetric(res.End.SumSent.Retransmits, "tcp_retransmits")
	after.report(b, before)
	b.Logf("iperf3: %.0f bytes received in %.1fs (%.0f bit/s), %.0f retransmits",
		res.End.SumReceived.Bytes, res.End.SumReceived.Seconds, res.End.SumReceived.BPS, res.End.SumSent.Retransmits)
}

// airBytes is the bytes both nodes of p have put on air, framing included.
func airBytes(b *testing.B, p *lab.Pair) uint64 {
	var n uint64
	for i := range 2 {
		if st := mustStatus(b, p, i).Bridge; st != nil {
			n += st.TxBytes
		}
	}
	return n
}

// runForwardFlood: node 1 routes from a veth to its TAP, and a third
// namespace floods 1000-byte UDP through it for 5 s. Nothing pushes back
// on a sender behind a veth: the packets reach the TAP's qdisc without a
// socket to block, and the documented policy (docs/backpressure.md,
// "Forwarded traffic") is a queue of their own, -forward-queue bytes' worth,
// that drops its oldest packet. Reports what was queued at the end of
// the flood (the kernel memory it holds) and the drops, the forward
// queue's among them; the backlog is not drained.
func runForwardFlood(b *testing.B) {
	p, src := forwardingPair(b)
	var rc *net.UDPConn
	if err := lab.InNS(p.NS[1], func() error {
		var err error
		rc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(p.Addr[1]), Port: 6000})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	var sc *net.UDPConn
	if err := lab.InNS(src, func() error {
		var err error
		sc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("198.51.100.2")})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	before := readHostLoss(b, p)
	rss0, err := readProc(p.Daemons[0].Cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	got := make(chan flowRecv, 1)
	go func() { got <- receiveFlows(rc, 5*time.Second, time.Now().Add(20*time.Second), false) }()
	ss := lab.Blast(sc, udpAddr(p.Addr[1], 6000), 1, 1000, 5*time.Second, 1<<30)
	st := mustStatus(b, p, 0)
	rss1, err := readProc(p.Daemons[0].Cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	r := <-got
	after := readHostLoss(b, p)
	var qlen, backlog uint32
	if st.Qdisc != nil {
		qlen, backlog = st.Qdisc.Root.Qlen, st.Qdisc.Root.Backlog
	}
	b.ReportMetric(float64(ss.Sent), "sent")
	b.ReportMetric(float64(r.total), "delivered_in_20s")
	b.ReportMetric(float64(qlen), "qdisc_backlog_packets")
	b.ReportMetric(float64(backlog), "qdisc_backlog_bytes")
	b.ReportMetric(float64(rss1.rssKB-rss0.rssKB), "daemon_rss_growth_kB")
	if st.Qdisc != nil && st.Qdisc.Forward != nil {
		b.ReportMetric(float64(st.Qdisc.Forward.Drops), "forward_drops")
	}
	after.report(b, before)
	b.Logf("forwarded flood: sent %d from behind a veth, %d delivered in 20 s, qdisc holds %d packets (%d bytes), drops ring %d qdisc %d daemon %d, daemon RSS %d → %d kB",
		ss.Sent, r.total, qlen, backlog, after.ring-before.ring, after.qdisc-before.qdisc, after.daemon-before.daemon, rss0.rssKB, rss1.rssKB)
}

var tcClass = regexp.MustCompile(`(?m)^class htb 1:([0-9a-f]+) parent 1:100 .*\n Sent \d+ bytes (\d+) pkt`)

// flowBuckets is how many flow buckets tap/shaper.go installs (htb
// classes 1:1 to 1:80 in hex).
const flowBuckets = 128

// bucketSent is the packets each flow bucket of node 1's TAP has sent, for
// the buckets that sent any, largest first.
func bucketSent(l *lab.Lab, p *lab.Pair) ([]int, error) {
	out, err := l.Exec(p.NS[0], "tc", "-s", "class", "show", "dev", p.Cfg.TAP)
	if err != nil {
		return nil, fmt.Errorf("tc -s class show: %w\n%s", err, out)
	}
	var sent []int
	for _, m := range tcClass.FindAllStringSubmatch(out, -1) {
		minor, _ := strconv.ParseUint(m[1], 16, 16)
		n, _ := strconv.Atoi(m[2])
		if minor >= 1 && minor <= flowBuckets && n > 0 {
			sent = append(sent, n)
		}
	}
	slices.Sort(sent)
	slices.Reverse(sent)
	return sent, nil
}

// stallLimitLogged is the stall limit a daemon logged in its JSON log at
// path (the `shaping qdisc installed` line; zerolog writes durations as
// milliseconds).
func stallLimitLogged(path string) (time.Duration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		var e struct {
			Msg        string   `json:"message"`
			StallLimit *float64 `json:"stall_limit"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "shaping qdisc installed" || e.StallLimit == nil {
			continue
		}
		return time.Duration(*e.StallLimit * float64(time.Millisecond)), nil
	}
	return 0, fmt.Errorf("no stall_limit logged in %s", path)
}

// runTCPMany: n TCP connections from node 1 to node 2, each written to
// without pause for d from its own goroutine (blocking writes, as a bulk
// sender's). What counts: host drops at node 1 (0 expected: TCP's own
// queues and the credit hold the rest), and that every connection makes
// progress, the bytes each delivered to node 2's application during d.
// The connections are then closed with whatever they still queue.
func runTCPMany(b *testing.B, n int, d time.Duration) {
	l, p := startPair(b, 115200, "192.0.2")
	if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-w", "15", p.Addr[1]); err != nil {
		b.Fatalf("ping: %v\n%s", err, out)
	}
	var ln net.Listener
	if err := lab.InNS(p.NS[1], func() error {
		var err error
		ln, err = net.Listen("tcp4", net.JoinHostPort(p.Addr[1], "7000"))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	got := map[int]int64{} // bytes received, by the sender's port
	var accepted []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			port := c.RemoteAddr().(*net.TCPAddr).Port
			mu.Lock()
			accepted = append(accepted, c)
			got[port] += 0
			mu.Unlock()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					k, err := c.Read(buf)
					mu.Lock()
					got[port] += int64(k)
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	before := readHostLoss(b, p)
	tcp0 := snmpCounters(b, l, p.NS[0], "/proc/net/snmp", "Tcp:")
	ext0 := snmpCounters(b, l, p.NS[0], "/proc/net/netstat", "TcpExt:")
	conns := make([]net.Conn, n)
	ports := make([]int, n)
	dialErrs := make([]error, n)
	written := make([]int64, n)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := lab.InNS(p.NS[0], func() error {
				var err error
				dl := net.Dialer{Timeout: d}
				conns[i], err = dl.Dial("tcp4", net.JoinHostPort(p.Addr[1], "7000"))
				return err
			})
			if err != nil {
				dialErrs[i] = err
				return
			}
			ports[i] = conns[i].LocalAddr().(*net.TCPAddr).Port
			conns[i].SetWriteDeadline(end)
			buf := make([]byte, 1000)
			for {
				k, err := conns[i].Write(buf)
				written[i] += int64(k)
				if err != nil {
					return // the deadline, or the connection failed
				}
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	per := make([]float64, n)
	var total, least float64
	failed := 0
	for i := range n {
		if dialErrs[i] != nil {
			failed++
			b.Logf("connection %d: %v", i, dialErrs[i])
		} else {
			per[i] = float64(got[ports[i]])
		}
		total += per[i]
		if i == 0 || per[i] < least {
			least = per[i]
		}
	}
	mu.Unlock()
	elapsed := time.Since(start)
	var nwritten int64
	for _, w := range written {
		nwritten += w
	}
	after := readHostLoss(b, p)
	tcp1 := snmpCounters(b, l, p.NS[0], "/proc/net/snmp", "Tcp:")
	ext1 := snmpCounters(b, l, p.NS[0], "/proc/net/netstat", "TcpExt:")
	stalled := 0
	for _, x := range per {
		if x == 0 {
			stalled++
		}
	}
	b.ReportMetric(float64(n-failed), "connections")
	b.ReportMetric(float64(stalled), "connections_without_progress")
	b.ReportMetric(total, "bytes_delivered")
	b.ReportMetric(least, "least_bytes_per_connection")
	b.ReportMetric(lab.Jain(per...), "jain")
	b.ReportMetric(total*8/elapsed.Seconds()/115200, "goodput/channel")
	b.ReportMetric(float64(tcp1["RetransSegs"]-tcp0["RetransSegs"]), "tcp_retransmits")
	// Why TCP sent again: its retransmission timer (the queue's delay
	// grows with 50 senders' windows), and which of those it found
	// spurious (F-RTO), or a tail loss probe.
	b.ReportMetric(float64(ext1["TCPTimeouts"]-ext0["TCPTimeouts"]), "tcp_timeouts")
	b.ReportMetric(float64(ext1["TCPSpuriousRTOs"]-ext0["TCPSpuriousRTOs"]), "tcp_spurious_rtos")
	b.ReportMetric(float64(ext1["TCPLossProbes"]-ext0["TCPLossProbes"]), "tcp_loss_probes")
	after.report(b, before)
	b.Logf("%d TCP connections for %.0fs: %d connected, %d without progress; %.0f bytes delivered (%d written into the sockets), least %.0f per connection, Jain %.3f; %d segments retransmitted; host drops ring %d qdisc %d daemon %d",
		n, elapsed.Seconds(), n-failed, stalled, total, nwritten, least, lab.Jain(per...), tcp1["RetransSegs"]-tcp0["RetransSegs"],
		after.ring-before.ring, after.qdisc-before.qdisc, after.daemon-before.daemon)
	if sent, err := bucketSent(l, p); err == nil {
		b.ReportMetric(float64(len(sent)), "buckets_used")
		b.Logf("packets each used flow bucket sent (%d of %d buckets): %v", len(sent), flowBuckets, sent)
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	mu.Lock()
	for _, c := range accepted {
		c.Close()
	}
	mu.Unlock()
}

// TestWindowedJain: two flows served alternately, then flow 1 alone after
// flow 2 finished: the window ends at flow 2's last datagram, so flow 1's
// run alone does not count, and a flow that starves in the window does.
func TestWindowedJain(t *testing.T) {
	t0 := time.Unix(0, 0)
	var fair []arrival
	for i := range 40 {
		fair = append(fair, arrival{uint64(i%2 + 1), t0.Add(time.Duration(i) * time.Second)})
	}
	for i := range 40 {
		fair = append(fair, arrival{1, t0.Add(time.Duration(40+i) * time.Second)})
	}
	j, w, least, mean := windowedJain(fair, 2)
	if j < 0.99 || w != 19500*time.Millisecond || least != 10 || mean != 10 {
		t.Errorf("alternating: jain %.3f window %v least %v mean %v, want 1, 19.5s, 10, 10", j, w, least, mean)
	}
	var unfair []arrival
	for i := range 40 {
		f := uint64(1)
		if i == 0 || i == 39 {
			f = 2
		}
		unfair = append(unfair, arrival{f, t0.Add(time.Duration(i) * time.Second)})
	}
	if j, _, least, _ := windowedJain(unfair, 2); j > 0.6 || least != 0 {
		t.Errorf("flow 2 starved in the middle: jain %.3f least %v, want 0.5 and 0", j, least)
	}
	if j, _, _, _ := windowedJain(fair, 3); j != 0 {
		t.Errorf("a flow with nothing: jain %.3f, want 0", j)
	}
}
