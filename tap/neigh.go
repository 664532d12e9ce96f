//go:build linux

package tap

import (
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// NeighParams are an interface's neighbour-table settings (ARP for IPv4,
// neighbour discovery for IPv6): what /proc/sys/net/{ipv4,ipv6}/neigh/DEV/
// holds. A zero field is left as it is.
type NeighParams struct {
	QueueLenBytes     uint32        // unres_qlen_bytes: bytes queued per unresolved neighbour
	RetransTime       time.Duration // retrans_time_ms: between two probes (millisecond resolution)
	BaseReachableTime time.Duration // base_reachable_time_ms
	UcastProbes       uint32        // ucast_solicit
	McastProbes       uint32        // mcast_solicit
}

// Attributes of RTM_SETNEIGHTBL (linux/neighbour.h); x/sys/unix lacks them.
const (
	ndtaName  = 1 // NDTA_NAME: table name, "arp_cache" or "ndisc_cache"
	ndtaParms = 6 // NDTA_PARMS: nested NDTPA_*

	ndtpaIfindex           = 1  // u32
	ndtpaBaseReachableTime = 4  // u64, ms
	ndtpaRetransTime       = 5  // u64, ms
	ndtpaUcastProbes       = 10 // u32
	ndtpaMcastProbes       = 11 // u32
	ndtpaQueueLenBytes     = 16 // u32
)

// SetNeighParams sets p on interface ifindex in the IPv4 and the IPv6
// neighbour tables with rtnetlink (RTM_SETNEIGHTBL), one request per
// family. It needs CAP_NET_ADMIN and nothing else: unlike a write under
// /proc/sys, it works where /proc/sys is read-only (systemd's
// ProtectKernelTunables=yes) and for a process that is not root. A family
// without a table entry for the interface (IPv6 disabled on it) is skipped;
// neither having one is an error.
func SetNeighParams(ifindex int, p NeighParams) error {
	set := 0
	for _, t := range []struct {
		family uint8
		name   string
	}{{unix.AF_INET, "arp_cache"}, {unix.AF_INET6, "ndisc_cache"}} {
		err := setNeighTable(t.family, t.name, ifindex, p)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("tap: neighbour settings (%s) of interface %d: %w", t.name, ifindex, err)
		}
		set++
	}
	if set == 0 {
		return fmt.Errorf("tap: neighbour settings of interface %d: no IPv4 or IPv6 neighbour table has it: %w", ifindex, unix.ENOENT)
	}
	return nil
}

func setNeighTable(family uint8, name string, ifindex int, p NeighParams) error {
	req := nl.NewNetlinkRequest(unix.RTM_SETNEIGHTBL, unix.NLM_F_ACK)
	req.AddData(ndtmsg{family: family})
	req.AddData(nl.NewRtAttr(ndtaName, nl.ZeroTerminated(name)))
	parms := nl.NewRtAttr(ndtaParms|unix.NLA_F_NESTED, nil)
	parms.AddRtAttr(ndtpaIfindex, nl.Uint32Attr(uint32(ifindex)))
	if p.QueueLenBytes > 0 {
		parms.AddRtAttr(ndtpaQueueLenBytes, nl.Uint32Attr(p.QueueLenBytes))
	}
	if p.RetransTime > 0 {
		parms.AddRtAttr(ndtpaRetransTime, nl.Uint64Attr(uint64(p.RetransTime.Milliseconds())))
	}
	if p.BaseReachableTime > 0 {
		parms.AddRtAttr(ndtpaBaseReachableTime, nl.Uint64Attr(uint64(p.BaseReachableTime.Milliseconds())))
	}
	if p.UcastProbes > 0 {
		parms.AddRtAttr(ndtpaUcastProbes, nl.Uint32Attr(p.UcastProbes))
	}
	if p.McastProbes > 0 {
		parms.AddRtAttr(ndtpaMcastProbes, nl.Uint32Attr(p.McastProbes))
	}
	req.AddData(parms)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// ndtmsg is struct ndtmsg: family and 3 bytes of padding.
type ndtmsg struct{ family uint8 }

func (m ndtmsg) Len() int          { return 4 }
func (m ndtmsg) Serialize() []byte { return []byte{m.family, 0, 0, 0} }
