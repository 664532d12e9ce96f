package kiss

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/rs/zerolog"

	"github.com/slided/slided/bridge"
	"github.com/slided/slided/internal/direwolftest"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/kiss/kissproto"
)

// A TNC is a modem the bridge can drive.
var _ bridge.PHY = (*TNC)(nil)

// wait bounds every blocking step of a test; generous, never a measurement.
const wait = 20 * time.Second

// fakeClock fires timers only when the test advances it. Each new timer is
// announced on armed so the test knows what the TNC is waiting for.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	armed  chan *fakeTimer
}

type fakeTimer struct {
	clk     *fakeClock
	c       chan time.Time
	at      time.Time
	d       time.Duration
	stopped bool
	fired   bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_000_000, 0), armed: make(chan *fakeTimer, 64)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) timer {
	c.mu.Lock()
	t := &fakeTimer{clk: c, c: make(chan time.Time, 1), at: c.now.Add(d), d: d}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	c.armed <- t
	return t
}

// Advance lets d pass with the process running: each timer due by then
// fires on time (its value is its deadline, as a real timer's would be).
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if !t.stopped && !t.fired && !t.at.After(c.now) {
			t.fired = true
			t.c <- t.at
		}
	}
}

// Stall lets d pass with the process stopped (SIGSTOP): the timers due by
// then fire when it resumes, late (their value is the new now).
func (c *fakeClock) Stall(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if !t.stopped && !t.fired && !t.at.After(c.now) {
			t.fired = true
			t.c <- c.now
		}
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

func (c *fakeClock) nextTimer(t *testing.T) *fakeTimer {
	t.Helper()
	select {
	case tm := <-c.armed:
		return tm
	case <-time.After(wait):
		t.Fatal("no timer armed")
		return nil
	}
}

func nextEvent(t testing.TB, tnc *TNC) phy.Event {
	t.Helper()
	select {
	case ev, ok := <-tnc.Events():
		if !ok {
			t.Fatal("events channel closed")
		}
		return ev
	case <-time.After(wait):
		t.Fatal("no event")
		return phy.Event{}
	}
}

func wantEvent(t testing.TB, tnc *TNC, kind phy.EventKind) phy.Event {
	t.Helper()
	ev := nextEvent(t, tnc)
	if ev.Kind != kind {
		t.Fatalf("event %v, want %v", ev.Kind, kind)
	}
	return ev
}

// testLog writes the TNC's log lines into the test log.
func testLog(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.ConsoleWriter{Out: testWriter{t}, NoColor: true}).With().Timestamp().Logger()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// fakeTNC is a KISS TCP server inside a test namespace: it hands each
// accepted connection to the test.
type fakeTNC struct {
	ns    string
	addr  string
	l     net.Listener
	conns chan net.Conn
}

func listenFake(t *testing.T, ns, addr string) *fakeTNC {
	t.Helper()
	l, err := direwolftest.ListenIn(ns, "tcp", addr)
	if err != nil {
		t.Fatalf("listen in %s: %v", ns, err)
	}
	f := &fakeTNC{ns: ns, addr: l.Addr().String(), l: l, conns: make(chan net.Conn, 4)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.conns <- c
		}
	}()
	t.Cleanup(func() { l.Close() })
	return f
}

func (f *fakeTNC) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-f.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(wait):
		t.Fatal("fake TNC: no connection")
		return nil
	}
}

// readFrames reads from r until it has n KISS frames, or fails the test
// after wait.
func readFrames(t *testing.T, r io.Reader, n int) []string {
	t.Helper()
	type result struct {
		frames []string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		d := kissproto.NewDecoder(4096)
		var got []string
		buf := make([]byte, 4096)
		for len(got) < n {
			m, err := r.Read(buf)
			d.Feed(buf[:m], func(port, cmd byte, data []byte) {
				got = append(got, fmt.Sprintf("%d/%d/%x", port, cmd, data))
			})
			if err != nil && len(got) < n {
				done <- result{got, err}
				return
			}
		}
		done <- result{got, nil}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatalf("fake TNC read after %d frames: %v", len(res.frames), res.err)
		}
		return res.frames
	case <-time.After(wait):
		t.Fatalf("fake TNC: fewer than %d frames after %v", n, wait)
		return nil
	}
}

func testNS(t *testing.T, suffix string) string {
	return direwolftest.NewNS(t, fmt.Sprintf("slided-kiss-%d-%s", os.Getpid(), suffix))
}

func TestTNCAgainstFake(t *testing.T) {
	ns := testNS(t, "fake")
	srv := listenFake(t, ns, "127.0.0.1:0")
	clk := newFakeClock()
	cfg := Defaults()
	cfg.Addr, cfg.Dial, cfg.Port, cfg.AirRate = srv.addr, direwolftest.DialIn(ns), 3, 9600
	cfg.TXDelay, cfg.Persistence, cfg.SlotTime, cfg.TXTail = 50*time.Millisecond, 127, 20*time.Millisecond, 10*time.Millisecond
	tnc, err := dial(context.Background(), cfg, testLog(t), clk)
	if err != nil {
		t.Fatal(err)
	}
	defer tnc.Close()
	conn := srv.accept(t)

	// Parameters first, on the configured port.
	wantParams := []string{"3/1/05", "3/2/7f", "3/3/02", "3/4/01", "3/5/00"}
	if got := readFrames(t, conn, 5); fmt.Sprint(got) != fmt.Sprint(wantParams) {
		t.Fatalf("parameters %v, want %v", got, wantParams)
	}
	wantEvent(t, tnc, phy.Up)
	if info := tnc.Info(); info.BitRate != 9600 || info.MaxFrame != 2045 || info.Turnaround != 50*time.Millisecond ||
		!info.OwnAccess || info.AccessWait != 40*time.Millisecond {
		t.Fatalf("info %+v", info)
	}

	// Garbage, a bad escape, another port and another command: only the good
	// frame comes up, intact.
	good := bytes.Repeat([]byte{0xC0, 0xDB, 'x'}, 10)
	var in []byte
	in = append(in, "line noise"...)
	in = append(in, kissproto.FEND, 0x30, 'a', kissproto.FESC, 'q', 'b', kissproto.FEND)
	in = kissproto.AppendFrame(in, 1, kissproto.CmdData, []byte("other port, not ours"))
	in = kissproto.AppendFrame(in, 3, kissproto.CmdSetHardware, []byte("hw"))
	in = kissproto.AppendFrame(in, 3, kissproto.CmdData, good)
	if _, err := conn.Write(in); err != nil {
		t.Fatal(err)
	}
	ev := wantEvent(t, tnc, phy.Received)
	if !bytes.Equal(ev.Data, good) {
		t.Fatalf("received % x, want % x", ev.Data, good)
	}
	st := tnc.Stats()
	if st.Decoder.Garbage == 0 || st.Decoder.BadEscape != 1 || st.Ignored != 2 || st.Received != 1 {
		t.Fatalf("stats %+v: want garbage counted, 1 bad escape, 2 ignored, 1 received", st)
	}

	// Transmit: one data frame on port 3; TxDone only when the estimate ends.
	burst := bytes.Repeat([]byte{0x11, kissproto.FEND}, 50)
	if err := tnc.Transmit(burst); err != nil {
		t.Fatal(err)
	}
	if got, want := readFrames(t, conn, 1), fmt.Sprintf("3/0/%x", burst); got[0] != want {
		t.Fatalf("TNC got %s, want %s", got[0], want)
	}
	if err := tnc.Transmit(burst); !errors.Is(err, phy.ErrBusy) {
		t.Fatalf("second Transmit before TxDone: %v, want ErrBusy", err)
	}
	tm := clk.nextTimer(t)
	if tm.d != cfg.TxTime(len(burst)) {
		t.Fatalf("TxDone timer %v, want %v", tm.d, cfg.TxTime(len(burst)))
	}
	clk.Advance(tm.d - time.Millisecond)
	select {
	case ev := <-tnc.Events():
		t.Fatalf("event %v before the airtime elapsed", ev.Kind)
	default:
	}
	clk.Advance(time.Millisecond)
	wantEvent(t, tnc, phy.TxDone)

	// A frame heard before the estimate ends means the TNC deferred to it:
	// the estimate starts again from its arrival, with the mean
	// p-persistent wait (P 127: two 20 ms slots).
	if err := tnc.Transmit(burst); err != nil {
		t.Fatal(err)
	}
	readFrames(t, conn, 1)
	tm = clk.nextTimer(t)
	clk.Advance(tm.d / 2)
	heard := []byte("the other station")
	if _, err := conn.Write(kissproto.AppendFrame(nil, 3, kissproto.CmdData, heard)); err != nil {
		t.Fatal(err)
	}
	again := clk.nextTimer(t)
	if want := cfg.TxTime(len(burst)) + 40*time.Millisecond; again.d != want {
		t.Fatalf("TxDone timer after a reception %v, want %v", again.d, want)
	}
	if ev := wantEvent(t, tnc, phy.Received); !bytes.Equal(ev.Data, heard) {
		t.Fatalf("received %q, want %q", ev.Data, heard)
	}
	clk.Advance(tm.d) // the first estimate's end: no TxDone yet
	select {
	case ev := <-tnc.Events():
		t.Fatalf("event %v before the deferred estimate ended", ev.Kind)
	default:
	}
	clk.Advance(again.d - tm.d)
	wantEvent(t, tnc, phy.TxDone)
	if st := tnc.Stats(); st.Deferred != 1 {
		t.Fatalf("deferred %d, want 1", st.Deferred)
	}

	for _, tc := range []struct {
		desc string
		b    []byte
		want error
	}{
		{"too long", make([]byte, 2046), phy.ErrTooLarge},
		{"too long once escaped", bytes.Repeat([]byte{kissproto.FEND}, 1023), phy.ErrTooLarge},
		{"one escape too many", append(bytes.Repeat([]byte{kissproto.FESC}, 6), make([]byte, 2034)...), phy.ErrTooLarge},
		{"empty", nil, phy.ErrEmpty},
	} {
		if err := tnc.Transmit(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: Transmit = %v, want %v", tc.desc, err, tc.want)
		}
	}

	// A burst whose frame, escapes included, is exactly the TNC's limit goes
	// out whole.
	fits := append(bytes.Repeat([]byte{kissproto.FESC}, 5), make([]byte, 2035)...)
	if n := cfg.FrameLen(fits); n != DefaultMaxFrame {
		t.Fatalf("test burst is a %d-byte frame, want %d", n, DefaultMaxFrame)
	}
	if err := tnc.Transmit(fits); err != nil {
		t.Fatalf("burst that fits once escaped: %v", err)
	}
	if got := readFrames(t, conn, 1); got[0] != fmt.Sprintf("3/0/%x", fits) {
		t.Fatalf("TNC got %.40s..., want the burst intact", got[0])
	}
	clk.Advance(clk.nextTimer(t).d)
	wantEvent(t, tnc, phy.TxDone)

	// A burst shorter than MinBurst is padded with delimiters, and its
	// airtime is the padded one.
	short := []byte{0, 1, 2, 3, 0}
	if err := tnc.Transmit(short); err != nil {
		t.Fatalf("short burst: %v", err)
	}
	padded := append(append([]byte(nil), short...), make([]byte, MinBurst-len(short))...)
	if got := readFrames(t, conn, 1); got[0] != fmt.Sprintf("3/0/%x", padded) {
		t.Fatalf("TNC got %s, want %x", got[0], padded)
	}
	if tm := clk.nextTimer(t); tm.d != cfg.TxTime(MinBurst) {
		t.Fatalf("TxDone after %v, want the padded burst's %v", tm.d, cfg.TxTime(MinBurst))
	} else {
		clk.Advance(tm.d)
	}
	wantEvent(t, tnc, phy.TxDone)

	// The TNC goes away: Down, retries on the backoff schedule, Up when it
	// is back, and the parameters again.
	srv.l.Close()
	conn.Close()
	wantEvent(t, tnc, phy.Down)
	if err := tnc.Transmit(burst); !errors.Is(err, phy.ErrDown) {
		t.Fatalf("Transmit while down: %v, want phy.ErrDown", err)
	}
	tm = clk.nextTimer(t)
	if tm.d < backoff(0) || tm.d > 2*backoff(0) {
		t.Fatalf("first retry after %v, want within [%v, %v]", tm.d, backoff(0), 2*backoff(0))
	}
	clk.Advance(tm.d) // this attempt fails: nobody listens
	tm = clk.nextTimer(t)
	if tm.d < backoff(1) || tm.d > 2*backoff(1) {
		t.Fatalf("second retry after %v, want within [%v, %v]", tm.d, backoff(1), 2*backoff(1))
	}
	srv = listenFake(t, ns, srv.addr)
	clk.Advance(tm.d)
	conn = srv.accept(t)
	if got := readFrames(t, conn, 5); fmt.Sprint(got) != fmt.Sprint(wantParams) {
		t.Fatalf("parameters after reconnect %v, want %v", got, wantParams)
	}
	wantEvent(t, tnc, phy.Up)
	if err := tnc.Transmit(burst); err != nil {
		t.Fatalf("Transmit after reconnect: %v", err)
	}
	readFrames(t, conn, 1)
	clk.nextTimer(t) // TxDone estimate: armed after the write was counted
	if st := tnc.Stats(); st.Connects != 2 || st.Drops != 1 || st.Sent != 5 {
		t.Fatalf("stats %+v: want 2 connects, 1 drop, 5 sent", st)
	}

	// Close: the events channel is closed, and Transmit says so.
	tnc.Close()
	for range tnc.Events() {
	}
	if err := tnc.Transmit(burst); err == nil {
		t.Fatal("Transmit after Close succeeded")
	}
}

// TestTNCDownDuringTransmit: a burst in flight when the connection drops is
// lost; Down follows instead of TxDone.
func TestTNCDownDuringTransmit(t *testing.T) {
	tnc, conn, clk, _ := upTNC(t, "drop", nil)
	if err := tnc.Transmit(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	readFrames(t, conn, 1)
	clk.nextTimer(t) // the TxDone estimate
	conn.Close()
	wantEvent(t, tnc, phy.Down)
	clk.nextTimer(t)       // the retry
	clk.Advance(time.Hour) // past the TxDone estimate and the retry
	// No TxDone: the next event is Up (the listener is still open).
	if ev := nextEvent(t, tnc); ev.Kind != phy.Up {
		t.Fatalf("event %v after Down, want up (and no tx-done)", ev.Kind)
	}
}

func TestDialFails(t *testing.T) {
	ns := testNS(t, "nodial")
	cfg := Defaults()
	cfg.Addr, cfg.Dial = "127.0.0.1:9", direwolftest.DialIn(ns)
	if _, err := Dial(context.Background(), cfg, zerolog.Nop()); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
	cfg.AirRate = 0
	if _, err := Dial(context.Background(), cfg, zerolog.Nop()); !errors.Is(err, ErrConfig) {
		t.Fatalf("Dial with no air rate: %v, want ErrConfig", err)
	}
}

// TestTNCSerial drives a TNC on a pseudo-terminal reached through a symlink,
// as a USB serial adapter appears under /dev/serial/by-id: parameters and
// frames cross, the device vanishes (Down), comes back under the same name
// (Up).
func TestTNCSerial(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "tnc")
	newPTY := func() (master, tty *os.File) {
		var err error
		master, tty, err = pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		// Keep our handle on the slave open: a pty master reads EIO while no
		// slave is open. The TNC opens the slave again by name.
		t.Cleanup(func() { master.Close(); tty.Close() })
		os.Remove(link)
		if err := os.Symlink(tty.Name(), link); err != nil {
			t.Fatal(err)
		}
		return master, tty
	}
	master, tty := newPTY()
	clk := newFakeClock()
	cfg, err := ParseSerial(link + "?baud=19200&air=1200&txdelay=200ms")
	if err != nil {
		t.Fatal(err)
	}
	tnc, err := dial(context.Background(), cfg, testLog(t), clk)
	if err != nil {
		t.Fatal(err)
	}
	defer tnc.Close()
	wantParams := []string{"0/1/14", "0/2/3f", "0/3/0a", "0/4/0a", "0/5/00"}
	if got := readFrames(t, master, 5); fmt.Sprint(got) != fmt.Sprint(wantParams) {
		t.Fatalf("parameters %v, want %v", got, wantParams)
	}
	wantEvent(t, tnc, phy.Up)

	burst := []byte("a burst longer than fifteen bytes, \xc0 and \xdb inside")
	if err := tnc.Transmit(burst); err != nil {
		t.Fatal(err)
	}
	if got := readFrames(t, master, 1); got[0] != fmt.Sprintf("0/0/%x", burst) {
		t.Fatalf("TNC got %s", got[0])
	}
	clk.Advance(clk.nextTimer(t).d)
	wantEvent(t, tnc, phy.TxDone)
	if _, err := master.Write(kissproto.AppendFrame([]byte("noise"), 0, kissproto.CmdData, burst)); err != nil {
		t.Fatal(err)
	}
	if ev := wantEvent(t, tnc, phy.Received); !bytes.Equal(ev.Data, burst) {
		t.Fatalf("received %q", ev.Data)
	}

	master.Close() // the adapter is unplugged
	tty.Close()
	wantEvent(t, tnc, phy.Down)
	master, _ = newPTY() // and plugged in again
	clk.Advance(clk.nextTimer(t).d)
	if got := readFrames(t, master, 5); fmt.Sprint(got) != fmt.Sprint(wantParams) {
		t.Fatalf("parameters after reconnect %v, want %v", got, wantParams)
	}
	wantEvent(t, tnc, phy.Up)
}
