package framing

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// refCOBSEncode is a byte-at-a-time COBS encoder written straight from the
// paper, with one option: trailingBlock writes the empty final block (code
// 0x01) after input that ends with a full 0xFF block, as some encoders do.
func refCOBSEncode(src []byte, trailingBlock bool) []byte {
	out := []byte{0}
	codeAt, code := 0, byte(1)
	for i, b := range src {
		if b == 0 {
			out[codeAt] = code
			codeAt, code = len(out), 1
			out = append(out, 0)
			continue
		}
		out = append(out, b)
		code++
		if code == 0xFF {
			out[codeAt] = code
			if i == len(src)-1 && !trailingBlock {
				return out
			}
			codeAt, code = len(out), 1
			out = append(out, 0)
		}
	}
	out[codeAt] = code
	return out
}

var errRefCOBS = errors.New("bad cobs")

// refCOBSDecode decodes one COBS run (no delimiters) byte by byte.
func refCOBSDecode(src []byte) ([]byte, error) {
	var out []byte
	for i := 0; i < len(src); {
		code := src[i]
		if code == 0 || i+int(code) > len(src) {
			return nil, errRefCOBS
		}
		blk := src[i+1 : i+int(code)]
		if bytes.IndexByte(blk, 0) >= 0 {
			return nil, errRefCOBS
		}
		out = append(out, blk...)
		i += int(code)
		if code != 0xFF && i < len(src) {
			out = append(out, 0)
		}
	}
	return out, nil
}

// seq returns n bytes counting up from first, wrapping from 0xFF to 0x01
// (never 0x00).
func seq(first byte, n int) []byte {
	b := make([]byte, n)
	v := first
	for i := range b {
		b[i] = v
		v++
		if v == 0 {
			v = 1
		}
	}
	return b
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestCOBS(t *testing.T) {
	tests := []struct {
		desc string
		in   []byte
		want []byte
	}{
		{"empty", nil, []byte{0x01}},
		{"one zero", []byte{0}, []byte{0x01, 0x01}},
		{"two zeros", []byte{0, 0}, []byte{0x01, 0x01, 0x01}},
		{"zero inside", []byte{0x11, 0x22, 0x00, 0x33}, []byte{0x03, 0x11, 0x22, 0x02, 0x33}},
		{"no zero", []byte{0x11, 0x22, 0x33, 0x44}, []byte{0x05, 0x11, 0x22, 0x33, 0x44}},
		{"trailing zeros", []byte{0x11, 0, 0, 0}, []byte{0x02, 0x11, 0x01, 0x01, 0x01}},
		{"zeros everywhere", make([]byte, 10), bytes.Repeat([]byte{0x01}, 11)},
		{"254 non-zero: one full block, no empty block after", seq(1, 254), cat([]byte{0xFF}, seq(1, 254))},
		{"zero then 254 non-zero", cat([]byte{0}, seq(1, 254)), cat([]byte{0x01, 0xFF}, seq(1, 254))},
		{"255 non-zero", seq(1, 255), cat([]byte{0xFF}, seq(1, 254), []byte{0x02, 0xFF})},
		{"254 non-zero then zero", cat(seq(2, 254), []byte{0}), cat([]byte{0xFF}, seq(2, 254), []byte{0x01, 0x01})},
		{"253 non-zero, zero, one", cat(seq(3, 253), []byte{0, 1}), cat([]byte{0xFE}, seq(3, 253), []byte{0x02, 0x01})},
		{"508 non-zero: two full blocks", seq(1, 508), cat([]byte{0xFF}, seq(1, 254), []byte{0xFF}, seq(0xFF, 254))},
		{"253 non-zero: one short of a full block", seq(1, 253), cat([]byte{0xFE}, seq(1, 253))},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			prefix := []byte{0xAA, 0xBB}
			got := appendCOBS(append([]byte(nil), prefix...), tt.in)
			if !bytes.Equal(got[:2], prefix) {
				t.Fatalf("prefix clobbered: % x", got[:2])
			}
			got = got[2:]
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("appendCOBS(% x)\n got % x\nwant % x", tt.in, got, tt.want)
			}
			if ref := refCOBSEncode(tt.in, false); !bytes.Equal(got, ref) {
				t.Errorf("reference encoder disagrees: % x", ref)
			}
			if bytes.IndexByte(got, 0) >= 0 {
				t.Errorf("output contains 0x00: % x", got)
			}
			l := len(tt.in)
			if bound := max(1, l+(l+253)/254); len(got) > bound {
				t.Errorf("len %d > bound %d", len(got), bound)
			}
			back, err := refCOBSDecode(got)
			if err != nil || !bytes.Equal(back, tt.in) {
				t.Errorf("decode: % x, %v; want % x", back, err, tt.in)
			}
		})
	}
}

// TestCOBSAgainstReference compares the bulk encoder with the byte-at-a-time
// one for every length up to three blocks and several zero patterns.
func TestCOBSAgainstReference(t *testing.T) {
	for n := 0; n <= 3*254+2; n++ {
		for _, every := range []int{0, 1, 2, 253, 254, 255, 300} {
			in := seq(1, n)
			if every > 0 {
				for i := every - 1; i < n; i += every {
					in[i] = 0
				}
			}
			got := appendCOBS(nil, in)
			if want := refCOBSEncode(in, false); !bytes.Equal(got, want) {
				t.Fatalf("n=%d zero every %d:\n got % x\nwant % x", n, every, got, want)
			}
		}
	}
}
