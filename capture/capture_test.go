package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/slided/slided/framing"
)

// record is one pcap record as read back by readPcap.
type record struct {
	sec, usec  uint32
	incl, orig uint32
	data       []byte
}

// readPcap is a minimal classic-pcap reader, independent of the writer: it
// checks the file header field by field and returns the records.
func readPcap(t *testing.T, b []byte) []record {
	t.Helper()
	if len(b) < 24 {
		t.Fatalf("file is %d bytes, shorter than a pcap header", len(b))
	}
	wantHdr := []byte{
		0xd4, 0xc3, 0xb2, 0xa1, // magic, little-endian
		0x02, 0x00, 0x04, 0x00, // version 2.4
		0, 0, 0, 0, // thiszone
		0, 0, 0, 0, // sigfigs
		0xff, 0xff, 0x00, 0x00, // snaplen 65535
		0x93, 0x00, 0x00, 0x00, // linktype 147
	}
	if !bytes.Equal(b[:24], wantHdr) {
		t.Fatalf("file header\n got % x\nwant % x", b[:24], wantHdr)
	}
	var recs []record
	for p := b[24:]; len(p) > 0; {
		if len(p) < 16 {
			t.Fatalf("%d trailing bytes, shorter than a record header", len(p))
		}
		r := record{
			sec:  binary.LittleEndian.Uint32(p[0:]),
			usec: binary.LittleEndian.Uint32(p[4:]),
			incl: binary.LittleEndian.Uint32(p[8:]),
			orig: binary.LittleEndian.Uint32(p[12:]),
		}
		p = p[16:]
		if r.incl > 65535 || int(r.incl) > len(p) {
			t.Fatalf("record incl_len %d, %d bytes left", r.incl, len(p))
		}
		r.data, p = p[:r.incl], p[r.incl:]
		recs = append(recs, r)
	}
	return recs
}

func TestWriteFrameRecords(t *testing.T) {
	base := time.Unix(1700000000, 123456789)
	big := bytes.Repeat([]byte{0xAB}, 70000)
	tests := []struct {
		desc     string
		t        time.Time
		frame    []byte
		wantSec  uint32
		wantUsec uint32
		wantIncl uint32
		wantOrig uint32
	}{
		{desc: "data frame", t: base, frame: []byte{0x10, 0x02, 0x01, 0x08, 0x00, 0x45},
			wantSec: 1700000000, wantUsec: 123456, wantIncl: 6, wantOrig: 6},
		{desc: "header only", t: base.Add(time.Second), frame: []byte{0x11, 0xff, 0x03},
			wantSec: 1700000001, wantUsec: 123456, wantIncl: 3, wantOrig: 3},
		{desc: "empty frame", t: base, frame: nil,
			wantSec: 1700000000, wantUsec: 123456, wantIncl: 0, wantOrig: 0},
		{desc: "longer than snaplen is cut", t: base, frame: big,
			wantSec: 1700000000, wantUsec: 123456, wantIncl: 65535, wantOrig: 70000},
		{desc: "before 1970 clamps to 0", t: time.Unix(-5, 0), frame: []byte{1},
			wantSec: 0, wantUsec: 0, wantIncl: 1, wantOrig: 1},
		{desc: "after 2106 clamps to max", t: time.Unix(1<<33, 0), frame: []byte{1},
			wantSec: 0xffffffff, wantUsec: 999999, wantIncl: 1, wantOrig: 1},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := New(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteFrame(tc.t, Rx, tc.frame); err != nil {
				t.Fatal(err)
			}
			recs := readPcap(t, buf.Bytes())
			if len(recs) != 1 {
				t.Fatalf("got %d records, want 1", len(recs))
			}
			r := recs[0]
			if r.sec != tc.wantSec || r.usec != tc.wantUsec || r.incl != tc.wantIncl || r.orig != tc.wantOrig {
				t.Errorf("record header got sec=%d usec=%d incl=%d orig=%d, want %d %d %d %d",
					r.sec, r.usec, r.incl, r.orig, tc.wantSec, tc.wantUsec, tc.wantIncl, tc.wantOrig)
			}
			if want := tc.frame[:tc.wantIncl]; !bytes.Equal(r.data, want) {
				t.Errorf("record data got % x, want % x", r.data[:min(len(r.data), 16)], want[:min(len(want), 16)])
			}
			st := w.Stats()
			if st.RxFrames != 1 || st.TxFrames != 0 || st.Bytes != uint64(buf.Len()) {
				t.Errorf("stats %+v, want 1 rx frame and %d bytes", st, buf.Len())
			}
		})
	}
}

// TestRecordBytes pins one whole file byte by byte.
func TestRecordBytes(t *testing.T) {
	var buf bytes.Buffer
	w, err := New(&buf)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(0x01020304, 0x0a0b0c*1000)
	if err := w.WriteFrame(ts, Tx, []byte{0x10, 0xff, 0x07, 0x08, 0x06}); err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0xff, 0xff, 0x00, 0x00, 0x93, 0x00, 0x00, 0x00,
		0x04, 0x03, 0x02, 0x01, // ts_sec
		0x0c, 0x0b, 0x0a, 0x00, // ts_usec
		0x05, 0x00, 0x00, 0x00, // incl_len
		0x05, 0x00, 0x00, 0x00, // orig_len
		0x10, 0xff, 0x07, 0x08, 0x06,
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("file\n got % x\nwant % x", buf.Bytes(), want)
	}
}

func TestWriteLinkMatchesWriteFrame(t *testing.T) {
	tests := []struct {
		desc    string
		h       framing.Header
		payload []byte
		want    []byte
	}{
		{desc: "data unicast", h: framing.Header{Kind: framing.KindData, Dst: 2, Src: 1},
			payload: []byte{0x08, 0x00, 0x45}, want: []byte{0x10, 0x02, 0x01, 0x08, 0x00, 0x45}},
		{desc: "ethernet broadcast", h: framing.Header{Kind: framing.KindEthernet, Dst: framing.Broadcast, Src: 9},
			payload: nil, want: []byte{0x11, 0xff, 0x09}},
		{desc: "kind masked to 4 bits", h: framing.Header{Kind: 0x2F, Dst: 1, Src: 2},
			payload: []byte{0}, want: []byte{0x1f, 0x01, 0x02, 0x00}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var a, b bytes.Buffer
			wa, _ := New(&a)
			wb, _ := New(&b)
			ts := time.Unix(1, 0)
			if err := wa.WriteLink(ts, Rx, tc.h, tc.payload); err != nil {
				t.Fatal(err)
			}
			if err := wb.WriteFrame(ts, Rx, tc.want); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatalf("WriteLink wrote\n% x\nWriteFrame wrote\n% x", a.Bytes(), b.Bytes())
			}
		})
	}
}

// WriteLink's record round-trips through the framing package: re-encoding
// the captured inner frame and decoding it gives back header and payload.
func TestCapturedFrameDecodes(t *testing.T) {
	var buf bytes.Buffer
	w, _ := New(&buf)
	h := framing.Header{Kind: framing.KindData, Dst: 3, Src: 4}
	payload := []byte{0x86, 0xdd, 1, 2, 3}
	if err := w.WriteLink(time.Unix(5, 0), Tx, h, payload); err != nil {
		t.Fatal(err)
	}
	r := readPcap(t, buf.Bytes())[0]
	hdr := r.data[:framing.HeaderLen]
	got := framing.Header{Kind: framing.Kind(hdr[0] & 0x0F), Dst: framing.NodeID(hdr[1]), Src: framing.NodeID(hdr[2])}
	wire := framing.AppendFrame(nil, got, r.data[framing.HeaderLen:])
	var n int
	framing.NewDecoder(1500).Feed(wire, func(dh framing.Header, p []byte) {
		n++
		if dh != h || !bytes.Equal(p, payload) {
			t.Errorf("decoded %+v % x, want %+v % x", dh, p, h, payload)
		}
	})
	if n != 1 {
		t.Fatalf("decoded %d frames, want 1", n)
	}
	if hdr[0]>>4 != framing.Version {
		t.Errorf("version nibble %d, want %d", hdr[0]>>4, framing.Version)
	}
}

// failWriter fails every write from the n-th on.
type failWriter struct {
	n, calls int
	buf      bytes.Buffer
}

var errDisk = errors.New("no space left on device")

func (f *failWriter) Write(p []byte) (int, error) {
	f.calls++
	if f.calls > f.n {
		return 0, errDisk
	}
	return f.buf.Write(p)
}

func TestWriteErrorTurnsOff(t *testing.T) {
	fw := &failWriter{n: 2} // file header and one record succeed
	w, err := New(fw)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1, 0)
	if err := w.WriteFrame(ts, Tx, []byte{1, 2, 3}); err != nil {
		t.Fatalf("first frame: %v", err)
	}
	err = w.WriteFrame(ts, Tx, []byte{4, 5, 6})
	if !errors.Is(err, errDisk) {
		t.Fatalf("second frame: got %v, want %v", err, errDisk)
	}
	for i := range 5 {
		if err := w.WriteFrame(ts, Rx, []byte{7}); err != nil {
			t.Fatalf("frame %d after the error: got %v, want nil", i, err)
		}
	}
	st := w.Stats()
	if st.TxFrames != 1 || st.RxFrames != 0 || st.Skipped != 6 || !errors.Is(st.Err, errDisk) {
		t.Errorf("stats %+v, want 1 tx, 6 skipped, err %v", st, errDisk)
	}
	if fw.calls != 3 {
		t.Errorf("%d writes reached the io.Writer, want 3 (the writer must stop after the error)", fw.calls)
	}
	if len(readPcap(t, fw.buf.Bytes())) != 1 {
		t.Error("the file does not hold exactly the one good record")
	}
}

func TestFileHeaderError(t *testing.T) {
	_, err := New(&failWriter{n: 0})
	if !errors.Is(err, errDisk) {
		t.Fatalf("New: got %v, want %v", err, errDisk)
	}
}

func TestLimit(t *testing.T) {
	var buf bytes.Buffer
	w, _ := New(&buf)
	// Header 24 + two records of 16+4: 64 bytes fit in 70, the third does not.
	w.SetLimit(70)
	ts := time.Unix(1, 0)
	for i := range 5 {
		if err := w.WriteFrame(ts, Rx, []byte{1, 2, 3, byte(i)}); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if got := len(readPcap(t, buf.Bytes())); got != 2 {
		t.Errorf("%d records in the file, want 2", got)
	}
	if buf.Len() > 70 {
		t.Errorf("file is %d bytes, over the 70-byte limit", buf.Len())
	}
	st := w.Stats()
	if st.Skipped != 3 || !errors.Is(st.Err, ErrLimit) {
		t.Errorf("stats %+v, want 3 skipped and ErrLimit", st)
	}
}

func TestCreateAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "air.pcap")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(time.Unix(2, 0), Tx, []byte{0x10, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.WriteFrame(time.Unix(3, 0), Tx, []byte{1}); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteFrame after Close: got %v, want ErrClosed", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if recs := readPcap(t, b); len(recs) != 1 || !bytes.Equal(recs[0].data, []byte{0x10, 1, 2}) {
		t.Errorf("records %+v, want one frame 10 01 02", recs)
	}
}

func TestCreateBadPath(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "missing", "x.pcap")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want an ErrNotExist", err)
	}
}

// TestConcurrent writes from several goroutines (run with -race) and checks
// that every record is whole.
func TestConcurrent(t *testing.T) {
	var buf bytes.Buffer
	w, _ := New(&buf)
	const goroutines, frames = 4, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			frame := bytes.Repeat([]byte{byte(g)}, 10+g)
			for range frames {
				if err := w.WriteFrame(time.Unix(1, 0), Direction(g%2), frame); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	recs := readPcap(t, buf.Bytes())
	if len(recs) != goroutines*frames {
		t.Fatalf("%d records, want %d", len(recs), goroutines*frames)
	}
	for i, r := range recs {
		g := int(r.data[0])
		if len(r.data) != 10+g || !bytes.Equal(r.data, bytes.Repeat([]byte{byte(g)}, 10+g)) {
			t.Fatalf("record %d is torn: % x", i, r.data)
		}
	}
	if st := w.Stats(); st.TxFrames+st.RxFrames != goroutines*frames {
		t.Errorf("stats %+v", st)
	}
}

func TestDirectionString(t *testing.T) {
	for _, tc := range []struct {
		d    Direction
		want string
	}{{Tx, "tx"}, {Rx, "rx"}, {7, "direction(7)"}} {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("%d.String() = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func BenchmarkWriteFrame(b *testing.B) {
	for _, n := range []int{64, 1500} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			w, _ := New(io.Discard)
			frame := make([]byte, n)
			ts := time.Unix(1, 0)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				if err := w.WriteFrame(ts, Tx, frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkWriteLink(b *testing.B) {
	w, _ := New(io.Discard)
	payload := make([]byte, 1500)
	h := framing.Header{Kind: framing.KindData, Dst: 2, Src: 1}
	ts := time.Unix(1, 0)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.WriteLink(ts, Rx, h, payload); err != nil {
			b.Fatal(err)
		}
	}
}
