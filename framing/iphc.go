package framing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Stateless IP header compression (in the spirit of RFC 6282): a KindIPHC
// payload stands for a KindData payload (EtherType + IP packet) whose IPv4
// or IPv6 header, and UDP header if any, carry fields that the receiver can
// derive from the frame itself: EtherType, IP version and header length,
// lengths (from the frame length), the IPv4 header checksum (recomputed),
// the protocol when it is UDP. Nothing depends on earlier frames, so loss
// and restarts cannot make a receiver rebuild a wrong header.
//
//	byte 0  dispatch
//	        bits 7..6  00 IPv4, 01 IPv6 (1x reserved)
//	        bit 5  NH: 1 = UDP, its header compressed below; 0 = the
//	               protocol (IPv4) or next header (IPv6) byte is carried
//	               and the IP payload follows as it is
//	        bit 4  HL: 1 = TTL / hop limit 64, elided; 0 = carried
//	        bit 3  TF: IPv4: 1 = TOS carried, 0 = TOS 0. IPv6: 1 = bytes
//	               0..3 (version, traffic class, flow label) carried,
//	               0 = traffic class and flow label 0
//	        bit 2  DF (IPv4 only): 1 = flags and offset 0x4000, 0 = 0x0000
//	        bit 1  ID0 (IPv4 only): 1 = identification 0, elided
//	        bit 0  reserved, 0
//	then, in this order, the fields that are carried:
//	        TOS (1) or bytes 0..3 (4), identification (2, IPv4, unless
//	        ID0), TTL / hop limit (1, unless HL), protocol / next header
//	        (1, unless NH), source and destination address (4+4 or
//	        16+16), and with NH the UDP source port, destination port and
//	        checksum (2+2+2, as they were: end-to-end integrity)
//	then the rest of the packet (the IP payload, or the UDP payload).
//
// AppendIPHC compresses only a packet that AppendIPHCData rebuilds byte for
// byte (it checks by rebuilding the headers); anything else (options, IPv4
// fragments, a wrong checksum or length, padding) travels as KindData.

// KindIPHC and KindHello are the kinds of link version 2.
const (
	// KindIPHC is a KindData payload with its IP and UDP headers
	// compressed (AppendIPHC). It is sent only to a peer that speaks
	// Version2, plain or as the inner kind of fragments.
	KindIPHC Kind = 6
	// KindHello announces that the sender speaks versions up to the one in
	// its payload's byte 0 (one byte; more bytes are ignored). It travels as
	// a version-1 frame so that a version-1 node ignores it as a reserved
	// kind (docs/frame-format.md, "Versions").
	KindHello Kind = 7
)

// Dispatch byte bits.
const (
	iphcV6   = 0x40
	iphcVer  = 0xC0
	iphcNH   = 0x20
	iphcHL   = 0x10
	iphcTF   = 0x08
	iphcDF   = 0x04
	iphcID0  = 0x02
	iphcRsvd = 0x01

	etherIPv4 = 0x0800
	etherIPv6 = 0x86DD
	protoUDP  = 17
	udpLen    = 8
	// maxIPHCHeader is the longest rebuilt header: EtherType, IPv6, UDP.
	maxIPHCHeader = 2 + 40 + udpLen
)

// ErrHeader is wrapped by AppendIPHCData (and AppendEthernet for KindIPHC)
// when a compressed header cannot be rebuilt: reserved bits, IPv6 with IPv4
// flags, carried bytes that contradict the format, a length beyond 65535.
// Short input gives ErrShort.
var ErrHeader = errors.New("compressed header cannot be rebuilt")

var (
	errIPHCShort = fmt.Errorf("iphc: payload shorter than its header: %w", ErrShort)
	errIPHCBits  = fmt.Errorf("iphc: reserved dispatch bits: %w", ErrHeader)
	errIPHCTF    = fmt.Errorf("iphc: carried ipv6 bytes 0..3 without version 6: %w", ErrHeader)
	errIPHCLen   = fmt.Errorf("iphc: packet longer than 65535 bytes: %w", ErrHeader)
)

// IPHCLen is the length of the compressed headers that p (a KindIPHC
// payload) starts with, or an error when p's dispatch is malformed or p is
// shorter than the headers it announces.
func IPHCLen(p []byte) (int, error) {
	if len(p) < 1 {
		return 0, errIPHCShort
	}
	d := p[0]
	n := 1
	addr := 4
	switch d & iphcVer {
	case 0:
		if d&iphcTF != 0 {
			n++
		}
		if d&iphcID0 == 0 {
			n += 2
		}
	case iphcV6:
		if d&(iphcDF|iphcID0) != 0 {
			return 0, errIPHCBits
		}
		if d&iphcTF != 0 {
			n += 4
		}
		addr = 16
	default:
		return 0, errIPHCBits
	}
	if d&iphcRsvd != 0 {
		return 0, errIPHCBits
	}
	if d&iphcHL == 0 {
		n++
	}
	if d&iphcNH == 0 {
		n++
	}
	n += 2 * addr
	if d&iphcNH != 0 {
		n += 6
	}
	if len(p) < n {
		return 0, errIPHCShort
	}
	return n, nil
}

// rebuild writes into hdr the EtherType, IP header and UDP header that the
// KindIPHC payload p stands for; it returns their length and the rest of p
// (the bytes that follow them in the packet, aliasing p).
func rebuild(hdr *[maxIPHCHeader]byte, p []byte) (int, []byte, error) {
	clen, err := IPHCLen(p)
	if err != nil {
		return 0, nil, err
	}
	d := p[0]
	c := p[1:clen]
	rest := p[clen:]
	take := func(n int) []byte { b := c[:n]; c = c[n:]; return b }
	h := hdr[:]
	var n int
	if d&iphcVer == 0 {
		binary.BigEndian.PutUint16(h, etherIPv4)
		ip := h[2:22]
		clear(ip)
		ip[0] = 0x45
		if d&iphcTF != 0 {
			ip[1] = take(1)[0]
		}
		if d&iphcID0 == 0 {
			copy(ip[4:6], take(2))
		}
		if d&iphcDF != 0 {
			ip[6] = 0x40
		}
		ip[8] = 64
		if d&iphcHL == 0 {
			ip[8] = take(1)[0]
		}
		ip[9] = protoUDP
		if d&iphcNH == 0 {
			ip[9] = take(1)[0]
		}
		copy(ip[12:20], take(8))
		n = 22
		total := 20 + len(rest)
		if d&iphcNH != 0 {
			total += udpLen
		}
		if total > 0xFFFF {
			return 0, nil, errIPHCLen
		}
		binary.BigEndian.PutUint16(ip[2:], uint16(total))
		binary.BigEndian.PutUint16(ip[10:], ^checksum(ip))
	} else {
		binary.BigEndian.PutUint16(h, etherIPv6)
		ip := h[2:42]
		clear(ip)
		ip[0] = 0x60
		if d&iphcTF != 0 {
			copy(ip[0:4], take(4))
			if ip[0]>>4 != 6 {
				return 0, nil, errIPHCTF
			}
		}
		ip[6] = protoUDP
		if d&iphcNH == 0 {
			ip[6] = take(1)[0]
		}
		ip[7] = 64
		if d&iphcHL == 0 {
			ip[7] = take(1)[0]
		}
		copy(ip[8:40], take(32))
		n = 42
		plen := len(rest)
		if d&iphcNH != 0 {
			plen += udpLen
		}
		if plen > 0xFFFF {
			return 0, nil, errIPHCLen
		}
		binary.BigEndian.PutUint16(ip[4:], uint16(plen))
	}
	if d&iphcNH != 0 {
		u := h[n : n+udpLen]
		ports := take(4)
		copy(u[0:4], ports)
		binary.BigEndian.PutUint16(u[4:], uint16(udpLen+len(rest)))
		copy(u[6:8], take(2))
		n += udpLen
	}
	return n, rest, nil
}

// checksum is the ones' complement sum of b (even length) folded to 16 bits.
func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s > 0xFFFF {
		s = s>>16 + s&0xFFFF
	}
	return uint16(s)
}

// AppendIPHCData appends to dst the KindData payload (EtherType + IP
// packet) that the KindIPHC payload p stands for. On error (wrapping
// ErrShort or ErrHeader) dst is returned unchanged. It never allocates when
// dst has room for len(p) + 50 bytes.
func AppendIPHCData(dst, p []byte) ([]byte, error) {
	var hdr [maxIPHCHeader]byte
	n, rest, err := rebuild(&hdr, p)
	if err != nil {
		return dst, err
	}
	dst = append(dst, hdr[:n]...)
	return append(dst, rest...), nil
}

// AppendIPHC appends to dst the KindIPHC payload for the KindData payload
// data (EtherType + IP packet) and reports true, when data is IPv4 or IPv6
// that AppendIPHCData rebuilds exactly; otherwise it returns dst unchanged
// and false (send data as KindData). It never allocates when dst has room
// for len(data) bytes.
func AppendIPHC(dst, data []byte) ([]byte, bool) {
	if len(data) < 2 {
		return dst, false
	}
	start := len(dst)
	var d byte
	var ipLen int // IP header length
	var nh byte
	ip := data[2:]
	switch binary.BigEndian.Uint16(data) {
	case etherIPv4:
		if len(ip) < 20 || ip[0] != 0x45 {
			return dst, false
		}
		ipLen, nh = 20, ip[9]
		if ip[1] != 0 {
			d |= iphcTF
		}
		if ip[4] == 0 && ip[5] == 0 {
			d |= iphcID0
		}
		if ip[6] == 0x40 {
			d |= iphcDF
		}
		if ip[8] == 64 {
			d |= iphcHL
		}
	case etherIPv6:
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return dst, false
		}
		d |= iphcV6
		ipLen, nh = 40, ip[6]
		if ip[0] != 0x60 || ip[1] != 0 || ip[2] != 0 || ip[3] != 0 {
			d |= iphcTF
		}
		if ip[7] == 64 {
			d |= iphcHL
		}
	default:
		return dst, false
	}
	if nh == protoUDP && len(ip) >= ipLen+udpLen && int(binary.BigEndian.Uint16(ip[ipLen+4:])) == len(ip)-ipLen {
		d |= iphcNH
	}
	dst = append(dst, d)
	if d&iphcV6 == 0 {
		if d&iphcTF != 0 {
			dst = append(dst, ip[1])
		}
		if d&iphcID0 == 0 {
			dst = append(dst, ip[4], ip[5])
		}
		if d&iphcHL == 0 {
			dst = append(dst, ip[8])
		}
		if d&iphcNH == 0 {
			dst = append(dst, ip[9])
		}
		dst = append(dst, ip[12:20]...)
	} else {
		if d&iphcTF != 0 {
			dst = append(dst, ip[0:4]...)
		}
		if d&iphcNH == 0 {
			dst = append(dst, ip[6])
		}
		if d&iphcHL == 0 {
			dst = append(dst, ip[7])
		}
		dst = append(dst, ip[8:40]...)
	}
	hlen := 2 + ipLen // rebuilt header bytes
	if d&iphcNH != 0 {
		u := ip[ipLen:]
		dst = append(dst, u[0], u[1], u[2], u[3], u[6], u[7])
		hlen += udpLen
	}
	dst = append(dst, data[hlen:]...)
	// Exactly what the receiver will rebuild, or nothing.
	var hdr [maxIPHCHeader]byte
	n, rest, err := rebuild(&hdr, dst[start:])
	if err != nil || n != hlen || !bytes.Equal(hdr[:n], data[:hlen]) || len(rest) != len(data)-hlen {
		return dst[:start], false
	}
	return dst, true
}
