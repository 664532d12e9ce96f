package serial

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

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
	link := phytest.PTYBehindLink(t, far, "modem")
	var carrier atomic.Bool
	far.OnCarrier = carrier.Store

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
