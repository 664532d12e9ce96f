package sim

import (
	"context"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/phy"
)

// A process that does not run (SIGSTOP, a starved CPU, swap) is modelled in
// a synctest bubble by a stopClock: while it is stopped, a client goroutine
// that reads the time or its connection waits, as if its process were not
// scheduled, and the virtual time runs on; what the medium sends meanwhile
// waits in the "socket" (stoppedConn).

// stopClock is a client's clock that the test can stop and continue.
type stopClock struct {
	mu   sync.Mutex
	gate chan struct{} // closed while running
}

func newStopClock() *stopClock {
	g := make(chan struct{})
	close(g)
	return &stopClock{gate: g}
}

// now waits while the clock is stopped, then reads the time.
func (s *stopClock) now() time.Time {
	s.wait()
	return time.Now()
}

func (s *stopClock) wait() {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	<-g
}

func (s *stopClock) stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.gate:
		return false
	default:
		return true
	}
}

func (s *stopClock) stop() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *stopClock) cont() {
	s.mu.Lock()
	close(s.gate)
	s.mu.Unlock()
}

// stoppedConn is a client's connection whose reads stop with gate: what
// arrives while it is stopped is held, as a socket holds it, and read once
// it continues. A read deadline that passed meanwhile wins over the data
// held, as in the kernel (Go's poller reports the deadline without reading
// again); a Close drops what was held.
type stoppedConn struct {
	net.Conn
	gate *stopClock

	mu       sync.Mutex
	deadline time.Time
	held     []byte
	closed   atomic.Bool
}

func (s *stoppedConn) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	s.mu.Unlock()
	return s.Conn.SetReadDeadline(t)
}

func (s *stoppedConn) Close() error {
	s.closed.Store(true)
	return s.Conn.Close()
}

func (s *stoppedConn) takeHeld(p []byte) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.held) == 0 {
		return 0, false
	}
	n := copy(p, s.held)
	s.held = s.held[n:]
	return n, true
}

func (s *stoppedConn) Read(p []byte) (int, error) {
	if s.closed.Load() {
		return 0, net.ErrClosed
	}
	if n, ok := s.takeHeld(p); ok {
		return n, nil
	}
	n, err := s.Conn.Read(p)
	if !s.gate.stopped() {
		return n, err
	}
	s.mu.Lock()
	s.held = append(s.held, p[:n]...)
	s.mu.Unlock()
	s.gate.wait()
	s.mu.Lock()
	late := !s.deadline.IsZero() && !time.Now().Before(s.deadline)
	s.mu.Unlock()
	switch {
	case s.closed.Load():
		return 0, net.ErrClosed
	case err != nil:
		return 0, err
	case late:
		return 0, os.ErrDeadlineExceeded
	}
	n, _ = s.takeHeld(p)
	return n, nil
}

// stoppedStream dials a client to f whose clock and reads stop with clk and
// reads; it is up when it returns.
func stoppedStream(t *testing.T, f *fakeStream, clk, reads *stopClock) *Client {
	t.Helper()
	dial := func(ctx context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		go f.serve(b)
		return &stoppedConn{Conn: a, gate: reads}, nil
	}
	c, err := newClient("fake", dial, 3, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	c.now = clk.now
	if err := c.attach(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if ev := <-c.Events(); ev.Kind != phy.Up {
		t.Fatalf("event %v, want up", ev.Kind)
	}
	return c
}

// TestClientSelfStall: a transmission outstanding, the client's process
// stops for 50 s (more than kaBusyTimeout) while the medium's TxDone comes
// after a second and waits in the socket. On resumption the writer, whose
// keep-alive timer fired 47 s late, runs before the reader. The old client
// counted the stop as the medium's silence and reconnected (Down, the
// frame lost); the client now takes the stall for its own, reads the
// TxDone and stays up. A medium that really fell silent (it never answers
// the burst) is still found, one busy keep-alive timeout after the
// resumption.
func TestClientSelfStall(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		answer bool
		want   []phy.EventKind
	}{
		{"medium answered", true, []phy.EventKind{phy.TxDone}},
		{"medium silent", false, []phy.EventKind{phy.Down}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeStream{txDelay: time.Second}
				f.answer.Store(true)
				clk, reads := newStopClock(), newStopClock()
				c := stoppedStream(t, f, clk, reads)
				f.answer.Store(tc.answer)
				if err := c.Transmit([]byte("x")); err != nil {
					t.Fatal(err)
				}
				synctest.Wait() // the medium has the burst
				clk.stop()
				reads.stop()
				time.Sleep(50 * time.Second)
				clk.cont() // the writer first
				synctest.Wait()
				reads.cont()
				synctest.Wait()
				resumed := time.Now()
				var got []phy.EventKind
				if tc.answer {
					got = kindsOf(pending(c.Events()))
				} else {
					select {
					case ev := <-c.Events():
						got = append(got, ev.Kind)
					case <-time.After(time.Minute):
					}
					if d := time.Since(resumed); d < kaBusyTimeout-time.Second || d > kaBusyTimeout+kaBusyInterval {
						t.Errorf("down %v after the resumption, want about %v (a fresh grace)", d, kaBusyTimeout)
					}
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("events after the stop: %v, want %v", got, tc.want)
				}
				if n := c.SelfStalls(); n != 1 {
					t.Errorf("SelfStalls = %d, want 1", n)
				}
				if !tc.answer {
					return
				}
				if err := c.Transmit([]byte("y")); err != nil {
					t.Fatalf("Transmit after the stop: %v", err)
				}
				if ev := <-c.Events(); ev.Kind != phy.TxDone {
					t.Fatalf("event %v, want tx done on the same session", ev.Kind)
				}
			})
		})
	}
}

// udpFake plays a UDP medium on a pipe: it welcomes, answers a transmit
// with its tx done after txDelay, and a ping with the state; while answer
// is false it answers nothing.
type udpFake struct {
	answer  atomic.Bool
	txDelay time.Duration
	done    atomic.Uint32 // seq of the last transmit done
}

func (f *udpFake) serve(b net.Conn) {
	buf := make([]byte, maxDatagram)
	for {
		n, err := b.Read(buf)
		if err != nil {
			return
		}
		d, err := parseDatagram(buf[:n])
		if err != nil || !f.answer.Load() {
			continue
		}
		switch d.typ {
		case msgHello:
			go b.Write(appendDatagram(nil, &datagram{message: message{typ: msgWelcome, version: udpVersion, bitRate: 9600, maxFrame: MaxFrame}}))
		case msgPing:
			go b.Write(appendDatagram(nil, &datagram{message: message{typ: msgState}, seq: uint16(f.done.Load())}))
		case msgUTransmit:
			go func(seq uint16) {
				time.Sleep(f.txDelay)
				f.done.Store(uint32(seq))
				b.Write(appendDatagram(nil, &datagram{message: message{typ: msgUTxDone}, seq: seq}))
			}(d.seq)
		}
	}
}

// TestUDPClientSelfStall: the same over UDP. The client's read deadline
// passes while its process is stopped for 50 s, with the TxDone waiting in
// the socket; the old client took the medium for silent and reconnected.
// A medium that falls silent after its tx done is found one keep-alive
// timeout after the resumption. A medium that ended the session meanwhile
// (error 6 after the tx done, as a medium of before parked sessions did
// after 6 s) is greeted again at once, without Down; the old client
// reported Down and Up.
func TestUDPClientSelfStall(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		answer bool
		gone   bool
		want   []phy.EventKind
	}{
		{"medium answered", true, false, []phy.EventKind{phy.TxDone}},
		{"medium silent", false, false, []phy.EventKind{phy.TxDone, phy.Down}},
		{"medium ended the session", true, true, []phy.EventKind{phy.TxDone}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &udpFake{txDelay: 100 * time.Millisecond}
				f.answer.Store(true)
				a, b := net.Pipe()
				go f.serve(b)
				clk := newStopClock()
				c, err := newUDPClient(&stoppedConn{Conn: a, gate: clk}, "pipe", 4, nil, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
				c.now = clk.now
				if err := c.attach(t.Context()); err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if ev := <-c.Events(); ev.Kind != phy.Up {
					t.Fatalf("event %v, want up", ev.Kind)
				}
				if err := c.Transmit([]byte("x")); err != nil {
					t.Fatal(err)
				}
				synctest.Wait() // the medium has the burst; the client waits to read
				clk.stop()
				f.answer.Store(tc.answer)
				time.Sleep(7 * time.Second)
				if tc.gone {
					go b.Write(appendMessage(nil, errorMessage(codeGone, "silent for too long")))
				}
				time.Sleep(43 * time.Second)
				clk.cont()
				synctest.Wait()
				resumed := time.Now()
				var got []phy.EventKind
				if tc.answer {
					got = kindsOf(pending(c.Events()))
				} else {
					got = kindsOf(pending(c.Events())) // the tx done, waiting in the socket
					select {
					case ev := <-c.Events():
						got = append(got, ev.Kind)
					case <-time.After(time.Minute):
					}
					if d := time.Since(resumed); d < udpTimeout-time.Second || d > udpTimeout+udpPingInterval {
						t.Errorf("down %v after the resumption, want about %v (a fresh grace)", d, udpTimeout)
					}
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("events after the stop: %v, want %v", got, tc.want)
				}
				if st := c.Stats(); st.TxLost != 0 || st.SelfStalls != 1 || (tc.answer && st.Downs != 0) || (tc.gone != (st.Rejoins == 1)) {
					t.Errorf("stats %+v, want no tx lost, one self-stall, (medium answered) no down and (session ended) one rejoin", st)
				}
				if !tc.answer {
					return
				}
				if err := c.Transmit([]byte("y")); err != nil {
					t.Fatalf("Transmit after the stop: %v", err)
				}
				if ev := <-c.Events(); ev.Kind != phy.TxDone {
					t.Fatalf("event %v, want tx done on the same session", ev.Kind)
				}
			})
		})
	}
}
