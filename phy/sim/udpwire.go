package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"net/netip"
	"time"

	"github.com/slided/slided/auth"
)

// The UDP transport's wire format, version 2 (docs/simulator.md, "Across
// machines (UDP)"): the stream protocol's messages, one per datagram, with
// the length field equal to the message's size minus 2, followed by an
// authentication trailer when the medium has a key. Transmit and tx done
// carry a sequence number so that a late or lost one is told apart.
//
// Version 2 added the cookie exchange (a medium sends nothing but a cookie,
// no larger than the hello, to an address that has not echoed one) and
// member authentication with a pre-shared key.

// udpVersion is the UDP protocol version carried in hello and welcome.
const udpVersion = 2

// Message types used over UDP only.
const (
	msgUTransmit msgType = 9  // client → server: seq u16, burst
	msgUTxDone   msgType = 10 // server → client: seq u16 of the transmit done
	msgState     msgType = 12 // server → client, answering a ping: carrier u8 (0/1), seq u16 of the last transmit done
	msgBye       msgType = 13 // client → server: detach me now, empty
	msgCookie    msgType = 15 // server → client: the hello's nonce, a cookie to echo
)

// Error codes used over UDP only.
const (
	// codeGone: the server ended the session (stopping, or the client fell
	// silent); the client reconnects.
	codeGone = 6
	// codeKey: the client and the medium disagree about the key (one has
	// none, or the hello's tag is wrong).
	codeKey = 7
)

const (
	nonceLen  = 16
	cookieLen = 16
	tagLen    = 16
	// trailerLen: counter u64 BE and tag, after the message, with a key.
	trailerLen = 8 + tagLen
	// udpHelloLen: magic, version, node, client nonce, cookie.
	udpHelloLen = len(protoMagic) + 2 + nonceLen + cookieLen
	// udpWelcomeLen: version, bit rate, max frame, server nonce.
	udpWelcomeLen = welcomeLen + nonceLen
	// cookieBodyLen: the hello's nonce, the cookie.
	cookieBodyLen = nonceLen + cookieLen
)

// maxDatagram is the largest datagram of the UDP protocol: a transmit of
// MaxFrame bytes with a trailer.
const maxDatagram = 2 + 1 + 2 + MaxFrame + trailerLen

// datagram is one decoded UDP message. Data, raw and trailer alias the
// decoder's input.
type datagram struct {
	message
	seq     uint16 // utransmit, utxdone, state
	carrier bool   // state
	old     bool   // hello: the 6-byte body of UDP version 1 (an old client)
	nonce   [nonceLen]byte
	cookie  [cookieLen]byte
	raw     []byte // the message, trailer excluded
	trailer []byte // empty, or trailerLen bytes
}

// parseDatagram decodes one whole datagram. Anything malformed, including a
// length field that does not leave exactly nothing or a trailer after the
// message, gives an error wrapping errBadMessage. It never panics. It does
// not check the trailer (udpAuth does).
func parseDatagram(b []byte) (datagram, error) {
	if len(b) < 3 {
		return datagram{}, fmt.Errorf("%w: %d-byte datagram", errBadMessage, len(b))
	}
	n := int(b[0])<<8 | int(b[1])
	if n < 1 || 2+n > len(b) || (len(b)-2-n != 0 && len(b)-2-n != trailerLen) {
		return datagram{}, fmt.Errorf("%w: length %d in a %d-byte datagram", errBadMessage, n, len(b))
	}
	d := datagram{raw: b[:2+n], trailer: b[2+n:]}
	t, body := msgType(b[2]), b[3:2+n]
	switch t {
	case msgHello:
		switch {
		case len(body) < len(protoMagic) || string(body[:len(protoMagic)]) != protoMagic:
			return datagram{}, fmt.Errorf("%w: hello", errBadMessage)
		case len(body) == helloLen:
			d.old = true
		case len(body) != udpHelloLen:
			return datagram{}, fmt.Errorf("%w: hello of %d bytes", errBadMessage, len(body))
		default:
			copy(d.nonce[:], body[6:])
			copy(d.cookie[:], body[6+nonceLen:])
		}
		d.version, d.node = body[4], body[5]
	case msgWelcome:
		if len(body) != udpWelcomeLen {
			return datagram{}, fmt.Errorf("%w: welcome", errBadMessage)
		}
		m, err := parseBody(t, body[:welcomeLen])
		if err != nil {
			return datagram{}, err
		}
		d.message = m
		copy(d.nonce[:], body[welcomeLen:])
	case msgCookie:
		if len(body) != cookieBodyLen {
			return datagram{}, fmt.Errorf("%w: cookie", errBadMessage)
		}
		copy(d.nonce[:], body)
		copy(d.cookie[:], body[nonceLen:])
	case msgReceived, msgCarrierOn, msgCarrierOff, msgError:
		if len(body) > maxBody {
			return datagram{}, fmt.Errorf("%w: length %d", errBadMessage, n)
		}
		m, err := parseBody(t, body)
		if err != nil {
			return datagram{}, err
		}
		d.message = m
	case msgUTransmit:
		if len(body) < 3 || len(body) > 2+MaxFrame {
			return datagram{}, fmt.Errorf("%w: transmit of %d bytes", errBadMessage, len(body)-2)
		}
		d.seq, d.data = uint16(body[0])<<8|uint16(body[1]), body[2:]
	case msgUTxDone:
		if len(body) != 2 {
			return datagram{}, fmt.Errorf("%w: tx done", errBadMessage)
		}
		d.seq = uint16(body[0])<<8 | uint16(body[1])
	case msgState:
		if len(body) != 3 || body[0] > 1 {
			return datagram{}, fmt.Errorf("%w: state", errBadMessage)
		}
		d.carrier, d.seq = body[0] == 1, uint16(body[1])<<8|uint16(body[2])
	case msgPing, msgBye:
		if len(body) != 0 {
			return datagram{}, fmt.Errorf("%w: type %d with a body", errBadMessage, t)
		}
	default:
		// Transmit (3) and tx done (7) are stream-only: UDP has them
		// with a sequence number; pong (14) is stream-only.
		return datagram{}, fmt.Errorf("%w: type %d over UDP", errBadMessage, t)
	}
	d.typ = t
	return d, nil
}

// appendDatagram appends the encoding of d's message (no trailer) to dst.
func appendDatagram(dst []byte, d *datagram) []byte {
	switch d.typ {
	case msgHello:
		if d.old {
			return appendMessage(dst, &d.message)
		}
		dst = append(dst, 0, byte(1+udpHelloLen), byte(msgHello))
		dst = append(dst, protoMagic...)
		dst = append(dst, d.version, d.node)
		dst = append(dst, d.nonce[:]...)
		return append(dst, d.cookie[:]...)
	case msgWelcome:
		dst = append(dst, 0, byte(1+udpWelcomeLen), byte(msgWelcome), d.version,
			byte(d.bitRate>>24), byte(d.bitRate>>16), byte(d.bitRate>>8), byte(d.bitRate),
			byte(d.maxFrame>>8), byte(d.maxFrame))
		return append(dst, d.nonce[:]...)
	case msgCookie:
		dst = append(dst, 0, byte(1+cookieBodyLen), byte(msgCookie))
		dst = append(dst, d.nonce[:]...)
		return append(dst, d.cookie[:]...)
	case msgUTransmit:
		n := 1 + 2 + len(d.data)
		dst = append(dst, byte(n>>8), byte(n), byte(d.typ), byte(d.seq>>8), byte(d.seq))
		return append(dst, d.data...)
	case msgUTxDone:
		return append(dst, 0, 3, byte(d.typ), byte(d.seq>>8), byte(d.seq))
	case msgState:
		var c byte
		if d.carrier {
			c = 1
		}
		return append(dst, 0, 4, byte(d.typ), c, byte(d.seq>>8), byte(d.seq))
	case msgPing, msgBye, msgCarrierOn, msgCarrierOff:
		return appendEmpty(dst, d.typ)
	}
	return appendMessage(dst, &d.message)
}

// The cookie (as DTLS's HelloVerifyRequest, WireGuard's cookie reply): an
// HMAC of the client's address and port and a coarse time under a secret
// the server draws at start. A hello must echo the cookie of its source
// address, of this slot or the previous one, before the server sends that
// address anything but the cookie, which is smaller than the hello: a
// spoofed source gets at most one small reply per hello, never bursts.

// cookieSlot is the coarse time of a cookie: one is valid for one to two
// slots.
const cookieSlot = time.Minute

type cookieJar struct {
	secret [32]byte
}

func (j *cookieJar) cookie(slot int64, addr netip.AddrPort) [cookieLen]byte {
	m := hmac.New(sha256.New, j.secret[:])
	var b [8 + 16 + 2]byte
	binary.BigEndian.PutUint64(b[:8], uint64(slot))
	a := addr.Addr().As16()
	copy(b[8:24], a[:])
	binary.BigEndian.PutUint16(b[24:], addr.Port())
	m.Write(b[:])
	var c [cookieLen]byte
	copy(c[:], m.Sum(nil))
	return c
}

func cookieSlotOf(now time.Time) int64 { return now.Unix() / int64(cookieSlot/time.Second) }

// make returns the cookie for addr now.
func (j *cookieJar) make(now time.Time, addr netip.AddrPort) [cookieLen]byte {
	return j.cookie(cookieSlotOf(now), addr)
}

// valid says whether c is addr's cookie of this slot or the last.
func (j *cookieJar) valid(now time.Time, addr netip.AddrPort, c [cookieLen]byte) bool {
	_, ok := j.slotOf(now, addr, c)
	return ok
}

// slotOf returns the slot of c if it is addr's cookie of this slot or the
// last.
func (j *cookieJar) slotOf(now time.Time, addr netip.AddrPort, c [cookieLen]byte) (int64, bool) {
	s := cookieSlotOf(now)
	for _, slot := range []int64{s, s - 1} {
		want := j.cookie(slot, addr)
		if hmac.Equal(want[:], c[:]) {
			return slot, true
		}
	}
	return 0, false
}

// Member authentication with a pre-shared key (the daemon's key file
// format, auth.LoadKey). Every datagram but the cookie, and errors answering
// a hello that failed authentication, carries a trailer: a counter u64 BE
// and the first 16 bytes of HMAC-SHA256 over the direction byte, the
// counter and the message. A hello is tagged under the hello key (derived
// from the key) with a counter that grows across the client's hellos (its
// clock, auth.CounterAt); the server keeps the highest per node id. The
// welcome carries a server nonce; from then on both sides use a session key
// derived from the key, both nonces and the node id, with counters from 1
// in each direction and a replay window of 64.

// Direction bytes of the tag.
const (
	dirClient = 'c'
	dirServer = 's'
)

func deriveKey(psk *auth.Key, label string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, psk[:])
	m.Write([]byte(label))
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func helloKey(psk *auth.Key) []byte { return deriveKey(psk, "slided sim udp v2 hello") }

func sessionKey(psk *auth.Key, cnonce, snonce [nonceLen]byte, node NodeID) []byte {
	return deriveKey(psk, "slided sim udp v2 session", cnonce[:], snonce[:], []byte{node})
}

// tagger computes trailers under one key.
type tagger struct {
	m hash.Hash
}

func newTagger(key []byte) *tagger { return &tagger{m: hmac.New(sha256.New, key)} }

func (t *tagger) tag(dst []byte, dir byte, ctr uint64, msg []byte) []byte {
	t.m.Reset()
	var h [9]byte
	h[0] = dir
	binary.BigEndian.PutUint64(h[1:], ctr)
	t.m.Write(h[:])
	t.m.Write(msg)
	var sum [sha256.Size]byte
	return append(dst, t.m.Sum(sum[:0])[:tagLen]...)
}

// seal appends the trailer for the message msg, which ends dst (dst may be
// msg itself, with room to grow).
func (t *tagger) seal(dst []byte, msg []byte, dir byte, ctr uint64) []byte {
	var tag [tagLen]byte
	t.tag(tag[:0], dir, ctr, msg)
	dst = binary.BigEndian.AppendUint64(dst, ctr)
	return append(dst, tag[:]...)
}

// open checks d's trailer and returns its counter; false when there is none
// or its tag is wrong.
func (t *tagger) open(d *datagram, dir byte) (uint64, bool) {
	if len(d.trailer) != trailerLen {
		return 0, false
	}
	ctr := binary.BigEndian.Uint64(d.trailer)
	var want [tagLen]byte
	t.tag(want[:0], dir, ctr, d.raw)
	return ctr, hmac.Equal(want[:], d.trailer[8:])
}

// replayWindow accepts each counter once, up to 64 below the highest.
type replayWindow struct {
	max  uint64
	bits uint64 // bit i: max-i seen
}

// accept records c and says whether it was fresh. Counter 0 is never fresh.
func (w *replayWindow) accept(c uint64) bool {
	switch {
	case c == 0:
		return false
	case c > w.max:
		shift := c - w.max
		if shift >= 64 {
			w.bits = 0
		} else {
			w.bits <<= shift
		}
		w.bits |= 1
		w.max = c
		return true
	case w.max-c >= 64:
		return false
	default:
		bit := uint64(1) << (w.max - c)
		if w.bits&bit != 0 {
			return false
		}
		w.bits |= bit
		return true
	}
}
