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
// Each case takes 20 s to 2 minutes. The figures are reported with
// b.ReportMetric; docs/performance.md has a run.

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
}

var lossCases = []lossCase{
	{name: "udp1000-sndbuf-default", size: 1000, sockets: 1, perSock: 1 << 20, blast: 10 * time.Second},
	// A 32 MiB send buffer (16 MiB doubled) holds about 14,000 datagrams of
	// 1000 bytes: a faster medium drains them in about a minute.
	{name: "udp1000-sndbufforce-16M", rate: 2_000_000, size: 1000, sockets: 1, perSock: 1 << 20, blast: 5 * time.Second, force: 16 << 20},
	{name: "udp1000-sndbufforce-16M-droptail", rate: 2_000_000, size: 1000, sockets: 1, perSock: 1 << 20, blast: 5 * time.Second, force: 16 << 20,
		args: []string{"-policy", "drop-tail"}},
	{name: "udp1", size: 1, sockets: 1, perSock: 3000, blast: 10 * time.Second},
	{name: "udp60000", size: 60000, sockets: 1, perSock: 6, blast: 10 * time.Second},
	{name: "udp65507", size: 65507, sockets: 1, perSock: 4, blast: 10 * time.Second},
	{name: "ipv6-udp1000", size: 1000, sockets: 1, perSock: 1 << 20, blast: 10 * time.Second, v6: true},
	{name: "sockets100-udp100", size: 100, sockets: 100, perSock: 40, blast: 60 * time.Second},
	{name: "sockets500-udp100", size: 100, sockets: 500, perSock: 6, blast: 60 * time.Second},
	{name: "sigstop50s-udp1000", size: 1000, sockets: 1, perSock: 1 << 20, blast: 56 * time.Second, stop: 50 * time.Second},
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
}

func receiveFlows(c *net.UDPConn, idle time.Duration, deadline time.Time) flowRecv {
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
	}
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
	b.Helper()
	out, err := l.Exec(ns, "cat", "/proc/net/snmp")
	if err != nil {
		b.Fatalf("/proc/net/snmp: %v", err)
	}
	var names []string
	m := map[string]int64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Ip:" {
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
	go func() { got <- receiveFlows(rc, idle, time.Now().Add(c.blast+15*time.Minute)) }()
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
	go func() { got <- receiveFlows(rc, 5*time.Second, time.Now().Add(20*time.Second)) }()
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
