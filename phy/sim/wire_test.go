package sim

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		desc string
		m    message
		want []byte // encoding, when given
	}{
		{"hello", message{typ: msgHello, version: 1, node: 7}, []byte{0, 7, 1, 'S', 'L', 'S', 'M', 1, 7}},
		{"welcome", message{typ: msgWelcome, version: 1, bitRate: 9600, maxFrame: 4096}, []byte{0, 8, 2, 1, 0, 0, 0x25, 0x80, 0x10, 0}},
		{"transmit", message{typ: msgTransmit, data: []byte("abc")}, []byte{0, 4, 3, 'a', 'b', 'c'}},
		{"received", message{typ: msgReceived, data: bytes.Repeat([]byte{9}, MaxFrame)}, nil},
		{"carrier on", message{typ: msgCarrierOn}, []byte{0, 1, 5}},
		{"carrier off", message{typ: msgCarrierOff}, []byte{0, 1, 6}},
		{"tx done", message{typ: msgTxDone}, []byte{0, 1, 7}},
		{"error", message{typ: msgError, code: codeNodeInUse, data: []byte("in use")}, []byte{0, 8, 8, 3, 'i', 'n', ' ', 'u', 's', 'e'}},
		{"error without text", message{typ: msgError, code: 1, data: []byte{}}, []byte{0, 2, 8, 1}},
		{"ping", message{typ: msgPing}, []byte{0, 1, 11}},
		{"pong", message{typ: msgPong}, []byte{0, 1, 14}},
		{"frame", message{typ: msgFrame, data: []byte("ab")}, []byte{0, 3, 16, 'a', 'b'}},
		{"hello version 3", message{typ: msgHello, version: 3, node: 7}, []byte{0, 7, 1, 'S', 'L', 'S', 'M', 3, 7}},
	} {
		enc := appendMessage(nil, &tc.m)
		if tc.want != nil && !bytes.Equal(enc, tc.want) {
			t.Errorf("%s: encoding = % x, want % x", tc.desc, enc, tc.want)
		}
		got, n, err := parseMessage(enc)
		if err != nil || n != len(enc) {
			t.Errorf("%s: parseMessage = %d bytes, %v; want %d, nil", tc.desc, n, err, len(enc))
			continue
		}
		if !reflect.DeepEqual(got, tc.m) {
			t.Errorf("%s: round trip = %+v, want %+v", tc.desc, got, tc.m)
		}
		// The stream reader agrees, and a cut stream is an unexpected EOF.
		mr := newMsgReader(bytes.NewReader(enc))
		if got, err := mr.next(); err != nil || !reflect.DeepEqual(got, tc.m) {
			t.Errorf("%s: msgReader = %+v, %v", tc.desc, got, err)
		}
		if _, err := mr.next(); err != io.EOF {
			t.Errorf("%s: msgReader at end = %v, want io.EOF", tc.desc, err)
		}
		if _, err := newMsgReader(bytes.NewReader(enc[:len(enc)-1])).next(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: cut stream: err = %v, want io.ErrUnexpectedEOF", tc.desc, err)
		}
	}
}

func TestParseMessageErrors(t *testing.T) {
	for _, tc := range []struct {
		desc string
		in   []byte
		want error
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"one byte", []byte{0}, io.ErrUnexpectedEOF},
		{"short body", []byte{0, 3, 3, 'a'}, io.ErrUnexpectedEOF},
		{"zero length", []byte{0, 0}, errBadMessage},
		{"too long", []byte{0xFF, 0xFF, 3}, errBadMessage},
		{"unknown type", []byte{0, 1, 99}, errBadMessage},
		{"type zero", []byte{0, 1, 0}, errBadMessage},
		{"hello bad magic", []byte{0, 7, 1, 'X', 'L', 'S', 'M', 1, 7}, errBadMessage},
		{"hello short", []byte{0, 3, 1, 'S', 'L'}, errBadMessage},
		{"welcome short", []byte{0, 2, 2, 1}, errBadMessage},
		{"empty transmit", []byte{0, 1, 3}, errBadMessage},
		{"empty frame", []byte{0, 1, 16}, errBadMessage},
		{"carrier with body", []byte{0, 2, 5, 0}, errBadMessage},
		{"error without code", []byte{0, 1, 8}, errBadMessage},
	} {
		if _, _, err := parseMessage(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.desc, err, tc.want)
		}
	}
	if _, err := newMsgReader(strings.NewReader("\xff\xff junk")).next(); !errors.Is(err, errBadMessage) {
		t.Errorf("msgReader on a bad length: err = %v, want errBadMessage", err)
	}
}

func FuzzMessageDecoder(f *testing.F) {
	for _, m := range []message{
		{typ: msgHello, version: 1, node: 7},
		{typ: msgWelcome, version: 1, bitRate: 1200, maxFrame: 4096},
		{typ: msgTransmit, data: []byte("burst")},
		{typ: msgReceived, data: []byte{0}},
		{typ: msgCarrierOn}, {typ: msgCarrierOff}, {typ: msgTxDone},
		{typ: msgError, code: 3, data: []byte("node id in use")},
		{typ: msgPing}, {typ: msgPong}, {typ: msgHello, version: 2, node: 9},
		{typ: msgHello, version: 3, node: 9}, {typ: msgFrame, data: []byte("frame")},
	} {
		f.Add(appendMessage(nil, &m))
	}
	f.Add([]byte{0xFF, 0xFF})
	f.Add([]byte("\x00\x02\x03"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, n, err := parseMessage(in)
		// The stream reader must agree with the buffer decoder.
		sm, serr := newMsgReader(bytes.NewReader(in)).next()
		if (err == nil) != (serr == nil) {
			t.Fatalf("parseMessage err %v, msgReader err %v", err, serr)
		}
		if err != nil {
			return
		}
		if n < 3 || n > len(in) {
			t.Fatalf("consumed %d of %d bytes", n, len(in))
		}
		if !reflect.DeepEqual(m, sm) {
			t.Fatalf("parseMessage %+v, msgReader %+v", m, sm)
		}
		// Canonical: re-encoding gives back the bytes consumed.
		enc := appendMessage(nil, &m)
		if !bytes.Equal(enc, in[:n]) {
			t.Fatalf("re-encoding = % x, input % x", enc, in[:n])
		}
		m2, n2, err := parseMessage(enc)
		if err != nil || n2 != n || !reflect.DeepEqual(m, m2) {
			t.Fatalf("second decode = %+v, %d, %v", m2, n2, err)
		}
	})
}
