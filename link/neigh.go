package link

// Answering neighbour discovery locally. A host on the TAP that wants the
// link address of another slided node broadcasts an ARP request (IPv4) or
// multicasts a neighbour solicitation (IPv6); on a slow link each costs a
// broadcast frame and a reply on air. Every slided node's link address is
// framing.MACFor(its node id), so once the daemon has heard a node claim an
// IP address (in a frame from the air), it can answer such requests for
// that address itself, from the TAP side, without airtime.
//
// What counts as a claim (learn): the sender of an ARP request or reply,
// the target of an IPv6 neighbour advertisement, and the source of a
// neighbour solicitation that carries its source link-layer address (RFC
// 4861 7.2.3: a host creates a cache entry from exactly that). The frame's
// link addresses must all be the sending node's: the Ethernet source, the
// ARP sender hardware address, the advertisement's target link-layer
// option when present. An ordinary IP packet is no claim: its source
// address is whatever the sender wrote, and learning from it let one
// spoofed datagram take over another node's address. With a key, only
// frames that opened under it teach (the bridge passes only those).
//
// An address belongs to one node at a time. A claim from another node
// while the owner's entry is fresh (heard within neighTTL) does not move
// it: the daemon then answers for neither node until no conflicting claim
// has come for neighTTL, so the requests go on air and the hosts settle it
// as they would without the daemon. A claim after the owner has been quiet
// for neighTTL takes the address. The quiet period is the entry's whole
// freshness, so that whenever the daemon would still answer for the old
// node, it never answers for a new one.
//
// Requests that check for duplicates (ARP probes and announcements,
// solicitations from the unspecified address) and requests for addresses
// not heard are sent on air as before. The kernel's own unicast probes of a
// stale entry go on air too, and their answers refresh the entry.

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/slided/slided/framing"
)

// neighTTL is how long a claim heard from a node is answered for, and how
// long an owner must be quiet before another node may take its address.
const neighTTL = 10 * time.Minute

// maxNeigh bounds the table; when full, the entry heard longest ago goes.
const maxNeigh = 1024

type neighEntry struct {
	node     framing.NodeID
	seen     time.Time // the owner's last claim
	disputed time.Time // another node's last claim while this one was fresh (zero: none)
}

// neighTable maps IP addresses claimed on air to the node that claimed
// them. It is owned by the engine.
type neighTable struct {
	m map[netip.Addr]neighEntry
}

func newNeighTable() *neighTable { return &neighTable{m: make(map[netip.Addr]neighEntry)} }

const (
	etherARP  = 0x0806
	etherIPv4 = 0x0800
	etherIPv6 = 0x86DD
)

// neighConflict is a claim learn refused: addr belongs to owner, fresh,
// and claimant claimed it too. first is set for the claim that began the
// dispute.
type neighConflict struct {
	addr     netip.Addr
	owner    framing.NodeID
	claimant framing.NodeID
	first    bool
}

// learnNeigh teaches the neighbour table from a packet the ARQ delivered
// from the air, once the host has it (Written). With a key only a packet
// that was authenticated teaches: fromAir passes on nothing else, and
// authentic says so for this one.
func (e *Engine) learnNeigh(now time.Time, src framing.NodeID, authentic bool, eth []byte) {
	if e.neigh == nil || e.openers != nil && !authentic {
		return
	}
	c, refused := e.neigh.learn(now, src, eth)
	if !refused {
		return
	}
	e.stats.NeighRefused++
	if c.first {
		e.log.Warn().Stringer("addr", c.addr).Int("owner", int(c.owner)).Int("claimant", int(c.claimant)).
			Msg("two nodes claim one address; answering for neither until one is quiet")
	}
}

// learn records the address an Ethernet frame from node src claims, if it
// claims one (see the top of this file). It returns a claim it refused
// because another node owns the address.
func (t *neighTable) learn(now time.Time, src framing.NodeID, eth []byte) (neighConflict, bool) {
	a, ok := claimed(src, eth)
	if !ok {
		return neighConflict{}, false
	}
	e, held := t.m[a]
	switch {
	case held && e.node == src:
		e.seen = now
		t.m[a] = e
		return neighConflict{}, false
	case held && now.Sub(e.seen) <= neighTTL:
		first := e.disputed.IsZero() || now.Sub(e.disputed) > neighTTL
		e.disputed = now
		t.m[a] = e
		return neighConflict{addr: a, owner: e.node, claimant: src, first: first}, true
	}
	if !held && len(t.m) >= maxNeigh {
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
	return neighConflict{}, false
}

// claimed returns the address eth, a frame from node src, claims for src:
// see the top of this file. Every link address in it must be src's.
func claimed(src framing.NodeID, eth []byte) (netip.Addr, bool) {
	mac := framing.MACFor(src)
	if len(eth) < 14 || !bytes.Equal(eth[6:12], mac) {
		return netip.Addr{}, false
	}
	p := eth[14:]
	var a netip.Addr
	switch binary.BigEndian.Uint16(eth[12:14]) {
	case etherARP:
		// Request or reply: the sender's addresses, whatever the target.
		if len(p) < 28 || !arpIPv4(p) || !bytes.Equal(p[8:14], mac) {
			return netip.Addr{}, false
		}
		if op := binary.BigEndian.Uint16(p[6:8]); op != 1 && op != 2 {
			return netip.Addr{}, false
		}
		a = netip.AddrFrom4([4]byte(p[14:18]))
	case etherIPv6:
		icmp, ok := ndMessage(p)
		if !ok {
			return netip.Addr{}, false
		}
		switch icmp[0] {
		case ndAdvertise:
			if lla, found, ok := ndOption(icmp[24:], ndOptTgtLink); !ok || found && !bytes.Equal(lla, mac) {
				return netip.Addr{}, false
			}
			a = netip.AddrFrom16([16]byte(icmp[8:24]))
		case ndSolicit:
			if lla, found, ok := ndOption(icmp[24:], ndOptSrcLink); !ok || !found || !bytes.Equal(lla, mac) {
				return netip.Addr{}, false
			}
			a = netip.AddrFrom16([16]byte(p[8:24]))
		default:
			return netip.Addr{}, false
		}
	default:
		return netip.Addr{}, false
	}
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
		return netip.Addr{}, false
	}
	return a, true
}

// ndMessage returns the ICMPv6 message of p, an IPv6 packet, if it is a
// well-formed neighbour solicitation or advertisement as RFC 4861 7.1.1
// and 7.1.2 check them: no extension headers, hop limit 255, code 0, at
// least 24 bytes, a valid checksum.
func ndMessage(p []byte) ([]byte, bool) {
	if len(p) < 40+24 || p[0]>>4 != 6 || p[6] != icmpv6 || p[7] != 255 {
		return nil, false
	}
	plen := int(binary.BigEndian.Uint16(p[4:6]))
	if plen < 24 || 40+plen > len(p) {
		return nil, false
	}
	icmp := p[40 : 40+plen]
	if (icmp[0] != ndSolicit && icmp[0] != ndAdvertise) || icmp[1] != 0 {
		return nil, false
	}
	if icmpv6Checksum(p[8:24], p[24:40], icmp) != 0 {
		return nil, false
	}
	return icmp, true
}

// ndOption finds the first option of kind typ among ND options and
// returns its 6-byte link-layer address. ok is false when the options are
// malformed (a zero length, or one running past the end): the whole
// message is then invalid (RFC 4861 7.1.1).
func ndOption(opts []byte, typ byte) (lla []byte, found, ok bool) {
	for len(opts) > 0 {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return nil, false, false
		}
		n := int(opts[1]) * 8
		if opts[0] == typ && !found {
			lla, found = opts[2:8], true
		}
		opts = opts[n:]
	}
	return lla, found, true
}

// lookup returns the node that claimed a recently, unless another node
// claimed it too within neighTTL.
func (t *neighTable) lookup(now time.Time, a netip.Addr) (framing.NodeID, bool) {
	e, ok := t.m[a]
	if !ok || now.Sub(e.seen) > neighTTL || !e.disputed.IsZero() && now.Sub(e.disputed) <= neighTTL {
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
	ndOptSrcLink = 1
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
