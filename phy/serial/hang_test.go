package serial

import (
	"bytes"
	"testing"
	"time"

	"github.com/slided/slided/phy"
)

// TestTransmitDuringFullEventQueue is the hang of issue 1 over a pty: the
// modem receives more chunks than Events holds while nobody reads, then the
// consumer transmits before it reads again. Transmit must return without
// waiting for the consumer; then every byte and the TxDone arrive. Real
// descriptors run on real time, so the bound is a guard (wait), not a
// measurement. It failed on the old code (run blocked in emit, Transmit
// waiting on run).
func TestTransmitDuringFullEventQueue(t *testing.T) {
	h := newHarness(t, Config{Baud: 115200, AirRate: 1_000_000, MaxFrame: 256}, options{})
	const chunks = 1 << 14 // 256 KiB
	var want []byte
	go func() {
		// Enough for many chunks whatever size the reader's reads are.
		for i := range chunks {
			b := bytes.Repeat([]byte{byte(i)}, 16)
			if _, err := h.master.Write(b); err != nil {
				return
			}
		}
	}()
	for i := range chunks {
		want = append(want, bytes.Repeat([]byte{byte(i)}, 16)...)
	}
	ev := h.p.Events()
	until(t, "the event queue to fill", func() bool { return len(ev) == cap(ev) })

	errc := make(chan error, 1)
	go func() { errc <- h.p.Transmit(pattern(200)) }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Transmit while nobody reads Events: %v", err)
		}
	case <-time.After(wait):
		t.Fatalf("Transmit blocked %v while nobody read Events: the modem hangs (issue 1)", wait)
	}
	if got := readMaster(t, h.master, 200); !bytes.Equal(got, pattern(200)) {
		t.Fatalf("master read %x", got)
	}
	var got []byte
	for len(got) < len(want) {
		switch e := h.next(); e.Kind {
		case phy.Received:
			got = append(got, e.Data...)
		case phy.CarrierOn, phy.CarrierOff, phy.TxDone:
		default:
			t.Fatalf("event %v", e.Kind)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes, want %d (lost or reordered)", len(got), len(want))
	}
}
