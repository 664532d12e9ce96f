//go:build linux

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/control"
	"github.com/slided/slided/internal/lab"
	"github.com/slided/slided/status"
	"github.com/slided/slided/tap"
)

// TestForwardedFloodBounded (issue 11, traffic with no sending socket):
// node 1 routes from a veth into its TAP, and a third namespace floods
// 20,000 datagrams of 1000 bytes through it, which nothing pushes back on.
// What node 1's qdisc holds of them stays within -forward-queue (the
// default, 4 MiB: ForwardLimit packets), the rest is dropped at the
// forward queue and counted there; a blocking sender on node 1 itself,
// sending meanwhile, loses nothing on the host and every one of its
// datagrams arrives.
func TestForwardedFloodBounded(t *testing.T) {
	p, src := forwardingPair(t)
	fc, err := lab.ListenUDP(src, "198.51.100.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	cs := udpPair(t, p, 6001, 0) // node 1's own blocking sender, node 2's receiver
	receiveBuffer(t, cs[1])

	const flood, local, localSize = 20_000, 30, 200
	before := readCounts(t, p)
	recvd := make(chan *lab.RecvStats, 1)
	go func() {
		rs, err := lab.Receive(cs[1], 20*time.Second, time.Now().Add(150*time.Second))
		if err != nil {
			t.Error(err)
		}
		recvd <- rs
	}()
	mem0 := meminfo(t)
	fs := lab.Blast(fc, udpAddr(p.Addr[1], 6000), 1, 1000, 5*time.Second, flood)
	mem1 := meminfo(t)
	// A figure, not asserted: the machine's other jobs move it too.
	t.Logf("kernel memory during the flood: Slab %+d kB, MemAvailable %+d kB",
		mem1["Slab"]-mem0["Slab"], mem1["MemAvailable"]-mem0["MemAvailable"])
	st, err := p.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	ss := lab.Blast(cs[0], udpAddr(p.Addr[1], 6001), 2, localSize, 60*time.Second, local)
	if st.Qdisc == nil {
		t.Fatal("node 1 has no qdisc")
	}
	limit := tap.ForwardLimit(tap.DefaultForwardQueue, 1500)
	t.Logf("flooded %d from behind a veth; node 1's qdisc holds %d packets; forward queue %+v (limit for the default budget %d)",
		fs.Sent, st.Qdisc.Root.Qlen, st.Qdisc.Forward, limit)
	if fs.Sent < flood/2 {
		t.Fatalf("the flood sent only %d datagrams", fs.Sent)
	}
	// The qdisc may hold the forward queue and what the credit let by.
	if q := st.Qdisc.Root.Qlen; q > limit+64 {
		t.Errorf("node 1's qdisc holds %d forwarded packets, more than the forward queue's %d (-forward-queue %d bytes)",
			q, limit, tap.DefaultForwardQueue)
	}
	f := st.Qdisc.Forward
	if f == nil {
		t.Fatal("status has no forward queue")
	}
	if f.Limit != limit || f.Qlen > f.Limit {
		t.Errorf("forward queue holds %d of at most %d packets, want a limit of %d", f.Qlen, f.Limit, limit)
	}
	if f.Drops == 0 {
		t.Errorf("no forward drops after %d datagrams into a queue of %d", fs.Sent, f.Limit)
	}

	rs := <-recvd
	got := 0
	if fl := rs.Flows[2]; fl != nil {
		got = fl.Received
	}
	after := readCounts(t, p)
	st2, err := p.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	ring, qdisc, daemon := after.ring-before.ring, after.qdisc-before.qdisc, after.daemon-before.daemon
	var fwDrops uint64
	if st2.Qdisc != nil && st2.Qdisc.Forward != nil {
		fwDrops = uint64(st2.Qdisc.Forward.Drops)
	}
	t.Logf("local sender: sent %d, delivered %d; host drops: ring %d, qdisc %d (forward queue %d), daemon %d",
		ss.Sent, got, ring, qdisc, fwDrops, daemon)
	if ss.Sent != local {
		t.Errorf("the local sender sent %d of %d datagrams (errors %d)", ss.Sent, local, ss.Errors)
	}
	if got < ss.Sent {
		t.Errorf("delivered %d of the local sender's %d datagrams", got, ss.Sent)
	}
	if ring != 0 || daemon != 0 || qdisc != fwDrops {
		t.Errorf("host drops besides the forward queue's: ring %d, qdisc %d of which forward %d, daemon %d", ring, qdisc, fwDrops, daemon)
	}
}

// TestForwardQueueUnderUser: the eBPF classifiers (forward queue, a bucket
// for each socket) are loaded before -user drops every capability but
// CAP_NET_ADMIN, and attached when the qdisc is installed afterwards,
// which needs only that one.
func TestForwardQueueUnderUser(t *testing.T) {
	l, p := startPair(t, 115200, "192.0.2", "-user", "nobody")
	if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-w", "15", p.Addr[1]); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	st, err := p.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Qdisc == nil || st.Qdisc.Forward == nil {
		t.Fatalf("no forward queue under -user: qdisc %+v, warnings %q", st.Qdisc, st.Warnings)
	}
	for _, w := range st.Warnings {
		if strings.Contains(w, "forward queue") {
			t.Errorf("warning %q with the forward queue installed", w)
		}
	}
	if strings.Contains(st.Backpressure, "hashed") {
		t.Errorf("no socket classifier under -user: %s", st.Backpressure)
	}
}

// TestForwardQueueUnderTheUnitSandbox: started as
// packaging/slided.service starts it, with -user nobody, the daemon has
// the forward queue and a bucket for each socket: the unit's bounding set
// lets it load the classifiers.
func TestForwardQueueUnderTheUnitSandbox(t *testing.T) {
	l, ns, ctl, _, d := startSandboxed(t, 115200, false, unitSandbox(t, nil, ""), "-user", "nobody")
	var st status.Snapshot
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// Traffic into the TAP makes the daemon install its qdisc.
		l.Exec(ns, "ping", "-c", "1", "-W", "1", "192.0.2.2")
		raw, err := control.Query(ctl, "status", 2*time.Second)
		if err == nil && json.Unmarshal(raw, &st) == nil && st.Qdisc != nil {
			break
		}
		if done, err := d.Exited(); done {
			t.Fatalf("daemon exited: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no qdisc after 15 s: %v", err)
		}
	}
	if st.Qdisc.Forward == nil {
		t.Errorf("no forward queue under the unit's sandbox; warnings %q", st.Warnings)
	}
	if strings.Contains(st.Backpressure, "hashed") {
		t.Errorf("no socket classifier under the unit's sandbox: %s", st.Backpressure)
	}
}

// meminfo reads /proc/meminfo's figures, in kB.
func meminfo(t *testing.T) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			m[strings.TrimSuffix(f[0], ":")] = n
		}
	}
	return m
}

// forwardingPair starts two daemons at 115200 bit/s (192.0.2.0/24) and a
// third namespace, returned as src, whose veth fw0 (198.51.100.2) reaches
// node 1 (198.51.100.1 on fw1); node 1 forwards, and src routes
// 192.0.2.0/24 through it: what src sends to node 2 reaches node 1's TAP
// with no socket behind it (forwarded traffic, docs/backpressure.md).
func forwardingPair(t testing.TB) (*lab.Pair, string) {
	t.Helper()
	l, p := startPair(t, 115200, "192.0.2")
	if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-w", "15", p.Addr[1]); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	src, err := l.AddNS("src")
	if err != nil {
		t.Fatal(err)
	}
	for _, argv := range [][]string{
		{"ip", "-n", src, "link", "add", "fw0", "type", "veth", "peer", "name", "fw1", "netns", p.NS[0]},
		{"ip", "-n", src, "addr", "add", "198.51.100.2/24", "dev", "fw0"},
		{"ip", "-n", src, "link", "set", "fw0", "up"},
		{"ip", "-n", p.NS[0], "addr", "add", "198.51.100.1/24", "dev", "fw1"},
		{"ip", "-n", p.NS[0], "link", "set", "fw1", "up"},
		{"ip", "netns", "exec", p.NS[0], "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "-n", src, "route", "add", "192.0.2.0/24", "via", "198.51.100.1"},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	return p, src
}
