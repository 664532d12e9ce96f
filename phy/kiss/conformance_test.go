package kiss

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/slided/slided/phy/kiss/kissproto"
	"github.com/slided/slided/phy/phytest"
)

// The conformance suite of package phy, for KISS over TCP and over a pty.

// fastConfig makes the suite quick: a fast air rate without delays (TxDone
// soon after the write), no CSMA of the TNC's own.
func fastConfig() Config {
	c := Defaults()
	c.AirRate = 1_000_000
	c.TXDelay, c.TXTail = 0, 0
	c.FullDuplex = true
	return c
}

// conformanceWrite is the write watchdog in the suite: short, so that the
// Wedge test is quick; a slow machine only makes it fire later.
const conformanceWrite = 500 * time.Millisecond

func withWriteTimeout(t *TNC) { t.wtime = conformanceWrite }

func kissEnd() *phytest.StreamEnd {
	return &phytest.StreamEnd{
		Encode: func(b []byte) []byte { return kissproto.AppendFrame(nil, 0, kissproto.CmdData, b) },
		NewDecoder: func() func([]byte, func([]byte)) {
			dec := kissproto.NewDecoder(DefaultMaxFrame)
			return func(in []byte, out func([]byte)) {
				dec.Feed(in, func(port, cmd byte, data []byte) {
					if cmd == kissproto.CmdData {
						out(data)
					}
				})
			}
		},
	}
}

type tcpHarness struct{}

func (tcpHarness) Caps() phytest.Caps {
	return phytest.Caps{FlowControlled: true, HangUp: true, Wedge: true, MaxBurst: 1000}
}

// Open listens on loopback and dials it. The TNC's socket and the far end's
// get small buffers, so that a stalled far end wedges a write soon.
func (tcpHarness) Open(t *testing.T) (phytest.Modem, phytest.FarEnd) {
	far := kissEnd()
	var (
		mu sync.Mutex
		ln net.Listener
	)
	listen := func(addr string) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		mu.Lock()
		ln = l
		mu.Unlock()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.(*net.TCPConn).SetReadBuffer(4096)
				far.Attach(c)
			}
		}()
	}
	listen("127.0.0.1:0")
	addr := ln.Addr().String()
	far.OnHangUp = func() {
		mu.Lock()
		ln.Close()
		mu.Unlock()
		far.Detach()
	}
	far.OnReturn = func() { listen(addr) }
	t.Cleanup(func() {
		mu.Lock()
		ln.Close()
		mu.Unlock()
		far.Close()
	})

	cfg := fastConfig()
	cfg.Addr = addr
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetWriteBuffer(4096)
		}
		return c, err
	}
	tnc, err := dial(context.Background(), cfg, testLog(t), realClock{}, withWriteTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tnc.Close() })
	return tnc, far
}

func TestConformanceTCP(t *testing.T) { phytest.Run(t, tcpHarness{}) }

type ptyHarness struct{}

func (ptyHarness) Caps() phytest.Caps {
	return phytest.Caps{FlowControlled: true, HangUp: true, Wedge: true, MaxBurst: 1000}
}

// Open makes a pty reached through a symlink, as a USB adapter under
// /dev/serial/by-id; hanging up closes the master and removes the link,
// returning makes a new pty behind the same name.
func (ptyHarness) Open(t *testing.T) (phytest.Modem, phytest.FarEnd) {
	far := kissEnd()
	link := phytest.PTYBehindLink(t, far, "tnc")

	cfg := fastConfig()
	cfg.Device = link
	tnc, err := dial(context.Background(), cfg, testLog(t), realClock{}, withWriteTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tnc.Close() })
	return tnc, far
}

func TestConformancePTY(t *testing.T) { phytest.Run(t, ptyHarness{}) }
