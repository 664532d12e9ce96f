//go:build linux

package main

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/slided/slided/internal/lab"
)

// TestBackpressureLongStop is TestBackpressureStoppedDaemon with a stop of
// SLIDED_LONG_STOP (a Go duration, e.g. 20s; the test is skipped without
// it: too long for the default suite), longer than the link ARQ's
// max_age (12.3 s at 115200 bit/s). Besides full delivery it asserts that
// node 1's link gave nothing up: the time its process did not run ages no
// packet (arq.ARQ.Stalled; before, 4 or 5 frames in flight when the daemon
// stopped were given up after a 20 s stop, docs/backpressure.md "The
// bounded stall").
func TestBackpressureLongStop(t *testing.T) {
	stop, err := time.ParseDuration(os.Getenv("SLIDED_LONG_STOP"))
	if err != nil || stop <= 0 {
		t.Skip("set SLIDED_LONG_STOP (e.g. 20s) to stop node 1 that long mid-blast")
	}
	l, p := startPair(t, 115200, "192.0.2")
	if out, err := l.Exec(p.NS[0], "ping", "-c", "1", "-w", "15", p.Addr[1]); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	cs := udpPair(t, p, 6000, 0)
	receiveBuffer(t, cs[1])
	before := readCounts(t, p)
	st0, err := p.Status(0)
	if err != nil || st0.Bridge == nil {
		t.Fatalf("node1 status: %v", err)
	}
	recvd := make(chan *lab.RecvStats, 1)
	go func() {
		rs, err := lab.Receive(cs[1], stop+15*time.Second, time.Now().Add(150*time.Second+stop))
		if err != nil {
			t.Error(err)
		}
		recvd <- rs
	}()
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
	ss := <-sent
	rs := <-recvd
	checkDelivered(t, p, ss, rs, 1, before)
	st1, err := p.Status(0)
	if err != nil || st1.Bridge == nil {
		t.Fatalf("node1 status: %v", err)
	}
	a0, a1 := st0.Bridge.ARQ, st1.Bridge.ARQ
	t.Logf("node 1's link over the blast: %d packets, %d acknowledged, %d timeouts, %d retransmissions, %d given up",
		a1.Packets-a0.Packets, a1.Acked-a0.Acked, a1.Timeouts-a0.Timeouts, a1.Retransmissions-a0.Retransmissions, a1.GiveUps-a0.GiveUps)
	if g := a1.GiveUps - a0.GiveUps; g != 0 {
		t.Errorf("node 1's link gave up %d packets across a %v stop", g, stop)
	}
}
