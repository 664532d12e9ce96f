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
)

// Defaults applied by Config.withDefaults for fields left zero.
const (
	DefaultBaud         = 9600
	DefaultWriteTimeout = 10 * time.Second
	// minHangover is the least default hang-over: 20 byte times at the air
	// rate, but never below this.
	minHangover = 50 * time.Millisecond
)

// Config describes a raw serial modem. The zero value of every field but
// Path means "default".
type Config struct {
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
	// Turnaround is what Info reports: the time between receiving and being
	// able to transmit. It does not change pacing.
	Turnaround time.Duration
	// Carrier is CarrierRx (default) or CarrierDCD.
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
	if c.Carrier == "" {
		c.Carrier = CarrierRx
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
	case c.TXDelay < 0:
		return cfgErr("txdelay", "negative")
	case c.Turnaround < 0:
		return cfgErr("turnaround", "negative")
	case c.Hangover < 0:
		return cfgErr("hangover", "negative")
	case c.WriteTimeout < 0:
		return cfgErr("writetimeout", "negative")
	case c.Carrier != CarrierRx && c.Carrier != CarrierDCD:
		return cfgErr("carrier", "%q, want %q or %q", c.Carrier, CarrierDCD, CarrierRx)
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
//
// Keys: baud, data, parity, stop, rtscts, air, frame, txdelay, turnaround,
// carrier, hangover, writetimeout. Durations use Go syntax (50ms, 1s).
// Unknown or repeated keys and bad values are errors that name the key and
// wrap ErrConfig. The result has defaults filled in.
func ParseURL(s string) (Config, error) {
	path, query, _ := strings.Cut(s, "?")
	var c Config
	c.Path = path
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
		if v != CarrierDCD && v != CarrierRx {
			return cfgErr(key, "%q, want %q or %q", v, CarrierDCD, CarrierRx)
		}
		c.Carrier = v
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
	return d, nil
}
