package link

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/mac/csma"
	"github.com/slided/slided/phy"
)

// TestMACFor: the daemon's MAC for the simulated medium, a serial modem
// with a propagation delay, a KISS TNC, -cw-senders and impossible delays.
func TestMACFor(t *testing.T) {
	sim := phy.Info{BitRate: 115200, MaxFrame: 4096, CarrierAtArrival: true}
	serial := phy.Info{BitRate: 9600, Turnaround: 20 * time.Millisecond, CarrierLag: 50 * time.Millisecond}
	tnc := phy.Info{BitRate: 1200, Turnaround: 300 * time.Millisecond, OwnAccess: true, AccessWait: 200 * time.Millisecond, MinBurst: 15}
	noCarrier := phy.Info{BitRate: 2400, Turnaround: 260 * time.Millisecond, NoCarrier: true} // a transparent acoustic modem in packet mode
	bit9600 := time.Second / 9600
	for _, c := range []struct {
		name      string
		info      phy.Info
		cfg       Config
		adaptive  bool
		slotMin   time.Duration // the slot is at least this
		slotMax   time.Duration // and at most this (0: no bound)
		ifsMin    time.Duration
		ifsMax    time.Duration // 0: no bound
		queue     int
		clamped   bool // MACFor reports a clamped value
		burstOver int  // Burst > this
	}{
		{name: "sim", info: sim, cfg: Config{}, adaptive: false,
			slotMin: RealTimeSlot, slotMax: RealTimeSlot, ifsMin: RealTimeSlot, queue: 4},
		// Bursts of 4 per contention (the Acks in between).
		{name: "sim adaptive", info: sim, cfg: Config{AdaptiveMAC: true}, adaptive: true,
			slotMin: RealTimeSlot, slotMax: RealTimeSlot, ifsMin: RealTimeSlot, queue: 4, burstOver: 1},
		// A frame limit that splits a packet of the MTU: bursts of
		// fragments, with the one frame's idle target.
		{name: "sim adaptive frame-max 64", info: phy.Info{BitRate: 38400, MaxFrame: 4096, CarrierAtArrival: true}, cfg: Config{AdaptiveMAC: true, FrameMax: 64}, adaptive: true,
			slotMin: RealTimeSlot, slotMax: RealTimeSlot, ifsMin: RealTimeSlot, queue: 4, burstOver: 1},
		{name: "sim adaptive drop-tail", info: sim, cfg: Config{AdaptiveMAC: true, Policy: DropTail}, adaptive: true,
			slotMin: RealTimeSlot, slotMax: RealTimeSlot, ifsMin: RealTimeSlot, queue: 16, burstOver: 1},
		{name: "serial 50ms", info: serial, cfg: Config{PropDelay: 50 * time.Millisecond}, adaptive: false,
			slotMin: 50 * time.Millisecond, slotMax: 52 * time.Millisecond, ifsMin: 50 * time.Millisecond, ifsMax: 52 * time.Millisecond, queue: 4},
		{name: "serial 50ms adaptive", info: serial, cfg: Config{PropDelay: 50 * time.Millisecond, AdaptiveMAC: true}, adaptive: true,
			slotMin: 50*time.Millisecond + 16*bit9600, slotMax: 52 * time.Millisecond,
			ifsMin: 50*time.Millisecond + 32*bit9600 + 20*time.Millisecond, ifsMax: 75 * time.Millisecond, queue: 4, burstOver: 1},
		{name: "prop-delay 1s", info: serial, cfg: Config{PropDelay: time.Second}, adaptive: false,
			slotMin: time.Second, ifsMin: time.Second, queue: 4},
		// No carrier sense: neither the slot nor IFS buys anything by
		// following the water; turns and the ARQ's jitter do (turns.go).
		{name: "prop-delay 1s, no carrier", info: noCarrier, cfg: Config{PropDelay: time.Second}, adaptive: false,
			slotMin: RealTimeSlot, slotMax: 10 * time.Millisecond, ifsMax: 10 * time.Millisecond, queue: 4},
		{name: "prop-delay 1s, no carrier, adaptive asked", info: noCarrier, cfg: Config{PropDelay: time.Second, AdaptiveMAC: true}, adaptive: false,
			slotMin: RealTimeSlot, slotMax: 10 * time.Millisecond, ifsMax: 10 * time.Millisecond, queue: 4},
		{name: "prop-delay 1s adaptive", info: serial, cfg: Config{PropDelay: time.Second, AdaptiveMAC: true}, adaptive: true,
			slotMin: time.Second, ifsMin: time.Second, queue: 4, burstOver: 1},
		{name: "kiss tnc", info: tnc, cfg: Config{AdaptiveMAC: true}, adaptive: false,
			slotMin: RealTimeSlot, slotMax: 15 * time.Millisecond, queue: 4},
		{name: "kiss tnc with delay", info: tnc, cfg: Config{PropDelay: 2 * time.Second}, adaptive: false,
			slotMin: 2 * time.Second, queue: 4},
		{name: "cw-senders adaptive", info: sim, cfg: Config{WindowFromSenders: true, AdaptiveMAC: true, PropDelay: 10 * time.Millisecond}, adaptive: false,
			slotMin: 10 * time.Millisecond, queue: 4},
		{name: "delay too long", info: serial, cfg: Config{PropDelay: time.Hour}, adaptive: false,
			slotMin: csma.MaxPropDelay, slotMax: csma.MaxPropDelay + 2*time.Millisecond, queue: 4, clamped: true},
		{name: "delay too long adaptive", info: serial, cfg: Config{PropDelay: time.Hour, AdaptiveMAC: true}, adaptive: true,
			slotMin: csma.MaxPropDelay, slotMax: csma.MaxPropDelay + 2*time.Millisecond, queue: 4, clamped: true, burstOver: 1},
		{name: "negative delay", info: sim, cfg: Config{PropDelay: -time.Second, AdaptiveMAC: true}, adaptive: true,
			slotMin: RealTimeSlot, slotMax: RealTimeSlot, queue: 4, clamped: true, burstOver: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := MACFor(c.info, c.cfg)
			if c.clamped != (err != nil) || err != nil && !errors.Is(err, csma.ErrInvalidConfig) {
				t.Errorf("error %v, want clamped %v", err, c.clamped)
			}
			if err := m.Validate(); err != nil {
				t.Fatalf("config %+v: %v", m, err)
			}
			if got := m.IdleTarget > 0; got != c.adaptive {
				t.Errorf("adaptive window %v (idle target %v), want %v", got, m.IdleTarget, c.adaptive)
			}
			if !c.adaptive && (m.CWMin != 4 || m.CWPerSender != 16 || m.CWMax != 128 || m.Burst != 0) {
				t.Errorf("deferral rule %+v, want CWMin 4, CWPerSender 16, CWMax 128, no bursts", m)
			}
			if m.SlotTime < c.slotMin || c.slotMax > 0 && m.SlotTime > c.slotMax {
				t.Errorf("slot %v, want in [%v, %v]", m.SlotTime, c.slotMin, c.slotMax)
			}
			if m.IFS < c.ifsMin || m.IFS < m.SlotTime && !c.info.OwnAccess && !c.info.NoCarrier {
				t.Errorf("ifs %v, want at least %v and the slot %v", m.IFS, c.ifsMin, m.SlotTime)
			}
			if c.ifsMax > 0 && m.IFS > c.ifsMax {
				t.Errorf("ifs %v, want at most %v (the carrier's hang-over is not added)", m.IFS, c.ifsMax)
			}
			if m.QueueLen != c.queue {
				t.Errorf("queue %d, want %d", m.QueueLen, c.queue)
			}
			if m.Burst <= c.burstOver && c.burstOver > 0 {
				t.Errorf("burst %d, want more than %d", m.Burst, c.burstOver)
			}
			if c.burstOver == 0 && m.Burst > 1 {
				t.Errorf("burst %d, want none", m.Burst)
			}
		})
	}
	// Without a delay, the default and the KISS TNC's are today's MAC
	// exactly (link.DefaultMAC before MACFor).
	for _, info := range []phy.Info{tnc, sim, serial} {
		old := csma.DefaultConfig(info.BitRate)
		old.SlotTime = max(old.SlotTime, RealTimeSlot)
		old.IFS = old.SlotTime
		old.CWMin, old.CWPerSender, old.CWMax, old.IdleTarget, old.Burst, old.QueueLen = 4, 16, 128, 0, 0, 4
		if m, _ := MACFor(info, Config{}); m != old {
			t.Errorf("%+v: %+v, want the MAC of before %+v", info, m, old)
		}
	}
}

// An impossible configured delay is clamped and logged once, and the
// engine works with it.
func TestMACForLogsClampOnce(t *testing.T) {
	m := newMedium(t, 115200)
	n1 := m.add(Config{Node: 1, PropDelay: time.Hour})
	n2 := m.add(Config{Node: 2, PropDelay: time.Hour})
	if got := n1.e.MACConfig().PropDelay; got != csma.MaxPropDelay {
		t.Errorf("prop delay in use %v, want clamped to %v", got, csma.MaxPropDelay)
	}
	sent := map[uint32][]byte{}
	for id := range uint32(3) {
		f := numbered(2, 1, id, 100)
		sent[id] = f
		m.hostFrame(n1, f)
		m.run(time.Minute)
	}
	m.run(10 * time.Minute)
	if got := checkDelivered(t, n2, sent); got != len(sent) {
		t.Errorf("%d of %d packets delivered", got, len(sent))
	}
	if got := n1.logCount("mac timing"); got != 1 {
		t.Errorf("clamp logged %d times, want once:\n%s", got, n1.log)
	}
}

// ARQ round trips feed the MAC's MeasuredDelay: Acks held back by the
// medium make the round trips long, and the slot and IFS grow a step per
// batch of samples; once the Acks come at once again they never shrink.
// Without a key or a given MAC, on the fake medium with no delay of its own.
func TestMeasuredDelayFromRoundTrips(t *testing.T) {
	m := newMedium(t, 115200)
	n1 := m.add(Config{Node: 1})
	n2 := m.add(Config{Node: 2})
	var held [][]byte
	hold := true
	m.lose = func(from, to *node, data []byte) bool {
		if from == n2 && to == n1 && hold {
			held = append(held, append([]byte(nil), data...))
			return true
		}
		return false
	}
	const wait = 600 * time.Millisecond
	start := n1.e.MACConfig()
	navStart := n1.e.navWait
	send := func(id uint32) {
		m.hostFrame(n1, numbered(2, 1, id, 300))
		for i := 0; len(held) == 0 && i < 1000; i++ {
			m.run(time.Millisecond)
		}
		if len(held) == 0 {
			t.Fatalf("packet %d: no Ack", id)
		}
		m.run(wait)
		for _, a := range held {
			m.inject(n1, a)
		}
		held = held[:0]
		m.run(10 * time.Millisecond)
	}
	var id uint32
	for ; id < 3*rttBatch; id++ {
		send(id)
	}
	grown := n1.e.MACConfig()
	if grown.SlotTime <= start.SlotTime || grown.IFS <= start.IFS || grown.PropDelay <= start.PropDelay {
		t.Fatalf("after %d round trips of %v: slot %v, ifs %v, delay %v; want longer than %v, %v, %v",
			id, wait, grown.SlotTime, grown.IFS, grown.PropDelay, start.SlotTime, start.IFS, start.PropDelay)
	}
	if max1 := wait / 2; grown.PropDelay > max1 {
		t.Errorf("measured delay %v above half the round trip %v", grown.PropDelay, max1)
	}
	// The wait after another node's poll (nav.go) counts the delay there
	// and back and two slots: it grows with them (from the configured
	// delay, here none, to the measured one).
	if got, want := n1.e.navWait-navStart, 2*(grown.PropDelay-n1.e.cfg.PropDelay)+2*(grown.SlotTime-start.SlotTime); got != want {
		t.Errorf("the wait after an overheard poll grew by %v with the measured delay, want %v", got, want)
	}
	info := 0
	for _, l := range strings.Split(n1.log.String(), "\n") {
		if strings.Contains(l, "slot lengthened") && strings.Contains(l, `"level":"info"`) {
			info++
		}
	}
	if got := info; got != 1 {
		t.Errorf("lengthened slot logged %d times at info, want once:\n%s", got, n1.log)
	}
	// Prompt Acks: round trips shrink, the timing does not.
	hold = false
	for end := id + 3*rttBatch; id < end; id++ {
		m.hostFrame(n1, numbered(2, 1, id, 300))
		m.run(50 * time.Millisecond)
	}
	if got := n1.e.MACConfig(); got.SlotTime < grown.SlotTime || got.IFS < grown.IFS || got.PropDelay < grown.PropDelay {
		t.Errorf("after prompt Acks: slot %v, ifs %v, delay %v; want at least %v, %v, %v",
			got.SlotTime, got.IFS, got.PropDelay, grown.SlotTime, grown.IFS, grown.PropDelay)
	}
	if got := n1.e.mac.Config(); got.SlotTime != n1.e.MACConfig().SlotTime {
		t.Errorf("MACConfig slot %v, the MAC's %v", n1.e.MACConfig().SlotTime, got.SlotTime)
	}
}

// One late Ack does not lengthen the slot: the first round trip to a node
// (here its Ack held back by the medium, as a crowded channel held the
// first Ack to a node of the 100-node ring for 1.4 s) seeded the smoothed
// round trip, which the prompt Acks after it brought down by an eighth a
// sample, so the smallest smoothed value of the first batch was still
// about a seventh of it. That node alone then counted its backoff and IFS
// in slots 2.8 times the others' and got no data turn for half an hour
// (docs/mac.md). The batch's smallest round trip itself is
// the bound: queueing only adds to a round trip.
func TestMeasuredDelayOneLateAck(t *testing.T) {
	m := newMedium(t, 9600)
	n1 := m.add(Config{Node: 1})
	n2 := m.add(Config{Node: 2})
	var held [][]byte
	hold := true
	m.lose = func(from, to *node, data []byte) bool {
		if from == n2 && to == n1 && hold {
			held = append(held, append([]byte(nil), data...))
			return true
		}
		return false
	}
	start := n1.e.MACConfig()
	m.hostFrame(n1, numbered(2, 1, 0, 300))
	for i := 0; len(held) == 0 && i < 1000; i++ {
		m.run(time.Millisecond)
	}
	if len(held) == 0 {
		t.Fatal("no Ack")
	}
	// Held for most of the first timeout: a round trip measured, not a
	// timeout (Karn's rule).
	m.run(n1.e.AckTimeout() * 3 / 4)
	hold = false
	for _, a := range held {
		m.inject(n1, a)
	}
	m.run(10 * time.Millisecond)
	for id := uint32(1); id < 3*rttBatch; id++ {
		m.hostFrame(n1, numbered(2, 1, id, 300))
		m.run(time.Second)
	}
	var samples, timeouts uint64
	for _, p := range n1.e.arq.AppendPeers(nil) {
		if p.Node == 2 {
			samples, timeouts = p.Samples, p.Timeouts
		}
	}
	if samples < 2*rttBatch || timeouts != 0 {
		t.Fatalf("%d round trips measured, %d timeouts; want at least %d, none", samples, timeouts, 2*rttBatch)
	}
	if got := n1.e.MACConfig(); got.SlotTime != start.SlotTime || got.IFS != start.IFS || got.PropDelay != start.PropDelay {
		t.Errorf("after one late Ack and %d prompt ones: slot %v, ifs %v, delay %v; want %v, %v, %v",
			samples-1, got.SlotTime, got.IFS, got.PropDelay, start.SlotTime, start.IFS, start.PropDelay)
	}
}

// TestMACForModemBurstTurn: where the MAC does the access and the modem
// takes whole bursts (the simulated medium), a won contention's turn holds
// the lone frame that won it and one modem burst, not three: with the
// burst of 4, a turn was 1+3×16 frames at 115200 bit/s, 17 turns a minute,
// and two senders through the daemons shared a minute at Jain 0.91-0.99.
func TestMACForModemBurstTurn(t *testing.T) {
	info := phy.Info{BitRate: 115200, MaxFrame: 2048, MaxBurstFrames: 16}
	m, err := MACFor(info, Config{AdaptiveMAC: true})
	if err != nil {
		t.Fatal(err)
	}
	if frames := 1 + (m.Burst-1)*info.MaxBurstFrames; frames > 1+info.MaxBurstFrames {
		t.Errorf("burst %d: a turn of %d frames, want at most %d", m.Burst, frames, 1+info.MaxBurstFrames)
	}
	if m.LoneBurst != loneBurst {
		t.Errorf("lone burst %d, want %d (a lone sender keeps its long turns)", m.LoneBurst, loneBurst)
	}
	// Where maxBurstAir cuts the modem's bursts (9600 bit/s), a turn of
	// 4 stays (TestBenchLinkBothWays9600).
	slow := info
	slow.BitRate = 9600
	if m, _ := MACFor(slow, Config{AdaptiveMAC: true}); m.Burst != contentionBurst {
		t.Errorf("at 9600 bit/s: burst %d, want %d", m.Burst, contentionBurst)
	}
	// A TNC with a turnaround keeps its bursts of 4.
	info.Turnaround = 10 * time.Millisecond
	if m, _ := MACFor(info, Config{AdaptiveMAC: true}); m.Burst != contentionBurst {
		t.Errorf("with a turnaround: burst %d, want %d", m.Burst, contentionBurst)
	}
}
