package bridge

import "time"

// pacer chooses the rate of the shaping qdisc on the TAP so that the host's
// backlog stays in the qdisc, where it still counts against the senders'
// socket buffers, and not in the TAP's ring, where the kernel drops.
//
// It is sans-I/O: the bridge feeds it one sample per tick. All figures are in
// bytes of Ethernet frames, the unit in which the qdisc counts (skb->len).
//
// The rule: while the link is the bottleneck (the MAC had a frame waiting for
// the whole tick), the capacity is what the MAC delivered; the rate is that
// capacity corrected by how far the ring is from its target, so a ring that
// grows is drained and one that empties is refilled. A ring more than half
// full while the last second delivered less than the average bases the rate
// on that second: the average lags by seconds, and a ring of 16 fills in
// two when the other node starts sending and halves our share. While the link is not
// the bottleneck, the rate grows multiplicatively towards the channel's raw
// rate so that a sender that speeds up is not held back for long.
type pacer struct {
	min, max float64       // bytes/s bounds; min > 0 keeps a stalled daemon's ring draining (bounded stall)
	rate     float64       // current rate, bytes/s
	capacity float64       // smoothed delivered rate while saturated, bytes/s; 0 until measured
	tau      time.Duration // smoothing time constant of capacity
	target   float64       // packets we want waiting between the qdisc and the air (MAC queue + TAP ring)
	scale    float64       // backlog error that moves the rate by 50%
	ringLen  int           // the TAP's ring
	recent   [4]sample     // the last ticks, for recentRate
	next     int
}

// sample is one tick's delivery.
type sample struct {
	dt        time.Duration
	delivered uint64
}

// recentRate is the delivery over the last ticks (about a second), bytes/s.
func (p *pacer) recentRate() float64 {
	var dt time.Duration
	var n uint64
	for _, s := range p.recent {
		dt += s.dt
		n += s.delivered
	}
	if dt <= 0 {
		return 0
	}
	return float64(n) / dt.Seconds()
}

// newPacer starts at 90% of the raw channel rate. queueLen is the MAC's
// queue and ringLen the TAP's ring: the pacer aims at a full MAC queue and a
// couple of packets in the ring, so the MAC never waits for the host and the
// rest of the backlog stays in the qdisc. frameTime is the airtime of a full
// frame: the capacity is smoothed over several of them, so that a tick in
// which no frame happened to finish does not read as a stalled link.
func newPacer(bitRate, queueLen, ringLen int, frameTime time.Duration) *pacer {
	max := float64(bitRate) / 8
	ringTarget := 2.0
	if float64(ringLen) < 4*ringTarget {
		ringTarget = float64(ringLen) / 4
	}
	scale := float64(queueLen+ringLen) / 2
	if scale < 1 {
		scale = 1
	}
	tau := 8 * frameTime
	if tau < 2*time.Second {
		tau = 2 * time.Second
	}
	return &pacer{
		min:     max / 64,
		max:     max,
		rate:    max * 0.9,
		tau:     tau,
		target:  float64(queueLen) + ringTarget,
		scale:   scale,
		ringLen: ringLen,
	}
}

// update takes one tick's sample and returns the new rate in bytes/s.
// delivered is the Ethernet bytes the MAC put on air during dt; saturated
// says the MAC never ran out of frames during dt; backlog is the number of
// packets waiting in the MAC queue and the TAP ring at the end of dt (-1 when
// the ring is unknown), ring the TAP ring's part of it (-1 unknown).
func (p *pacer) update(dt time.Duration, delivered uint64, saturated bool, backlog, ring int) float64 {
	if dt <= 0 {
		return p.rate
	}
	measured := float64(delivered) / dt.Seconds()
	p.recent[p.next] = sample{dt, delivered}
	p.next = (p.next + 1) % len(p.recent)
	switch {
	case saturated:
		if p.capacity == 0 {
			p.capacity = p.rate
		}
		alpha := dt.Seconds() / p.tau.Seconds()
		if alpha > 1 {
			alpha = 1
		}
		p.capacity += alpha * (measured - p.capacity)
		base, correction := p.capacity, 1.0
		if backlog >= 0 {
			correction = 1 + 0.5*(p.target-float64(backlog))/p.scale
		}
		if recent := p.recentRate(); ring > p.ringLen/2 && recent > 0 && recent < base {
			// The ring is half full: the smoothed capacity lags behind a
			// link that just got slower (another node started sending).
			// Trust the last second's delivery, or the ring overflows
			// before the average catches up. A second, not a tick: with
			// small modem frames a packet takes many ticks to deliver.
			base = recent
		}
		correction = clamp(correction, 0.25, 1.1)
		p.rate = base * correction
	case float64(backlog) > p.target:
		// Frames pile up although the MAC was not saturated: the daemon
		// is slow to read (or stopped). Do not add to the pile.
		p.rate *= 0.8
	default:
		p.rate *= 1.25
	}
	p.rate = clamp(p.rate, p.min, p.max)
	return p.rate
}

// idleTicks bounds the idle ticks idle replays: after this many the pacer
// no longer changes but for where recent's next sample goes (the rate has
// grown from min to max by 1.25 a tick in fewer, and recent holds only idle
// samples). A multiple of len(recent).
const idleTicks = 32

// idle accounts for n ticks of dt in which nothing was delivered, queued or
// waiting in the ring, as the bridge's loop skips them while the link is
// idle, and returns the rate. It leaves the pacer as n calls of
// update(dt, 0, false, 0, 0) would.
func (p *pacer) idle(n int, dt time.Duration) float64 {
	if n > idleTicks {
		n = idleTicks + n%len(p.recent)
	}
	for range n {
		p.update(dt, 0, false, 0, 0)
	}
	return p.rate
}

func clamp(x, lo, hi float64) float64 {
	if x < lo {
		return lo
	}
	if x > hi {
		return hi
	}
	return x
}
