//go:build linux

package main

// Benchmarks of issue 16: two daemons over emulated store-and-forward
// acoustic modems (internal/acoustic), measured end to end through real
// TAPs. Run one at a time, with -benchtime 1x (each run is minutes of real
// time); docs/performance.md, "Acoustic modem over a serial line", has the
// commands and the figures.
//
// Environment, to try daemon settings without editing:
//
//	ACOUSTIC_ARGS    extra `slided run` arguments for both daemons, space-separated (e.g. "-arq=false -mtu 296")
//	ACOUSTIC_Q       appended to the -phy serial: URL after the profile (e.g. "&frame=128")
//	ACOUSTIC_ECHOES  number of echoes (default 20 at 2400 bit/s, 10 otherwise)
//	ACOUSTIC_DUR     how long both nodes send in BenchmarkAcousticBothWays (default 120s)
//	ACOUSTIC_STAGGER how long node 2 waits before it starts sending there (default 0)

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slided/slided/internal/acoustic"
	"github.com/slided/slided/internal/lab"
	"github.com/slided/slided/status"
)

// acousticCase is one deployment: the emulator's modems, the water between
// them and the daemon's -phy query that describes them.
type acousticCase struct {
	mc   acoustic.ModemConfig
	prop time.Duration
	q    string // -phy serial:PATH query, from "?"
	// floor is the physical floor of a 64-byte UDP echo's round trip.
	floor float64
	// echoes and timeout: how many echoes, each waiting this long.
	echoes  int
	timeout time.Duration
}

// echoWire is the bytes on the serial line of a 64-byte UDP datagram: 64 +
// 8 (UDP) + 20 (IPv4) + 14 (Ethernet) + the link header, CRC and COBS
// overhead (about 10).
const echoWire = 116

// physFloor is the round trip of an echo with nothing but the physics: each
// way the datagram's wire bytes cross the serial line into the modem, the
// modem keys up (one preamble per packet of MaxPacket bytes) and sends them
// at the air rate, they cross the water and leave the far modem over its
// serial line. No gaps, no MAC waits, no Acks.
func physFloor(mc acoustic.ModemConfig, prop time.Duration, n int) float64 {
	pkts := (n + mc.MaxPacket - 1) / mc.MaxPacket
	oneWay := float64(pkts)*mc.Preamble.Seconds() + float64(8*n)/float64(mc.AirRate) +
		prop.Seconds() + 2*float64(10*n)/float64(mc.Baud)
	return 2 * oneWay
}

var (
	// acoustic2400 is the modem: 19200 baud, 2400 bit/s, 256-byte
	// packets, 0.25 s preamble, 1 s of water. The issue gives its floor
	// as 3.4 s (physFloor says 3.5 with echoWire).
	acoustic2400 = acousticCase{
		mc: acoustic.ModemConfig{Mode: acoustic.Packet, Baud: 19200, AirRate: 2400,
			Preamble: 250 * time.Millisecond, MaxPacket: 256},
		prop: time.Second, q: "?profile=acoustic-2400", floor: 3.4, echoes: 20, timeout: 30 * time.Second,
	}
	// acoustic300 is a long-range modem: 9600 baud, 300 bit/s, 64-byte
	// packets, 0.75 s preamble, 3 km (2 s) of water.
	acoustic300 = acousticCase{
		mc: acoustic.ModemConfig{Mode: acoustic.Packet, Baud: 9600, AirRate: 300,
			Preamble: 750 * time.Millisecond, MaxPacket: 64},
		prop: 2 * time.Second, q: "?profile=acoustic-300&frame=64", echoes: 10, timeout: 90 * time.Second,
	}
	// acoustic9600 is a fast modem at 3 km: 19200 baud, 9600 bit/s,
	// 256-byte packets, 0.25 s preamble, 2 s of water.
	acoustic9600 = acousticCase{
		mc: acoustic.ModemConfig{Mode: acoustic.Packet, Baud: 19200, AirRate: 9600,
			Preamble: 250 * time.Millisecond, MaxPacket: 256},
		prop: 2 * time.Second, q: "?profile=acoustic-2400&air=9600&range=3000", echoes: 10, timeout: 30 * time.Second,
	}
)

func init() {
	for _, c := range []*acousticCase{&acoustic300, &acoustic9600} {
		c.floor = physFloor(c.mc, c.prop, echoWire)
	}
}

// start starts the emulator and both daemons with the environment's
// settings.
func (c acousticCase) start(b *testing.B) *acousticPair {
	b.Helper()
	var extra []string
	if s := os.Getenv("ACOUSTIC_ARGS"); s != "" {
		extra = strings.Fields(s)
	}
	b.Logf("phy query %q, extra args %q", c.q+os.Getenv("ACOUSTIC_Q"), extra)
	return startAcousticWith(b, c.mc, c.prop, c.q+os.Getenv("ACOUSTIC_Q"), extra...)
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return v
}

// runEcho sends c.echoes 64-byte echoes one at a time and reports the
// answered count, the median and max round trip and the median's ratio to
// the physical floor, with the link counters.
func runEcho(b *testing.B, c acousticCase) {
	for range b.N {
		a := c.start(b)
		n := envInt(b, "ACOUSTIC_ECHOES", c.echoes)
		rtts := a.echoesWithin(b, n, c.timeout, nil)
		sts := a.report(b)
		b.ReportMetric(float64(len(rtts)), "answered")
		b.ReportMetric(float64(n), "echoes")
		if len(rtts) > 0 {
			med := rtts[len(rtts)/2].Seconds()
			b.ReportMetric(med, "median_s")
			b.ReportMetric(rtts[len(rtts)-1].Seconds(), "max_s")
			b.ReportMetric(med/c.floor, "median/floor")
		}
		b.ReportMetric(c.floor, "floor_s")
		reportLink(b, a, sts)
	}
}

// reportLink reports both daemons' ARQ and host-drop counters and the
// emulator's losses.
func reportLink(b *testing.B, a *acousticPair, sts [2]*status.Snapshot) {
	var giveUps, timeouts, retx, hostDrops float64
	for _, st := range sts {
		r := st.Bridge.ARQ
		giveUps += float64(r.GiveUps)
		timeouts += float64(r.Timeouts)
		retx += float64(r.Retransmissions)
		hostDrops += float64(st.Bridge.Drops.Total())
		if st.Link != nil {
			hostDrops += float64(st.Link.TxDropped)
		}
		if st.Qdisc != nil {
			hostDrops += float64(st.Qdisc.Root.Drops)
		}
	}
	for i, st := range sts {
		qd := uint64(0)
		if st.Qdisc != nil {
			qd = uint64(st.Qdisc.Root.Drops)
		}
		var txd uint64
		if st.Link != nil {
			txd = st.Link.TxDropped
		}
		b.Logf("node%d: host drops: daemon %+v, TAP tx_dropped %d, qdisc %d", i+1, st.Bridge.Drops, txd, qd)
		// The daemon's link settings, as it logged them at start.
		if data, err := os.ReadFile(a.p.Logs[i+1]); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if strings.Contains(line, `"link layer"`) {
					b.Logf("node%d: %s", i+1, line)
				}
			}
		}
	}
	var hd, coll, ovf, sent float64
	for i := range 2 {
		s := a.w.Stats(i)
		hd += float64(s.LostHalfDuplex)
		coll += float64(s.LostCollision)
		ovf += float64(s.Overflow + s.Overrun)
		sent += float64(s.Sent)
	}
	b.ReportMetric(giveUps, "arq_giveups")
	b.ReportMetric(timeouts, "arq_timeouts")
	b.ReportMetric(retx, "arq_retx")
	b.ReportMetric(hostDrops, "host_drops")
	b.ReportMetric(sent, "air_packets")
	b.ReportMetric(hd, "lost_half_duplex")
	b.ReportMetric(coll, "lost_collision")
	b.ReportMetric(ovf, "modem_overflow")
}

// BenchmarkAcousticEcho: issue 16's echo at 2400 bit/s, 20 echoes of 64
// bytes one at a time, 30 s each; floor 3.4 s.
func BenchmarkAcousticEcho(b *testing.B) { runEcho(b, acoustic2400) }

// BenchmarkAcousticEcho300: the same at 300 bit/s with 64-byte modem
// packets and 2 s of water, 10 echoes, 90 s each.
func BenchmarkAcousticEcho300(b *testing.B) { runEcho(b, acoustic300) }

// BenchmarkAcousticEcho9600At3km: the same at 9600 bit/s with 2 s of
// water, 10 echoes, 30 s each.
func BenchmarkAcousticEcho9600At3km(b *testing.B) { runEcho(b, acoustic9600) }

// BenchmarkAcousticBothWays: both nodes send 200-byte datagrams to each
// other as fast as their blocking sockets take them, for ACOUSTIC_DUR
// (120 s). Delivered is what arrived within that span (from the first
// send), so the ratio is the steady rate, not one swelled by a drain:
// UDP payload delivered both ways together ÷ (air rate × span).
func BenchmarkAcousticBothWays(b *testing.B) { runBothWays(b, acoustic2400) }

// BenchmarkAcousticBothWays9600At3km: the same at 9600 bit/s, 3 km.
func BenchmarkAcousticBothWays9600At3km(b *testing.B) { runBothWays(b, acoustic9600) }

// BenchmarkAcousticBothWays300: the same at 300 bit/s with 64-byte
// packets.
func BenchmarkAcousticBothWays300(b *testing.B) { runBothWays(b, acoustic300) }

func runBothWays(b *testing.B, c acousticCase) {
	const size, port = 200, 5116
	dur := 120 * time.Second
	if s := os.Getenv("ACOUSTIC_DUR"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			b.Fatalf("ACOUSTIC_DUR=%q: want a duration", s)
		}
		dur = d
	}
	for range b.N {
		a := c.start(b)
		p := a.p
		var conns [2]*net.UDPConn
		for i := range 2 {
			cn, err := lab.ListenUDP(p.NS[i], p.Addr[i]+":"+strconv.Itoa(port))
			if err != nil {
				b.Fatal(err)
			}
			defer cn.Close()
			conns[i] = cn
		}
		// ACOUSTIC_STAGGER delays node 2's first send (default 0: both
		// start together, the worst case for two half-duplex modems).
		var stagger time.Duration
		if s := os.Getenv("ACOUSTIC_STAGGER"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 {
				b.Fatalf("ACOUSTIC_STAGGER=%q: want a duration", s)
			}
			stagger = d
		}
		start := time.Now()
		end := start.Add(dur)
		var wg sync.WaitGroup
		var sent, got, dups [2]int
		var sendErr [2]int
		for i := range 2 {
			wg.Add(2)
			go func() { // send from node i+1 until end
				defer wg.Done()
				buf := make([]byte, size)
				dst := udpAddr(p.Addr[1-i], port)
				if i == 1 {
					time.Sleep(stagger)
				}
				conns[i].SetWriteDeadline(end)
				for seq := uint64(0); time.Now().Before(end); seq++ {
					binary.BigEndian.PutUint64(buf, seq)
					if _, err := conns[i].WriteToUDP(buf, dst); err != nil {
						if errors.Is(err, os.ErrDeadlineExceeded) {
							return
						}
						sendErr[i]++
						time.Sleep(10 * time.Millisecond)
						continue
					}
					sent[i]++
				}
			}()
			go func() { // receive at node i+1 until end
				defer wg.Done()
				buf := make([]byte, 2048)
				seen := make(map[uint64]bool)
				conns[i].SetReadDeadline(end)
				for {
					n, _, err := conns[i].ReadFromUDP(buf)
					if err != nil {
						return
					}
					if n != size {
						continue
					}
					seq := binary.BigEndian.Uint64(buf)
					if seen[seq] {
						dups[i]++
						continue
					}
					seen[seq] = true
					got[i]++
				}
			}()
		}
		wg.Wait()
		span := time.Since(start).Seconds()
		sts := a.report(b)
		// got[i] is what node i+1 received: sent by the other node.
		total := float64((got[0] + got[1]) * size * 8)
		b.ReportMetric(total/(float64(c.mc.AirRate)*span), "payload/air")
		b.ReportMetric(float64(got[1]), "delivered_1to2")
		b.ReportMetric(float64(got[0]), "delivered_2to1")
		b.ReportMetric(float64(sent[0]), "sent_1")
		b.ReportMetric(float64(sent[1]), "sent_2")
		b.ReportMetric(float64(dups[0]+dups[1]), "duplicates")
		b.ReportMetric(float64(sendErr[0]+sendErr[1]), "send_errors")
		reportLink(b, a, sts)
		j := 0.0
		if g0, g1 := float64(got[0]), float64(got[1]); g0+g1 > 0 {
			j = (g0 + g1) * (g0 + g1) / (2 * (g0*g0 + g1*g1))
		}
		b.ReportMetric(j, "jain")
		b.Logf("%.0f s: node1 sent %d, node2 got %d; node2 sent %d, node1 got %d; payload %.0f bit/s (%.3f of %d)",
			span, sent[0], got[1], sent[1], got[0], total/span, total/(float64(c.mc.AirRate)*span), c.mc.AirRate)
	}
}
