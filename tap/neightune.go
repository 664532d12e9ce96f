package tap

import (
	"time"

	"github.com/rs/zerolog"
)

// NeighTimersFor is the neighbour (ARP and IPv6 ND) settings for a link on
// which one full frame takes frameAirtime and an answer lost on air once is
// sent again after resend (the link ARQ's Ack timeout; 0 without ARQ).
//
// Always: packets waiting for an address to resolve stay in the kernel's
// neighbour queue, which by default holds 212,992 bytes per neighbour and
// then drops the oldest; two blocked UDP senders overflow it before the first
// ARP reply is back. Those packets still count against their senders' socket
// buffers, so a larger queue (1 MiB) turns those losses into backpressure.
//
// Probes go out a full frame's airtime plus a second apart (the kernel's
// 1 s where that is less than 2 s): a probe's answer has had the time to
// cross the channel behind a frame before the next probe goes, and a lost
// broadcast request (sent once, no ARQ) is asked again that soon.
//
// The kernel gives up after 3 probes and drops what waited. Where a frame
// takes so long that 3 requests cannot see a reply cross the channel
// behind a frame or two (1200 bit/s), there are 5 of each kind. Where frames
// are quick, the unicast probes of a neighbour the kernel knows (NUD) are
// answered by unicast, which the ARQ resends an Ack timeout later when it
// collides (about 1.9 s on the simulated medium at 115200 bit/s, where a
// node's turn is a burst of frames): with 3 probes 1 s apart a routing
// daemon's unicast to a neighbour it hears well failed under a saturating
// flow (docs/mininet.md). So there are as many unicast probes as last twice
// what an answer lost once takes (its frame's airtime, the resend and a
// second), at least 5, at most maxNeighProbes, wherever that is over 2 s.
// (On a slow link the same rule gave 8 behind a TNC at 1200 bit/s, and
// TestDirewolf1200 then lost datagrams one way in 3 runs of 3, 6-7 of 10,
// for a reason not found; with 5 none in 2 of 2: slow links keep 5.) An
// entry on either kind of link stays reachable for two minutes. The
// broadcast requests of a first resolution keep their number: while they
// go on, what waits for the answer holds its senders' socket buffers, and a
// stopped daemon on the way (no answer will come) would hold a socket that
// also sends through another interface that much longer
// (TestStoppedDaemonDoesNotBlockOtherInterfaces).
func NeighTimersFor(frameAirtime, resend time.Duration) (p NeighParams, slow bool) {
	p = NeighParams{QueueLenBytes: 1 << 20}
	spacing := frameAirtime + time.Second
	slowAir := spacing > 2*time.Second
	answer := frameAirtime + resend + time.Second
	if !slowAir && answer <= 2*time.Second {
		return p, false
	}
	p.BaseReachableTime = 2 * time.Minute
	if slowAir {
		p.RetransTime = min(spacing, 30*time.Second)
		p.UcastProbes, p.McastProbes = 5, 5
		return p, true
	}
	p.RetransTime = time.Second // the kernel's
	p.UcastProbes = min(max(uint32((2*answer+p.RetransTime-1)/p.RetransTime), 5), maxNeighProbes)
	return p, true
}

// maxNeighProbes bounds the probes of one resolution: each is a frame on
// air when the neighbour is gone for good.
const maxNeighProbes = 10

// TuneNeighbours sets NeighTimersFor(frameAirtime, resend) on interface
// ifindex over netlink (SetNeighParams): writes under /proc/sys would fail in
// the systemd unit (ProtectKernelTunables=yes) and for a daemon that is not
// root. It logs, and returns nothing: a daemon runs on with the kernel's
// settings.
func TuneNeighbours(ifindex int, frameAirtime, resend time.Duration, log zerolog.Logger) {
	p, slow := NeighTimersFor(frameAirtime, resend)
	if err := SetNeighParams(ifindex, p); err != nil {
		log.Warn().Err(err).Msg("cannot tune neighbour settings")
		return
	}
	if slow {
		log.Info().Dur("retrans", p.RetransTime).Uint32("probes", p.UcastProbes).Msg("neighbour timers tuned for a slow link")
	}
}
