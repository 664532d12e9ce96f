//go:build linux

package main

// Benchmarks of two sending nodes (docs/simulation.md, "Two sending nodes
// through real daemons"): two daemons that both have traffic to send, either
// to a third daemon or to each other, on one simulated medium. `slided bench
// -protocol link -flows 1:3,2:3` and `-flows 1:2,2:1` run the same in
// virtual time. Like the benchmarks of backpressure_bench_test.go, each
// iteration is a real run of the slided binary through real TAP devices in
// network namespaces; run them one at a time with -benchtime 1x. The figures
// are reported with b.ReportMetric; ns/op is the length of the whole run.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slided/slided/internal/lab"
)

// twoSendersConfig is one run of two blocking senders on two nodes.
type twoSendersConfig struct {
	rate   int           // the medium's bit rate
	blast  time.Duration // how long each sender offers traffic; the measured window
	sndbuf int           // SO_SNDBUF of each sender
	// bothWays: node 1 and node 2 send to each other; otherwise both send
	// to node 3.
	bothWays bool
}

// twoSendersPort is the UDP port every socket of these benchmarks binds.
const twoSendersPort = 6000

// BenchmarkTwoSenders115200: node 1 and node 2 each blast 1000-byte
// datagrams from a blocking socket to node 3 for 60 s, link ARQ on (the
// daemon's defaults). `slided bench -protocol link -flows 1:3,2:3`.
func BenchmarkTwoSenders115200(b *testing.B) {
	runTwoSenders(b, twoSendersConfig{rate: 115200, blast: time.Minute, sndbuf: 64 << 10})
}

// BenchmarkTwoSendersBothWays115200: node 1 and node 2 each blast at the
// other for 60 s. `slided bench -protocol link -flows 1:2,2:1`.
func BenchmarkTwoSendersBothWays115200(b *testing.B) {
	runTwoSenders(b, twoSendersConfig{rate: 115200, blast: time.Minute, sndbuf: 64 << 10, bothWays: true})
}

// runTwoSenders runs cfg b.N times and reports, per run: the datagrams of
// each sender delivered within the blast (node1_delivered, node2_delivered),
// Jain's index of the two, goodput/channel over the blast (UDP payload bits
// delivered within it ÷ (bit rate × its length)), what the senders' queues
// still delivered after it (drained), what never arrived (lost) and what
// the hosts dropped (TAP tx_dropped, qdisc and daemon drops of every node),
// and the senders' link ARQ retransmissions.
func runTwoSenders(b *testing.B, cfg twoSendersConfig) {
	for range b.N {
		l, p := startPair(b, cfg.rate, "192.0.2")
		// Each node's status, by its control socket.
		ctls := []string{p.Ctl[0], p.Ctl[1]}
		dst := [2]string{p.Addr[1], p.Addr[0]} // where node 1 and node 2 send
		// The receiving sockets: each node's own, which also sends; or
		// node 3's one socket.
		recvNS, recvAddr := []string{p.NS[0], p.NS[1]}, []string{p.Addr[0], p.Addr[1]}
		if !cfg.bothWays {
			ns, ctl := startThirdNode(b, l, p, "192.0.2.3")
			ctls = append(ctls, ctl)
			dst = [2]string{"192.0.2.3", "192.0.2.3"}
			recvNS, recvAddr = []string{ns}, []string{"192.0.2.3"}
		}
		// Resolve every address the senders use before the blast (the
		// kernel's neighbour queue drops what waits for ARP:
		// runBulk). ping -w retries once a second.
		for i := range 2 {
			if out, err := l.Exec(p.NS[i], "ping", "-c", "1", "-w", "15", dst[i]); err != nil {
				b.Fatalf("ping %s from node%d before the blast: %v\n%s", dst[i], i+1, err, out)
			}
		}
		time.Sleep(2 * time.Second)
		before := make([]nodeCounters, len(ctls))
		for i, ctl := range ctls {
			before[i] = mustCounters(b, ctl, i)
		}

		var recv []*net.UDPConn
		for i := range recvNS {
			c, err := lab.ListenUDP(recvNS[i], fmt.Sprintf("%s:%d", recvAddr[i], twoSendersPort))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			recv = append(recv, c)
		}
		send := make([]*net.UDPConn, 2)
		for i := range 2 {
			if cfg.bothWays {
				send[i] = recv[i]
			} else {
				c, err := lab.ListenUDP(p.NS[i], fmt.Sprintf("%s:%d", p.Addr[i], twoSendersPort))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { c.Close() })
				send[i] = c
			}
			if err := send[i].SetWriteBuffer(cfg.sndbuf); err != nil {
				b.Fatal(err)
			}
		}

		start := time.Now()
		end := start.Add(cfg.blast)
		// SLIDED_TWO_SENDERS_TRACE=1 prints to stderr each sender's
		// frames on air (MAC Transmitted) and senders heard, every
		// 100 ms that they change: a sender's turns, one line a burst.
		if os.Getenv("SLIDED_TWO_SENDERS_TRACE") != "" {
			go func() {
				var last [2]uint64
				var lastS [2]int
				for time.Now().Before(end) {
					time.Sleep(100 * time.Millisecond)
					for i := range 2 {
						st, err := (&lab.Pair{Ctl: [2]string{ctls[i]}}).Status(0)
						if err != nil || st.Bridge == nil {
							continue
						}
						tx := st.Bridge.MAC.Transmitted
						if tx != last[i] || st.Bridge.Senders != lastS[i] {
							fmt.Fprintf(os.Stderr, "TRACE %6.2f node%d tx=%d (+%d) senders=%d\n", time.Since(start).Seconds(), i+1, tx, tx-last[i], st.Bridge.Senders)
							last[i], lastS[i] = tx, st.Bridge.Senders
						}
					}
				}
			}()
		}
		got := make(chan windowCounts, len(recv))
		for _, c := range recv {
			go func() {
				wc, err := receiveWindow(c, end, 10*time.Second, end.Add(time.Minute))
				if err != nil {
					b.Error(err)
				}
				got <- wc
			}()
		}
		sent := make(chan [2]int, 2)
		for i := range 2 {
			go func() {
				st := lab.Blast(send[i], udpAddr(dst[i], twoSendersPort), uint64(i+1), bulkSize, cfg.blast, 1<<30)
				sent <- [2]int{i, st.Sent}
			}()
		}
		var nsent [2]int
		for range 2 {
			s := <-sent
			nsent[s[0]] = s[1]
		}
		var in, after [2]int // per sender: delivered within the blast, after it
		for range recv {
			wc := <-got
			for f := range 2 {
				in[f] += wc.in[uint64(f+1)]
				after[f] += wc.after[uint64(f+1)]
			}
		}

		var drops, retrans float64
		for i, ctl := range ctls {
			c := mustCounters(b, ctl, i)
			drops += c.hostDrops - before[i].hostDrops
			if i < 2 {
				retrans += c.retrans - before[i].retrans
			}
			b.Logf("node%d: mac %s, arq %s", i+1, c.mac, c.arq)
		}
		lost := nsent[0] + nsent[1] - in[0] - in[1] - after[0] - after[1]
		share := float64((in[0]+in[1])*bulkSize*8) / (float64(cfg.rate) * cfg.blast.Seconds())
		if share > 1 {
			// More than the channel carries: the datagrams did not cross it.
			b.Fatalf("goodput/channel %.2f: delivered %v in %v at %d bit/s", share, in, cfg.blast, cfg.rate)
		}
		b.ReportMetric(float64(in[0]), "node1_delivered")
		b.ReportMetric(float64(in[1]), "node2_delivered")
		b.ReportMetric(lab.Jain(float64(in[0]), float64(in[1])), "jain")
		b.ReportMetric(share, "goodput/channel")
		b.ReportMetric(float64(after[0]+after[1]), "drained")
		b.ReportMetric(float64(lost), "lost")
		b.ReportMetric(drops, "host_drops")
		// Link ARQ retransmissions of the two senders: each is an Ack
		// that did not come (a collision, or a lost Ack).
		b.ReportMetric(retrans, "arq_retransmissions")
		b.Logf("%d s blast: sent %v, delivered within it %v, after it %v, lost %d, host drops %.0f",
			int(cfg.blast.Seconds()), nsent, in, after, lost, drops)
	}
}

// startThirdNode starts node 3 at addr (a /24 of p's) in a namespace of its
// own on p's medium, waits until its modem is up and returns the namespace
// and the control socket.
func startThirdNode(b *testing.B, l *lab.Lab, p *lab.Pair, addr string) (ns, ctl string) {
	b.Helper()
	ns, err := l.AddNS("n3")
	if err != nil {
		b.Fatal(err)
	}
	dir := p.Cfg.Dir
	ctl = filepath.Join(dir, "node3.ctl")
	logf := filepath.Join(dir, "node3.log")
	d, err := l.Start(ns, "node3", logf, slidedBin, "run", "-tap", "slided0", "-node", "3",
		"-phy", "sim:"+filepath.Join(dir, "medium.sock"), "-addr", addr+"/24", "-control", ctl, "-log-format", "json")
	if err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st, err := (&lab.Pair{Ctl: [2]string{ctl}}).Status(0)
		if err == nil && st.Bridge.Up {
			return ns, ctl
		}
		if done, perr := d.Exited(); done {
			b.Fatalf("node3 exited (%v):\n%s", perr, lab.Tail(logf, 20))
		}
		if time.Now().After(deadline) {
			b.Fatalf("node3 not up after 15s (%v):\n%s", err, lab.Tail(logf, 20))
		}
	}
}

// nodeCounters is what a node's status says, for the report.
type nodeCounters struct {
	hostDrops float64 // TAP tx_dropped + qdisc drops + daemon drops
	retrans   float64 // link ARQ retransmissions
	mac, arq  string  // the MAC's and ARQ's counters, printed
}

// mustCounters reads the status of the daemon at ctl (node i+1).
func mustCounters(b *testing.B, ctl string, i int) nodeCounters {
	b.Helper()
	st, err := (&lab.Pair{Ctl: [2]string{ctl}}).Status(0)
	if err != nil {
		b.Fatalf("node%d status: %v", i+1, err)
	}
	c := nodeCounters{
		hostDrops: float64(st.Bridge.Drops.Total()),
		retrans:   float64(st.Bridge.ARQ.Retransmissions),
		mac:       fmt.Sprintf("%+v", st.Bridge.MAC),
		arq:       fmt.Sprintf("%+v", st.Bridge.ARQ),
	}
	if st.Link != nil {
		c.hostDrops += float64(st.Link.TxDropped)
	}
	if st.Qdisc != nil {
		c.hostDrops += float64(st.Qdisc.Root.Drops)
	}
	return c
}

// windowCounts counts a receiver's distinct datagrams per flow: those that
// arrived by the end of the blast, and those after it.
type windowCounts struct {
	in, after map[uint64]int
}

// receiveWindow reads datagrams from c (flow and sequence number in the
// first 16 bytes, as lab.Blast sends them) until no datagram has come for
// idle after end, or until deadline.
func receiveWindow(c *net.UDPConn, end time.Time, idle time.Duration, deadline time.Time) (windowCounts, error) {
	wc := windowCounts{in: make(map[uint64]int), after: make(map[uint64]int)}
	seen := make(map[[2]uint64]bool)
	buf := make([]byte, 65536)
	for {
		wait := time.Now().Add(idle)
		if wait.Before(end) {
			wait = end.Add(idle)
		}
		if wait.After(deadline) {
			wait = deadline
		}
		c.SetReadDeadline(wait)
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return wc, nil
			}
			return wc, fmt.Errorf("receive: %w", err)
		}
		if n < 16 {
			continue
		}
		k := [2]uint64{binary.BigEndian.Uint64(buf), binary.BigEndian.Uint64(buf[8:])}
		if seen[k] {
			continue
		}
		seen[k] = true
		if time.Now().After(end) {
			wc.after[k[0]]++
		} else {
			wc.in[k[0]]++
		}
	}
}
