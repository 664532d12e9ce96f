package serial

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slided/slided/phy"
)

// TestPacketModeTxDone: a store-and-forward modem keys up only after the
// last byte came over the serial line and its gap passed, so the burst is
// on air in full after serial time + gap + preamble + airtime, not after
// preamble + airtime as a streaming modem. The modem (profile
// acoustic-2400), a 110-byte burst: 57.3 ms + 10.4 ms + 250 ms + 366.7 ms.
// Before the modem model, TxDone came 67.7 ms early (at 616.7 ms).
func TestPacketModeTxDone(t *testing.T) {
	cfg, err := ParseURL("/unused?profile=acoustic-2400")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Path = ""
	h := newHarness(t, cfg, options{})
	burst := pattern(110)
	stream := 250*time.Millisecond + phy.Airtime(len(burst), 2400)
	total := phy.Airtime(len(burst), 19200*8/10) + 200*time.Second/19200 + stream
	for i := range 2 {
		if err := h.p.Transmit(burst); err != nil {
			t.Fatalf("burst %d: Transmit: %v", i, err)
		}
		if got := readMaster(t, h.master, len(burst)); !bytes.Equal(got, burst) {
			t.Fatalf("burst %d: the modem got %x", i, got)
		}
		h.written()
		h.advance(stream)
		h.none() // a streaming modem would be done; this one still sends
		h.advance(total - stream - time.Nanosecond)
		h.none()
		h.advance(time.Nanosecond)
		h.expect(phy.TxDone)
	}
	want := phy.Info{BitRate: 2400, MaxFrame: 256, Turnaround: 250*time.Millisecond + 200*time.Second/19200, NoCarrier: true}
	if got := h.p.Info(); got != want {
		t.Errorf("Info = %+v, want %+v (turnaround: preamble and gap; no carrier lag)", got, want)
	}
}

// TestCarrierNone: a transparent modem that reports nothing until it
// decoded a packet: received bytes are delivered, but no carrier events,
// before, during or after our own bursts.
func TestCarrierNone(t *testing.T) {
	h := newHarness(t, Config{AirRate: 1200, MaxFrame: 64, Carrier: CarrierNone}, options{})
	h.master.Write([]byte("abc"))
	if got := h.received(3); string(got) != "abc" {
		t.Fatalf("received %q", got)
	}
	h.advance(time.Hour)
	h.none()
	if err := h.p.Transmit([]byte("xyz")); err != nil {
		t.Fatal(err)
	}
	readMaster(t, h.master, 3)
	h.master.Write([]byte("during"))
	h.received(6)
	h.written()
	h.advance(phy.Airtime(3, 1200))
	h.expect(phy.TxDone)
	h.advance(time.Hour)
	h.none()
	if got := h.p.Info().CarrierLag; got != 0 {
		t.Errorf("CarrierLag = %v, want 0 without carrier sense", got)
	}
}

// TestWatchdogPacketMode: a modem that stalls mid-packet (stops reading its
// serial line) is caught by the write watchdog, counted from the burst's
// packet-mode end (serial time, gap, preamble, airtime), as in stream mode.
func TestWatchdogPacketMode(t *testing.T) {
	noPortGoroutines(t)
	const wt = 2 * time.Second
	cfg := Config{Baud: 115200, AirRate: 1_000_000, Mode: ModePacket, TXDelay: time.Second, WriteTimeout: wt}
	h := newHarness(t, cfg, options{})
	burst := pattern(256 << 10) // more than the pty holds: the write blocks
	if err := h.p.Transmit(burst); err != nil {
		t.Fatal(err)
	}
	until(t, "the write to block", func() bool {
		n, err := unix.IoctlGetInt(int(h.master.Fd()), ioctlInQ)
		return err == nil && n > 0
	})
	end := cfg.BurstTime(len(burst))
	h.advance(end + wt - time.Nanosecond)
	h.none()
	h.advance(time.Nanosecond)
	h.expect(phy.Down)
	if st := h.p.Stats(); st.WriteTimeouts != 1 {
		t.Errorf("WriteTimeouts = %d, want 1", st.WriteTimeouts)
	}
	if err := h.p.Transmit([]byte("x")); !errors.Is(err, phy.ErrDown) {
		t.Errorf("Transmit while down = %v, want ErrDown", err)
	}
	h.advance(500 * time.Millisecond) // the first backoff: 250 to 500 ms
	h.expect(phy.Up)
}

// TestWatchdogSelfStall: the port's own process does not run for 50 s (a
// SIGSTOP, a starved CPU, swap) while a burst is on air; the fake clock
// jumps 50 s at once, and the pacing timer fires 50 s late. The burst was
// written and went, so the port reports TxDone and stays up; the old port
// took the 50 s for the write watchdog's and dropped the burst (Down,
// WriteTimeouts 1). A write that really hangs is still caught, one
// watchdog period after the resumption.
func TestWatchdogSelfStall(t *testing.T) {
	const wt = 2 * time.Second
	t.Run("burst written", func(t *testing.T) {
		noPortGoroutines(t)
		cfg := Config{Baud: 115200, AirRate: 9600, WriteTimeout: wt}
		h := newHarness(t, cfg, options{pathCheck: time.Hour})
		if err := h.p.Transmit([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		h.written()
		h.advance(50 * time.Second)
		h.expect(phy.TxDone)
		if st := h.p.Stats(); st.WriteTimeouts != 0 || st.SelfStalls != 1 {
			t.Errorf("WriteTimeouts = %d, SelfStalls = %d; want 0, 1", st.WriteTimeouts, st.SelfStalls)
		}
		if err := h.p.Transmit([]byte("again")); err != nil {
			t.Errorf("Transmit after the stall: %v", err)
		}
	})
	t.Run("write hangs", func(t *testing.T) {
		noPortGoroutines(t)
		cfg := Config{Baud: 115200, AirRate: 1_000_000, Mode: ModePacket, WriteTimeout: wt}
		h := newHarness(t, cfg, options{pathCheck: time.Hour})
		if err := h.p.Transmit(pattern(256 << 10)); err != nil { // more than the pty holds
			t.Fatal(err)
		}
		until(t, "the write to block", func() bool {
			n, err := unix.IoctlGetInt(int(h.master.Fd()), ioctlInQ)
			return err == nil && n > 0
		})
		h.advance(50 * time.Second)
		h.none() // a grace period from the resumption
		h.advance(wt - time.Nanosecond)
		h.none()
		h.advance(time.Nanosecond)
		h.expect(phy.Down)
		if st := h.p.Stats(); st.WriteTimeouts != 1 {
			t.Errorf("WriteTimeouts = %d, want 1", st.WriteTimeouts)
		}
	})
}
