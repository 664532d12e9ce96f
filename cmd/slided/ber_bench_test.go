//go:build linux

package main

// BenchmarkBER: goodput of a blocking bulk sender over a medium that flips
// bits, with link ARQ on and off, through real daemons and TAP devices
// (docs/link-arq.md has the figures). Run it with
//
//	go test -run '^$' -bench BER -benchtime 1x ./cmd/slided

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slided/slided/internal/lab"
)

func BenchmarkBER(b *testing.B) {
	const (
		rate     = 9600
		frameMax = 64
		blast    = 30 * time.Second
	)
	for _, ber := range []float64{0, 1e-5, 1e-4, 1e-3} {
		for _, arqOn := range []bool{true, false} {
			b.Run(fmt.Sprintf("ber=%g/arq=%v", ber, arqOn), func(b *testing.B) {
				for range b.N {
					runBER(b, rate, frameMax, ber, arqOn, blast)
				}
			})
		}
	}
}

// berScenario: two nodes a metre apart at the speed of light, every bit
// flipped with the given probability.
const berScenario = `[propagation]
speed = "light"
ber = %g

[[node]]
id = 1
position = [0, 0]

[[node]]
id = 2
position = [1, 0]
`

func runBER(b *testing.B, rate, frameMax int, ber float64, arqOn bool, blast time.Duration) {
	b.Helper()
	scen := filepath.Join(b.TempDir(), "ber.toml")
	if err := os.WriteFile(scen, []byte(fmt.Sprintf(berScenario, ber)), 0o644); err != nil {
		b.Fatal(err)
	}
	l, p := startPairConfig(b, lab.PairConfig{Rate: rate, Subnet: "198.51.100",
		MediumArgs: []string{"-scenario", scen},
		Args:       []string{"-frame-max", fmt.Sprint(frameMax), fmt.Sprintf("-arq=%v", arqOn)}})
	// Neighbour discovery first, so that the blast measures the link.
	pingCount(b, l, p.NS[0], p.Addr[1], 3, 20*time.Second)
	cs := udpPair(b, p, 6100, 8<<10)
	before, before2 := mustStatus(b, p, 0), mustStatus(b, p, 1)
	recvd := make(chan *lab.RecvStats, 1)
	go func() {
		rs, err := lab.Receive(cs[1], 15*time.Second, time.Now().Add(blast+2*time.Minute))
		if err != nil {
			b.Error(err)
		}
		recvd <- rs
	}()
	start := time.Now()
	ts := blastTimed(cs[0], udpAddr(p.Addr[1], 6100), 1, blast)
	rs := <-recvd
	after, after2 := mustStatus(b, p, 0), mustStatus(b, p, 1)
	var got int
	var last time.Time
	if f := rs.Flows[1]; f != nil {
		got, last = f.Received, f.Last
	}
	goodput := 0.0
	if got > 0 {
		goodput = float64(got*bulkSize*8) / last.Sub(start).Seconds()
	}
	tx := after.Bridge.TxBytes - before.Bridge.TxBytes + after2.Bridge.TxBytes - before2.Bridge.TxBytes
	b.ReportMetric(goodput, "goodput_bit/s")
	b.ReportMetric(goodput/float64(rate), "goodput/channel")
	b.ReportMetric(float64(ts.Sent), "sent")
	b.ReportMetric(float64(got), "delivered")
	if ts.Sent > 0 {
		b.ReportMetric(float64(got)/float64(ts.Sent), "delivered/sent")
	}
	if got > 0 {
		b.ReportMetric(float64(tx)/float64(got), "air_bytes/datagram")
	}
	a := after.Bridge.ARQ
	b.ReportMetric(float64(a.Retransmissions-before.Bridge.ARQ.Retransmissions), "retransmissions")
	b.ReportMetric(float64(a.GiveUps-before.Bridge.ARQ.GiveUps), "give_ups")
	b.ReportMetric(float64(after2.Bridge.Drops.BadCRC-before2.Bridge.Drops.BadCRC+after2.Bridge.Drops.Garbage-before2.Bridge.Drops.Garbage), "rx_bad_frames")
}
