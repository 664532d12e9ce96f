package auth

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/slided/slided/framing"
)

// signVector is the test vector of docs/frame-format.md: testKey, node 1 to
// node 2, counter 0x0102030405, inner kind KindData, payload 08 00 45.
const (
	signVector = "00010203040500080045"
	signTag    = "2d1a26ab337f9511"
)

func TestSignLayout(t *testing.T) {
	s := mustSealer(t, testKey, 1, 0x0102030405)
	s.SetMode(Sign)
	payload := []byte{8, 0, 0x45}
	h, env, err := s.Seal(t0, nil, framing.Header{Kind: framing.KindData, Dst: 2}, payload)
	if err != nil {
		t.Fatal(err)
	}
	if h != (framing.Header{Kind: framing.KindSigned, Dst: 2, Src: 1}) || len(env) != len(payload)+Overhead {
		t.Fatalf("header %+v, %d bytes", h, len(env))
	}
	// The payload is readable on air.
	if got := hex.EncodeToString(env[:len(env)-TagLen]); got != signVector {
		t.Fatalf("clear part %s, want %s", got, signVector)
	}
	// Independent check: the tag is the AEAD's over an empty plaintext,
	// with the header and the clear envelope as additional data, under the
	// signed-mode nonce.
	aead, _ := chacha20poly1305.New(testKey[:])
	nonce := []byte{1, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5}
	ad := append([]byte{0x15, 2, 1}, env[:len(env)-TagLen]...)
	full := aead.Seal(nil, nonce, nil, ad)
	if !bytes.Equal(env[len(env)-TagLen:], full[:TagLen]) {
		t.Fatalf("tag % x, want % x", env[len(env)-TagLen:], full[:TagLen])
	}
	if got := hex.EncodeToString(full[:TagLen]); got != signTag {
		t.Fatalf("tag %s, want the documented %s", got, signTag)
	}
}

// TestSignOpen: a signed frame opens in sign mode, once; any change is
// detected; a node in the other mode refuses it with ErrWrongMode, and a
// signed node refuses sealed frames.
func TestSignOpen(t *testing.T) {
	s := mustSealer(t, testKey, 1, 1000)
	s.SetMode(Sign)
	o := mustOpener(t, testKey)
	o.SetMode(Sign)
	payload := []byte("readable on air")
	h, env, err := s.Seal(t0, nil, framing.Header{Kind: framing.KindEthernet, Dst: 2}, payload)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(env, payload) {
		t.Fatal("payload not in clear")
	}
	sealedOpener := mustOpener(t, testKey)
	if _, _, err := sealedOpener.Open(t0, nil, h, env); !errors.Is(err, ErrWrongMode) {
		t.Fatalf("sealed-mode opener on a signed frame: %v, want ErrWrongMode", err)
	}
	for i := range env {
		env[i] ^= 0x40
		if _, _, err := o.Open(t0, nil, h, env); !errors.Is(err, ErrForged) {
			t.Fatalf("byte %d changed: %v, want ErrForged", i, err)
		}
		env[i] ^= 0x40
	}
	for _, bad := range []framing.Header{{Kind: h.Kind, Dst: 3, Src: 1}, {Kind: h.Kind, Dst: 2, Src: 4}} {
		if _, _, err := o.Open(t0, nil, bad, env); !errors.Is(err, ErrForged) {
			t.Fatalf("header %+v: %v, want ErrForged", bad, err)
		}
	}
	inner, out, err := o.Open(t0, nil, h, env)
	if err != nil || inner != (framing.Header{Kind: framing.KindEthernet, Dst: 2, Src: 1}) || !bytes.Equal(out, payload) {
		t.Fatalf("open: %+v %q %v", inner, out, err)
	}
	if _, _, err := o.Open(t0, nil, h, env); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v, want ErrReplay", err)
	}
	if c, err := o.Verify(h, env); err != nil || c != 1000 {
		t.Fatalf("verify: %d %v", c, err)
	}
	// A sealed frame to a signing node.
	s2 := mustSealer(t, testKey, 5, 1)
	sh, senv, err := s2.Seal(t0, nil, framing.Header{Kind: framing.KindData, Dst: 2}, payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.Open(t0, nil, sh, senv); !errors.Is(err, ErrWrongMode) {
		t.Fatalf("signing opener on a sealed frame: %v, want ErrWrongMode", err)
	}
	if _, _, err := o.Open(t0, nil, framing.Header{Kind: framing.KindData, Dst: 2, Src: 1}, env); !errors.Is(err, ErrNotSealed) {
		t.Fatalf("plain frame: %v, want ErrNotSealed", err)
	}
	// The same counter sealed and signed never shares a nonce: the modes'
	// tags differ for the same bytes.
	a := mustSealer(t, testKey, 1, 77)
	b := mustSealer(t, testKey, 1, 77)
	b.SetMode(Sign)
	_, ea, _ := a.Seal(t0, nil, framing.Header{Kind: framing.KindData, Dst: 2}, nil)
	_, eb, _ := b.Seal(t0, nil, framing.Header{Kind: framing.KindData, Dst: 2}, nil)
	if bytes.Equal(ea[len(ea)-TagLen:], eb[len(eb)-TagLen:]) {
		t.Fatal("sealed and signed tags equal for the same counter")
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"seal": Seal, "": Seal, "sign": Sign} {
		if m, err := ParseMode(in); err != nil || m != want {
			t.Errorf("ParseMode(%q) = %v, %v", in, m, err)
		}
	}
	if _, err := ParseMode("encrypt"); err == nil {
		t.Error("ParseMode(encrypt) succeeded")
	}
}
