package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slided/slided/framing"
)

// stuckWriter takes the file header, then blocks every Write until release
// is closed: a disk that has stopped.
type stuckWriter struct {
	writes  atomic.Int64
	release chan struct{}
	buf     bytes.Buffer
}

func (w *stuckWriter) Write(b []byte) (int, error) {
	if w.writes.Add(1) > 1 {
		<-w.release
	}
	return w.buf.Write(b)
}

// TestQueueSlowWriterDoesNotBlock: with the disk stuck, WriteLink still
// returns at once; what does not fit in the queue is dropped and counted,
// and what was queued is written once the disk moves again.
func TestQueueSlowWriterDoesNotBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw := &stuckWriter{release: make(chan struct{})}
		w, err := New(sw)
		if err != nil {
			t.Fatal(err)
		}
		const qlen, n = 8, 1000
		q := NewQueue(w, qlen, nil)
		var done atomic.Bool
		go func() {
			for i := range n {
				q.WriteLink(time.Unix(int64(i), 0), Tx, framing.Header{Kind: framing.KindData, Dst: 2, Src: 1}, make([]byte, 100))
			}
			done.Store(true)
		}()
		synctest.Wait()
		if !done.Load() {
			t.Fatal("WriteLink blocked on a stuck disk")
		}
		if st := q.Stats(); st.Dropped != n-qlen {
			t.Errorf("dropped %d, want %d (all but the %d buffers)", st.Dropped, n-qlen, qlen)
		}
		close(sw.release)
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		st := q.Stats()
		if st.TxFrames != qlen || st.TxFrames+st.Dropped != n {
			t.Errorf("stats %+v: want %d written and the rest dropped", st, qlen)
		}
		if recs := readPcap(t, sw.buf.Bytes()); len(recs) != qlen {
			t.Errorf("%d records in the stream, want %d", len(recs), qlen)
		}
		if q.WriteLink(time.Now(), Rx, framing.Header{}, nil) {
			t.Error("WriteLink after Close queued a frame")
		}
	})
}

// TestRingBound: however much is written, no file of a ring exceeds its
// size, every file is a valid capture, and the newest frames are kept.
func TestRingBound(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		files int
	}{{"one file stops", 1}, {"two files", 2}, {"four files", 4}} {
		t.Run(tc.desc, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.pcap")
			const size = MinRingSize
			w, err := CreateRing(path, size, tc.files)
			if err != nil {
				t.Fatal(err)
			}
			const n = 2000 // 2000 records of 1019 bytes: about 31 files' worth
			payload := make([]byte, 1000)
			for i := range n {
				binary.BigEndian.PutUint32(payload, uint32(i))
				if err := w.WriteLink(time.Unix(int64(i), 0), Rx, framing.Header{Kind: framing.KindData, Dst: 1, Src: 2}, payload); err != nil {
					t.Fatal(err)
				}
			}
			st := w.Stats()
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			var newest uint32
			total := 0
			for i := range tc.files {
				b, err := os.ReadFile(RingName(path, i))
				if err != nil {
					t.Fatal(err)
				}
				if len(b) > size {
					t.Errorf("%s is %d bytes, over the %d-byte bound", RingName(path, i), len(b), size)
				}
				for _, r := range readPcap(t, b) {
					newest = max(newest, binary.BigEndian.Uint32(r.data[framing.HeaderLen:]))
					total++
				}
			}
			if tc.files == 1 {
				if st.Err != ErrLimit || st.Skipped == 0 || st.Rotations != 0 {
					t.Errorf("stats %+v, want a stop at the limit", st)
				}
				return
			}
			if newest != n-1 || st.Skipped != 0 || st.Rotations == 0 {
				t.Errorf("newest frame %d (want %d), stats %+v", newest, n-1, st)
			}
			if perFile := (size - FileHeaderLen) / (RecordHeaderLen + framing.HeaderLen + 1000); total < (tc.files-1)*perFile {
				t.Errorf("%d records kept, want at least %d", total, (tc.files-1)*perFile)
			}
		})
	}
}

func TestCreateRingErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		desc  string
		path  string
		size  int64
		files int
	}{
		{"too small", filepath.Join(dir, "a"), MinRingSize - 1, 2},
		{"no files", filepath.Join(dir, "b"), MinRingSize, 0},
		{"bad directory", filepath.Join(dir, "none", "c"), MinRingSize, 2},
	} {
		if _, err := CreateRing(tc.path, tc.size, tc.files); err == nil {
			t.Errorf("%s: no error", tc.desc)
		}
	}
}

// TestQueueWriteErrorReportedOnce: the error that turns the Writer off is
// handed to onErr once; later frames are skipped.
func TestQueueWriteErrorReportedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fw := &failWriter{n: 2} // file header and one record succeed
		w, err := New(fw)
		if err != nil {
			t.Fatal(err)
		}
		var errs []error
		q := NewQueue(w, 4, func(err error) { errs = append(errs, err) })
		for range 10 {
			q.WriteLink(time.Unix(1, 0), Rx, framing.Header{Kind: framing.KindData, Dst: 1, Src: 2}, []byte("x"))
			synctest.Wait() // the writer goroutine has taken it
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		st := q.Stats()
		if len(errs) != 1 || !errors.Is(errs[0], errDisk) || st.RxFrames != 1 || st.Skipped != 9 || st.Dropped != 0 {
			t.Errorf("errors %v, stats %+v; want one errDisk, 1 written, 9 skipped", errs, st)
		}
	})
}
