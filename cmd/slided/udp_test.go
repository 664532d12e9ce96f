//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slided/slided/internal/lab"
)

// TestMediumOverUDP: the medium in a namespace of its own, reached over UDP
// through veth pairs and a bridge (as a medium on another host would be);
// a daemon in each of two other namespaces with -phy sim-udp, all with one
// key. Ping and UDP cross; the medium is killed and restarted, and traffic
// crosses again.
//
// Addresses, all from 198.51.100.0/24: the underlay 198.51.100.0/25 (medium
// .1, daemons .2 and .3), the daemons' TAP link 198.51.100.128/25 (.129,
// .130). No default routes.
func TestMediumOverUDP(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("end-to-end tests create network namespaces and TAP devices: run them as root")
	}
	l, err := lab.New("slided-udp")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logs := []string{filepath.Join(dir, "medium.log"), filepath.Join(dir, "node1.log"), filepath.Join(dir, "node2.log")}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if t.Failed() {
			for _, f := range logs {
				t.Logf("--- %s ---\n%s", filepath.Base(f), lab.Tail(f, 30))
			}
		}
	})
	ip := func(args ...string) {
		t.Helper()
		out, err := runCmd("ip", args...)
		if err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}

	med, err := l.AddNS("med")
	if err != nil {
		t.Fatal(err)
	}
	ip("-n", med, "link", "add", "br0", "type", "bridge")
	ip("-n", med, "addr", "add", "198.51.100.1/25", "dev", "br0")
	ip("-n", med, "link", "set", "br0", "up")
	p := &lab.Pair{}
	for i := range 2 {
		ns, err := l.AddNS(fmt.Sprintf("n%d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		p.NS[i] = ns
		peer := fmt.Sprintf("m%d", i+1)
		ip("-n", ns, "link", "add", "u0", "type", "veth", "peer", "name", peer, "netns", med)
		ip("-n", med, "link", "set", peer, "master", "br0", "up")
		ip("-n", ns, "addr", "add", fmt.Sprintf("198.51.100.%d/25", i+2), "dev", "u0")
		ip("-n", ns, "link", "set", "u0", "up")
	}

	const mediumAddr = "198.51.100.1:7300"
	// The medium authenticates its members with a key (docs/simulator.md).
	keyFile := filepath.Join(dir, "medium.key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startMedium := func(name string) *lab.Proc {
		t.Helper()
		m, err := l.Start(med, name, logs[0], slidedBin, "sim", "-listen-udp", mediumAddr, "-key", keyFile, "-rate", "115200", "-log-format", "json")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	medium := startMedium("medium")
	var daemons [2]*lab.Proc
	for i := range 2 {
		p.Addr[i] = fmt.Sprintf("198.51.100.%d", 129+i)
		p.Ctl[i] = filepath.Join(dir, fmt.Sprintf("node%d.ctl", i+1))
		d, err := l.Start(p.NS[i], fmt.Sprintf("node%d", i+1), logs[i+1], slidedBin, "run", "-tap", "slided0",
			"-node", strconv.Itoa(i+1), "-phy", "sim-udp:"+mediumAddr+"?key="+keyFile, "-addr", p.Addr[i]+"/25",
			"-control", p.Ctl[i], "-log-format", "json")
		if err != nil {
			t.Fatal(err)
		}
		daemons[i] = d
	}
	waitUp := func() {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for i := range 2 {
			for {
				st, err := p.Status(i)
				if err == nil && st.Bridge.Up {
					break
				}
				if done, perr := daemons[i].Exited(); done {
					t.Fatalf("node%d exited: %v", i+1, perr)
				}
				if time.Now().After(deadline) {
					t.Fatalf("node%d not up after 20 s (last: %v)", i+1, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	waitUp()

	// One echo in five may meet the nodes' IPv6 start-up multicast on air.
	if got := pingCount(t, l, p.NS[0], p.Addr[1], 5, 5*time.Second); got < 4 {
		t.Fatalf("ping: %d of 5 replies", got)
	}
	udpCross(t, p, 5300, 20)

	// Kill the medium outright: no goodbye; the daemons find out from
	// ICMP port unreachable or the keep-alive timeout.
	if err := medium.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if done, _ := medium.Exited(); done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the medium did not die")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 2 {
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := p.Status(i)
			if err == nil && !st.Bridge.Up {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node%d still reports its modem up 10 s after the medium died (%v)", i+1, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	startMedium("medium2")
	waitUp()
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
	udpCross(t, p, 5301, 20)
	for i := range 2 {
		st, err := p.Status(i)
		if err != nil {
			t.Fatal(err)
		}
		if st.Bridge.PHYDowns == 0 {
			t.Errorf("node%d counted no modem down", i+1)
		}
	}
}

// udpCross sends n datagrams one way, then n the other, and wants nearly
// all of them across. The directions take turns: this test is about the UDP
// transport, and contention between two senders (where, with no ARQ, a
// collision loses a frame, and a loaded 2-core machine makes carrier sense
// late) is TestPingAndUDPBothWays's business.
func udpCross(t *testing.T, p *lab.Pair, port, n int) {
	t.Helper()
	cs := udpPair(t, p, port, 0)
	for i := range 2 {
		got := make(chan *lab.RecvStats, 1)
		go func() {
			rs, err := lab.Receive(cs[1-i], 5*time.Second, time.Now().Add(30*time.Second))
			if err != nil {
				t.Error(err)
			}
			got <- rs
		}()
		lab.Blast(cs[i], udpAddr(p.Addr[1-i], port), uint64(i+1), 500, 10*time.Second, n)
		rs := <-got
		if rs == nil || len(rs.Flows) != 1 {
			t.Fatalf("receiver saw %+v, want one flow", rs)
		}
		for flow, f := range rs.Flows {
			if f.Received < n*9/10 || f.Duplicates != 0 {
				t.Errorf("flow %d: received %d of %d (%d duplicates)", flow, f.Received, n, f.Duplicates)
			}
		}
	}
	for _, c := range cs {
		c.Close()
	}
}

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
