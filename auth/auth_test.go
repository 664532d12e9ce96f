package auth

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/slided/slided/framing"
)

// t0 is the tests' clock: a time without a monotonic reading.
var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

var testKey = Key{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

func mustSealer(t testing.TB, k Key, self framing.NodeID, start uint64) *Sealer {
	s, err := NewSealer(k, self, start)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustOpener(t testing.TB, k Key) *Opener {
	o, err := NewOpener(k)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func seal(t testing.TB, s *Sealer, p []byte) (framing.Header, []byte) {
	h, env, err := s.Seal(t0, nil, framing.Header{Kind: framing.KindData, Dst: 2}, p)
	if err != nil {
		t.Fatal(err)
	}
	return h, env
}

func TestSealLayoutMatchesAEAD(t *testing.T) {
	s := mustSealer(t, testKey, 1, 0x0102030405)
	h, env := seal(t, s, []byte{8, 0, 0x45})
	if h != (framing.Header{Kind: framing.KindSealed, Dst: 2, Src: 1}) || len(env) != 3+Overhead {
		t.Fatalf("header %+v, %d bytes", h, len(env))
	}
	if !bytes.Equal(env[:CounterLen], []byte{0, 1, 2, 3, 4, 5}) {
		t.Fatalf("counter bytes % x", env[:CounterLen])
	}
	// Independent check with the full-tag AEAD: the envelope is its output
	// with the tag cut to 8 bytes.
	aead, _ := chacha20poly1305.New(testKey[:])
	nonce := []byte{1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5}
	full := aead.Seal(nil, nonce, []byte{byte(framing.KindData), 8, 0, 0x45}, []byte{0x14, 2, 1})
	if !bytes.Equal(env[CounterLen:], full[:len(full)-8]) {
		t.Fatalf("envelope % x, AEAD % x", env[CounterLen:], full)
	}
}

func TestOpen(t *testing.T) {
	other := testKey
	other[0] ^= 1
	type env struct {
		h framing.Header
		p []byte
	}
	s := mustSealer(t, testKey, 1, 1000)
	var envs []env
	for i := range 70 {
		h, p := seal(t, s, []byte{byte(i), 0xAB})
		envs = append(envs, env{h, p})
	}
	wrong := mustSealer(t, other, 1, 5000)
	wh, wp := seal(t, wrong, []byte{1, 2})
	tampered := func(i int) env {
		e := envs[69]
		p := append([]byte(nil), e.p...)
		p[i] ^= 0x40
		return env{e.h, p}
	}
	redirected := envs[69]
	redirected.h.Dst = 3
	cases := []struct {
		desc string
		seq  []env
		want error
	}{
		{"in order", []env{envs[0], envs[1]}, nil},
		{"wrong key", []env{{wh, wp}}, ErrForged},
		{"tampered counter", []env{tampered(2)}, ErrForged},
		{"tampered ciphertext", []env{tampered(CounterLen + 1)}, ErrForged},
		{"tampered tag", []env{tampered(len(envs[69].p) - 1)}, ErrForged},
		{"header rewritten", []env{redirected}, ErrForged},
		{"replay", []env{envs[5], envs[5]}, ErrReplay},
		{"reordered inside the window", []env{envs[8], envs[10], envs[9]}, nil},
		{"replay after reordering", []env{envs[8], envs[10], envs[9], envs[9]}, ErrReplay},
		{"older than the first frame heard", []env{envs[10], envs[5]}, ErrTooOld},
		{"overtaken by 63 frames", append(append([]env{envs[0]}, envs[2:65]...), envs[1]), nil},
		{"overtaken by 64 frames: too old", append(append([]env{envs[0]}, envs[2:66]...), envs[1]), ErrTooOld},
		{"replay of the oldest in the window", append(append([]env{envs[0]}, envs[2:65]...), envs[0]), ErrReplay},
		{"short", []env{{envs[0].h, envs[0].p[:Overhead-1]}}, ErrShort},
		{"forgery does not move the window", []env{tampered(3), envs[0]}, nil},
	}
	for _, tc := range cases {
		o := mustOpener(t, testKey)
		var err error
		var inner framing.Header
		var out []byte
		for _, e := range tc.seq {
			inner, out, err = o.Open(t0, nil, e.h, e.p)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.desc, err, tc.want)
			continue
		}
		if err == nil && (inner != (framing.Header{Kind: framing.KindData, Dst: 2, Src: 1}) || len(out) != 2 || out[1] != 0xAB) {
			t.Errorf("%s: opened %+v % x", tc.desc, inner, out)
		}
		if err != nil && len(out) != 0 {
			t.Errorf("%s: rejected frame appended % x", tc.desc, out)
		}
	}
}

func TestSealerExhausted(t *testing.T) {
	s := mustSealer(t, testKey, 1, MaxCounter)
	seal(t, s, nil)
	if _, _, err := s.Seal(t0, nil, framing.Header{Dst: 2}, nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("counter past 2^48-1: %v", err)
	}
}

func TestCounterAt(t *testing.T) {
	a := CounterAt(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))
	b := CounterAt(time.Date(2025, 6, 1, 0, 0, 0, 20000, time.UTC)) // 20 µs later
	if b <= a || CounterAt(time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC)) > MaxCounter {
		t.Fatalf("CounterAt not increasing or out of range: %d %d", a, b)
	}
}

func TestNoAllocs(t *testing.T) {
	s := mustSealer(t, testKey, 1, 1)
	o := mustOpener(t, testKey)
	buf, plain := make([]byte, 0, 256), make([]byte, 0, 256)
	p := bytes.Repeat([]byte{7}, 64)
	h, env := seal(t, s, p) // warm the scratch buffers
	o.Open(t0, nil, h, env)
	n := testing.AllocsPerRun(100, func() {
		h, e, _ := s.Seal(t0, buf[:0], framing.Header{Dst: 2}, p)
		if _, _, err := o.Open(t0, plain[:0], h, e); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per seal+open", n)
	}
}

func writeKey(t *testing.T, mode os.FileMode, text string) string {
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

const keyHex = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"

func TestLoadKey(t *testing.T) {
	tests := []struct {
		desc string
		mode os.FileMode
		text string
		uid  int // chown to this uid when >= 0
		want error
	}{
		{"good, trailing newline", 0o600, keyHex + "\n", -1, nil},
		{"read-only for owner", 0o400, keyHex, -1, nil},
		{"group readable", 0o640, keyHex, -1, ErrKeyPerm},
		{"world readable", 0o604, keyHex, -1, ErrKeyPerm},
		{"short", 0o600, keyHex[:62], -1, ErrKeyFormat},
		{"not hex", 0o600, "zz" + keyHex[2:], -1, ErrKeyFormat},
		{"owned by another user", 0o600, keyHex, os.Geteuid() + 4242, ErrKeyOwner},
	}
	for _, tc := range tests {
		p := writeKey(t, tc.mode, tc.text)
		if tc.uid >= 0 {
			if err := os.Chown(p, tc.uid, -1); err != nil {
				t.Fatalf("%s: chown (tests run as root): %v", tc.desc, err)
			}
		}
		k, err := LoadKey(p)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.desc, err, tc.want)
		}
		if err == nil && k != testKey {
			t.Errorf("%s: key % x", tc.desc, k)
		}
	}
	if _, err := LoadKey(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// FuzzOpen: no panic on any envelope; a sealed frame opens to what was
// sealed; any change to the envelope is rejected.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{}, []byte{0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, uint8(2), uint8(1), 0, uint8(0))
	f.Add([]byte{8, 0, 0x45}, make([]byte, 20), uint8(255), uint8(7), 3, uint8(1))
	// Sign mode: the mode is len(payload)'s parity (odd: sign), so that the
	// fuzz signature, and any corpus, stays as it was.
	f.Add([]byte{8, 0, 0x45, 1}, make([]byte, 20), uint8(2), uint8(7), 5, uint8(0x80))
	f.Add([]byte{0}, []byte{0, 0, 0, 0, 0, 1, 0, 8, 0, 0x45, 1, 2, 3, 4, 5, 6, 7, 8}, uint8(2), uint8(1), 0, uint8(0))
	f.Fuzz(func(t *testing.T, payload, garbage []byte, dst, src uint8, flip int, mask uint8) {
		mode := Mode(len(payload) % 2) // odd lengths: sign mode
		o := mustOpener(t, testKey)
		o.SetMode(mode)
		h := framing.Header{Kind: mode.kind(), Dst: framing.NodeID(dst), Src: framing.NodeID(src)}
		if _, out, err := o.Open(t0, nil, h, garbage); err == nil {
			t.Fatalf("garbage % x opened to % x", garbage, out)
		}
		other := framing.Header{Kind: Mode(1 - mode).kind(), Dst: h.Dst, Src: h.Src}
		if _, _, err := o.Open(t0, nil, other, garbage); !errors.Is(err, ErrWrongMode) {
			t.Fatalf("the other mode's frame: %v, want ErrWrongMode", err)
		}
		if src == 0 || src == 0xFF {
			return
		}
		s := mustSealer(t, testKey, framing.NodeID(src), uint64(len(garbage)))
		s.SetMode(mode)
		sh, env, err := s.Seal(t0, nil, framing.Header{Kind: framing.KindEthernet, Dst: framing.NodeID(dst)}, payload)
		if err != nil {
			t.Fatal(err)
		}
		if mask != 0 {
			i := flip % len(env)
			if i < 0 {
				i = -i
			}
			env[i] ^= mask
			if _, _, err := o.Open(t0, nil, sh, env); err == nil {
				t.Fatalf("flipping byte %d with %#x was not detected", i, mask)
			}
			env[i] ^= mask
		}
		inner, out, err := o.Open(t0, nil, sh, env)
		if err != nil || inner != (framing.Header{Kind: framing.KindEthernet, Dst: h.Dst, Src: h.Src}) || !bytes.Equal(out, payload) {
			t.Fatalf("round trip: %+v % x %v", inner, out, err)
		}
		if _, _, err := o.Open(t0, nil, sh, env); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay accepted: %v", err)
		}
	})
}
