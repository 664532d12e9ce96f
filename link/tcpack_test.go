package link

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/slided/slided/framing"
)

// tcpSeg is an Ethernet frame of a TCP segment over IPv4 from node src to
// node dst: ports 5201 → 40000 (the reverse direction of an iperf3 flow),
// acknowledgement number ack, flags (0x10: ACK alone), TCP options opts
// (padded to whole words) and payload bytes of zeros. Checksums are left
// zero: the link never looks at them.
func tcpSeg(dst, src framing.NodeID, ack uint32, flags byte, opts []byte, payload int) []byte {
	for len(opts)%4 != 0 {
		opts = append(opts, 1) // NOP
	}
	tl := 20 + len(opts)
	b := make([]byte, 14+20+tl+payload)
	copy(b, framing.MACFor(dst))
	copy(b[6:], framing.MACFor(src))
	b[12], b[13] = 0x08, 0x00
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+tl+payload))
	ip[6], ip[8], ip[9] = 0x40, 64, 6
	copy(ip[12:], []byte{192, 0, 2, byte(src), 192, 0, 2, byte(dst)})
	tcp := b[34:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], 1)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = byte(tl/4) << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	copy(tcp[20:], opts)
	return b
}

// tsOpt is the timestamps option with the values a, b.
func tsOpt(a, b uint32) []byte {
	o := []byte{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(o[4:], a)
	binary.BigEndian.PutUint32(o[8:], b)
	return o
}

func TestParsePureACK(t *testing.T) {
	ts := tsOpt(7, 9)
	sack := append(append([]byte{}, ts...), 1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2)
	v6 := func() []byte {
		b := make([]byte, 14+40+32)
		b[12], b[13] = 0x86, 0xdd
		ip := b[14:]
		ip[0], ip[6] = 0x60, 6
		binary.BigEndian.PutUint16(ip[4:], 32)
		ip[8], ip[24] = 0xfd, 0xfd
		tcp := ip[40:]
		binary.BigEndian.PutUint32(tcp[8:], 1234)
		tcp[12], tcp[13] = 8<<4, 0x10
		copy(tcp[20:], tsOpt(1, 2))
		return b
	}
	mod := func(b []byte, f func(b []byte)) []byte { f(b); return b }
	cases := []struct {
		desc string
		eth  []byte
		ok   bool
	}{
		{"pure ACK with timestamps", tcpSeg(1, 2, 1000, 0x10, ts, 0), true},
		{"pure ACK without options", tcpSeg(1, 2, 1000, 0x10, nil, 0), true},
		{"pure ACK over IPv6", v6(), true},
		{"SACK blocks", tcpSeg(1, 2, 1000, 0x10, sack, 0), false},
		{"payload", tcpSeg(1, 2, 1000, 0x10, ts, 1), false},
		{"PSH", tcpSeg(1, 2, 1000, 0x18, ts, 0), false},
		{"FIN", tcpSeg(1, 2, 1000, 0x11, ts, 0), false},
		{"SYN", tcpSeg(1, 2, 1000, 0x12, ts, 0), false},
		{"RST", tcpSeg(1, 2, 1000, 0x14, ts, 0), false},
		{"URG", tcpSeg(1, 2, 1000, 0x30, ts, 0), false},
		{"ECE", tcpSeg(1, 2, 1000, 0x50, ts, 0), false},
		{"CWR", tcpSeg(1, 2, 1000, 0x90, ts, 0), false},
		{"AE (NS) bit", mod(tcpSeg(1, 2, 1000, 0x10, ts, 0), func(b []byte) { b[34+12] |= 1 }), false},
		{"window scale option", tcpSeg(1, 2, 1000, 0x10, []byte{3, 3, 7}, 0), false},
		{"timestamps of a wrong length", tcpSeg(1, 2, 1000, 0x10, []byte{8, 9, 0, 0, 0, 0, 0, 0, 0}, 0), false},
		{"IP marked CE", mod(tcpSeg(1, 2, 1000, 0x10, ts, 0), func(b []byte) { b[15] |= 3 }), false},
		{"IPv4 options", mod(tcpSeg(1, 2, 1000, 0x10, ts, 0), func(b []byte) { b[14] = 0x46 }), false},
		{"fragment", mod(tcpSeg(1, 2, 1000, 0x10, ts, 0), func(b []byte) { b[14+6] |= 0x20 }), false},
		{"UDP", udpFrame(1, 2, 1, 24), false},
		{"short", tcpSeg(1, 2, 1000, 0x10, ts, 0)[:40], false},
		{"nothing", nil, false},
	}
	for _, c := range cases {
		a, ok := parsePureACK(c.eth)
		if ok != c.ok {
			t.Errorf("%s: ok %v, want %v", c.desc, ok, c.ok)
		}
		if ok && c.desc != "pure ACK over IPv6" && a.ack != 1000 {
			t.Errorf("%s: ack %d, want 1000", c.desc, a.ack)
		}
	}
}

func FuzzParsePureACK(f *testing.F) {
	f.Add(tcpSeg(1, 2, 1000, 0x10, tsOpt(1, 2), 0))
	f.Add(udpFrame(1, 2, 1, 24))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := parsePureACK(b)
		if ok && (a.n != 12 && a.n != 36) {
			t.Errorf("connection of %d bytes", a.n)
		}
	})
}

// TestTCPAcksThinned: the receiver of a bulk TCP flow (node 2, its host
// giving a pure ACK with timestamps for every segment delivered, the
// acknowledgement number growing) sends one ACK on air for about three
// segments; node 1's host gets them in order of their numbers, none
// twice, the connection's first quickACKs all, and, once the sender
// stops, the last. A duplicate ACK, an ACK
// with SACK blocks and one with ECE are never replaced. On the old code
// every ACK went on air. Behind modems that take bursts where our MAC does
// the access (the simulated medium's), from the medium's bursts (b97a65e)
// until the rides came back there, every ACK went on air too: 114 of 114,
// none thinned (now 39 of 115).
func TestTCPAcksThinned(t *testing.T) {
	for _, mo := range burstModems {
		t.Run(mo.name, func(t *testing.T) { testTCPAcksThinned(t, mo.burst) })
	}
}

func testTCPAcksThinned(t *testing.T, burst int) {
	const rate = 115200
	cfg := Config{NoReorder: true, AdaptiveMAC: true}
	m, n1, n2 := ridePair(t, rate, burst, cfg, cfg)
	// How long the sender's queued data takes to arrive once its host
	// stops: behind bursts, node 1's MAC queue and ARQ window hold about
	// 5 s of it (16 and 32 datagrams of 1400 bytes).
	drain := 2_000
	if burst > 1 {
		drain = 8_000
	}
	var id uint32
	var given []uint32 // ACK numbers node 2's host gave, in order
	var pending []uint32
	seen1, seen2 := 0, 0
	got := func() []uint32 {
		var acks []uint32
		for _, f := range n1.host[seen1:] {
			if a, ok := parsePureACK(f); ok {
				acks = append(acks, a.ack)
			}
		}
		seen1 = len(n1.host)
		return acks
	}
	var recv []uint32
	answer := true
	step := func(bulk bool) {
		for bulk && n1.e.WantRead() {
			m.hostFrame(n1, flowUDP(2, 1, 7000, id, 1400))
			id++
		}
		for len(pending) > 0 && n2.e.WantRead() {
			m.hostFrame(n2, tcpSeg(1, 2, pending[0], 0x10, tsOpt(pending[0], 1), 0))
			given = append(given, pending[0])
			pending = pending[1:]
		}
		m.run(time.Millisecond)
		for ; seen2 < len(n2.host); seen2++ {
			if answer {
				pending = append(pending, uint32(1+1448*(seen2+1)))
			}
		}
		recv = append(recv, got()...)
	}
	for range 10_000 { // 10 s in 1 ms steps
		step(true)
	}
	for range drain { // the sender stops: the last ACK goes all the same
		step(false)
	}
	st := n2.e.Stats(m.Now())
	t.Logf("ACKs given %d, received %d, thinned %d, rode %d", len(given), len(recv), st.TCPAcksThinned, st.AckRides)
	if len(given) < 50 {
		t.Fatalf("only %d ACKs given", len(given))
	}
	if len(recv)*2 > len(given) {
		t.Errorf("%d of %d ACKs went on air, want at most half", len(recv), len(given))
	}
	for i := range quickACKs {
		if recv[i] != given[i] {
			t.Fatalf("ACK %d of the connection's first %d: %d arrived, want %d (none thinned)", i, quickACKs, recv[i], given[i])
		}
	}
	for i := 1; i < len(recv); i++ {
		if int32(recv[i]-recv[i-1]) <= 0 {
			t.Fatalf("ACK %d after %d", recv[i], recv[i-1])
		}
	}
	if len(recv) == 0 || recv[len(recv)-1] != given[len(given)-1] {
		t.Errorf("the last ACK (%d) did not arrive", given[len(given)-1])
	}
	if st.TCPAcksThinned != uint64(len(given)-len(recv)) {
		t.Errorf("tcp_acks_thinned %d, want %d", st.TCPAcksThinned, len(given)-len(recv))
	}

	// What is never replaced: duplicates, SACK blocks, ECE. Node 1 sends
	// again so that node 2 holds ACKs; each of these reaches node 1.
	last := given[len(given)-1] + 1_000_000
	specials := [][]byte{
		tcpSeg(1, 2, last+1448, 0x10, tsOpt(1, 1), 0),
		tcpSeg(1, 2, last+1448, 0x10, tsOpt(1, 1), 0), // duplicate
		tcpSeg(1, 2, last+1448, 0x10, append(tsOpt(1, 1), 1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2), 0),
		tcpSeg(1, 2, last+2*1448, 0x50, tsOpt(1, 1), 0), // ECE
		tcpSeg(1, 2, last+3*1448, 0x10, tsOpt(1, 1), 0),
	}
	before := len(n1.host)
	answer = false
	for range 300 {
		step(true)
	}
	for _, f := range specials {
		for !n2.e.WantRead() {
			m.run(time.Millisecond)
		}
		m.hostFrame(n2, f)
	}
	for range drain {
		step(false)
	}
	var tail []uint32
	for _, f := range n1.host[before:] {
		if len(f) > 34 && f[23] == 6 {
			tail = append(tail, binary.BigEndian.Uint32(f[34+8:]))
		}
	}
	want := []uint32{last + 1448, last + 1448, last + 1448, last + 2*1448, last + 3*1448}
	if len(tail) < len(want) || !equalTail(tail, want) {
		t.Errorf("ACKs after the specials: %v, want them to end %v", tail, want)
	}
}

func equalTail(got, want []uint32) bool {
	got = got[len(got)-len(want):]
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
