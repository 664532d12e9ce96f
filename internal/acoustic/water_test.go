package acoustic

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openSlave opens a pty slave the way a daemon would: non-blocking, so that
// deadlines work.
func openSlave(t *testing.T, path string) *os.File {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), path)
	t.Cleanup(func() { f.Close() })
	return f
}

// readN reads n bytes from f, giving up after a guard of 20 s.
func readN(t *testing.T, f *os.File, n int) []byte {
	t.Helper()
	f.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 0, n)
	tmp := make([]byte, 512)
	for len(buf) < n {
		k, err := f.Read(tmp[:min(len(tmp), n-len(buf))])
		buf = append(buf, tmp[:k]...)
		if err != nil {
			t.Fatalf("read %s after %d of %d bytes: %v", f.Name(), len(buf), n, err)
		}
	}
	return buf
}

func startWater(t *testing.T, mode Mode) *Water {
	t.Helper()
	mc := ModemConfig{Mode: mode, Baud: 19200, AirRate: 9600, Preamble: 20 * time.Millisecond}
	w, err := Start(Config{Modems: []ModemConfig{mc, mc}, Delay: UniformDelay(2, 100*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return w
}

// TestWaterCarries: bytes written on one modem's pty come out of the
// other's, in both modes, and the modem does not echo them back.
func TestWaterCarries(t *testing.T) {
	for _, mode := range []Mode{Packet, Streaming} {
		t.Run(mode.String(), func(t *testing.T) {
			w := startWater(t, mode)
			a, b := openSlave(t, w.Path(0)), openSlave(t, w.Path(1))
			msg := pattern(200, 3)
			if _, err := a.Write(msg); err != nil {
				t.Fatal(err)
			}
			if got := readN(t, b, len(msg)); !bytes.Equal(got, msg) {
				t.Fatalf("got %x\nwant %x", got, msg)
			}
			reply := pattern(30, 9)
			if _, err := b.Write(reply); err != nil {
				t.Fatal(err)
			}
			if got := readN(t, a, len(reply)); !bytes.Equal(got, reply) {
				t.Fatalf("reply %x, want %x", got, reply)
			}
			st := w.Stats(1)
			if st.Delivered != 1 || st.BytesOut != 200 {
				t.Errorf("stats of B %+v", st)
			}
		})
	}
}

// TestWaterGarbage: a modem answers garbage on its serial side.
func TestWaterGarbage(t *testing.T) {
	w := startWater(t, Packet)
	b := openSlave(t, w.Path(1))
	w.Garbage(1, 50)
	readN(t, b, 50)
	if st := w.Stats(1); st.Garbage != 50 {
		t.Errorf("%+v", st)
	}
}

// TestWaterStall: a modem that stops reading its serial side mid-packet
// sends the part it got as a packet of its own, and the daemon's writes
// then fill the pty until they block.
func TestWaterStall(t *testing.T) {
	t.Run("resumes", func(t *testing.T) {
		w := startWater(t, Packet)
		a, b := openSlave(t, w.Path(0)), openSlave(t, w.Path(1))
		w.Stall(0, 10, 500*time.Millisecond)
		msg := pattern(30, 1)
		if _, err := a.Write(msg); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, b, len(msg)); !bytes.Equal(got, msg) {
			t.Fatalf("got %x, want %x", got, msg)
		}
		// Without the stall, 30 bytes written at once are one packet.
		if st := w.Stats(0); st.Sent != 2 {
			t.Errorf("%d packets sent, want 2 (10 before the stall, 20 after): %+v", st.Sent, st)
		}
	})
	t.Run("writes block", func(t *testing.T) {
		w := startWater(t, Packet)
		a := openSlave(t, w.Path(0))
		w.Stall(0, 0, time.Hour)
		// The reader may be in a Read already: the first bytes can be
		// taken before the stall begins.
		a.SetWriteDeadline(time.Now().Add(2 * time.Second))
		chunk := make([]byte, 1024)
		total := 0
		var err error
		for total < 4<<20 {
			var k int
			k, err = a.Write(chunk)
			total += k
			if err != nil {
				break
			}
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("wrote %d bytes into a stalled modem, last error %v", total, err)
		}
		t.Logf("a stalled modem's pty took %d bytes before a write blocked", total)
	})
}

// TestWaterClose: Close stops every goroutine, also with a writer blocked on
// a pty nobody reads.
func TestWaterClose(t *testing.T) {
	before := runtime.NumGoroutine()
	mc := ModemConfig{Baud: 1 << 20, AirRate: 1 << 20}
	w, err := Start(Config{Modems: []ModemConfig{mc, mc, mc}})
	if err != nil {
		t.Fatal(err)
	}
	for range 40 {
		w.Garbage(1, 60000) // nobody reads: the pty fills, the writer blocks
	}
	// Wait (bounded) until the slave's input buffer is full.
	b := openSlave(t, w.Path(1))
	for k := 0; ; k++ {
		n, err := unix.IoctlGetInt(int(b.Fd()), unix.TIOCINQ)
		if err != nil {
			t.Fatal(err)
		}
		if n >= 4095 {
			break
		}
		if k == 500 {
			t.Fatalf("only %d bytes waiting in the pty", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := w.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	for range 100 {
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("%d goroutines after Close, %d before", runtime.NumGoroutine(), before)
}

// TestWaterReopen: a daemon that closes its serial port and opens it again
// (as phy/serial does after a Down) finds the modem still there.
func TestWaterReopen(t *testing.T) {
	w := startWater(t, Packet)
	b := openSlave(t, w.Path(1))
	first := openSlave(t, w.Path(0))
	first.Write([]byte("one"))
	if got := readN(t, b, 3); string(got) != "one" {
		t.Fatalf("got %q", got)
	}
	first.Close()
	again := openSlave(t, w.Path(0))
	again.Write([]byte("two"))
	if got := readN(t, b, 3); string(got) != "two" {
		t.Fatalf("got %q", got)
	}
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
}
