package kiss

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/phy"
)

// deadlineConn records how the write deadline of a connection is set.
type deadlineConn struct {
	net.Conn
	mu    sync.Mutex
	wd    time.Time // the write deadline
	later int       // times a pending deadline was moved later
	sets  int       // times a deadline was set (not cleared)
}

func (d *deadlineConn) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	if !d.wd.IsZero() && time.Now().Before(d.wd) && t.After(d.wd) {
		d.later++
	}
	if !t.IsZero() {
		d.sets++
	}
	d.wd = t
	d.mu.Unlock()
	return d.Conn.SetWriteDeadline(t)
}

// check reports a pending write deadline moved later, or one left after
// the last write.
func (d *deadlineConn) check(t *testing.T, frames int) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sets < frames {
		t.Errorf("write deadline set %d times for %d frames, want one per write", d.sets, frames)
	}
	if d.later > 0 {
		t.Errorf("a pending write deadline moved later %d times in %d frames, want never", d.later, frames)
	}
	if !d.wd.IsZero() {
		t.Errorf("write deadline %v left after the last write, want none", d.wd)
	}
}

// TestTNCWriteDeadlineNotMovedLater: the TNC's write watchdog sets a
// deadline for each write and clears it after, rather than leaving it
// pending to be moved later by the next write (which, like a timer moved
// later, leaves its old time in the runtime's heap to wake the process for
// nothing) or to fire by itself after the last. The old writer left every
// deadline pending.
func TestTNCWriteDeadlineNotMovedLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		near, far := net.Pipe()
		dc := &deadlineConn{Conn: near}
		cfg := Defaults()
		cfg.Addr = "tnc.invalid:8001"
		cfg.AckMode = AckOff
		cfg.Dial = func(context.Context, string, string) (net.Conn, error) { return dc, nil }
		go io.Copy(io.Discard, far) // the TNC reads everything, answers nothing
		tnc, err := Dial(context.Background(), cfg, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { far.Close(); tnc.Close() }()
		if ev := <-tnc.Events(); ev.Kind != phy.Up {
			t.Fatalf("event %v, want up", ev.Kind)
		}
		const frames = 50
		burst := bytes.Repeat([]byte("x"), 20)
		for range frames {
			if err := tnc.Transmit(burst); err != nil {
				t.Fatal(err)
			}
			if ev := <-tnc.Events(); ev.Kind != phy.TxDone {
				t.Fatalf("event %v, want tx done", ev.Kind)
			}
			time.Sleep(3 * time.Millisecond)
		}
		synctest.Wait()
		dc.check(t, frames)
	})
}

// TestServerWriteDeadlineNotMovedLater: the same for the KISS server's
// writer to a client, which wrote each frame heard with a deadline 10 s
// on and left it pending.
func TestServerWriteDeadlineNotMovedLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		near, far := net.Pipe()
		dc := &deadlineConn{Conn: near}
		go io.Copy(io.Discard, far) // the client reads everything
		c := &client{c: dc, name: "pipe", out: make(chan []byte, 4), stop: make(chan struct{})}
		s := &Server{cfg: ServerConfig{ClientQueue: 4}, log: zerolog.Nop(), clients: map[*client]struct{}{c: {}}}
		s.wg.Add(1)
		go s.write(c)
		const frames = 50
		for range frames {
			s.heard(0, []byte("someone else's frame"))
			time.Sleep(3 * time.Millisecond)
		}
		synctest.Wait()
		if st := s.Stats(); st.FramesOut != frames || st.Dropped != 0 {
			t.Errorf("stats %+v, want %d frames out, none dropped", st, frames)
		}
		dc.check(t, frames)
		s.drop(c, nil, "")
		s.wg.Wait()
		far.Close()
	})
}
