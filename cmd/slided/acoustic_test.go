//go:build linux

package main

// Two daemons over emulated acoustic modems (internal/acoustic): the
// deployment of issue 16, a store-and-forward modem on a serial line, tried
// with the modem profile that describes it.

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/slided/slided/internal/acoustic"
	"github.com/slided/slided/internal/lab"
	"github.com/slided/slided/phy/serial"
	"github.com/slided/slided/status"
)

// TestAcousticEcho: two daemons, each on an emulated store-and-forward
// acoustic modem (19200 baud, 2400 bit/s, 256-byte packets, 0.25 s
// preamble, 1 s of water, half duplex), with -phy serial:PATH?profile=
// acoustic-2400 and no other modem settings: the profile gives the packet
// model, no carrier sense, the MTU (576) and -prop-delay (1 s). Node 1
// sends 10 UDP datagrams of 64 bytes to an echo server on node 2, one at a
// time, each waiting up to 30 s for its echo. Static neighbour entries
// keep ARP off the air, so that only the datagrams and their link Acks
// are sent. The figures are logged (-v); the test asserts only that most
// echoes come back.
func TestAcousticEcho(t *testing.T) {
	a := startAcoustic(t, "?profile=acoustic-2400")
	rtts := a.echoes(t, 10, nil)
	a.report(t)
	if len(rtts) < 6 {
		t.Errorf("%d of 10 echoes answered, want most", len(rtts))
	}
}

// TestAcousticBadModem: the same pair while the modems misbehave: every 4 s
// each answers 100 random bytes on its serial line, and before the fourth
// echo node 1's modem stops reading its serial line for 5 s after 40 more
// bytes (it wedges mid-packet; what it got goes on air as a packet of its
// own). The decoders count what they throw away, the link ARQ resends, and
// the link is never stuck: most echoes still come back and both modems are
// up at the end.
func TestAcousticBadModem(t *testing.T) {
	a := startAcoustic(t, "?profile=acoustic-2400")
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() { // garbage until done
		defer close(stopped)
		tick := time.NewTicker(4 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				a.w.Garbage(0, 100)
				a.w.Garbage(1, 100)
			}
		}
	}()
	rtts := a.echoes(t, 10, func(seq int) {
		if seq == 3 {
			a.w.Stall(0, 40, 5*time.Second)
		}
	})
	close(done)
	<-stopped
	sts := a.report(t)
	var thrown uint64
	for i, st := range sts {
		d := st.Bridge.Decoder
		thrown += d.GarbageBytes + d.BadCRC + d.BadCOBS + d.Short + d.TooLong
		if !st.Bridge.Up {
			t.Errorf("node%d: modem not up at the end", i+1)
		}
	}
	if g := a.w.Stats(0).Garbage + a.w.Stats(1).Garbage; g == 0 || thrown == 0 {
		t.Errorf("%d garbage bytes injected, decoders counted %d bytes and frames thrown away", g, thrown)
	}
	if len(rtts) < 5 {
		t.Errorf("%d of 10 echoes answered with a misbehaving modem, want at least half", len(rtts))
	}
}

// acousticPair is two daemons over two emulated acoustic modems.
type acousticPair struct {
	w *acoustic.Water
	p *lab.Pair
}

// startAcoustic starts the emulator (the modems: store and forward,
// 19200 baud, 2400 bit/s, 256-byte packets, 0.25 s preamble, 1 s apart)
// and a daemon on each modem with -phy serial:PATH+q, and sets static
// neighbour entries so that ARP stays off the air.
func startAcoustic(t testing.TB, q string) *acousticPair {
	mc := acoustic.ModemConfig{Mode: acoustic.Packet, Baud: 19200, AirRate: 2400,
		Preamble: 250 * time.Millisecond, MaxPacket: 256}
	return startAcousticWith(t, mc, time.Second, q)
}

// startAcousticWith is startAcoustic with two modems mc, prop apart; extra
// is appended to both daemons' run arguments.
func startAcousticWith(t testing.TB, mc acoustic.ModemConfig, prop time.Duration, q string, extra ...string) *acousticPair {
	t.Helper()
	l, ns, dir := newModemLab(t, "acoustic")
	w, err := acoustic.Start(acoustic.Config{Modems: []acoustic.ModemConfig{mc, mc},
		Delay: acoustic.UniformDelay(2, prop), Seed: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("emulator: %v", err)
		}
	})
	p := startDaemons(t, l, dir, ns, [2]string{"serial:" + w.Path(0) + q, "serial:" + w.Path(1) + q}, "192.0.2", extra...)
	for i := range 2 {
		mac := fmt.Sprintf("02:53:4c:44:00:%02x", 2-i)
		if out, err := l.Exec(ns[i], "ip", "neigh", "replace", p.Addr[1-i], "lladdr", mac, "nud", "permanent", "dev", p.Cfg.TAP); err != nil {
			t.Fatalf("static neighbour in node%d: %v\n%s", i+1, err, out)
		}
		out, err := l.Exec(ns[i], "ip", "-o", "link", "show", p.Cfg.TAP)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("node%d: %s", i+1, out)
	}
	return &acousticPair{w: w, p: p}
}

// echoes sends n UDP datagrams of 64 bytes from node 1 to an echo server on
// node 2, one at a time, each waiting up to 30 s for its echo, and returns
// the round trips of those answered, sorted. before(seq), if set, runs
// before each datagram is sent.
func (a *acousticPair) echoes(t testing.TB, n int, before func(seq int)) []time.Duration {
	return a.echoesWithin(t, n, 30*time.Second, before)
}

// echoesWithin is echoes with timeout for each echo instead of 30 s.
func (a *acousticPair) echoesWithin(t testing.TB, n int, timeout time.Duration, before func(seq int)) []time.Duration {
	t.Helper()
	p := a.p
	srv, err := lab.ListenUDP(p.NS[1], p.Addr[1]+":5016")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() { // echo until srv is closed
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			srv.WriteToUDP(buf[:n], from)
		}
	}()
	cli, err := lab.ListenUDP(p.NS[0], p.Addr[0]+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	const size = 64
	dst := udpAddr(p.Addr[1], 5016)
	var rtts []time.Duration
	buf := make([]byte, 2048)
	for seq := range n {
		if before != nil {
			before(seq)
		}
		msg := make([]byte, size)
		binary.BigEndian.PutUint32(msg, uint32(seq))
		start := time.Now()
		if _, err := cli.WriteToUDP(msg, dst); err != nil {
			t.Fatalf("echo %d: %v", seq, err)
		}
		cli.SetReadDeadline(start.Add(timeout))
		for {
			got, _, err := cli.ReadFromUDP(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Logf("echo %d: no answer in %v", seq, timeout)
				break
			}
			if err != nil {
				t.Fatalf("echo %d: %v", seq, err)
			}
			if got == size && binary.BigEndian.Uint32(buf) == uint32(seq) {
				rtts = append(rtts, time.Since(start))
				t.Logf("echo %d: %.2f s", seq, rtts[len(rtts)-1].Seconds())
				break
			}
			// a late echo of an earlier datagram: keep waiting for this one
		}
	}
	slices.Sort(rtts)
	if len(rtts) > 0 {
		t.Logf("%d of %d echoes answered; round trip min %.2f s, median %.2f s, max %.2f s",
			len(rtts), n, rtts[0].Seconds(), rtts[len(rtts)/2].Seconds(), rtts[len(rtts)-1].Seconds())
	} else {
		t.Logf("0 of %d echoes answered", n)
	}
	return rtts
}

// report logs the daemons' link and decoder counters and the modems' and
// returns the daemons' status.
func (a *acousticPair) report(t testing.TB) [2]*status.Snapshot {
	t.Helper()
	var sts [2]*status.Snapshot
	for i := range 2 {
		st := cliStatus(t, a.p, i)
		sts[i] = st
		r, d := st.Bridge.ARQ, st.Bridge.Decoder
		t.Logf("node%d: link ARQ %d packets, %d retransmissions, %d timeouts, %d given up, %d acknowledged; "+
			"decoder %d frames, %d bad CRC, %d bad COBS, %d short, %d garbage bytes",
			i+1, r.Packets, r.Retransmissions, r.Timeouts, r.GiveUps, r.Acked, d.Frames, d.BadCRC, d.BadCOBS, d.Short, d.GarbageBytes)
	}
	for i := range 2 {
		s := a.w.Stats(i)
		t.Logf("modem %d: %d packets sent, %d delivered, %d lost to half duplex, %d to collisions, %d overflow, %d garbage bytes",
			i, s.Sent, s.Delivered, s.LostHalfDuplex, s.LostCollision, s.Overflow, s.Garbage)
	}
	return sts
}

// TestModemDefaults: a serial modem's profile gives -mtu and -prop-delay
// unless they were given; an IPv6 address keeps the MTU at 1280.
func TestModemDefaults(t *testing.T) {
	tests := []struct {
		desc string
		args []string
		mtu  int
		prop time.Duration
	}{
		{desc: "profile", args: []string{"-phy", "serial:/dev/x?profile=acoustic-2400"}, mtu: 576, prop: time.Second},
		{desc: "profile, range given", args: []string{"-phy", "serial:/dev/x?profile=acoustic-300&range=750"}, mtu: 296, prop: 500 * time.Millisecond},
		{desc: "flags win", args: []string{"-phy", "serial:/dev/x?profile=acoustic-2400", "-mtu", "1000", "-prop-delay", "3s"}, mtu: 1000, prop: 3 * time.Second},
		{desc: "IPv6 address", args: []string{"-phy", "serial:/dev/x?profile=acoustic-2400", "-addr", "192.0.2.1/24,fd00::1/64"}, mtu: 1280, prop: time.Second},
		{desc: "fast serial modem", args: []string{"-phy", "serial:/dev/x?baud=115200&air=38400"}, mtu: 1500},
		{desc: "not serial", args: []string{"-phy", "sim:/run/x.sock"}, mtu: 1500},
		{desc: "bad serial URL left to validate", args: []string{"-phy", "serial:/dev/x?baud=fast"}, mtu: 1500},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			var f runFlags
			fs.IntVar(&f.mtu, "mtu", 1500, "")
			fs.DurationVar(&f.propDelay, "prop-delay", 0, "")
			fs.StringVar(&f.phy, "phy", "", "")
			fs.StringVar(&f.addr, "addr", "", "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			modemDefaults(fs, &f)
			if f.mtu != tt.mtu || f.propDelay != tt.prop {
				t.Errorf("mtu %d, prop-delay %v; want %d, %v", f.mtu, f.propDelay, tt.mtu, tt.prop)
			}
		})
	}
	// The table's MTUs are the profiles' own.
	c, _ := serial.ParseURL("/dev/x?profile=acoustic-2400")
	if c.RecommendedMTU() != 576 {
		t.Errorf("acoustic-2400 recommends %d", c.RecommendedMTU())
	}
}
