package framing

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
)

// DecoderStats counts what a Decoder saw. Every non-empty run of bytes
// between two 0x00 delimiters is one candidate frame and lands in exactly one
// of Frames, TooLong, BadCOBS, Short, BadCRC, BadVersion or BadAddr. TooLong
// and BadCOBS are found while the run streams in (whichever comes first in
// the stream, so chunking does not matter); Short, BadCRC, BadVersion and
// BadAddr are checked in that order when the closing 0x00 arrives.
type DecoderStats struct {
	// Frames emitted: good COBS, length, CRC, version and addresses.
	Frames uint64
	// BadCRC: the CRC-32C trailer does not match (corruption on the link).
	BadCRC uint64
	// BadCOBS: a code byte points past the next 0x00 (a truncated block).
	BadCOBS uint64
	// TooLong: the inner frame grew beyond maxPayload + 7 bytes; the rest of
	// the run up to the next 0x00 is skipped.
	TooLong uint64
	// Short: fewer than 7 inner bytes (header + CRC).
	Short uint64
	// BadVersion: a good CRC but a version other than 1 to MaxVersion (another
	// protocol or a later version of this one).
	BadVersion uint64
	// BadAddr: a good CRC but a 0x00 address, or Broadcast as the source.
	BadAddr uint64
	// GarbageBytes: stream bytes discarded without being emitted, delimiters
	// not counted: the bytes before the first 0x00 the decoder saw, and every
	// byte of a rejected candidate frame.
	GarbageBytes uint64
}

// Decoder is a streaming decoder: it takes the byte stream from a modem in
// any chunking and emits the good frames in it. It is not safe for
// concurrent use; one goroutine owns it. It allocates once, in NewDecoder.
//
// A new Decoder is unsynchronised: it discards bytes up to the first 0x00,
// since a stream joined mid-frame cannot be decoded. Because every frame
// starts with its own 0x00, garbage costs at most the frame it touches.
type Decoder struct {
	buf     []byte // decoded inner bytes of the current run; cap = max inner length
	discard bool   // skipping to the next 0x00 (unsynchronised, or a TooLong run)
	runLen  int    // encoded bytes of the current run seen so far
	code    byte   // code byte of the current COBS block; 0 before the first
	rem     int    // data bytes still expected in the current block
	stats   DecoderStats
}

// NewDecoder returns an unsynchronised decoder that accepts payloads of up
// to maxPayload bytes (negative counts as 0). Its buffer is maxPayload + 7
// bytes.
func NewDecoder(maxPayload int) *Decoder {
	maxPayload = max(maxPayload, 0)
	return &Decoder{
		buf:     make([]byte, 0, maxPayload+Overhead),
		discard: true,
	}
}

// Reset drops any partial frame and makes the decoder unsynchronised again,
// as after NewDecoder (for example when the modem went down). Stats are kept;
// the bytes of a dropped partial frame count as GarbageBytes.
func (d *Decoder) Reset() {
	d.reject() // a partial frame counts as garbage
	d.discard = true
}

// Stats returns the counters so far.
func (d *Decoder) Stats() DecoderStats { return d.stats }

func (d *Decoder) startRun() {
	d.buf = d.buf[:0]
	d.runLen = 0
	d.code = 0
	d.rem = 0
}

// reject ends the current run as garbage. The caller has counted the reason.
func (d *Decoder) reject() {
	d.stats.GarbageBytes += uint64(d.runLen)
	d.startRun()
}

// Feed consumes bytes from the modem in any chunking and calls emit for each
// frame with good COBS, length, CRC, version and addresses. payload aliases
// the decoder's buffer and is valid only during that call of emit; emit must
// not call Feed or Reset. Bad frames are counted in Stats, never emitted. A
// nil emit only counts.
func (d *Decoder) Feed(p []byte, emit func(h Header, payload []byte)) {
	for len(p) > 0 {
		if d.discard {
			i := bytes.IndexByte(p, 0)
			if i < 0 {
				d.stats.GarbageBytes += uint64(len(p))
				return
			}
			d.stats.GarbageBytes += uint64(i)
			p = p[i+1:]
			d.discard = false
			d.startRun()
			continue
		}
		if d.rem == 0 {
			// A code byte or the closing delimiter.
			b := p[0]
			p = p[1:]
			if b == 0 {
				d.endRun(emit)
				continue
			}
			d.runLen++
			if d.code != 0 && d.code != 0xFF {
				// The block before this one ended in a 0x00.
				if len(d.buf) == cap(d.buf) {
					d.tooLong()
					continue
				}
				d.buf = append(d.buf, 0)
			}
			d.code = b
			d.rem = int(b) - 1
			continue
		}
		// Data bytes of the current block, copied in bulk.
		n := min(d.rem, len(p))
		i := bytes.IndexByte(p[:n], 0)
		data := n
		if i >= 0 {
			data = i
		}
		// Whichever comes first in the stream decides, so that the
		// verdict does not depend on how the bytes were chunked.
		if len(d.buf)+data > cap(d.buf) {
			d.tooLong()
			continue
		}
		if i >= 0 {
			// A delimiter before the block is complete.
			d.runLen += i
			p = p[i+1:]
			d.stats.BadCOBS++
			d.reject()
			continue
		}
		d.buf = append(d.buf, p[:n]...)
		d.runLen += n
		d.rem -= n
		p = p[n:]
	}
}

// tooLong rejects the current run and skips the rest of it.
func (d *Decoder) tooLong() {
	d.stats.TooLong++
	d.reject()
	d.discard = true
}

// endRun checks and emits the run that a delimiter just closed.
func (d *Decoder) endRun(emit func(Header, []byte)) {
	if d.runLen == 0 {
		return // empty run between delimiters: ignored
	}
	in := d.buf
	switch {
	case len(in) < Overhead:
		d.stats.Short++
	case crc32.Update(0, castagnoli, in[:len(in)-CRCLen]) != binary.BigEndian.Uint32(in[len(in)-CRCLen:]):
		d.stats.BadCRC++
	case in[0]>>4 < Version || in[0]>>4 > MaxVersion:
		d.stats.BadVersion++
	default:
		h := Header{Kind: Kind(in[0] & 0x0F), Dst: NodeID(in[1]), Src: NodeID(in[2])}
		if v := in[0] >> 4; v != Version {
			h.Version = v
		}
		if !validAddr(h) {
			d.stats.BadAddr++
			break
		}
		d.stats.Frames++
		d.startRun()
		if emit != nil {
			emit(h, in[HeaderLen:len(in)-CRCLen])
		}
		return
	}
	d.reject()
}
