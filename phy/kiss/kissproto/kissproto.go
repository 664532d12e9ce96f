// Package kissproto is the KISS codec. KISS (Keep It Simple, Stupid) is the
// host-to-TNC protocol of packet radio: a frame is FEND, a type byte
// (port << 4 | command), the data, FEND, with FEND and FESC inside the type
// byte and the data escaped as FESC TFEND and FESC TFESC. This package is the
// codec alone; phy/kiss drives a TNC with it.
package kissproto

// KISS special bytes.
const (
	// FEND starts and ends a frame.
	FEND = 0xC0
	// FESC introduces an escaped byte.
	FESC = 0xDB
	// TFEND after FESC stands for a FEND byte in the data.
	TFEND = 0xDC
	// TFESC after FESC stands for a FESC byte in the data.
	TFESC = 0xDD
)

// KISS commands: the low nibble of the type byte (CmdReturn is the whole
// type byte).
const (
	// CmdData carries a frame to send on air (host to TNC) or a frame heard
	// on air (TNC to host).
	CmdData = 0
	// CmdTXDelay sets the key-up delay, in 10 ms units.
	CmdTXDelay = 1
	// CmdPersistence sets P of p-persistent CSMA, p = (P+1)/256.
	CmdPersistence = 2
	// CmdSlotTime sets the CSMA slot time, in 10 ms units.
	CmdSlotTime = 3
	// CmdTXTail sets the time the transmitter stays keyed after the frame,
	// in 10 ms units (obsolete on most TNCs, still honoured by some).
	CmdTXTail = 4
	// CmdFullDuplex 1 makes the TNC transmit at once, without CSMA: the host
	// owns channel access; 0 (the default) lets the TNC run its CSMA.
	CmdFullDuplex = 5
	// CmdSetHardware is TNC-specific.
	CmdSetHardware = 6
	// CmdReturn (type byte 0xFF) leaves KISS mode.
	CmdReturn = 0xFF
)

// AppendFrame appends one KISS frame, FEND type data FEND, to dst and returns
// the extended slice. The type byte is port<<4 | cmd (port 0 to 15, cmd 0 to
// 15; higher bits are dropped), or 0xFF when cmd is CmdReturn. The type byte
// and the data are escaped. The frame takes at most 2*len(data)+4 bytes; it
// never allocates when dst has that much room left.
func AppendFrame(dst []byte, port, cmd byte, data []byte) []byte {
	t := port<<4 | cmd&0x0F
	if cmd == CmdReturn {
		t = CmdReturn
	}
	dst = append(dst, FEND)
	dst = appendEscaped(dst, t)
	for _, c := range data {
		dst = appendEscaped(dst, c)
	}
	return append(dst, FEND)
}

func appendEscaped(dst []byte, c byte) []byte {
	switch c {
	case FEND:
		return append(dst, FESC, TFEND)
	case FESC:
		return append(dst, FESC, TFESC)
	}
	return append(dst, c)
}

// Stats counts what a Decoder has seen.
type Stats struct {
	// Frames is the number of frames passed to emit.
	Frames uint64 `json:"frames"`
	// TooLong counts frames dropped for carrying more than the decoder's
	// maximum of data.
	TooLong uint64 `json:"too_long"`
	// BadEscape counts frames dropped for a FESC followed by anything other
	// than TFEND or TFESC.
	BadEscape uint64 `json:"bad_escape"`
	// Empty counts FEND FEND pairs with nothing between them. Senders use a
	// FEND to flush line noise before a frame, so these are normal.
	Empty uint64 `json:"empty"`
	// Garbage counts bytes received outside any frame (before the first FEND
	// or after a dropped frame's fault, up to the next FEND).
	Garbage uint64 `json:"garbage"`
}

// Decoder splits a byte stream from a TNC (or a host) into KISS frames.
// It resynchronises on every FEND: bytes before the first FEND, and the rest
// of a frame after a fault, are discarded and counted, never passed on. A
// Decoder is not safe for concurrent use; one goroutine owns it.
type Decoder struct {
	max     int
	buf     []byte // type byte followed by unescaped data
	inFrame bool   // a FEND was seen and the frame is still good
	esc     bool   // the previous byte was FESC
	stats   Stats
}

// NewDecoder returns a decoder that passes on frames of at most max data
// bytes (after unescaping, type byte not counted). max below 1 is taken as 1.
// The decoder allocates its buffer once, here.
func NewDecoder(max int) *Decoder {
	if max < 1 {
		max = 1
	}
	return &Decoder{max: max, buf: make([]byte, 0, max+1)}
}

// Reset forgets any partial frame and hunts for the next FEND, as after a new
// connection. Stats are kept.
func (d *Decoder) Reset() {
	d.buf = d.buf[:0]
	d.inFrame = false
	d.esc = false
}

// Feed consumes p and calls emit for each complete frame, in order, with the
// port (high nibble of the type byte) and command (low nibble; CmdReturn for
// type byte 0xFF). data is valid only during the call to emit: the decoder
// reuses it; copy what must be kept. A frame with only a type byte is emitted
// with empty data (a command without argument). Feed never allocates and
// never panics, whatever the bytes.
func (d *Decoder) Feed(p []byte, emit func(port, cmd byte, data []byte)) {
	for _, c := range p {
		if c == FEND {
			if d.inFrame {
				if d.esc {
					d.stats.BadEscape++
				} else if len(d.buf) == 0 {
					d.stats.Empty++
				} else {
					d.stats.Frames++
					t := d.buf[0]
					port, cmd := t>>4, t&0x0F
					if t == CmdReturn {
						port, cmd = 0, CmdReturn
					}
					emit(port, cmd, d.buf[1:])
				}
			}
			d.buf = d.buf[:0]
			d.inFrame = true
			d.esc = false
			continue
		}
		if !d.inFrame {
			d.stats.Garbage++
			continue
		}
		if d.esc {
			d.esc = false
			switch c {
			case TFEND:
				c = FEND
			case TFESC:
				c = FESC
			default:
				d.stats.BadEscape++
				d.drop()
				continue
			}
		} else if c == FESC {
			d.esc = true
			continue
		}
		if len(d.buf) > d.max { // type byte plus max data already held
			d.stats.TooLong++
			d.drop()
			continue
		}
		d.buf = append(d.buf, c)
	}
}

// drop abandons the current frame; the bytes up to the next FEND are garbage.
func (d *Decoder) drop() {
	d.buf = d.buf[:0]
	d.inFrame = false
	d.esc = false
}

// Stats returns the counters so far.
func (d *Decoder) Stats() Stats { return d.stats }
