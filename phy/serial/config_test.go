package serial

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		desc string
		in   string
		want Config
	}{
		{
			desc: "path only gets defaults",
			in:   "/dev/ttyUSB0",
			want: Config{Path: "/dev/ttyUSB0", Baud: 9600, DataBits: 8, Parity: "none", StopBits: 1,
				AirRate: 9600, Mode: "stream", Carrier: "rx", Hangover: 50 * time.Millisecond, WriteTimeout: 10 * time.Second},
		},
		{
			desc: "the example from the brief",
			in:   "/dev/ttyUSB0?baud=19200&air=300&frame=256&txdelay=50ms&carrier=dcd&rtscts=1&parity=none&stop=1",
			want: Config{Path: "/dev/ttyUSB0", Baud: 19200, DataBits: 8, Parity: "none", StopBits: 1, RTSCTS: true,
				AirRate: 300, MaxFrame: 256, TXDelay: 50 * time.Millisecond, Turnaround: 50 * time.Millisecond, Mode: "stream", Carrier: "dcd",
				Hangover: 20 * 8 * time.Second / 300, WriteTimeout: 10 * time.Second},
		},
		{
			desc: "every other key",
			in:   "/dev/ttyS1?data=7&parity=even&stop=2&turnaround=1s&hangover=700ms&writetimeout=3s&rtscts=false",
			want: Config{Path: "/dev/ttyS1", Baud: 9600, DataBits: 7, Parity: "even", StopBits: 2,
				AirRate: 9600, Turnaround: time.Second, Mode: "stream", Carrier: "rx", Hangover: 700 * time.Millisecond,
				WriteTimeout: 3 * time.Second},
		},
		{
			desc: "odd baud rate, air rate defaults to it",
			in:   "/tmp/a?baud=31250",
			want: Config{Path: "/tmp/a", Baud: 31250, DataBits: 8, Parity: "none", StopBits: 1,
				AirRate: 31250, Mode: "stream", Carrier: "rx", Hangover: 50 * time.Millisecond, WriteTimeout: 10 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := ParseURL(tt.in)
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseURL(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		desc string
		in   string
		key  string // the error must name it
	}{
		{desc: "empty", in: "", key: "path"},
		{desc: "query without path", in: "?baud=9600", key: "path"},
		{desc: "unknown key", in: "/dev/x?speed=9600", key: "speed"},
		{desc: "baud not a number", in: "/dev/x?baud=fast", key: "baud"},
		{desc: "baud zero", in: "/dev/x?baud=0", key: "baud"},
		{desc: "negative air", in: "/dev/x?air=-3", key: "air"},
		{desc: "frame not a number", in: "/dev/x?frame=big", key: "frame"},
		{desc: "negative frame", in: "/dev/x?frame=-1", key: "frame"},
		{desc: "data bits", in: "/dev/x?data=9", key: "data"},
		{desc: "stop bits", in: "/dev/x?stop=3", key: "stop"},
		{desc: "parity", in: "/dev/x?parity=maybe", key: "parity"},
		{desc: "rtscts", in: "/dev/x?rtscts=yes", key: "rtscts"},
		{desc: "carrier", in: "/dev/x?carrier=cts", key: "carrier"},
		{desc: "txdelay without unit", in: "/dev/x?txdelay=50", key: "txdelay"},
		{desc: "negative hangover", in: "/dev/x?hangover=-1s", key: "hangover"},
		{desc: "turnaround", in: "/dev/x?turnaround=soon", key: "turnaround"},
		{desc: "writetimeout", in: "/dev/x?writetimeout=x", key: "writetimeout"},
		{desc: "repeated key", in: "/dev/x?baud=1200&baud=9600", key: "baud"},
		{desc: "bad escape", in: "/dev/x?baud=%zz", key: "query"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			_, err := ParseURL(tt.in)
			if err == nil {
				t.Fatalf("ParseURL(%q) = nil error, want one naming %q", tt.in, tt.key)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("ParseURL(%q) = %v, does not wrap ErrConfig", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("ParseURL(%q) = %q, does not name %q", tt.in, err, tt.key)
			}
		})
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"/dev/ttyUSB0?baud=19200&air=300&frame=256&txdelay=50ms&carrier=dcd&rtscts=1&parity=none&stop=1",
		"/dev/x", "?", "/a?b", "/a?baud=%zz", "/a?hangover=1h&writetimeout=0s&frame=0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseURL(s)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("ParseURL(%q) = %v, does not wrap ErrConfig", s, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseURL(%q) accepted %+v, which Validate rejects: %v", s, c, err)
		}
		if c.withDefaults() != c {
			t.Fatalf("ParseURL(%q) = %+v, defaults not filled in", s, c)
		}
	})
}

func BenchmarkParseURL(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseURL("/dev/ttyUSB0?baud=19200&air=300&frame=256&txdelay=50ms&carrier=dcd"); err != nil {
			b.Fatal(err)
		}
	}
}
