// Package framing is the bytes on the wire between the MAC and a byte-stream
// modem: a link header with one-byte node ids, a CRC-32C trailer, COBS
// byte-stuffing with 0x00 delimiters, a streaming decoder that resynchronises
// after garbage, and the mapping between Ethernet frames and link frames.
//
// It is slided's own frame format only. Other wire formats live with the
// modem that speaks them: KISS, which carries these frames to a TNC, is
// phy/kiss/kissproto.
//
// Everything here is a pure function or a value owned by one goroutine; the
// package does no I/O and never panics on any input bytes. The format is
// specified byte by byte in docs/frame-format.md.
//
// An inner frame is
//
//	byte 0      version<<4 | kind   (high nibble: version 1 to 4, low nibble: Kind)
//	byte 1      destination NodeID
//	byte 2      source NodeID
//	bytes 3..   payload
//	last 4      CRC-32C (Castagnoli) of all preceding inner bytes, big-endian
//
// and on the byte stream it travels as 0x00 COBS(inner) 0x00.
package framing

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strconv"
)

// NodeID is a link address: one byte on air instead of a 6-byte MAC.
// 0x01..0xFE are nodes, Broadcast (0xFF) addresses every node and 0x00 is
// reserved (never valid as source or destination).
type NodeID uint8

// Broadcast is the destination that every node accepts. It is never a valid
// source.
const Broadcast NodeID = 0xFF

// Kind is the low nibble of the first inner byte: what the payload is.
type Kind uint8

const (
	// KindData is a compacted Ethernet frame: the payload is the EtherType
	// (2 bytes) followed by the Ethernet payload; both MAC addresses are
	// derived from the node ids (see MACFor).
	KindData Kind = 0
	// KindEthernet carries a whole Ethernet frame, 14-byte header included,
	// for frames whose MACs cannot be derived from node ids (multicast
	// destinations, foreign source MACs).
	KindEthernet Kind = 1
)

// Kinds 2 to 7 are link control and compressed headers (link.go, iphc.go);
// 8 to 15 are reserved. The decoder passes every kind through;
// AppendEthernet rejects those that carry no Ethernet frame with ErrBadKind.

// String names the kind for logs: "data", "ethernet" or "kind(N)".
func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindEthernet:
		return "ethernet"
	case KindFragment:
		return "fragment"
	case KindAck:
		return "ack"
	case KindSealed:
		return "sealed"
	case KindSigned:
		return "signed"
	case KindIPHC:
		return "iphc"
	case KindHello:
		return "hello"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Header is the decoded link header of one frame.
type Header struct {
	// Kind is the payload type, 0..15. Higher bits are not representable on
	// the wire: AppendFrame encodes only Kind & 0x0F.
	Kind Kind
	// Dst is the destination node (or Broadcast); Src the sending node.
	Dst, Src NodeID
	// Version is the format version in the high nibble of byte 0. 0 stands
	// for version 1, so that the zero Header is a version-1 header: the
	// decoder reports a version-1 frame with Version 0 and a version-2
	// frame with Version 2 (use Ver for the number).
	Version uint8
}

// Ver is h's format version as a number: 1 to MaxVersion (Version 0 is 1).
func (h Header) Ver() uint8 {
	if h.Version == 0 {
		return Version
	}
	return h.Version
}

// HeaderBytes is the 3-byte encoding of h: version<<4 | kind, dst, src.
// The envelope (package auth) authenticates these bytes and the capture
// records them.
func HeaderBytes(h Header) [HeaderLen]byte {
	return [HeaderLen]byte{h.Ver()<<4 | byte(h.Kind&0x0F), byte(h.Dst), byte(h.Src)}
}

const (
	// HeaderLen is the number of inner header bytes (version|kind, dst, src).
	HeaderLen = 3
	// CRCLen is the number of CRC-32C trailer bytes.
	CRCLen = 4
	// Version is the base format version carried in the high nibble of
	// byte 0; every node speaks it.
	Version = 1
	// Version2 is the format whose packets may travel as KindIPHC
	// (docs/frame-format.md, "Versions"); a node sends it only to a peer
	// it has heard speak it.
	Version2 = 2
	// Version3 is Version2 whose KindIPHC packets may carry compressed TCP
	// headers (docs/frame-format.md, "Versions"); a node sends it only to a
	// peer it has heard speak it.
	Version3 = 3
	// Version4 is Version3 whose KindIPHC packets may elide the UDP or TCP
	// checksum (the dispatch's CK bit; docs/frame-format.md, "Versions");
	// a node sends it only to a peer it has heard speak it.
	Version4 = 4
	// MaxVersion is the highest version this package decodes.
	MaxVersion = Version4
	// Overhead is the number of inner bytes a frame adds to its payload.
	Overhead = HeaderLen + CRCLen
)

// Sentinel errors; the functions of this package wrap them with %w, so test
// with errors.Is.
var (
	// ErrShort: an Ethernet frame or a link payload is too short for its kind.
	ErrShort = errors.New("frame too short")
	// ErrNoRoute: a unicast Ethernet destination that is no node's MAC.
	ErrNoRoute = errors.New("no link route to destination mac")
	// ErrBadKind: a reserved kind where an Ethernet frame was expected.
	ErrBadKind = errors.New("kind does not carry an ethernet frame")
	// ErrBadAddr: a node id that is not valid where it is used (0x00
	// anywhere, Broadcast as a source).
	ErrBadAddr = errors.New("invalid node id")
)

// castagnoli is built once; hash/crc32 uses the CPU's CRC-32C instruction
// where there is one (SSE4.2, ARMv8 CRC).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaxEncodedLen is the largest on-wire size of a frame with an n-byte payload
// (delimiters and COBS included): 2 + L + ceil(L/254) with L = n + 7. A
// payload whose inner frame has a 0x00 at least every 254 bytes encodes to
// 2 + L + 1. It returns 0 for negative n.
func MaxEncodedLen(n int) int {
	if n < 0 {
		return 0
	}
	l := n + Overhead
	return 2 + l + (l+253)/254
}

// MaxPayloadLen is the largest payload whose frame takes at most wire bytes
// on the wire (the inverse of MaxEncodedLen): what a modem that carries
// frames of wire bytes leaves for the link layer. It is negative when not
// even an empty frame fits.
func MaxPayloadLen(wire int) int {
	// MaxEncodedLen grows by one per payload byte, and by one more every
	// 254 bytes; start from the estimate and step down.
	n := wire - Overhead - 2 - (wire+253)/254
	for n > 0 && MaxEncodedLen(n+1) <= wire {
		n++
	}
	for n >= 0 && MaxEncodedLen(n) > wire {
		n--
	}
	return n
}

// AppendFrame appends the on-wire encoding of one frame (0x00 COBS(inner)
// 0x00) to dst and returns the extended slice. It does not allocate when
// cap(dst)-len(dst) >= MaxEncodedLen(len(payload)).
//
// AppendFrame does not validate h: it encodes h.Ver() & 0x0F, h.Kind & 0x0F
// and the node ids as given, so a frame with a 0x00 address or a Broadcast source is encoded
// but every decoder rejects it (BadAddr).
func AppendFrame(dst []byte, h Header, payload []byte) []byte {
	hdr := HeaderBytes(h)
	crc := crc32.Update(crcHeader(hdr), castagnoli, payload)
	var trailer [CRCLen]byte
	binary.BigEndian.PutUint32(trailer[:], crc)

	dst = append(dst, 0)
	var e cobsEncoder
	e.begin(dst)
	e.write(hdr[:])
	e.write(payload)
	e.write(trailer[:])
	dst = e.end()
	return append(dst, 0)
}

// crcHeader is the CRC-32C of the three header bytes. It is computed here
// rather than with crc32.Update, whose slice parameter escapes and would
// cost AppendFrame an allocation for its header array.
func crcHeader(hdr [HeaderLen]byte) uint32 {
	crc := ^uint32(0)
	for _, b := range hdr {
		crc = castagnoli[byte(crc)^b] ^ crc>>8
	}
	return ^crc
}

// validAddr reports whether h's addresses may appear on air: dst any id but
// 0x00, src a node id (neither 0x00 nor Broadcast).
func validAddr(h Header) bool {
	return h.Dst != 0 && h.Src != 0 && h.Src != Broadcast
}

// CountFrames counts the frames in b, a stream of encoded frames: its runs
// of non-zero bytes (COBS leaves no zero inside a frame, and 0x00 delimits
// them). It neither decodes nor allocates; whether each run is a good frame
// is the Decoder's to say. Modems use it to tell a burst of several frames
// from one.
func CountFrames(b []byte) int {
	n, in := 0, false
	for _, c := range b {
		if c != 0 && !in {
			n++
		}
		in = c != 0
	}
	return n
}
