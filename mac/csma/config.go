package csma

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("csma: invalid config")

// maxCW bounds CWMax so that a backoff of CWMax slots stays a small,
// representable duration and a draw never overflows an int on 32-bit boards.
const maxCW = 1 << 16

// Config holds the channel-access parameters of one MAC. DefaultConfig gives
// values for a radio channel of a given bit rate; docs/mac.md explains them.
type Config struct {
	// SlotTime is one contention slot. It must cover the time a node needs to
	// sense another's transmission: carrier-sense latency plus propagation.
	// Must be > 0.
	SlotTime time.Duration
	// IFS is how long the carrier must have been sensed idle (or the node's
	// own transmission over) before the backoff counts down. Must be >= 0.
	IFS time.Duration
	// Persistence is p in (0,1]: when the backoff has run out the MAC
	// transmits with probability p, otherwise it waits one more slot.
	Persistence float64
	// CWMin and CWMax bound the contention window, in slots. A backoff is
	// drawn uniformly from [0, CW). After each transmission CW is the
	// smallest CWMin·2^j >= CWMin + CWPerSender·load, where load estimates
	// the other busy senders (docs/mac.md), capped at CWMax.
	// 1 <= CWMin <= CWMax <= 65536.
	CWMin, CWMax int
	// CWPerSender is the window added per other busy sender heard; 0 means
	// CWMin. A small CWMin keeps a lone sender's pauses short while a larger
	// CWPerSender keeps contenders apart when slots are short against the
	// carrier-sense latency.
	CWPerSender int
	// QueueLen is the number of frames the MAC holds, including the one on
	// air. Must be >= 1.
	QueueLen int
}

// Default timing constants; see DefaultConfig and docs/mac.md.
const (
	// senseBits is the carrier-sense latency in bit times: the modem has to
	// receive about a byte before it can tell data from noise, and its
	// report reaches the daemon about a byte later.
	senseBits = 16
	// maxPropagation covers radio propagation over 30 km (3.3 µs/km).
	maxPropagation = 100 * time.Microsecond
	// ifsSlots is IFS in slots.
	ifsSlots = 2
)

// DefaultConfig returns parameters for a radio channel of bitRate bit/s (the
// air rate, not the serial baud rate); a bitRate <= 0 is taken as 1200.
//
// The slot covers carrier-sense latency (16 bit times: about one byte to
// detect a carrier, one more for the report to arrive) plus 100 µs of
// propagation (30 km of radio). IFS is two slots, so a carrier that drops for
// less than that between two bursts of one sender does not open the channel.
// CWMin = 16 keeps a lone sender's mean post-transmission pause (IFS plus 7.5
// slots, 2.3 ms at 115200 bit/s) under 5% of a 1050-byte frame's airtime;
// CWMax = 256 (four doublings) is a compromise measured in virtual time (see
// docs/mac.md): with ten saturated nodes about 9% of transmissions collide,
// and a node that has just sent, back at CWMin, does not hold the channel for
// long runs; a larger CWMax collides less but lengthens those runs.
// Persistence is 1: the random backoff already spreads contenders, and p < 1
// only adds idle slots. The values
// contain no real-time margin: a daemon that drives the MAC from a wall
// clock adds its timer latency to SlotTime and IFS. An acoustic channel
// needs SlotTime of at least the longest propagation delay (range / 1500 m/s).
func DefaultConfig(bitRate int) Config {
	if bitRate <= 0 {
		bitRate = 1200
	}
	bit := float64(time.Second) / float64(bitRate)
	slot := time.Duration(math.Ceil(senseBits*bit)) + maxPropagation
	return Config{
		SlotTime:    slot,
		IFS:         ifsSlots * slot,
		Persistence: 1,
		CWMin:       16,
		CWMax:       128,
		QueueLen:    16,
	}
}

// Validate reports whether c can be used; the error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	switch {
	case c.SlotTime <= 0:
		return fmt.Errorf("%w: slot time %v must be positive", ErrInvalidConfig, c.SlotTime)
	case c.IFS < 0:
		return fmt.Errorf("%w: ifs %v must not be negative", ErrInvalidConfig, c.IFS)
	case !(c.Persistence > 0 && c.Persistence <= 1): // also rejects NaN
		return fmt.Errorf("%w: persistence %v must be in (0,1]", ErrInvalidConfig, c.Persistence)
	case c.CWMin < 1 || c.CWMin > c.CWMax:
		return fmt.Errorf("%w: contention window [%d,%d] needs 1 <= min <= max", ErrInvalidConfig, c.CWMin, c.CWMax)
	case c.CWMax > maxCW:
		return fmt.Errorf("%w: cw max %d exceeds %d", ErrInvalidConfig, c.CWMax, maxCW)
	case c.SlotTime > math.MaxInt64/(2*maxCW):
		return fmt.Errorf("%w: slot time %v too long", ErrInvalidConfig, c.SlotTime)
	case c.CWPerSender < 0 || c.CWPerSender > maxCW:
		return fmt.Errorf("%w: cw per sender %d must be in 0..%d", ErrInvalidConfig, c.CWPerSender, maxCW)
	case c.QueueLen < 1:
		return fmt.Errorf("%w: queue length %d must be at least 1", ErrInvalidConfig, c.QueueLen)
	}
	return nil
}
