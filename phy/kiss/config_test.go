package kiss

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/kiss/kissproto"
)

func TestParseTCP(t *testing.T) {
	tests := []struct {
		desc    string
		in      string
		want    func(*Config)
		wantErr string // substring; "" means no error
	}{
		{"address only keeps defaults", "127.0.0.1:8001", func(c *Config) {}, ""},
		{"all keys", "127.0.0.1:8001?air=9600&txdelay=30ms&persist=255&slot=10ms&txtail=0s&fullduplex=1&port=2&maxframe=1024",
			func(c *Config) {
				c.AirRate, c.TXDelay, c.Persistence, c.SlotTime, c.TXTail = 9600, 30*time.Millisecond, 255, 10*time.Millisecond, 0
				c.FullDuplex, c.Port, c.MaxFrame = true, 2, 1024
			}, ""},
		{"fullduplex=0", "[::1]:8001?fullduplex=0", func(c *Config) {}, ""},
		{"unknown key named", "127.0.0.1:8001?air=9600&bogus=1", nil, `unknown key "bogus"`},
		{"baud is serial only", "127.0.0.1:8001?baud=9600", nil, `"baud" is for kiss-serial only`},
		{"no port", "127.0.0.1", nil, "address"},
		{"persist out of range", "127.0.0.1:8001?persist=256", nil, `key "persist"`},
		{"txdelay too long", "127.0.0.1:8001?txdelay=3s", nil, `key "txdelay"`},
		{"txdelay not a duration", "127.0.0.1:8001?txdelay=30", nil, `key "txdelay"`},
		{"port out of range", "127.0.0.1:8001?port=16", nil, `key "port"`},
		{"repeated key", "127.0.0.1:8001?air=1200&air=9600", nil, "2 times"},
		{"air zero", "127.0.0.1:8001?air=0", nil, `key "air"`},
		{"burst and its airtime", "127.0.0.1:8001?burst=32&burstair=30s", func(c *Config) { c.Burst, c.BurstAir = 32, 30*time.Second }, ""},
		{"burstair too short", "127.0.0.1:8001?burstair=10ms", nil, `key "burstair"`},
		{"burstair too long", "127.0.0.1:8001?burstair=11m", nil, `key "burstair"`},
		{"tot", "127.0.0.1:8001?tot=3m", func(c *Config) { c.TOT = 3 * time.Minute }, ""},
		{"tot too short", "127.0.0.1:8001?tot=1s", nil, `key "tot"`},
	}
	for _, tt := range tests {
		got, err := ParseTCP(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrConfig) {
				t.Errorf("%s: error %v, want ErrConfig containing %q", tt.desc, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.desc, err)
			continue
		}
		want := Defaults()
		want.Addr, _, _ = strings.Cut(tt.in, "?")
		tt.want(&want)
		if got.Addr != want.Addr || got.AirRate != want.AirRate || got.TXDelay != want.TXDelay ||
			got.Persistence != want.Persistence || got.SlotTime != want.SlotTime || got.TXTail != want.TXTail ||
			got.FullDuplex != want.FullDuplex || got.Port != want.Port || got.MaxFrame != want.MaxFrame || got.Baud != want.Baud ||
			got.Burst != want.Burst || got.BurstAir != want.BurstAir || got.TOT != want.TOT {
			t.Errorf("%s: got %+v, want %+v", tt.desc, got, want)
		}
	}
}

func TestParseSerial(t *testing.T) {
	tests := []struct {
		desc      string
		in        string
		dev       string
		baud, air int
		wantErr   string
	}{
		{"device and keys", "/dev/ttyUSB0?baud=19200&air=1200", "/dev/ttyUSB0", 19200, 1200, ""},
		{"device only", "/dev/ttyS1", "/dev/ttyS1", DefaultBaud, DefaultAirRate, ""},
		{"no device", "?baud=9600", "", 0, 0, "no device"},
		{"unknown key", "/dev/ttyS1?speed=9600", "", 0, 0, `unknown key "speed"`},
	}
	for _, tt := range tests {
		got, err := ParseSerial(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", tt.desc, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.Device != tt.dev || got.Baud != tt.baud || got.AirRate != tt.air || got.Addr != "" {
			t.Errorf("%s: got %+v, %v; want device %s baud %d air %d", tt.desc, got, err, tt.dev, tt.baud, tt.air)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	base := Defaults()
	base.Addr = "127.0.0.1:8001"
	tests := []struct {
		desc string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults with an address", func(c *Config) {}, true},
		{"both addr and device", func(c *Config) { c.Device = "/dev/ttyS0" }, false},
		{"neither", func(c *Config) { c.Addr = "" }, false},
		{"no air rate", func(c *Config) { c.AirRate = 0 }, false},
		{"port 16", func(c *Config) { c.Port = 16 }, false},
		{"negative persistence", func(c *Config) { c.Persistence = -1 }, false},
		{"slot too long", func(c *Config) { c.SlotTime = 3 * time.Second }, false},
		{"tiny max frame", func(c *Config) { c.MaxFrame = 20 }, false},
		{"zero max frame takes the default", func(c *Config) { c.MaxFrame = 0 }, true},
	}
	for _, tt := range tests {
		c := base
		tt.mod(&c)
		err := c.check()
		if (err == nil) != tt.ok {
			t.Errorf("%s: check() = %v, want ok=%v", tt.desc, err, tt.ok)
		}
	}
}

// TestBurstAirFromTOT: the burst airtime bound follows the radio's
// transmitter time-out (60 s unless told) less TXDELAY, TXTAIL and a tenth
// for the TNC's framing; one beyond it is refused. Before, the bound was a
// flat 30 s whatever the radio allowed, and tot was an unknown key.
func TestBurstAirFromTOT(t *testing.T) {
	tests := []struct {
		desc    string
		url     string
		want    time.Duration
		wantErr string
	}{
		{"defaults: 60 s less 0.4 s, less a tenth", "127.0.0.1:8001?air=9600", 53640 * time.Millisecond, ""},
		{"a 3 minute timer", "127.0.0.1:8001?air=9600&tot=3m", 161640 * time.Millisecond, ""},
		{"a 30 s timer, short txdelay", "127.0.0.1:8001?air=9600&tot=30s&txdelay=50ms&txtail=10ms", 26946 * time.Millisecond, ""},
		{"burstair inside the timer", "127.0.0.1:8001?air=9600&burstair=20s", 20 * time.Second, ""},
		{"burstair beyond the timer", "127.0.0.1:8001?air=9600&burstair=60s", 0, "transmitter time-out"},
		{"burstair beyond a short timer", "127.0.0.1:8001?air=9600&tot=20s&burstair=30s", 0, "transmitter time-out"},
	}
	for _, tt := range tests {
		c, err := ParseTCP(tt.url)
		if err == nil {
			err = c.check()
		}
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrConfig) {
				t.Errorf("%s: error %v, want ErrConfig containing %q", tt.desc, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.desc, err)
			continue
		}
		if c.BurstAir != tt.want {
			t.Errorf("%s: BurstAir %v, want %v", tt.desc, c.BurstAir, tt.want)
		}
		// What the TNC would send in one key-up at that bound stays
		// inside the timer: 1044-byte frames, TXDELAY and TXTAIL.
		frames := int(c.BurstAir / phy.Airtime(1044, c.AirRate))
		b := bytes.Repeat(append(bytes.Repeat([]byte{1}, 1043), 0), frames)
		if d := c.BurstTime(b); d > c.TOT {
			t.Errorf("%s: %d frames take %v on air, beyond the %v time-out", tt.desc, frames, d, c.TOT)
		}
	}
}

func TestTxTime(t *testing.T) {
	tests := []struct {
		desc string
		cfg  Config
		n    int
		want time.Duration
	}{
		// (1000+2)*8 = 8016 bits, +250 stuffing, +8 flag = 8274 bits.
		{"1000 bytes at 9600, no delays", Config{AirRate: 9600}, 1000, 861875 * time.Microsecond},
		{"plus txdelay and tail", Config{AirRate: 9600, TXDelay: 30 * time.Millisecond, TXTail: 10 * time.Millisecond}, 1000,
			(861875 + 40000) * time.Microsecond},
		// (100+2)*8 = 816, +25, +8 = 849 bits at 1200 = 707.5 ms.
		{"100 bytes at 1200", Config{AirRate: 1200}, 100, 707500 * time.Microsecond},
		{"no air rate", Config{}, 100, 0},
	}
	for _, tt := range tests {
		if got := tt.cfg.TxTime(tt.n); got != tt.want {
			t.Errorf("%s: TxTime(%d) = %v, want %v", tt.desc, tt.n, got, tt.want)
		}
	}
}

func TestAccessWait(t *testing.T) {
	slot := 30 * time.Millisecond
	tests := []struct {
		desc string
		cfg  Config
		want time.Duration
	}{
		{"P 255: p = 1, the first slot", Config{Persistence: 255, SlotTime: slot}, slot},
		{"P 127: p = 1/2, two slots", Config{Persistence: 127, SlotTime: slot}, 2 * slot},
		{"P 63: p = 1/4, four slots", Config{Persistence: 63, SlotTime: slot}, 4 * slot},
		{"P 0: p = 1/256, 256 slots", Config{Persistence: 0, SlotTime: slot}, 256 * slot},
		{"full duplex keys up at once", Config{Persistence: 63, SlotTime: slot, FullDuplex: true}, 0},
	}
	for _, tt := range tests {
		if got := tt.cfg.AccessWait(); got != tt.want {
			t.Errorf("%s: AccessWait = %v, want %v", tt.desc, got, tt.want)
		}
	}
}

func TestMaxBurst(t *testing.T) {
	tests := []struct {
		desc     string
		maxFrame int
		want     int
	}{
		{"Dire Wolf", 2048, 2045},
		{"default", 0, 2045},
		{"odd", 2049, 2046},
	}
	for _, tt := range tests {
		c := Config{MaxFrame: tt.maxFrame}
		got := c.MaxBurst()
		if got != tt.want {
			t.Errorf("%s: MaxBurst() = %d, want %d", tt.desc, got, tt.want)
		}
		// A burst of MaxBurst bytes that needs no escape fills the frame
		// limit exactly; one escape more does not fit.
		limit := tt.maxFrame
		if limit == 0 {
			limit = DefaultMaxFrame
		}
		plain := kissproto.AppendFrame(nil, 0, kissproto.CmdData, bytes.Repeat([]byte{'x'}, got))
		if len(plain) != limit {
			t.Errorf("%s: unescaped burst of %d bytes is a %d-byte frame, want %d", tt.desc, got, len(plain), limit)
		}
	}
}

// TestFrameLen: FrameLen is the length kissproto.AppendFrame produces,
// escapes of the data and of the type byte included.
func TestFrameLen(t *testing.T) {
	tests := []struct {
		desc string
		port byte
		b    []byte
		want int
	}{
		{"empty", 0, nil, 3},
		{"plain", 0, []byte("hello"), 8},
		{"one FEND", 0, []byte{1, kissproto.FEND, 2}, 7},
		{"one FESC", 0, []byte{1, kissproto.FESC, 2}, 7},
		{"TFEND and TFESC need no escape", 0, []byte{kissproto.TFEND, kissproto.TFESC}, 5},
		{"all special", 3, bytes.Repeat([]byte{kissproto.FEND, kissproto.FESC}, 100), 403},
		{"port 12: the type byte is FEND", 12, []byte("hello"), 9},
		{"port 13: type byte 0xD0, no escape", 13, []byte("hello"), 8},
	}
	for _, tt := range tests {
		c := Config{Port: tt.port}
		got := c.FrameLen(tt.b)
		if got != tt.want {
			t.Errorf("%s: FrameLen = %d, want %d", tt.desc, got, tt.want)
		}
		if enc := kissproto.AppendFrame(nil, tt.port, kissproto.CmdData, tt.b); len(enc) != got {
			t.Errorf("%s: FrameLen = %d, kissproto.AppendFrame made %d bytes", tt.desc, got, len(enc))
		}
	}
}

func BenchmarkFrameLen(b *testing.B) {
	c := Defaults()
	burst := make([]byte, 1044)
	for i := range burst {
		burst[i] = byte(i * 7)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(burst)))
	for b.Loop() {
		c.FrameLen(burst)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		desc    string
		attempt int
		want    time.Duration
	}{
		{"first", 0, 500 * time.Millisecond},
		{"second", 1, time.Second},
		{"fifth", 4, 8 * time.Second},
		{"capped", 6, 30 * time.Second},
		{"far beyond", 1000, 30 * time.Second},
	}
	for _, tt := range tests {
		if got := backoff(tt.attempt); got != tt.want {
			t.Errorf("%s: backoff(%d) = %v, want %v", tt.desc, tt.attempt, got, tt.want)
		}
	}
}

func TestParamFrames(t *testing.T) {
	cfg := Config{Addr: "x:1", Port: 1, AirRate: 9600, TXDelay: 35 * time.Millisecond, Persistence: 200,
		SlotTime: 20 * time.Millisecond, TXTail: 0, FullDuplex: true}
	tn := &TNC{cfg: cfg}
	want := []byte{
		0xC0, 0x11, 4, 0xC0, // TXDELAY 35 ms rounds to 4
		0xC0, 0x12, 200, 0xC0,
		0xC0, 0x13, 2, 0xC0,
		0xC0, 0x14, 0, 0xC0,
		0xC0, 0x15, 1, 0xC0,
	}
	if got := tn.paramFrames(); !bytes.Equal(got, want) {
		t.Fatalf("param frames % x, want % x", got, want)
	}
}
