package biterr

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestGeometricGapMean(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, p := range []float64{1e-5, 1e-3, 0.1, 0.5} {
		const n = 200000
		var sum float64
		for range n {
			sum += float64(GeometricGap(p, r))
		}
		mean, sd := (1-p)/p, math.Sqrt(1-p)/p/math.Sqrt(n)
		if got := sum / n; math.Abs(got-mean) > 6*sd {
			t.Errorf("p %g: mean gap %.2f, want %.2f ± %.2f", p, got, mean, 6*sd)
		}
	}
	if GeometricGap(0, r) != NoFlip || GeometricGap(1, r) != 0 {
		t.Error("edge rates")
	}
}

// TestFlipCounts: Flip flips exactly the bits and bytes it reports.
func TestFlipCounts(t *testing.T) {
	for _, tc := range []struct {
		ber         float64
		n           int
		bits, bytes int // -1: any, but some
	}{
		{ber: 0, n: 100, bits: 0, bytes: 0},
		{ber: 1, n: 100, bits: 800, bytes: 100},
		{ber: 0.01, n: 10000, bits: -1, bytes: -1},
	} {
		var fl Flipper
		b := make([]byte, tc.n)
		bits, bytes := fl.Flip(b, tc.ber, rand.New(rand.NewPCG(1, 2)))
		var set, nonzero int
		for _, x := range b {
			if x != 0 {
				nonzero++
			}
			for ; x != 0; x &= x - 1 {
				set++
			}
		}
		if set != bits || nonzero != bytes {
			t.Errorf("ber %g: Flip says %d bits in %d bytes, found %d bits in %d bytes", tc.ber, bits, bytes, set, nonzero)
		}
		if tc.bits >= 0 && (bits != tc.bits || bytes != tc.bytes) || tc.bits < 0 && (bits == 0 || bytes == 0) {
			t.Errorf("ber %g over %d bytes: %d bits in %d bytes, want %d in %d (-1: some)", tc.ber, tc.n, bits, bytes, tc.bits, tc.bytes)
		}
	}
}

// TestFlipChunked: a stream flipped in chunks gets the same errors as in
// one piece (the gap carries over).
func TestFlipChunked(t *testing.T) {
	whole := make([]byte, 5000)
	var fl Flipper
	fl.Flip(whole, 0.003, rand.New(rand.NewPCG(3, 4)))
	chunked := make([]byte, 5000)
	var fc Flipper
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(chunked); i += 7 {
		fc.Flip(chunked[i:min(i+7, len(chunked))], 0.003, rng)
	}
	if string(whole) != string(chunked) {
		t.Error("chunked flips differ from whole flips")
	}
}
