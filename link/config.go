package link

import (
	"fmt"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/arq"
	"github.com/slided/slided/mac/csma"
	"github.com/slided/slided/phy"
)

// Policy says what happens to packets when the link cannot keep up.
type Policy uint8

const (
	// Block reads the host only when the MAC has room (WantRead); the
	// backlog waits in the qdisc and the senders' sockets block
	// (backpressure).
	Block Policy = iota
	// DropTail reads the host at once and drops a new packet when the MAC
	// queue is full.
	DropTail
	// DropHead reads the host at once and drops the oldest queued packet
	// when the MAC queue is full: fresh data wins over stale data.
	DropHead
)

var policyNames = [...]string{"block", "drop-tail", "drop-head"}

func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ParsePolicy parses "block", "drop-tail" or "drop-head".
func ParsePolicy(s string) (Policy, error) {
	for i, n := range policyNames {
		if s == n {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("unknown policy %q (want block, drop-tail or drop-head)", s)
}

// RealTimeSlot is the shortest contention slot the daemon uses: carrier
// sense reaches the MAC through a socket or a serial port and a goroutine
// wake-up, which takes up to about a millisecond on a busy small board.
const RealTimeSlot = time.Millisecond

// DefaultMAC is MACFor a modem of bitRate bit/s that reports nothing else
// (a serial radio modem with carrier detect, radio distances) and a link of
// policy and otherwise default settings.
func DefaultMAC(bitRate int, policy Policy) csma.Config {
	c, _ := MACFor(phy.Info{BitRate: bitRate}, Config{Policy: policy})
	return c
}

// measureSlack is what ARQ round trips measured in real time may hold
// beyond the propagation delay, the Ack's airtime and the modem's
// turnaround: goroutine wake-ups, socket or serial hand-overs and the
// modem's own latency at each end, the ARQ's timer granularity on a small,
// busy board (arq.DefaultRTTGranularity). It is taken off a round trip
// before it counts as a delay (measuredDelay), so that a radio link's slot
// is not lengthened by scheduling latency; an acoustic delay (tens of
// milliseconds to seconds each way) still shows.
const measureSlack = arq.DefaultRTTGranularity

// MACFor is the MAC configuration of every engine that is not given one:
// the daemon's (slided run) and the simulator's (slided bench -protocol
// link) alike, for the modem info and the link settings cfg.
//
// Without cfg.AdaptiveMAC it is the daemon's MAC of before: the deferral rule (CWMin 4,
// 16 slots per other busy sender, CWMax 128; docs/mac.md), slot max(16 bit
// times + 100 µs, RealTimeSlot) and IFS one slot, now lengthened by
// cfg.PropDelay beyond the 100 µs of radio, so that an acoustic channel
// does not keep a radio slot (ARQ round trips lengthen them further:
// measuredDelay); behind a modem that senses no carrier (info.NoCarrier)
// they stay radio-short, and the link takes turns instead (turns.go).
//
// With cfg.AdaptiveMAC (slided run's default, -adaptive-mac) it is
// csma.ConfigFor the channel: the adaptive window (Idle Sense), the slot
// and IFS from cfg.PropDelay, the modem's carrier-detect time (none with
// info.CarrierAtArrival, else 16 bit times) and turnaround, at least
// RealTimeSlot; bursts of 4 data frames per won contention (the
// contention's idle slots and collisions are paid once per burst; a packet
// split into fragments keeps them together; docs/mac.md). A modem that does its own channel access
// (info.OwnAccess, a KISS TNC) or senses no carrier (info.NoCarrier)
// keeps the deferral rule and the timing above either way: it reports no
// carrier, so the idle slots the adaptive window counts cannot be
// observed (and behind no carrier a slot of the water's length only
// delays every frame).
//
// With policy Block the MAC queue is short (4 frames) so that the backlog
// waits in the qdisc, where it is shared fairly among flows and counts
// against the senders.
//
// The returned error, if any, says what was out of range and clamped (an
// impossible propagation delay, a negative turnaround): the configuration
// is usable either way, and the caller logs the error once.
func MACFor(info phy.Info, cfg Config) (csma.Config, error) {
	ch := csma.Channel{
		BitRate:          info.BitRate,
		PropDelay:        cfg.PropDelay,
		CarrierAtArrival: info.CarrierAtArrival,
		MinSlot:          RealTimeSlot,
		// Not CarrierLag: the carrier already stays on that long after
		// the channel went quiet, and IFS counts from its end (with it,
		// a serial modem's 50 ms receive hang-over made IFS four times
		// a 64-byte frame at 38400 bit/s, and TestLossyStorm delivered
		// 37 of 100 datagrams).
		Turnaround: info.Turnaround,
		FrameBytes: macFrameBytes(info, cfg),
	}
	err := ch.Check()
	var c csma.Config
	if cfg.AdaptiveMAC && !info.OwnAccess && !info.NoCarrier {
		c = csma.ConfigFor(ch)
		if c.Burst <= 1 {
			// Bursts of 4 data frames per won contention, each after
			// the Ack to the one before (csma: the reserved Ack does
			// not end a burst): the idle slots and the collisions of a
			// contention are paid once per burst. Through real daemons
			// the carrier reaches the others a fraction of a slot late
			// (the medium server and two processes), so two countdowns
			// that end in the same slot collide, which virtual time
			// without a delay never showed: two senders lost 10-13 % of
			// the channel to it, and bursts win it back (docs/mac.md,
			// "Two senders through real daemons"). A packet of the MTU
			// split into fragments (-frame-max) also keeps its
			// fragments together this way. The idle target stays the
			// one frame's: computed for the burst's airtime it was
			// larger, and the storm's proxy delivered less.
			c.Burst = contentionBurst
			if info.MaxBurstFrames > 1 && info.Turnaround == 0 &&
				time.Duration(info.MaxBurstFrames)*phy.Airtime(frameLimit(info, cfg), info.BitRate) <= burstAir(info) {
				// Where the MAC does the access and the modem takes
				// whole bursts (the simulated medium), each of the
				// burst's transmissions after the first (which goes
				// alone: Engine.Poll) is a modem burst of up to
				// MaxBurstFrames frames, so a turn of 4 was 1+3×16
				// frames (3.5 s at 115200 bit/s, 17 turns a minute):
				// the winners of so few contentions made two senders
				// through the daemons share a minute at Jain
				// 0.91-0.99. Two make a turn of 1+16 frames.
				// Where the burst bound (burstAir) cuts the modem's bursts (9600
				// bit/s: 9 frames of 1000 bytes) a turn of 4 is
				// kept: with 2, two nodes sending both ways
				// over 10 minutes got 0.864-0.965 of the channel
				// (0.951-0.965 with 4) and Jain down to 0.974
				// (TestBenchLinkBothWays9600, seed 5).
				c.Burst = modemBurstContention
			}
		}
		// A node that hears nobody else keeps the channel for longer
		// bursts: its contentions protect nobody (csma.Config.LoneBurst).
		c.LoneBurst = loneBurst
		if cfg.OrderedTurns {
			c.TurnFrame = phy.Airtime(orderedTurnBytes, info.BitRate)
		}
		if cfg.WindowFromSenders {
			deferral(&c) // the option's window, the delay's timing
		}
	} else {
		// Today's window and radio timing, lengthened by the delay.
		c = csma.ConfigFor(csma.Channel{BitRate: info.BitRate, MinSlot: RealTimeSlot})
		c.IFS = c.SlotTime
		deferral(&c)
		if d := min(max(cfg.PropDelay, 0), csma.MaxPropDelay); d > c.PropDelay {
			if !info.NoCarrier {
				c.SlotTime += d - c.PropDelay
				c.IFS += d - c.PropDelay
			}
			// A modem that senses no carrier cannot tell an idle
			// channel from a busy one, so a slot or an IFS as long as
			// the water buys nothing and delays every frame (a 64-byte
			// echo over 1 s of water took 9.1 s with both, 7-8 s with
			// the slot alone, 4.0 s with neither; docs/performance.md).
			// Such a node takes turns instead (turns.go), and its ARQ
			// retransmits with jitter.
			c.PropDelay = d
		}
	}
	if cfg.Policy == Block {
		c.QueueLen = 4
	}
	return c, err
}

// deferral turns c's adaptive window off and sets the window of the
// deferral rule: it starts at 4 slots so that a lone sender keeps the
// channel over 90% busy even with millisecond slots, and grows by 16 slots
// per other busy sender heard, because with slots this short two
// contenders whose draws are one slot apart may still collide (the carrier
// reaches the other node up to a slot late); 128 caps the estimate.
func deferral(c *csma.Config) {
	c.IdleTarget = 0
	c.Burst = 0
	c.CWMin = 4
	c.CWPerSender = 16
	c.CWMax = 128
}

// macFrameBytes is the data frame the idle target is computed for: the
// frame limit (cfg.FrameMax, info.MaxFrame, the MTU's packet in one
// fragment) but at most 256 bytes, csma.ConfigFor's typical frame. The
// target grows with the frame, and one computed for 1500-byte frames made
// short frames wait 7 ms each at 115200 bit/s (two nodes, 64-byte
// datagrams: goodput 0.24 of the channel against 0.32 with 256; with
// 1000-byte datagrams 0.83 against 0.88, Jain ≥ 0.998 either way;
// docs/performance.md).
func macFrameBytes(info phy.Info, cfg Config) int {
	return min(frameLimit(info, cfg), 256)
}

// frameLimit is the longest data frame: the frame that carries a packet of
// the MTU in one fragment, or cfg.FrameMax or info.MaxFrame if shorter.
func frameLimit(info phy.Info, cfg Config) int {
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = 1500
	}
	n := framing.MaxEncodedLen(mtu + 14 + framing.FragHeaderLen)
	for _, m := range []int{cfg.FrameMax, info.MaxFrame} {
		if m > 0 && m < n {
			n = m
		}
	}
	return max(n, 1)
}

// contentionBurst is the adaptive MAC's burst (MACFor).
const contentionBurst = 4

// modemBurstContention is the adaptive MAC's burst behind a modem that
// takes whole bursts and leaves the access to the MAC (MACFor): the frame
// that won the contention, then one modem burst.
const modemBurstContention = 2

// loneBurst is the adaptive MAC's burst while the node hears nobody else
// (MACFor, csma.Config.LoneBurst): four groups of polls (arqWindow), a
// contention per 16 frames instead of 4.
const loneBurst = 16

// orderedTurnBytes is the shortest data frame Config.OrderedTurns counts on
// (csma.Config.TurnFrame): a small datagram with its headers compressed.
const orderedTurnBytes = 64

// arqConfig is the ARQ configuration of cfg for frames of at most frameMax
// bytes on the wire (0: no limit).
func arqConfig(cfg Config, frameMax int, t arq.Timing) arq.Config {
	maxPacket := cfg.MTU + 14
	seal := 0
	if cfg.Key != nil {
		seal = auth.Overhead
	}
	mp := maxPacket + framing.FragHeaderLen
	if frameMax > 0 {
		mp = framing.MaxPayloadLen(frameMax) - seal
	}
	ac := arq.DefaultConfig(cfg.Node, mp, maxPacket, t)
	ac.NoARQ = cfg.NoARQ
	ac.NoReorder = cfg.NoReorder
	return ac
}

// CheckFrameMax reports whether cfg.FrameMax can carry a packet of the MTU
// in at most framing.MaxFragments fragments (with the key's envelope, if
// any). The modem may lower the limit further at link up. New calls it; the
// command line calls it too, to refuse a bad limit before any setup.
func CheckFrameMax(cfg Config) error {
	if cfg.FrameMax < 0 {
		return fmt.Errorf("frame-max %d: must be positive (0: the modem's own limit)", cfg.FrameMax)
	}
	if cfg.FrameMax == 0 {
		return nil
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.Node == 0 {
		cfg.Node = 1 // only the sizes matter here
	}
	ac := arqConfig(cfg, cfg.FrameMax, arq.Timing{BitRate: 1200})
	if err := ac.Validate(); err != nil {
		return fmt.Errorf("frame-max %d: %w", cfg.FrameMax, err)
	}
	return nil
}
