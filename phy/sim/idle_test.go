package sim

import (
	"context"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/phy"
)

// TestClientIdlePings: an idle client on an answering medium pings it at
// most twice a minute (each ping wakes the daemon, and the Go runtime makes
// a dozen context switches of every wake), and at least once in ten
// minutes, so that a medium that hangs is still found. The old client
// pinged every 3 s.
func TestClientIdlePings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := upFake(t)
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n := f.pings.Load(); n < 1 || n > 20 {
			t.Errorf("%d pings in 10 idle minutes, want 1 to 20", n)
		}
		if evs := pending(c.Events()); len(evs) != 0 {
			t.Errorf("medium answering pings: events %v, want none", kindsOf(evs))
		}
	})
}

// TestClientBusyKeepalive: while a Transmit waits for its TxDone, a medium
// that stopped answering (after minutes of idle silence) is found within
// seconds, as with the short keep-alive before, not after the idle
// timeout; and a Transmit after minutes of idle silence is not taken for
// one.
func TestClientBusyKeepalive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := upFake(t)
		time.Sleep(kaInterval - time.Second) // silent since the welcome
		if err := c.Transmit([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if ev := <-c.Events(); ev.Kind != phy.TxDone {
			t.Fatalf("event %v, want tx done", ev.Kind)
		}
		time.Sleep(5 * time.Minute)
		f.answer.Store(false)
		start := time.Now()
		if err := c.Transmit([]byte("y")); err != nil {
			t.Fatal(err)
		}
		if ev := <-c.Events(); ev.Kind != phy.Down {
			t.Fatalf("event %v, want down", ev.Kind)
		}
		if d := time.Since(start); d > kaBusyTimeout+kaBusyInterval {
			t.Errorf("down %v after a Transmit the medium never answered, want within %v", d, kaBusyTimeout+kaBusyInterval)
		}
	})
}

// upFake dials a client over a fakeStream that answers pings (node 3, a
// 10 ms first backoff) and waits for its Up; the client closes at the end
// of the test. Call it inside the synctest bubble.
func upFake(t *testing.T) (*fakeStream, *Client) {
	t.Helper()
	return upFakeWith(t, &fakeStream{})
}

// upFakeWith is upFake over f, which it sets to answer.
func upFakeWith(t *testing.T, f *fakeStream) (*fakeStream, *Client) {
	t.Helper()
	f.answer.Store(true)
	c, err := dialWith(t.Context(), "fake", f.dial, 3, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if ev := <-c.Events(); ev.Kind != phy.Up {
		t.Fatalf("first event %v, want up", ev.Kind)
	}
	return f, c
}

// TestClientKeepaliveRearmsOnlyWhenMoved: under load (a Transmit and its
// TxDone every 73 ms, the frame rate at 115200 bit/s) the writer sets its
// keep-alive timer again only when the deadline moves earlier, and wakes
// for it only a few times, not once per frame: a timer moved later keeps
// its old time in the runtime's heap, which wakes the process for nothing
// (docs/performance.md, "CPU under load"). The old writer reset it after
// every Transmit.
func TestClientKeepaliveRearmsOnlyWhenMoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := upFakeWith(t, &fakeStream{txDelay: 70 * time.Millisecond})
		const frames = 200 // 14.6 s, five busy intervals
		for range frames {
			if err := c.Transmit([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if ev := <-c.Events(); ev.Kind != phy.TxDone {
				t.Fatalf("event %v, want tx done", ev.Kind)
			}
			time.Sleep(3 * time.Millisecond)
		}
		synctest.Wait()
		if n := c.kaResets.Load(); n > 10 {
			t.Errorf("keep-alive timer set %d times for %d frames, want at most 10", n, frames)
		}
		if n := c.kaWakes.Load(); n > 10 {
			t.Errorf("writer woken %d times by its timer for %d frames, want at most 10", n, frames)
		}
		if n := f.pings.Load(); n != 0 {
			t.Errorf("%d pings to a medium that answers every frame, want none", n)
		}
	})
}

// TestClientIdleWakesOncePerPing: idle, the writer's timer fires once per
// ping, not again a round trip after it (the pong moved the silence on by
// the round trip after the timer was set). The old writer woke twice.
func TestClientIdleWakesOncePerPing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := upFakeWith(t, &fakeStream{pongDelay: time.Millisecond})
		time.Sleep(10*time.Minute + 10*time.Second) // not at a ping
		synctest.Wait()
		pings, wakes := f.pings.Load(), c.kaWakes.Load()
		if pings == 0 || uint64(pings) < wakes-1 {
			t.Errorf("%d timer wakes for %d pings in 10 idle minutes, want one per ping", wakes, pings)
		}
	})
}

// TestClientWriteDeadlineNotMovedLater: the write watchdog's deadline is
// cleared after each write, not moved later by the next one while still
// pending (which, like a timer moved later, leaves its old time in the
// runtime's heap to wake the process for nothing), and no deadline is left
// pending after a write to fire by itself. The old writer moved it later
// with every frame.
func TestClientWriteDeadlineNotMovedLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStream{txDelay: 70 * time.Millisecond}
		f.answer.Store(true)
		var conns []*deadlineConn
		dial := func(ctx context.Context) (net.Conn, error) {
			nc, err := f.dial(ctx)
			dc := &deadlineConn{Conn: nc}
			conns = append(conns, dc)
			return dc, err
		}
		c, err := dialWith(t.Context(), "fake", dial, 3, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if ev := <-c.Events(); ev.Kind != phy.Up {
			t.Fatalf("first event %v, want up", ev.Kind)
		}
		for range 50 {
			if err := c.Transmit([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if ev := <-c.Events(); ev.Kind != phy.TxDone {
				t.Fatalf("event %v, want tx done", ev.Kind)
			}
			time.Sleep(3 * time.Millisecond)
		}
		synctest.Wait()
		dc := conns[len(conns)-1]
		dc.mu.Lock()
		defer dc.mu.Unlock()
		if dc.later > 0 {
			t.Errorf("a pending write deadline moved later %d times in 50 frames, want never", dc.later)
		}
		if !dc.wd.IsZero() {
			t.Errorf("write deadline %v left after the last write, want none", dc.wd)
		}
	})
}

// TestUDPClientDeadlinesNotMovedLater: the same for the UDP client, whose
// read deadline is its keep-alive and tx-done timer: under load it is set
// again only when it moves earlier (or passed), and the write deadline is
// cleared after each write. The old client moved both later with every
// frame.
func TestUDPClientDeadlinesNotMovedLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &udpFake{txDelay: 70 * time.Millisecond}
		f.answer.Store(true)
		a, b := net.Pipe()
		go f.serve(b)
		dc := &deadlineConn{Conn: a}
		c, err := newUDPClient(dc, "pipe", 4, nil, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.attach(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if ev := <-c.Events(); ev.Kind != phy.Up {
			t.Fatalf("event %v, want up", ev.Kind)
		}
		for range 50 {
			if err := c.Transmit([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if ev := <-c.Events(); ev.Kind != phy.TxDone {
				t.Fatalf("event %v, want tx done", ev.Kind)
			}
			time.Sleep(3 * time.Millisecond)
		}
		synctest.Wait()
		dc.mu.Lock()
		defer dc.mu.Unlock()
		if dc.later > 0 || dc.rlater > 0 {
			t.Errorf("pending deadlines moved later in 50 frames: write %d, read %d times, want never", dc.later, dc.rlater)
		}
		if !dc.wd.IsZero() {
			t.Errorf("write deadline %v left after the last write, want none", dc.wd)
		}
		if st := c.Stats(); st.TxLost != 0 || st.Downs != 0 {
			t.Errorf("stats %+v, want no tx lost and no down", st)
		}
	})
}

// deadlineConn records how the deadlines of a connection are set.
type deadlineConn struct {
	net.Conn
	mu     sync.Mutex
	wd, rd time.Time // the write and read deadlines
	later  int       // times a pending write deadline was moved later
	rlater int       // the same for the read deadline
}

func (d *deadlineConn) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	if !d.rd.IsZero() && time.Now().Before(d.rd) && t.After(d.rd) {
		d.rlater++
	}
	d.rd = t
	d.mu.Unlock()
	return d.Conn.SetReadDeadline(t)
}

func (d *deadlineConn) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	if !d.wd.IsZero() && time.Now().Before(d.wd) && t.After(d.wd) {
		d.later++
	}
	d.wd = t
	d.mu.Unlock()
	return d.Conn.SetWriteDeadline(t)
}
