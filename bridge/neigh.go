package bridge

// Answering neighbour discovery locally. A host on the TAP that wants the
// link address of another slided node broadcasts an ARP request (IPv4) or
// multicasts a neighbour solicitation (IPv6); on a slow link each costs a
// broadcast frame and a reply on air. Every slided node's link address is
// framing.MACFor(its node id), so once the daemon has heard a node use an
// IP address (in a frame from the air), it can answer such requests for
// that address itself, from the TAP side, without airtime.
//
// Safe, because: only addresses heard recently from the node itself are
// answered (neighTTL), a newer frame from another node moves the address,
// and requests that check for duplicates (ARP probes and announcements,
// solicitations from the unspecified address) and requests for addresses
// not heard are sent on air as before. The kernel's own unicast probes of a
// stale entry go on air too, so an address that moved is found again.

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/slided/slided/framing"
)

// neighTTL is how long an address heard from a node is answered for.
const neighTTL = 10 * time.Minute

// maxNeigh bounds the table; when full, the entry heard longest ago goes.
const maxNeigh = 1024

type neighEntry struct {
	node framing.NodeID
	seen time.Time
}

// neighTable maps IP addresses heard on air to the node that used them. It
// is owned by the loop goroutine.
type neighTable struct {
	m map[netip.Addr]neighEntry
}

func newNeighTable() *neighTable { return &neighTable{m: make(map[netip.Addr]neighEntry)} }

const (
	etherARP  = 0x0806
	etherIPv4 = 0x0800
	etherIPv6 = 0x86DD
)

// learn records the source address of an Ethernet frame that came from
// node src over the air, if the frame's source MAC is that node's.
func (t *neighTable) learn(now time.Time, src framing.NodeID, eth []byte) {
	if len(eth) < 14 || !bytes.Equal(eth[6:12], framing.MACFor(src)) {
		return
	}
	p := eth[14:]
	var a netip.Addr
	switch binary.BigEndian.Uint16(eth[12:14]) {
	case etherARP:
		if len(p) < 28 || !arpIPv4(p) || !bytes.Equal(p[8:14], eth[6:12]) {
			return
		}
		a = netip.AddrFrom4([4]byte(p[14:18]))
	case etherIPv4:
		if len(p) < 20 || p[0]>>4 != 4 {
			return
		}
		a = netip.AddrFrom4([4]byte(p[12:16]))
	case etherIPv6:
		if len(p) < 40 || p[0]>>4 != 6 {
			return
		}
		a = netip.AddrFrom16([16]byte(p[8:24]))
	default:
		return
	}
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
		return
	}
	if _, ok := t.m[a]; !ok && len(t.m) >= maxNeigh {
		var oldest netip.Addr
		var at time.Time
		for k, e := range t.m {
			if !oldest.IsValid() || e.seen.Before(at) {
				oldest, at = k, e.seen
			}
		}
		delete(t.m, oldest)
	}
	t.m[a] = neighEntry{node: src, seen: now}
}

// lookup returns the node that used a recently.
func (t *neighTable) lookup(now time.Time, a netip.Addr) (framing.NodeID, bool) {
	e, ok := t.m[a]
	if !ok || now.Sub(e.seen) > neighTTL {
		return 0, false
	}
	return e.node, true
}

func arpIPv4(p []byte) bool {
	return binary.BigEndian.Uint16(p[0:2]) == 1 && binary.BigEndian.Uint16(p[2:4]) == etherIPv4 && p[4] == 6 && p[5] == 4
}

// answer returns, appended to dst, the reply to eth (a frame read from the
// TAP) if eth is an ARP request or an IPv6 neighbour solicitation for an
// address of another node that the table knows, and whose answer is
// therefore known. self is this node: its own addresses are never answered.
func (t *neighTable) answer(dst []byte, now time.Time, self framing.NodeID, eth []byte) ([]byte, bool) {
	if len(eth) < 14 {
		return dst, false
	}
	switch binary.BigEndian.Uint16(eth[12:14]) {
	case etherARP:
		return t.answerARP(dst, now, self, eth)
	case etherIPv6:
		return t.answerNS(dst, now, self, eth)
	}
	return dst, false
}

func (t *neighTable) answerARP(dst []byte, now time.Time, self framing.NodeID, eth []byte) ([]byte, bool) {
	p := eth[14:]
	if len(p) < 28 || !arpIPv4(p) || binary.BigEndian.Uint16(p[6:8]) != 1 {
		return dst, false
	}
	spa, tpa := p[14:18], p[24:28]
	// Probes (sender 0.0.0.0) and announcements (sender = target) check
	// for duplicates: the other nodes must hear them.
	if bytes.Equal(spa, tpa) || bytes.Equal(spa, []byte{0, 0, 0, 0}) {
		return dst, false
	}
	node, ok := t.lookup(now, netip.AddrFrom4([4]byte(tpa)))
	if !ok || node == self {
		return dst, false
	}
	mac := framing.MACFor(node)
	dst = append(dst, p[8:14]...) // to the requester
	dst = append(dst, mac...)
	dst = binary.BigEndian.AppendUint16(dst, etherARP)
	dst = append(dst, 0, 1, 0x08, 0x00, 6, 4, 0, 2) // Ethernet, IPv4, reply
	dst = append(dst, mac...)
	dst = append(dst, tpa...)
	dst = append(dst, p[8:14]...)
	dst = append(dst, spa...)
	return dst, true
}

// IPv6 neighbour discovery (RFC 4861): a solicitation is ICMPv6 type 135
// with hop limit 255 right after the IPv6 header; the advertisement that
// answers it is type 136 with the Solicited and Override flags and the
// target's link-layer address option.
const (
	icmpv6       = 58
	ndSolicit    = 135
	ndAdvertise  = 136
	ndOptTgtLink = 2
)

func (t *neighTable) answerNS(dst []byte, now time.Time, self framing.NodeID, eth []byte) ([]byte, bool) {
	p := eth[14:]
	if len(p) < 40+24 || p[0]>>4 != 6 || p[6] != icmpv6 || p[7] != 255 {
		return dst, false
	}
	plen := int(binary.BigEndian.Uint16(p[4:6]))
	if plen < 24 || 40+plen > len(p) {
		return dst, false
	}
	icmp := p[40 : 40+plen]
	if icmp[0] != ndSolicit || icmp[1] != 0 {
		return dst, false
	}
	src := netip.AddrFrom16([16]byte(p[8:24]))
	if src.IsUnspecified() {
		return dst, false // duplicate address detection: others must hear it
	}
	target := netip.AddrFrom16([16]byte(icmp[8:24]))
	node, ok := t.lookup(now, target)
	if !ok || node == self {
		return dst, false
	}
	mac := framing.MACFor(node)
	dst = append(dst, eth[6:12]...) // to the soliciting host
	dst = append(dst, mac...)
	dst = binary.BigEndian.AppendUint16(dst, etherIPv6)
	ip := len(dst)
	const icmpLen = 32 // header 4, flags 4, target 16, option 8
	dst = append(dst, 0x60, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, icmpLen)
	dst = append(dst, icmpv6, 255)
	dst = append(dst, icmp[8:24]...) // from the target address
	dst = append(dst, p[8:24]...)    // to the solicitor
	ic := len(dst)
	dst = append(dst, ndAdvertise, 0, 0, 0, 0x60, 0, 0, 0) // Solicited, Override
	dst = append(dst, icmp[8:24]...)
	dst = append(dst, ndOptTgtLink, 1)
	dst = append(dst, mac...)
	sum := icmpv6Checksum(dst[ip+8:ip+24], dst[ip+24:ip+40], dst[ic:])
	binary.BigEndian.PutUint16(dst[ic+2:], sum)
	return dst, true
}

// icmpv6Checksum is the Internet checksum of the IPv6 pseudo-header (src,
// dst, upper-layer length, next header 58) and msg, whose checksum field
// is zero.
func icmpv6Checksum(src, dst, msg []byte) uint16 {
	var s uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			s += uint32(b[len(b)-1]) << 8
		}
	}
	add(src)
	add(dst)
	s += uint32(len(msg)) + icmpv6
	add(msg)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
