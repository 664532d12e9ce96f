package kiss

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slided/slided/phy/kiss/kissproto"
)

// Defaults, as Dire Wolf and most TNCs start.
const (
	// DefaultMaxFrame is Dire Wolf's limit: it silently cuts a KISS message
	// longer than 2048 bytes (escapes included).
	DefaultMaxFrame = 2048
	// DefaultAirRate is the 1200 bit/s AFSK of VHF packet.
	DefaultAirRate = 1200
	// DefaultBaud is the serial rate of a hardware TNC's host port.
	DefaultBaud = 9600
	// DefaultTXDelay is the key-up delay (Dire Wolf's TXDELAY 30).
	DefaultTXDelay = 300 * time.Millisecond
	// DefaultPersistence is P = 63, p = 0.25.
	DefaultPersistence = 63
	// DefaultSlotTime is the CSMA slot (Dire Wolf's SLOTTIME 10).
	DefaultSlotTime = 100 * time.Millisecond
	// DefaultTXTail is the tail after the frame (Dire Wolf's TXTAIL 10).
	DefaultTXTail = 100 * time.Millisecond
)

// DefaultBurst is Config.Burst when not set; MaxBurstFrames its largest
// value (Dire Wolf's limit per transmission). The default is the most
// packets slided's ARQ keeps outstanding to a peer (its window, 64), so
// that the burst's airtime (BurstAir, from the radio's time-out) is what
// ends a burst of large frames: each key-up and its Acks cost about 1.7 s
// of fixed time on the Dire Wolf pair at 9600 bit/s (docs/modems.md).
// 32 measured best of 1, 4, 8, 16 and 32 there when bursts were also
// bounded by 30 s.
const (
	DefaultBurst   = 64
	MaxBurstFrames = 256
)

// DefaultTOT is Config.TOT when not set: a transmitter time-out timer of
// one minute, the shortest in common use (commercial radios offer 30 s to
// 120 s steps; amateur transceivers ship with it off or at several minutes
// and their manuals suggest one minute). A burst stays inside it
// (TOTBurstAir).
const DefaultTOT = 60 * time.Second

// totMargin is the share of the time-out timer, less TXDELAY and TXTAIL,
// that TOTBurstAir leaves unused: the link counts a burst's bytes at the
// air rate, and the TNC adds HDLC bit stuffing (up to 1/5, about 3% for
// slided's frames), two CRC bytes and a flag per frame on top.
const totMargin = 10 // percent

// MinBurst is the shortest burst Transmit sends: Dire Wolf, like AX.25
// receivers in general, drops frames of fewer than 15 bytes. Data frames are
// longer; link Acks (13 bytes) are padded with 0x00 delimiters.
const MinBurst = 15

// Config describes one KISS TNC. Set either Addr (KISS over TCP, as Dire
// Wolf offers) or Device (a serial port). Use Defaults, ParseTCP or
// ParseSerial to start from sensible values: Dial sends every setting as it
// stands (a zero TXDelay is sent as 0).
type Config struct {
	// Addr is host:port of a KISS TCP server.
	Addr string
	// Device is a serial device path; Baud its rate (DefaultBaud if 0).
	Device string
	Baud   int
	// Port is the KISS port (the TNC's radio channel), 0 to 15.
	Port byte
	// AirRate is the TNC's air rate in bit/s; it must be set (it paces
	// TxDone and is reported as Info().BitRate).
	AirRate int
	// MaxFrame is the largest KISS frame the TNC takes in, FENDs, type byte
	// and escapes included (DefaultMaxFrame if 0).
	MaxFrame int
	// TXDelay, Persistence (0 to 255), SlotTime and TXTail are sent to the
	// TNC on every connect; times go in 10 ms units, 0 to 2.55 s.
	TXDelay     time.Duration
	Persistence int
	SlotTime    time.Duration
	TXTail      time.Duration
	// FullDuplex true makes the TNC send at once, without its CSMA: the
	// client owns channel access. False lets the TNC run p-persistent CSMA
	// on its own carrier detect.
	FullDuplex bool
	// AckMode says whether bursts go as KISS ACKMODE frames (command 0x0C,
	// a 2-byte id before the data) that the TNC answers with the id once
	// the frame has gone out: AckOff (the default: the airtime estimate
	// alone), AckOn (the TNC supports it; the estimate is a watchdog) or
	// AckAuto (try the first burst with ACKMODE; if no answer comes within
	// AckWait, use the estimate from then on). See docs/modems.md.
	AckMode AckMode
	// Init is sent to the TNC on every (re)connect before the KISS
	// parameters (a hardware TNC's command to enter KISS mode, such as
	// "KISS ON\rRESTART\r"); InitWait is the pause after it, for the TNC
	// to switch. Exit is sent on Close (a command to leave KISS mode, such
	// as the KISS return frame C0 FF C0). Raw bytes, sent as they are.
	Init, Exit []byte
	InitWait   time.Duration
	// StationID, if set, is the callsign (CALL or CALL-SSID) sent in clear
	// as an AX.25 UI frame (IDFrame) every StationIDInterval while slided
	// transmits: within the interval after a burst of slided's when none
	// is pending, so again at each interval's end while it keeps sending,
	// and once after its last burst. See docs/modems.md.
	StationID         string
	StationIDInterval time.Duration
	// Burst is the most slided frames one burst hands the TNC, each as a
	// KISS data frame of its own, written back to back so that the TNC
	// sends them in one transmission after one TXDELAY (Dire Wolf sends up
	// to 256 queued frames per key-up). 0: DefaultBurst; 1: one frame per
	// key-up. Reported as Info().MaxBurstFrames.
	Burst int
	// BurstAir bounds the airtime of one burst (a first frame longer than
	// it goes alone): the other stations wait that long. 0: TOTBurstAir,
	// what the radio's time-out timer allows. Reported as
	// Info().MaxBurstAir.
	BurstAir time.Duration
	// TOT is the radio's transmitter time-out timer: the longest it
	// transmits in one key-up before it unkeys by itself, cutting the
	// frame on air. 0: DefaultTOT. Bursts are sized to stay inside it
	// (BurstAir); a BurstAir beyond TOTBurstAir is refused.
	TOT time.Duration
	// Dial, if set, replaces net.Dialer.DialContext for Addr (tests use it
	// to reach a TNC inside a network namespace).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// AckMode is Config.AckMode.
type AckMode uint8

const (
	// AckOff: TxDone from the airtime estimate only.
	AckOff AckMode = iota
	// AckAuto: probe the TNC with the first burst, remember the answer.
	AckAuto
	// AckOn: every burst as an ACKMODE frame.
	AckOn
)

func (m AckMode) String() string {
	switch m {
	case AckAuto:
		return "auto"
	case AckOn:
		return "on"
	}
	return "off"
}

// ParseAckMode parses "auto", "on" or "off".
func ParseAckMode(s string) (AckMode, error) {
	switch s {
	case "auto":
		return AckAuto, nil
	case "on", "1", "true":
		return AckOn, nil
	case "off", "0", "false":
		return AckOff, nil
	}
	return 0, fmt.Errorf("ackmode %q: want auto, on or off", s)
}

// UnescapeCommand decodes a start-up or exit command as given in a modem
// URL or the config: after percent-decoding (done by the URL parser), \r,
// \n, \t, \\ and \xHH stand for CR, LF, TAB, a backslash and any byte.
// Any other backslash sequence is an error.
func UnescapeCommand(s string) ([]byte, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("command %q: a lone backslash at the end", s)
		}
		i++
		switch s[i] {
		case 'r':
			b = append(b, '\r')
		case 'n':
			b = append(b, '\n')
		case 't':
			b = append(b, '\t')
		case '\\':
			b = append(b, '\\')
		case 'x':
			if i+2 >= len(s) {
				return nil, fmt.Errorf("command %q: \\x needs two hex digits", s)
			}
			n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("command %q: \\x needs two hex digits", s)
			}
			b = append(b, byte(n))
			i += 2
		default:
			return nil, fmt.Errorf("command %q: unknown escape \\%c (known: \\r \\n \\t \\\\ \\xHH)", s, s[i])
		}
	}
	return b, nil
}

// maxCommand bounds Init and Exit.
const maxCommand = 1024

// Defaults returns a Config with the default air rate, frame limit and
// channel-access settings, and no Addr or Device.
func Defaults() Config {
	return Config{
		Baud:        DefaultBaud,
		AirRate:     DefaultAirRate,
		MaxFrame:    DefaultMaxFrame,
		TXDelay:     DefaultTXDelay,
		Persistence: DefaultPersistence,
		SlotTime:    DefaultSlotTime,
		TXTail:      DefaultTXTail,
	}
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("kiss: bad config")

// ParseTCP parses the part of a modem URL after "kiss-tcp:", such as
// "127.0.0.1:8001?air=9600&txdelay=30ms&persist=63&slot=10ms&fullduplex=0".
// Keys: air, port, maxframe, txdelay, persist, slot, txtail, fullduplex, burst,
// burstair, tot, ackmode (auto, on, off), init and exit (UnescapeCommand), initwait.
// Missing keys keep Defaults; an unknown key is an error naming it.
func ParseTCP(s string) (Config, error) {
	addr, query, _ := strings.Cut(s, "?")
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return Config{}, fmt.Errorf("%w: address %q: %w", ErrConfig, addr, err)
	}
	c := Defaults()
	c.Addr = addr
	if err := c.parseQuery(query, false); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ParseSerial parses the part of a modem URL after "kiss-serial:", such as
// "/dev/ttyUSB0?baud=9600&air=1200". Keys: those of ParseTCP and baud.
func ParseSerial(s string) (Config, error) {
	dev, query, _ := strings.Cut(s, "?")
	if dev == "" {
		return Config{}, fmt.Errorf("%w: no device", ErrConfig)
	}
	c := Defaults()
	c.Device = dev
	if err := c.parseQuery(query, true); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c *Config) parseQuery(query string, serial bool) error {
	vals, err := url.ParseQuery(query)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	for key, vs := range vals {
		if len(vs) != 1 {
			return fmt.Errorf("%w: key %q given %d times", ErrConfig, key, len(vs))
		}
		v := vs[0]
		var err error
		switch key {
		case "air":
			c.AirRate, err = parseInt(v, 1, 1<<30)
		case "port":
			var p int
			p, err = parseInt(v, 0, 15)
			c.Port = byte(p)
		case "maxframe":
			c.MaxFrame, err = parseInt(v, 3+2*MinBurst, 1<<20)
		case "txdelay":
			c.TXDelay, err = parseTenMs(v)
		case "persist":
			c.Persistence, err = parseInt(v, 0, 255)
		case "slot":
			c.SlotTime, err = parseTenMs(v)
		case "txtail":
			c.TXTail, err = parseTenMs(v)
		case "fullduplex":
			c.FullDuplex, err = strconv.ParseBool(v)
		case "ackmode":
			c.AckMode, err = ParseAckMode(v)
		case "init":
			c.Init, err = UnescapeCommand(v)
		case "exit":
			c.Exit, err = UnescapeCommand(v)
		case "initwait":
			c.InitWait, err = time.ParseDuration(v)
			if err == nil && (c.InitWait < 0 || c.InitWait > 10*time.Second) {
				err = fmt.Errorf("%v out of range 0..10s", c.InitWait)
			}
		case "id":
			c.StationID = v
		case "burst":
			c.Burst, err = parseInt(v, 1, MaxBurstFrames)
		case "burstair":
			c.BurstAir, err = time.ParseDuration(v)
			if err == nil && (c.BurstAir < time.Second || c.BurstAir > 10*time.Minute) {
				err = fmt.Errorf("%v out of range 1s..10m", c.BurstAir)
			}
		case "tot":
			c.TOT, err = time.ParseDuration(v)
			if err == nil && (c.TOT < minTOT || c.TOT > maxTOT) {
				err = fmt.Errorf("%v out of range %v..%v", c.TOT, minTOT, maxTOT)
			}
		case "idinterval":
			c.StationIDInterval, err = time.ParseDuration(v)
		case "baud":
			if !serial {
				return fmt.Errorf("%w: key %q is for kiss-serial only", ErrConfig, key)
			}
			c.Baud, err = parseInt(v, 1, 1<<30)
		default:
			return fmt.Errorf("%w: unknown key %q", ErrConfig, key)
		}
		if err != nil {
			return fmt.Errorf("%w: key %q: %w", ErrConfig, key, err)
		}
	}
	return nil
}

func parseInt(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d out of range %d..%d", n, lo, hi)
	}
	return n, nil
}

func parseTenMs(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if _, err := tenMs(d); err != nil {
		return 0, err
	}
	return d, nil
}

// tenMs converts d to the 10 ms units of a KISS parameter, rounding to the
// nearest unit.
func tenMs(d time.Duration) (byte, error) {
	if d < 0 || d > 2550*time.Millisecond {
		return 0, fmt.Errorf("%v out of range 0..2.55s", d)
	}
	return byte((d + 5*time.Millisecond) / (10 * time.Millisecond)), nil
}

// Check validates c as Dial does, without connecting.
func (c Config) Check() error { return c.check() }

// check validates c and fills MaxFrame and Baud when zero.
func (c *Config) check() error {
	if (c.Addr == "") == (c.Device == "") {
		return fmt.Errorf("%w: set exactly one of Addr and Device", ErrConfig)
	}
	if c.AirRate <= 0 {
		return fmt.Errorf("%w: air rate %d", ErrConfig, c.AirRate)
	}
	if c.Port > 15 {
		return fmt.Errorf("%w: port %d (0 to 15)", ErrConfig, c.Port)
	}
	if c.Persistence < 0 || c.Persistence > 255 {
		return fmt.Errorf("%w: persistence %d (0 to 255)", ErrConfig, c.Persistence)
	}
	for _, d := range []time.Duration{c.TXDelay, c.SlotTime, c.TXTail} {
		if _, err := tenMs(d); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.TOT == 0 {
		c.TOT = DefaultTOT
	}
	if c.TOT < minTOT || c.TOT > maxTOT {
		return fmt.Errorf("%w: transmitter time-out %v (%v to %v)", ErrConfig, c.TOT, minTOT, maxTOT)
	}
	if c.BurstAir == 0 {
		c.BurstAir = c.TOTBurstAir()
	}
	if c.BurstAir < 0 {
		return fmt.Errorf("%w: burst airtime %v", ErrConfig, c.BurstAir)
	}
	if m := c.TOTBurstAir(); c.BurstAir > m {
		return fmt.Errorf("%w: burst airtime %v exceeds the %v the transmitter time-out of %v allows (raise tot if the radio's timer is longer)",
			ErrConfig, c.BurstAir, m, c.TOT)
	}
	if c.Burst < 1 || c.Burst > MaxBurstFrames {
		return fmt.Errorf("%w: burst %d (1 to %d frames)", ErrConfig, c.Burst, MaxBurstFrames)
	}
	if c.MaxFrame < 3+2*MinBurst {
		return fmt.Errorf("%w: max frame %d too small", ErrConfig, c.MaxFrame)
	}
	if c.Baud == 0 {
		c.Baud = DefaultBaud
	}
	if len(c.Init) > maxCommand || len(c.Exit) > maxCommand {
		return fmt.Errorf("%w: init or exit command longer than %d bytes", ErrConfig, maxCommand)
	}
	if c.StationID != "" {
		if _, err := ax25Addr(c.StationID, false); err != nil {
			return fmt.Errorf("%w: station id: %w", ErrConfig, err)
		}
		if c.StationIDInterval == 0 {
			c.StationIDInterval = DefaultStationIDInterval
		}
		if c.StationIDInterval < time.Minute || c.StationIDInterval > time.Hour {
			return fmt.Errorf("%w: station id interval %v (1m to 1h)", ErrConfig, c.StationIDInterval)
		}
	}
	if c.AckMode > AckOn {
		return fmt.Errorf("%w: ack mode %d", ErrConfig, c.AckMode)
	}
	if c.InitWait < 0 || c.InitWait > 10*time.Second {
		return fmt.Errorf("%w: init wait %v (0 to 10s)", ErrConfig, c.InitWait)
	}
	return nil
}

// The transmitter time-out (Config.TOT) may be set from minTOT to maxTOT.
const (
	minTOT = 5 * time.Second
	maxTOT = 10 * time.Minute
)

// TOTBurstAir is the longest burst airtime (bytes at the air rate, as the
// link counts it) that keeps a burst inside the radio's transmitter
// time-out: TOT less TXDELAY and TXTAIL, less totMargin for the TNC's
// framing, at least 1 s. With the defaults (60 s, 300 ms, 100 ms): 53.6 s,
// sixty-one 1044-byte slided frames at 9600 bit/s, seven at 1200.
func (c Config) TOTBurstAir() time.Duration {
	tot := c.TOT
	if tot == 0 {
		tot = DefaultTOT
	}
	return max(time.Second, (tot-c.TXDelay-c.TXTail)*(100-totMargin)/100)
}

// MaxBurst is the longest burst Transmit can accept: MaxFrame less the two
// FENDs and the type byte (2045 bytes for Dire Wolf). A burst that long fits
// only if none of its bytes needs an escape; Transmit checks each burst's
// real escaped length (FrameLen) against MaxFrame.
func (c Config) MaxBurst() int {
	m := c.MaxFrame
	if m == 0 {
		m = DefaultMaxFrame
	}
	return m - 3 - c.ackOverhead()
}

// ackOverhead is the room an ACKMODE id takes, escapes included.
func (c Config) ackOverhead() int {
	if c.AckMode == AckOff {
		return 0
	}
	return 4
}

// ackWait bounds the wait for the TNC's ACKMODE answer to a burst of n
// bytes once written: twice the airtime estimate, four mean waits of the
// TNC's CSMA, and a second. Past it the burst is taken as sent (TxDone);
// in auto mode, a first burst that got no answer by then means the TNC
// does not support ACKMODE.
func (c Config) ackWait(n int) time.Duration {
	return 2*c.TxTime(n) + 4*c.AccessWait() + time.Second
}

// FrameLen is the length of b sent as one KISS data frame on c.Port: two
// FENDs, the type byte and the data, each 0xC0 (FEND) and 0xDB (FESC), in
// the type byte or the data, counting twice. It does not allocate.
func (c Config) FrameLen(b []byte) int {
	n := 3 + len(b) + bytes.Count(b, fend) + bytes.Count(b, fesc)
	if t := c.Port << 4; t == kissproto.FEND || t == kissproto.FESC {
		n++ // port 12: the type byte 0xC0 is escaped too
	}
	return n
}

var (
	fend = []byte{kissproto.FEND}
	fesc = []byte{kissproto.FESC}
)

// AccessWait is the mean time the TNC's p-persistent CSMA waits once the
// channel is free. Dire Wolf waits a slot, then keys up with probability
// p = (Persistence+1)/256 and otherwise waits another slot: 1/p slots on
// average (a TNC that tries before its first slot, as the KISS paper has
// it, waits one slot less). Zero with FullDuplex (the TNC keys up at once).
func (c Config) AccessWait() time.Duration {
	if c.FullDuplex {
		return 0
	}
	return c.SlotTime * 256 / time.Duration(c.Persistence+1)
}

// TxTime estimates how long the TNC keeps the channel for a burst of n
// bytes once it starts sending: TXDelay (flags), the HDLC frame (n bytes
// plus the TNC's 2-byte CRC, about 3% bit stuffing on random data, the
// closing flag) at AirRate, and TXTail. It does not include the time the
// TNC's own CSMA may wait for a free channel.
func (c Config) TxTime(n int) time.Duration {
	if c.AirRate <= 0 {
		return 0
	}
	bits := int64(n+2) * 8
	bits += bits / 32 // bit stuffing: one in 32 on random data
	bits += 8         // closing flag
	air := time.Duration((bits*int64(time.Second) + int64(c.AirRate) - 1) / int64(c.AirRate))
	return c.TXDelay + air + c.TXTail
}

// kissAckMode is the ACKMODE command (the low nibble of the type byte): the
// host sends port<<4|0x0C, a 2-byte id (big-endian) and the frame; the TNC
// sends port<<4|0x0C and the same id back once the frame has gone out.
const kissAckMode = 0x0C

// DefaultStationIDInterval is the usual rule: identify at least every ten
// minutes while transmitting.
const DefaultStationIDInterval = 10 * time.Minute

// IDFrame is the station identification for call (CALL or CALL-SSID, valid
// for ax25Addr): an AX.25 UI frame from call to "ID" (UIFrame) with call
// again as text, so that any packet monitor shows it. Call must be valid
// (Config.check).
func IDFrame(call string) []byte {
	b, _ := UIFrame("ID", call, []byte(strings.ToUpper(call)))
	return b
}

// UIFrame is an AX.25 UI frame from src to dst (each CALL or CALL-SSID, 1
// to 6 letters and digits, SSID 0 to 15): the two address fields, control
// 0x03, PID 0xF0 (no layer 3), then info, as a KISS data frame carries it
// (an APRS client's frames are such). It returns an error for a call it
// cannot encode.
func UIFrame(dst, src string, info []byte) ([]byte, error) {
	d, err := ax25Addr(dst, false)
	if err != nil {
		return nil, err
	}
	sa, err := ax25Addr(src, true)
	if err != nil {
		return nil, err
	}
	b := append(d, sa...)
	b = append(b, 0x03, 0xF0)
	return append(b, info...), nil
}

// ax25Addr encodes an AX.25 address field: six characters shifted left one
// bit, space-padded, then the SSID byte 0b0110_sss_e (e: last address).
func ax25Addr(call string, last bool) ([]byte, error) {
	base, ssid, hasSSID := strings.Cut(strings.ToUpper(call), "-")
	if len(base) == 0 || len(base) > 6 {
		return nil, fmt.Errorf("callsign %q: 1 to 6 letters and digits, then an optional -SSID", call)
	}
	b := make([]byte, 0, 7)
	for i := 0; i < 6; i++ {
		c := byte(' ')
		if i < len(base) {
			c = base[i]
			if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return nil, fmt.Errorf("callsign %q: 1 to 6 letters and digits, then an optional -SSID", call)
			}
		}
		b = append(b, c<<1)
	}
	n := 0
	if hasSSID {
		var err error
		if n, err = parseInt(ssid, 0, 15); err != nil {
			return nil, fmt.Errorf("callsign %q: SSID %w", call, err)
		}
	}
	e := byte(0)
	if last {
		e = 1
	}
	return append(b, 0x60|byte(n)<<1|e), nil
}
