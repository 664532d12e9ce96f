// Package serial drives a raw serial modem: a device that takes bytes on a
// serial port and puts them on air at its own, usually much lower, air rate,
// with a largest packet, perhaps a DCD line for carrier sense and RTS/CTS flow
// control. A Port paces bursts by the air rate, senses carrier from DCD or from
// receive activity, watches for writes that never finish and reopens the
// device after it went away (USB unplugged, pty master closed).
//
// The line is configured with go.bug.st/serial (raw mode, baud rate including
// odd rates, parity, stop bits, modem status bits). The bytes themselves go
// through a second, non-blocking descriptor of the same tty registered with
// the Go runtime poller, because the library's Write cannot be interrupted
// and its Read uses select(2), which breaks for descriptors >= 1024. See
// docs/modems.md, "Raw serial modems".
package serial

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/internal/tty"
)

// Carrier-sense sources for Config.Carrier.
const (
	// CarrierDCD polls the DCD modem-status line.
	CarrierDCD = "dcd"
	// CarrierRx infers carrier from received bytes, held for Config.Hangover.
	CarrierRx = "rx"
	// CarrierNone reports no carrier at all: a transparent modem that says
	// nothing until it decoded a whole packet, when the packet is over.
	CarrierNone = "none"
)

// Modem models for Config.Mode.
const (
	// ModeStream: bytes go on air as they arrive on the serial line, after
	// one preamble (TXDelay) per burst.
	ModeStream = "stream"
	// ModePacket: store and forward. The modem collects the burst from the
	// serial line, keys up only once no byte came for Config.Gap (or the
	// packet is full), sends its preamble and then the packet at the air
	// rate; the far modem hands the packet on once it has all of it.
	ModePacket = "packet"
)

// SoundSpeed is the speed of sound in water, m/s, with which range= turns a
// distance into a propagation delay.
const SoundSpeed = 1500

// MinFrame is the smallest packet (frame=) slided's link layer can use: its
// largest unsealed link Ack, COBS-encoded with header and CRC (20 bytes); a
// data fragment with one byte takes 15. With a key, or with a large MTU (a
// packet in at most 64 fragments), the daemon needs more and says so at
// start.
const MinFrame = 20

// Defaults applied by Config.withDefaults for fields left zero.
const (
	DefaultBaud         = 9600
	DefaultWriteTimeout = 10 * time.Second
	// DefaultGapChars is the default end-of-packet gap in packet mode, in
	// character times at the serial rate: a typical character timeout, and
	// what the acoustic emulator (internal/acoustic) uses.
	DefaultGapChars = 20
	// MTUHold bounds how long one full-sized packet may keep the modem busy
	// for RecommendedMTU.
	MTUHold = 5 * time.Second
	// maxRange bounds range= (m): 100 km of water is over a minute.
	maxRange = 100_000
	// maxFrame bounds frame=: no serial modem buffers more than this.
	maxFrame = 1 << 20
	// maxDuration bounds every duration key, so that sums of them cannot
	// overflow.
	maxDuration = time.Hour
	// minHangover is the least default hang-over: 20 byte times at the air
	// rate, but never below this.
	minHangover = 50 * time.Millisecond
)

// Config describes a raw serial modem. The zero value of every field but
// Path means "default".
type Config struct {
	// Profile is the name of the preset (Profiles) the other fields started
	// from, "" for none. Keys given with it override the preset.
	Profile string
	// Path is the serial device, e.g. /dev/ttyUSB0 or a stable
	// /dev/serial/by-id/... symlink (the symlink is resolved at each open).
	Path string
	// Baud is the serial line rate (default 9600). Odd rates are set with
	// BOTHER by the library.
	Baud int
	// DataBits is 5..8 (default 8).
	DataBits int
	// Parity is none (default), odd, even, mark or space.
	Parity string
	// StopBits is 1 (default) or 2.
	StopBits int
	// RTSCTS enables hardware flow control (CRTSCTS).
	RTSCTS bool
	// AirRate is the modem's rate on air in bit/s (default: Baud). Bursts are
	// paced by it.
	AirRate int
	// MaxFrame is the largest burst the modem takes in one packet; a longer
	// Transmit is refused. 0: no limit.
	MaxFrame int
	// TXDelay is the time the modem spends keying up and sending its
	// preamble before the first byte is on air; it is added to each burst.
	TXDelay time.Duration
	// Turnaround is what Info reports: the time between receiving and
	// having a burst on air (the Ack's key-up). It does not change pacing.
	// Default: TXDelay, plus Gap in packet mode.
	Turnaround time.Duration
	// Mode is ModeStream (default) or ModePacket.
	Mode string
	// Gap is the modem's end-of-packet gap in packet mode: how long the
	// serial line must be quiet before the modem keys up. Default:
	// DefaultGapChars character times at Baud. Ignored in stream mode.
	Gap time.Duration
	// PropDelay is the one-way propagation delay to the farthest node
	// (prop=, or range= in metres at SoundSpeed). The port does not use it;
	// the daemon takes it as its -prop-delay default.
	PropDelay time.Duration
	// Carrier is CarrierRx, CarrierDCD or CarrierNone. Default: CarrierRx
	// in stream mode, CarrierNone in packet mode.
	Carrier string
	// Hangover is how long carrier stays on after the last received byte
	// (CarrierRx only). Default: 20 byte times at the air rate, at least 50 ms.
	Hangover time.Duration
	// WriteTimeout bounds how long a burst may take beyond its paced airtime
	// before the port is declared down and reopened (default 10 s).
	WriteTimeout time.Duration
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Baud == 0 {
		c.Baud = DefaultBaud
	}
	if c.DataBits == 0 {
		c.DataBits = 8
	}
	if c.Parity == "" {
		c.Parity = "none"
	}
	if c.StopBits == 0 {
		c.StopBits = 1
	}
	if c.AirRate == 0 {
		c.AirRate = c.Baud
	}
	if c.Mode == "" {
		c.Mode = ModeStream
	}
	if c.Mode == ModePacket && c.Gap == 0 {
		c.Gap = c.charTime(DefaultGapChars)
	}
	if c.Turnaround == 0 {
		c.Turnaround = c.TXDelay
		if c.Mode == ModePacket {
			c.Turnaround += c.Gap
		}
	}
	if c.Carrier == "" {
		c.Carrier = CarrierRx
		if c.Mode == ModePacket {
			c.Carrier = CarrierNone
		}
	}
	if c.Hangover == 0 {
		c.Hangover = max(phy.Airtime(20, c.AirRate), minHangover)
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	return c
}

// ErrConfig is wrapped by every configuration and URL error.
var ErrConfig = errors.New("serial config")

func cfgErr(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, key, fmt.Sprintf(format, args...))
}

// Validate reports the first invalid field (after defaults), naming it.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Path == "":
		return cfgErr("path", "empty")
	case c.Baud < 0:
		return cfgErr("baud", "negative")
	case c.DataBits < 5 || c.DataBits > 8:
		return cfgErr("data", "%d bits, want 5..8", c.DataBits)
	case c.StopBits != 1 && c.StopBits != 2:
		return cfgErr("stop", "%d stop bits, want 1 or 2", c.StopBits)
	case c.AirRate < 0:
		return cfgErr("air", "negative")
	case c.MaxFrame < 0:
		return cfgErr("frame", "negative")
	case c.MaxFrame > maxFrame:
		return cfgErr("frame", "%d bytes, at most %d", c.MaxFrame, maxFrame)
	case c.MaxFrame > 0 && c.MaxFrame < MinFrame:
		return cfgErr("frame", "%d bytes is smaller than the smallest frame slided sends (%d: a link Ack with its header, CRC and COBS overhead)", c.MaxFrame, MinFrame)
	case c.Mode != ModeStream && c.Mode != ModePacket:
		return cfgErr("mode", "%q, want %q or %q", c.Mode, ModeStream, ModePacket)
	case c.Gap < 0:
		return cfgErr("gap", "negative")
	case c.PropDelay < 0:
		return cfgErr("prop", "negative")
	case c.TXDelay < 0:
		return cfgErr("txdelay", "negative")
	case c.Turnaround < 0:
		return cfgErr("turnaround", "negative")
	case c.Hangover < 0:
		return cfgErr("hangover", "negative")
	case c.WriteTimeout < 0:
		return cfgErr("writetimeout", "negative")
	case max(c.TXDelay, c.Turnaround, c.Gap, c.PropDelay, c.Hangover, c.WriteTimeout) > maxDuration:
		return cfgErr("duration", "txdelay, turnaround, gap, prop, hangover and writetimeout are at most %v", maxDuration)
	case c.Carrier != CarrierRx && c.Carrier != CarrierDCD && c.Carrier != CarrierNone:
		return cfgErr("carrier", "%q, want %q, %q or %q", c.Carrier, CarrierDCD, CarrierRx, CarrierNone)
	}
	if _, err := parseParity(c.Parity); err != nil {
		return err
	}
	if err := tty.CheckBaud(c.Baud); err != nil {
		return cfgErr("baud", "%v", err)
	}
	return nil
}

// ParseURL parses the part after "serial:" of -phy: a device path, then
// optional settings as a query, e.g.
//
//	/dev/ttyUSB0?baud=19200&air=300&frame=256&txdelay=50ms&carrier=dcd&rtscts=1&parity=none&stop=1
//	/dev/ttyUSB0?profile=acoustic-2400&range=3000
//
// Keys: profile, baud, data, parity, stop, rtscts, air, frame, txdelay,
// turnaround, mode, gap, prop, range, carrier, hangover, writetimeout.
// profile= starts from a preset (Profiles) and the other keys override it.
// Durations use Go syntax (50ms, 1s); range is in metres. Unknown or
// repeated keys, prop with range, and bad values are errors that name the
// key and wrap ErrConfig. The result has defaults filled in.
func ParseURL(s string) (Config, error) {
	path, query, _ := strings.Cut(s, "?")
	if path == "" {
		return Config{}, cfgErr("path", "empty")
	}
	vals, err := url.ParseQuery(query)
	if err != nil {
		return Config{}, fmt.Errorf("%w: query: %w", ErrConfig, err)
	}
	for key, vs := range vals {
		if len(vs) != 1 {
			return Config{}, cfgErr(key, "given %d times", len(vs))
		}
	}
	var c Config
	if vals.Has("profile") {
		name := vals.Get("profile")
		p, ok := LookupProfile(name)
		if !ok {
			return Config{}, cfgErr("profile", "%q is not a known profile (known: %s)", name, profileNames())
		}
		c = p.Config
	}
	c.Path = path
	if vals.Has("prop") && vals.Has("range") {
		return Config{}, cfgErr("range", "give prop (a delay) or range (metres), not both")
	}
	for key, vs := range vals {
		if key == "profile" {
			continue
		}
		if err := c.set(key, vs[0]); err != nil {
			return Config{}, err
		}
	}
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c *Config) set(key, v string) error {
	var err error
	switch key {
	case "baud":
		c.Baud, err = parsePositive(key, v)
	case "data":
		c.DataBits, err = parsePositive(key, v)
	case "stop":
		c.StopBits, err = parsePositive(key, v)
	case "air":
		c.AirRate, err = parsePositive(key, v)
	case "frame":
		c.MaxFrame, err = strconv.Atoi(v)
		if err != nil || c.MaxFrame < 0 {
			return cfgErr(key, "%q is not a byte count", v)
		}
	case "parity":
		if _, err := parseParity(v); err != nil {
			return err
		}
		c.Parity = v
	case "rtscts":
		c.RTSCTS, err = strconv.ParseBool(v)
		if err != nil {
			return cfgErr(key, "%q is not a boolean", v)
		}
	case "carrier":
		if v != CarrierDCD && v != CarrierRx && v != CarrierNone {
			return cfgErr(key, "%q, want %q, %q or %q", v, CarrierDCD, CarrierRx, CarrierNone)
		}
		c.Carrier = v
	case "mode":
		if v != ModeStream && v != ModePacket {
			return cfgErr(key, "%q, want %q or %q", v, ModeStream, ModePacket)
		}
		c.Mode = v
	case "gap":
		c.Gap, err = parseDuration(key, v)
	case "prop":
		c.PropDelay, err = parseDuration(key, v)
	case "range":
		m, perr := strconv.ParseFloat(v, 64)
		if perr != nil || !(m >= 0 && m <= maxRange) {
			return cfgErr(key, "%q is not a distance in metres from 0 to %d", v, maxRange)
		}
		c.PropDelay = time.Duration(m / SoundSpeed * float64(time.Second))
	case "txdelay":
		c.TXDelay, err = parseDuration(key, v)
	case "turnaround":
		c.Turnaround, err = parseDuration(key, v)
	case "hangover":
		c.Hangover, err = parseDuration(key, v)
	case "writetimeout":
		c.WriteTimeout, err = parseDuration(key, v)
	default:
		return cfgErr(key, "unknown key")
	}
	return err
}

func parsePositive(key, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, cfgErr(key, "%q is not a positive integer", v)
	}
	return n, nil
}

func parseDuration(key, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, cfgErr(key, "%q is not a duration like 50ms", v)
	}
	if d > maxDuration {
		return 0, cfgErr(key, "%v, at most %v", d, maxDuration)
	}
	return d, nil
}

// charTime is how long n characters take on the serial line: a start bit,
// the data bits, parity and the stop bits each.
func (c Config) charTime(n int) time.Duration {
	c = c.withLine()
	bits := 1 + c.DataBits + c.StopBits
	if c.Parity != "none" && c.Parity != "" {
		bits++
	}
	return time.Duration(int64(n) * int64(bits) * int64(time.Second) / int64(c.Baud))
}

// withLine fills in the serial line's defaults only (charTime needs them
// before withDefaults has finished).
func (c Config) withLine() Config {
	if c.Baud <= 0 {
		c.Baud = DefaultBaud
	}
	if c.DataBits == 0 {
		c.DataBits = 8
	}
	if c.StopBits == 0 {
		c.StopBits = 1
	}
	return c
}

// BurstTime is how long after Transmit a burst of n bytes is on air in
// full, which is when TxDone is reported (flow control aside). Stream mode:
// TXDelay plus n bytes at the air rate (the serial line is assumed no
// slower than the air). Packet mode: n characters on the serial line, the
// modem's Gap, TXDelay, then n bytes at the air rate.
func (c Config) BurstTime(n int) time.Duration { return c.withDefaults().burstTime(n) }

// burstTime is BurstTime for a c with its defaults filled in.
func (c Config) burstTime(n int) time.Duration {
	t := c.TXDelay + phy.Airtime(n, c.AirRate)
	if c.Mode == ModePacket {
		t += c.charTime(n) + c.Gap
	}
	return t
}

// RecommendedMTU is the largest of 1500, 1280 and 576 bytes with which one
// full-sized packet (plus its Ethernet header) keeps the modem busy for at
// most MTUHold, one BurstTime for each of its fragments of MaxFrame bytes,
// and fits in slided's 64 fragments. If none does, 296 (the classic MTU of
// slow serial links). The daemon uses it as -mtu's default. TCP from the
// node derives its MSS from the MTU; forwarded TCP is not clamped (that
// needs an iptables or nft TCPMSS rule).
func (c Config) RecommendedMTU() int {
	c = c.withDefaults()
	for _, mtu := range []int{1500, 1280, 576} {
		k, hold := c.holdTime(mtu + 14)
		if k <= maxFragments && hold <= MTUHold {
			return mtu
		}
	}
	return 296
}

// maxFragments is the most fragments slided's link layer cuts a packet into
// (framing.MaxFragments).
const maxFragments = 64

// fragOverhead is what slided adds to each fragment in a packet of frame
// bytes: fragment header (4), frame header (3), CRC (4), COBS code bytes
// and the delimiter (framing.MaxPayloadLen).
func fragOverhead(frame int) int { return 13 + (frame+253)/254 }

// holdTime is in how many fragments, and for how long, n bytes of Ethernet
// frame keep the modem busy.
func (c Config) holdTime(n int) (int, time.Duration) {
	if c.MaxFrame <= fragOverhead(c.MaxFrame) {
		return 1, c.burstTime(n + fragOverhead(n))
	}
	data := c.MaxFrame - fragOverhead(c.MaxFrame)
	k := (n + data - 1) / data
	last := n - (k-1)*data + fragOverhead(c.MaxFrame)
	return k, time.Duration(k-1)*c.burstTime(c.MaxFrame) + c.burstTime(last)
}
