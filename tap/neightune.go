package tap

import (
	"time"

	"github.com/rs/zerolog"
)

// TuneNeighbours sets the kernel's neighbour (ARP and IPv6 ND) settings on
// interface ifindex for a link on which one full frame takes frameAirtime,
// over netlink (SetNeighParams): writes under /proc/sys would fail in the
// systemd unit (ProtectKernelTunables=yes) and for a daemon that is not
// root.
//
// Always: packets waiting for an address to resolve stay in the kernel's
// neighbour queue, which by default holds 212,992 bytes per neighbour and
// then drops the oldest; two blocked UDP senders overflow it before the first
// ARP reply is back. Those packets still count against their senders' socket
// buffers, so a larger queue (1 MiB) turns those losses into backpressure.
//
// On slow links also: the defaults (3 probes 1 s apart) give up before a
// reply can cross a 1200 bit/s channel behind a frame or two, and the kernel
// then drops the packets that waited for it. Probes go out one full frame's
// airtime plus a second apart, five of them, and an entry stays reachable for
// two minutes.
func TuneNeighbours(ifindex int, frameAirtime time.Duration, log zerolog.Logger) {
	p := NeighParams{QueueLenBytes: 1 << 20}
	retrans := frameAirtime + time.Second
	slow := retrans > 2*time.Second
	if slow {
		p.RetransTime = min(retrans, 30*time.Second)
		p.UcastProbes, p.McastProbes = 5, 5
		p.BaseReachableTime = 2 * time.Minute
	}
	if err := SetNeighParams(ifindex, p); err != nil {
		log.Warn().Err(err).Msg("cannot tune neighbour settings")
		return
	}
	if slow {
		log.Info().Dur("retrans", p.RetransTime).Msg("neighbour timers tuned for a slow link")
	}
}
