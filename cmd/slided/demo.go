//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"

	"github.com/slided/slided/internal/lab"
)

// The demo's network: documentation addresses only, inside namespaces the
// demo creates and removes.
const (
	demoRate   = 9600
	demoSubnet = "198.51.100"
	demoBlast  = 8 * time.Second
	demoSize   = 500
)

func cmdDemo(args []string, out io.Writer) error {
	fs := newFlags("demo")
	keep := fs.Bool("keep-logs", false, "keep the daemons' logs (their directory is printed)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return usageError("demo", "the demo creates network namespaces and TAP devices: run it as root (sudo slided demo)")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	dir, err := os.MkdirTemp("", "slided-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	l, err := lab.New("slided-demo")
	if err != nil {
		return err
	}
	defer func() {
		if err := l.Close(); err != nil {
			fmt.Fprintf(out, "cleanup: %v\n", err)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	say("slided demo: two nodes in their own network namespaces share a simulated %d bit/s half-duplex channel.", demoRate)
	p, err := l.StartPair(lab.PairConfig{Bin: self, Dir: dir, Rate: demoRate, Subnet: demoSubnet})
	if err != nil {
		return err
	}
	say("  node 1: %s on slided0 in %s", p.Addr[0], p.NS[0])
	say("  node 2: %s on slided0 in %s", p.Addr[1], p.NS[1])

	say("\n1. ping from node 1 to node 2 (ARP and ICMP cross the channel):")
	ping, err := l.Exec(p.NS[0], "ping", "-c", "3", "-i", "0.5", "-W", "5", p.Addr[1])
	if m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received.*\n.*= ([\d.]+)/([\d.]+)/([\d.]+)`).FindStringSubmatch(ping); m != nil {
		say("   %s sent, %s answered, round trip min/avg/max %s/%s/%s ms", m[1], m[2], m[3], m[4], m[5])
	} else {
		say("   ping failed: %v", err)
	}
	if ctx.Err() != nil {
		return nil
	}

	say("\n2. both nodes send %d-byte UDP datagrams to each other as fast as their sockets let them, for %s:", demoSize, demoBlast)
	res, err := demoTraffic(ctx, p, out)
	if err != nil {
		return err
	}
	for i, r := range res {
		say("   node %d -> node %d: %d sent, %d delivered, %.0f bit/s of UDP payload; the sender waited in send() %.0f%% of the time",
			i+1, 2-i, r.sent.Sent, r.got, r.goodput*8, 100*r.sent.Blocked.Seconds()/r.sent.Elapsed.Seconds())
	}
	total := (res[0].goodput + res[1].goodput) * 8
	say("   together %.0f bit/s, %.0f%% of the %d bit/s channel; fairness (Jain) %.2f",
		total, 100*total/demoRate, demoRate, lab.Jain(res[0].goodput, res[1].goodput))

	say("\n3. what the daemons counted (slided status):")
	var hostDrops uint64
	for i := range 2 {
		st, err := p.Status(i)
		if err != nil {
			say("   node %d: %v", i+1, err)
			continue
		}
		b := st.Bridge
		var ringDrops, qdrops uint64
		if st.Link != nil {
			ringDrops = st.Link.TxDropped
		}
		if st.Qdisc != nil {
			qdrops = uint64(st.Qdisc.Root.Drops)
		}
		say("   node %d: %d frames sent, %d received; dropped: %d in the daemon, %d in the qdisc, %d at the TAP; backpressure: %s",
			i+1, b.TxFrames, b.RxFrames, b.Drops.Total(), qdrops, ringDrops, st.Backpressure)
		hostDrops += b.Drops.Total() + qdrops + ringDrops
	}
	lost := res[0].sent.Sent - res[0].got + res[1].sent.Sent - res[1].got
	switch {
	case hostDrops == 0 && lost == 0:
		say("\nNothing was lost: the link pushed back on the senders instead.")
	case hostDrops == 0:
		say("\nNo host dropped anything: the link pushed back on the senders instead. %d datagram(s) did not arrive"+
			" while the demo waited: given up on the shared channel, or still queued behind the other node's traffic"+
			" (the share between two nodes is uneven at this rate: docs/mac.md).", lost)
	default:
		say("\n%d packet(s) were dropped on the hosts (see above) and %d datagram(s) did not arrive while the demo waited.", hostDrops, lost)
	}
	say("Cleaning up.")
	if *keep {
		say("logs: %s", dir)
	}
	return nil
}

type demoResult struct {
	sent        lab.SendStats
	got         int
	goodput     float64 // bytes/s over the window both flows share (sharedGoodput)
	bytes       int64
	first, last time.Time
}

// sharedGoodput sets each flow's goodput over one window, from the first
// datagram either flow delivered to the last: two flows measured each over
// its own span could add up to more than the channel carries.
func sharedGoodput(res *[2]demoResult) {
	var first, last time.Time
	for _, r := range res {
		if r.got == 0 {
			continue
		}
		if first.IsZero() || r.first.Before(first) {
			first = r.first
		}
		if r.last.After(last) {
			last = r.last
		}
	}
	d := last.Sub(first).Seconds()
	for i := range res {
		res[i].goodput = 0
		if d > 0 {
			res[i].goodput = float64(res[i].bytes) / d
		}
	}
}

func demoTraffic(ctx context.Context, p *lab.Pair, out io.Writer) ([2]demoResult, error) {
	var res [2]demoResult
	var conns [2]*net.UDPConn
	for i := range 2 {
		c, err := lab.ListenUDP(p.NS[i], p.Addr[i]+":5000")
		if err != nil {
			return res, err
		}
		defer c.Close()
		// A small send buffer keeps what waits in the qdisc to a few
		// seconds of this slow channel, so the demo ends soon after the
		// senders stop.
		if err := c.SetWriteBuffer(4096); err != nil {
			return res, err
		}
		conns[i] = c
	}
	type recv struct {
		i  int
		rs *lab.RecvStats
		e  error
	}
	rc := make(chan recv, 2)
	for i := range 2 {
		go func() {
			rs, err := lab.Receive(conns[i], 8*time.Second, time.Now().Add(demoBlast+40*time.Second))
			rc <- recv{i, rs, err}
		}()
	}
	sc := make(chan [2]any, 2)
	for i := range 2 {
		go func() {
			dst := &net.UDPAddr{IP: net.ParseIP(p.Addr[1-i]), Port: 5000}
			st := lab.Blast(conns[i], dst, uint64(i+1), demoSize, demoBlast, 100000)
			sc <- [2]any{i, st}
		}()
	}
	// A progress line while the senders run: rewritten in place on a
	// terminal, one line every two seconds otherwise.
	tty := isTerminal(out)
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for n := 0; n < 2; {
		select {
		case s := <-sc:
			res[s[0].(int)].sent = s[1].(lab.SendStats)
			n++
		case <-tick.C:
			el := time.Since(start).Seconds()
			if !tty && int(el+0.5)%2 != 0 {
				continue
			}
			if st, err := p.Status(0); err == nil {
				line := fmt.Sprintf("   %2.0fs of %s  node 1: %d frames on air, qdisc pacing %d B/s",
					el, demoBlast, st.Bridge.TxFrames, st.Bridge.PacingRate)
				if tty {
					fmt.Fprintf(out, "\r%s   ", line)
				} else {
					fmt.Fprintln(out, line)
				}
			}
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	if tty {
		fmt.Fprint(out, "\r")
	}
	fmt.Fprintf(out, "   senders done after %.1fs; waiting for the queues to drain...          \n", time.Since(start).Seconds())
	for range 2 {
		r := <-rc
		if r.e != nil {
			return res, r.e
		}
		// Receiver i got the datagrams node 1-i sent (flow 2-i).
		if f := r.rs.Flows[uint64(2-r.i)]; f != nil {
			res[1-r.i].got = f.Received
			res[1-r.i].bytes, res[1-r.i].first, res[1-r.i].last = f.Bytes, f.First, f.Last
		}
	}
	sharedGoodput(&res)
	return res, nil
}
