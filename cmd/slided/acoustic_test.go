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
	l, ns, dir := newModemLab(t, "acoustic")
	mc := acoustic.ModemConfig{Mode: acoustic.Packet, Baud: 19200, AirRate: 2400,
		Preamble: 250 * time.Millisecond, MaxPacket: 256}
	w, err := acoustic.Start(acoustic.Config{Modems: []acoustic.ModemConfig{mc, mc},
		Delay: acoustic.UniformDelay(2, time.Second), Seed: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("emulator: %v", err)
		}
	})
	const q = "?profile=acoustic-2400"
	p := startDaemons(t, l, dir, ns, [2]string{"serial:" + w.Path(0) + q, "serial:" + w.Path(1) + q}, "192.0.2")
	for i := range 2 {
		mac := fmt.Sprintf("02:53:4c:44:00:%02x", 2-i)
		if out, err := l.Exec(ns[i], "ip", "neigh", "replace", p.Addr[1-i], "lladdr", mac, "nud", "permanent", "dev", p.Cfg.TAP); err != nil {
			t.Fatalf("static neighbour in node%d: %v\n%s", i+1, err, out)
		}
		if out, err := l.Exec(ns[i], "ip", "-o", "link", "show", p.Cfg.TAP); err != nil {
			t.Fatal(err)
		} else {
			t.Logf("node%d: %s", i+1, out)
		}
	}

	srv, err := lab.ListenUDP(ns[1], p.Addr[1]+":5016")
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
	cli, err := lab.ListenUDP(ns[0], p.Addr[0]+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	const echoes, size, timeout = 10, 64, 30 * time.Second
	dst := udpAddr(p.Addr[1], 5016)
	var rtts []time.Duration
	buf := make([]byte, 2048)
	for seq := range echoes {
		msg := make([]byte, size)
		binary.BigEndian.PutUint32(msg, uint32(seq))
		start := time.Now()
		if _, err := cli.WriteToUDP(msg, dst); err != nil {
			t.Fatalf("echo %d: %v", seq, err)
		}
		cli.SetReadDeadline(start.Add(timeout))
		for {
			n, _, err := cli.ReadFromUDP(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Logf("echo %d: no answer in %v", seq, timeout)
				break
			}
			if err != nil {
				t.Fatalf("echo %d: %v", seq, err)
			}
			if n == size && binary.BigEndian.Uint32(buf) == uint32(seq) {
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
			len(rtts), echoes, rtts[0].Seconds(), rtts[len(rtts)/2].Seconds(), rtts[len(rtts)-1].Seconds())
	} else {
		t.Logf("0 of %d echoes answered", echoes)
	}
	for i := range 2 {
		st := cliStatus(t, p, i)
		a, d := st.Bridge.ARQ, st.Bridge.Decoder
		t.Logf("node%d: link ARQ %d packets, %d retransmissions, %d timeouts, %d given up, %d acknowledged; decoder %d frames, %d bad CRC",
			i+1, a.Packets, a.Retransmissions, a.Timeouts, a.GiveUps, a.Acked, d.Frames, d.BadCRC)
	}
	for i := range 2 {
		s := w.Stats(i)
		t.Logf("modem %d: %d packets sent, %d delivered, %d lost to half duplex, %d to collisions, %d overflow",
			i, s.Sent, s.Delivered, s.LostHalfDuplex, s.LostCollision, s.Overflow)
	}
	if len(rtts) < echoes*6/10 {
		t.Errorf("%d of %d echoes answered, want most", len(rtts), echoes)
	}
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
