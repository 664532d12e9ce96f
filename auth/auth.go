// Package auth is the optional authenticated envelope around link frames:
// ChaCha20-Poly1305 under a pre-shared 256-bit key, a nonce made of the
// sender's node id and a 48-bit counter, an 8-byte truncated tag and a
// 64-counter replay window per sender. docs/link-arq.md gives the layout.
//
// A Sealer and an Opener are each owned by one goroutine; neither does I/O
// except LoadKey, which reads the key file.
//
// Envelope (the payload of a framing.KindSealed frame):
//
//	bytes 0..5   counter, big-endian (48 bits)
//	bytes 6..    ciphertext of: inner kind (1 byte), inner payload
//	last 8       the first 8 bytes of the Poly1305 tag
//
// Nonce (12 bytes): src node id, 5 zero bytes, counter. Additional data: the
// three outer header bytes (0x10|KindSealed, dst, src).
package auth

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/slided/slided/framing"
)

const (
	// KeySize is the length of a key.
	KeySize = chacha20poly1305.KeySize
	// CounterLen is the counter bytes on the wire.
	CounterLen = 6
	// TagLen is the truncated tag length: a forgery attempt succeeds with
	// probability 2^-64 per frame.
	TagLen = 8
	// Overhead is the bytes an envelope adds to the inner payload: counter,
	// inner kind, tag.
	Overhead = CounterLen + 1 + TagLen
	// ReplayWindow is the number of counters below a sender's highest that
	// are still accepted once each (reordering).
	ReplayWindow = 64
	// MaxCounter is the last counter a Sealer uses; then it refuses with
	// ErrExhausted.
	MaxCounter = 1<<48 - 1
)

// Errors; Open and Seal wrap them, so test with errors.Is.
var (
	// ErrShort: the envelope is shorter than Overhead.
	ErrShort = errors.New("auth: envelope too short")
	// ErrForged: the tag does not match (wrong key, or a modified frame).
	ErrForged = errors.New("auth: authentication failed")
	// ErrReplay: this counter from this sender was already accepted.
	ErrReplay = errors.New("auth: replayed frame")
	// ErrTooOld: the counter is ReplayWindow or more below the sender's
	// highest accepted counter.
	ErrTooOld = errors.New("auth: counter outside the replay window")
	// ErrExhausted: the Sealer's counter reached MaxCounter; a new key is
	// needed.
	ErrExhausted = errors.New("auth: counter exhausted")
	// ErrNotSealed: Open was given a frame that is not KindSealed.
	ErrNotSealed = errors.New("auth: not a sealed frame")
)

// Key is a pre-shared key. Load it with LoadKey.
type Key [KeySize]byte

// CounterAt is a starting counter for a Sealer created at t: t in units of
// 2^-16 s since 1970, which stays below 2^48 until the year 2106 and moves
// faster than any link here sends frames, so a restarted node continues
// above every counter it used before, provided its clock did not go back
// (see docs/link-arq.md for boards without a real-time clock).
func CounterAt(t time.Time) uint64 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	return uint64(s)<<16 | uint64(t.Nanosecond())<<16/1e9
}

// Sealer seals this node's outgoing frames.
type Sealer struct {
	aead    cipher.AEAD
	self    framing.NodeID
	counter uint64
	scratch []byte
	nonce   [chacha20poly1305.NonceSize]byte // held here: a slice of a local array passed to the AEAD interface escapes
	ad      [framing.HeaderLen]byte
}

// NewSealer returns a Sealer for node self whose first counter is start. A
// counter must never repeat under one key: pass CounterAt(time.Now()) or a
// value persisted above the last one used.
func NewSealer(key Key, self framing.NodeID, start uint64) (*Sealer, error) {
	if self == 0 || self == framing.Broadcast {
		return nil, fmt.Errorf("auth: sealer for node %#02x: %w", byte(self), framing.ErrBadAddr)
	}
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &Sealer{aead: aead, self: self, counter: start}, nil
}

// Counter is the counter the next Seal will use.
func (s *Sealer) Counter() uint64 { return s.counter }

func nonce(src framing.NodeID, counter uint64) [chacha20poly1305.NonceSize]byte {
	var n [chacha20poly1305.NonceSize]byte
	n[0] = byte(src)
	binary.BigEndian.PutUint64(n[4:], counter) // bytes 4,5 are zero: counter < 2^48
	return n
}

func aad(h framing.Header) [framing.HeaderLen]byte {
	return [framing.HeaderLen]byte{framing.Version<<4 | byte(framing.KindSealed), byte(h.Dst), byte(h.Src)}
}

// Seal wraps the frame (h, payload) from this node: it returns the outer
// header (KindSealed, h.Dst, Self) and dst extended with the envelope
// (len(payload)+Overhead bytes). It does not retain payload.
func (s *Sealer) Seal(dst []byte, h framing.Header, payload []byte) (framing.Header, []byte, error) {
	if s.counter > MaxCounter {
		return framing.Header{}, dst, ErrExhausted
	}
	out := framing.Header{Kind: framing.KindSealed, Dst: h.Dst, Src: s.self}
	c := s.counter
	s.counter++
	s.nonce, s.ad = nonce(s.self, c), aad(out)
	s.scratch = append(append(s.scratch[:0], byte(h.Kind&0x0F)), payload...)
	dst = append(dst, byte(c>>40), byte(c>>32), byte(c>>24), byte(c>>16), byte(c>>8), byte(c))
	dst = s.aead.Seal(dst, s.nonce[:], s.scratch, s.ad[:])
	// Truncate the 16-byte tag to TagLen.
	dst = dst[:len(dst)-(chacha20poly1305.Overhead-TagLen)]
	return out, dst, nil
}

// replay is one sender's window: the highest counter accepted and a bitmap
// of the ReplayWindow counters at and below it (bit i = highest-i).
type replay struct {
	seen    bool
	highest uint64
	bits    uint64
}

// check reports whether c may be accepted, without recording it.
func (r *replay) check(c uint64) error {
	switch {
	case !r.seen || c > r.highest:
		return nil
	case r.highest-c >= ReplayWindow:
		return ErrTooOld
	case r.bits&(1<<(r.highest-c)) != 0:
		return ErrReplay
	}
	return nil
}

func (r *replay) accept(c uint64) {
	switch {
	case !r.seen:
		r.seen, r.highest, r.bits = true, c, 1
	case c > r.highest:
		if d := c - r.highest; d >= ReplayWindow {
			r.bits = 1
		} else {
			r.bits = r.bits<<d | 1
		}
		r.highest = c
	default:
		r.bits |= 1 << (r.highest - c)
	}
}

// Opener checks and unwraps sealed frames from every sender.
type Opener struct {
	aead    cipher.AEAD
	windows [256]replay
	plain   []byte
	check   []byte
	nonce   [chacha20poly1305.NonceSize]byte
	ad      [framing.HeaderLen]byte
}

// NewOpener returns an Opener that knows no sender yet: the first frame
// from each sender sets its window.
func NewOpener(key Key) (*Opener, error) {
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &Opener{aead: aead}, nil
}

// Open verifies the KindSealed frame (h, env) and returns the inner header
// (the inner kind, h.Dst, h.Src) and dst extended with the inner payload.
// Nothing is appended unless the frame is authentic and not a replay; only
// then does the sender's window advance. Open does not retain env.
func (o *Opener) Open(dst []byte, h framing.Header, env []byte) (framing.Header, []byte, error) {
	if h.Kind != framing.KindSealed {
		return framing.Header{}, dst, ErrNotSealed
	}
	if len(env) < Overhead {
		return framing.Header{}, dst, ErrShort
	}
	var c uint64
	for _, b := range env[:CounterLen] {
		c = c<<8 | uint64(b)
	}
	w := &o.windows[h.Src]
	if err := w.check(c); err != nil {
		return framing.Header{}, dst, err
	}
	ct, tag := env[CounterLen:len(env)-TagLen], env[len(env)-TagLen:]
	o.nonce, o.ad = nonce(h.Src, c), aad(h)
	// The AEAD API verifies only whole tags. ChaCha20 is a stream cipher, so
	// sealing the ciphertext yields the plaintext (and a tag to discard);
	// sealing that plaintext yields the received ciphertext and the tag it
	// should carry, whose first TagLen bytes are compared in constant time.
	o.plain = o.aead.Seal(o.plain[:0], o.nonce[:], ct, o.ad[:])[:len(ct)]
	o.check = o.aead.Seal(o.check[:0], o.nonce[:], o.plain, o.ad[:])
	if subtle.ConstantTimeCompare(o.check[len(ct):len(ct)+TagLen], tag) != 1 {
		return framing.Header{}, dst, ErrForged
	}
	w.accept(c)
	inner := framing.Header{Kind: framing.Kind(o.plain[0] & 0x0F), Dst: h.Dst, Src: h.Src}
	return inner, append(dst, o.plain[1:]...), nil
}
