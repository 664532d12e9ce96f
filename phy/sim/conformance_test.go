package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/phy/phytest"
)

// The modem conformance suite (phy/phytest) for both clients. The far end
// is a fake medium server speaking the wire protocol, so that the suite can
// raise the carrier at will, stall and hang up.

// farQueue is what the modem wrote, for Expect.
type farQueue struct {
	mu   sync.Mutex
	got  [][]byte
	more chan struct{}
}

func newFarQueue() *farQueue { return &farQueue{more: make(chan struct{}, 1)} }

func (q *farQueue) put(b []byte) {
	q.mu.Lock()
	q.got = append(q.got, append([]byte(nil), b...))
	q.mu.Unlock()
	select {
	case q.more <- struct{}{}:
	default:
	}
}

// clear forgets what the modem wrote before a hang-up.
func (q *farQueue) clear() {
	q.mu.Lock()
	q.got = nil
	q.mu.Unlock()
}

func (q *farQueue) expect(want []byte, d time.Duration) error {
	deadline := time.After(d)
	for {
		q.mu.Lock()
		if len(q.got) > 0 {
			b := q.got[0]
			q.got = q.got[1:]
			q.mu.Unlock()
			if !bytes.Equal(b, want) {
				return fmt.Errorf("got a %d-byte burst, want %d bytes", len(b), len(want))
			}
			return nil
		}
		q.mu.Unlock()
		select {
		case <-q.more:
		case <-deadline:
			return fmt.Errorf("no burst in %v", d)
		}
	}
}

// streamFar is a fake medium server on a Unix socket with one client.
type streamFar struct {
	t    *testing.T
	path string
	q    *farQueue

	mu      sync.Mutex
	ln      net.Listener
	nc      net.Conn
	stalled bool
	resume  chan struct{}
	wmu     sync.Mutex // one writer at a time on nc
}

func (f *streamFar) listen() {
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.ln = ln
	f.mu.Unlock()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(nc)
		}
	}()
}

func (f *streamFar) serve(nc net.Conn) {
	defer nc.Close()
	mr := newMsgReader(nc)
	hello, err := mr.next()
	if err != nil || hello.typ != msgHello {
		return
	}
	f.mu.Lock()
	if f.nc != nil {
		f.nc.Close()
	}
	f.nc = nc
	f.mu.Unlock()
	f.write(appendMessage(nil, &message{typ: msgWelcome, version: hello.version, bitRate: 1e6, maxFrame: MaxFrame}))
	for {
		f.mu.Lock()
		resume := f.resume
		stalled := f.stalled
		f.mu.Unlock()
		if stalled {
			<-resume
			continue
		}
		msg, err := mr.next()
		if err != nil {
			return
		}
		switch msg.typ {
		case msgPing:
			f.write(appendEmpty(nil, msgPong))
		case msgTransmit:
			f.mu.Lock()
			if f.nc == nc { // not a leftover of a connection hung up
				f.q.put(msg.data)
			}
			f.mu.Unlock()
			f.write(appendEmpty(nil, msgTxDone))
		}
	}
}

func (f *streamFar) write(b []byte) error {
	f.mu.Lock()
	nc := f.nc
	f.mu.Unlock()
	if nc == nil {
		return errors.New("no client")
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	nc.SetWriteDeadline(time.Now().Add(phytest.Patience))
	_, err := nc.Write(b)
	return err
}

func (f *streamFar) Send(b []byte) error { return f.write(appendData(nil, msgReceived, b)) }
func (f *streamFar) Expect(b []byte, d time.Duration) error {
	return f.q.expect(b, d)
}
func (f *streamFar) Stall() {
	f.mu.Lock()
	f.stalled, f.resume = true, make(chan struct{})
	f.mu.Unlock()
}
func (f *streamFar) Resume() {
	f.mu.Lock()
	if f.stalled {
		f.stalled = false
		close(f.resume)
	}
	f.mu.Unlock()
}
func (f *streamFar) HangUp() {
	f.mu.Lock()
	f.ln.Close()
	if f.nc != nil {
		f.nc.Close()
		f.nc = nil
	}
	f.mu.Unlock()
	f.q.clear()
}
func (f *streamFar) Return() { f.listen() }
func (f *streamFar) Carrier(on bool) {
	t := msgCarrierOff
	if on {
		t = msgCarrierOn
	}
	f.write(appendEmpty(nil, t))
}

type streamHarness struct{}

func (streamHarness) Caps() phytest.Caps {
	return phytest.Caps{Carrier: true, HangUp: true, Wedge: true}
}

func (streamHarness) Open(t *testing.T) (phytest.Modem, phytest.FarEnd) {
	f := &streamFar{t: t, path: filepath.Join(t.TempDir(), "medium.sock"), q: newFarQueue()}
	f.listen()
	t.Cleanup(func() { f.Resume(); f.HangUp() })
	ctx, cancel := context.WithTimeout(context.Background(), phytest.Patience)
	defer cancel()
	c, err := dial(ctx, f.path, 5, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, f
}

func TestConformanceStream(t *testing.T) { phytest.Run(t, streamHarness{}) }

// udpFar is a fake medium server on a UDP socket in the test's namespace.
type udpFar struct {
	t    *testing.T
	ns   string
	addr string
	q    *farQueue

	mu      sync.Mutex
	pc      *net.UDPConn
	peer    net.Addr
	carrier bool
	done    uint16
}

func (f *udpFar) listen() {
	pc := udpListen(f.t, f.ns, f.addr)
	f.mu.Lock()
	f.pc = pc
	f.addr = pc.LocalAddr().String()
	f.mu.Unlock()
	go func() {
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			d, err := parseDatagram(buf[:n])
			if err != nil {
				continue
			}
			f.mu.Lock()
			f.peer = from
			carrier, done := f.carrier, f.done
			f.mu.Unlock()
			switch d.typ {
			case msgHello:
				f.send(appendDatagram(nil, &datagram{message: message{typ: msgWelcome, version: udpVersion, bitRate: 1e6, maxFrame: MaxFrame}}))
			case msgPing:
				f.send(appendDatagram(nil, &datagram{message: message{typ: msgState}, carrier: carrier, seq: done}))
			case msgUTransmit:
				f.mu.Lock()
				if f.pc == pc { // not a leftover of a socket hung up
					f.q.put(d.data)
				}
				f.done = d.seq
				f.mu.Unlock()
				f.send(appendDatagram(nil, &datagram{message: message{typ: msgUTxDone}, seq: d.seq}))
			}
		}
	}()
}

func (f *udpFar) send(b []byte) error {
	f.mu.Lock()
	pc, peer := f.pc, f.peer
	f.mu.Unlock()
	if pc == nil || peer == nil {
		return errors.New("no client")
	}
	_, err := pc.WriteTo(b, peer)
	return err
}

func (f *udpFar) Send(b []byte) error                    { return f.send(appendData(nil, msgReceived, b)) }
func (f *udpFar) Expect(b []byte, d time.Duration) error { return f.q.expect(b, d) }
func (f *udpFar) Stall()                                 {}
func (f *udpFar) Resume()                                {}
func (f *udpFar) HangUp() {
	f.mu.Lock()
	if f.pc != nil {
		f.pc.Close()
		f.pc = nil
	}
	f.mu.Unlock()
	f.q.clear()
}
func (f *udpFar) Return() { f.listen() }
func (f *udpFar) Carrier(on bool) {
	f.mu.Lock()
	f.carrier = on
	f.mu.Unlock()
	t := msgCarrierOff
	if on {
		t = msgCarrierOn
	}
	f.send(appendEmpty(nil, t))
}

type udpHarness struct{ ns string }

func (udpHarness) Caps() phytest.Caps { return phytest.Caps{Carrier: true, HangUp: true} }

func (h udpHarness) Open(t *testing.T) (phytest.Modem, phytest.FarEnd) {
	f := &udpFar{t: t, ns: h.ns, addr: "127.0.0.1:0", q: newFarQueue()}
	f.listen()
	t.Cleanup(f.HangUp)
	var c *UDPClient
	inNS(t, h.ns, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), phytest.Patience)
		defer cancel()
		c, err = dialUDP(ctx, f.addr, 5, nil, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c, f
}

func TestConformanceUDP(t *testing.T) { phytest.Run(t, udpHarness{ns: testNS(t)}) }
