package sim

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/internal/redial"
	"github.com/slided/slided/phy"
)

// These tests run the clients against fake media on net.Pipe inside a
// synctest bubble: timers run in virtual time, and a bound on how long
// something took is exact, not a race with the scheduler.

// fakeStream plays a medium server on one stream connection. While answer
// is false it reads everything and answers nothing (a medium that stopped);
// with stall set it stops reading after the welcome (its socket is full).
type fakeStream struct {
	answer    atomic.Bool
	stall     atomic.Bool
	flood     int           // received frames (with carrier on/off) sent after the welcome
	quit      chan struct{} // with stall: closed at the end of the test
	pings     atomic.Int32  // pings answered
	txDelay   time.Duration // how long a transmission takes before its TxDone
	pongDelay time.Duration // the round trip of a ping
}

func (f *fakeStream) serve(nc net.Conn) {
	defer nc.Close()
	mr := newMsgReader(nc)
	hello, err := mr.next()
	if err != nil || hello.typ != msgHello {
		return
	}
	if !f.answer.Load() {
		for {
			if _, err := mr.next(); err != nil {
				return
			}
		}
	}
	nc.Write(appendMessage(nil, &message{typ: msgWelcome, version: hello.version, bitRate: 9600, maxFrame: MaxFrame}))
	if f.stall.Load() {
		<-f.quit // never reads again
	}
	for range f.flood {
		var b []byte
		b = appendEmpty(b, msgCarrierOn)
		b = appendEmpty(b, msgCarrierOff)
		b = appendData(b, msgReceived, []byte("flood"))
		if _, err := nc.Write(b); err != nil {
			return
		}
	}
	for {
		msg, err := mr.next()
		if err != nil {
			return
		}
		if !f.answer.Load() {
			continue
		}
		switch msg.typ {
		case msgPing:
			f.pings.Add(1)
			time.Sleep(f.pongDelay)
			nc.Write(appendEmpty(nil, msgPong))
		case msgTransmit:
			time.Sleep(f.txDelay)
			nc.Write(appendEmpty(nil, msgTxDone))
		}
	}
}

func (f *fakeStream) dial(ctx context.Context) (net.Conn, error) {
	a, b := net.Pipe()
	go f.serve(b)
	return a, nil
}

// pending returns the events queued now, without waiting.
func pending(c <-chan phy.Event) []phy.Event {
	var evs []phy.Event
	for {
		select {
		case ev, ok := <-c:
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

// TestClientKeepalive: a medium that stops answering (SIGSTOP) makes the
// client report Down within kaTimeout + kaInterval, and Up once it answers
// again; while it answers, idle, the client stays up. The old client had
// no keep-alive and stayed up forever.
func TestClientKeepalive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := upFake(t)
		time.Sleep(10 * kaTimeout)
		synctest.Wait()
		if evs := pending(c.Events()); len(evs) != 0 {
			t.Fatalf("medium answering pings: events %v, want none", kindsOf(evs))
		}

		f.answer.Store(false)
		stopped := time.Now()
		if ev := <-c.Events(); ev.Kind != phy.Down {
			t.Fatalf("event %v, want down", ev.Kind)
		}
		if d := time.Since(stopped); d > kaTimeout+kaInterval {
			t.Errorf("down after %v, want within %v", d, kaTimeout+kaInterval)
		}
		if err := c.Transmit([]byte("x")); !errors.Is(err, phy.ErrDown) {
			t.Errorf("Transmit while down: %v, want phy.ErrDown", err)
		}
		time.Sleep(time.Minute)
		f.answer.Store(true)
		if ev := <-c.Events(); ev.Kind != phy.Up {
			t.Fatalf("event %v, want up", ev.Kind)
		}
		if err := c.Transmit([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if ev := <-c.Events(); ev.Kind != phy.TxDone {
			t.Fatalf("event %v, want tx done", ev.Kind)
		}
	})
}

// TestClientTransmitNeverWaits: a medium that stops reading right after the
// welcome (its socket full, or stopped). Transmit returns at once, without
// any time passing; the write watchdog then takes the connection down, and
// Close returns although nobody reads Events. The old Transmit wrote the
// socket itself and waited up to 2 s.
func TestClientTransmitNeverWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStream{quit: make(chan struct{})}
		defer close(f.quit)
		f.answer.Store(true)
		f.stall.Store(true)
		c, err := dialWith(t.Context(), "fake", f.dial, 3, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		<-c.Events() // up
		start := time.Now()
		if err := c.Transmit(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if err := c.Transmit([]byte("again")); !errors.Is(err, phy.ErrBusy) {
			t.Errorf("second Transmit: %v, want phy.ErrBusy", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Transmit took %v of virtual time, want 0", d)
		}
		if ev := <-c.Events(); ev.Kind != phy.Down {
			t.Fatalf("event %v, want down", ev.Kind)
		}
		if d := time.Since(start); d > writeTimeout {
			t.Errorf("down after %v, want within the write watchdog %v", d, writeTimeout)
		}
		c.Close()
		if err := c.Transmit([]byte("x")); !errors.Is(err, phy.ErrClosed) {
			t.Errorf("Transmit after Close: %v, want phy.ErrClosed", err)
		}
		c.Close() // twice is fine
	})
}

// TestClientSlowConsumer: a flood of received frames while nobody reads.
// Transmit still works, its TxDone is not lost, frames beyond the bound are
// dropped and counted, carrier events still alternate.
func TestClientSlowConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStream{flood: 1000}
		f.answer.Store(true)
		c, err := dialWith(t.Context(), "fake", f.dial, 3, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		synctest.Wait() // the flood is in
		if err := c.Transmit([]byte("mine")); err != nil {
			t.Fatal(err)
		}
		var evs []phy.Event
		for {
			synctest.Wait()
			more := pending(c.Events())
			if len(more) == 0 {
				break
			}
			evs = append(evs, more...)
		}
		frames, txDone := 0, 0
		carrier := false
		for i, ev := range evs {
			switch ev.Kind {
			case phy.Received:
				frames++
			case phy.TxDone:
				txDone++
			case phy.CarrierOn, phy.CarrierOff:
				if (ev.Kind == phy.CarrierOn) == carrier {
					t.Fatalf("event %d: %v repeats the carrier state", i, ev.Kind)
				}
				carrier = ev.Kind == phy.CarrierOn
			}
		}
		if evs[0].Kind != phy.Up || txDone != 1 {
			t.Errorf("first event %v, %d tx done; want up first and one tx done", evs[0].Kind, txDone)
		}
		if max := EventQueue + maxQueuedFrames; frames > max || uint64(frames)+c.Dropped() != 1000 {
			t.Errorf("%d frames delivered, %d dropped; want at most %d delivered, 1000 in all", frames, c.Dropped(), max)
		}
	})
}

// TestUDPClientKeepalive: the UDP client over a pipe; a medium that stops
// answering pings is reported Down within udpTimeout + udpPingInterval, and
// Up when it answers hellos again. Idle and answered, it stays up.
func TestUDPClientKeepalive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		var answer atomic.Bool
		answer.Store(true)
		var pings atomic.Int32
		go func() {
			buf := make([]byte, maxDatagram)
			for {
				n, err := b.Read(buf)
				if err != nil {
					return
				}
				d, err := parseDatagram(buf[:n])
				if err != nil || !answer.Load() {
					continue
				}
				var out []byte
				switch d.typ {
				case msgHello:
					out = appendDatagram(nil, &datagram{message: message{typ: msgWelcome, version: udpVersion, bitRate: 9600, maxFrame: MaxFrame}})
				case msgPing:
					pings.Add(1)
					out = appendDatagram(nil, &datagram{message: message{typ: msgState}})
				}
				if out != nil {
					go b.Write(out) // a pipe write waits for the reader
				}
			}
		}()
		c, err := dialUDPConn(t.Context(), a, "pipe", 4, nil, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		<-c.Events() // up
		time.Sleep(time.Minute)
		synctest.Wait()
		if evs := pending(c.Events()); len(evs) != 0 {
			t.Fatalf("medium answering: events %v, want none", kindsOf(evs))
		}
		if n := pings.Load(); n > 31 {
			t.Errorf("%d pings in a minute, want at most one per %v", n, udpPingInterval)
		}
		answer.Store(false)
		stopped := time.Now()
		if ev := <-c.Events(); ev.Kind != phy.Down {
			t.Fatalf("event %v, want down", ev.Kind)
		}
		if d := time.Since(stopped); d > udpTimeout+udpPingInterval {
			t.Errorf("down after %v, want within %v", d, udpTimeout+udpPingInterval)
		}
		answer.Store(true)
		if ev := <-c.Events(); ev.Kind != phy.Up {
			t.Fatalf("event %v, want up", ev.Kind)
		}
	})
}

func TestEventPump(t *testing.T) {
	on, off, rx, done := phy.Event{Kind: phy.CarrierOn}, phy.Event{Kind: phy.CarrierOff}, phy.Event{Kind: phy.Received}, phy.Event{Kind: phy.TxDone}
	tests := []struct {
		desc string
		in   []phy.Event
		want []phy.EventKind
	}{
		{"in order", []phy.Event{on, off, rx, done}, []phy.EventKind{phy.CarrierOn, phy.CarrierOff, phy.Received, phy.TxDone}},
		{"an unread pair cancels", []phy.Event{done, on, off, rx}, []phy.EventKind{phy.TxDone, phy.Received}},
		{"the head is never cancelled", []phy.Event{on, off}, []phy.EventKind{phy.CarrierOn, phy.CarrierOff}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p := &eventPump{events: make(chan phy.Event, 100), wake: make(chan struct{}, 1)}
			for _, ev := range tc.in {
				p.push(ev)
			}
			var got []phy.EventKind
			for _, ev := range p.q {
				got = append(got, ev.Kind)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("queued %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("queued %v, want %v", got, tc.want)
				}
			}
		})
	}
	p := newEventPump()
	for range maxQueuedFrames + 5 {
		p.push(rx)
	}
	p.push(done)
	if len(p.q) != maxQueuedFrames+1 || p.dropped.Load() != 5 || p.q[len(p.q)-1].Kind != phy.TxDone {
		t.Errorf("queue of %d, %d dropped; want %d with the tx done last, 5 dropped", len(p.q), p.dropped.Load(), maxQueuedFrames+1)
	}
}

// TestClientFlappingBacksOff: a medium server that welcomes the client and
// hangs up at once, again and again. The client waits a growing backoff
// between its attempts (the connection never stayed up long enough to
// start it again); the old client reconnected at once after each loss,
// as fast as the server let it. When the server is then gone, Close
// returns at once while the client waits out a backoff.
func TestClientFlappingBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bmin, bmax, flaps = 10 * time.Millisecond, time.Second, 8
		start := time.Now()
		var (
			mu sync.Mutex
			at []time.Duration // when each dial came, after start
		)
		dial := func(ctx context.Context) (net.Conn, error) {
			mu.Lock()
			defer mu.Unlock()
			at = append(at, time.Since(start))
			if len(at) > flaps {
				return nil, errors.New("connection refused")
			}
			a, b := net.Pipe()
			go func() {
				defer b.Close() // hang up right after the welcome
				hello, err := newMsgReader(b).next()
				if err != nil {
					return
				}
				b.Write(appendMessage(nil, &message{typ: msgWelcome, version: hello.version, bitRate: 9600, maxFrame: MaxFrame}))
			}()
			return a, nil
		}
		c, err := dialWith(t.Context(), "fake", dial, 3, zerolog.Nop(), bmin, bmax)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * bmax)
		synctest.Wait()
		mu.Lock()
		p := redial.Policy{Min: bmin, Max: bmax}
		for k := 1; k < len(at); k++ {
			if gap := at[k] - at[k-1]; gap < p.Step(k-1) || gap > min(2*p.Step(k-1), bmax) {
				t.Errorf("attempt %d came %v after the one before, want within [%v, %v] (attempts at %v)", k, gap, p.Step(k-1), min(2*p.Step(k-1), bmax), at)
			}
		}
		mu.Unlock()
		closing := time.Now()
		c.Close()
		if d := time.Since(closing); d != 0 {
			t.Errorf("Close took %v while the client waited out a backoff, want no time", d)
		}
		for range c.Events() { // closed by Close
		}
	})
}

// TestUDPClientFlappingBacksOff: the same over UDP: a medium that welcomes
// the client and ends the session at once, again and again. The client's
// hellos come a growing backoff apart; the old client said hello again at
// once after each end. After flaps sessions the medium keeps the session.
func TestUDPClientFlappingBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bmin, bmax, flaps = 10 * time.Millisecond, time.Second, 8
		start := time.Now()
		var (
			mu sync.Mutex
			at []time.Duration // when each hello came, after start
		)
		a, b := net.Pipe()
		go func() {
			buf := make([]byte, maxDatagram)
			for {
				n, err := b.Read(buf)
				if err != nil {
					return
				}
				d, err := parseDatagram(buf[:n])
				if err != nil || d.typ != msgHello {
					continue
				}
				mu.Lock()
				at = append(at, time.Since(start))
				flap := len(at) <= flaps
				mu.Unlock()
				welcome := appendDatagram(nil, &datagram{message: message{typ: msgWelcome, version: udpVersion, bitRate: 9600, maxFrame: MaxFrame}})
				gone := appendDatagram(nil, &datagram{message: *errorMessage(codeGone, "session ended by the medium server")})
				go func() { // a pipe write waits for the reader
					b.Write(welcome)
					if flap {
						b.Write(gone)
					}
				}()
			}
		}()
		c, err := dialUDPConn(t.Context(), a, "pipe", 4, nil, zerolog.Nop(), bmin, bmax)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * bmax)
		synctest.Wait()
		mu.Lock()
		p := redial.Policy{Min: bmin, Max: bmax}
		if len(at) <= flaps {
			t.Fatalf("%d hellos, want %d: %v", len(at), flaps+1, at)
		}
		for k := 1; k <= flaps; k++ {
			if gap := at[k] - at[k-1]; gap < p.Step(k-1) || gap > min(2*p.Step(k-1), bmax) {
				t.Errorf("hello %d came %v after the one before, want within [%v, %v] (hellos at %v)", k, gap, p.Step(k-1), min(2*p.Step(k-1), bmax), at)
			}
		}
		mu.Unlock()
		c.Close()
		for range c.Events() { // closed by Close
		}
	})
}
