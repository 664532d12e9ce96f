package framing

import (
	"errors"
	"fmt"
)

// Link-control kinds: the payload layouts of the reserved kinds used by
// fragmentation, link ARQ (package mac/arq) and the authenticated envelope
// (package auth). docs/link-arq.md specifies them byte by byte.
const (
	// KindFragment carries one fragment of a packet: a 4-byte FragHeader
	// followed by the fragment's bytes. Unicast packets under ARQ travel as
	// fragments even when they fit one frame (Count 1): the header carries
	// the sequence number that acknowledgements and duplicate suppression
	// need.
	KindFragment Kind = 2
	// KindAck acknowledges the fragments of one packet: an Ack.
	KindAck Kind = 3
	// KindSealed is an authenticated envelope around another link frame's
	// kind and payload (see package auth).
	KindSealed Kind = 4
	// KindSigned is an authenticated envelope that leaves the inner kind
	// and payload readable (package auth, sign mode: amateur bands allow
	// no encryption).
	KindSigned Kind = 5
)

const (
	// FragHeaderLen is the size of a FragHeader on the wire.
	FragHeaderLen = 4
	// MaxFragments is the largest number of fragments of one packet: an
	// Ack's bitmap has one bit per fragment and at most 64 bits.
	MaxFragments = 64
	// AckMinLen and AckMaxLen bound the size of an Ack on the wire: seq,
	// count, then one bitmap byte per 8 fragments.
	AckMinLen = 3
	AckMaxLen = 2 + MaxFragments/8
	// MaxAckRecords and AcksMaxLen bound a version-2 Ack that reports
	// several packets (AppendAcks, ParseAcks): at most 16 records and 64
	// bytes in all (21 records of a one-fragment packet would fit the
	// bytes; the record count binds first for those).
	MaxAckRecords = 16
	AcksMaxLen    = 64
)

// ErrMalformed is wrapped by the link-control parsers when the input is long
// enough but a field is out of range (reserved bits set, index >= count,
// count 0 or above MaxFragments, bitmap bits beyond count, wrong length).
// Short input gives ErrShort.
var ErrMalformed = errors.New("malformed link-control payload")

// fragAckReq and fragFirst are the AckReq and First flags in FragHeader
// byte 0; bits 5..4 are reserved and must be zero, bits 3..0 are the inner
// kind.
const (
	fragAckReq   = 0x80
	fragFirst    = 0x40
	fragReserved = 0x30
)

// FragHeader is the 4-byte header in front of every KindFragment payload.
//
//	byte 0  bit 7 AckReq, bit 6 First, bits 5..4 zero, bits 3..0 Inner
//	byte 1  Seq
//	byte 2  Index
//	byte 3  Count
type FragHeader struct {
	// AckReq asks the receiver to answer with an Ack for Seq. The sender
	// sets it on the last fragment it sends in each round; it is never set
	// on broadcast.
	AckReq bool
	// First marks a packet that starts the sender's numbering towards this
	// receiver (the sender has just started, or has had no Ack from the
	// receiver yet): the receiver forgets what it delivered from the sender
	// before, so that a restarted sender's packets are not taken for
	// duplicates. Unicast only.
	First bool
	// Inner is the kind of the reassembled packet (KindData or
	// KindEthernet; any kind 0..15 is representable).
	Inner Kind
	// Seq numbers the packet within the (source, destination) pair; it
	// wraps at 256.
	Seq uint8
	// Index is this fragment's position, 0 <= Index < Count.
	Index uint8
	// Count is the number of fragments of the packet, 1..MaxFragments.
	Count uint8
}

func (f FragHeader) valid() bool {
	return f.Inner <= 15 && f.Count >= 1 && f.Count <= MaxFragments && f.Index < f.Count
}

// AppendFrag appends the 4-byte encoding of f to dst. It returns an error
// wrapping ErrMalformed, and dst unchanged, when f is out of range. It does
// not allocate when dst has FragHeaderLen bytes of room.
func AppendFrag(dst []byte, f FragHeader) ([]byte, error) {
	if !f.valid() {
		return dst, fmt.Errorf("append fragment header %+v: %w", f, ErrMalformed)
	}
	b0 := byte(f.Inner)
	if f.AckReq {
		b0 |= fragAckReq
	}
	if f.First {
		b0 |= fragFirst
	}
	return append(dst, b0, f.Seq, f.Index, f.Count), nil
}

// ParseFrag splits a KindFragment payload into its header and the fragment
// bytes (which alias p). An empty fragment body is allowed. It never
// allocates; errors wrap ErrShort or ErrMalformed.
func ParseFrag(p []byte) (FragHeader, []byte, error) {
	if len(p) < FragHeaderLen {
		return FragHeader{}, nil, errShortFrag
	}
	if p[0]&fragReserved != 0 {
		return FragHeader{}, nil, errFragReserved
	}
	f := FragHeader{
		AckReq: p[0]&fragAckReq != 0,
		First:  p[0]&fragFirst != 0,
		Inner:  Kind(p[0] & 0x0F),
		Seq:    p[1],
		Index:  p[2],
		Count:  p[3],
	}
	if !f.valid() {
		return FragHeader{}, nil, errFragRange
	}
	return f, p[FragHeaderLen:], nil
}

// Ack is the payload of a KindAck frame: which fragments of packet Seq (from
// the Ack's destination to its source) the receiver holds or has delivered.
//
//	byte 0        Seq
//	byte 1        Count (1..MaxFragments), copied from the fragments
//	bytes 2..     ceil(Count/8) bytes of bitmap, least significant byte
//	              first; bit i (byte i/8, bit i%8) set = fragment i received
//
// Bits at or above Count must be zero.
type Ack struct {
	Seq   uint8
	Count uint8
	// Have has bit i set when fragment i has arrived.
	Have uint64
	// More (version 2, the first record only; bit 7 of its Count byte):
	// the Ack's sender has data queued behind the Ack, so the node it
	// answers may keep the channel for it (link/turns.go).
	More bool
}

// Complete reports whether every fragment 0..Count-1 is acknowledged.
func (a Ack) Complete() bool { return a.Count >= 1 && a.Have == countMask(a.Count) }

// countMask is the bitmap with bits 0..n-1 set (n <= 64).
func countMask(n uint8) uint64 {
	if n >= 64 {
		return ^uint64(0)
	}
	return 1<<n - 1
}

func (a Ack) valid() bool {
	return a.Count >= 1 && a.Count <= MaxFragments && a.Have&^countMask(a.Count) == 0
}

// AckLen is the encoded size of an Ack for a packet of count fragments.
func AckLen(count uint8) int { return 2 + (int(count)+7)/8 }

// AppendAck appends the encoding of a to dst (AckLen(a.Count) bytes). It
// returns an error wrapping ErrMalformed, and dst unchanged, when a is out of
// range. It does not allocate when dst has AckMaxLen bytes of room.
func AppendAck(dst []byte, a Ack) ([]byte, error) {
	if !a.valid() || a.More {
		return dst, fmt.Errorf("append ack %+v: %w", a, ErrMalformed)
	}
	dst = append(dst, a.Seq, a.Count)
	for i := 0; i < (int(a.Count)+7)/8; i++ {
		dst = append(dst, byte(a.Have>>(8*i)))
	}
	return dst, nil
}

// ParseAck decodes a KindAck payload. The payload must be exactly
// AckLen(Count) bytes: fewer is ErrShort, more is ErrMalformed. It never allocates; errors wrap ErrShort or
// ErrMalformed.
func ParseAck(p []byte) (Ack, error) {
	if len(p) < AckMinLen {
		return Ack{}, errShortAck
	}
	a := Ack{Seq: p[0], Count: p[1]}
	if a.Count < 1 || a.Count > MaxFragments {
		return Ack{}, errAckRange
	}
	switch n := AckLen(a.Count); {
	case len(p) < n:
		return Ack{}, errShortBitmap
	case len(p) > n:
		return Ack{}, errAckLen
	}
	for i, b := range p[2:] {
		a.Have |= uint64(b) << (8 * i)
	}
	if !a.valid() {
		return Ack{}, errAckBits
	}
	return a, nil
}

// AppendAcks appends a version-2 Ack that reports several packets: the
// records of acks one after another, each encoded as AppendAck does
// (docs/frame-format.md, "Version 2"). One record is byte for byte a
// version-1 Ack. It returns an error wrapping ErrMalformed, and dst
// unchanged, for no record, more than MaxAckRecords, more than AcksMaxLen
// bytes, a record out of range, or two records for one Seq.
func AppendAcks(dst []byte, acks []Ack) ([]byte, error) {
	n := 0
	for i, a := range acks {
		if !a.valid() || a.More && i > 0 {
			return dst, fmt.Errorf("append acks: record %d %+v: %w", i, a, ErrMalformed)
		}
		for _, b := range acks[:i] {
			if b.Seq == a.Seq {
				return dst, fmt.Errorf("append acks: seq %d twice: %w", a.Seq, ErrMalformed)
			}
		}
		n += AckLen(a.Count)
	}
	if len(acks) == 0 || len(acks) > MaxAckRecords || n > AcksMaxLen {
		return dst, fmt.Errorf("append acks: %d records, %d bytes (1..%d, at most %d): %w", len(acks), n, MaxAckRecords, AcksMaxLen, ErrMalformed)
	}
	start := len(dst)
	for _, a := range acks {
		more := a.More
		a.More = false
		dst, _ = AppendAck(dst, a)
		if more {
			dst[start+1] |= AckMoreFlag
		}
	}
	return dst, nil
}

// AckMoreFlag is the More flag in the first record's Count byte (version 2).
const AckMoreFlag = 0x80

// ParseAcks decodes a KindAck payload of one or more records (version 2;
// ParseAck is the version-1 rule, exactly one) and appends them to dst.
// Every record must be whole and valid, with at most MaxAckRecords records
// and AcksMaxLen bytes, and no Seq twice; otherwise dst is returned
// unchanged with an error wrapping ErrShort (a record cut short) or
// ErrMalformed. It does not allocate when dst has MaxAckRecords of room.
func ParseAcks(dst []Ack, p []byte) ([]Ack, error) {
	if len(p) > AcksMaxLen {
		return dst, errAcksLen
	}
	n := len(dst)
	for len(p) > 0 {
		if len(dst)-n == MaxAckRecords {
			return dst[:n], errAcksLen
		}
		if len(p) < 2 {
			return dst[:n], errShortAck
		}
		c := p[1]
		more := len(dst) == n && c&AckMoreFlag != 0
		if more {
			c &^= AckMoreFlag
		}
		if c < 1 || c > MaxFragments {
			return dst[:n], errAckRange
		}
		l := AckLen(c)
		if len(p) < l {
			return dst[:n], errShortBitmap
		}
		a := Ack{Seq: p[0], Count: c, More: more}
		for i, b := range p[2:l] {
			a.Have |= uint64(b) << (8 * i)
		}
		if !a.valid() {
			return dst[:n], errAckBits
		}
		for _, b := range dst[n:] {
			if b.Seq == a.Seq {
				return dst[:n], errAcksTwice
			}
		}
		dst = append(dst, a)
		p = p[l:]
	}
	if len(dst) == n {
		return dst, errShortAck
	}
	return dst, nil
}

// Preformatted parse errors, so that rejecting hostile input costs no
// allocation.
var (
	errShortFrag    = fmt.Errorf("parse fragment: header needs %d bytes: %w", FragHeaderLen, ErrShort)
	errFragReserved = fmt.Errorf("parse fragment: reserved flag bits set: %w", ErrMalformed)
	errFragRange    = fmt.Errorf("parse fragment: count 0 or above %d, or index >= count: %w", MaxFragments, ErrMalformed)
	errShortAck     = fmt.Errorf("parse ack: needs at least %d bytes: %w", AckMinLen, ErrShort)
	errAckRange     = fmt.Errorf("parse ack: count 0 or above %d: %w", MaxFragments, ErrMalformed)
	errShortBitmap  = fmt.Errorf("parse ack: bitmap shorter than count: %w", ErrShort)
	errAckLen       = fmt.Errorf("parse ack: bytes after the bitmap: %w", ErrMalformed)
	errAckBits      = fmt.Errorf("parse ack: bitmap bits set beyond count: %w", ErrMalformed)
	errAcksLen      = fmt.Errorf("parse acks: more than %d records or %d bytes: %w", MaxAckRecords, AcksMaxLen, ErrMalformed)
	errAcksTwice    = fmt.Errorf("parse acks: two records for one seq: %w", ErrMalformed)
)
