package main

// Benchmarks of backpressure and goodput (docs/backpressure.md,
// docs/performance.md): each iteration is a real run of the slided binary
// through real TAP devices in network namespaces, on a simulated medium.
// Run them one at a time with -benchtime 1x (scripts/bench-backpressure.sh);
// the figures are reported with b.ReportMetric, and ns/op is the length of
// the whole run.

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slided/slided/control"
	"github.com/slided/slided/internal/lab"
)

// bulkConfig is one bulk-transfer run from node 1 to node 2.
type bulkConfig struct {
	rate   int           // the medium's bit rate
	flows  int           // concurrent senders on node 1, one socket each
	blast  time.Duration // how long each sender offers traffic
	sndbuf int           // SO_SNDBUF of each sender
	idle   time.Duration // the receiver stops after this long without a datagram
	args   []string      // extra daemon arguments
}

// bulkSize is the UDP payload of every datagram.
const bulkSize = 1000

// procSample is what /proc says about a process at one moment.
type procSample struct {
	cpu   time.Duration // utime + stime
	rssKB int           // VmRSS
}

// readProc reads a process's CPU time and resident memory.
func readProc(pid int) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) may hold spaces; fields after it are
	// counted from its closing parenthesis.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	const ticks = 100 // USER_HZ on Linux
	s.cpu = time.Duration(utime+stime) * time.Second / ticks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fs := strings.Fields(rest)
			if len(fs) > 0 {
				s.rssKB, _ = strconv.Atoi(fs[0])
			}
		}
	}
	if s.rssKB == 0 {
		return s, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return s, nil
}

// status asks daemon i for its status and fails the benchmark if it cannot.
func mustStatus(b *testing.B, p *lab.Pair, i int) *control.Status {
	b.Helper()
	st, err := p.Status(i)
	if err != nil {
		b.Fatalf("node%d status: %v", i+1, err)
	}
	return st
}

// runBulk runs one bulk transfer and reports its figures.
func runBulk(b *testing.B, cfg bulkConfig) {
	b.ReportAllocs()
	for range b.N {
		_, p := startPair(b, cfg.rate, "192.0.2", cfg.args...)
		pid := p.Daemons[0].Cmd.Process.Pid
		rxPid := p.Daemons[1].Cmd.Process.Pid
		// Let ARP, neighbour discovery and the pacer settle before the
		// idle sample.
		time.Sleep(2 * time.Second)
		idle, err := readProc(pid)
		if err != nil {
			b.Fatal(err)
		}
		rxBefore, err := readProc(rxPid)
		if err != nil {
			b.Fatal(err)
		}
		before := mustStatus(b, p, 0)

		conns := make([][2]*net.UDPConn, cfg.flows)
		for f := range cfg.flows {
			conns[f] = udpPair(b, p, 6000+f, cfg.sndbuf)
		}
		recvd := make(chan *lab.RecvStats, cfg.flows)
		for f := range cfg.flows {
			go func() {
				rs, err := lab.Receive(conns[f][1], cfg.idle, time.Now().Add(cfg.blast+90*time.Second))
				if err != nil {
					b.Error(err)
				}
				recvd <- rs
			}()
		}
		sent := make(chan lab.SendStats, cfg.flows)
		start := time.Now()
		for f := range cfg.flows {
			go func() {
				sent <- lab.Blast(conns[f][0], udpAddr(p.Addr[1], 6000+f), uint64(f+1), bulkSize, cfg.blast, 1<<30)
			}()
		}
		// Sample the sender's memory while it works.
		peakRSS := idle.rssKB
		for time.Since(start) < cfg.blast {
			time.Sleep(250 * time.Millisecond)
			if s, err := readProc(pid); err == nil && s.rssKB > peakRSS {
				peakRSS = s.rssKB
			}
		}
		// Where the backlog sits as the blast ends.
		end := mustStatus(b, p, 0)
		var qlen uint32
		if end.Qdisc != nil {
			qlen = end.Qdisc.Root.Qlen
		}
		b.Logf("at the end of the blast: qdisc %d packets, TAP ring %d, MAC queue %d of %d, pacing rate %d B/s",
			qlen, end.Bridge.Ring, end.Bridge.QueueDepth, end.Bridge.QueueLen, end.Bridge.PacingRate)
		var ss []lab.SendStats
		for range cfg.flows {
			ss = append(ss, <-sent)
		}
		var rs []*lab.RecvStats
		for range cfg.flows {
			rs = append(rs, <-recvd)
		}
		busy, err := readProc(pid)
		if err != nil {
			b.Fatal(err)
		}
		rxAfter, err := readProc(rxPid)
		if err != nil {
			b.Fatal(err)
		}
		after := mustStatus(b, p, 0)

		// Totals over all flows; the receive window is from the first
		// datagram of any flow to the last of any.
		var nsent, nrecv, errs int
		var late float64
		var first, last time.Time
		var perFlow []float64
		for i := range cfg.flows {
			nsent += ss[i].Sent
			errs += ss[i].Errors
			late += ss[i].LateRate(bulkSize)
			got := 0
			for flow, fs := range rs[i].Flows {
				if flow != uint64(i+1) {
					continue
				}
				got = fs.Received
				if first.IsZero() || fs.First.Before(first) {
					first = fs.First
				}
				if fs.Last.After(last) {
					last = fs.Last
				}
			}
			nrecv += got
			perFlow = append(perFlow, float64(got))
		}
		if nrecv < 2 {
			b.Fatalf("received %d datagrams of %d sent", nrecv, nsent)
		}
		window := last.Sub(first).Seconds()
		// The first datagram opens the window; count the payload after it.
		goodput := float64((nrecv-1)*bulkSize) / window // bytes/s
		txBits := 8 * float64(after.Bridge.TxBytes-before.Bridge.TxBytes)
		txFrames := after.Bridge.TxFrames - before.Bridge.TxFrames
		rxFrames := uint64(nrecv)
		qdrops := 0.0
		if after.Qdisc != nil {
			qdrops = float64(after.Qdisc.Root.Drops)
		}

		b.ReportMetric(goodput*8/float64(cfg.rate), "goodput/channel")
		b.ReportMetric(goodput*8, "goodput_bit/s")
		b.ReportMetric(float64(nrecv*bulkSize*8)/txBits, "payload/airbits")
		b.ReportMetric(late/goodput, "pacing_ratio")
		b.ReportMetric(float64(nsent), "sent")
		b.ReportMetric(float64(nrecv), "delivered")
		b.ReportMetric(float64(nsent-nrecv), "lost")
		b.ReportMetric(float64(errs), "send_errors")
		b.ReportMetric(float64(after.Link.TxDropped), "tap_tx_dropped")
		b.ReportMetric(qdrops, "qdisc_drops")
		b.ReportMetric(float64(after.Bridge.Drops.Total()), "daemon_drops")
		b.ReportMetric(float64(idle.rssKB), "rss_idle_kB")
		b.ReportMetric(float64(peakRSS), "rss_blast_kB")
		if txFrames > 0 {
			b.ReportMetric(float64((busy.cpu-idle.cpu).Microseconds())/float64(txFrames), "tx_cpu_us/frame")
		}
		b.ReportMetric(float64((rxAfter.cpu-rxBefore.cpu).Microseconds())/float64(rxFrames), "rx_cpu_us/frame")
		if cfg.flows > 1 {
			b.ReportMetric(lab.Jain(perFlow...), "jain")
		}
		var blocked time.Duration
		for _, s := range ss {
			blocked += s.Blocked
		}
		b.ReportMetric(blocked.Seconds()/(float64(cfg.flows)*cfg.blast.Seconds()), "sender_blocked_frac")
		b.Logf("rate %d, %d flow(s): sent %d, delivered %d (%v), window %.1fs, goodput %.0f bit/s, late send rate %.0f B/s, tx frames %d, tx bytes %d, drops TAP %d qdisc %.0f daemon %+v",
			cfg.rate, cfg.flows, nsent, nrecv, perFlow, window, goodput*8, late, txFrames,
			after.Bridge.TxBytes-before.Bridge.TxBytes, after.Link.TxDropped, qdrops, after.Bridge.Drops)
	}
}

// BenchmarkBulk115200: one blocking sender, 1000-byte datagrams, 10 s.
func BenchmarkBulk115200(b *testing.B) {
	runBulk(b, bulkConfig{rate: 115200, flows: 1, blast: 10 * time.Second, sndbuf: 64 << 10, idle: 4 * time.Second})
}

// BenchmarkBulk9600: the same at 9600 bit/s, 20 s (a 1000-byte frame takes
// almost a second on air, so the receiver waits longer for the next).
func BenchmarkBulk9600(b *testing.B) {
	runBulk(b, bulkConfig{rate: 9600, flows: 1, blast: 20 * time.Second, sndbuf: 8 << 10, idle: 6 * time.Second})
}

// BenchmarkDropTail115200: the 115200 blast without backpressure (policy
// drop-tail, no shaper): what backpressure buys.
func BenchmarkDropTail115200(b *testing.B) {
	runBulk(b, bulkConfig{rate: 115200, flows: 1, blast: 10 * time.Second, sndbuf: 64 << 10, idle: 4 * time.Second,
		args: []string{"-policy", "drop-tail", "-shaper=false"}})
}

// BenchmarkTwoFlows115200: two senders on node 1 share the link.
func BenchmarkTwoFlows115200(b *testing.B) {
	runBulk(b, bulkConfig{rate: 115200, flows: 2, blast: 10 * time.Second, sndbuf: 64 << 10, idle: 4 * time.Second})
}

// BenchmarkTwoFlows9600: two senders on node 1 share a 9600 bit/s link.
func BenchmarkTwoFlows9600(b *testing.B) {
	runBulk(b, bulkConfig{rate: 9600, flows: 2, blast: 30 * time.Second, sndbuf: 8 << 10, idle: 6 * time.Second})
}

// BenchmarkStartup: time from starting a daemon to its status answering Up,
// with a medium already running.
func BenchmarkStartup(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("the benchmark creates network namespaces and TAP devices: run it as root")
	}
	l, err := lab.New("slided-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := l.Close(); err != nil {
			b.Errorf("cleanup: %v", err)
		}
	})
	dir := b.TempDir()
	sock := filepath.Join(dir, "medium.sock")
	if _, err := l.Start("", "medium", filepath.Join(dir, "medium.log"), slidedBin, "sim", "-listen", sock, "-rate", "115200"); err != nil {
		b.Fatal(err)
	}
	ns, err := l.AddNS("n1")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var times []float64
	b.ResetTimer()
	for i := range b.N {
		ctl := filepath.Join(dir, fmt.Sprintf("n%d.ctl", i))
		logf := filepath.Join(dir, fmt.Sprintf("n%d.log", i))
		t0 := time.Now()
		d, err := l.Start(ns, "node", logf, slidedBin, "run", "-tap", "slided0", "-node", "1", "-phy", "sim:"+sock,
			"-addr", "192.0.2.1/24", "-control", ctl, "-log-format", "json")
		if err != nil {
			b.Fatal(err)
		}
		for {
			raw, err := control.Query(ctl, "status", time.Second)
			if err == nil && strings.Contains(string(raw), `"up":true`) {
				break
			}
			if done, perr := d.Exited(); done {
				b.Fatalf("daemon exited (%v):\n%s", perr, lab.Tail(logf, 20))
			}
			if time.Since(t0) > 15*time.Second {
				b.Fatalf("not up after 15s:\n%s", lab.Tail(logf, 20))
			}
			time.Sleep(2 * time.Millisecond)
		}
		times = append(times, float64(time.Since(t0).Microseconds())/1000)
		if err := d.Stop(5 * time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	sort.Float64s(times)
	b.ReportMetric(times[len(times)/2], "startup_ms")
}

// BenchmarkStall: one socket in namespace 1 sends alternately through a
// link whose daemon is stopped (SIGSTOP) and through a live one, each send
// allowed 20 ms to find room, for 8 s. It reports how much the live link
// still carried: the bounded stall (docs/backpressure.md).
func BenchmarkStall(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		l, p := startPair(b, 115200, "192.0.2")
		dir := b.TempDir()
		sock := filepath.Join(dir, "medium.sock")
		if _, err := l.Start("", "medium-b", filepath.Join(dir, "medium.log"), slidedBin, "sim", "-listen", sock, "-rate", "115200"); err != nil {
			b.Fatal(err)
		}
		for i := range 2 {
			if _, err := l.Start(p.NS[i], fmt.Sprintf("b%d", i+1), filepath.Join(dir, fmt.Sprintf("b%d.log", i+1)),
				slidedBin, "run", "-tap", "slided1", "-node", fmt.Sprint(i+1), "-phy", "sim:"+sock,
				"-addr", fmt.Sprintf("198.51.100.%d/24", i+1), "-control", filepath.Join(dir, fmt.Sprintf("b%d.ctl", i+1)),
				"-log-format", "json"); err != nil {
				b.Fatal(err)
			}
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-W", "2", "198.51.100.2"); err == nil && strings.Contains(out, "1 received") {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("second link never came up")
			}
		}
		var c *net.UDPConn
		if err := lab.InNS(p.NS[0], func() error {
			var err error
			c, err = net.ListenUDP("udp", &net.UDPAddr{})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		if err := c.SetWriteBuffer(32768); err != nil {
			b.Fatal(err)
		}
		rb := udpPair(b, &lab.Pair{NS: p.NS, Addr: [2]string{"198.51.100.1", "198.51.100.2"}}, 5005, 0)
		if err := p.Daemons[0].Signal(syscall.SIGSTOP); err != nil {
			b.Fatal(err)
		}
		got := make(chan *lab.RecvStats, 1)
		go func() {
			rs, _ := lab.Receive(rb[1], 5*time.Second, time.Now().Add(40*time.Second))
			got <- rs
		}()
		buf := make([]byte, bulkSize)
		binary.BigEndian.PutUint64(buf, 9)
		stalled, live := udpAddr(p.Addr[1], 5006), udpAddr("198.51.100.2", 5005)
		liveSent, stalledSent, liveTimeouts := 0, 0, 0
		var liveWait time.Duration
		start := time.Now()
		for end := start.Add(8 * time.Second); time.Now().Before(end); {
			c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
			if _, err := c.WriteToUDP(buf, stalled); err == nil {
				stalledSent++
			}
			binary.BigEndian.PutUint64(buf[8:], uint64(liveSent))
			c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
			t0 := time.Now()
			if _, err := c.WriteToUDP(buf, live); err == nil {
				liveSent++
			} else {
				liveTimeouts++
			}
			liveWait += time.Since(t0)
			time.Sleep(10 * time.Millisecond)
		}
		rs := <-got
		p.Daemons[0].Signal(syscall.SIGCONT)
		c.Close()
		recv := 0
		if f := rs.Flows[9]; f != nil {
			recv = f.Received
		}
		b.ReportMetric(float64(liveSent), "live_sent")
		b.ReportMetric(float64(recv), "live_delivered")
		b.ReportMetric(float64(liveTimeouts), "live_send_timeouts")
		b.ReportMetric(float64(stalledSent), "stalled_sent")
		b.ReportMetric(float64(liveWait.Microseconds())/1000/float64(liveSent+liveTimeouts), "live_send_wait_ms")
		b.Logf("stalled link accepted %d, live link sent %d (%d timed out), delivered %d", stalledSent, liveSent, liveTimeouts, recv)
	}
}
