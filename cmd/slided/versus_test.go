//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/slided/slided/internal/direwolftest"
	"github.com/slided/slided/internal/lab"
	"github.com/slided/slided/status"
)

// The ratio of issue 14: slided through two daemons against two plain KISS
// clients (internal/direwolftest/reference.go) on the same Dire Wolf rig,
// one after the other in one run, with the TNC defaults (TXDELAY 300 ms,
// P 63, SLOTTIME 100 ms, TXTAIL 100 ms) for both. SLIDED_KISS_EXTRA is
// appended to the daemons' modem URL (e.g. "&burst=4", to compare burst
// sizes). SLIDED_KEEP_LOGS=DIR keeps the daemons' logs and link captures,
// Dire Wolf's logs and the relay's transmissions (airtime.txt) in DIR.
//
//	go test -p 1 -count=1 ./cmd/slided -run '^$' -bench DirewolfVersusKISS/9600 -benchtime 1x -v
//	go test -p 1 -count=1 ./cmd/slided -run '^$' -bench DirewolfVersusKISS/1200 -benchtime 1x -v
//
// 9600: one bulk flow of 40 × 1000 bytes (goodput), then 20 echoes of 200
// bytes (answered within 5 s, median round trip). 1200: the echoes only,
// answered within 15 s.
//
// To study the echoes alone: SLIDED_VERSUS_ECHOES=N sends N echoes instead
// of 20, SLIDED_VERSUS_NOBULK=1 skips the bulk flows, SLIDED_VERSUS_NOREF=1
// skips the plain KISS clients (the ratios are then not reported):
//
//	SLIDED_VERSUS_NOREF=1 SLIDED_VERSUS_NOBULK=1 SLIDED_VERSUS_ECHOES=60 SLIDED_KEEP_LOGS=DIR \
//	  go test -p 1 -count=1 ./cmd/slided -run '^$' -bench DirewolfVersusKISS/9600/slided -benchtime 1x -v
//
// SLIDED_VERSUS_ECHO_DELAY=D (a Go duration) makes the echo server answer D
// after each datagram instead of at once: a host slower than the link
// engine's hold of an Ack for the answer (ackHold, 30 ms behind Dire Wolf's
// defaults), which a loaded machine is now and then.

const (
	versusBulkN, versusBulkSize = 40, 1000
	versusEchoSize              = 200
)

// versusEchoDelay is how long the echo server waits before it answers:
// SLIDED_VERSUS_ECHO_DELAY, or 0.
func versusEchoDelay() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("SLIDED_VERSUS_ECHO_DELAY"))
	return max(d, 0)
}

// versusEchoN is how many echoes a run sends: 20, or SLIDED_VERSUS_ECHOES.
func versusEchoN() int {
	if n, err := strconv.Atoi(os.Getenv("SLIDED_VERSUS_ECHOES")); err == nil && n > 0 {
		return n
	}
	return 20
}

// versusBulk reports whether a 9600 run has its bulk flows
// (SLIDED_VERSUS_NOBULK unset).
func versusBulk(baud int) bool { return baud == 9600 && os.Getenv("SLIDED_VERSUS_NOBULK") == "" }

var versusWait = map[int]time.Duration{9600: 5 * time.Second, 1200: 15 * time.Second}

func BenchmarkDirewolfVersusKISS(b *testing.B) {
	for _, baud := range []int{9600, 1200} {
		b.Run(strconv.Itoa(baud), func(b *testing.B) {
			if b.N != 1 {
				b.Fatalf("b.N = %d: run with -benchtime 1x", b.N)
			}
			var ref refFigures
			if os.Getenv("SLIDED_VERSUS_NOREF") == "" {
				b.Run("kiss", func(b *testing.B) { ref = versusReference(b, baud) })
			}
			b.Run("slided", func(b *testing.B) { versusDaemons(b, baud, ref) })
		})
	}
}

type refFigures struct {
	goodput float64
	echo    direwolftest.Echoes
}

// versusReference measures two plain KISS clients on a fresh pair.
func versusReference(b *testing.B, baud int) refFigures {
	var ref refFigures
	nsA := direwolftest.NewNS(b, fmt.Sprintf("slided-ref-%d-a", os.Getpid()))
	nsB := direwolftest.NewNS(b, fmt.Sprintf("slided-ref-%d-b", os.Getpid()))
	ka, kb := direwolftest.StartPair(b, nsA, nsB, baud)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var cl [2]*direwolftest.Client
	for i, x := range []struct{ ns, addr string }{{nsA, ka}, {nsB, kb}} {
		c, err := direwolftest.DialIn(x.ns)(ctx, "tcp", x.addr)
		if err != nil {
			b.Fatal(err)
		}
		if cl[i], err = direwolftest.NewClient(c, direwolftest.DefaultKISSParams); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cl[i].Close() })
	}
	if versusBulk(baud) {
		f, err := direwolftest.Bulk(ctx, cl[0], cl[1], versusBulkN, versusBulkSize, 30*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		ref.goodput = f.Goodput()
		b.ReportMetric(ref.goodput, "bit/s")
		b.Logf("plain KISS bulk: %d of %d frames of %d bytes in %.1fs: %.0f bit/s", f.Received, f.Sent, versusBulkSize,
			f.Last.Sub(f.First).Seconds(), ref.goodput)
		time.Sleep(3 * time.Second) // let the channel go quiet
	}
	e, err := direwolftest.Echo(ctx, cl[0], cl[1], versusEchoN(), versusEchoSize, versusWait[baud])
	if err != nil {
		b.Fatal(err)
	}
	ref.echo = e
	b.ReportMetric(e.Median().Seconds(), "s-echo-median")
	b.ReportMetric(float64(e.Answered), "echoes-answered")
	b.Logf("plain KISS echo: %d of %d answered within %v, median %v, all %v", e.Answered, e.Sent, versusWait[baud], e.Median(), e.RTTs)
	return ref
}

// versusDaemons measures two daemons on a fresh pair and reports the
// ratios to ref.
func versusDaemons(b *testing.B, baud int, ref refFigures) {
	l, ns, dir := newModemLab(b, fmt.Sprintf("vs%d", baud))
	ka, kb := direwolftest.StartPair(b, ns[0], ns[1], baud)
	q := fmt.Sprintf("?air=%d%s", baud, os.Getenv("SLIDED_KISS_EXTRA"))
	var extra []string
	if os.Getenv("SLIDED_KEEP_LOGS") != "" {
		// Each daemon captures its link frames (slided run -pcap), kept
		// beside the logs: what was sent and heard, when.
		extra = []string{"-pcap", filepath.Join(dir, "node%d.pcap"), "-log-level", "debug"}
	}
	p := startDaemons(b, l, dir, ns, [2]string{"kiss-tcp:" + ka + q, "kiss-tcp:" + kb + q}, "198.51.100", extra...)
	const port = 5040
	cs := udpPair(b, p, port, 0)
	to := udpAddr(p.Addr[1], port)
	// ARP, and the hosts' IPv6 start-up chatter, before timing.
	lab.Blast(cs[0], to, 99, 100, time.Second, 1)
	if _, err := countFlow(cs[1], 99, 1, 60*time.Second, time.Now().Add(60*time.Second)); err != nil {
		b.Fatal(err)
	}
	if versusBulk(baud) {
		done := make(chan flowCount, 1)
		go func() {
			fc, err := countFlow(cs[1], 1, versusBulkN, 30*time.Second, time.Now().Add(5*time.Minute))
			if err != nil {
				b.Error(err)
			}
			done <- fc
		}()
		lab.Blast(cs[0], to, 1, versusBulkSize, 5*time.Minute, versusBulkN)
		fc := <-done
		d := fc.last.Sub(fc.first).Seconds()
		var g float64
		if fc.received >= 2 && d > 0 {
			g = float64(fc.bytes-fc.bytes/int64(fc.received)) * 8 / d
		}
		b.ReportMetric(g, "bit/s")
		if ref.goodput > 0 {
			b.ReportMetric(g/ref.goodput, "goodput-ratio")
		}
		st, st2 := cliStatus(b, p, 0), cliStatus(b, p, 1)
		b.Logf("slided bulk: %d of %d datagrams (%d duplicates) in %.1fs: %.0f bit/s (%.2f of plain KISS); node1 tx %d frames in %d bursts, drops %+v, arq %+v; node2 tx %d frames in %d bursts",
			fc.received, versusBulkN, fc.duplicates, d, g, g/ref.goodput, st.Bridge.TxFrames, st.Bridge.TxBursts, st.Bridge.Drops, st.Bridge.ARQ,
			st2.Bridge.TxFrames, st2.Bridge.TxBursts)
		logTNC(b, "bulk", st, st2)
		time.Sleep(5 * time.Second) // the last Acks and the channel quiet
	}
	// The echo: node 2 answers every datagram at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go udpEcho(ctx, cs[1], versusEchoDelay())
	var rtts []time.Duration
	buf := make([]byte, 2048)
	msg := make([]byte, versusEchoSize)
	binary.BigEndian.PutUint64(msg, 0xEC40)
	for i := range versusEchoN() {
		binary.BigEndian.PutUint64(msg[8:], uint64(i))
		sent := time.Now()
		if _, err := cs[0].WriteToUDP(msg, to); err != nil {
			b.Fatal(err)
		}
		deadline := sent.Add(versusWait[baud])
		for {
			cs[0].SetReadDeadline(deadline)
			n, _, err := cs[0].ReadFromUDP(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				b.Logf("echo %d (sent %s) not answered within %v", i, sent.UTC().Format("15:04:05.000"), versusWait[baud])
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if n == versusEchoSize && binary.BigEndian.Uint64(buf) == 0xEC40 && binary.BigEndian.Uint64(buf[8:]) == uint64(i) {
				rtts = append(rtts, time.Since(sent))
				break
			}
		}
	}
	med := direwolftest.Median(rtts)
	b.ReportMetric(med.Seconds(), "s-echo-median")
	b.ReportMetric(float64(len(rtts)), "echoes-answered")
	if m := ref.echo.Median(); m > 0 {
		b.ReportMetric(med.Seconds()/m.Seconds(), "echo-ratio")
	}
	st, st2 := cliStatus(b, p, 0), cliStatus(b, p, 1)
	b.Logf("slided echo: %d of %d answered within %v, median %v (plain KISS %v: ratio %.2f), all %v; node1 tx %d frames in %d bursts, drops %+v, arq %+v; node2 tx %d frames in %d bursts, arq %+v",
		len(rtts), versusEchoN(), versusWait[baud], med, ref.echo.Median(), med.Seconds()/ref.echo.Median().Seconds(), rtts,
		st.Bridge.TxFrames, st.Bridge.TxBursts, st.Bridge.Drops, st.Bridge.ARQ, st2.Bridge.TxFrames, st2.Bridge.TxBursts, st2.Bridge.ARQ)
	logTNC(b, "echo (totals)", st, st2)
}

// logTNC logs both daemons' TNC counters (slided status, tnc) and their
// view of the other node (round trip, ack timeout).
func logTNC(b *testing.B, phase string, st ...*status.Snapshot) {
	for i, s := range st {
		if s.TNC != nil {
			b.Logf("%s: node%d tnc %+v", phase, i+1, *s.TNC)
		}
		for _, p := range s.Bridge.Peers {
			if p.Samples > 0 {
				b.Logf("%s: node%d peer %d: srtt %v rttvar %v rto %v (%d samples), %d timeouts", phase, i+1, p.Node,
					p.SRTT.Round(time.Millisecond), p.RTTVar.Round(time.Millisecond), p.RTO.Round(time.Millisecond), p.Samples, p.Timeouts)
			}
		}
	}
}

// udpEcho answers every datagram c receives with the same bytes, delay
// after it came, until ctx ends.
func udpEcho(ctx context.Context, c *net.UDPConn, delay time.Duration) {
	buf := make([]byte, 65536)
	for ctx.Err() == nil {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		if delay > 0 {
			time.Sleep(delay)
		}
		c.WriteToUDP(buf[:n], from)
	}
}
