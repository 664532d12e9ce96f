package tap

import (
	"testing"
	"time"
)

// TestNeighTimersFor: probes wait long enough for an answer that crosses a
// slow channel, or that the link ARQ resends once after a collision, and
// the kernel's LAN defaults stay where neither takes long.
func TestNeighTimersFor(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name           string
		airtime, ackTO time.Duration
		slow           bool
		retrans        time.Duration
		ucast, mcast   uint32 // 0: the kernel's
	}{
		{"fast link, no ARQ", 1 * ms, 0, false, 0, 0, 0},
		{"fast link, quick ARQ", 1 * ms, 200 * ms, false, 0, 0, 0},
		// A 1500-byte frame at 115200 bit/s; the Ack timeout the
		// daemon starts with on the simulated medium (1.9 s): an answer
		// lost once comes back after 3 s, when the kernel has given up.
		{"115200 bit/s shared medium", 106 * ms, 1901 * ms, true, time.Second, 7, 0},
		{"115200 bit/s without ARQ", 106 * ms, 0, false, 0, 0, 0},
		{"1200 bit/s without ARQ", 10200 * ms, 0, true, 11200 * ms, 5, 5},
		// Behind a TNC at 1200 bit/s the Ack timeout is about 33 s; a
		// slow link keeps the airtime's rule (NeighTimersFor).
		{"1200 bit/s behind a TNC", 10200 * ms, 33 * time.Second, true, 11200 * ms, 5, 5},
		{"300 bit/s, capped", 41 * time.Second, 60 * time.Second, true, 30 * time.Second, 5, 5},
		{"most probes", 10 * ms, 20 * time.Second, true, time.Second, maxNeighProbes, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, slow := NeighTimersFor(c.airtime, c.ackTO)
			if slow != c.slow || p.RetransTime != c.retrans || p.UcastProbes != c.ucast || p.McastProbes != c.mcast {
				t.Errorf("slow %v retrans %v probes %d unicast, %d broadcast; want %v %v %d %d", slow, p.RetransTime,
					p.UcastProbes, p.McastProbes, c.slow, c.retrans, c.ucast, c.mcast)
			}
			if p.QueueLenBytes != 1<<20 {
				t.Errorf("queue %d bytes, want 1 MiB always", p.QueueLenBytes)
			}
			if slow && p.BaseReachableTime != 2*time.Minute {
				t.Errorf("slow link: reachable for %v", p.BaseReachableTime)
			}
			// Where frames are quick, the unicast probes last for an
			// answer lost once, twice over.
			if window := time.Duration(p.UcastProbes) * p.RetransTime; slow && c.airtime < time.Second && p.UcastProbes < maxNeighProbes &&
				window < 2*(c.airtime+c.ackTO+time.Second) {
				t.Errorf("%d probes %v apart: an answer the ARQ resends after %v comes too late", p.UcastProbes, p.RetransTime, c.ackTO)
			}
		})
	}
}
