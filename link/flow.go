package link

import "encoding/binary"

// FlowKey is the flow an Ethernet frame from the host belongs to, for the
// MAC queue's rounds (csma.MACOf.EnqueueFlow): a hash of the IPv4 or IPv6
// addresses and protocol and, for TCP and UDP, both ports, as the host's
// qdisc buckets flows (tap/classify.go). Fragments of a datagram, the first
// included, hash without the ports, so that all of them are one flow and
// keep their order (and packets of one UDP flow, fragmented and not, may be
// two flows, as in the qdisc). IPv6 extension headers end the parse (the
// next header is taken as the protocol). Other frames (ARP) are a flow per
// EtherType. It reads only the headers and never fails: a frame too short
// for what it claims hashes what is there.
func FlowKey(eth []byte) uint64 {
	if len(eth) < 14 {
		return 0
	}
	h := uint64(fnvOffset)
	et := binary.BigEndian.Uint16(eth[12:])
	h = fnvAdd(h, eth[12:14])
	switch ip := eth[14:]; {
	case et == 0x0800 && len(ip) >= 20:
		ihl := int(ip[0]&0x0f) * 4
		h = fnvAdd(h, ip[9:10])  // protocol
		h = fnvAdd(h, ip[12:20]) // addresses
		frag := binary.BigEndian.Uint16(ip[6:])&0x3fff != 0
		if (ip[9] == 6 || ip[9] == 17) && !frag && ihl >= 20 && len(ip) >= ihl+4 {
			h = fnvAdd(h, ip[ihl:ihl+4]) // ports
		}
	case et == 0x86dd && len(ip) >= 40:
		h = fnvAdd(h, ip[6:7])  // next header
		h = fnvAdd(h, ip[8:40]) // addresses
		if (ip[6] == 6 || ip[6] == 17) && len(ip) >= 44 {
			h = fnvAdd(h, ip[40:44]) // ports
		}
	}
	return h
}

// FNV-1a, 64 bits.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvAdd(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}
