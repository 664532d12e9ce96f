// Package capture records the frames a node puts on air and hears, in a
// classic pcap file that Wireshark and tcpdump open.
//
// The file has magic 0xa1b2c3d4 (microsecond timestamps), version 2.4,
// snaplen 65535 and link type LINKTYPE_USER0 (147). Each record is one link
// frame as it was decoded on air: the 3-byte link header (version|kind, DST,
// SRC) and the payload, without COBS or KISS framing and without the CRC-32C
// trailer. Classic pcap has no direction field: a frame this node sent has
// its own node id as SRC. docs/operations.md tells how to make Wireshark
// decode the link header (User DLTs, or packaging/slided.lua).
//
// All multi-byte fields are written little-endian; the magic number tells a
// reader the byte order, so files are the same on every architecture.
//
// A Writer writes synchronously; CreateRing bounds what it keeps on disk
// (a ring of files of a maximum size), and a Queue in front of it keeps the
// caller off the disk: a bounded set of buffers and a writer goroutine,
// dropping and counting frames when the disk falls behind.
package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"github.com/slided/slided/framing"
)

const (
	// Magic is the classic pcap magic number for microsecond timestamps.
	Magic = 0xa1b2c3d4
	// VersionMajor and VersionMinor are the pcap format version, 2.4.
	VersionMajor, VersionMinor = 2, 4
	// SnapLen is the largest number of bytes stored per record; longer
	// frames are cut and keep their original length in the record header.
	SnapLen = 65535
	// LinkType is LINKTYPE_USER0 (DLT_USER0), the first of the link types
	// reserved for private use.
	LinkType = 147
	// FileHeaderLen and RecordHeaderLen are the sizes of the pcap headers.
	FileHeaderLen, RecordHeaderLen = 24, 16
)

// Direction says whether a frame was sent or received by this node.
type Direction uint8

const (
	// Tx is a frame this node put on air.
	Tx Direction = iota
	// Rx is a frame this node decoded from the air.
	Rx
)

// String returns "tx" or "rx" (or "direction(N)").
func (d Direction) String() string {
	switch d {
	case Tx:
		return "tx"
	case Rx:
		return "rx"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// ErrClosed is returned by WriteFrame after Close.
var ErrClosed = errors.New("capture: writer closed")

// Stats counts what a Writer (and the Queue in front of it) did.
type Stats struct {
	TxFrames, RxFrames uint64 // records written, by direction
	Bytes              uint64 // bytes written to the files, headers included
	// Skipped counts frames not written because the writer turned itself
	// off after a write error or on reaching its size limit.
	Skipped uint64
	// Dropped counts frames a Queue refused because it was full (the disk
	// was slower than the link).
	Dropped uint64
	// Rotations counts moves to the next file of a ring (CreateRing).
	Rotations uint64
	// Err is the error that turned the writer off (nil while it runs, or
	// ErrLimit after the size limit); Error is its text, for JSON.
	Err   error  `json:"-"`
	Error string `json:",omitempty"`
}

// ErrLimit is the Stats.Err of a writer that reached its size limit.
var ErrLimit = errors.New("capture: size limit reached")

// Writer writes one pcap stream. Its methods are safe for concurrent use;
// each WriteFrame issues one Write of the record header and frame together,
// so a file cut short by a crash ends at most in one partial record.
//
// WriteFrame waits for the underlying Write (put a Queue in front of a
// Writer on a path that must not wait for a disk). The first write error is
// returned by the WriteFrame that met it, after which the writer is off and
// every later WriteFrame returns nil and counts the frame in Stats.Skipped.
type Writer struct {
	mu  sync.Mutex // held across file writes
	smu sync.Mutex // guards stats; writers of stats hold mu too

	w       io.Writer
	closer  io.Closer  // the file Create opened; nil for New
	ring    []*os.File // CreateRing's files; w is ring[cur]
	cur     int
	buf     []byte // record being assembled; grows to the largest record
	limit   int64  // 0: none
	written int64  // bytes in the current file
	closed  bool
	stats   Stats
}

// Create creates (or truncates) the file at path with mode 0600 (captures
// hold user traffic) and writes the pcap file header. Close closes the file.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	w, err := New(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.closer = f
	return w, nil
}

// MinRingSize is the smallest file size CreateRing takes: a file header
// and one record of SnapLen bytes.
const MinRingSize = FileHeaderLen + RecordHeaderLen + SnapLen

// RingName is the name of file i (0-based) of a ring at path: path itself,
// then path.1, path.2 and so on.
func RingName(path string, i int) string {
	if i == 0 {
		return path
	}
	return fmt.Sprintf("%s.%d", path, i)
}

// CreateRing creates (or truncates) files files at path (RingName) with
// mode 0600, each holding a pcap file header, and returns a Writer that
// fills them in turn: when a record would take the current file past
// maxSize bytes, it truncates the next file (the oldest) and goes on there.
// So no file ever exceeds maxSize and the ring holds at most files*maxSize
// bytes; the file written last holds the newest frames. With one file the
// writer stops at maxSize instead (Stats.Err is ErrLimit), keeping the
// first frames. All the files are opened here, so the writer keeps working
// after the daemon drops privileges. maxSize must be at least MinRingSize.
func CreateRing(path string, maxSize int64, files int) (*Writer, error) {
	if maxSize < MinRingSize {
		return nil, fmt.Errorf("capture: file size %d: want at least %d bytes (a header and one full record)", maxSize, MinRingSize)
	}
	if files < 1 {
		return nil, fmt.Errorf("capture: %d files: want at least 1", files)
	}
	ring := make([]*os.File, 0, files)
	closeAll := func() {
		for _, f := range ring {
			f.Close()
		}
	}
	for i := range files {
		f, err := os.OpenFile(RingName(path, i), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("capture: %w", err)
		}
		ring = append(ring, f)
		if i > 0 {
			if _, err := f.Write(fileHeader()); err != nil {
				closeAll()
				return nil, fmt.Errorf("capture: write file header: %w", err)
			}
		}
	}
	w, err := New(ring[0])
	if err != nil {
		closeAll()
		return nil, err
	}
	w.ring, w.limit = ring, maxSize
	return w, nil
}

// rotate moves to the next file of the ring, truncated to a file header.
func (w *Writer) rotate() error {
	next := (w.cur + 1) % len(w.ring)
	f := w.ring[next]
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("capture: rotate: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("capture: rotate: %w", err)
	}
	if _, err := f.Write(fileHeader()); err != nil {
		return fmt.Errorf("capture: rotate: write file header: %w", err)
	}
	w.cur, w.w, w.written = next, f, FileHeaderLen
	w.smu.Lock()
	w.stats.Bytes += FileHeaderLen
	w.stats.Rotations++
	w.smu.Unlock()
	return nil
}

// fileHeader returns the pcap file header.
func fileHeader() []byte {
	h := make([]byte, FileHeaderLen)
	le := binary.LittleEndian
	le.PutUint32(h[0:], Magic)
	le.PutUint16(h[4:], VersionMajor)
	le.PutUint16(h[6:], VersionMinor)
	// h[8:16]: thiszone and sigfigs, both 0.
	le.PutUint32(h[16:], SnapLen)
	le.PutUint32(h[20:], LinkType)
	return h
}

// New writes the pcap file header to w and returns a Writer that appends
// records to it. The Writer does not close w.
func New(w io.Writer) (*Writer, error) {
	if _, err := w.Write(fileHeader()); err != nil {
		return nil, fmt.Errorf("capture: write file header: %w", err)
	}
	return &Writer{w: w, written: FileHeaderLen, stats: Stats{Bytes: FileHeaderLen}}, nil
}

// SetLimit turns the writer off once the stream would grow past maxBytes
// (file header included), so a capture left running cannot fill a small
// board's storage. 0 means no limit (the default). The frame that would
// cross the limit and all later ones are counted as Skipped.
func (w *Writer) SetLimit(maxBytes int64) {
	w.mu.Lock()
	w.limit = maxBytes
	w.mu.Unlock()
}

// WriteFrame appends one record: frame is the inner link frame (header and
// payload, no CRC) at time t, sent or received as dir says. It does not
// keep frame. It returns the write error that turns the writer off, once;
// ErrClosed after Close; nil otherwise (including while off).
// It does not allocate once its buffer has grown to the largest record.
func (w *Writer) WriteFrame(t time.Time, dir Direction, frame []byte) error {
	return w.write(t, dir, nil, frame)
}

// WriteLink is WriteFrame for a frame held as a decoded header and its
// payload, as framing.Decoder delivers it: it writes the same record as
// WriteFrame would for the inner frame (version|kind, DST, SRC, payload)
// and spares the caller assembling it.
func (w *Writer) WriteLink(t time.Time, dir Direction, h framing.Header, payload []byte) error {
	hdr := framing.HeaderBytes(h)
	return w.write(t, dir, hdr[:], payload)
}

func (w *Writer) write(t time.Time, dir Direction, head, body []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.stats.Err != nil {
		w.smu.Lock()
		w.stats.Skipped++
		w.smu.Unlock()
		return nil
	}
	orig := len(head) + len(body)
	incl := min(orig, SnapLen)
	n := RecordHeaderLen + incl
	if w.limit > 0 && w.written+int64(n) > w.limit {
		if len(w.ring) < 2 {
			w.smu.Lock()
			w.stats.Err = ErrLimit
			w.stats.Skipped++
			w.smu.Unlock()
			return nil
		}
		if err := w.rotate(); err != nil {
			w.smu.Lock()
			w.stats.Err = err
			w.stats.Skipped++
			w.smu.Unlock()
			return err
		}
	}

	sec, usec := timestamp(t)
	b := w.buf[:0]
	b = binary.LittleEndian.AppendUint32(b, sec)
	b = binary.LittleEndian.AppendUint32(b, usec)
	b = binary.LittleEndian.AppendUint32(b, uint32(incl))
	b = binary.LittleEndian.AppendUint32(b, uint32(min(uint64(orig), math.MaxUint32)))
	b = append(b, head...) // head is at most 3 bytes, under SnapLen
	b = append(b, body[:incl-len(head)]...)
	w.buf = b

	if _, err := w.w.Write(b); err != nil {
		w.smu.Lock()
		w.stats.Err = fmt.Errorf("capture: write record: %w", err)
		w.stats.Skipped++
		w.smu.Unlock()
		return w.stats.Err
	}
	w.written += int64(n)
	w.smu.Lock()
	w.stats.Bytes += uint64(n)
	if dir == Rx {
		w.stats.RxFrames++
	} else {
		w.stats.TxFrames++
	}
	w.smu.Unlock()
	return nil
}

// timestamp splits t into pcap's unsigned seconds and microseconds, clamped
// to the range the format can hold (1970 to 2106).
func timestamp(t time.Time) (sec, usec uint32) {
	s := t.Unix()
	switch {
	case s < 0:
		return 0, 0
	case s > math.MaxUint32:
		return math.MaxUint32, 999999
	}
	return uint32(s), uint32(t.Nanosecond() / 1000)
}

// Stats returns the writer's counters.
// It does not wait for a write in progress (a stuck disk).
func (w *Writer) Stats() Stats {
	w.smu.Lock()
	defer w.smu.Unlock()
	st := w.stats
	if st.Err != nil {
		st.Error = st.Err.Error()
	}
	return st
}

// Close stops the writer and closes the files that Create or CreateRing
// opened (a Writer from New leaves its io.Writer open). Later WriteFrame calls return
// ErrClosed. Close is idempotent; later calls return nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.buf = nil
	if w.ring != nil {
		var first error
		for _, f := range w.ring {
			if err := f.Close(); err != nil && first == nil {
				first = fmt.Errorf("capture: close: %w", err)
			}
		}
		return first
	}
	if w.closer != nil {
		if err := w.closer.Close(); err != nil {
			return fmt.Errorf("capture: close: %w", err)
		}
	}
	return nil
}
