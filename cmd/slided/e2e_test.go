//go:build linux

package main

// End-to-end tests: the real slided binary, real TAP devices in network
// namespaces the tests create, a real medium server on a Unix socket, real
// UDP sockets and ping. They need root (CI runs as root).

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/internal/lab"
)

var slidedBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "slided-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	slidedBin = filepath.Join(dir, "slided")
	build := exec.Command("go", "build", "-o", slidedBin, ".")
	// The binary as shipped: static, which -user needs.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build slided: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startPair starts a medium and two daemons for a test and removes all of it
// at the end. subnet must be a /24 from the documentation ranges.
func startPair(t testing.TB, rate int, subnet string, args ...string) (*lab.Lab, *lab.Pair) {
	t.Helper()
	return startPairConfig(t, lab.PairConfig{Rate: rate, Subnet: subnet, Args: args})
}

// startPairConfig is startPair with every setting of lab.PairConfig; Bin
// and Dir are filled in.
func startPairConfig(t testing.TB, cfg lab.PairConfig) (*lab.Lab, *lab.Pair) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("end-to-end tests create network namespaces and TAP devices: run them as root")
	}
	l, err := lab.New("slided-e2e")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if t.Failed() {
			for _, f := range []string{"medium.log", "node1.log", "node2.log"} {
				t.Logf("--- %s ---\n%s", f, lab.Tail(filepath.Join(dir, f), 30))
			}
		}
	})
	cfg.Bin, cfg.Dir = slidedBin, dir
	p, err := l.StartPair(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, p
}

func udpPair(t testing.TB, p *lab.Pair, port int, sndbuf int) [2]*net.UDPConn {
	t.Helper()
	var cs [2]*net.UDPConn
	for i := range 2 {
		c, err := lab.ListenUDP(p.NS[i], fmt.Sprintf("%s:%d", p.Addr[i], port))
		if err != nil {
			t.Fatal(err)
		}
		if sndbuf > 0 {
			if err := c.SetWriteBuffer(sndbuf); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { c.Close() })
		cs[i] = c
	}
	return cs
}

func udpAddr(ip string, port int) *net.UDPAddr {
	return &net.UDPAddr{IP: net.ParseIP(ip), Port: port}
}

// TestPingAndUDPBothWays is the vertical slice: ARP, ICMP and UDP cross a
// simulated channel between two namespaces through real TAP devices.
func TestPingAndUDPBothWays(t *testing.T) {
	l, p := startPair(t, 115200, "192.0.2")

	// Both nodes' kernels send IPv6 start-up multicast (router and
	// neighbour solicitations, MLD) as the TAPs come up; broadcast and
	// multicast go without link ARQ, so one of those may collide with the
	// first ARP request and cost an echo. None answered, or more lost, is a
	// failure.
	if got := pingCount(t, l, p.NS[0], p.Addr[1], 5, 5*time.Second); got < 4 {
		t.Fatalf("ping: %d of 5 replies", got)
	}

	cs := udpPair(t, p, 5000, 0)
	const n, size = 40, 1000
	got := make(chan *lab.RecvStats, 2)
	for i := range 2 {
		go func() {
			rs, err := lab.Receive(cs[i], 5*time.Second, time.Now().Add(30*time.Second))
			if err != nil {
				t.Error(err)
			}
			got <- rs
		}()
	}
	sent := make(chan lab.SendStats, 2)
	for i := range 2 {
		go func() { sent <- lab.Blast(cs[i], udpAddr(p.Addr[1-i], 5000), uint64(i+1), size, 20*time.Second, n) }()
	}
	// Both nodes send at once, so frames collide; link ARQ (on by
	// default) retransmits them. Giving a packet up takes eight rounds in
	// a row without progress: allow one such loss, never a duplicate, and
	// none on the hosts (checked below).
	for range 2 {
		rs := <-got
		for flow, f := range rs.Flows {
			if f.Received < n-1 || f.Duplicates != 0 {
				t.Errorf("flow %d: received %d of %d (%d duplicates)", flow, f.Received, n, f.Duplicates)
			}
		}
		if len(rs.Flows) != 1 {
			t.Errorf("receiver saw %d flows, want 1", len(rs.Flows))
		}
	}
	for i := range 2 {
		st, err := p.Status(i)
		if err != nil {
			t.Fatal(err)
		}
		b := st.Bridge
		if b.TxFrames < n || b.RxFrames < n*9/10 {
			t.Errorf("node%d: tx %d rx %d frames, want at least %d and %d", i+1, b.TxFrames, b.RxFrames, n, n*9/10)
		}
		if b.Drops.Total() != 0 {
			t.Errorf("node%d dropped: %+v", i+1, b.Drops)
		}
		t.Logf("node%d: arq %+v", i+1, b.ARQ)
		if q := st.Qdisc; q != nil && q.Root.Drops != 0 {
			t.Errorf("node%d: qdisc dropped %d", i+1, q.Root.Drops)
		}
		if l := st.Link; l != nil && l.TxDropped != 0 {
			t.Errorf("node%d: the TAP dropped %d (its ring overflowed)", i+1, l.TxDropped)
		}
	}
	for range 2 {
		if s := <-sent; s.Sent != n || s.Errors != 0 {
			t.Errorf("sender: %d of %d sent, %d errors", s.Sent, n, s.Errors)
		}
	}
}

// TestNeighbourAnsweredLocally: once a node has been heard using an
// address, the other daemon answers ARP requests and IPv6 neighbour
// solicitations for it from the TAP side, without airtime, and the kernel
// accepts those answers: after the neighbour caches are flushed, ping and
// ping -6 work again and the daemon counts the answers.
func TestNeighbourAnsweredLocally(t *testing.T) {
	l, p := startPair(t, 115200, "192.0.2")
	v6 := [2]string{"fd00::1", "fd00::2"}
	for i := range 2 {
		if _, err := l.Exec(p.NS[i], "ip", "-6", "addr", "add", v6[i]+"/64", "dev", p.Cfg.TAP, "nodad"); err != nil {
			t.Fatal(err)
		}
	}
	targets := []string{p.Addr[1], v6[1]}
	// First resolutions go on air; node 1 hears node 2's addresses.
	for _, to := range targets {
		if got := pingCount(t, l, p.NS[0], to, 3, 5*time.Second); got < 2 {
			t.Fatalf("ping %s: %d of 3 replies", to, got)
		}
	}
	before, err := p.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range []string{"-4", "-6"} {
		if _, err := l.Exec(p.NS[0], "ip", family, "neigh", "flush", "dev", p.Cfg.TAP); err != nil {
			t.Fatal(err)
		}
	}
	for _, to := range targets {
		if got := pingCount(t, l, p.NS[0], to, 2, 5*time.Second); got < 1 {
			t.Errorf("ping %s after the flush: %d of 2 replies", to, got)
		}
	}
	after, err := p.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	answered := after.Bridge.NeighAnswered - before.Bridge.NeighAnswered
	if answered < 2 || after.Bridge.NeighKnown < 2 {
		t.Errorf("node1 answered %d neighbour requests after the flush (knows %d addresses); want at least 2 (ARP and NS)",
			answered, after.Bridge.NeighKnown)
	}
	// The answers name node 2's link address.
	out, _ := l.Exec(p.NS[0], "ip", "neigh", "show", "dev", p.Cfg.TAP)
	if mac := framing.MACFor(2).String(); strings.Count(out, mac) < 2 {
		t.Errorf("neighbour table of node1 does not map both addresses to %s:\n%s", mac, out)
	}
}

// TestBlockingSenderLosesNothing is the pre-3.8 expectation: a sender that
// offers far more than the link carries is slowed down, and nothing is lost
// anywhere on the host. Thresholds are looser than the benchmark's.
func TestBlockingSenderLosesNothing(t *testing.T) {
	_, p := startPair(t, 115200, "192.0.2")
	cs := udpPair(t, p, 5001, 32768)
	const size = 1000
	done := make(chan *lab.RecvStats, 1)
	go func() {
		rs, err := lab.Receive(cs[1], 6*time.Second, time.Now().Add(60*time.Second))
		if err != nil {
			t.Error(err)
		}
		done <- rs
	}()
	// The link carries about 14 datagrams a second; offer it thousands.
	sent := lab.Blast(cs[0], udpAddr(p.Addr[1], 5001), 1, size, 4*time.Second, 200000)
	rs := <-done
	f := rs.Flows[1]
	if f == nil {
		t.Fatalf("nothing arrived; sender: %+v", sent)
	}
	t.Logf("sent %d, received %d, sender blocked %.0f%% of %s", sent.Sent, f.Received, 100*sent.Blocked.Seconds()/sent.Elapsed.Seconds(), sent.Elapsed)
	// Every datagram must leave the host on air (checked below with the
	// daemon's counters); the far node's own traffic (ARP, IPv6 neighbour
	// discovery) may collide with a few on the channel, which has no ARQ.
	if f.Received < sent.Sent*95/100 {
		t.Errorf("received %d of %d datagrams", f.Received, sent.Sent)
	}
	if sent.Errors != 0 {
		t.Errorf("%d sends failed", sent.Errors)
	}
	if sent.Blocked < sent.Elapsed/2 {
		t.Errorf("sender blocked only %s of %s: the link did not push back", sent.Blocked, sent.Elapsed)
	}
	st, err := p.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Link.TxDropped != 0 {
		t.Errorf("TAP tx_dropped %d", st.Link.TxDropped)
	}
	if st.Qdisc == nil || st.Qdisc.Root.Drops != 0 {
		t.Errorf("qdisc %+v: want one with no drops", st.Qdisc)
	}
	if d := st.Bridge.Drops.Total(); d != 0 {
		t.Errorf("daemon drops %+v", st.Bridge.Drops)
	}
	if st.Bridge.TxFrames < uint64(sent.Sent) {
		t.Errorf("node1 put %d frames on air for %d datagrams", st.Bridge.TxFrames, sent.Sent)
	}
}

// TestDropTailLosesUnderOverload shows what backpressure buys: the same
// blast with policy drop-tail and no shaper loses most datagrams.
func TestDropTailLosesUnderOverload(t *testing.T) {
	_, p := startPair(t, 115200, "192.0.2", "-policy", "drop-tail", "-shaper=false")
	cs := udpPair(t, p, 5002, 32768)
	done := make(chan *lab.RecvStats, 1)
	go func() {
		rs, _ := lab.Receive(cs[1], 4*time.Second, time.Now().Add(30*time.Second))
		done <- rs
	}()
	sent := lab.Blast(cs[0], udpAddr(p.Addr[1], 5002), 1, 1000, 2*time.Second, 200000)
	rs := <-done
	recv := 0
	if f := rs.Flows[1]; f != nil {
		recv = f.Received
	}
	t.Logf("sent %d, received %d", sent.Sent, recv)
	if recv == 0 || recv > sent.Sent/2 {
		t.Errorf("drop-tail delivered %d of %d: expected some, and far fewer than sent", recv, sent.Sent)
	}
	st, err := p.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Link.TxDropped+st.Bridge.Drops.QueueFull == 0 {
		t.Errorf("no drops counted at the TAP or in the daemon: %+v", st.Bridge.Drops)
	}
}

// TestTwoFlowsShareFairly: two senders on node 1 compete for the link; each
// gets a fair share (the per-flow qdisc), and neither loses anything.
func TestTwoFlowsShareFairly(t *testing.T) {
	_, p := startPair(t, 115200, "192.0.2")
	a := udpPair(t, p, 5003, 32768)
	b := udpPair(t, p, 5004, 32768)
	done := make(chan *lab.RecvStats, 2)
	for _, c := range []*net.UDPConn{a[1], b[1]} {
		go func() {
			rs, _ := lab.Receive(c, 6*time.Second, time.Now().Add(60*time.Second))
			done <- rs
		}()
	}
	sc := make(chan lab.SendStats, 2)
	go func() { sc <- lab.Blast(a[0], udpAddr(p.Addr[1], 5003), 1, 1000, 4*time.Second, 100000) }()
	go func() { sc <- lab.Blast(b[0], udpAddr(p.Addr[1], 5004), 2, 1000, 4*time.Second, 100000) }()
	s1, s2 := <-sc, <-sc
	var rates []float64
	received := 0
	for range 2 {
		rs := <-done
		for _, f := range rs.Flows {
			rates = append(rates, float64(f.Received))
			received += f.Received
		}
	}
	if len(rates) != 2 {
		t.Fatalf("flows seen: %d", len(rates))
	}
	j := lab.Jain(rates...)
	t.Logf("sent %d+%d, received %v, Jain %.3f", s1.Sent, s2.Sent, rates, j)
	if j < 0.9 {
		t.Errorf("Jain's index %.3f < 0.9: %v", j, rates)
	}
	// The far node's own multicast chatter (IPv6 neighbour discovery, MLD)
	// may collide with a frame or two on the channel, which has no ARQ.
	if received < (s1.Sent+s2.Sent)*95/100 {
		t.Errorf("received %d of %d", received, s1.Sent+s2.Sent)
	}
	st, err := p.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Link.TxDropped != 0 || st.Qdisc == nil || st.Qdisc.Root.Drops != 0 || st.Bridge.Drops.Total() != 0 {
		t.Errorf("host drops: TAP %d, qdisc %+v, daemon %+v", st.Link.TxDropped, st.Qdisc, st.Bridge.Drops)
	}
}

// TestMediumRestart: the medium goes away and comes back; the daemons keep
// running and traffic crosses again.
func TestMediumRestart(t *testing.T) {
	l, p := startPair(t, 115200, "192.0.2")
	if err := p.Medium.Stop(5 * time.Second); err != nil {
		t.Fatalf("stop medium: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	for i := range 2 {
		if done, err := p.Daemons[i].Exited(); done {
			t.Fatalf("node%d exited when the medium went away: %v", i+1, err)
		}
	}
	sock := filepath.Join(p.Cfg.Dir, "medium.sock")
	if _, err := l.Start("", "medium2", p.Logs[0], slidedBin, "sim", "-listen", sock, "-rate", "115200"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-W", "2", p.Addr[1])
		if err == nil && strings.Contains(out, "1 received") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ping after the medium came back: %v", err)
		}
	}
	st, err := p.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bridge.PHYDowns == 0 {
		t.Errorf("node1 counted no modem down")
	}
}

// TestStoppedDaemonDoesNotBlockOtherInterfaces: one socket sends through two
// interfaces; the daemon of one is stopped (SIGSTOP). Datagrams through the
// other keep flowing: a stuck daemon stalls the host for a bounded time only.
//
// With the credit (docs/backpressure.md) a stopped daemon loses nothing for
// -stall-limit and only then drops slowly: the first pair runs with a short
// limit so that the 8 s below are well past it.
func TestStoppedDaemonDoesNotBlockOtherInterfaces(t *testing.T) {
	l, p := startPair(t, 115200, "192.0.2", "-stall-limit", "500ms")
	// A second pair of daemons on the same two namespaces, on another TAP,
	// subnet and medium.
	dir := t.TempDir()
	sock := filepath.Join(dir, "medium.sock")
	if _, err := l.Start("", "medium-b", filepath.Join(dir, "medium.log"), slidedBin, "sim", "-listen", sock, "-rate", "115200"); err != nil {
		t.Fatal(err)
	}
	var ctl [2]string
	t.Cleanup(func() {
		if t.Failed() {
			for i := range 2 {
				t.Logf("--- b%d.log (the live link) ---\n%s", i+1, lab.Tail(filepath.Join(dir, fmt.Sprintf("b%d.log", i+1)), 20))
			}
		}
	})
	for i := range 2 {
		ctl[i] = filepath.Join(dir, fmt.Sprintf("b%d.ctl", i+1))
		if _, err := l.Start(p.NS[i], fmt.Sprintf("b%d", i+1), filepath.Join(dir, fmt.Sprintf("b%d.log", i+1)),
			slidedBin, "run", "-tap", "slided1", "-node", fmt.Sprint(i+1), "-phy", "sim:"+sock,
			"-addr", fmt.Sprintf("198.51.100.%d/24", i+1), "-control", ctl[i], "-log-format", "json"); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the second TAP to carry traffic.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-W", "2", "198.51.100.2"); err == nil && strings.Contains(out, "1 received") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second link never came up")
		}
	}
	// One unbound socket in namespace 1 sends to both links.
	var c *net.UDPConn
	if err := lab.InNS(p.NS[0], func() error {
		var err error
		c, err = net.ListenUDP("udp", &net.UDPAddr{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetWriteBuffer(32768); err != nil {
		t.Fatal(err)
	}
	rb := udpPair(t, &lab.Pair{NS: p.NS, Addr: [2]string{"198.51.100.1", "198.51.100.2"}}, 5005, 0)
	// Stop node 1 of the first pair: its TAP is no longer read.
	if err := p.Daemons[0].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer p.Daemons[0].Signal(syscall.SIGCONT)
	got := make(chan *lab.RecvStats, 1)
	go func() {
		rs, _ := lab.Receive(rb[1], 5*time.Second, time.Now().Add(40*time.Second))
		got <- rs
	}()
	// Alternate one datagram into the stalled link and one into the live
	// one, each allowed to wait 20 ms for room in the socket buffer, for 8 s.
	// With the pre-3.8 behaviour and no bound on the stall, the stalled
	// link's packets would hold the socket buffer for ever and the live link
	// would starve once it filled.
	buf := make([]byte, 1000)
	binary.BigEndian.PutUint64(buf, 9)
	stalled, live := udpAddr(p.Addr[1], 5006), udpAddr("198.51.100.2", 5005)
	liveSent := 0
	start := time.Now()
	for end := start.Add(8 * time.Second); time.Now().Before(end); {
		c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
		c.WriteToUDP(buf, stalled)
		binary.BigEndian.PutUint64(buf[8:], uint64(liveSent))
		c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := c.WriteToUDP(buf, live); err == nil {
			liveSent++
		}
		time.Sleep(10 * time.Millisecond)
	}
	rs := <-got
	f := rs.Flows[9]
	if f == nil {
		t.Fatalf("the live link delivered nothing while the other daemon was stopped (sent %d)", liveSent)
	}
	t.Logf("live link: sent %d, received %d, last at %.1fs while the other daemon was stopped",
		liveSent, f.Received, f.Last.Sub(start).Seconds())
	if f.Received < 20 || f.Last.Sub(start) < 6*time.Second {
		t.Errorf("the live link starved: %d datagrams, the last at %.1fs", f.Received, f.Last.Sub(start).Seconds())
	}
}

// TestTwoNodesShareFairly9600: both nodes blast at each other over 9600
// bit/s, as slided demo does (500-byte datagrams, 4 KiB send buffers, 8 s of
// sending); the two directions must get a fair share of what arrives, each
// node must count the other as a sender while both send (the count sizes
// its contention window), and nothing may be lost on either host. An
// earlier demo run delivered 2 of 21 datagrams one way and 25 of 25 the
// other; by the time this test was written the deferral rule passed it
// too (its send buffers keep few frames waiting), so the rule itself is
// compared in mac/csma (TestMediumSaturated, BenchmarkMedium).
func TestTwoNodesShareFairly9600(t *testing.T) {
	_, p := startPair(t, 9600, "198.51.100", "-cw-senders")
	cs := udpPair(t, p, 5006, 4096)
	done := make(chan *lab.RecvStats, 2)
	for i := range 2 {
		go func() {
			rs, err := lab.Receive(cs[i], 8*time.Second, time.Now().Add(60*time.Second))
			if err != nil {
				t.Error(err)
			}
			done <- rs
		}()
	}
	sc := make(chan lab.SendStats, 2)
	for i := range 2 {
		go func() { sc <- lab.Blast(cs[i], udpAddr(p.Addr[1-i], 5006), uint64(i+1), 500, 8*time.Second, 100000) }()
	}
	// Halfway through, each node hears the other sending.
	time.Sleep(4 * time.Second)
	for i := range 2 {
		if st := cliStatus(t, p, i); st.Bridge.Senders != 1 {
			t.Errorf("node%d: %d other senders heard while both send, want 1", i+1, st.Bridge.Senders)
		}
	}
	sent := (<-sc).Sent + (<-sc).Sent
	var got []float64
	for range 2 {
		rs := <-done
		if rs == nil {
			continue
		}
		for _, f := range rs.Flows {
			got = append(got, float64(f.Received))
		}
	}
	if len(got) != 2 {
		t.Fatalf("flows received: %v, want one each way", got)
	}
	j := lab.Jain(got...)
	t.Logf("sent %d in all, received %v, Jain %.3f", sent, got, j)
	// The benchmark-style figure is in docs/mac.md; this bound only
	// catches the old collapse (one direction starved).
	if j < 0.85 {
		t.Errorf("Jain's index %.3f < 0.85: received %v", j, got)
	}
	for i := range 2 {
		st := checkNoHostDrops(t, p, i)
		t.Logf("node%d: mac %+v, arq %+v", i+1, st.Bridge.MAC, st.Bridge.ARQ)
	}
}

// TestSenderRestartDelivers: node 1 sends to node 2, is restarted (SIGTERM,
// then the same command line: a new TAP, a new link layer), and sends again
// at once, well within node 2's memory of the sequence numbers it delivered.
// Every datagram of both lives must arrive: the restarted sender's first
// packet is marked First, and node 2 forgets the previous life's numbers
// instead of taking the new packets for duplicates (docs/link-arq.md).
// Before the First flag, flow 2 lost all 10 datagrams (10 duplicates).
func TestSenderRestartDelivers(t *testing.T) {
	l, p := startPair(t, 9600, "192.0.2")
	const n, size, port = 10, 200, 5007
	send := func(flow uint64) {
		t.Helper()
		cs := udpPair(t, p, port, 0)
		done := make(chan flowCount, 1)
		go func() {
			fc, err := countFlow(cs[1], flow, n, 15*time.Second, time.Now().Add(60*time.Second))
			if err != nil {
				t.Error(err)
			}
			done <- fc
		}()
		lab.Blast(cs[0], udpAddr(p.Addr[1], port), flow, size, 30*time.Second, n)
		fc := <-done
		cs[0].Close()
		cs[1].Close()
		if fc.received != n || fc.duplicates != 0 {
			t.Errorf("flow %d: %d of %d datagrams, %d duplicates", flow, fc.received, n, fc.duplicates)
		}
	}
	send(1)
	if err := l.RestartNode(p, 0); err != nil {
		t.Fatal(err)
	}
	send(2)
	st := cliStatus(t, p, 1)
	t.Logf("node2 after the restart: arq %+v", st.Bridge.ARQ)
}
