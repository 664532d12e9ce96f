package link

import (
	"fmt"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/arq"
	"github.com/slided/slided/mac/csma"
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

// DefaultMAC is the MAC configuration of every engine that is not given
// one: the daemon's (slided run) and the simulator's (slided bench
// -protocol link) alike. It is csma.DefaultConfig for a channel of bitRate
// bit/s, adjusted for a daemon that runs in real time: the slot is at least
// RealTimeSlot and the IFS one slot; the contention window starts at 4
// slots so that a lone sender keeps the channel over 90% busy even with
// millisecond slots, and grows by 16 slots per other busy sender heard,
// because with slots this short two contenders whose draws are one slot
// apart may still collide (the carrier reaches the other node up to a slot
// late). With policy Block the MAC queue is short (4 frames) so that the
// backlog waits in the qdisc, where it is shared fairly among flows and
// counts against the senders.
func DefaultMAC(bitRate int, policy Policy) csma.Config {
	c := csma.DefaultConfig(bitRate)
	c.SlotTime = max(c.SlotTime, RealTimeSlot)
	c.IFS = c.SlotTime
	c.CWMin = 4
	c.CWPerSender = 16
	// The adaptive window (csma Config.IdleTarget) is not the daemon's
	// default yet: its slot and IFS must come from the modem and the
	// propagation delay first (csma.ConfigFor), and the real-time tests
	// must be rerun with it (docs/mac.md).
	c.IdleTarget = 0
	c.Burst = 0
	c.CWMax = 128 // the deferral estimate's cap (docs/mac.md); the adaptive window's is wider
	if policy == Block {
		c.QueueLen = 4
	}
	return c
}

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
