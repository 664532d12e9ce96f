//go:build linux

package main

// The storm test (issue 6): two daemons on phy/serial with small modem
// frames (-frame-max 64, link ARQ), joined by a noisy cable that flips bits
// and pours bursts of random bytes into the line. Whatever the link loses,
// no corrupted frame may reach a host: every frame the daemons write into
// their TAPs is captured (lab.Sniff) and checked, headers, checksums and
// payload, against what the other host sent.
//
//	daemon 1 ─ DIR/a ═socat═ DIR/ar ─┐                  ┌─ DIR/br ═socat═ DIR/b ─ daemon 2
//	                                 └─ lab.Flipper ────┘
//	                          (in the test process: bit errors, bursts)

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/internal/lab"
	"github.com/slided/slided/status"
)

// stormSubnet is a documentation /24 from the project's test ranges; the
// tests of this package run one at a time, each in its own namespaces.
const stormSubnet = "198.51.100"

// stormPort carries the storm's datagrams, stormPort+1 those sent after it.
const stormPort = 5040

// stormFlags are the daemons' link settings under test: 64-byte modem
// frames, so that a 1000-byte datagram (a 1042-byte Ethernet frame) travels
// as 21 fragments of 50 bytes, and link ARQ.
var stormFlags = []string{"-frame-max", "64", "-arq=true"}

// stormCase is one storm.
type stormCase struct {
	name   string
	ber    float64       // bit error rate on the cable during the storm
	bursts time.Duration // interval between bursts of random bytes; 0: none
	n      int           // datagrams of stormSize bytes each way
	minPct int           // share of all 2n datagrams that must arrive; 0: only logged
	limit  time.Duration // for sending and receiving them
}

const stormSize = 1000

// TestLossyStorm: at BER 1e-5, 50 datagrams of 1000 bytes each way at once
// (38.4 kbit/s on air, about 1,340 bytes of fragments per datagram: some
// 28 s of air for all 100; about 41 s in practice), at least 99 of the 100
// must arrive within 75 s.
// At BER 1e-3 with a burst of 20-200 random bytes every 2 s each way,
// whatever arrives is logged. After each storm, the cable clean again, both
// daemons answer `slided status`, and ping and UDP cross both ways. In both,
// every frame either TAP delivers must be intact.
func TestLossyStorm(t *testing.T) {
	for _, c := range []stormCase{
		{name: "ber1e-5", ber: 1e-5, n: 50, minPct: 99, limit: 75 * time.Second},
		{name: "ber1e-3+bursts", ber: 1e-3, bursts: 2 * time.Second, n: 25, limit: 45 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) { testStorm(t, c) })
	}
}

// startSocat starts `socat pty,link=x pty,link=y` and waits for both links.
func startSocat(t *testing.T, l *lab.Lab, dir, name, x, y string) {
	t.Helper()
	sc, err := l.Start("", name, filepath.Join(dir, name+".log"), "socat", "-d", "-d",
		"pty,raw,echo=0,link="+x, "pty,raw,echo=0,link="+y)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, ex := os.Stat(x)
		_, ey := os.Stat(y)
		if ex == nil && ey == nil {
			return
		}
		if done, err := sc.Exited(); done {
			t.Fatalf("%s exited: %v", name, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: links not there after 10s: %v, %v", name, ex, ey)
		}
	}
}

func testStorm(t *testing.T, c stormCase) {
	start := time.Now()
	l, ns, dir := newModemLab(t, "storm")
	if _, err := exec.LookPath("socat"); err != nil {
		t.Fatalf("socat not found (%v): apt-get install -y socat", err)
	}
	a, ar := filepath.Join(dir, "a"), filepath.Join(dir, "ar")
	br, b := filepath.Join(dir, "br"), filepath.Join(dir, "b")
	startSocat(t, l, dir, "socat-a", a, ar)
	startSocat(t, l, dir, "socat-b", br, b)
	fa, err := lab.OpenRawTTY(ar)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := lab.OpenRawTTY(br)
	if err != nil {
		fa.Close()
		t.Fatal(err)
	}
	// A clean cable while the daemons start and ARP resolves.
	fl, err := lab.StartFlipper(t.Context(), fa, fb, lab.FlipperConfig{Seed: 6, BurstMin: 20, BurstMax: 200})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fl.Close(); err != nil {
			t.Errorf("relay: %v", err)
		}
	})

	const q = "?baud=115200&air=38400"
	p := startDaemons(t, l, dir, ns, [2]string{"serial:" + a + q, "serial:" + b + q}, stormSubnet, stormFlags...)
	var views [2]stormView
	var sniffers [2]*lab.Sniffer
	for i := range 2 {
		views[i] = stormViewOf(t, p, i)
		s, err := lab.Sniff(ns[i], p.Cfg.TAP)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		sniffers[i] = s
	}
	type capture struct {
		i      int
		frames [][]byte
		err    error
	}
	captured := make(chan capture, 2)
	for i := range 2 {
		go func() {
			// Until the sniffer is closed at the end of the test, at most
			// 20,000 frames and 5 minutes.
			frames, err := sniffers[i].Collect(20000, 5*time.Minute, time.Now().Add(5*time.Minute))
			captured <- capture{i, frames, err}
		}()
	}
	upAt := time.Now()
	t.Logf("set-up (socat, relay, daemons up): %.1fs", upAt.Sub(start).Seconds())

	// ARP, before the storm.
	for i := range 2 {
		pingCount(t, l, ns[i], p.Addr[1-i], 1, 5*time.Second)
	}

	fl.SetBER(c.ber)
	fl.SetBursts(c.bursts)
	stormAt := time.Now()
	res := stormExchange(t, p, stormPort, c.n, stormSize, c.limit)
	fl.SetBER(0)
	fl.SetBursts(0)
	stormEnd := time.Now()
	rst := fl.Stats()
	t.Logf("storm (BER %g, bursts every %s): %.1fs; relay %+v", c.ber, c.bursts, stormEnd.Sub(stormAt).Seconds(), rst)
	if err := fl.Err(); err != nil {
		t.Fatalf("the relay stopped: %v", err)
	}
	if c.ber >= 1e-4 && rst.Flipped[0]+rst.Flipped[1] == 0 {
		t.Errorf("no bit flipped at BER %g: the storm did not happen", c.ber)
	}
	if c.bursts > 0 && rst.Bursts == 0 {
		t.Errorf("no burst injected")
	}
	total := 0
	for i, r := range res {
		total += r.distinct
		span := "none"
		if r.distinct > 0 {
			span = fmt.Sprintf("the first after %.1fs, the last after %.1fs", r.first.Sub(stormAt).Seconds(), r.last.Sub(stormAt).Seconds())
		}
		t.Logf("node%d → node%d: %d of %d datagrams sent, %d arrived (%d duplicates, %d bad payloads); %s",
			2-i, i+1, r.sent, c.n, r.distinct, r.dups, r.bad, span)
		if r.dups != 0 {
			t.Errorf("node%d received %d duplicates", i+1, r.dups)
		}
		if r.bad != 0 {
			t.Errorf("node%d's socket received %d corrupted datagrams, the first: %s", i+1, r.bad, r.firstBad)
		}
		if r.sendErrs != 0 {
			t.Errorf("node%d's sender: %d send errors", 2-i, r.sendErrs)
		}
	}
	t.Logf("delivered %d of %d (%.1f%%) at BER %g", total, 2*c.n, 100*float64(total)/float64(2*c.n), c.ber)
	if c.minPct > 0 && total*100 < 2*c.n*c.minPct {
		t.Errorf("%d of %d datagrams arrived at BER %g, want at least %d%%", total, 2*c.n, c.ber, c.minPct)
	}

	// The cable is clean again: the daemons drain what the storm left and
	// answer; ping and UDP cross both ways.
	drainStart := time.Now()
	waitDrained(t, p, 30*time.Second)
	drained := time.Now()
	t.Logf("drained %.1fs after the storm", drained.Sub(drainStart).Seconds())
	for i := range 2 {
		st := checkHostSide(t, p, i)
		bs := st.Bridge
		t.Logf("node%d: tx %d frames (%d bytes), rx %d frames to the TAP, %d wire bytes, channel busy %s, %d window waits\n"+
			"  drops %+v\n  arq %+v\n  mac %+v\n  decoder %+v",
			i+1, bs.TxFrames, bs.TxBytes, bs.RxFrames, bs.RxWireBytes, bs.ChannelBusy.Round(time.Millisecond), bs.WindowWaits,
			bs.Drops, bs.ARQ, bs.MAC, bs.Decoder)
		if out, err := exec.Command(slidedBin, "status", "-control", p.Ctl[i]).CombinedOutput(); err != nil {
			t.Errorf("slided status node%d: %v\n%s", i+1, err, out)
		} else {
			t.Logf("slided status node%d:\n%s", i+1, out)
		}
	}
	for i := range 2 {
		if got := pingCount(t, l, ns[i], p.Addr[1-i], 3, 5*time.Second); got < 2 {
			t.Errorf("after the storm: ping node%d → node%d: %d of 3 replies", i+1, 2-i, got)
		}
	}
	const after = 5
	ares := stormExchange(t, p, stormPort+1, after, 200, 20*time.Second)
	for i, r := range ares {
		if r.distinct != after || r.dups != 0 || r.bad != 0 {
			t.Errorf("after the storm: node%d → node%d: %d of %d datagrams (%d duplicates, %d bad)", 2-i, i+1, r.distinct, after, r.dups, r.bad)
		}
	}
	afterDone := time.Now()
	t.Logf("after the storm (status, ping, UDP): %.1fs", afterDone.Sub(drained).Seconds())

	// Every frame the TAPs delivered, from set-up to now.
	for i := range 2 {
		_, drops, err := sniffers[i].Stats()
		if err != nil {
			t.Errorf("node%d sniffer: %v", i+1, err)
		} else if drops != 0 {
			t.Errorf("node%d sniffer dropped %d frames: the check is incomplete", i+1, drops)
		}
		sniffers[i].Close()
	}
	var tallies [2]*stormTally
	for range 2 {
		cp := <-captured
		if cp.err != nil {
			t.Errorf("capture: %v", cp.err)
		}
		tallies[cp.i] = checkStormFrames(views[cp.i], cp.frames)
	}
	for i := range 2 {
		tl := tallies[i]
		if tl == nil {
			continue
		}
		t.Logf("node%d's TAP delivered %d frames: %s", i+1, tl.frames, tl.summary())
		if tl.dups != 0 {
			t.Errorf("node%d's TAP delivered %d test datagrams more than once", i+1, tl.dups)
		}
		if tl.bad != 0 {
			t.Errorf("node%d's TAP delivered %d corrupted frames; the first (%s):\n%s", i+1, tl.bad, tl.firstWhy, hex.Dump(tl.firstBad))
		}
		// The sniffer sees every datagram the socket got, and those that
		// came after the receiver had stopped.
		if got, want := tl.kinds["udp-storm"], res[i].distinct; got < want {
			t.Errorf("node%d: the sniffer saw %d of the storm's datagrams, the socket %d: the capture missed some", i+1, got, want)
		} else {
			t.Logf("node%d: %d of the storm's %d datagrams reached the TAP in all, %d of them after the receiver had stopped; %d never came",
				i+1, got, res[i].sent, got-want, res[i].sent-got)
		}
		if got, want := tl.kinds["udp-after"], ares[i].distinct; got < want {
			t.Errorf("node%d: the sniffer saw %d datagrams sent after the storm, the socket %d: the capture missed some", i+1, got, want)
		}
	}
	t.Logf("subtest took %.1fs (set-up %.1fs, storm %.1fs, drain %.1fs, after %.1fs)", time.Since(start).Seconds(),
		upAt.Sub(start).Seconds(), stormEnd.Sub(stormAt).Seconds(), drained.Sub(drainStart).Seconds(), afterDone.Sub(drained).Seconds())
}

// stormResult is one direction of an exchange, as its receiver saw it.
type stormResult struct {
	sent, sendErrs      int
	distinct, dups, bad int
	firstBad            string
	first, last         time.Time
}

// stormExchange sends n datagrams of size bytes each way at once, node i's
// flow stormFlow(port, i+1), from blocking senders, and returns what each
// receiver got: res[i] is what node i received. Both sides stop at limit.
func stormExchange(t *testing.T, p *lab.Pair, port, n, size int, limit time.Duration) [2]stormResult {
	t.Helper()
	cs := udpPair(t, p, port, 0)
	deadline := time.Now().Add(limit)
	type sent struct{ i, sent, errs int }
	sends := make(chan sent, 2)
	recvs := make(chan int, 2)
	var res [2]stormResult
	for i := range 2 {
		go func() {
			var err error
			res[i], err = stormReceive(cs[i], stormFlow(port, 2-i), n, deadline)
			if err != nil {
				t.Error(err)
			}
			recvs <- i
		}()
		go func() {
			s, e := stormSend(cs[i], udpAddr(p.Addr[1-i], port), stormFlow(port, i+1), n, size, deadline)
			sends <- sent{i, s, e}
		}()
	}
	var sentBy [2]sent
	for range 2 {
		s := <-sends
		sentBy[s.i] = s
	}
	for range 2 {
		<-recvs
	}
	for i := range 2 {
		res[i].sent, res[i].sendErrs = sentBy[1-i].sent, sentBy[1-i].errs
	}
	return res
}

// stormFlow is the flow number node sends on port.
func stormFlow(port, node int) uint64 { return uint64(port)<<8 | uint64(node) }

// stormSend sends datagrams 0..n-1 of flow, blocking while the socket
// pushes back, until deadline.
func stormSend(c *net.UDPConn, dst *net.UDPAddr, flow uint64, n, size int, deadline time.Time) (sent, errs int) {
	buf := make([]byte, size)
	c.SetWriteDeadline(deadline)
	defer c.SetWriteDeadline(time.Time{})
	for seq := range n {
		stormPayload(buf, flow, uint64(seq))
		if _, err := c.WriteToUDP(buf, dst); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			errs++
			continue
		}
		sent++
	}
	return sent, errs
}

// stormReceive reads datagrams of flow until n distinct ones have arrived or
// deadline, checking each payload.
func stormReceive(c *net.UDPConn, flow uint64, n int, deadline time.Time) (stormResult, error) {
	var r stormResult
	seen := make(map[uint64]bool, n)
	buf := make([]byte, 65536)
	c.SetReadDeadline(deadline)
	for r.distinct < n {
		m, _, err := c.ReadFromUDP(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return r, nil
		}
		if err != nil {
			return r, fmt.Errorf("receive: %w", err)
		}
		_, seq, err := checkStormPayload(buf[:m], func(f uint64) bool { return f == flow })
		if err != nil {
			if r.bad == 0 {
				r.firstBad = fmt.Sprintf("%v:\n%s", err, hex.Dump(buf[:min(m, 64)]))
			}
			r.bad++
			continue
		}
		if seen[seq] {
			r.dups++
			continue
		}
		seen[seq] = true
		now := time.Now()
		if r.distinct == 0 {
			r.first = now
		}
		r.last = now
		r.distinct++
	}
	return r, nil
}

// stormPayload fills b: flow (8 bytes), seq (8), len(b) (4), then bytes
// drawn from a generator seeded with (flow, seq).
func stormPayload(b []byte, flow, seq uint64) {
	binary.BigEndian.PutUint64(b, flow)
	binary.BigEndian.PutUint64(b[8:], seq)
	binary.BigEndian.PutUint32(b[16:], uint32(len(b)))
	fillPattern(b[20:], flow, seq)
}

func fillPattern(b []byte, flow, seq uint64) {
	r := rand.NewPCG(flow, seq)
	var w [8]byte
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(b[i:], w[:])
	}
}

// checkStormPayload checks a datagram stormPayload made, from a flow
// flowOK accepts, and returns its flow and seq.
func checkStormPayload(b []byte, flowOK func(uint64) bool) (flow, seq uint64, err error) {
	if len(b) < 20 {
		return 0, 0, fmt.Errorf("payload of %d bytes, too short for the test header", len(b))
	}
	flow, seq = binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
	if !flowOK(flow) {
		return flow, seq, fmt.Errorf("flow %#x is not the sender's", flow)
	}
	if l := binary.BigEndian.Uint32(b[16:]); int(l) != len(b) {
		return flow, seq, fmt.Errorf("flow %#x seq %d: payload of %d bytes, its header says %d", flow, seq, len(b), l)
	}
	want := make([]byte, len(b)-20)
	fillPattern(want, flow, seq)
	for i := range want {
		if b[20+i] != want[i] {
			return flow, seq, fmt.Errorf("flow %#x seq %d: payload byte %d is %#02x, want %#02x", flow, seq, 20+i, b[20+i], want[i])
		}
	}
	return flow, seq, nil
}

// waitDrained waits until neither daemon holds a frame in its MAC queue or
// qdisc, for at most limit.
func waitDrained(t *testing.T, p *lab.Pair, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		idle := true
		var last string
		for i := range 2 {
			st, err := p.Status(i)
			if err != nil {
				idle, last = false, fmt.Sprintf("node%d: %v", i+1, err)
				continue
			}
			if st.Bridge.QueueDepth != 0 || (st.Qdisc != nil && st.Qdisc.Root.Qlen != 0) {
				idle = false
				last = fmt.Sprintf("node%d: mac queue %d, qdisc %+v", i+1, st.Bridge.QueueDepth, st.Qdisc)
			}
		}
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("daemons not drained %s after the storm: %s", limit, last)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkHostSide fails t if daemon i lost a packet on its host: not on air
// (bad CRC and garbage are the storm's doing) but in its queues, the TAP
// ring or the qdisc, or for want of a route or room in a modem frame.
func checkHostSide(t *testing.T, p *lab.Pair, i int) *status.Snapshot {
	t.Helper()
	st := cliStatus(t, p, i)
	d := st.Bridge.Drops
	if d.QueueFull != 0 || d.QueueHead != 0 || d.NoRoute != 0 || d.TooBig != 0 || d.TAPWrite != 0 {
		t.Errorf("node%d: daemon drops on the host: %+v", i+1, d)
	}
	if st.Link != nil && st.Link.TxDropped != 0 {
		t.Errorf("node%d: TAP tx_dropped %d", i+1, st.Link.TxDropped)
	}
	if st.Qdisc != nil && st.Qdisc.Root.Drops != 0 {
		t.Errorf("node%d: qdisc drops %d", i+1, st.Qdisc.Root.Drops)
	}
	return st
}

// --- The frame checker ------------------------------------------------------

// stormView is what one node's TAP may deliver: frames from the peer.
type stormView struct {
	self, peer       int // node numbers
	selfMAC, peerMAC [6]byte
	selfIP, peerIP   [4]byte
}

func stormViewOf(t *testing.T, p *lab.Pair, i int) stormView {
	t.Helper()
	v := stormView{self: i + 1, peer: 2 - i}
	copy(v.selfMAC[:], tapMAC(t, p, i))
	copy(v.peerMAC[:], tapMAC(t, p, 1-i))
	copy(v.selfIP[:], net.ParseIP(p.Addr[i]).To4())
	copy(v.peerIP[:], net.ParseIP(p.Addr[1-i]).To4())
	return v
}

// tapMAC reads the MAC of daemon j's TAP.
func tapMAC(t *testing.T, p *lab.Pair, j int) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	err := lab.InNS(p.NS[j], func() error {
		ifi, err := net.InterfaceByName(p.Cfg.TAP)
		if err == nil {
			mac = ifi.HardwareAddr
		}
		return err
	})
	if err != nil || len(mac) != 6 {
		t.Fatalf("node%d: MAC of %s: %v (%v)", j+1, p.Cfg.TAP, mac, err)
	}
	return mac
}

// stormTally counts what a TAP delivered.
type stormTally struct {
	frames   int
	kinds    map[string]int // frames of each kind; a test datagram counted once
	dups     int            // test datagrams the TAP delivered more than once
	bad      int
	firstBad []byte
	firstWhy string
}

func (tl *stormTally) summary() string {
	var parts []string
	for _, k := range []string{"udp-storm", "udp-after", "icmp", "ipv4-other", "arp", "icmpv6", "ipv6-udp", "ipv6-other"} {
		if n := tl.kinds[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	parts = append(parts, fmt.Sprintf("duplicates %d, bad %d", tl.dups, tl.bad))
	return strings.Join(parts, ", ")
}

func checkStormFrames(v stormView, frames [][]byte) *stormTally {
	tl := &stormTally{kinds: make(map[string]int)}
	seen := make(map[[16]byte]bool)
	for _, fr := range frames {
		tl.frames++
		kind, err := checkStormFrame(v, fr)
		if err != nil {
			if tl.bad == 0 {
				tl.firstBad, tl.firstWhy = fr, err.Error()
			}
			tl.bad++
			continue
		}
		if strings.HasPrefix(kind, "udp-") {
			// Flow and seq: the UDP payload's first 16 bytes.
			var id [16]byte
			copy(id[:], fr[14+int(fr[14]&15)*4+8:])
			if seen[id] {
				tl.dups++
				continue
			}
			seen[id] = true
		}
		tl.kinds[kind]++
	}
	return tl
}

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// checkStormFrame checks one Ethernet frame node v.self's TAP delivered and
// says what it was: it must come from the peer's MAC to this node's MAC,
// broadcast, or the multicast MAC of its IP destination, and be a
// well-formed ARP, IPv4 or IPv6 packet from the peer with valid checksums
// (IPv4 header, UDP, ICMP, ICMPv6) and exactly its own length; IPv4 must
// carry the hosts' TOS and TTL and be unfragmented; UDP over IPv4 must be
// the test's, with an intact payload. What no check covers: bits of the
// IPv4 identification field flipped together with bits that cancel them in
// the header checksum (the CRC-32C on air and a checksum would both have to
// miss them), IPv6 traffic class and flow label, the payloads of ICMP
// echoes beyond their checksum.
func checkStormFrame(v stormView, fr []byte) (string, error) {
	if len(fr) < 14 {
		return "", fmt.Errorf("%d-byte frame", len(fr))
	}
	var dst, src [6]byte
	copy(dst[:], fr)
	copy(src[:], fr[6:])
	if src == v.selfMAC {
		return "", errors.New("a frame from this node's own MAC: the sniffer saw an outgoing frame")
	}
	if src != v.peerMAC {
		return "", fmt.Errorf("source MAC %s is not the peer's %s", net.HardwareAddr(src[:]), net.HardwareAddr(v.peerMAC[:]))
	}
	body := fr[14:]
	switch et := binary.BigEndian.Uint16(fr[12:]); et {
	case 0x0806:
		return "arp", checkARP(v, dst, body)
	case 0x0800:
		return checkIPv4(v, dst, body)
	case 0x86dd:
		return checkIPv6(v, dst, body)
	default:
		return "", fmt.Errorf("EtherType %#04x", et)
	}
}

func checkARP(v stormView, dst [6]byte, b []byte) error {
	if len(b) != 28 {
		return fmt.Errorf("ARP packet of %d bytes, want 28", len(b))
	}
	if !bytes.Equal(b[:6], []byte{0, 1, 8, 0, 6, 4}) {
		return fmt.Errorf("ARP hardware/protocol fields % x", b[:6])
	}
	op := binary.BigEndian.Uint16(b[6:])
	if !bytes.Equal(b[8:14], v.peerMAC[:]) || !bytes.Equal(b[14:18], v.peerIP[:]) {
		return fmt.Errorf("ARP sender %s %s is not the peer", net.HardwareAddr(b[8:14]), net.IP(b[14:18]))
	}
	if !bytes.Equal(b[24:28], v.selfIP[:]) {
		return fmt.Errorf("ARP target %s is not this node", net.IP(b[24:28]))
	}
	switch op {
	case 1:
		if dst != broadcastMAC && dst != v.selfMAC {
			return fmt.Errorf("ARP request to %s", net.HardwareAddr(dst[:]))
		}
		// Zero, or the cached MAC when the peer re-probes by unicast.
		if tm := b[18:24]; !bytes.Equal(tm, make([]byte, 6)) && !bytes.Equal(tm, v.selfMAC[:]) {
			return fmt.Errorf("ARP request with target MAC %s", net.HardwareAddr(tm))
		}
	case 2:
		if dst != v.selfMAC || !bytes.Equal(b[18:24], v.selfMAC[:]) {
			return fmt.Errorf("ARP reply to %s for %s", net.HardwareAddr(dst[:]), net.HardwareAddr(b[18:24]))
		}
	default:
		return fmt.Errorf("ARP op %d", op)
	}
	return nil
}

// csum adds b to a one's complement sum.
func csum(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// csumOK reports whether a one's complement sum, checksum field included,
// folds to 0xffff.
func csumOK(sum uint32) bool { return fold(sum) == 0xffff }

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

func checkIPv4(v stormView, dst [6]byte, b []byte) (string, error) {
	if len(b) < 20 {
		return "", fmt.Errorf("IPv4 packet of %d bytes", len(b))
	}
	if b[0]>>4 != 4 {
		return "", fmt.Errorf("IP version %d under EtherType IPv4", b[0]>>4)
	}
	ihl := int(b[0]&15) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < 20 || total < ihl || len(b) < ihl {
		return "", fmt.Errorf("IPv4 header length %d, total length %d, %d bytes", ihl, total, len(b))
	}
	if !csumOK(csum(0, b[:ihl])) {
		return "", fmt.Errorf("IPv4 header checksum %#04x is wrong", binary.BigEndian.Uint16(b[10:]))
	}
	if total != len(b) {
		return "", fmt.Errorf("IPv4 total length %d, but %d bytes after the Ethernet header", total, len(b))
	}
	if frag := binary.BigEndian.Uint16(b[6:]); frag&0xbfff != 0 {
		return "", fmt.Errorf("IPv4 flags/offset %#04x: a fragment or the reserved bit; the test sends neither", frag)
	}
	// A fresh namespace's defaults; nothing routes between the nodes.
	if b[1] != 0 || b[8] != 64 {
		return "", fmt.Errorf("IPv4 TOS %#02x, TTL %d: the hosts send 0 and 64", b[1], b[8])
	}
	var sip, dip [4]byte
	copy(sip[:], b[12:])
	copy(dip[:], b[16:])
	if sip != v.peerIP {
		return "", fmt.Errorf("IPv4 source %s is not the peer", net.IP(sip[:]))
	}
	switch {
	case dip == v.selfIP:
		if dst != v.selfMAC {
			return "", fmt.Errorf("IPv4 to %s under MAC %s", net.IP(dip[:]), net.HardwareAddr(dst[:]))
		}
	case dip[0]&0xf0 == 0xe0:
		if want := [6]byte{1, 0, 0x5e, dip[1] & 0x7f, dip[2], dip[3]}; dst != want {
			return "", fmt.Errorf("IPv4 multicast %s under MAC %s", net.IP(dip[:]), net.HardwareAddr(dst[:]))
		}
	case dip == [4]byte{255, 255, 255, 255} || (dip[3] == 255 && bytes.Equal(dip[:3], v.selfIP[:3])):
		if dst != broadcastMAC {
			return "", fmt.Errorf("IPv4 broadcast under MAC %s", net.HardwareAddr(dst[:]))
		}
	default:
		return "", fmt.Errorf("IPv4 destination %s is not this node", net.IP(dip[:]))
	}
	l4 := b[ihl:]
	switch b[9] {
	case 17:
		if len(l4) < 8 || int(binary.BigEndian.Uint16(l4[4:])) != len(l4) {
			return "", fmt.Errorf("UDP length field %d, %d bytes", binary.BigEndian.Uint16(l4[4:min(len(l4), 6)]), len(l4))
		}
		if binary.BigEndian.Uint16(l4[6:]) == 0 {
			return "", errors.New("UDP without checksum: Linux always sets one")
		}
		// Pseudo-header: source, destination, zero and protocol, UDP length.
		sum := csum(0, b[12:20])
		sum += 17 + uint32(len(l4))
		if !csumOK(csum(sum, l4)) {
			return "", fmt.Errorf("UDP checksum %#04x is wrong", binary.BigEndian.Uint16(l4[6:]))
		}
		sport, dport := binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		if (dport != stormPort && dport != stormPort+1) || sport != dport {
			return "", fmt.Errorf("UDP %d → %d: not the test's traffic", sport, dport)
		}
		if _, _, err := checkStormPayload(l4[8:], func(f uint64) bool { return f == stormFlow(int(dport), v.peer) }); err != nil {
			return "", err
		}
		if dport == stormPort {
			return "udp-storm", nil
		}
		return "udp-after", nil
	case 1:
		if len(l4) < 8 || !csumOK(csum(0, l4)) {
			return "", fmt.Errorf("ICMP message of %d bytes with a wrong checksum", len(l4))
		}
		return "icmp", nil
	default:
		return "ipv4-other", nil
	}
}

func checkIPv6(v stormView, dst [6]byte, b []byte) (string, error) {
	if len(b) < 40 {
		return "", fmt.Errorf("IPv6 packet of %d bytes", len(b))
	}
	if b[0]>>4 != 6 {
		return "", fmt.Errorf("IP version %d under EtherType IPv6", b[0]>>4)
	}
	if pl := int(binary.BigEndian.Uint16(b[4:])); pl != len(b)-40 {
		return "", fmt.Errorf("IPv6 payload length %d, but %d bytes", pl, len(b)-40)
	}
	src, dip := b[8:24], b[24:40]
	if !(src[0] == 0xfe && src[1]&0xc0 == 0x80) && !net.IP(src).Equal(net.IPv6unspecified) {
		return "", fmt.Errorf("IPv6 source %s: the peer has only a link-local address", net.IP(src))
	}
	if dip[0] == 0xff {
		if want := [6]byte{0x33, 0x33, dip[12], dip[13], dip[14], dip[15]}; dst != want {
			return "", fmt.Errorf("IPv6 multicast %s under MAC %s", net.IP(dip), net.HardwareAddr(dst[:]))
		}
	} else if dst != v.selfMAC {
		return "", fmt.Errorf("IPv6 unicast %s under MAC %s", net.IP(dip), net.HardwareAddr(dst[:]))
	}
	next, rest := b[6], b[40:]
	if next == 0 { // hop-by-hop options (MLD)
		if len(rest) < 8 || len(rest) < int(rest[1]+1)*8 {
			return "", errors.New("IPv6 hop-by-hop header cut short")
		}
		next, rest = rest[0], rest[int(rest[1]+1)*8:]
	}
	if next != 58 && next != 17 {
		return "ipv6-other", nil
	}
	// Pseudo-header: source, destination, upper-layer length, next header.
	sum := csum(0, b[8:40])
	sum += uint32(len(rest)) + uint32(next)
	if len(rest) < 8 || !csumOK(csum(sum, rest)) {
		return "", fmt.Errorf("IPv6 next header %d: %d bytes with a wrong checksum", next, len(rest))
	}
	if next == 17 {
		return "ipv6-udp", nil
	}
	return "icmpv6", nil
}

// --- The checker's own test -------------------------------------------------

var testView = stormView{
	self: 2, peer: 1,
	selfMAC: [6]byte{0x02, 0x53, 0x4c, 0x44, 0x00, 0x02}, peerMAC: [6]byte{0x02, 0x53, 0x4c, 0x44, 0x00, 0x01},
	selfIP: [4]byte{203, 0, 113, 2}, peerIP: [4]byte{203, 0, 113, 1},
}

// ipv4Frame wraps an IPv4 payload of protocol proto from v's peer to v.
func ipv4Frame(v stormView, proto byte, id uint16, l4 []byte) []byte {
	fr := make([]byte, 14+20+len(l4))
	copy(fr, v.selfMAC[:])
	copy(fr[6:], v.peerMAC[:])
	binary.BigEndian.PutUint16(fr[12:], 0x0800)
	ip := fr[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(ip[4:], id)
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	copy(ip[12:], v.peerIP[:])
	copy(ip[16:], v.selfIP[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(csum(0, ip[:20])))
	copy(ip[20:], l4)
	return fr
}

// udpTestFrame is datagram seq of the peer's flow to port, as the TAP
// would deliver it.
func udpTestFrame(v stormView, port int, seq uint64, size int) []byte {
	udp := make([]byte, 8+size)
	binary.BigEndian.PutUint16(udp, uint16(port))
	binary.BigEndian.PutUint16(udp[2:], uint16(port))
	binary.BigEndian.PutUint16(udp[4:], uint16(8+size))
	stormPayload(udp[8:], stormFlow(port, v.peer), seq)
	sum := csum(0, v.peerIP[:])
	sum = csum(sum, v.selfIP[:])
	c := ^fold(csum(sum+17+uint32(len(udp)), udp))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return ipv4Frame(v, 17, uint16(seq), udp)
}

func echoFrame(v stormView) []byte {
	icmp := make([]byte, 64)
	icmp[0] = 0 // echo reply
	binary.BigEndian.PutUint16(icmp[4:], 0x1234)
	for i := 8; i < len(icmp); i++ {
		icmp[i] = byte(i)
	}
	binary.BigEndian.PutUint16(icmp[2:], ^fold(csum(0, icmp)))
	return ipv4Frame(v, 1, 7, icmp)
}

func arpFrame(v stormView) []byte {
	fr := make([]byte, 42)
	copy(fr, broadcastMAC[:])
	copy(fr[6:], v.peerMAC[:])
	binary.BigEndian.PutUint16(fr[12:], 0x0806)
	copy(fr[14:], []byte{0, 1, 8, 0, 6, 4, 0, 1})
	copy(fr[22:], v.peerMAC[:])
	copy(fr[28:], v.peerIP[:])
	copy(fr[38:], v.selfIP[:])
	return fr
}

// TestStormFrameCheck: the checker passes intact frames and catches every
// single flipped bit, fragments of the wrong packet, lost, repeated or
// extra bytes, random bursts and outgoing frames.
func TestStormFrameCheck(t *testing.T) {
	v := testView
	const size = 1000
	good := map[string][]byte{
		"udp-storm": udpTestFrame(v, stormPort, 3, size),
		"icmp":      echoFrame(v),
		"arp":       arpFrame(v),
	}
	mustFail := func(what string, fr []byte) {
		t.Helper()
		if kind, err := checkStormFrame(v, fr); err == nil {
			t.Fatalf("%s: accepted as %s:\n%s", what, kind, hex.Dump(fr))
		}
	}
	for want, fr := range good {
		if kind, err := checkStormFrame(v, fr); err != nil || kind != want {
			t.Fatalf("intact %s frame: %q, %v", want, kind, err)
		}
		for bit := range len(fr) * 8 {
			c := bytes.Clone(fr)
			c[bit/8] ^= 1 << (bit % 8)
			mustFail(fmt.Sprintf("%s frame, bit %d flipped", want, bit), c)
		}
		mustFail(want+" frame one byte short", fr[:len(fr)-1])
		mustFail(want+" frame with a byte more", append(bytes.Clone(fr), 0))
		out := bytes.Clone(fr)
		copy(out[6:], v.selfMAC[:])
		mustFail(want+" frame from this node (outgoing)", out)
	}
	if kind, err := checkStormFrame(v, udpTestFrame(v, stormPort+1, 9, 200)); err != nil || kind != "udp-after" {
		t.Fatalf("intact frame after the storm: %q, %v", kind, err)
	}

	// Reassembly gone wrong: one 53-byte piece (a fragment's share at
	// -frame-max 64) from another packet of the same flow, a piece twice,
	// a piece missing.
	const piece = 53
	a, b := good["udp-storm"], udpTestFrame(v, stormPort, 4, size)
	for off := 0; off < len(a); off += piece {
		end := min(off+piece, len(a))
		mix := bytes.Clone(a)
		copy(mix[off:end], b[off:end])
		mustFail(fmt.Sprintf("piece at %d from seq 4", off), mix)
		if end+piece <= len(a) {
			dup := bytes.Clone(a)
			copy(dup[end:end+piece], a[off:end])
			mustFail(fmt.Sprintf("piece at %d twice", off), dup)
		}
		mustFail(fmt.Sprintf("piece at %d missing", off), append(bytes.Clone(a[:off]), a[end:]...))
	}

	// Line noise: 10,000 bursts of 1-32 random bytes written over the
	// datagram anywhere (each at least one byte different).
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		c := bytes.Clone(a)
		n := 1 + r.IntN(32)
		off := r.IntN(len(c) - n + 1)
		for i := off; i < off+n; i++ {
			c[i] = byte(r.Uint32())
		}
		if bytes.Equal(c, a) {
			continue
		}
		mustFail(fmt.Sprintf("%d random bytes at %d", n, off), c)
	}

	// The socket-side payload check alone.
	pl := make([]byte, size)
	stormPayload(pl, 7, 1)
	if _, _, err := checkStormPayload(pl, func(f uint64) bool { return f == 7 }); err != nil {
		t.Fatal(err)
	}
	pl[500] ^= 0x40
	if _, _, err := checkStormPayload(pl, func(f uint64) bool { return f == 7 }); err == nil {
		t.Fatal("payload with a flipped bit accepted")
	}
}
