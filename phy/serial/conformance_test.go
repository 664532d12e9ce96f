package serial

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/rs/zerolog"

	"github.com/slided/slided/phy/phytest"
)

// The conformance suite of package phy, for a raw serial modem on a pty.
// The pty has no DCD line; the far end drives a fake one (options.dcd),
// which the port polls as it would a real modem's.
type ptyHarness struct {
	mode string // Config.Mode: stream ("") or packet
}

func (ptyHarness) Caps() phytest.Caps {
	return phytest.Caps{FlowControlled: true, Stream: true, Carrier: true, HangUp: true, Wedge: true, MaxBurst: 1000}
}

// Open makes a pty reached through a symlink, as a USB adapter under
// /dev/serial/by-id; hanging up closes the master and removes the link,
// returning makes a new pty behind the same name. The port runs on real
// time, fast: 1 Mbit/s on air, a 500 ms write watchdog, short backoff.
func (ph ptyHarness) Open(t *testing.T) (phytest.Modem, phytest.FarEnd) {
	far := &phytest.StreamEnd{}
	link := filepath.Join(t.TempDir(), "modem")
	var (
		mu      sync.Mutex
		tty     *os.File
		carrier atomic.Bool
	)
	plug := func() {
		master, slave, err := pty.Open()
		if err != nil {
			t.Fatalf("pty: %v", err)
		}
		os.Remove(link)
		if err := os.Symlink(slave.Name(), link); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		tty = slave // kept open: a master reads EIO while no slave is open
		mu.Unlock()
		far.Attach(master)
	}
	unplug := func() {
		os.Remove(link)
		far.Detach() // closes the master: the port reads EIO or end of file
		mu.Lock()
		tty.Close()
		mu.Unlock()
	}
	plug()
	far.OnHangUp, far.OnReturn = unplug, plug
	far.OnCarrier = carrier.Store
	t.Cleanup(func() { unplug(); far.Close() })

	cfg := Config{Path: link, Baud: 115200, AirRate: 1_000_000, MaxFrame: 1000, Carrier: CarrierDCD,
		WriteTimeout: 500 * time.Millisecond, Mode: ph.mode}
	opt := defaultOptions()
	opt.backoffMin, opt.backoffMax = 10*time.Millisecond, 100*time.Millisecond
	opt.dcd = func(*line) (bool, error) { return carrier.Load(), nil }
	p, err := open(context.Background(), cfg, zerolog.New(zerolog.NewTestWriter(t)), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, far
}

func TestConformancePTY(t *testing.T) { phytest.Run(t, ptyHarness{}) }

// TestConformancePTYPacket: the same in packet mode (store and forward):
// TxDone after serial time, gap and airtime (87 ms for 1000 bytes at
// 115200 baud), carrier from the DCD line the far end drives.
func TestConformancePTYPacket(t *testing.T) { phytest.Run(t, ptyHarness{mode: ModePacket}) }
