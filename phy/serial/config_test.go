package serial

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/link"
	"github.com/slided/slided/phy"
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
		{
			desc: "packet mode: gap of 20 characters, turnaround txdelay+gap, no carrier",
			in:   "/dev/x?baud=19200&air=2400&frame=256&txdelay=0.25s&mode=packet",
			want: Config{Path: "/dev/x", Baud: 19200, DataBits: 8, Parity: "none", StopBits: 1, AirRate: 2400,
				MaxFrame: 256, TXDelay: 250 * time.Millisecond, Mode: "packet", Gap: 200 * time.Second / 19200,
				Turnaround: 250*time.Millisecond + 200*time.Second/19200, Carrier: "none",
				Hangover: phy.Airtime(20, 2400), WriteTimeout: 10 * time.Second},
		},
		{
			desc: "packet mode with its own gap, range in metres, carrier from received bytes",
			in:   "/dev/x?baud=9600&air=300&mode=packet&gap=50ms&range=3000&carrier=rx&turnaround=2s",
			want: Config{Path: "/dev/x", Baud: 9600, DataBits: 8, Parity: "none", StopBits: 1, AirRate: 300,
				Mode: "packet", Gap: 50 * time.Millisecond, PropDelay: 2 * time.Second, Turnaround: 2 * time.Second,
				Carrier: "rx", Hangover: phy.Airtime(20, 300), WriteTimeout: 10 * time.Second},
		},
		{
			desc: "parity and two stop bits lengthen the default gap",
			in:   "/dev/x?baud=1200&parity=even&stop=2&mode=packet&prop=700ms",
			want: Config{Path: "/dev/x", Baud: 1200, DataBits: 8, Parity: "even", StopBits: 2, AirRate: 1200,
				Mode: "packet", Gap: 20 * 12 * time.Second / 1200, Turnaround: 20 * 12 * time.Second / 1200,
				PropDelay: 700 * time.Millisecond, Carrier: "none", Hangover: phy.Airtime(20, 1200), WriteTimeout: 10 * time.Second},
		},
		{
			desc: "the issue's modem as a profile",
			in:   "/dev/ttyUSB0?profile=acoustic-2400",
			want: Config{Profile: "acoustic-2400", Path: "/dev/ttyUSB0", Baud: 19200, DataBits: 8, Parity: "none",
				StopBits: 1, AirRate: 2400, MaxFrame: 256, TXDelay: 250 * time.Millisecond, Mode: "packet",
				Gap: 200 * time.Second / 19200, Turnaround: 250*time.Millisecond + 200*time.Second/19200,
				PropDelay: time.Second, Carrier: "none", Hangover: phy.Airtime(20, 2400), WriteTimeout: 10 * time.Second},
		},
		{
			desc: "keys override the profile, whatever their order",
			in:   "/dev/ttyUSB0?range=750&frame=128&profile=acoustic-2400&carrier=rx&hangover=1s",
			want: Config{Profile: "acoustic-2400", Path: "/dev/ttyUSB0", Baud: 19200, DataBits: 8, Parity: "none",
				StopBits: 1, AirRate: 2400, MaxFrame: 128, TXDelay: 250 * time.Millisecond, Mode: "packet",
				Gap: 200 * time.Second / 19200, Turnaround: 250*time.Millisecond + 200*time.Second/19200,
				PropDelay: 500 * time.Millisecond, Carrier: "rx", Hangover: time.Second, WriteTimeout: 10 * time.Second},
		},
		{
			desc: "carrier none in stream mode",
			in:   "/dev/x?carrier=none&mode=stream",
			want: Config{Path: "/dev/x", Baud: 9600, DataBits: 8, Parity: "none", StopBits: 1,
				AirRate: 9600, Mode: "stream", Carrier: "none", Hangover: 50 * time.Millisecond, WriteTimeout: 10 * time.Second},
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
		{desc: "txdelay beyond an hour", in: "/dev/x?txdelay=2562047h", key: "txdelay"},
		{desc: "writetimeout beyond an hour", in: "/dev/x?writetimeout=61m", key: "writetimeout"},
		{desc: "frame below a link Ack", in: "/dev/x?frame=19", key: "frame"},
		{desc: "profile frame overridden below a link Ack", in: "/dev/x?profile=acoustic-2400&frame=8", key: "frame"},
		{desc: "frame beyond any modem", in: "/dev/x?frame=99999999999", key: "frame"},
		{desc: "unknown mode", in: "/dev/x?mode=burst", key: "mode"},
		{desc: "negative gap", in: "/dev/x?mode=packet&gap=-1ms", key: "gap"},
		{desc: "prop not a duration", in: "/dev/x?prop=far", key: "prop"},
		{desc: "negative range", in: "/dev/x?range=-5", key: "range"},
		{desc: "range beyond any water", in: "/dev/x?range=1e9", key: "range"},
		{desc: "range not a number", in: "/dev/x?range=NaN", key: "range"},
		{desc: "prop and range", in: "/dev/x?prop=1s&range=1500", key: "range"},
		{desc: "unknown profile", in: "/dev/x?profile=evologics", key: "profile"},
		{desc: "empty profile", in: "/dev/x?profile=", key: "profile"},
		{desc: "repeated profile", in: "/dev/x?profile=acoustic-2400&profile=acoustic-300", key: "profile"},
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

// TestMinFrame pins MinFrame to the framing it stands for: the largest
// unsealed link Ack, encoded. A data fragment with one byte is smaller.
func TestMinFrame(t *testing.T) {
	if got := framing.MaxEncodedLen(framing.AckMaxLen); got != MinFrame {
		t.Errorf("largest encoded Ack is %d bytes, MinFrame %d", got, MinFrame)
	}
	if got := framing.MaxEncodedLen(framing.FragHeaderLen + 1); got > MinFrame {
		t.Errorf("smallest data frame is %d bytes, above MinFrame %d", got, MinFrame)
	}
}

// TestProfiles: every profile is valid on its own, carries slided's
// frames, and names itself.
func TestProfiles(t *testing.T) {
	for _, p := range Profiles {
		t.Run(p.Name, func(t *testing.T) {
			c, err := ParseURL("/dev/x?profile=" + p.Name)
			if err != nil {
				t.Fatal(err)
			}
			if c.Profile != p.Name || p.Doc == "" || p.Config.Path != "" {
				t.Errorf("profile %q: Profile %q, Doc %q, Path %q", p.Name, c.Profile, p.Doc, p.Config.Path)
			}
			if c.MaxFrame != 0 && c.MaxFrame < MinFrame {
				t.Errorf("frame %d below MinFrame", c.MaxFrame)
			}
			t.Logf("%s: mode %s, burst of %d bytes %v, MTU %d, prop %v", p.Name, c.Mode, c.MaxFrame,
				c.BurstTime(c.MaxFrame), c.RecommendedMTU(), c.PropDelay)
		})
	}
}

func TestBurstTime(t *testing.T) {
	tests := []struct {
		desc string
		in   string
		n    int
		want time.Duration
	}{
		{desc: "stream: preamble and airtime", in: "/x?baud=19200&air=2400&txdelay=250ms", n: 110,
			want: 250*time.Millisecond + 110*8*time.Second/2400},
		// The modem: 110 bytes take 57.3 ms on the line, 10.4 ms of
		// gap, 0.25 s of preamble and 0.367 s on air.
		{desc: "packet: serial time, gap, preamble, airtime", in: "/x?profile=acoustic-2400", n: 110,
			want: 110*10*time.Second/19200 + 200*time.Second/19200 + 250*time.Millisecond + 110*8*time.Second/2400},
		{desc: "packet with 7E2 and a set gap", in: "/x?baud=9600&data=7&parity=even&stop=2&air=300&mode=packet&gap=1s", n: 30,
			want: 30*11*time.Second/9600 + time.Second + 30*8*time.Second/300},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			c, err := ParseURL(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.BurstTime(tt.n); got != tt.want {
				t.Errorf("BurstTime(%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
}

func TestRecommendedMTU(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{in: "/x", want: 1500},                              // 9600 bit/s: 1.3 s
		{in: "/x?air=2400&frame=256", want: 1280},           // stream, no preamble: 4.5 s
		{in: "/x?profile=acoustic-2400", want: 576},         // 1280 would hold the modem 6.8 s
		{in: "/x?profile=acoustic-300", want: 296},          // even 576 takes 23 s
		{in: "/x?air=300&txdelay=1s", want: 296},            // no frame limit, one burst
		{in: "/x?air=19200&frame=64", want: 1500},           // small packets, fast air
		{in: "/x?air=2400&frame=20&mode=packet", want: 296}, // 576 needs 99 fragments of 6 bytes
	}
	for _, tt := range tests {
		c, err := ParseURL(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.RecommendedMTU(); got != tt.want {
			k, hold := c.holdTime(1294)
			t.Errorf("%s: RecommendedMTU = %d, want %d (a 1294-byte frame: %d fragments, %v)", tt.in, got, tt.want, k, hold)
		}
	}
}

// TestRecommendedMTUFitsTheLink: the daemon accepts every packet size with
// the MTU recommended for it (the link layer's fragment limit).
func TestRecommendedMTUFitsTheLink(t *testing.T) {
	for frame := MinFrame; frame <= 2000; frame++ {
		c := Config{Path: "/x", AirRate: 1_000_000, MaxFrame: frame}
		mtu := c.RecommendedMTU()
		if err := link.CheckFrameMax(link.Config{FrameMax: frame, MTU: mtu}); err != nil {
			t.Fatalf("frame=%d: RecommendedMTU %d: %v", frame, mtu, err)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"/dev/x?profile=acoustic-2400&range=1500&frame=64", "/x?mode=packet&gap=1ms&prop=2s&carrier=none",
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
		if mtu := c.RecommendedMTU(); mtu < 296 || mtu > 1500 {
			t.Fatalf("ParseURL(%q): RecommendedMTU %d", s, mtu)
		}
		if c.BurstTime(max(c.MaxFrame, 1)) < 0 {
			t.Fatalf("ParseURL(%q): negative BurstTime", s)
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
