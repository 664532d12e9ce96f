//go:build linux

package main

// Benchmarks of backpressure and goodput (docs/backpressure.md,
// docs/performance.md): each iteration is a real run of the slided binary
// through real TAP devices in network namespaces, on a simulated medium.
// Run them one at a time with -benchtime 1x (scripts/bench-backpressure.sh);
// the figures are reported with b.ReportMetric, and ns/op is the length of
// the whole run.

import (
	"encoding/binary"
	"errors"
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
	"github.com/slided/slided/status"
)

// bulkConfig is one bulk-transfer run from node 1 to node 2.
type bulkConfig struct {
	rate   int           // the medium's bit rate
	flows  int           // concurrent senders on node 1, one socket each
	blast  time.Duration // how long each sender offers traffic
	sndbuf int           // SO_SNDBUF of each sender
	idle   time.Duration // the receiver stops after this long without a datagram
	args   []string      // extra daemon arguments
	// oneServer sends every flow to one receiving socket, from consecutive
	// source ports; otherwise flow f goes from port 6000+f to port 6000+f.
	oneServer bool
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

// unresolvedDiscards is the kernel's count of packets dropped while waiting
// for ARP (unresolved_discards in /proc/net/stat/arp_cache, summed over
// CPUs; the table is shared by every namespace), or 0 if unreadable.
func unresolvedDiscards() uint64 {
	b, err := os.ReadFile("/proc/net/stat/arp_cache")
	if err != nil {
		return 0
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	col := -1
	for i, name := range strings.Fields(lines[0]) {
		if name == "unresolved_discards" {
			col = i
		}
	}
	var n uint64
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if col < 0 || col >= len(f) {
			return 0
		}
		v, err := strconv.ParseUint(f[col], 16, 64)
		if err != nil {
			return 0
		}
		n += v
	}
	return n
}

// mustStatus asks daemon i for its status and fails the benchmark if it cannot.
func mustStatus(b *testing.B, p *lab.Pair, i int) *status.Snapshot {
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
		l, p := startPair(b, cfg.rate, "192.0.2", cfg.args...)
		// Resolve node 2's address first: until ARP answers, the kernel
		// holds a destination's packets in its neighbour queue
		// (unres_qlen_bytes, 212,992 bytes) and drops the oldest when it
		// overflows, which two 64 KiB senders do (docs/backpressure.md). ping
		// -w retries once a second: a frame may collide with start-up chatter.
		if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-w", "15", p.Addr[1]); err != nil {
			b.Fatalf("ping before the blast: %v\n%s", err, out)
		}
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
		before, before2 := mustStatus(b, p, 0), mustStatus(b, p, 1)

		// Flow f sends from senders[f] to dsts[f]; each receiver counts
		// the flows it sees by the flow id in the payload.
		senders := make([]*net.UDPConn, cfg.flows)
		dsts := make([]*net.UDPAddr, cfg.flows)
		var receivers []*net.UDPConn
		if cfg.oneServer {
			// Like two applications talking to one server: consecutive
			// source ports, one destination port.
			r, err := lab.ListenUDP(p.NS[1], p.Addr[1]+":6000")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { r.Close() })
			receivers = append(receivers, r)
			for f := range cfg.flows {
				c, err := lab.ListenUDP(p.NS[0], fmt.Sprintf("%s:%d", p.Addr[0], 7000+f))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { c.Close() })
				if err := c.SetWriteBuffer(cfg.sndbuf); err != nil {
					b.Fatal(err)
				}
				senders[f], dsts[f] = c, udpAddr(p.Addr[1], 6000)
			}
		} else {
			// One socket pair per flow, each bound to port 6000+f at both
			// ends (as the end-to-end tests do).
			for f := range cfg.flows {
				cs := udpPair(b, p, 6000+f, cfg.sndbuf)
				senders[f], dsts[f] = cs[0], udpAddr(p.Addr[1], 6000+f)
				receivers = append(receivers, cs[1])
			}
		}
		recvd := make(chan *lab.RecvStats, len(receivers))
		for _, r := range receivers {
			go func() {
				rs, err := lab.Receive(r, cfg.idle, time.Now().Add(cfg.blast+90*time.Second))
				if err != nil {
					b.Error(err)
				}
				recvd <- rs
			}()
		}
		arp0 := unresolvedDiscards()
		sent := make(chan timedSend, cfg.flows)
		start := time.Now()
		for f := range cfg.flows {
			go func() {
				sent <- blastTimed(senders[f], dsts[f], uint64(f+1), cfg.blast)
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
		var fit float64
		for range cfg.flows {
			ts := <-sent
			ss = append(ss, ts.SendStats)
			fit += ts.fitRate(cfg.blast/4, cfg.blast)
		}
		// While the backlog drains, note where it sits once a second.
		var rs []*lab.RecvStats
		var drain []string
		tick := time.NewTicker(time.Second)
		for len(rs) < len(receivers) {
			select {
			case r := <-recvd:
				rs = append(rs, r)
			case <-tick.C:
				if st, err := p.Status(0); err == nil && st.Qdisc != nil {
					drain = append(drain, fmt.Sprintf("%.0fs: qdisc %d, ring %d, mac %d, rate %d, tx %d",
						time.Since(start).Seconds(), st.Qdisc.Root.Qlen, st.Bridge.Ring, st.Bridge.QueueDepth,
						st.Bridge.PacingRate, st.Bridge.TxFrames-before.Bridge.TxFrames))
				}
			}
		}
		tick.Stop()
		b.Logf("drain: %s", strings.Join(drain, "; "))
		busy, err := readProc(pid)
		if err != nil {
			b.Fatal(err)
		}
		rxAfter, err := readProc(rxPid)
		if err != nil {
			b.Fatal(err)
		}
		after, after2 := mustStatus(b, p, 0), mustStatus(b, p, 1)

		// Totals over all flows; the receive window is from the first
		// datagram of any flow to the last of any.
		var nsent, nrecv, errs int
		var late float64
		var first, last time.Time
		for _, s := range ss {
			nsent += s.Sent
			errs += s.Errors
			late += s.LateRate(bulkSize)
		}
		// The receivers finished in any order; each counts its own flow.
		perFlow := make([]float64, cfg.flows)
		for _, r := range rs {
			for flow, fs := range r.Flows {
				if flow < 1 || flow > uint64(cfg.flows) {
					continue
				}
				perFlow[flow-1] = float64(fs.Received)
				nrecv += fs.Received
				if first.IsZero() || fs.First.Before(first) {
					first = fs.First
				}
				if fs.Last.After(last) {
					last = fs.Last
				}
			}
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
		// The same over the last three quarters of the blast, fitted: a
		// blocking sender sends in bursts of half its buffer, which a
		// count over one half cuts at an arbitrary point.
		b.ReportMetric(fit/goodput, "pacing_ratio_fit")
		b.ReportMetric(float64(nsent), "sent")
		b.ReportMetric(float64(nrecv), "delivered")
		b.ReportMetric(float64(nsent-nrecv), "lost")
		b.ReportMetric(float64(errs), "send_errors")
		b.ReportMetric(float64(after.Link.TxDropped), "tap_tx_dropped")
		b.ReportMetric(qdrops, "qdisc_drops")
		b.ReportMetric(float64(after.Bridge.Drops.Total()), "daemon_drops")
		// Frames node 1 put on air that node 2 did not write to its TAP
		// (collisions with node 2's own frames: ARP, neighbour discovery).
		rx2 := after2.Bridge.RxFrames - before2.Bridge.RxFrames
		b.ReportMetric(float64(txFrames)-float64(rx2), "lost_on_air")
		b.ReportMetric(float64(after2.Bridge.TxFrames-before2.Bridge.TxFrames), "node2_tx_frames")
		// The neighbour table's counters are the host's, not the pair's:
		// other traffic on the machine may add to this one.
		b.ReportMetric(float64(unresolvedDiscards()-arp0), "arp_discards")
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

// timedSend is what blastTimed saw: lab.SendStats plus the time of every
// successful send since the start.
type timedSend struct {
	lab.SendStats
	at []time.Duration
}

// blastTimed sends bulkSize-byte datagrams from c to dst as fast as the
// socket takes them for d, like lab.Blast, and records when each was taken.
func blastTimed(c *net.UDPConn, dst *net.UDPAddr, flow uint64, d time.Duration) timedSend {
	buf := make([]byte, bulkSize)
	binary.BigEndian.PutUint64(buf, flow)
	ts := timedSend{at: make([]time.Duration, 0, 1<<16)}
	start := time.Now()
	c.SetWriteDeadline(start.Add(d))
	defer c.SetWriteDeadline(time.Time{})
	for seq := uint64(0); ; seq++ {
		binary.BigEndian.PutUint64(buf[8:], seq)
		t0 := time.Now()
		_, err := c.WriteToUDP(buf, dst)
		now := time.Now()
		if dt := now.Sub(t0); dt > time.Millisecond {
			ts.Blocked += dt
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			ts.Errors++
			if now.Sub(start) >= d {
				break
			}
			continue
		}
		ts.Sent++
		ts.Bytes += bulkSize
		ts.at = append(ts.at, now.Sub(start))
	}
	ts.Elapsed = time.Since(start)
	for i, t := range ts.at {
		if t >= d/2 {
			ts.Late, ts.LateDur = len(ts.at)-i, ts.Elapsed-t
			break
		}
	}
	return ts
}

// fitRate is the least-squares slope of bytes sent against time over the
// sends in [from, to), bytes/s. Unlike a count over the same interval it does
// not depend on where the interval cuts the sawtooth of a blocking sender
// (the kernel wakes a sender only when half its send buffer is free, so it
// sends in bursts of half a buffer).
func (ts timedSend) fitRate(from, to time.Duration) float64 {
	var n, sx, sy, sxx, sxy float64
	for i, t := range ts.at {
		if t < from || t >= to {
			continue
		}
		x, y := t.Seconds(), float64(i*bulkSize)
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	den := n*sxx - sx*sx
	if n < 3 || den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// BenchmarkBulk115200: one blocking sender, 1000-byte datagrams, 10 s.
func BenchmarkBulk115200(b *testing.B) {
	runBulk(b, bulkConfig{rate: 115200, flows: 1, blast: 10 * time.Second, sndbuf: 64 << 10, idle: 4 * time.Second})
}

// BenchmarkBulk115200NoARQ: the same with link ARQ off (-arq=false): what
// the Acks cost in airtime when nothing is lost.
func BenchmarkBulk115200NoARQ(b *testing.B) {
	runBulk(b, bulkConfig{rate: 115200, flows: 1, blast: 10 * time.Second, sndbuf: 64 << 10, idle: 4 * time.Second,
		args: []string{"-arq=false"}})
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

// BenchmarkTwoFlows115200: two senders on node 1 (source ports 7000 and
// 7001) to one receiving socket on node 2 share the link.
func BenchmarkTwoFlows115200(b *testing.B) {
	runBulk(b, bulkConfig{rate: 115200, flows: 2, blast: 10 * time.Second, sndbuf: 64 << 10, idle: 8 * time.Second, oneServer: true})
}

// BenchmarkTwoFlows9600: the same on a 9600 bit/s link.
func BenchmarkTwoFlows9600(b *testing.B) {
	runBulk(b, bulkConfig{rate: 9600, flows: 2, blast: 30 * time.Second, sndbuf: 8 << 10, idle: 20 * time.Second, oneServer: true})
}

// BenchmarkTwoFlowsSamePorts115200: two flows whose source and destination
// ports are equal (6000→6000, 6001→6001), as in TestTwoFlowsShareFairly.
// The flow hash (tap/classify.go) XORs the two ports, so such flows cancel
// out and share one bucket: this measures what a shared FIFO gives.
func BenchmarkTwoFlowsSamePorts115200(b *testing.B) {
	runBulk(b, bulkConfig{rate: 115200, flows: 2, blast: 10 * time.Second, sndbuf: 64 << 10, idle: 8 * time.Second})
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
