package framing

import (
	"bytes"
	"fmt"
	"net"
)

// Ethernet compaction: node N has the locally administered unicast MAC
// 02:53:4c:44:00:NN ("\x02SLD" then 0x00, NN), so a frame between two nodes
// needs only their ids on air (KindData); any other frame travels whole
// (KindEthernet).

// EthHeaderLen is the length of an untagged Ethernet header: destination
// MAC, source MAC, EtherType.
const EthHeaderLen = 14

// macPrefix is the first five bytes of every node MAC.
var macPrefix = [5]byte{0x02, 0x53, 0x4c, 0x44, 0x00}

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// MACFor returns node id's MAC address 02:53:4c:44:00:id (a new slice).
func MACFor(id NodeID) net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	putMAC(mac, id)
	return mac
}

func putMAC(b []byte, id NodeID) {
	copy(b, macPrefix[:])
	b[5] = byte(id)
}

// NodeOf returns the node whose MAC is mac: mac must be 02:53:4c:44:00:NN
// with NN neither 0x00 nor 0xFF.
func NodeOf(mac []byte) (NodeID, bool) {
	if len(mac) != 6 || !bytes.Equal(mac[:5], macPrefix[:]) {
		return 0, false
	}
	id := NodeID(mac[5])
	if id == 0 || id == Broadcast {
		return 0, false
	}
	return id, true
}

// Compact maps an outgoing Ethernet frame from node self to a link header
// and payload; the payload aliases eth.
//
//   - destination ff:ff:ff:ff:ff:ff: Dst = Broadcast;
//   - destination a node MAC: Dst = that node;
//   - other multicast destination: Dst = Broadcast, KindEthernet;
//   - any other unicast destination: ErrNoRoute.
//
// The kind is KindData (payload eth[12:], the EtherType onward) when the
// source MAC is MACFor(self) and the destination is broadcast or a node, and
// KindEthernet (payload eth, whole) otherwise. Src is always self. A frame
// shorter than 14 bytes gives ErrShort; self 0x00 or Broadcast gives
// ErrBadAddr.
func Compact(eth []byte, self NodeID) (Header, []byte, error) {
	if self == 0 || self == Broadcast {
		return Header{}, nil, fmt.Errorf("compact: self node %#02x: %w", byte(self), ErrBadAddr)
	}
	if len(eth) < EthHeaderLen {
		return Header{}, nil, fmt.Errorf("compact: %d-byte ethernet frame: %w", len(eth), ErrShort)
	}
	dstMAC, srcMAC := eth[0:6], eth[6:12]
	h := Header{Kind: KindEthernet, Src: self}
	derivable := false
	switch id, ok := NodeOf(dstMAC); {
	case ok:
		h.Dst, derivable = id, true
	case [6]byte(dstMAC) == broadcastMAC:
		h.Dst, derivable = Broadcast, true
	case dstMAC[0]&0x01 != 0: // group bit: multicast
		h.Dst = Broadcast
	default:
		return Header{}, nil, fmt.Errorf("compact: unicast to %s: %w", net.HardwareAddr(dstMAC), ErrNoRoute)
	}
	if derivable && [5]byte(srcMAC) == macPrefix && NodeID(srcMAC[5]) == self {
		h.Kind = KindData
		return h, eth[12:], nil
	}
	return h, eth, nil
}

// AppendEthernet appends to dst the Ethernet frame that a received link frame
// stands for and returns the extended slice. KindData rebuilds the header
// from the node ids (Broadcast becomes ff:ff:ff:ff:ff:ff) and needs at least
// the 2-byte EtherType; KindIPHC does the same and rebuilds the EtherType
// and IP headers (AppendIPHCData: ErrHeader when it cannot); KindEthernet
// appends the payload as it is and needs at least 14 bytes. Other kinds give
// ErrBadKind, bad node ids ErrBadAddr, short payloads ErrShort; on error dst
// is returned unchanged.
func AppendEthernet(dst []byte, h Header, payload []byte) ([]byte, error) {
	switch h.Kind {
	case KindData, KindIPHC:
		if !validAddr(h) {
			return dst, fmt.Errorf("append ethernet: dst %#02x src %#02x: %w", byte(h.Dst), byte(h.Src), ErrBadAddr)
		}
		if h.Kind == KindData && len(payload) < 2 {
			return dst, fmt.Errorf("append ethernet: %d-byte data payload: %w", len(payload), ErrShort)
		}
		n := len(dst)
		dst = append(dst, broadcastMAC[:]...)
		if h.Dst != Broadcast {
			putMAC(dst[n:], h.Dst)
		}
		dst = append(dst, macPrefix[:]...)
		dst = append(dst, byte(h.Src))
		if h.Kind == KindIPHC {
			out, err := AppendIPHCData(dst, payload)
			if err != nil {
				return dst[:n], fmt.Errorf("append ethernet: %w", err)
			}
			return out, nil
		}
		return append(dst, payload...), nil
	case KindEthernet:
		if len(payload) < EthHeaderLen {
			return dst, fmt.Errorf("append ethernet: %d-byte ethernet payload: %w", len(payload), ErrShort)
		}
		return append(dst, payload...), nil
	}
	return dst, fmt.Errorf("append ethernet: %v: %w", h.Kind, ErrBadKind)
}
