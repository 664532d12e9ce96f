package sim

import "github.com/slided/slided/framing"

// BurstFrames is Info.MaxBurstFrames of a stream client whose server speaks
// version 3: how many frames the link may hand over in one Transmit. The
// server puts them on air back to back (medium.TransmitBurst), so a burst
// pays the hand-over between the daemon and the medium server (a TxDone
// out, a transmit back: about 0.5 ms through real daemons, 7 bytes at
// 115200 bit/s) once instead of once a frame.
const BurstFrames = 16

// Splitter cuts a burst into its slided frames, as a KISS TNC does (the
// frames of one key-up, each on air as a frame of its own): the stream
// client's, and simbench's, which puts the daemon's bursts on the medium
// the same way. It keeps a decoder and the frames' slices between calls;
// the zero value is ready; not safe for concurrent use.
type Splitter struct {
	dec    *framing.Decoder
	frames [][]byte
}

// split returns b's frames when b is several slided frames back to back
// (every run of non-zero bytes between 0x00 delimiters decodes as a good
// frame, and there are at least two), each with its delimiters; otherwise
// nil, and b goes on air as it is. The slices alias b and are valid until
// the next call.
func (s *Splitter) Split(b []byte) [][]byte {
	n := framing.CountFrames(b)
	if n < 2 {
		return nil
	}
	if s.dec == nil {
		s.dec = framing.NewDecoder(MaxFrame)
	}
	good := 0
	count := func(framing.Header, []byte) { good++ }
	s.dec.Reset()
	s.dec.Feed(b, count)
	s.dec.Feed([]byte{0}, count)
	if good != n {
		return nil
	}
	s.frames = s.frames[:0]
	rest := b
	for range n - 1 {
		k := frameLen(rest)
		s.frames = append(s.frames, rest[:k])
		rest = rest[k:]
	}
	// The last frame takes any delimiters after it.
	return append(s.frames, rest)
}

// frameLen is the length of the first frame of b: the delimiters before
// its first run of non-zero bytes, the run and the delimiter after it (if b
// has it).
func frameLen(b []byte) int {
	i := 0
	for i < len(b) && b[i] == 0 {
		i++
	}
	for i < len(b) && b[i] != 0 {
		i++
	}
	return min(i+1, len(b))
}
