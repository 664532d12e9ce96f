// Package auth is the optional authenticated envelope around link frames:
// ChaCha20-Poly1305 under a pre-shared 256-bit key, a nonce made of the
// sender's node id and a 48-bit counter, an 8-byte truncated tag and a
// replay window of the 64 newest counters accepted from each sender. docs/link-arq.md gives the layout.
//
// A Sealer and an Opener are each owned by one goroutine. Neither does I/O
// itself nor waits for it: what must survive a restart (the counters a
// Sealer may have used, the counters an Opener may have accepted) goes
// through the Reserver and FloorSaver they are given, which take requests
// and report what is durable without blocking. AsyncState implements both,
// writing a StateFile in the daemon's state directory on a goroutine of its
// own. LoadKeys reads the key file.
//
// Envelope (the payload of a framing.KindSealed frame):
//
//	bytes 0..5   counter, big-endian (48 bits)
//	bytes 6..    ciphertext of: inner kind (1 byte), inner payload
//	last 8       the first 8 bytes of the Poly1305 tag
//
// Nonce (12 bytes): src node id, 5 zero bytes, counter. Additional data: the
// three outer header bytes (version<<4|KindSealed, dst, src; version 1 or 2).
//
// Sign mode (SetMode(Sign), for amateur bands, where encryption is not
// allowed) keeps the same layout, counters, replay window and state, in a
// framing.KindSigned frame whose inner kind and payload stay in clear:
//
//	bytes 0..5   counter, big-endian (48 bits)
//	bytes 6..    inner kind (1 byte), inner payload, in clear
//	last 8       the first 8 bytes of the Poly1305 tag
//
// The tag is ChaCha20-Poly1305's over an empty plaintext with, as additional
// data, the outer header bytes (version<<4|KindSigned, dst, src) followed by the
// envelope without its tag; the nonce is that of sealed mode with byte 1 set
// to 0x01, so that the two modes never share a nonce even if a counter were
// used in both. A node in one mode refuses the other's frames (ErrWrongMode).
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
	// ReplayWindow is the number of a sender's newest accepted counters an
	// Opener remembers: a counter below all of them is refused (ErrTooOld),
	// one among them is a replay, one between them not seen yet is a frame
	// that was overtaken (an Ack sealed later but sent first) and accepted.
	// Counters advance with the clock, so they are sparse: the window is
	// counted in frames, not in counters.
	// are still accepted once each (reordering).
	ReplayWindow = 64
	// MaxCounter is the last counter a Sealer uses; then it refuses with
	// ErrExhausted.
	MaxCounter = 1<<48 - 1
	// CounterRate is the counters per second a Sealer's counter advances by
	// at least, with or without frames to seal (CounterAt's unit).
	CounterRate = 1 << 16
	// ReserveAhead is how far ahead of the counter in use a Sealer reserves
	// (Reserver.Reserve): ten minutes of counters, so about one write to the
	// state directory every five minutes while frames are sealed (the next
	// reservation is asked for when half of one is used, so that it is
	// durable before the first runs out), and a restart starts at most that
	// far ahead of the clock.
	ReserveAhead = 600 * CounterRate
	// FloorAhead is how far above a sender's accepted counter an Opener
	// saves its floor (FloorSaver.SaveFloor): ten seconds of that sender's
	// counters, asked for again when half of them are used, so about one
	// write per sender every five seconds while it sends. After a restart
	// the sender is refused until its counter passes the floor: up to ten
	// seconds after the last frame accepted from it.
	FloorAhead = 10 * CounterRate
	// recentSent is the number of counters a Sealer remembers having used,
	// to tell its own frames heard back from another station's (Foreign).
	recentSent = 64
)

// Errors; Open and Seal wrap them, so test with errors.Is.
var (
	// ErrShort: the envelope is shorter than Overhead.
	ErrShort = errors.New("auth: envelope too short")
	// ErrForged: the tag does not match (wrong key, or a modified frame).
	ErrForged = errors.New("auth: authentication failed")
	// ErrReplay: this counter from this sender was already accepted.
	ErrReplay = errors.New("auth: replayed frame")
	// ErrTooOld: the counter is below the ReplayWindow newest counters
	// accepted from the sender, or at or below its restored floor.
	ErrTooOld = errors.New("auth: counter outside the replay window")
	// ErrExhausted: the Sealer's counter reached MaxCounter; a new key is
	// needed.
	ErrExhausted = errors.New("auth: counter exhausted")
	// ErrNotSealed: Open was given a frame that is not KindSealed.
	ErrNotSealed = errors.New("auth: not a sealed frame")
	// ErrNotReserved: the counters the Sealer is about to use are not
	// recorded yet (the Reserver's write is under way or failed); it
	// refuses to seal rather than risk reusing a counter after a restart.
	ErrNotReserved = errors.New("auth: counters not reserved in the state directory; refusing to seal")
	// ErrNotSaved: a sender's counter is above the floor recorded for it
	// (the FloorSaver's write is under way or failed); the Opener refuses
	// the frame rather than accept, after a restart, a replay of it.
	ErrNotSaved = errors.New("auth: replay state not saved in the state directory; refusing the frame")
	// ErrPending: with ErrNotReserved or ErrNotSaved, the write that
	// would record the counter is under way, and none has failed: the
	// normal case for a sender's first frame, and for a disk slower than
	// half a reservation.
	ErrPending = errors.New("auth: state write under way")
	// ErrStale: the counter is older than the Opener's clock minus its
	// maximum age (SetMaxAge).
	ErrStale = errors.New("auth: counter older than the clock allows")
	// ErrWrongMode: a signed frame given to an Opener in seal mode, or a
	// sealed one in sign mode: the nodes' key modes disagree.
	ErrWrongMode = errors.New("auth: frame in the other key mode (sealed vs signed): -key-mode must agree on every node")
)

// Mode is how frames are protected: Seal (encrypted and authenticated, the
// default) or Sign (authenticated, payload readable on air).
type Mode uint8

const (
	// Seal: KindSealed frames, ChaCha20-Poly1305.
	Seal Mode = iota
	// Sign: KindSigned frames, the payload in clear with a Poly1305 tag.
	Sign
)

func (m Mode) String() string {
	if m == Sign {
		return "sign"
	}
	return "seal"
}

// ParseMode parses "seal" or "sign".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "seal", "":
		return Seal, nil
	case "sign":
		return Sign, nil
	}
	return 0, fmt.Errorf("key mode %q: want seal or sign", s)
}

// kind is the outer frame kind of mode m.
func (m Mode) kind() framing.Kind {
	if m == Sign {
		return framing.KindSigned
	}
	return framing.KindSealed
}

// Reserver records durably, off its caller's goroutine, that this node may
// have used every counter below a mark under this key. A Sealer calls it
// from its owner's goroutine; neither method blocks (AsyncState).
type Reserver interface {
	// Reserve asks for mark to be recorded; a higher mark asked for
	// later supersedes it. Asking again for a mark not yet recorded
	// retries a write that failed.
	Reserve(mark uint64)
	// Reserved returns the highest mark recorded durably so far (at
	// first the one saved before a restart), and the error of the last
	// write if it failed.
	Reserved() (uint64, error)
}

// FloorSaver records durably, off its caller's goroutine, that every
// counter up to a floor from sender src may have been accepted under this
// key. An Opener calls it from its owner's goroutine; neither method
// blocks (AsyncState).
type FloorSaver interface {
	// SaveFloor asks for floor to be recorded for src; a higher floor
	// asked for later supersedes it; asking again retries.
	SaveFloor(src framing.NodeID, floor uint64)
	// SavedFloor returns the floor recorded durably for src so far (0:
	// none), and the error of the last write if it failed.
	SavedFloor(src framing.NodeID) (uint64, error)
}

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

// counterSince is the counters CounterRate yields in d (0 for d <= 0).
func counterSince(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64(d/time.Second)<<16 | uint64(d%time.Second)<<16/uint64(time.Second)
}

// Sealer seals this node's outgoing frames.
//
// Its counter never repeats as long as the start given to NewSealer is above
// every counter used before under this key and node id. With Tie, the
// counter also advances at CounterRate with the monotonic clock, so that a
// receiver's saved floor (FloorAhead) is passed soon after it restarts, even
// on a board whose wall clock is wrong. With SetReserver, no counter is used
// before the Reserver has recorded it: Seal asks for the next reservation
// when half of the durable one is used and refuses (ErrNotReserved) only
// when the durable one runs out before the write is done.
type Sealer struct {
	aead    cipher.AEAD
	self    framing.NodeID
	counter uint64
	first   uint64    // the first counter of this Sealer
	base    uint64    // with Tie: the counter at t0
	t0      time.Time // with Tie: zero otherwise
	limit   uint64    // without a Reserver: counters from here on are refused
	reserve Reserver
	asked   uint64             // with a Reserver: the highest mark asked for
	recent  [recentSent]uint64 // counters used lately, a ring
	nRecent int                // counters written to recent in all
	scratch []byte
	nonce   [chacha20poly1305.NonceSize]byte // held here: a slice of a local array passed to the AEAD interface escapes
	ad      [framing.HeaderLen]byte
	mode    Mode
}

// SetMode makes Seal produce frames of mode m (Seal by default).
func (s *Sealer) SetMode(m Mode) { s.mode = m }

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
	return &Sealer{aead: aead, self: self, counter: start, first: start, limit: MaxCounter + 1}, nil
}

// Resume returns the Sealer a daemon uses: for node self, starting above
// every counter a previous run may have used (saved, the Send of its State)
// and at least at CounterAt(now), advancing with the clock (Tie), and
// reserving its counters through r before it uses them (SetReserver; nil:
// nothing is persisted and the clock is all that keeps counters from
// repeating after a restart).
func Resume(key Key, self framing.NodeID, now time.Time, saved uint64, r Reserver) (*Sealer, error) {
	s, err := NewSealer(key, self, max(saved, CounterAt(now)))
	if err != nil {
		return nil, err
	}
	s.Tie(now)
	if r != nil {
		s.SetReserver(r)
	}
	return s, nil
}

// Tie makes the counter advance at CounterRate from its current value at
// now, by the monotonic clock (pass time.Now(); tests pass any time and
// later times to Seal).
func (s *Sealer) Tie(now time.Time) {
	s.base, s.t0 = s.counter, now
}

// SetReserver makes the Sealer use only counters r has recorded (below
// r.Reserved()), and asks r at once for ReserveAhead counters from the
// current one, so that the first reservation is written before the first
// Seal needs it.
func (s *Sealer) SetReserver(r Reserver) {
	s.reserve = r
	s.ask(s.counter)
}

// ask asks the Reserver for ReserveAhead counters above c once half of
// those asked for last are used.
func (s *Sealer) ask(c uint64) {
	if c+ReserveAhead/2 >= s.asked {
		s.asked = min(c+ReserveAhead, MaxCounter+1)
		s.reserve.Reserve(s.asked)
	}
}

// Counter is the counter the next Seal will use, not counting the advance
// of the clock (Tie).
func (s *Sealer) Counter() uint64 { return s.counter }

// Foreign reports whether an authentic frame from this node's id with
// counter c (Opener.Verify) can only have been sealed by another station:
// a counter this Sealer has not used although it is not older than the
// counters it remembers using. An older counter may be one of this node's
// own frames replayed, so it is not proof.
func (s *Sealer) Foreign(c uint64) bool {
	if c >= s.counter {
		return true
	}
	oldest := s.first
	if s.nRecent >= recentSent {
		oldest = s.recent[s.nRecent%recentSent]
	}
	if c < oldest {
		return false
	}
	for i := range min(s.nRecent, recentSent) {
		if s.recent[i] == c {
			return false
		}
	}
	return true
}

func nonce(src framing.NodeID, counter uint64, m Mode) [chacha20poly1305.NonceSize]byte {
	var n [chacha20poly1305.NonceSize]byte
	n[0] = byte(src)
	n[1] = byte(m)                             // 0 sealed, 1 signed
	binary.BigEndian.PutUint64(n[4:], counter) // bytes 4,5 are zero: counter < 2^48
	return n
}

func aad(h framing.Header, m Mode) [framing.HeaderLen]byte {
	return framing.HeaderBytes(framing.Header{Kind: m.kind(), Dst: h.Dst, Src: h.Src, Version: h.Version})
}

// Seal wraps the frame (h, payload) from this node at time now: it returns
// the outer header (KindSealed, or KindSigned in sign mode; h.Dst, Self) and
// dst extended with the envelope (len(payload)+Overhead bytes). It does not retain payload. It
// fails with ErrExhausted past MaxCounter and with ErrNotReserved when the
// Reserver fails; the counter is not used then.
func (s *Sealer) Seal(now time.Time, dst []byte, h framing.Header, payload []byte) (framing.Header, []byte, error) {
	c := s.next(now)
	if c > MaxCounter {
		return framing.Header{}, dst, ErrExhausted
	}
	if s.reserve != nil {
		if err := s.reserved(c); err != nil {
			return framing.Header{}, dst, err
		}
	} else if c >= s.limit {
		return framing.Header{}, dst, ErrNotReserved
	}
	out := framing.Header{Kind: s.mode.kind(), Dst: h.Dst, Src: s.self, Version: h.Version}
	s.counter = c + 1
	s.recent[s.nRecent%recentSent] = c
	s.nRecent++
	s.nonce, s.ad = nonce(s.self, c, s.mode), aad(out, s.mode)
	if s.mode == Sign {
		start := len(dst)
		dst = append(dst, byte(c>>40), byte(c>>32), byte(c>>24), byte(c>>16), byte(c>>8), byte(c), byte(h.Kind&0x0F))
		dst = append(dst, payload...)
		s.scratch = append(append(s.scratch[:0], s.ad[:]...), dst[start:]...)
		n := len(dst)
		dst = s.aead.Seal(dst, s.nonce[:], nil, s.scratch)
		return out, dst[:n+TagLen], nil
	}
	s.scratch = append(append(s.scratch[:0], byte(h.Kind&0x0F)), payload...)
	dst = append(dst, byte(c>>40), byte(c>>32), byte(c>>24), byte(c>>16), byte(c>>8), byte(c))
	dst = s.aead.Seal(dst, s.nonce[:], s.scratch, s.ad[:])
	// Truncate the 16-byte tag to TagLen.
	dst = dst[:len(dst)-(chacha20poly1305.Overhead-TagLen)]
	return out, dst, nil
}

// next is the counter a Seal at now would use.
func (s *Sealer) next(now time.Time) uint64 {
	c := s.counter
	if !s.t0.IsZero() {
		c = max(c, s.base+counterSince(now.Sub(s.t0)))
	}
	return c
}

// Keep asks the Reserver for the next reservation once the clock has moved
// the counter past half of the last one asked for, as Seal does, so that a
// node that seals nothing for a while (it only listens) finds its counters
// durable when it next seals; before, its first frame after ten idle
// minutes was refused while the next reservation was written. It returns
// when the next ask falls due by the clock (zero without a Reserver or a
// clock, Tie).
func (s *Sealer) Keep(now time.Time) time.Time {
	if s.reserve == nil {
		return time.Time{}
	}
	s.ask(s.next(now))
	if s.t0.IsZero() || s.asked > MaxCounter {
		return time.Time{} // no clock, or nothing left to ask for
	}
	due := s.asked - ReserveAhead/2 // ask asks again once the counter reaches it
	if due <= s.base {
		return time.Time{} // not reached: ask has just moved asked on
	}
	n := due - s.base
	t := s.t0.Add(time.Duration(n>>16)*time.Second + time.Duration((n&0xffff)*uint64(time.Second)/CounterRate))
	if !t.After(now) {
		t = now.Add(time.Millisecond) // rounding: never a deadline in the past
	}
	return t
}

// Waiting reports whether a Seal at now would be refused only because the
// reservation that covers its counter is still being written (ErrPending,
// and no write has failed): a caller may hold its frames until it is
// durable rather than lose them, as after a start on a slow disk. It asks
// for nothing and uses no counter.
func (s *Sealer) Waiting(now time.Time) bool {
	if s.reserve == nil {
		return false
	}
	lim, err := s.reserve.Reserved()
	return err == nil && s.next(now) >= lim
}

// reserved asks for more counters when half of those asked for are used,
// and returns nil if c is recorded, ErrNotReserved (wrapping the last
// write's error, if it failed) if not yet.
func (s *Sealer) reserved(c uint64) error {
	s.ask(c)
	if lim, _ := s.reserve.Reserved(); c < lim {
		return nil
	}
	s.reserve.Reserve(s.asked) // retries a write that failed (a synchronous Reserver records it at once)
	lim, err := s.reserve.Reserved()
	switch {
	case c < lim:
		return nil
	case err != nil:
		return fmt.Errorf("%w: %w", ErrNotReserved, err)
	}
	return fmt.Errorf("%w: %w", ErrNotReserved, ErrPending)
}

// replay is one sender's window: the newest ReplayWindow counters
// accepted (in any order), and a floor restored from a saved state.
type replay struct {
	floor  uint64 // counters up to floor are refused (Restore); 0 with none
	n      int    // counters in recent
	recent [ReplayWindow]uint64
}

// lowest returns the smallest counter in recent and its index (n > 0).
func (r *replay) lowest() (uint64, int) {
	lo, at := r.recent[0], 0
	for i, c := range r.recent[1:r.n] {
		if c < lo {
			lo, at = c, i+1
		}
	}
	return lo, at
}

// check reports whether c may be accepted, without recording it.
func (r *replay) check(c uint64) error {
	if r.floor > 0 && c <= r.floor {
		return ErrTooOld
	}
	if r.n == 0 {
		return nil
	}
	if lo, _ := r.lowest(); c < lo {
		return ErrTooOld
	}
	for _, x := range r.recent[:r.n] {
		if x == c {
			return ErrReplay
		}
	}
	return nil
}

// accept records c, which check allowed: the lowest counter gives way when
// the window is full.
func (r *replay) accept(c uint64) {
	if r.n < ReplayWindow {
		r.recent[r.n] = c
		r.n++
		return
	}
	_, at := r.lowest()
	r.recent[at] = c
}

// Opener checks and unwraps sealed frames from every sender.
type Opener struct {
	aead    cipher.AEAD
	windows [256]*replay // allocated at a sender's first frame
	asked   [256]uint64  // with a FloorSaver: the highest floor asked for, per sender
	saver   FloorSaver
	maxAge  time.Duration
	plain   []byte
	check   []byte
	nonce   [chacha20poly1305.NonceSize]byte
	ad      [framing.HeaderLen]byte
	mode    Mode
	tag     []byte // sign mode: the tag computed
}

// SetMode makes the Opener take frames of mode m only (Seal by default);
// the other mode's frames fail with ErrWrongMode.
func (o *Opener) SetMode(m Mode) { o.mode = m }

// NewOpener returns an Opener that knows no sender yet: the first frame
// from each sender sets its window, unless Restore gives it a floor.
func NewOpener(key Key) (*Opener, error) {
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &Opener{aead: aead}, nil
}

// Restore refuses, from each sender src, every counter up to floors[src]
// (0: nothing), as saved by a FloorSaver before a restart.
func (o *Opener) Restore(floors *[256]uint64) {
	for src, f := range floors {
		if f == 0 {
			continue
		}
		o.window(framing.NodeID(src)).floor = max(o.window(framing.NodeID(src)).floor, f)
	}
}

func (o *Opener) window(src framing.NodeID) *replay {
	if o.windows[src] == nil {
		o.windows[src] = new(replay)
	}
	return o.windows[src]
}

// SetSaver makes the Opener accept from a sender only counters below the
// floor s has recorded for it (SavedFloor), and ask s for a floor
// FloorAhead above a sender's counter once half of the last one asked for
// is used: in steady state the next floor is durable before it is needed,
// and a frame is refused (ErrNotSaved) only when a write is slower than
// that, failed, or a sender is heard for the first time.
func (o *Opener) SetSaver(s FloorSaver) { o.saver = s }

// SetMaxAge makes Open refuse (ErrStale) counters below CounterAt(now-d):
// frames sealed, by the sender's clock, more than d before the receiver's
// clock. It protects a receiver that has no saved floor for a sender, at
// the cost of refusing every sender whose clock is more than d behind.
// 0 (the default) turns the check off.
func (o *Opener) SetMaxAge(d time.Duration) { o.maxAge = d }

// parse returns the envelope's counter, or an error for a frame that is not
// of mode m (ErrWrongMode if it is of the other mode) or too short.
func parse(h framing.Header, env []byte, m Mode) (uint64, error) {
	if h.Kind != m.kind() {
		if h.Kind == framing.KindSealed || h.Kind == framing.KindSigned {
			return 0, ErrWrongMode
		}
		return 0, ErrNotSealed
	}
	if len(env) < Overhead {
		return 0, ErrShort
	}
	var c uint64
	for _, b := range env[:CounterLen] {
		c = c<<8 | uint64(b)
	}
	return c, nil
}

// verify checks the tag of (h, env) with counter c and leaves the inner kind
// and payload in o.plain.
func (o *Opener) verify(h framing.Header, env []byte, c uint64) error {
	ct, tag := env[CounterLen:len(env)-TagLen], env[len(env)-TagLen:]
	o.nonce, o.ad = nonce(h.Src, c, o.mode), aad(h, o.mode)
	if o.mode == Sign {
		// The tag of an empty plaintext over header and clear envelope.
		o.plain = append(o.plain[:0], ct...)
		o.check = append(append(o.check[:0], o.ad[:]...), env[:len(env)-TagLen]...)
		o.tag = o.aead.Seal(o.tag[:0], o.nonce[:], nil, o.check)
		if subtle.ConstantTimeCompare(o.tag[:TagLen], tag) != 1 {
			return ErrForged
		}
		return nil
	}
	// The AEAD API verifies only whole tags. ChaCha20 is a stream cipher, so
	// sealing the ciphertext yields the plaintext (and a tag to discard);
	// sealing that plaintext yields the received ciphertext and the tag it
	// should carry, whose first TagLen bytes are compared in constant time.
	o.plain = o.aead.Seal(o.plain[:0], o.nonce[:], ct, o.ad[:])[:len(ct)]
	o.check = o.aead.Seal(o.check[:0], o.nonce[:], o.plain, o.ad[:])
	if subtle.ConstantTimeCompare(o.check[len(ct):len(ct)+TagLen], tag) != 1 {
		return ErrForged
	}
	return nil
}

// Verify checks that (h, env) is authentic under this key and returns its
// counter, without the replay window: for frames that carry this node's own
// id (Sealer.Foreign tells whose they are).
func (o *Opener) Verify(h framing.Header, env []byte) (uint64, error) {
	c, err := parse(h, env, o.mode)
	if err != nil {
		return 0, err
	}
	return c, o.verify(h, env, c)
}

// Open verifies the KindSealed frame (KindSigned in sign mode) (h, env) received at now and returns
// the inner header (the inner kind, h.Dst, h.Src) and dst extended with the
// inner payload. The tag is checked first, so that a frame sealed under
// another key fails with ErrForged whatever its counter (a caller with two
// keys tries the next one on ErrForged only); then the replay window, the
// maximum age and the saved floor. Nothing is appended unless the frame is
// authentic, not a replay and its counter below the durable floor; only then does the
// sender's window advance. Open does not retain env.
func (o *Opener) Open(now time.Time, dst []byte, h framing.Header, env []byte) (framing.Header, []byte, error) {
	c, err := parse(h, env, o.mode)
	if err != nil {
		return framing.Header{}, dst, err
	}
	if err := o.verify(h, env, c); err != nil {
		return framing.Header{}, dst, err
	}
	w := o.window(h.Src)
	if err := w.check(c); err != nil {
		return framing.Header{}, dst, err
	}
	if o.maxAge > 0 && c < CounterAt(now.Add(-o.maxAge)) {
		return framing.Header{}, dst, ErrStale
	}
	if o.saver != nil {
		if err := o.saved(h.Src, c); err != nil {
			return framing.Header{}, dst, err
		}
	}
	w.accept(c)
	inner := framing.Header{Kind: framing.Kind(o.plain[0] & 0x0F), Dst: h.Dst, Src: h.Src, Version: h.Version}
	return inner, append(dst, o.plain[1:]...), nil
}

// saved asks for a higher floor for src when half of the last one asked
// for is used, and returns nil if c is below the floor recorded, ErrNotSaved
// (wrapping the last write's error, if it failed) if not yet.
func (o *Opener) saved(src framing.NodeID, c uint64) error {
	if c+FloorAhead/2 >= o.asked[src] {
		o.asked[src] = min(c+FloorAhead, MaxCounter)
		o.saver.SaveFloor(src, o.asked[src])
	}
	if f, _ := o.saver.SavedFloor(src); c < f {
		return nil
	}
	o.saver.SaveFloor(src, o.asked[src]) // retries a write that failed (a synchronous FloorSaver records it at once)
	f, err := o.saver.SavedFloor(src)
	switch {
	case c < f:
		return nil
	case err != nil:
		return fmt.Errorf("%w: %w", ErrNotSaved, err)
	}
	return fmt.Errorf("%w: %w", ErrNotSaved, ErrPending)
}
