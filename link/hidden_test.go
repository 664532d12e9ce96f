package link

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/sim"
	simmedium "github.com/slided/slided/phy/sim/medium"
)

// Three engines in a line on the simulated medium's core (phy/sim/medium),
// in virtual time, as packaging/mininet/line.py runs three daemons: 1 and 2
// hear each other, 2 and 3 hear each other, 1 and 3 do not (hidden from each
// other), 115200 bit/s, 1 ms between neighbours, the modems' Info as the
// sim client reports it (bursts of sim.BurstFrames, carrier at arrival) and
// the engines' configuration slided run's (AdaptiveMAC). Every node's host
// sends a small multicast packet every 2 s (a babeld hello, which goes on
// air once: no ARQ for broadcasts) while node 1 saturates the chain. babeld
// on a "wireless" interface declares a neighbour gone after 12 of its hellos
// in a row are lost, and that is what happened to node 3 at node 2 in about
// one run of four through the real daemons.

// lineTrace, if set (by a test that follows a run), sees every event the
// medium delivers and every transmission (Kind 99, Data the burst).
var lineTrace func(now time.Time, node int, ev phy.Event)

// lineHelloEvery is the hosts' hello interval (babeld's hello-interval 2).
const lineHelloEvery = 2 * time.Second

// lineForwardQueue bounds node 2's forwarding queue (the kernel's qdisc
// between the TAP's receive and transmit sides): drop-tail beyond it.
const lineForwardQueue = 100

// lineMode is what the hosts of the line send, besides their hellos.
type lineMode int

const (
	// lineForward: node 1 saturates a flow to node 3, which node 2
	// forwards.
	lineForward lineMode = iota
	// lineFlows: node 1 saturates a flow to node 2, node 2 one to node 3.
	lineFlows
	// lineConverge: node 1 and node 3, hidden from each other, each
	// saturate a flow to node 2.
	lineConverge
	// lineAlone: node 1 alone saturates a flow to node 2 (node 3 sends
	// only its hellos): what one sender gets through.
	lineAlone
	// lineLossy: node 1 alone saturates a flow to node 2 and node 3 is
	// silent (not even hellos): a lone sender, whose only losses are
	// the medium's (lineOpts.loss).
	lineLossy
	// lineSparse: node 1 and node 3 each send node 2 one datagram with
	// each of their hellos (every 2 s): sparse flows from two hidden
	// senders, as a ping or a routing protocol's unicast.
	lineSparse
)

// lineOpts are a run's settings besides its seed, mode, modem and length.
type lineOpts struct {
	late time.Duration // node 3 starts its flow this late (lineConverge)
	// once: node 3 sends node 2 one datagram this long after the start,
	// before its flow (an ARP reply, a routing protocol's unicast).
	once time.Duration
	// warm: this long after the start nodes 1 and 3 each send node 2 one
	// datagram and node 2 sends each of them one (a ping through node
	// 2, routing protocols' unicast), and both flows (lineConverge)
	// start at 2·warm: the senders know each other at node 2 and have
	// each heard node 2 send data.
	warm     time.Duration
	loss     float64 // the share of receptions each link loses (simmedium.Link.LossRate)
	noHidden bool    // the engines run without the turns of hidden.go (a reference)
	noHellos bool    // no node's host sends hellos (no routing daemon)
	quiet1   bool    // node 1's host sends nothing but its hellos (no flow)
	// delay between neighbours (0: 1 ms, as in packaging/mininet/line.toml);
	// the engines are configured for 100 µs either way.
	delay time.Duration
}

// lineNode is one node of the line.
type lineNode struct {
	id     framing.NodeID
	e      *Engine
	fwd    [][]byte // packets for the engine, oldest first (node 2's forwarding queue)
	hellos [][]byte // hellos waiting for the engine (they go first)
	seq    uint32
	hello  uint32    // hellos sent so far
	next   time.Time // the next hello
	drops  uint64    // forwarded packets dropped at a full queue
	warmed bool      // its part of lineOpts.warm is done
}

// helloCount is what one node's host got of a neighbour's hellos: sent,
// received, and the longest run lost.
type helloCount struct{ sent, got, run int }

// lineRun is one run of the line.
type lineRun struct {
	t     testing.TB
	m     *simmedium.Medium
	info  phy.Info
	split sim.Splitter
	nodes [3]*lineNode
	now   time.Time
	mode  lineMode
	rng   *rand.Rand
	epoch time.Time
	late  time.Duration // node 3 starts its flow this late (lineConverge)
	once  time.Time     // node 3 sends node 2 one datagram then (lineOpts.once), if not zero
	warm  time.Time     // the exchange of lineOpts.warm, if not zero
	// noHellos: the hellos are not handed to the engines; quiet1: node 1
	// has no flow (lineOpts).
	noHellos, quiet1 bool
	start            time.Time // node 1's flow starts then
	// heard[to][from][k]: node to's host got hello k of node from.
	heard [4][4][]bool
	// delivered[n]: datagrams of the saturated flows delivered to node n's host
	// as their final destination.
	delivered [4]uint64
	// from[n]: datagrams delivered to node 2's host from node n, and when
	// the last was (or the start); gap[n]: the longest time between two.
	from [4]uint64
	last [4]time.Time
	gap  [4]time.Duration
	// delays[n]: how long each datagram from node n took from its host
	// to node 2's (lineSparse).
	delays [4][]time.Duration
	air    [4]time.Duration // each node's time on air
	err    error
}

// lineResult is what a run measured.
type lineResult struct {
	// Hellos of 3 at 2: sent, received, the longest run lost.
	sent, got, run int
	// hellos[from][to]: the same for each pair of neighbours.
	hellos [4][4]helloCount
	// The same for the other pairs, for the log.
	pairs string
	// Datagrams delivered at node 2 (from 1) and at node 3 (from 2, or
	// forwarded from 1), and each node's ARQ retransmissions.
	at2, at3    uint64
	retx        [4]uint64
	giveUps     uint64
	collisions  uint64
	fwdDrops    uint64
	transmitted uint64
	air         [4]float64 // each node's share of the time on air
	// Datagrams delivered at node 2 from each node, the longest time
	// without one (the run's start and end count), and each node's
	// give-ups; the delays of the datagrams at node 2 (lineSparse).
	delays [4][]time.Duration
	from   [4]uint64
	gap    [4]time.Duration
	giveUp [4]uint64
	// overruns: each node's count of rooms overrun at the end (nav.go).
	overruns [4]int
}

// runLine runs the line for d of virtual time, on modems that take bursts
// of up to burst frames (the sim client's sim.BurstFrames; 0: one frame a
// transmission, a serial modem with carrier detect).
func runLine(t testing.TB, seed uint64, mode lineMode, burst int, d time.Duration) lineResult {
	t.Helper()
	return runLineWith(t, seed, mode, burst, d, lineOpts{})
}

// runLineWith is runLine with the settings o.
func runLineWith(t testing.TB, seed uint64, mode lineMode, burst int, d time.Duration, o lineOpts) lineResult {
	t.Helper()
	late := o.late
	m, err := simmedium.New(simmedium.Config{BitRate: 115200, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	delay := o.delay
	if delay == 0 {
		delay = time.Millisecond
	}
	topo, err := simmedium.FullMesh(simmedium.Link{Reach: true, Delay: delay, LossRate: o.loss}, 1, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.SetLink(1, 3, simmedium.Link{}); err != nil {
		t.Fatal(err)
	}
	if err := topo.SetLink(3, 1, simmedium.Link{}); err != nil {
		t.Fatal(err)
	}
	m.SetTopology(topo)
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &lineRun{t: t, m: m, now: epoch, mode: mode, rng: rand.New(rand.NewPCG(seed, 7)),
		info: phy.Info{BitRate: 115200, MaxFrame: simmedium.MaxFrame, CarrierAtArrival: true, MaxBurstFrames: burst}}
	m.Advance(epoch, nil)
	r.noHellos, r.quiet1 = o.noHellos, o.quiet1
	r.last = [4]time.Time{epoch, epoch, epoch, epoch}
	r.epoch, r.late = epoch, late
	if o.once > 0 {
		r.once = epoch.Add(o.once)
	}
	r.start = epoch
	if o.warm > 0 {
		r.warm, r.start = epoch.Add(o.warm), epoch.Add(2*o.warm)
		r.late = 2 * o.warm
	}
	r.last[3] = epoch.Add(late)
	for i := range r.nodes {
		id := framing.NodeID(i + 1)
		e, err := New(Config{Node: id, AdaptiveMAC: true, Seed: seed*16 + uint64(id), Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Attach(simmedium.NodeID(id)); err != nil {
			t.Fatal(err)
		}
		if err := e.Modem(r.now, phy.Event{Kind: phy.Up}, r.info); err != nil {
			t.Fatal(err)
		}
		if o.noHidden {
			e.hidden = hiddenTurns{} // hiddenOn is false
		}
		// Hellos start at a random phase, as each babeld does.
		n := &lineNode{id: id, e: e, next: epoch.Add(time.Duration(r.rng.Int64N(int64(lineHelloEvery))))}
		if mode == lineLossy && id == 3 {
			n.next = epoch.Add(d + time.Hour) // silent
		}
		r.nodes[i] = n
	}
	for _, n := range r.nodes {
		r.service(n)
	}
	end := epoch.Add(d)
	deliver := func(to simmedium.NodeID, ev phy.Event) {
		n := r.nodes[to-1]
		if lineTrace != nil {
			lineTrace(r.now, int(to), ev)
		}
		if err := n.e.Modem(r.now, ev, r.info); err != nil && r.err == nil {
			r.err = err
		}
		r.service(n)
	}
	for r.err == nil {
		at, ok := m.Next()
		var due *lineNode
		hello := false
		for _, n := range r.nodes {
			if dl, dok := n.e.Deadline(); dok && (!ok || dl.Before(at)) {
				at, ok, due, hello = dl, true, n, false
			}
			if !ok || n.next.Before(at) {
				at, ok, due, hello = n.next, true, n, true
			}
		}
		if at.Before(r.now) {
			at = r.now
		}
		if at.After(end) {
			break
		}
		r.now = at
		switch {
		case due == nil:
			m.Advance(at, deliver)
		case hello:
			if !r.noHellos {
				due.hellos = append(due.hellos, r.helloFrame(due))
			}
			if mode == lineSparse && due.id != 2 {
				due.fwd = append(due.fwd, r.datagram(due, 2, 2))
			}
			// babeld jitters its hellos a little.
			due.next = due.next.Add(lineHelloEvery - 100*time.Millisecond + time.Duration(r.rng.Int64N(int64(200*time.Millisecond))))
			r.service(due)
		default:
			r.service(due)
		}
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	var res lineResult
	for from := 1; from <= 3; from++ {
		for to := 1; to <= 3; to++ {
			if from == to || from+to == 4 { // 1 and 3 do not hear each other
				continue
			}
			sent := int(r.nodes[from-1].hello)
			got, run, cur := 0, 0, 0
			for k := range sent {
				if k < len(r.heard[to][from]) && r.heard[to][from][k] {
					got++
					cur = 0
					continue
				}
				cur++
				run = max(run, cur)
			}
			res.pairs += fmt.Sprintf(" %d->%d %d/%d (run %d)", from, to, got, sent, run)
			res.hellos[from][to] = helloCount{sent, got, run}
			if from == 3 && to == 2 {
				res.sent, res.got, res.run = sent, got, run
			}
		}
	}
	res.at2, res.at3 = r.delivered[2], r.delivered[3]
	for _, n := range r.nodes {
		s := n.e.Stats(r.now)
		res.retx[n.id] = s.ARQ.Retransmissions
		res.giveUps += s.ARQ.GiveUps
		res.giveUp[n.id] = s.ARQ.GiveUps
		res.overruns[n.id] = n.e.nav.overruns
		res.fwdDrops += n.drops
	}
	res.delays = r.delays
	for n := range r.from {
		res.from[n] = r.from[n]
		res.gap[n] = max(r.gap[n], end.Sub(r.last[n]))
	}
	for i, a := range r.air {
		res.air[i] = a.Seconds() / d.Seconds()
	}
	ms := m.Stats()
	res.collisions, res.transmitted = ms.Collisions, ms.Transmissions
	return res
}

// service does what the bridge's loop does after an input: the host takes
// its deliveries, gives the engine its waiting packets (hellos first) while
// it wants to read, and the engine may transmit.
func (r *lineRun) service(n *lineNode) {
	for _, d := range n.e.Deliveries() {
		r.hostGot(n, d.Eth)
		n.e.Written(r.now, d, nil)
	}
	for i := 0; n.e.WantRead() && i < 4; i++ {
		switch {
		case len(n.hellos) > 0:
			n.e.Host(r.now, n.hellos[0])
			n.hellos = n.hellos[1:]
		case !r.warm.IsZero() && !r.now.Before(r.warm) && !n.warmed:
			n.warmed = true
			if n.id == 2 {
				n.e.Host(r.now, r.datagram(n, 1, 1))
				n.e.Host(r.now, r.datagram(n, 3, 3))
			} else {
				n.e.Host(r.now, r.datagram(n, 2, 2))
			}
		case n.id == 1 && r.mode != lineSparse && !r.quiet1 && !r.now.Before(r.start):
			n.e.Host(r.now, r.datagram(n, 2, 2))
		case n.id == 2 && r.mode == lineFlows:
			n.e.Host(r.now, r.datagram(n, 3, 3))
		case n.id == 3 && !r.once.IsZero() && !r.now.Before(r.once):
			r.once = time.Time{}
			n.e.Host(r.now, r.datagram(n, 2, 2))
		case n.id == 3 && r.mode == lineConverge && !r.now.Before(r.epoch.Add(r.late)):
			n.e.Host(r.now, r.datagram(n, 2, 2))
		case len(n.fwd) > 0:
			n.e.Host(r.now, n.fwd[0])
			n.fwd = n.fwd[1:]
		}
	}
	f, ok := n.e.Poll(r.now)
	if !ok {
		return
	}
	if lineTrace != nil {
		lineTrace(r.now, int(n.id), phy.Event{Kind: 99, Data: f})
	}
	var err error
	var end time.Time
	if frames := r.split.Split(f); frames != nil {
		end, err = r.m.TransmitBurst(r.now, simmedium.NodeID(n.id), frames)
	} else {
		end, err = r.m.Transmit(r.now, simmedium.NodeID(n.id), f)
	}
	if err != nil {
		n.e.Refused(r.now, err)
		return
	}
	r.air[n.id] += end.Sub(r.now)
}

// hostGot takes a packet delivered to n's host: a hello, a datagram for n,
// or (forwarding) one for node 3 that node 2 passes on.
func (r *lineRun) hostGot(n *lineNode, eth []byte) {
	if from, k, ok := helloOf(eth); ok {
		h := &r.heard[n.id][from]
		for len(*h) <= int(k) {
			*h = append(*h, false)
		}
		(*h)[k] = true
		return
	}
	if len(eth) < 14+20+8 || binary.BigEndian.Uint16(eth[12:]) != 0x0800 {
		return
	}
	dst := framing.NodeID(eth[14+19])
	if dst == n.id {
		r.delivered[n.id]++
		if src := eth[14+15]; n.id == 2 && src < 4 {
			r.from[src]++
			r.delays[src] = append(r.delays[src], r.now.Sub(r.epoch)-time.Duration(binary.BigEndian.Uint64(eth[14+20+12:])))
			r.gap[src] = max(r.gap[src], r.now.Sub(r.last[src]))
			r.last[src] = r.now
		}
		return
	}
	if n.id != 2 || dst != 3 {
		return
	}
	if len(n.fwd) >= lineForwardQueue {
		n.drops++
		return
	}
	p := append([]byte(nil), eth...)
	copy(p, framing.MACFor(3))
	copy(p[6:], framing.MACFor(2))
	n.fwd = append(n.fwd, p)
}

// datagram is a 1000-byte UDP datagram from n to IP node dst over link node
// via, with a valid IPv4 header (the engine compresses it as the daemon's).
func (r *lineRun) datagram(n *lineNode, via, dst framing.NodeID) []byte {
	const payload = 1000
	p := make([]byte, 14+20+8+payload)
	if r.mode == lineForward && n.id == 1 {
		dst = 3
	}
	copy(p, framing.MACFor(via))
	copy(p[6:], framing.MACFor(n.id))
	binary.BigEndian.PutUint16(p[12:], 0x0800)
	ip := p[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 20+8+payload)
	n.seq++
	binary.BigEndian.PutUint16(ip[4:], uint16(n.seq))
	ip[6], ip[8], ip[9] = 0x40, 64, 17
	copy(ip[12:], []byte{198, 51, 100, byte(n.id)})
	copy(ip[16:], []byte{198, 51, 100, byte(dst)})
	binary.BigEndian.PutUint16(ip[10:], framing.IPv4HeaderChecksum(ip[:20]))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], 7000)
	binary.BigEndian.PutUint16(udp[2:], 6000)
	binary.BigEndian.PutUint16(udp[4:], 8+payload)
	binary.BigEndian.PutUint32(udp[8:], n.seq)
	binary.BigEndian.PutUint64(udp[12:], uint64(r.now.Sub(r.epoch))) // when the host sent it
	return p
}

// helloMagic marks a hello's last bytes: magic, sender, sequence number.
var helloMagic = [4]byte{'H', 'E', 'L', 'O'}

// helloFrame is n's next hello: a babeld hello's size (IPv6 and UDP to
// ff02::1:6 port 6696, 44 bytes of babel), multicast.
func (r *lineRun) helloFrame(n *lineNode) []byte {
	p := make([]byte, 14+40+8+44)
	copy(p, []byte{0x33, 0x33, 0, 1, 0, 6})
	copy(p[6:], framing.MACFor(n.id))
	binary.BigEndian.PutUint16(p[12:], 0x86dd)
	ip := p[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 8+44)
	ip[6], ip[7] = 17, 1
	copy(ip[8:], []byte{0xfe, 0x80, 14: 0, 15: byte(n.id)})
	copy(ip[24:], []byte{0xff, 0x02, 13: 1, 15: 6})
	udp := ip[40:]
	binary.BigEndian.PutUint16(udp[0:], 6696)
	binary.BigEndian.PutUint16(udp[2:], 6696)
	binary.BigEndian.PutUint16(udp[4:], 8+44)
	tail := p[len(p)-9:]
	copy(tail, helloMagic[:])
	tail[4] = byte(n.id)
	binary.BigEndian.PutUint32(tail[5:], n.hello)
	n.hello++
	return p
}

// helloOf says whether eth is a hello, whose and which.
func helloOf(eth []byte) (framing.NodeID, uint32, bool) {
	if len(eth) < 14+9 {
		return 0, 0, false
	}
	tail := eth[len(eth)-9:]
	if [4]byte(tail) != helloMagic {
		return 0, 0, false
	}
	return framing.NodeID(tail[4]), binary.BigEndian.Uint32(tail[5:]), true
}

// TestHiddenBroadcasts: the line of packaging/mininet/line.py in virtual
// time, with node 1 saturating the chain to node 3 through node 2 (forward)
// and with node 1 and node 2 each saturating a flow to the next (flows).
// Node 3's hellos must reach node 2: babeld declares the link dead after
// 12 in a row lost.
//
// Node 3 hears node 2, so it sends only while node 2 is silent, and node 2
// is then mostly receiving node 1's bursts (up to 16 frames, 1.2 s), which
// node 3 cannot hear: before nav.go node 2 got 0-6 of node 3's 30 hellos a
// minute, with 11-30 in a row lost, and node 2 sent 44-90 fragments again
// a minute, its polls' Acks from node 3 lost the same way under node 1's
// next frame. Now node 1 keeps the channel for node 3's Acks and node 3's
// hellos ride behind them: a hello is lost only when no Ack came within
// its hold (it then contends as before) or before node 3 learned of the
// hidden sender. Hence the bounds: three in four arrive over twelve runs
// (seeds), at least two in three in each, and fewer than 6 in a row are
// lost, half of babeld's 12 (at most 4 are). A bound of three in four for
// each run of 30 hellos was at the edge of its noise: seed 3 of "flows" got
// 23, and 22 once the link engine queued its data frames by bytes
// (csma.EnqueueFlowCost), which moved the twelve seeds' sums by one hello
// (forward 303 -> 302, flows 313 -> 312 of 361).
// Behind a modem that takes one frame a transmission (the hellos ride in
// fillRide, not fillBurst) node 2 got 3-7 of node 3's hellos before, runs
// of 7-16 lost, and now 28-31, runs of at most 1.
func TestHiddenBroadcasts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  lineMode
		burst int
	}{
		{"forward", lineForward, sim.BurstFrames},
		{"flows", lineFlows, sim.BurstFrames},
		{"forward, one frame a transmission", lineForward, 0},
		{"flows, one frame a transmission", lineFlows, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, sent := 0, 0
			for seed := uint64(1); seed <= 12; seed++ {
				res := runLine(t, seed, tc.mode, tc.burst, time.Minute)
				t.Logf("seed %d: hellos%s; datagrams at 2 %d, at 3 %d; retransmissions 1:%d 2:%d 3:%d, give-ups %d, collisions %d of %d, forward drops %d; on air 1:%.2f 2:%.2f 3:%.3f",
					seed, res.pairs, res.at2, res.at3, res.retx[1], res.retx[2], res.retx[3], res.giveUps, res.collisions, res.transmitted, res.fwdDrops,
					res.air[1], res.air[2], res.air[3])
				if 3*res.got < 2*res.sent || res.run >= 6 {
					t.Errorf("seed %d: node 2 got %d of node 3's %d hellos, %d in a row lost; want at least two in three, fewer than 6 in a row",
						seed, res.got, res.sent, res.run)
				}
				got += res.got
				sent += res.sent
			}
			t.Logf("node 2 got %d of node 3's %d hellos", got, sent)
			if 4*got < 3*sent {
				t.Errorf("node 2 got %d of node 3's %d hellos over 12 seeds; want at least three in four", got, sent)
			}
		})
	}
}

// TestHiddenSenders: two senders hidden from each other, node 1 and node 3
// of the line, each saturate a flow to node 2, which hears both, for a
// minute of virtual time (through the daemons: the two ends of
// packaging/mininet/line.py both sending to the middle). Carrier sense
// cannot keep them apart, so what a sane MAC must still give them:
//
//   - both get through, and about equally: Jain's index of their
//     deliveries at least 0.9 over the minute (two flows at 2:1 give
//     0.9);
//   - together at least a third of what node 1 alone gets through in the
//     same line (lineAlone): taking turns costs each turn's hand-over, and
//     a collision costs both senders the frames it overlaps, not the
//     channel;
//   - no packet given up, and no sender a long time without a delivery:
//     at most lineMaxGap, a few of the other's turns (a burst of 16
//     frames is 1.2 s) and an ack timeout, well within babeld's 12
//     hellos (24 s) and TCP's patience.
//   - the receiver's hellos reach both senders as TestHiddenBroadcasts
//     asks of node 3's: three in four, fewer than 6 in a row lost
//     (babeld on nodes 1 and 3 gives node 2 up after 12).
//
// Before the fix both stalled for the whole minute in every run: their
// first frames collided at node 2, and with the same ack timeouts (no
// retry jitter behind a modem that senses carrier) every retransmission
// collided again while the timers doubled in step: 0 datagrams each in
// all six runs, 5 retransmissions each a minute with bursts, 13
// retransmissions and 4 give-ups each with one frame a transmission
// (node 1 alone: 675-756). Retry jitter alone only changed the stall into
// capture: one sender got 675-739, the other 0 (Jain 0.50). With the turns
// of link/hidden.go: 380-398 each, Jain 1.00, longest gap 0.5-3.2 s, no
// give-up (node 1 alone 710-756), node 2's hellos 25-30 of 30-31 at nodes 1
// and 3 (3-15 without tokenLead). A node 3 that starts 20 s after node 1
// gets nothing, before and after: node 1 has no evidence of it (R never
// acknowledged it), and loss alone does not make a sender leave gaps
// (TestLossyLoneSender). After one datagram at 5 s that got through, the
// two collapsed to 102 and 1 datagrams without the random wait after a
// timeout; now 354 and 260. Both starting at 10 s after node 2 sent each a
// datagram at 5 s collapsed to 1 and 1 while any data heard from node 2
// kept hiddenLoss from acting; now 219-350 each.
func TestHiddenSenders(t *testing.T) {
	for _, tc := range burstModems {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 3; seed++ {
				alone := runLine(t, seed, lineAlone, tc.burst, time.Minute)
				res := runLine(t, seed, lineConverge, tc.burst, time.Minute)
				jain := jainOf(float64(res.from[1]), float64(res.from[3]))
				t.Logf("seed %d: 1 alone %d; 1->2 %d (retransmissions %d, give-ups %d, longest gap %v), 3->2 %d (retransmissions %d, give-ups %d, longest gap %v); Jain %.2f; collisions %d of %d; hellos%s",
					seed, alone.from[1], res.from[1], res.retx[1], res.giveUp[1], res.gap[1].Round(time.Millisecond),
					res.from[3], res.retx[3], res.giveUp[3], res.gap[3].Round(time.Millisecond), jain,
					res.collisions, res.transmitted, res.pairs)
				if jain < 0.9 {
					t.Errorf("seed %d: Jain %.2f between the senders (%d and %d datagrams); want at least 0.9", seed, jain, res.from[1], res.from[3])
				}
				if got := res.from[1] + res.from[3]; 3*got < alone.from[1] {
					t.Errorf("seed %d: %d datagrams together, node 1 alone %d; want at least a third", seed, got, alone.from[1])
				}
				for _, n := range []int{1, 3} {
					if res.giveUp[n] > 0 || res.gap[n] > lineMaxGap {
						t.Errorf("seed %d: node %d gave up %d packets, longest gap %v; want none, at most %v", seed, n, res.giveUp[n], res.gap[n], lineMaxGap)
					}
					// The receiver's hellos reach both, as in
					// TestHiddenBroadcasts.
					if h := res.hellos[2][n]; 4*h.got < 3*h.sent || h.run >= 6 {
						t.Errorf("seed %d: node %d got %d of node 2's %d hellos, %d in a row lost; want at least three in four, fewer than 6 in a row",
							seed, n, h.got, h.sent, h.run)
					}
				}
				// Node 3 starting while node 1 saturates, from
				// scratch or after one datagram to node 2 (an ARP
				// reply) that node 1 overheard node 2 acknowledge:
				// node 3's share is logged, not asserted (from
				// scratch it is locked out), but the two must not
				// collapse.
				for _, o := range []lineOpts{{late: lineLateStart}, {late: lineLateStart, once: lineLateStart / 4}, {warm: lineLateStart / 4}} {
					late := runLineWith(t, seed, lineConverge, tc.burst, time.Minute, o)
					run := fmt.Sprintf("node 3 from %v on", o.late)
					if o.once > 0 {
						run += fmt.Sprintf(", one datagram at %v", o.once)
					}
					if o.warm > 0 {
						run = fmt.Sprintf("both from %v on, datagrams to and from node 2 at %v", 2*o.warm, o.warm)
					}
					t.Logf("seed %d, %s: 1->2 %d, 3->2 %d (give-ups %d, longest gap %v)",
						seed, run, late.from[1], late.from[3], late.giveUp[3], late.gap[3].Round(time.Millisecond))
					if got := late.from[1] + late.from[3]; 3*got < alone.from[1] {
						t.Errorf("seed %d, %s: %d datagrams together, node 1 alone %d; want at least a third", seed, run, got, alone.from[1])
					}
				}
			}
		})
	}
}

// TestHiddenFlowsNoHellos: the line with a saturated flow on each hop (node
// 1 to node 2, node 2 to node 3) and no routing daemon, so that node 3
// sends nothing but its Acks: node 1 gets at least 0.3 of the datagrams
// delivered in every run, and waits at most 15 s for one. Node 2 hears no
// other sender (node 3's Acks do not count) and contends as a lone sender,
// its next transmission a few slots after node 3's Ack; node 1, which
// does not hear node 3, kept the channel for that Ack and for riders behind
// it (nav.go) until after node 2 had begun again, every time. On the old
// code node 1 got under 0.3 of them in 11 of 12 runs behind the medium's
// bursts (0.00-0.03 in six, gaps of 53-60 s), and none in 2 of 12 with one
// frame a transmission: node 2 never heard it, so never contended as one
// of two. Now node 1 gets 0.35-0.47 (gaps up to 9.8 s) and 0.35-0.42
// (navOverrun; 0.45-0.52 with one frame a transmission before
// csma.MAC.Unobserved, TestHiddenFlowsShortDelay).
func TestHiddenFlowsNoHellos(t *testing.T) {
	for _, tc := range burstModems {
		t.Run(tc.name, func(t *testing.T) {
			lineFlowsShare(t, tc.burst, lineOpts{noHellos: true}, 0.3)
		})
	}
}

// lineFlowsShare runs the line of lineFlows with o for a minute, seeds
// 1-12, and wants node 1 to get at least least of the datagrams delivered
// (its flow's at node 2 against node 2's at node 3) in every run and to
// wait at most 15 s for one.
func lineFlowsShare(t *testing.T, burst int, o lineOpts, least float64) {
	t.Helper()
	for seed := uint64(1); seed <= 12; seed++ {
		res := runLineWith(t, seed, lineFlows, burst, time.Minute, o)
		share := float64(res.at2) / float64(max(res.at2+res.at3, 1))
		t.Logf("seed %d: datagrams at 2 %d, at 3 %d (node 1's share %.2f, longest gap %v)", seed, res.at2, res.at3, share, res.gap[1].Round(time.Millisecond))
		if share < least || res.gap[1] > 15*time.Second {
			t.Errorf("seed %d: node 1 got %.2f of the datagrams delivered, longest gap %v; want at least %.2f, at most 15 s", seed, share, res.gap[1].Round(time.Millisecond), least)
		}
	}
}

// TestHiddenFlowsShortDelay: TestHiddenFlowsNoHellos with 100 µs between
// neighbours (the engines' configured delay) and with the hellos too: node
// 1 gets at least 0.15 of the datagrams delivered in every run, and waits
// at most 15 s for one. Behind a modem that keys up once per frame, node 2's
// lone burst goes on after each of node 3's Acks at once; node 1, which
// does not hear those Acks, took the time from node 2's poll to its next
// frame for a contention with no idle slot, its adaptive window grew to
// 100-180 slots, and it seldom went on air: before csma.MAC.Unobserved
// node 1 got 0.01-0.06 of the datagrams in every run with one frame a
// transmission (at least 0.03 without hellos, 0.01 with them), with gaps
// of 19-58 s; now at least 0.23 without hellos and 0.29 with them.
func TestHiddenFlowsShortDelay(t *testing.T) {
	for _, tc := range burstModems {
		for _, hellos := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, hellos %v", tc.name, hellos), func(t *testing.T) {
				lineFlowsShare(t, tc.burst, lineOpts{noHellos: !hellos, delay: 100 * time.Microsecond}, 0.15)
			})
		}
	}
}

// TestHiddenQuietNeighbourKeepsRoom: in the line with hellos, node 2
// saturating a flow to node 3 and node 1 sending nothing but its hellos,
// node 1 keeps the riders' room after node 2's polls: it never counts
// navOverruns overruns (nav.go), since only a unicast frame, which an Ack
// ends, counts them. Counting its hellos, it dropped the room in all 24
// runs and never took it back (no Ack comes to a node that only
// broadcasts): node 3's hellos at node 2 fell from 229 to 133 of 361 with
// one frame a transmission (28 in a row lost; babeld gives a neighbour up
// after 12), 279 to 216 behind bursts. Node 3's hellos are logged.
func TestHiddenQuietNeighbourKeepsRoom(t *testing.T) {
	for _, tc := range burstModems {
		t.Run(tc.name, func(t *testing.T) {
			got, sent := 0, 0
			for seed := uint64(1); seed <= 12; seed++ {
				res := runLineWith(t, seed, lineFlows, tc.burst, time.Minute, lineOpts{quiet1: true})
				got, sent = got+res.got, sent+res.sent
				if res.overruns[1] >= navOverruns {
					t.Errorf("seed %d: node 1 counted %d overruns with nothing but hellos to send; want fewer than %d", seed, res.overruns[1], navOverruns)
				}
			}
			t.Logf("node 2 got %d of node 3's %d hellos", got, sent)
		})
	}
}

// lineLateStart is when node 3 starts its flow in the late runs of
// TestHiddenSenders.
const lineLateStart = 20 * time.Second

// lineMaxGap is the longest a saturated sender of TestHiddenSenders may go
// without a delivery.
const lineMaxGap = 5 * time.Second

// jainOf is Jain's fairness index of two shares: 1 when equal, 0.5 when one
// gets everything; 0 when neither gets anything.
func jainOf(a, b float64) float64 {
	if a+b == 0 {
		return 0
	}
	return (a + b) * (a + b) / (2 * (a*a + b*b))
}

// TestLossyLoneSender: a lone sender on a lossy link (node 1 of the line
// saturating a flow to node 2, node 3 silent, a tenth or a fifth of the
// receptions lost on every link) gets as much through with the turns of
// hidden.go as without them: loss is no evidence of a hidden sender, so it
// leaves no gaps after its receiver's Acks. Only a timeout before the first
// round trip looks like two senders that started together (once: a random
// wait and a round of probes); a run that differs by one event diverges
// (at a fifth lost, an unlucky start leaves the ARQ's timers doubling for
// the whole minute in some runs, with or without the turns), so the
// assertion is on the median of lossySeeds runs: at most 2 % below the
// median without the turns. Hidden2's probes on every loss while no
// unicast sender was heard cost up to 10 % here (medians of seeds 1-12:
// -4 and +1 % with bursts, -10 and -9 % with one frame a transmission).
func TestLossyLoneSender(t *testing.T) {
	for _, tc := range burstModems {
		t.Run(tc.name, func(t *testing.T) {
			for _, loss := range []float64{0.1, 0.2} {
				var with, without []uint64
				for seed := uint64(1); seed <= lossySeeds; seed++ {
					w := runLineWith(t, seed, lineLossy, tc.burst, time.Minute, lineOpts{loss: loss})
					wo := runLineWith(t, seed, lineLossy, tc.burst, time.Minute, lineOpts{loss: loss, noHidden: true})
					with, without = append(with, w.from[1]), append(without, wo.from[1])
				}
				mw, mwo := median(slices.Clone(with)), median(slices.Clone(without))
				t.Logf("loss %.2f, seeds 1-%d: 1->2 median %d %v, without the turns %d %v", loss, lossySeeds, mw, with, mwo, without)
				if 50*mw < 49*mwo {
					t.Errorf("loss %.2f: median %d datagrams, %d without the turns; want at most 2 %% fewer", loss, mw, mwo)
				}
			}
		})
	}
}

// lossySeeds is the number of runs of each case of TestLossyLoneSender.
// With 12, one seed's divergence moved a median across the wide gap
// between the sixth and seventh runs: once a retransmission round's poll
// went after its riders (TestBurstRetransmissionPollGoesLast), bursts at a
// fifth lost gave 434 against 450 without the turns (442 against 450
// before), where 24 and 48 seeds give 461 against 466 (-1.1 %) with the
// change and without it, and the sums over 48 seeds rose (21,376 against
// 21,237 with the turns). With 24, once a grouped retransmission round
// polled with its youngest packet (mac/arq TestResendPollsYoungest), the
// same happened at a fifth lost: 461 against 473 (-2.5 %), where both the
// medians without the turns rose (466 before); over 48 seeds 466 against
// 474 (-1.7 %) with bursts, 461 against 469 with one frame a transmission.
const lossySeeds = 48

// median is the median of v (the lower of the middle two); v is sorted
// in place.
func median(v []uint64) uint64 {
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

// TestHiddenSparseFlows: node 1 and node 3, hidden from each other, each
// send node 2 one datagram every 2 s (with their hellos), a minute of
// virtual time: both are known to each other as hidden senders at node 2
// (each overhears node 2 acknowledge the other), but neither saturates the
// channel, so neither datagram should wait for the other's turn: the
// median delay from host to host at most lineSparseDelay, a few frames'
// times, not a turn (turnWait, 1.7 s at 115200 bit/s with bursts). (The
// largest is logged: when the first datagrams of both collide, the
// retransmissions wait a random part of a turn.)
func TestHiddenSparseFlows(t *testing.T) {
	for _, tc := range burstModems {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 3; seed++ {
				res := runLine(t, seed, lineSparse, tc.burst, time.Minute)
				for _, n := range []int{1, 3} {
					d := slices.Clone(res.delays[n])
					slices.Sort(d)
					if len(d) == 0 {
						t.Errorf("seed %d: nothing from node %d", seed, n)
						continue
					}
					t.Logf("seed %d: %d->2 %d datagrams, delay median %v, largest %v", seed, n, len(d),
						d[(len(d)-1)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
					if m := d[(len(d)-1)/2]; m > lineSparseDelay {
						t.Errorf("seed %d: node %d's datagrams took %v (median); want at most %v", seed, n, m.Round(time.Millisecond), lineSparseDelay)
					}
				}
			}
		})
	}
}

// lineSparseDelay bounds the delay of a sparse flow's datagram in
// TestHiddenSparseFlows.
const lineSparseDelay = 500 * time.Millisecond
