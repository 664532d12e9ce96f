package framing

// KISS (Keep It Simple, Stupid) is the host-to-TNC protocol of packet radio:
// a frame is FEND, a type byte (port << 4 | command), the data, FEND, with
// FEND and FESC inside the type byte and the data escaped as FESC TFEND and
// FESC TFESC. This file is the codec alone; phy/kiss drives a TNC with it.

// KISS special bytes.
const (
	// KISSFEND starts and ends a frame.
	KISSFEND = 0xC0
	// KISSFESC introduces an escaped byte.
	KISSFESC = 0xDB
	// KISSTFEND after KISSFESC stands for a FEND byte in the data.
	KISSTFEND = 0xDC
	// KISSTFESC after KISSFESC stands for a FESC byte in the data.
	KISSTFESC = 0xDD
)

// KISS commands: the low nibble of the type byte (KISSReturn is the whole
// type byte).
const (
	// KISSData carries a frame to send on air (host to TNC) or a frame heard
	// on air (TNC to host).
	KISSData = 0
	// KISSTXDelay sets the key-up delay, in 10 ms units.
	KISSTXDelay = 1
	// KISSPersistence sets P of p-persistent CSMA, p = (P+1)/256.
	KISSPersistence = 2
	// KISSSlotTime sets the CSMA slot time, in 10 ms units.
	KISSSlotTime = 3
	// KISSTXTail sets the time the transmitter stays keyed after the frame,
	// in 10 ms units (obsolete on most TNCs, still honoured by some).
	KISSTXTail = 4
	// KISSFullDuplex 1 makes the TNC transmit at once, without CSMA: the host
	// owns channel access; 0 (the default) lets the TNC run its CSMA.
	KISSFullDuplex = 5
	// KISSSetHardware is TNC-specific.
	KISSSetHardware = 6
	// KISSReturn (type byte 0xFF) leaves KISS mode.
	KISSReturn = 0xFF
)

// AppendKISS appends one KISS frame, FEND type data FEND, to dst and returns
// the extended slice. The type byte is port<<4 | cmd (port 0 to 15, cmd 0 to
// 15; higher bits are dropped), or 0xFF when cmd is KISSReturn. The type byte
// and the data are escaped. The frame takes at most 2*len(data)+4 bytes; it
// never allocates when dst has that much room left.
func AppendKISS(dst []byte, port, cmd byte, data []byte) []byte {
	t := port<<4 | cmd&0x0F
	if cmd == KISSReturn {
		t = KISSReturn
	}
	dst = append(dst, KISSFEND)
	dst = appendKISSEscaped(dst, t)
	for _, c := range data {
		dst = appendKISSEscaped(dst, c)
	}
	return append(dst, KISSFEND)
}

func appendKISSEscaped(dst []byte, c byte) []byte {
	switch c {
	case KISSFEND:
		return append(dst, KISSFESC, KISSTFEND)
	case KISSFESC:
		return append(dst, KISSFESC, KISSTFESC)
	}
	return append(dst, c)
}

// KISSStats counts what a KISSDecoder has seen.
type KISSStats struct {
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

// KISSDecoder splits a byte stream from a TNC (or a host) into KISS frames.
// It resynchronises on every FEND: bytes before the first FEND, and the rest
// of a frame after a fault, are discarded and counted, never passed on. A
// KISSDecoder is not safe for concurrent use; one goroutine owns it.
type KISSDecoder struct {
	max     int
	buf     []byte // type byte followed by unescaped data
	inFrame bool   // a FEND was seen and the frame is still good
	esc     bool   // the previous byte was FESC
	stats   KISSStats
}

// NewKISSDecoder returns a decoder that passes on frames of at most max data
// bytes (after unescaping, type byte not counted). max below 1 is taken as 1.
// The decoder allocates its buffer once, here.
func NewKISSDecoder(max int) *KISSDecoder {
	if max < 1 {
		max = 1
	}
	return &KISSDecoder{max: max, buf: make([]byte, 0, max+1)}
}

// Reset forgets any partial frame and hunts for the next FEND, as after a new
// connection. Stats are kept.
func (d *KISSDecoder) Reset() {
	d.buf = d.buf[:0]
	d.inFrame = false
	d.esc = false
}

// Feed consumes p and calls emit for each complete frame, in order, with the
// port (high nibble of the type byte) and command (low nibble; KISSReturn for
// type byte 0xFF). data is valid only during the call to emit: the decoder
// reuses it; copy what must be kept. A frame with only a type byte is emitted
// with empty data (a command without argument). Feed never allocates and
// never panics, whatever the bytes.
func (d *KISSDecoder) Feed(p []byte, emit func(port, cmd byte, data []byte)) {
	for _, c := range p {
		if c == KISSFEND {
			if d.inFrame {
				if d.esc {
					d.stats.BadEscape++
				} else if len(d.buf) == 0 {
					d.stats.Empty++
				} else {
					d.stats.Frames++
					t := d.buf[0]
					port, cmd := t>>4, t&0x0F
					if t == KISSReturn {
						port, cmd = 0, KISSReturn
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
			case KISSTFEND:
				c = KISSFEND
			case KISSTFESC:
				c = KISSFESC
			default:
				d.stats.BadEscape++
				d.drop()
				continue
			}
		} else if c == KISSFESC {
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
func (d *KISSDecoder) drop() {
	d.buf = d.buf[:0]
	d.inFrame = false
	d.esc = false
}

// Stats returns the counters so far.
func (d *KISSDecoder) Stats() KISSStats { return d.stats }
