package framing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Stateless IP header compression (in the spirit of RFC 6282): a KindIPHC
// payload stands for a KindData payload (EtherType + IP packet) whose IPv4
// or IPv6 header, and UDP or TCP header if any, carry fields that the
// receiver can derive from the frame itself: EtherType, IP version and
// header length, lengths (from the frame length), the IPv4 header checksum
// (recomputed), the protocol when it is UDP or TCP, TCP's data offset,
// reserved bits and unused urgent pointer, the padding of TCP's usual
// timestamp option. Nothing depends on earlier frames, so loss and restarts
// cannot make a receiver rebuild a wrong header.
//
//	byte 0  dispatch
//	        bit 7  CK (version 4; reserved, 0, before): 1 = the UDP (NH)
//	               or TCP (TC) checksum is elided: the receiver
//	               recomputes it (pseudo-header, UDP or TCP header, the
//	               rest); CK without NH or TC is malformed
//	        bit 6  0 IPv4, 1 IPv6
//	        bit 5  NH: 1 = UDP, its header compressed below; 0 = the
//	               protocol (IPv4) or next header (IPv6) byte is carried
//	               (unless TC) and the IP payload follows as it is
//	        bit 4  HL: 1 = TTL / hop limit 64, elided; 0 = carried
//	        bit 3  TF: IPv4: 1 = TOS carried, 0 = TOS 0. IPv6: 1 = bytes
//	               0..3 (version, traffic class, flow label) carried,
//	               0 = traffic class and flow label 0
//	        bit 2  DF (IPv4 only): 1 = flags and offset 0x4000, 0 = 0x0000
//	        bit 1  ID0 (IPv4 only): 1 = identification 0, elided
//	        bit 0  TC (version 3; reserved, 0, in version 2): 1 = TCP, its
//	               header compressed below (NH must be 0; the protocol
//	               byte is elided)
//	then, in this order, the fields that are carried:
//	        TOS (1) or bytes 0..3 (4), identification (2, IPv4, unless
//	        ID0), TTL / hop limit (1, unless HL), protocol / next header
//	        (1, unless NH or TC), source and destination address (4+4 or
//	        16+16), with NH the UDP source port, destination port and
//	        checksum (2+2+2, as they were: end-to-end integrity; the
//	        checksum elided with CK), with TC
//	        the compressed TCP header:
//	        control (1)
//	               bits 7..6  options: 00 none (data offset 5); 01
//	                          NOP, NOP, Timestamps (data offset 8: only
//	                          TSval and TSecr carried); 10 carried as
//	                          they are, their length in 4-byte words
//	                          (1..10) in the byte after the control; 11
//	                          reserved
//	               bit 5  FL: 1 = the whole flags byte (CWR ECE URG ACK
//	                          PSH RST SYN FIN) follows; 0 = CWR, ECE and
//	                          URG are 0 and bits 4..0 are ACK PSH RST SYN
//	                          FIN (with FL, bits 4..0 are 0)
//	        [options length (1)], [flags (1)], source and destination
//	        port (2+2), sequence number (4), acknowledgement number (4),
//	        window (2), checksum (2, as it was; elided with CK), urgent pointer (2, only
//	        with URG; 0 without), the options (8: TSval, TSecr; or the
//	        carried words). The data offset's reserved bits and AE are 0.
//	then the rest of the packet (the IP payload, or the UDP or TCP payload).
//
// AppendIPHC compresses only a packet that AppendIPHCData rebuilds byte for
// byte (it checks by rebuilding the headers); anything else (options, IPv4
// fragments, a wrong checksum or length, padding) travels as KindData.
// AppendIPHCData rebuilds TC and CK whatever the frame's version: the
// version only keeps them from nodes that would refuse them (the link sends
// TC only to peers that speak Version3, CK only to peers that speak
// Version4).
//
// CK elides a checksum only when the one the receiver computes equals the
// packet's field byte for byte (AppendIPHCVersion checks by rebuilding): a
// wrong checksum travels as it was, never corrected, and so does a UDP
// checksum of 0 (IPv4: none) or 0x0000 for a computed 0, which UDP sends as
// 0xFFFF (RFC 768; TCP has no such rule: it sends the computed value). The
// checksum still guards the payload end to end: it is the one the sender's
// stack computed, and the link's CRC-32C guards what it was recomputed over.

// KindIPHC and KindHello are the kinds of link version 2.
const (
	// KindIPHC is a KindData payload with its IP and UDP headers (and, in
	// Version3, TCP headers; in Version4, maybe without their checksum)
	// compressed (AppendIPHCVersion). It is sent
	// only to a peer that speaks Version2 or later, plain or as the inner
	// kind of fragments.
	KindIPHC Kind = 6
	// KindHello announces that the sender speaks versions up to the one in
	// its payload's byte 0 (one byte; more bytes are ignored). It travels as
	// a version-1 frame so that a version-1 node ignores it as a reserved
	// kind (docs/frame-format.md, "Versions").
	KindHello Kind = 7
)

// Dispatch byte bits.
const (
	iphcCK  = 0x80
	iphcV6  = 0x40
	iphcNH  = 0x20
	iphcHL  = 0x10
	iphcTF  = 0x08
	iphcDF  = 0x04
	iphcID0 = 0x02
	iphcTC  = 0x01

	// TCP control byte (with iphcTC).
	tcpOpt     = 0xC0 // options form
	tcpOptNone = 0x00
	tcpOptTS   = 0x40
	tcpOptRaw  = 0x80
	tcpFL      = 0x20 // the flags byte is carried
	tcpFlags5  = 0x1F // ACK PSH RST SYN FIN, when not FL
	tcpURG     = 0x20 // in TCP's flags byte

	etherIPv4 = 0x0800
	etherIPv6 = 0x86DD
	protoTCP  = 6
	protoUDP  = 17
	udpLen    = 8
	tcpLen    = 20 // without options
	tcpMaxLen = 60
	// maxIPHCHeader is the longest rebuilt header: EtherType, IPv6, TCP
	// with 40 bytes of options.
	maxIPHCHeader = 2 + 40 + tcpMaxLen
)

// tsOption is the option layout that tcpOptTS stands for: NOP, NOP,
// Timestamps (kind 8, length 10), as Linux and the BSDs send it.
var tsOption = [4]byte{1, 1, 8, 10}

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
	errIPHCTCP   = fmt.Errorf("iphc: reserved tcp control bits or options length: %w", ErrHeader)
)

// IPHCLen is the length of the compressed headers that p (a KindIPHC
// payload) starts with, or an error when p's dispatch is malformed or p is
// shorter than the headers it announces.
func IPHCLen(p []byte) (int, error) {
	n, _, err := iphcLen(p)
	return n, err
}

// iphcLen is IPHCLen and the length of the TCP header that p stands for
// (0 without TC).
func iphcLen(p []byte) (n, tcpHdr int, err error) {
	if len(p) < 1 {
		return 0, 0, errIPHCShort
	}
	d := p[0]
	n = 1
	addr := 4
	if d&iphcV6 == 0 {
		if d&iphcTF != 0 {
			n++
		}
		if d&iphcID0 == 0 {
			n += 2
		}
	} else {
		if d&(iphcDF|iphcID0) != 0 {
			return 0, 0, errIPHCBits
		}
		if d&iphcTF != 0 {
			n += 4
		}
		addr = 16
	}
	if d&(iphcNH|iphcTC) == iphcNH|iphcTC || d&(iphcCK|iphcNH|iphcTC) == iphcCK {
		return 0, 0, errIPHCBits
	}
	if d&iphcHL == 0 {
		n++
	}
	if d&(iphcNH|iphcTC) == 0 {
		n++
	}
	n += 2 * addr
	if d&iphcNH != 0 {
		n += 6
		if d&iphcCK != 0 {
			n -= 2
		}
	}
	if d&iphcTC != 0 {
		if len(p) < n+1 {
			return 0, 0, errIPHCShort
		}
		ctl := p[n]
		n++
		olen := 0
		switch ctl & tcpOpt {
		case tcpOptTS:
			olen = 12
		case tcpOptRaw:
			if len(p) < n+1 {
				return 0, 0, errIPHCShort
			}
			w := int(p[n])
			n++
			if w < 1 || w > (tcpMaxLen-tcpLen)/4 {
				return 0, 0, errIPHCTCP
			}
			olen = 4 * w
		case tcpOptNone:
		default:
			return 0, 0, errIPHCTCP
		}
		flags := ctl & tcpFlags5
		if ctl&tcpFL != 0 {
			if flags != 0 {
				return 0, 0, errIPHCTCP
			}
			if len(p) < n+1 {
				return 0, 0, errIPHCShort
			}
			flags = p[n]
			n++
		}
		n += 4 + 4 + 4 + 2 + 2 // ports, sequence, acknowledgement, window, checksum
		if d&iphcCK != 0 {
			n -= 2
		}
		if flags&tcpURG != 0 {
			n += 2
		}
		n += olen
		if ctl&tcpOpt == tcpOptTS {
			n -= len(tsOption)
		}
		tcpHdr = tcpLen + olen
	}
	if len(p) < n {
		return 0, 0, errIPHCShort
	}
	return n, tcpHdr, nil
}

// rebuild writes into hdr the EtherType, IP header and UDP or TCP header
// that the KindIPHC payload p stands for; it returns their length and the
// rest of p (the bytes that follow them in the packet, aliasing p).
func rebuild(hdr *[maxIPHCHeader]byte, p []byte) (int, []byte, error) {
	clen, tcpHdr, err := iphcLen(p)
	if err != nil {
		return 0, nil, err
	}
	d := p[0]
	c := p[1:clen]
	rest := p[clen:]
	take := func(n int) []byte { b := c[:n]; c = c[n:]; return b }
	h := hdr[:]
	l4 := 0 // the UDP or TCP header's length
	proto := byte(0)
	switch {
	case d&iphcNH != 0:
		l4, proto = udpLen, protoUDP
	case d&iphcTC != 0:
		l4, proto = tcpHdr, protoTCP
	}
	var n int
	var addrs []byte // source and destination address, for the pseudo-header
	if d&iphcV6 == 0 {
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
		ip[9] = proto
		if l4 == 0 {
			ip[9] = take(1)[0]
		}
		copy(ip[12:20], take(8))
		addrs = ip[12:20]
		n = 22
		total := 20 + l4 + len(rest)
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
		ip[6] = proto
		if l4 == 0 {
			ip[6] = take(1)[0]
		}
		ip[7] = 64
		if d&iphcHL == 0 {
			ip[7] = take(1)[0]
		}
		copy(ip[8:40], take(32))
		addrs = ip[8:40]
		n = 42
		plen := l4 + len(rest)
		if plen > 0xFFFF {
			return 0, nil, errIPHCLen
		}
		binary.BigEndian.PutUint16(ip[4:], uint16(plen))
	}
	switch proto {
	case protoUDP:
		u := h[n : n+udpLen]
		ports := take(4)
		copy(u[0:4], ports)
		binary.BigEndian.PutUint16(u[4:], uint16(udpLen+len(rest)))
		if d&iphcCK != 0 {
			binary.BigEndian.PutUint16(u[6:], l4Checksum(addrs, protoUDP, u, 6, rest))
		} else {
			copy(u[6:8], take(2))
		}
	case protoTCP:
		t := h[n : n+l4]
		clear(t)
		ctl := take(1)[0]
		if ctl&tcpOpt == tcpOptRaw {
			take(1) // the options' length, in l4 already
		}
		flags := ctl & tcpFlags5
		if ctl&tcpFL != 0 {
			flags = take(1)[0]
		}
		copy(t[0:12], take(12)) // ports, sequence, acknowledgement
		t[12] = byte(l4/4) << 4
		t[13] = flags
		copy(t[14:16], take(2)) // window
		if d&iphcCK == 0 {
			copy(t[16:18], take(2)) // checksum
		}
		if flags&tcpURG != 0 {
			copy(t[18:20], take(2))
		}
		switch ctl & tcpOpt {
		case tcpOptTS:
			copy(t[20:24], tsOption[:])
			copy(t[24:32], take(8))
		case tcpOptRaw:
			copy(t[20:], take(l4-tcpLen))
		}
		if d&iphcCK != 0 {
			binary.BigEndian.PutUint16(t[16:], l4Checksum(addrs, protoTCP, t, 16, rest))
		}
	}
	return n + l4, rest, nil
}

// IPv4HeaderChecksum is the value of the checksum field of the IPv4 header
// h, whose checksum field is zero (RFC 791: the ones' complement of the
// ones' complement sum of its 16-bit words).
func IPv4HeaderChecksum(h []byte) uint16 { return ^checksum(h) }

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

// UDPChecksum is the checksum field of the UDP datagram udp (header and
// payload; its checksum field is ignored) sent between the addresses addrs
// (source then destination, IPv4 or IPv6), as a kernel sets it: a computed
// 0 goes as 0xFFFF. udp must hold at least the 8-byte header.
func UDPChecksum(addrs, udp []byte) uint16 { return l4Checksum(addrs, protoUDP, udp[:8], 6, udp[8:]) }

// l4Checksum is the UDP or TCP checksum (RFC 768, RFC 9293) of the
// segment whose header is hdr (its checksum field at off, ignored) and
// whose payload is rest, sent between the addresses addrs (source and
// destination, IPv4 or IPv6: the pseudo-headers of both sum the same
// words: the addresses, the protocol and the length). UDP sends a
// computed 0 as 0xFFFF.
func l4Checksum(addrs []byte, proto byte, hdr []byte, off int, rest []byte) uint16 {
	s := sum(uint64(proto)+uint64(len(hdr)+len(rest)), addrs)
	s = sum(s, hdr[:off])
	s = sum(s, hdr[off+2:])
	s = sum(s, rest)
	for s > 0xFFFF {
		s = s>>16 + s&0xFFFF
	}
	c := ^uint16(s)
	if c == 0 && proto == protoUDP {
		c = 0xFFFF
	}
	return c
}

// sum adds b's 16-bit big-endian words (an odd last byte padded with a
// zero) to s, unfolded. s stays far from overflow for any b under 2^47
// bytes.
func sum(s uint64, b []byte) uint64 {
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

// AppendIPHCData appends to dst the KindData payload (EtherType + IP
// packet) that the KindIPHC payload p stands for. On error (wrapping
// ErrShort or ErrHeader) dst is returned unchanged. It never allocates when
// dst has room for len(p) + 101 bytes.
func AppendIPHCData(dst, p []byte) ([]byte, error) {
	var hdr [maxIPHCHeader]byte
	n, rest, err := rebuild(&hdr, p)
	if err != nil {
		return dst, err
	}
	dst = append(dst, hdr[:n]...)
	return append(dst, rest...), nil
}

// AppendIPHC appends to dst the version-2 KindIPHC payload for the
// KindData payload data (EtherType + IP packet): AppendIPHCVersion with
// Version2, which leaves TCP headers as they are.
func AppendIPHC(dst, data []byte) ([]byte, bool) {
	return AppendIPHCVersion(dst, data, Version2)
}

// AppendIPHCVersion appends to dst the KindIPHC payload for the KindData
// payload data (EtherType + IP packet) and reports true, when data is IPv4
// or IPv6 that AppendIPHCData rebuilds exactly; otherwise it returns dst
// unchanged and false (send data as KindData). With version Version3 or
// later it compresses TCP headers too (TC); a TCP header it cannot
// compress exactly leaves the packet in the version-2 form. With Version4
// or later it elides the UDP or TCP checksum (CK) when the receiver's
// recomputed one equals it byte for byte. It never allocates when dst has
// room for len(data) bytes.
func AppendIPHCVersion(dst, data []byte, version uint8) ([]byte, bool) {
	ck := version >= Version4
	if version >= Version3 {
		if c, ok := appendIPHC(dst, data, true, ck); ok {
			return c, true
		}
	}
	return appendIPHC(dst, data, false, ck)
}

// appendIPHC is AppendIPHCVersion, with TCP's header compressed if tcp and
// the checksum elided where it can be if ck.
func appendIPHC(dst, data []byte, tcp, ck bool) ([]byte, bool) {
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
	l4 := ip[ipLen:]
	tcpHdr := 0
	switch {
	case nh == protoUDP && len(l4) >= udpLen && int(binary.BigEndian.Uint16(l4[4:])) == len(l4):
		d |= iphcNH
	case tcp && nh == protoTCP && len(l4) >= tcpLen:
		tcpHdr = int(l4[12]>>4) * 4
		if tcpHdr < tcpLen || len(l4) < tcpHdr {
			return dst, false
		}
		d |= iphcTC
	case tcp:
		return dst, false // the version-2 form does as well
	}
	if ck {
		var addrs []byte
		if d&iphcV6 == 0 {
			addrs = ip[12:20]
		} else {
			addrs = ip[8:40]
		}
		switch {
		case d&iphcNH != 0 && l4Checksum(addrs, protoUDP, l4[:udpLen], 6, l4[udpLen:]) == binary.BigEndian.Uint16(l4[6:]):
			d |= iphcCK
		case d&iphcTC != 0 && l4Checksum(addrs, protoTCP, l4[:tcpHdr], 16, l4[tcpHdr:]) == binary.BigEndian.Uint16(l4[16:]):
			d |= iphcCK
		}
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
		if d&(iphcNH|iphcTC) == 0 {
			dst = append(dst, ip[9])
		}
		dst = append(dst, ip[12:20]...)
	} else {
		if d&iphcTF != 0 {
			dst = append(dst, ip[0:4]...)
		}
		if d&(iphcNH|iphcTC) == 0 {
			dst = append(dst, ip[6])
		}
		if d&iphcHL == 0 {
			dst = append(dst, ip[7])
		}
		dst = append(dst, ip[8:40]...)
	}
	hlen := 2 + ipLen // rebuilt header bytes
	switch {
	case d&iphcNH != 0:
		dst = append(dst, l4[0], l4[1], l4[2], l4[3])
		if d&iphcCK == 0 {
			dst = append(dst, l4[6], l4[7])
		}
		hlen += udpLen
	case d&iphcTC != 0:
		dst = appendTCP(dst, l4[:tcpHdr], d&iphcCK != 0)
		hlen += tcpHdr
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

// appendTCP appends the compressed form of the TCP header t (its length
// from its data offset); what it cannot express (reserved bits, an urgent
// pointer without URG) the caller's rebuilding check refuses. elide leaves
// out the checksum (CK).
func appendTCP(dst, t []byte, elide bool) []byte {
	opts := t[tcpLen:]
	var ctl byte
	switch {
	case len(opts) == 0:
		ctl = tcpOptNone
	case len(opts) == 12 && [4]byte(opts[:4]) == tsOption:
		ctl = tcpOptTS
	default:
		ctl = tcpOptRaw
	}
	flags := t[13]
	if flags&^tcpFlags5 == 0 {
		ctl |= flags
	} else {
		ctl |= tcpFL
	}
	dst = append(dst, ctl)
	if ctl&tcpOpt == tcpOptRaw {
		dst = append(dst, byte(len(opts)/4))
	}
	if ctl&tcpFL != 0 {
		dst = append(dst, flags)
	}
	dst = append(dst, t[0:12]...)  // ports, sequence, acknowledgement
	dst = append(dst, t[14:16]...) // window
	if !elide {
		dst = append(dst, t[16:18]...) // checksum
	}
	if flags&tcpURG != 0 {
		dst = append(dst, t[18:20]...)
	}
	if ctl&tcpOpt == tcpOptTS {
		return append(dst, opts[4:]...)
	}
	return append(dst, opts...)
}
