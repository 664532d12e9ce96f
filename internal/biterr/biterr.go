// Package biterr flips bits of a byte stream at a bit error rate, drawing
// the geometric gap between flipped bits (one random draw per flipped bit,
// not one per bit). It is shared by the acoustic modem emulator
// (internal/acoustic) and the lab's noisy cable (internal/lab).
package biterr

import (
	"math"
	"math/rand/v2"
)

// A Flipper flips bits at geometric gaps: its gap is the number of bits to
// let through before the next flip, drawn for the rate of the last call; a
// new rate draws a new gap. The zero value is ready; a Flipper keeps its gap
// across calls, so a stream cut into chunks sees the same error pattern as
// one chunk. It is not safe for concurrent use.
type Flipper struct {
	gap   uint64
	ber   float64
	drawn bool
}

// NoFlip is a gap that no run of bytes reaches.
const NoFlip = math.MaxUint64

// GeometricGap draws the number of intact bits before the next flipped one
// when each bit flips with probability p: P(gap = k) = (1-p)^k p.
func GeometricGap(p float64, rng *rand.Rand) uint64 {
	switch {
	case p <= 0:
		return NoFlip
	case p >= 1:
		return 0
	}
	u := 1 - rng.Float64() // (0, 1]
	g := math.Floor(math.Log(u) / math.Log1p(-p))
	if g >= 1<<62 {
		return NoFlip
	}
	return uint64(g)
}

// Flip flips bits of b, each with probability ber, and returns how many
// bits it flipped and how many bytes it changed.
func (fl *Flipper) Flip(b []byte, ber float64, rng *rand.Rand) (bits, bytes int) {
	if !fl.drawn || ber != fl.ber {
		fl.ber, fl.drawn = ber, true
		fl.gap = GeometricGap(ber, rng)
	}
	if ber <= 0 {
		return 0, 0
	}
	n := uint64(len(b)) * 8
	var pos uint64
	last := uint64(math.MaxUint64)
	for {
		if fl.gap >= n-pos {
			fl.gap -= n - pos
			return bits, bytes
		}
		pos += fl.gap
		b[pos/8] ^= 1 << (pos % 8)
		bits++
		if pos/8 != last {
			bytes++
			last = pos / 8
		}
		pos++
		fl.gap = GeometricGap(ber, rng)
	}
}
