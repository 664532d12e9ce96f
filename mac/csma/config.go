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

// Config holds the channel-access parameters of one MAC. ConfigFor gives
// values for a channel's bit rate and propagation delay, DefaultConfig for a
// radio channel; docs/mac.md explains them.
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

	// IdleTarget, when > 0, turns on the adaptive window (Idle Sense,
	// docs/mac.md): the node holds the mean number of idle slots it observes
	// between two transmissions on the channel near IdleTarget, widening the
	// window when it sees fewer and narrowing it when it sees more, within
	// [CWMin, CWMax]. CWPerSender and Contenders are then unused. 0 keeps the
	// deferral rule. At most 1000.
	IdleTarget float64
	// PropDelay is the longest one-way propagation delay. After its own
	// transmission a node counts the idle time from when the others hear it
	// end (PropDelay later), and it does not count as idle the PropDelay
	// before another's carrier reaches it, so that every node counts the same
	// slots. Must be in 0..MaxPropDelay.
	PropDelay time.Duration
	// Burst is the number of data frames a node sends back to back once its
	// backoff has run out, without IFS or backoff in between, as long as no
	// other carrier is on when one ends; 0 or 1: one frame per contention.
	// Long propagation delays make each contention cost about two delays,
	// which a burst pays once for several frames. At most 64.
	Burst int
	// LoneBurst, when > 0 with the adaptive window, is the burst while the
	// node hears nobody else sending (Contenders(0)): the idle slots and
	// IFS of a contention protect nobody then. Another's signal still ends
	// a burst, and once another sender is known the burst is Burst again.
	// 0: Burst. At most 64.
	LoneBurst int
	// TurnFrame, when > 0 with the adaptive window, turns on ordered
	// turns (an option, off in ConfigFor; docs/mac.md, "Turns in order
	// after a clean turn"): it is the airtime of the shortest data frame
	// the node sends, and while two delays and a slot take at most half of
	// it, so that a collision is heard during the own frame, the backoff
	// after a turn during which no other carrier came is half the window
	// (within a few slots) instead of a draw from the whole window. 0:
	// always drawn. Must be >= 0.
	TurnFrame time.Duration
}

// Default timing constants; see ConfigFor and docs/mac.md.
const (
	// senseBits is the carrier-sense latency in bit times: the modem has to
	// receive about a byte before it can tell data from noise, and its
	// report reaches the daemon about a byte later.
	senseBits = 16
	// maxPropagation covers radio propagation over 30 km (3.3 µs/km).
	maxPropagation = 100 * time.Microsecond
	// MaxPropDelay bounds a configured or measured one-way propagation
	// delay: 10 s is 15 km of water.
	MaxPropDelay = 10 * time.Second
	// maxBurst bounds Config.Burst.
	maxBurst = 64
	// defaultFrameBytes is the data frame length ConfigFor assumes when the
	// caller gives none: a mid-sized IP packet with slided's framing.
	defaultFrameBytes = 256
	// adaptiveCWMin is the window of a node that hears nobody else: a lone
	// sender pauses IFS plus half a slot on average. It is 2, not 1, so that
	// the slots a newcomer counts down do elapse (with 1 the lone sender
	// would start at every IFS end and freeze the newcomer's count forever).
	adaptiveCWMin = 2
	// adaptiveCWMax bounds the adaptive window: 254 saturated nodes need
	// about 2·N·(IdleTarget+1), 4000 slots at the radio targets.
	adaptiveCWMax = 8192
	// burstFromA: ConfigFor sends bursts when the propagation delay is at
	// least this fraction of a frame's airtime (where a contention costs
	// about two delays).
	burstFromA = 0.05
	// acousticBurst is the burst length ConfigFor then uses.
	acousticBurst = 4
)

// Channel describes what a MAC's timing follows: ConfigFor turns it into a
// Config.
type Channel struct {
	// BitRate is the air rate in bit/s; <= 0 is taken as 1200.
	BitRate int
	// PropDelay is the longest one-way propagation delay between two nodes
	// (range / speed: 1500 m/s in water, 3.3 µs/km for radio); 0 means radio
	// over at most 30 km (100 µs). Negative or above MaxPropDelay: clamped
	// (Check says so).
	PropDelay time.Duration
	// CarrierAtArrival says the modem reports a carrier as soon as the first
	// bit of a signal arrives, as the simulated medium does; otherwise
	// carrier detection takes 16 bit times (a byte to tell data from noise,
	// a byte for the report).
	CarrierAtArrival bool
	// SenseDelay, when > 0, is the modem's carrier-detect time instead of
	// the 16 bit times (or none) above: a modem profile sets it, e.g. an
	// acoustic modem that reports a signal only once it has decoded a
	// preamble.
	SenseDelay time.Duration
	// MinSlot is the shortest slot the caller can keep (a daemon's timer and
	// input latency, about 1 ms); 0 for virtual time.
	MinSlot time.Duration
	// Turnaround is the modem's receive-to-transmit time, added to IFS.
	Turnaround time.Duration
	// FrameBytes is a typical data frame's length on air; it sets the idle
	// target. 0 means 256; clamped to 1..65535.
	FrameBytes int
}

// Check reports what ConfigFor will clamp: a negative or impossibly long
// delay, negative durations. The error wraps ErrInvalidConfig; ConfigFor
// works either way, so a caller logs the error once and carries on.
func (ch Channel) Check() error {
	switch {
	case ch.PropDelay < 0 || ch.PropDelay > MaxPropDelay:
		return fmt.Errorf("%w: propagation delay %v outside 0..%v, clamped", ErrInvalidConfig, ch.PropDelay, MaxPropDelay)
	case ch.SenseDelay < 0 || ch.SenseDelay > MaxPropDelay:
		return fmt.Errorf("%w: carrier-detect time %v outside 0..%v, clamped", ErrInvalidConfig, ch.SenseDelay, MaxPropDelay)
	case ch.MinSlot < 0 || ch.MinSlot > time.Minute:
		return fmt.Errorf("%w: minimum slot %v outside 0..1m, clamped", ErrInvalidConfig, ch.MinSlot)
	case ch.Turnaround < 0 || ch.Turnaround > time.Minute:
		return fmt.Errorf("%w: turnaround %v outside 0..1m, clamped", ErrInvalidConfig, ch.Turnaround)
	case ch.FrameBytes < 0 || ch.FrameBytes > 65535:
		return fmt.Errorf("%w: frame length %d outside 0..65535, clamped", ErrInvalidConfig, ch.FrameBytes)
	}
	return nil
}

func clampDur(d, lo, hi time.Duration) time.Duration { return max(lo, min(d, hi)) }

// ConfigFor returns parameters for ch, with the adaptive window on:
//
//   - SlotTime = propagation delay + carrier-detect time, at least one bit
//     time and ch.MinSlot: two nodes whose backoffs end a slot apart do not
//     collide, since the later one has heard the earlier by then.
//   - IFS = SlotTime + carrier-detect time + turnaround: long enough for an
//     Ack sent at once by the receiver to reach every node before anyone's
//     countdown starts, and for a flickering carrier not to open the channel.
//   - CWMin 2, CWMax 8192, IdleTarget from the frame-to-slot ratio
//     (IdleTargetFor), PropDelay as given.
//   - Burst 4 when the delay is at least 5% of a frame's airtime (acoustic
//     modems, links of hundreds of km), else 1.
//
// docs/mac.md gives the reasons and the measurements.
func ConfigFor(ch Channel) Config {
	rate := ch.BitRate
	if rate <= 0 {
		rate = 1200
	}
	bit := time.Duration(math.Ceil(float64(time.Second) / float64(rate)))
	prop := clampDur(ch.PropDelay, 0, MaxPropDelay)
	if prop == 0 {
		prop = maxPropagation
	}
	sense := time.Duration(0)
	switch {
	case ch.SenseDelay > 0:
		sense = clampDur(ch.SenseDelay, 0, MaxPropDelay)
	case !ch.CarrierAtArrival:
		sense = senseBits * bit
	}
	slot := max(prop+sense, bit, clampDur(ch.MinSlot, 0, time.Minute))
	ifs := slot + sense + clampDur(ch.Turnaround, 0, time.Minute)
	fb := ch.FrameBytes
	if fb == 0 {
		fb = defaultFrameBytes
	}
	fb = max(1, min(fb, 65535))
	air := time.Duration(int64(fb) * 8 * int64(time.Second) / int64(rate))
	burst := 1
	if float64(prop) >= burstFromA*float64(air) {
		burst = acousticBurst
	}
	return Config{
		SlotTime:    slot,
		IFS:         ifs,
		Persistence: 1,
		CWMin:       adaptiveCWMin,
		CWMax:       adaptiveCWMax,
		QueueLen:    16,
		IdleTarget:  IdleTargetFor(time.Duration(burst)*air, slot, ifs, prop),
		PropDelay:   prop,
		Burst:       burst,
	}
}

// DefaultConfig returns ConfigFor a radio channel of bitRate bit/s (the air
// rate, not the serial baud rate) with carrier detection of 16 bit times and
// up to 100 µs of propagation; a bitRate <= 0 is taken as 1200. The values
// contain no real-time margin: a daemon that drives the MAC from a wall clock
// sets Channel.MinSlot. An acoustic channel needs ConfigFor with its delay.
func DefaultConfig(bitRate int) Config {
	return ConfigFor(Channel{BitRate: bitRate})
}

// IdleTargetFor returns the mean number of idle slots between transmissions
// that maximises throughput when a busy period (one frame, or one burst)
// lasts busy, a slot slot, the inter-frame space ifs and the propagation
// delay prop. In slot units, with x the mean number of transmissions that
// start in a slot (Poisson), a slot is idle with probability e^−x and holds
// one success with x·e^−x; every non-idle slot costs prop + busy + ifs, so
//
//	S(x) = x·e^−x·busy / (e^−x + (1 − e^−x)·(prop + busy + ifs))
//
// and the target is e^−x/(1 − e^−x) at the x that maximises S (found by
// golden-section search; the function is unimodal). This is the argument of
// Idle Sense (Heusse et al., SIGCOMM 2005) with the costs of this MAC.
func IdleTargetFor(busy, slot, ifs, prop time.Duration) float64 {
	if slot <= 0 {
		return 1
	}
	b := float64(busy) / float64(slot)
	c := b + float64(ifs+prop)/float64(slot)
	s := func(x float64) float64 {
		e := math.Exp(-x)
		return x * e * b / (e + (1-e)*c)
	}
	lo, hi := 1e-4, 5.0
	const g = 0.6180339887498949
	for range 100 {
		m1, m2 := hi-g*(hi-lo), lo+g*(hi-lo)
		if s(m1) < s(m2) {
			lo = m1
		} else {
			hi = m2
		}
	}
	x := (lo + hi) / 2
	t := math.Exp(-x) / (1 - math.Exp(-x))
	return math.Round(t*100) / 100
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
	case !(c.IdleTarget >= 0 && c.IdleTarget <= 1000):
		return fmt.Errorf("%w: idle target %v must be in 0..1000", ErrInvalidConfig, c.IdleTarget)
	case c.PropDelay < 0 || c.PropDelay > MaxPropDelay:
		return fmt.Errorf("%w: propagation delay %v must be in 0..%v", ErrInvalidConfig, c.PropDelay, MaxPropDelay)
	case c.Burst < 0 || c.Burst > maxBurst || c.LoneBurst < 0 || c.LoneBurst > maxBurst:
		return fmt.Errorf("%w: burst %d (alone %d) must be in 0..%d", ErrInvalidConfig, c.Burst, c.LoneBurst, maxBurst)
	case c.TurnFrame < 0:
		return fmt.Errorf("%w: turn frame %v must not be negative", ErrInvalidConfig, c.TurnFrame)
	case c.QueueLen < 1:
		return fmt.Errorf("%w: queue length %d must be at least 1", ErrInvalidConfig, c.QueueLen)
	}
	return nil
}
