package framing

import "bytes"

// COBS (Cheshire and Baker, "Consistent Overhead Byte Stuffing", 1999)
// rewrites a byte string so that it contains no 0x00: the input, with a
// virtual 0x00 appended, is cut after each 0x00 and after each run of 254
// non-zero bytes; each piece becomes one code byte (1 + the number of
// non-zero bytes in it) followed by those bytes. A code of 0xFF means 254
// bytes with no 0x00 after them. When the input ends exactly with a full
// 0xFF block, no empty final block is written (the decoder accepts either).

// cobsEncoder encodes into a caller's slice piece by piece, so that a
// header, a payload and a trailer are stuffed without being joined first.
type cobsEncoder struct {
	buf    []byte
	codeAt int  // index in buf of the open block's code byte
	code   byte // 1 + data bytes in the open block so far
}

// begin opens the first block at the end of buf.
func (e *cobsEncoder) begin(buf []byte) {
	e.buf = buf
	e.open()
}

func (e *cobsEncoder) open() {
	e.codeAt = len(e.buf)
	e.buf = append(e.buf, 0) // placeholder for the code byte
	e.code = 1
}

// write stuffs p. Runs of non-zero bytes are copied in bulk.
func (e *cobsEncoder) write(p []byte) {
	for len(p) > 0 {
		if e.code == 0xFF {
			// The open block is full and more data follows: close it
			// without a 0x00 and open the next one.
			e.buf[e.codeAt] = 0xFF
			e.open()
		}
		n := min(int(0xFF-e.code), len(p))
		if i := bytes.IndexByte(p[:n], 0); i >= 0 {
			e.buf = append(e.buf, p[:i]...)
			e.buf[e.codeAt] = e.code + byte(i)
			e.open()
			p = p[i+1:]
			continue
		}
		e.buf = append(e.buf, p[:n]...)
		e.code += byte(n)
		p = p[n:]
	}
}

// end closes the last block and returns the extended slice.
func (e *cobsEncoder) end() []byte {
	e.buf[e.codeAt] = e.code
	return e.buf
}

// appendCOBS appends COBS(src) to dst (no delimiters).
func appendCOBS(dst, src []byte) []byte {
	var e cobsEncoder
	e.begin(dst)
	e.write(src)
	return e.end()
}
