//go:build linux

package main

import (
	"testing"
	"time"
)

// TestSharedGoodput: the demo's two flows are rated over the one window
// from the first datagram either delivered to the last, so together they
// never exceed what was delivered over that window. Rated each over its own
// span (FlowStats.Goodput), a flow that delivered 5 datagrams in one burst
// looked as fast as the channel, and the demo printed 102% of the channel.
func TestSharedGoodput(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		desc string
		res  [2]demoResult
		want [2]float64
	}{
		{"one window for both", [2]demoResult{
			{got: 21, bytes: 10500, first: t0, last: t0.Add(10 * time.Second)},
			{got: 5, bytes: 2500, first: t0.Add(9 * time.Second), last: t0.Add(10 * time.Second)},
		}, [2]float64{1050, 250}},
		{"one flow delivered nothing", [2]demoResult{
			{got: 4, bytes: 2000, first: t0, last: t0.Add(2 * time.Second)},
			{},
		}, [2]float64{1000, 0}},
		{"nothing delivered", [2]demoResult{}, [2]float64{0, 0}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			res := tc.res
			sharedGoodput(&res)
			for i := range res {
				if res[i].goodput != tc.want[i] {
					t.Errorf("flow %d: goodput %v B/s, want %v", i+1, res[i].goodput, tc.want[i])
				}
			}
		})
	}
}
