package kiss

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/slided/slided/phy"
)

func TestIDFrame(t *testing.T) {
	// "ID" and "N0CALL" shifted left, SSID bytes, UI control, no layer 3, text.
	want := "92884040404060" + "9c6086829898" + "6f" + "03f0" + hex.EncodeToString([]byte("N0CALL-7"))
	if got := hex.EncodeToString(IDFrame("n0call-7")); got != want {
		t.Fatalf("IDFrame = %s, want %s", got, want)
	}
	for _, bad := range []string{"", "TOOLONG", "N0 CAL", "N0CALL-16", "N0CALL-x", "-1"} {
		c := Defaults()
		c.Addr, c.StationID = "127.0.0.1:1", bad
		if bad == "" {
			continue
		}
		if err := c.check(); err == nil {
			t.Errorf("station id %q accepted", bad)
		}
	}
	c := Defaults()
	c.Addr, c.StationID, c.StationIDInterval = "127.0.0.1:1", "N0CALL", time.Second
	if err := c.check(); err == nil {
		t.Error("a 1 s identification interval accepted")
	}
	if c, err := ParseTCP("127.0.0.1:1?id=N0CALL&idinterval=5m"); err != nil || c.StationID != "N0CALL" || c.StationIDInterval != 5*time.Minute {
		t.Errorf("ParseTCP id: %+v %v", c, err)
	}
}

// TestStationID: the callsign goes out within the interval after slided
// transmits, again while it keeps transmitting, once after its last burst,
// and never while it is silent.
func TestStationID(t *testing.T) {
	cfg := Defaults()
	cfg.StationID, cfg.StationIDInterval = "N0CALL-7", 10*time.Minute
	tnc, conn, clk, _ := startFake(t, "stationid", cfg)
	id := fmt.Sprintf("0/0/%x", IDFrame("N0CALL-7"))
	burst := make([]byte, 100)
	plain := fmt.Sprintf("0/0/%x", burst)

	// Silent: no identification, however long.
	clk.Advance(time.Hour)
	send := func() {
		t.Helper()
		if err := tnc.Transmit(burst); err != nil {
			t.Fatal(err)
		}
		if got := readFrames(t, conn, 1)[0]; got != plain {
			t.Fatalf("TNC got %.30s..., want the burst (no identification before it)", got)
		}
		waitStats(t, tnc, func(st Stats) bool { return st.Sent > 0 })
	}
	// wantID advances the clock by d and expects the identification, its
	// airtime as carrier, and nothing else.
	wantID := func(d time.Duration) {
		t.Helper()
		clk.Advance(d)
		if got := readFrames(t, conn, 1)[0]; got != id {
			t.Fatalf("TNC got %.30s..., want the identification", got)
		}
		wantEvent(t, tnc, phy.CarrierOn)
		waitStats(t, tnc, func(st Stats) bool { return st.IDSent > 0 })
		clk.Advance(time.Minute)
		wantEvent(t, tnc, phy.CarrierOff)
	}
	send()
	waitStats(t, tnc, func(st Stats) bool { return st.Sent == 1 })
	clk.Advance(time.Minute)
	wantEvent(t, tnc, phy.TxDone)
	wantID(9 * time.Minute)
	// Still sending: a burst, and the next identification ten minutes on.
	send()
	waitStats(t, tnc, func(st Stats) bool { return st.Sent == 2 })
	clk.Advance(time.Minute)
	wantEvent(t, tnc, phy.TxDone)
	wantID(9 * time.Minute)
	if st := tnc.Stats(); st.IDSent != 2 {
		t.Fatalf("stats %+v: want 2 identifications", st)
	}
	// Silent again: no more; the next frame the TNC gets is a burst.
	clk.Advance(time.Hour)
	send()
	if st := tnc.Stats(); st.IDSent != 2 {
		t.Fatalf("stats %+v: an identification while silent", st)
	}
}

// TestUIFrame: an APRS client's frame, byte for byte (addresses shifted
// left one bit and space-padded, the SSID byte 0b0110_sss_e with e on the
// last address, control 03, PID F0), and calls it cannot encode refused.
func TestUIFrame(t *testing.T) {
	got, err := UIFrame("APZSLD", "n0apr-3", []byte("!x"))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{'A' << 1, 'P' << 1, 'Z' << 1, 'S' << 1, 'L' << 1, 'D' << 1, 0x60,
		'N' << 1, '0' << 1, 'A' << 1, 'P' << 1, 'R' << 1, ' ' << 1, 0x60 | 3<<1 | 1,
		0x03, 0xF0, '!', 'x'}
	if !bytes.Equal(got, want) {
		t.Errorf("UIFrame = % x, want % x", got, want)
	}
	for _, bad := range [][2]string{{"TOOLONGX", "N0APR"}, {"APZSLD", "N0APR-16"}, {"AP ZS", "N0APR"}, {"APZSLD", ""}} {
		if _, err := UIFrame(bad[0], bad[1], nil); err == nil {
			t.Errorf("UIFrame(%q, %q): no error", bad[0], bad[1])
		}
	}
}
