package serial

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/phytest"
)

// wait bounds how long a test waits for something a real goroutine does.
// It is a liveness guard, not a timing assertion.
const wait = 10 * time.Second

// fakeClock is a Clock that moves only when Advance is called. A timer due
// at or before the current time fires at once, inside AfterFunc/Reset.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	fired  int // timer calls so far
	resets int // Reset calls so far (AfterFunc's first included)
}

type fakeTimer struct {
	c      *fakeClock
	at     time.Time
	f      func()
	active bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	t := &fakeTimer{c: c, f: f}
	c.mu.Lock()
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	t.Reset(d)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	t.c.resets++
	was := t.active
	t.at, t.active = t.c.now.Add(d), d > 0
	if d <= 0 {
		t.c.fired++
	}
	t.c.mu.Unlock()
	if d <= 0 {
		t.f()
	}
	return was
}

// Advance moves the clock by d and fires the timers that came due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if t.active && !t.at.After(c.now) {
			t.active = false
			due = append(due, t.f)
			c.fired++
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// ptyPair makes a pseudo-terminal and returns its master and the path of
// its slave (the test's own slave descriptor is closed at once).
func ptyPair(t *testing.T) (*os.File, string) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatalf("pty: %v", err)
	}
	name := s.Name()
	s.Close()
	t.Cleanup(func() { m.Close() })
	return m, name
}

type harness struct {
	t      *testing.T
	p      *Port
	clk    *fakeClock
	master *os.File
	logs   *phytest.SyncBuffer
}

// newHarness opens a Port on a fresh pty (or on path, if set) with a fake
// clock and waits for Up.
func newHarness(t *testing.T, cfg Config, opt options) *harness {
	t.Helper()
	h := &harness{t: t, clk: newFakeClock(), logs: &phytest.SyncBuffer{}}
	if cfg.Path == "" {
		h.master, cfg.Path = ptyPair(t)
	}
	opt.clock = h.clk
	if opt.dcd == nil {
		opt.dcd = (*line).DCD
	}
	if opt.backoffMin == 0 {
		opt.backoffMin, opt.backoffMax = 250*time.Millisecond, time.Second
	}
	if opt.pathCheck == 0 {
		opt.pathCheck = time.Second
	}
	if opt.dcdPoll == 0 {
		opt.dcdPoll = 20 * time.Millisecond
	}
	log := zerolog.New(io.MultiWriter(h.logs, zerolog.NewTestWriter(t)))
	p, err := open(context.Background(), cfg, log, opt)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	h.p = p
	t.Cleanup(func() { p.Close() })
	h.expect(phy.Up)
	return h
}

// next returns the next event.
func (h *harness) next() phy.Event {
	h.t.Helper()
	select {
	case ev, ok := <-h.p.Events():
		if !ok {
			h.t.Fatal("events closed")
		}
		return ev
	case <-time.After(wait):
		h.t.Fatal("no event")
	}
	return phy.Event{}
}

func (h *harness) expect(kind phy.EventKind) phy.Event {
	h.t.Helper()
	ev := h.next()
	if ev.Kind != kind {
		h.t.Fatalf("event %v, want %v", ev.Kind, kind)
	}
	return ev
}

// none checks that no event is pending once the port has handled every
// tick the fake clock fired.
func (h *harness) none() {
	h.t.Helper()
	h.p.sync(func() {})
	select {
	case ev := <-h.p.Events():
		h.t.Fatalf("unexpected event %v", ev.Kind)
	default:
	}
}

// advance moves the fake clock and lets the port handle what came due.
func (h *harness) advance(d time.Duration) {
	h.clk.Advance(d)
	h.p.sync(func() {})
}

// received collects Received data until n bytes arrived.
func (h *harness) received(n int) []byte {
	h.t.Helper()
	var got []byte
	for len(got) < n {
		got = append(got, h.expect(phy.Received).Data...)
	}
	return got
}

// written waits until the port has seen the write of its burst finish.
func (h *harness) written() {
	h.t.Helper()
	until(h.t, "the write to finish", func() bool {
		var done bool
		h.p.sync(func() { done = h.p.st.txWritten })
		return done
	})
}

// finishTx waits for the write, then advances by the burst's airtime and
// expects its TxDone.
func (h *harness) finishTx(air time.Duration) {
	h.t.Helper()
	h.written()
	h.advance(air)
	h.expect(phy.TxDone)
}

// readMaster reads exactly n bytes from the pty master.
func readMaster(t *testing.T, m *os.File, n int) []byte {
	t.Helper()
	m.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, n)
	if _, err := io.ReadFull(m, buf); err != nil {
		t.Fatalf("reading the master: %v", err)
	}
	return buf
}

// until polls cond (state another goroutine changes) until it holds.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(wait); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestTransmitArrivesAndReceive(t *testing.T) {
	h := newHarness(t, Config{Baud: 19200, AirRate: 300, MaxFrame: 256}, options{})
	burst := pattern(256)
	if err := h.p.Transmit(burst); err != nil {
		t.Fatalf("Transmit: %v", err)
	}
	if got := readMaster(t, h.master, len(burst)); !bytes.Equal(got, burst) {
		t.Errorf("master read %x, want %x", got, burst)
	}
	in := []byte("hello from the far side \x00\xc0\xdb\xff")
	if _, err := h.master.Write(in); err != nil {
		t.Fatal(err)
	}
	// Bytes arriving during our own transmission raise no carrier.
	if got := h.received(len(in)); !bytes.Equal(got, in) {
		t.Errorf("Received %q, want %q", got, in)
	}
	if st := h.p.Stats(); st.BytesIn != uint64(len(in)) {
		t.Errorf("BytesIn %d, want %d", st.BytesIn, len(in))
	}
}

func TestTransmitRefused(t *testing.T) {
	h := newHarness(t, Config{AirRate: 300, MaxFrame: 20}, options{})
	if err := h.p.Transmit(make([]byte, 21)); !errors.Is(err, phy.ErrTooLarge) {
		t.Errorf("Transmit(21 bytes) = %v, want ErrTooLarge", err)
	}
	if err := h.p.Transmit(nil); !errors.Is(err, phy.ErrEmpty) {
		t.Errorf("Transmit(nil) = %v, want ErrEmpty", err)
	}
	if err := h.p.Transmit(make([]byte, 20)); err != nil {
		t.Fatalf("Transmit(20 bytes): %v", err)
	}
	if err := h.p.Transmit(make([]byte, 1)); !errors.Is(err, phy.ErrBusy) {
		t.Errorf("second Transmit = %v, want ErrBusy", err)
	}
	if got := h.p.Stats().Refused; got != 3 {
		t.Errorf("Refused = %d, want 3", got)
	}
	// Carrier from receive activity lags by the hang-over: 20 byte times.
	if got, want := h.p.Info(), (phy.Info{BitRate: 300, MaxFrame: 20, CarrierLag: phy.Airtime(20, 300)}); got != want {
		t.Errorf("Info = %+v, want %+v", got, want)
	}
}

func TestPacing(t *testing.T) {
	const txDelay = 500 * time.Millisecond
	h := newHarness(t, Config{Baud: 19200, AirRate: 300, TXDelay: txDelay}, options{})
	burst := pattern(30)
	total := txDelay + phy.Airtime(len(burst), 300) // 1.3 s
	for i := range 3 {
		if err := h.p.Transmit(burst); err != nil {
			t.Fatalf("burst %d: Transmit: %v", i, err)
		}
		readMaster(t, h.master, len(burst))
		h.written()
		h.advance(total - time.Nanosecond)
		h.none() // written long ago (in fake time), but still on air
		h.advance(time.Nanosecond)
		h.expect(phy.TxDone)
	}
	if st := h.p.Stats(); st.Bursts != 3 || st.BytesOut != 90 {
		t.Errorf("Stats = %+v, want 3 bursts, 90 bytes out", st)
	}
}

func TestCarrierFromReceiveActivity(t *testing.T) {
	const hang = 200 * time.Millisecond
	h := newHarness(t, Config{AirRate: 1200, Hangover: hang}, options{})
	h.master.Write([]byte("abc"))
	h.expect(phy.CarrierOn)
	h.received(3)
	h.advance(hang / 2)
	h.master.Write([]byte("de")) // restarts the hang-over
	h.received(2)
	h.advance(hang - time.Nanosecond)
	h.none()
	h.advance(time.Nanosecond)
	h.expect(phy.CarrierOff)

	// While transmitting, what arrives is not carrier.
	if err := h.p.Transmit([]byte("x")); err != nil {
		t.Fatal(err)
	}
	readMaster(t, h.master, 1)
	h.master.Write([]byte("echo"))
	h.received(4)
	h.none()
	h.advance(phy.Airtime(1, 1200))
	h.expect(phy.TxDone)
	h.advance(time.Hour)
	h.none()
}

func TestCarrierFromDCD(t *testing.T) {
	var dcd atomic.Bool
	fake := func(*line) (bool, error) { return dcd.Load(), nil }
	h := newHarness(t, Config{AirRate: 1200, Carrier: CarrierDCD}, options{dcd: fake, dcdPoll: 20 * time.Millisecond})
	h.advance(20 * time.Millisecond)
	h.none()
	dcd.Store(true)
	h.advance(19 * time.Millisecond)
	h.none()
	h.advance(time.Millisecond)
	h.expect(phy.CarrierOn)
	dcd.Store(false)
	h.advance(20 * time.Millisecond)
	h.expect(phy.CarrierOff)

	// Suppressed while transmitting, reported after TxDone.
	if err := h.p.Transmit(pattern(12)); err != nil {
		t.Fatal(err)
	}
	readMaster(t, h.master, 12)
	dcd.Store(true)
	h.written()
	h.advance(20 * time.Millisecond)
	h.none()
	h.advance(phy.Airtime(12, 1200))
	h.expect(phy.TxDone)
	h.expect(phy.CarrierOn)
}

func TestDCDOnPtyIsAnOpenError(t *testing.T) {
	_, path := ptyPair(t)
	_, err := Open(context.Background(), Config{Path: path, Carrier: CarrierDCD}, zerolog.Nop())
	if !errors.Is(err, unix.ENOTTY) || !strings.Contains(err.Error(), "dcd") {
		t.Fatalf("Open with carrier=dcd on a pty = %v, want an error about DCD", err)
	}
}

func TestOpenMissingPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nothing")
	_, err := Open(context.Background(), Config{Path: path}, zerolog.Nop())
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open(%s) = %v, want fs.ErrNotExist naming the path", path, err)
	}
}

func TestRTSCTSIsSet(t *testing.T) {
	for _, on := range []bool{true, false} {
		_, path := ptyPair(t)
		p, err := Open(context.Background(), Config{Path: path, RTSCTS: on, Baud: 31250}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		// Root may open a tty the library made exclusive.
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		tio, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
		unix.Close(fd)
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := tio.Cflag&unix.CRTSCTS != 0; got != on {
			t.Errorf("rtscts=%v: CRTSCTS is %v", on, got)
		}
		if tio.Lflag&unix.ICANON != 0 {
			t.Errorf("rtscts=%v: line not in raw mode", on)
		}
	}
}

// portGoroutines lists the stacks of goroutines running Port code.
func portGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "phy/serial.(*Port)") {
			out = append(out, g)
		}
	}
	return out
}

// noPortGoroutines waits for every goroutine running Port code to return.
// Close waits for them all, but the last lines of a goroutine (a deferred
// close(done)) may run just after Close returns: hence the wait, bounded.
func noPortGoroutines(t *testing.T) {
	t.Helper()
	var g []string
	for end := time.Now().Add(wait); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if g = portGoroutines(); len(g) == 0 {
			return
		}
	}
	t.Fatalf("port goroutines still running:\n%s", strings.Join(g, "\n\n"))
}

func TestWatchdog(t *testing.T) {
	noPortGoroutines(t) // those of earlier tests may still be returning
	const wt = 2 * time.Second
	h := newHarness(t, Config{Baud: 115200, AirRate: 1_000_000, WriteTimeout: wt}, options{})
	// The master never reads: the pty buffer fills and the write blocks.
	burst := pattern(256 << 10)
	if err := h.p.Transmit(burst); err != nil {
		t.Fatal(err)
	}
	until(t, "the write to block", func() bool {
		n, err := unix.IoctlGetInt(int(h.master.Fd()), ioctlInQ)
		return err == nil && n > 0
	})
	air := phy.Airtime(len(burst), 1_000_000)
	h.advance(air + wt - time.Nanosecond)
	h.none()
	h.advance(time.Nanosecond)
	h.expect(phy.Down)
	if err := h.p.Transmit([]byte("x")); !errors.Is(err, phy.ErrDown) {
		t.Errorf("Transmit while down = %v, want ErrDown", err)
	}
	if st := h.p.Stats(); st.WriteTimeouts != 1 {
		t.Errorf("WriteTimeouts = %d, want 1", st.WriteTimeouts)
	}
	// The pty is still there: the port comes back after the backoff (250
	// to 500 ms).
	h.advance(500 * time.Millisecond)
	h.expect(phy.Up)
	h.p.Close()
	for range h.p.Events() { // closed by Close
	}
	noPortGoroutines(t)
}

func TestReopenAfterHangup(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "modem")
	point := func(target string) {
		tmp := link + ".new"
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	}
	m1, path1 := ptyPair(t)
	point(path1)
	h := newHarness(t, Config{Path: link, AirRate: 1_000_000}, options{})
	m1.Write([]byte("one"))
	h.expect(phy.CarrierOn)
	h.received(3)

	m1.Close() // the slave now reads end of file: the modem hung up
	h.expect(phy.CarrierOff)
	h.expect(phy.Down)
	if !strings.Contains(h.logs.String(), ErrHangup.Error()) {
		t.Errorf("no log line with the cause %q:\n%s", ErrHangup, h.logs)
	}
	point(filepath.Join(dir, "unplugged")) // the device path is gone

	// Four failed tries, 250 to 500 ms, 500 ms to 1 s, 1 s and 1 s apart
	// (each advance lets one come): the first two step the backoff up (500
	// ms, then the 1 s cap) and are logged; the tries at the cap are not.
	for _, d := range []time.Duration{500, 1000, 1000, 1000} {
		h.advance(d * time.Millisecond)
		h.none()
	}
	if n := strings.Count(h.logs.String(), "cannot connect, retrying"); n != 2 {
		t.Errorf("%d reopen failures logged, want 2 (one per backoff step):\n%s", n, h.logs)
	}

	m2, path2 := ptyPair(t)
	point(path2)
	h.advance(time.Second)
	h.expect(phy.Up)
	if st := h.p.Stats(); st.Reopens != 1 {
		t.Errorf("Reopens = %d, want 1", st.Reopens)
	}
	if err := h.p.Transmit([]byte("two")); err != nil {
		t.Fatal(err)
	}
	if got := readMaster(t, m2, 3); string(got) != "two" {
		t.Errorf("new master read %q, want %q", got, "two")
	}
	h.finishTx(phy.Airtime(3, 1_000_000))
	m2.Write([]byte("three"))
	h.expect(phy.CarrierOn)
	if got := h.received(5); string(got) != "three" {
		t.Errorf("Received %q after reopen, want %q", got, "three")
	}
}

// TestReopenFlapping: a device that hangs up again right after it was
// reopened (a loose plug, a modem that resets) does not start the backoff
// again: the next reopen waits the next step (500 ms to 1 s), not the first
// (250 ms), which the old port waited after every loss.
func TestReopenFlapping(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "modem")
	point := func(target string) {
		tmp := link + ".new"
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	}
	m1, path1 := ptyPair(t)
	point(path1)
	h := newHarness(t, Config{Path: link, AirRate: 1_000_000}, options{})
	m2, path2 := ptyPair(t)
	point(path2)
	m1.Close() // the first loss: the first step, 250 to 500 ms
	h.expect(phy.Down)
	h.advance(500 * time.Millisecond)
	h.expect(phy.Up)

	m3, path3 := ptyPair(t)
	defer m3.Close()
	point(path3)
	m2.Close() // hang-up at once
	h.expect(phy.Down)
	h.advance(500*time.Millisecond - time.Nanosecond)
	h.none()
	h.advance(500 * time.Millisecond)
	h.expect(phy.Up)
	if st := h.p.Stats(); st.Reopens != 2 {
		t.Errorf("Reopens = %d, want 2", st.Reopens)
	}
}

func TestPathVanishes(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "modem")
	m, path := ptyPair(t)
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Config{Path: link}, options{pathCheck: time.Second})
	h.advance(time.Second)
	h.none()
	os.Remove(link) // the udev symlink goes; the device still answers
	h.advance(time.Second - time.Nanosecond)
	h.none()
	h.advance(time.Nanosecond)
	h.expect(phy.Down)
	if !strings.Contains(h.logs.String(), ErrVanished.Error()) {
		t.Errorf("no log line with the cause %q:\n%s", ErrVanished, h.logs)
	}
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	h.advance(500 * time.Millisecond) // the first backoff: 250 to 500 ms
	h.expect(phy.Up)
	m.Write([]byte("back"))
	h.expect(phy.CarrierOn)
	if got := h.received(4); string(got) != "back" {
		t.Errorf("Received %q, want %q", got, "back")
	}
}

// fires is the number of timer calls so far.
func (c *fakeClock) fires() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fired
}

// TestIdlePortSleeps: an idle port (carrier from received bytes, the
// default) wakes at most twice a minute, to check its device path; it
// checked every second before, and every wake costs an idle daemon a dozen
// context switches or more.
func TestIdlePortSleeps(t *testing.T) {
	h := newHarness(t, Config{}, options{pathCheck: defaultPathCheck})
	if h.p.cfg.Carrier != CarrierRx {
		t.Fatalf("carrier %q by default, want %q", h.p.cfg.Carrier, CarrierRx)
	}
	before := h.clk.fires()
	for range 600 {
		h.advance(time.Second)
	}
	if n := h.clk.fires() - before; n > 20 {
		t.Errorf("%d timer calls in 10 idle minutes, want at most 20", n)
	}
	h.none()
}

// TestPathVanishesBeforeBurst: with an idle check twice a minute, a burst
// checks the device path first (if the last check is a second old or more):
// a port in use still notices at once that it went.
func TestPathVanishesBeforeBurst(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "modem")
	_, path := ptyPair(t)
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Config{Path: link}, options{pathCheck: defaultPathCheck})
	os.Remove(link)
	h.advance(2 * time.Second)
	h.none() // idle: not checked yet
	if err := h.p.Transmit([]byte("x")); !errors.Is(err, phy.ErrDown) {
		t.Fatalf("Transmit on a vanished path = %v, want ErrDown", err)
	}
	h.expect(phy.Down)
	if !strings.Contains(h.logs.String(), ErrVanished.Error()) {
		t.Errorf("no log line with the cause %q:\n%s", ErrVanished, h.logs)
	}
}

func TestContextEndsPort(t *testing.T) {
	_, path := ptyPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Open(ctx, Config{Path: path}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	timeout := time.After(wait)
	for {
		select {
		case _, ok := <-p.Events():
			if !ok {
				if err := p.Transmit([]byte("x")); !errors.Is(err, phy.ErrClosed) {
					t.Errorf("Transmit after the context ended = %v, want ErrClosed", err)
				}
				p.Close()
				return
			}
		case <-timeout:
			t.Fatal("events not closed after the context ended")
		}
	}
}

// BenchmarkTransmitCycle is one Transmit through its TxDone on a pty with
// the real clock and a negligible airtime: the port's own overhead.
func BenchmarkTransmitCycle(b *testing.B) {
	m, s, err := pty.Open()
	if err != nil {
		b.Fatal(err)
	}
	path := s.Name()
	s.Close()
	defer m.Close()
	go io.Copy(io.Discard, m)
	p, err := Open(context.Background(), Config{Path: path, Baud: 115200, AirRate: 1 << 30, MaxFrame: 256}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if ev := <-p.Events(); ev.Kind != phy.Up {
		b.Fatalf("first event %v", ev.Kind)
	}
	burst := pattern(256)
	b.SetBytes(int64(len(burst)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Transmit(burst); err != nil {
			b.Fatal(err)
		}
		if ev := <-p.Events(); ev.Kind != phy.TxDone {
			b.Fatalf("event %v, want tx-done", ev.Kind)
		}
	}
}

// BenchmarkReceive is bytes written at the master arriving as Received.
func BenchmarkReceive(b *testing.B) {
	m, s, err := pty.Open()
	if err != nil {
		b.Fatal(err)
	}
	path := s.Name()
	s.Close()
	defer m.Close()
	p, err := Open(context.Background(), Config{Path: path, Baud: 115200, Hangover: time.Hour}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	<-p.Events()
	chunk := pattern(64)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Write(chunk); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < len(chunk); {
			if ev := <-p.Events(); ev.Kind == phy.Received {
				got += len(ev.Data)
			}
		}
	}
}
