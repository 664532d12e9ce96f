// Package phytest is the conformance suite of the modem contract written in
// package phy: every modem (phy/sim over a Unix socket and over UDP,
// phy/serial over a pty, phy/kiss over TCP and over a pty) runs the same
// sub-tests through a Harness its own test implements.
//
// The suite drives real descriptors (sockets, ptys), so it runs on real
// time: every wait is bounded by Patience and fails with a message saying
// what did not happen, and nothing asserts how fast anything is. A harness
// makes its modem fast (a high air rate, a short write watchdog, short
// backoff) so that the suite is quick, but a slow machine only makes it
// slower, never wrong.
//
// The sub-tests:
//
//   - Basic: Up first, a burst reaches the far end, one TxDone follows it,
//     a received frame arrives, and Transmit's refusals wrap the phy errors.
//   - Flood: the far end sends many frames while the consumer does not
//     read; Transmit then returns at once (the hang of issue 1), and once
//     the consumer reads, its TxDone arrives and (with FlowControlled)
//     every frame too, in order.
//   - CarrierDuringTransmit (Caps.Carrier): the carrier the far end raises
//     while a burst is outstanding is reported, and its end too.
//   - HangUpMidWrite (Caps.HangUp): the far end goes away while a burst is
//     being written: Down (no TxDone after it), ErrDown while down, Up once
//     the far end is back, and bursts go out again.
//   - Wedge (Caps.Wedge): the far end stops reading; the modem's write
//     watchdog makes it Down instead of blocking, and it comes back.
//   - CloseWhileBlocked: Close returns while the consumer does not read,
//     frames are queued and (with Caps.Wedge) a write is wedged; then
//     Events is closed and Transmit returns ErrClosed.
//
// Every sub-test checks the event stream against the contract as it reads
// it (Checker): Up first, Up and Down alternate, CarrierOn and CarrierOff
// alternate and reset on Down, no TxDone without an accepted Transmit.
package phytest

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slided/slided/phy"
)

// Patience bounds every wait of the suite. It is a guard against a hang,
// not a measurement: the suite fails only when something that must happen
// has not happened in this long.
var Patience = 30 * time.Second

// Modem is the modem under test: the methods of bridge.PHY the suite uses.
type Modem interface {
	Info() phy.Info
	Transmit(b []byte) error
	Events() <-chan phy.Event
	Close() error
}

// Caps says what a modem and its far end can do; the suite runs the
// sub-tests that apply and checks what the modem promises.
type Caps struct {
	// FlowControlled: when the consumer stops reading, the modem holds off
	// its source (TCP, a serial port's buffer) and loses no received
	// frame. False for a medium that drops and counts (phy/sim over UDP).
	FlowControlled bool
	// Stream: Received events carry a byte stream cut anywhere (phy/serial);
	// the suite compares the concatenation of their data. False: each
	// Received is one frame the far end sent.
	Stream bool
	// Carrier: the modem senses carrier and FarEnd.Carrier drives it.
	Carrier bool
	// HangUp: FarEnd.HangUp and FarEnd.Return work.
	HangUp bool
	// Wedge: FarEnd.Stall makes the modem's writes block (a byte stream
	// whose far end stops reading), so that the write watchdog must fire.
	Wedge bool
	// MaxBurst is the longest burst the suite sends (at most Info.MaxFrame);
	// 0 means 1000 bytes.
	MaxBurst int
}

// FarEnd is the other side of the modem's port or socket, driven by the
// suite. Its methods are called from the test goroutine, except Send,
// which the suite also calls from one goroutine of its own while the test
// goroutine does other things. The harness releases everything in
// t.Cleanup; a Send blocked by flow control must return (with an error)
// then.
type FarEnd interface {
	// Send makes the modem receive b as one frame (KISS: one data frame;
	// serial: the bytes; sim: another node's burst). It may block while
	// the modem holds off the source.
	Send(b []byte) error
	// Expect waits up to d for the next burst the modem wrote to be b, and
	// says how it was not. The far end reads what the modem writes all the
	// time, unless stalled, and queues it for Expect.
	Expect(b []byte, d time.Duration) error
	// Stall stops reading what the modem writes; Resume reads again (and
	// discards what arrived meanwhile). Used only with Caps.Wedge.
	Stall()
	Resume()
	// HangUp makes the far end go away (close the connection and refuse
	// new ones; unplug the device) until Return. Used only with Caps.HangUp.
	HangUp()
	Return()
	// Carrier raises or drops the carrier the modem senses. Used only with
	// Caps.Carrier.
	Carrier(on bool)
}

// Harness opens a modem under test and its far end.
type Harness interface {
	Caps() Caps
	// Open starts a new far end and the modem connected to it, and
	// registers their release with t.Cleanup (closing a modem twice is
	// allowed). The modem has not been read from: its Up is the first
	// event waiting.
	Open(t *testing.T) (Modem, FarEnd)
}

// Run runs every sub-test that applies to h.
func Run(t *testing.T, h Harness) {
	caps := h.Caps()
	if caps.MaxBurst == 0 {
		caps.MaxBurst = 1000
	}
	s := suite{h: h, caps: caps}
	t.Run("Basic", s.basic)
	t.Run("Flood", s.flood)
	if caps.Carrier {
		t.Run("CarrierDuringTransmit", s.carrierDuringTransmit)
	}
	if caps.HangUp {
		t.Run("HangUpMidWrite", s.hangUpMidWrite)
	}
	if caps.Wedge {
		t.Run("Wedge", s.wedge)
	}
	t.Run("CloseWhileBlocked", s.closeWhileBlocked)
}

type suite struct {
	h    Harness
	caps Caps
}

// Checker reads a modem's events and checks them against the contract.
type Checker struct {
	t       testing.TB
	m       Modem
	started bool
	up      bool
	carrier bool
	pending int // accepted Transmits without TxDone or Down
	// Received holds the data of every Received event read so far.
	Received [][]byte
	// Count is the number of events of each kind read so far.
	Count map[phy.EventKind]int
}

// NewChecker starts checking m's events.
func NewChecker(t testing.TB, m Modem) *Checker {
	return &Checker{t: t, m: m, Count: map[phy.EventKind]int{}}
}

// Transmit calls m.Transmit, checks that a refusal wraps a phy error, and
// counts an accepted burst.
func (c *Checker) Transmit(b []byte) error {
	c.t.Helper()
	err := c.m.Transmit(b)
	if err == nil {
		c.pending++
		return nil
	}
	checkErr(c.t, err)
	return err
}

func checkErr(t testing.TB, err error) {
	t.Helper()
	for _, s := range []error{phy.ErrBusy, phy.ErrDown, phy.ErrClosed, phy.ErrTooLarge, phy.ErrEmpty} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Errorf("Transmit error %q wraps none of phy.ErrBusy, ErrDown, ErrClosed, ErrTooLarge, ErrEmpty", err)
}

// Next returns the next event, waiting up to Patience; what is a failure
// says what the test waited for.
func (c *Checker) Next(what string) phy.Event {
	c.t.Helper()
	ev, ok := c.next(Patience)
	if !ok {
		c.t.Fatalf("waiting for %s: no event in %v (%s)", what, Patience, c)
	}
	return ev
}

func (c *Checker) next(d time.Duration) (phy.Event, bool) {
	c.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case ev, ok := <-c.m.Events():
		if !ok {
			c.t.Fatalf("Events closed before Close (%s)", c)
		}
		c.check(ev)
		return ev, true
	case <-timer.C:
		return phy.Event{}, false
	}
}

// Until reads events until one of kind arrives and returns it.
func (c *Checker) Until(kind phy.EventKind) phy.Event {
	c.t.Helper()
	deadline := time.Now().Add(Patience)
	for {
		ev, ok := c.next(time.Until(deadline))
		if !ok {
			c.t.Fatalf("no %v in %v (%s)", kind, Patience, c)
		}
		if ev.Kind == kind {
			return ev
		}
	}
}

// String summarises what was read, for failure messages.
func (c *Checker) String() string {
	return fmt.Sprintf("read so far: %d up, %d down, %d received, %d tx-done, %d carrier-on, %d carrier-off; %d bursts outstanding",
		c.Count[phy.Up], c.Count[phy.Down], c.Count[phy.Received], c.Count[phy.TxDone],
		c.Count[phy.CarrierOn], c.Count[phy.CarrierOff], c.pending)
}

func (c *Checker) check(ev phy.Event) {
	c.t.Helper()
	c.Count[ev.Kind]++
	if !c.started && ev.Kind != phy.Up {
		c.t.Errorf("first event %v, want up", ev.Kind)
	}
	c.started = true
	switch ev.Kind {
	case phy.Up:
		if c.up {
			c.t.Errorf("up twice without down")
		}
		c.up = true
	case phy.Down:
		if !c.up {
			c.t.Errorf("down while down")
		}
		c.up, c.carrier, c.pending = false, false, 0
	case phy.Received:
		if len(ev.Data) == 0 {
			c.t.Errorf("received event without data")
		}
		c.Received = append(c.Received, ev.Data)
	case phy.TxDone:
		if c.pending == 0 {
			c.t.Errorf("tx-done without an accepted Transmit")
		} else {
			c.pending--
		}
	case phy.CarrierOn, phy.CarrierOff:
		on := ev.Kind == phy.CarrierOn
		if on == c.carrier {
			c.t.Errorf("%v repeats the carrier state", ev.Kind)
		}
		c.carrier = on
	default:
		c.t.Errorf("unknown event kind %d", ev.Kind)
	}
	if ev.Kind != phy.Up && ev.Kind != phy.Down && !c.up && c.started {
		c.t.Errorf("%v while down", ev.Kind)
	}
}

// burst is n bytes of a pattern that differs per seed.
func burst(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// within runs f and fails the test if it has not returned in Patience,
// naming what hung.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(Patience):
		t.Fatalf("%s did not return in %v: the modem hangs", what, Patience)
	}
}

func (s suite) basic(t *testing.T) {
	m, far := s.h.Open(t)
	c := NewChecker(t, m)
	if ev := c.Next("up"); ev.Kind != phy.Up {
		t.Fatalf("first event %v, want up", ev.Kind)
	}

	if err := m.Transmit(nil); !errors.Is(err, phy.ErrEmpty) {
		t.Errorf("Transmit(empty) = %v, want phy.ErrEmpty", err)
	}
	if max := m.Info().MaxFrame; max > 0 {
		if err := m.Transmit(make([]byte, max+1)); !errors.Is(err, phy.ErrTooLarge) {
			t.Errorf("Transmit(%d bytes) = %v, want phy.ErrTooLarge", max+1, err)
		}
	}

	b := burst(s.caps.MaxBurst, 1)
	if err := c.Transmit(b); err != nil {
		t.Fatalf("Transmit: %v", err)
	}
	if err := m.Transmit(b); err != nil && !errors.Is(err, phy.ErrBusy) {
		t.Errorf("second Transmit = %v, want phy.ErrBusy or nil (if the first one's TxDone was out)", err)
	} else if err == nil {
		c.pending++
	}
	if err := far.Expect(b, Patience); err != nil {
		t.Fatalf("far end: %v", err)
	}
	for c.pending > 0 {
		c.Until(phy.TxDone)
	}

	in := burst(100, 2)
	if err := far.Send(in); err != nil {
		t.Fatalf("far end send: %v", err)
	}
	var got []byte
	for len(got) < len(in) {
		got = append(got, c.Until(phy.Received).Data...)
		if !s.caps.Stream {
			break
		}
	}
	if !bytes.Equal(got, in) {
		t.Errorf("received %d bytes %x, want %d bytes %x", len(got), got, len(in), in)
	}

	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	drainClosed(t, m)
	if err := m.Transmit(b); !errors.Is(err, phy.ErrClosed) {
		t.Errorf("Transmit after Close = %v, want phy.ErrClosed", err)
	}
}

// drainClosed reads Events until it is closed (bounded).
func drainClosed(t *testing.T, m Modem) {
	t.Helper()
	deadline := time.After(Patience)
	for {
		select {
		case _, ok := <-m.Events():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("Events not closed %v after Close", Patience)
		}
	}
}

// maxFlood bounds the frames a flood sends.
const maxFlood = 1 << 16

// floodFrame is the flood's frame number i.
func floodFrame(i int) []byte { return burst(60+i%40, byte(i)) }

// flooder sends flood frames from a goroutine of its own (Send blocks
// while the modem holds the source off) until its limit.
type flooder struct {
	done  chan struct{}
	limit atomic.Int64
	sent  atomic.Int64
	n     int   // frames sent; read after done
	err   error // read after done
}

func flood(far FarEnd, limit int) *flooder {
	f := &flooder{done: make(chan struct{})}
	f.limit.Store(int64(limit))
	go func() {
		defer close(f.done)
		for int64(f.n) < f.limit.Load() {
			if f.err = far.Send(floodFrame(f.n)); f.err != nil {
				return
			}
			f.n++
			f.sent.Store(int64(f.n))
		}
	}()
	return f
}

// fill floods the modem until its Events channel is full, then sends
// floodExtra frames more (or until flow control holds the far end off):
// then a modem with the hang of issue 1 has its goroutine blocked
// delivering an event. A modem whose Events channel has no capacity gets
// 256 frames.
func fill(t *testing.T, m Modem, far FarEnd) *flooder {
	t.Helper()
	ev := m.Events()
	if cap(ev) == 0 {
		f := flood(far, 256)
		select {
		case <-f.done:
		case <-time.After(Patience):
		}
		return f
	}
	f := flood(far, maxFlood)
	deadline := time.Now().Add(Patience)
	for len(ev) < cap(ev) {
		select {
		case <-f.done:
			t.Fatalf("flood: the far end stopped after %d frames (%v) with Events (capacity %d) not full", f.n, f.err, cap(ev))
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("flood: Events (capacity %d) not full after %v", cap(ev), Patience)
		}
	}
	f.limit.Store(f.sent.Load() + floodExtra)
	// Wait for the extra frames, or for the far end to be held off (no
	// progress for a while): a guess that only makes the test less
	// sensitive if wrong, never fail.
	for last := int64(-1); ; {
		select {
		case <-f.done:
			return f
		case <-time.After(50 * time.Millisecond):
		}
		n := f.sent.Load()
		if n == last {
			return f
		}
		last = n
	}
}

// floodExtra is how many frames fill sends after Events is full.
const floodExtra = 64

func (s suite) flood(t *testing.T) {
	m, far := s.h.Open(t)
	c := NewChecker(t, m)
	f := fill(t, m, far)

	// Nobody reads Events now. Transmit must not wait for that.
	b := burst(s.caps.MaxBurst, 3)
	var txErr error
	within(t, "Transmit while the consumer does not read Events", func() { txErr = m.Transmit(b) })
	if txErr != nil {
		t.Fatalf("Transmit while the consumer does not read: %v", txErr)
	}
	c.pending++
	if err := far.Expect(b, Patience); err != nil {
		t.Fatalf("far end, burst sent during the flood: %v", err)
	}

	// The consumer reads again: every frame, the TxDone.
	var got []byte
	senderDone := false
	deadline := time.Now().Add(Patience)
	var want []byte
	for {
		if !senderDone {
			select {
			case <-f.done:
				senderDone = true
				if f.err != nil {
					t.Fatalf("far end send: %v", f.err)
				}
				for i := range f.n {
					want = append(want, floodFrame(i)...)
				}
			default:
			}
		}
		if senderDone && c.pending == 0 && (!s.caps.FlowControlled || len(got) >= len(want)) {
			break
		}
		ev, ok := c.next(time.Until(deadline))
		if !ok {
			t.Fatalf("flood: after %v, %d bytes received, sender done %v (%d frames, %d bytes) (%s)",
				Patience, len(got), senderDone, f.n, len(want), c)
		}
		if ev.Kind == phy.Received {
			got = append(got, ev.Data...)
		}
	}
	if c.Count[phy.TxDone] != 1 {
		t.Errorf("%d tx-done for one burst", c.Count[phy.TxDone])
	}
	if c.Count[phy.Down] != 0 {
		t.Errorf("went down during the flood")
	}
	switch {
	case s.caps.FlowControlled:
		if !bytes.Equal(got, want) {
			t.Errorf("flood: received %d bytes, want %d; the data differs (lost or reordered frames)", len(got), len(want))
		}
	case !s.caps.Stream:
		// Dropped frames are allowed; the ones delivered come in order.
		i := 0
		for _, r := range c.Received {
			for i < f.n && !bytes.Equal(floodFrame(i), r) {
				i++
			}
			if i == f.n {
				t.Fatalf("flood: a received frame (%d bytes) was not sent, or came out of order", len(r))
			}
			i++
		}
	}
	t.Logf("flood: %d frames sent, %d received events", f.n, c.Count[phy.Received])
}

func (s suite) carrierDuringTransmit(t *testing.T) {
	m, far := s.h.Open(t)
	c := NewChecker(t, m)
	c.Until(phy.Up)
	b := burst(s.caps.MaxBurst, 4)
	if err := c.Transmit(b); err != nil {
		t.Fatalf("Transmit: %v", err)
	}
	far.Carrier(true)
	deadline := time.Now().Add(Patience)
	for c.pending > 0 || !c.carrier {
		if _, ok := c.next(time.Until(deadline)); !ok {
			t.Fatalf("carrier raised during a burst: want its tx-done and carrier-on (%s)", c)
		}
	}
	if err := far.Expect(b, Patience); err != nil {
		t.Fatalf("far end: %v", err)
	}
	far.Carrier(false)
	c.Until(phy.CarrierOff)
	// And once more with the carrier up before the burst.
	far.Carrier(true)
	c.Until(phy.CarrierOn)
	if err := c.Transmit(b); err != nil {
		t.Fatalf("Transmit: %v", err)
	}
	far.Carrier(false)
	for c.pending > 0 || c.carrier {
		if _, ok := c.next(time.Until(deadline)); !ok {
			t.Fatalf("carrier dropped during a burst: want its tx-done and carrier-off (%s)", c)
		}
	}
	if err := far.Expect(b, Patience); err != nil {
		t.Fatalf("far end: %v", err)
	}
}

func (s suite) hangUpMidWrite(t *testing.T) {
	m, far := s.h.Open(t)
	c := NewChecker(t, m)
	c.Until(phy.Up)
	if s.caps.Wedge {
		far.Stall() // the write cannot finish: the hang-up comes mid-write
	}
	b := burst(s.caps.MaxBurst, 5)
	if err := c.Transmit(b); err != nil {
		t.Fatalf("Transmit: %v", err)
	}
	far.HangUp()
	c.Until(phy.Down) // a tx-done before it is allowed, none after it (Checker)
	if err := c.Transmit(b); !errors.Is(err, phy.ErrDown) {
		t.Errorf("Transmit after Down, far end still away = %v, want phy.ErrDown", err)
	}
	if s.caps.Wedge {
		far.Resume()
	}
	far.Return()
	c.Until(phy.Up)
	b2 := burst(s.caps.MaxBurst, 6)
	if err := c.Transmit(b2); err != nil {
		t.Fatalf("Transmit after Up: %v", err)
	}
	if err := far.Expect(b2, Patience); err != nil {
		t.Fatalf("far end after return: %v", err)
	}
	c.Until(phy.TxDone)
}

// wedgeBursts bounds the bursts the Wedge test sends into a stalled far end
// before it gives up waiting for the write watchdog.
const wedgeBursts = 10000

func (s suite) wedge(t *testing.T) {
	m, far := s.h.Open(t)
	c := NewChecker(t, m)
	c.Until(phy.Up)
	far.Stall()
	b := burst(s.caps.MaxBurst, 7)
	down := false
	for i := 0; i < wedgeBursts && !down; i++ {
		var err error
		within(t, "Transmit into a stalled far end", func() { err = c.Transmit(b) })
		if errors.Is(err, phy.ErrDown) {
			c.Until(phy.Down)
			break
		}
		if err != nil {
			t.Fatalf("Transmit into a stalled far end: %v", err)
		}
		for c.pending > 0 && c.up {
			c.Next("tx-done or down (the write watchdog) with the far end stalled")
		}
		down = !c.up
	}
	if !down {
		t.Fatalf("%d bursts into a stalled far end without Down: writes never wedge, or the watchdog never fires", wedgeBursts)
	}
	far.Resume()
	c.Until(phy.Up)
	b2 := burst(s.caps.MaxBurst, 8)
	if err := c.Transmit(b2); err != nil {
		t.Fatalf("Transmit after the watchdog's Down and Up: %v", err)
	}
	c.Until(phy.TxDone)
}

func (s suite) closeWhileBlocked(t *testing.T) {
	m, far := s.h.Open(t)
	if s.caps.Wedge {
		far.Stall()
	}
	fill(t, m, far)
	// Keep a write outstanding (ErrBusy after the first is fine).
	b := burst(s.caps.MaxBurst, 9)
	for range 4 {
		var err error
		within(t, "Transmit while the consumer does not read", func() { err = m.Transmit(b) })
		if err != nil {
			checkErr(t, err)
		}
	}
	var closeErr error
	within(t, "Close with a full event queue and a write outstanding", func() { closeErr = m.Close() })
	if closeErr != nil {
		t.Errorf("Close: %v", closeErr)
	}
	drainClosed(t, m)
	if err := m.Transmit(b); !errors.Is(err, phy.ErrClosed) {
		t.Errorf("Transmit after Close = %v, want phy.ErrClosed", err)
	}
}
