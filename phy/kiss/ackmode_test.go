package kiss

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/internal/direwolftest"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/kiss/kissproto"
)

// drainTimers forgets the timers armed so far, so that the next nextTimer
// is one armed after this point.
func (c *fakeClock) drainTimers() {
	for {
		select {
		case <-c.armed:
		default:
			return
		}
	}
}

// noEvent fails if an event is waiting now.
func noEvent(t *testing.T, tnc *TNC, when string) {
	t.Helper()
	select {
	case ev := <-tnc.Events():
		t.Fatalf("event %v %s", ev.Kind, when)
	default:
	}
}

// ackTNC is how a fake TNC answers an ACKMODE frame.
type ackTNC int

const (
	answers ackTNC = iota // the id back once "sent"
	ignores               // nothing (Dire Wolf 1.6 and most TNCs)
	garbage               // an error text, as a TNC in the wrong mode
)

func (a ackTNC) String() string { return [...]string{"answers", "ignores", "garbage"}[a] }

// startFake dials a TNC at a fake in a fresh namespace and reads the
// parameters.
func startFake(t *testing.T, suffix string, cfg Config) (*TNC, net.Conn, *fakeClock, *fakeTNC) {
	t.Helper()
	ns := testNS(t, suffix)
	srv := listenFake(t, ns, "127.0.0.1:0")
	clk := newFakeClock()
	cfg.Addr, cfg.Dial = srv.addr, direwolftest.DialIn(ns)
	tnc, err := dial(context.Background(), cfg, testLog(t), clk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tnc.Close() })
	conn := srv.accept(t)
	if len(cfg.Init) > 0 {
		got := make([]byte, len(cfg.Init))
		if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, cfg.Init) {
			t.Fatalf("init %q (%v), want %q", got, err, cfg.Init)
		}
	}
	readFrames(t, conn, 5)
	wantEvent(t, tnc, phy.Up)
	return tnc, conn, clk, srv
}

// TestAckMode: with ACKMODE, TxDone comes when the TNC answers, not when the
// estimate ends; auto mode finds out whether the TNC answers and remembers;
// a TNC that ignores ACKMODE or answers garbage costs one wait, counted and
// logged, never the connection.
func TestAckMode(t *testing.T) {
	burst := bytes.Repeat([]byte{0x5A, kissproto.FEND}, 40)
	for _, tc := range []struct {
		mode AckMode
		tnc  ackTNC
		// wantAck: the bursts after the first still go as ACKMODE.
		wantAck bool
	}{
		{AckOn, answers, true},
		{AckAuto, answers, true},
		{AckAuto, ignores, false},
		{AckAuto, garbage, false},
		{AckOn, ignores, true},
		{AckOff, answers, false},
	} {
		t.Run(fmt.Sprintf("%v-%v", tc.mode, tc.tnc), func(t *testing.T) {
			cfg := Defaults()
			cfg.AckMode = tc.mode
			tnc, conn, clk, _ := startFake(t, fmt.Sprintf("ack%d%d", tc.mode, tc.tnc), cfg)
			if want := DefaultMaxFrame - 3 - cfg.ackOverhead(); tnc.Info().MaxFrame != want {
				t.Fatalf("MaxFrame %d, want %d", tnc.Info().MaxFrame, want)
			}
			for i := 1; i <= 3; i++ {
				clk.drainTimers()
				if err := tnc.Transmit(burst); err != nil {
					t.Fatal(err)
				}
				got := readFrames(t, conn, 1)[0]
				acking := tc.mode == AckOn || (tc.mode == AckAuto && (i == 1 || tc.wantAck))
				id := fmt.Sprintf("%04x", i)
				if !acking {
					if want := fmt.Sprintf("0/0/%x", burst); got != want {
						t.Fatalf("burst %d: TNC got %.20s..., want a plain data frame", i, got)
					}
					tm := clk.nextTimer(t)
					if tm.d != cfg.TxTime(len(burst)) {
						t.Fatalf("burst %d: estimate %v, want %v", i, tm.d, cfg.TxTime(len(burst)))
					}
					clk.Advance(tm.d)
					wantEvent(t, tnc, phy.TxDone)
					continue
				}
				if want := fmt.Sprintf("0/12/%s%x", id, burst); got != want {
					t.Fatalf("burst %d: TNC got %.20s..., want ACKMODE id %s", i, got, id)
				}
				switch tc.tnc {
				case answers:
					// A stray id first: counted, no TxDone.
					conn.Write(kissproto.AppendFrame(nil, 0, kissAckMode, []byte{0xEE, 0xEE}))
					conn.Write(kissproto.AppendFrame(nil, 0, kissAckMode, []byte{0, byte(i)}))
					wantEvent(t, tnc, phy.TxDone) // the clock never moved
					if st := tnc.Stats(); st.Acked != uint64(i) || st.AckStray != uint64(i) {
						t.Fatalf("stats %+v: want %d acked, %d stray", st, i, i)
					}
					continue
				case garbage:
					conn.Write([]byte("?EH\r\ncmd:"))
					waitStats(t, tnc, func(st Stats) bool { return st.Decoder.Garbage > 0 })
				}
				tm := clk.nextTimer(t)
				if tm.d != cfg.ackWait(len(burst)) {
					t.Fatalf("burst %d: ACKMODE wait %v, want %v", i, tm.d, cfg.ackWait(len(burst)))
				}
				clk.Advance(cfg.TxTime(len(burst)))
				noEvent(t, tnc, "before the ACKMODE wait ended")
				clk.Advance(tm.d - cfg.TxTime(len(burst))) // on time: later would be a stall of slided's own (TestAckModeSelfStall)
				wantEvent(t, tnc, phy.TxDone)
			}
			st := tnc.Stats()
			switch {
			case tc.mode == AckAuto && tc.tnc != answers:
				if st.AckUnsupported != 1 || st.AckSent != 1 || st.AckTimeouts != 0 {
					t.Fatalf("stats %+v: want unsupported, one probe", st)
				}
			case tc.mode == AckOn && tc.tnc == ignores:
				if st.AckTimeouts != 3 || st.AckSent != 3 {
					t.Fatalf("stats %+v: want 3 watchdog timeouts", st)
				}
			case tc.mode == AckOff:
				if st.AckSent != 0 {
					t.Fatalf("stats %+v: want no ACKMODE", st)
				}
			}
			if tc.tnc == garbage && st.Decoder.Garbage == 0 {
				t.Fatalf("stats %+v: want the garbage counted", st)
			}
			if st.Drops != 0 {
				t.Fatalf("stats %+v: the connection dropped", st)
			}
		})
	}
}

// TestAckModeDeferred: a frame heard while an ACKMODE burst waits pushes
// the watchdog back; the answer ends the burst, once.
func TestAckModeDeferred(t *testing.T) {
	cfg := Defaults()
	cfg.AckMode = AckOn
	tnc, conn, clk, _ := startFake(t, "ackdefer", cfg)
	burst := make([]byte, 100)
	if err := tnc.Transmit(burst); err != nil {
		t.Fatal(err)
	}
	readFrames(t, conn, 1)
	tm := clk.nextTimer(t)
	// A frame heard while waiting pushes the watchdog back.
	conn.Write(kissproto.AppendFrame(nil, 0, kissproto.CmdData, []byte("another station's frame")))
	wantEvent(t, tnc, phy.Received)
	again := clk.nextTimer(t)
	if again.d != cfg.ackWait(len(burst))+cfg.AccessWait() {
		t.Fatalf("watchdog after a reception %v, want %v", again.d, cfg.ackWait(len(burst))+cfg.AccessWait())
	}
	clk.Advance(tm.d)
	noEvent(t, tnc, "at the first watchdog's end")
	conn.Write(kissproto.AppendFrame(nil, 0, kissAckMode, []byte{0, 1}))
	wantEvent(t, tnc, phy.TxDone)
	clk.Advance(time.Hour)
	noEvent(t, tnc, "after the answer (a second TxDone?)")
}

// TestInitExit: the init command goes before the parameters on every
// (re)connect; a TNC that answers it with text is logged and counted, not
// dropped; the exit command goes on Close.
func TestInitExit(t *testing.T) {
	cfg, err := ParseTCP("127.0.0.1:1?init=KISS%20ON\\rRESTART\\r&exit=\\xc0\\xff\\xc0")
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg.Init) != "KISS ON\rRESTART\r" || !bytes.Equal(cfg.Exit, []byte{0xC0, 0xFF, 0xC0}) {
		t.Fatalf("init %q exit %q", cfg.Init, cfg.Exit)
	}
	tnc, conn, clk, srv := startFake(t, "init", cfg)
	conn.Write([]byte("cmd:KISS ON\r\n?EH\r\n"))
	burst := []byte("a burst after the TNC's chatter")
	conn.Write(kissproto.AppendFrame(nil, 0, kissproto.CmdData, burst))
	if ev := wantEvent(t, tnc, phy.Received); !bytes.Equal(ev.Data, burst) {
		t.Fatalf("received %q", ev.Data)
	}
	if st := tnc.Stats(); st.Decoder.Garbage == 0 || st.Drops != 0 {
		t.Fatalf("stats %+v: want garbage counted, no drop", st)
	}
	// Reconnect: init again, then the parameters.
	conn.Close()
	wantEvent(t, tnc, phy.Down)
	clk.Advance(clk.nextTimer(t).d)
	conn = srv.accept(t)
	got := make([]byte, len(cfg.Init))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, cfg.Init) {
		t.Fatalf("init after reconnect %q (%v)", got, err)
	}
	readFrames(t, conn, 5)
	wantEvent(t, tnc, phy.Up)
	tnc.Close()
	rest, _ := io.ReadAll(conn)
	if !bytes.Equal(rest, cfg.Exit) {
		t.Fatalf("after Close the TNC got % x, want the exit command % x", rest, cfg.Exit)
	}
}

func TestParseAckInit(t *testing.T) {
	for _, tc := range []struct {
		q    string
		ok   bool
		mode AckMode
		init string
	}{
		{"ackmode=auto", true, AckAuto, ""},
		{"ackmode=on", true, AckOn, ""},
		{"ackmode=off", true, AckOff, ""},
		{"ackmode=maybe", false, 0, ""},
		{"init=%1B@K\\r", true, AckOff, "\x1b@K\r"},
		{"init=a\\\\b\\tc\\n", true, AckOff, "a\\b\tc\n"},
		{"init=bad\\q", false, 0, ""},
		{"init=trailing\\", false, 0, ""},
		{"init=\\xZZ", false, 0, ""},
		{"init=\\x4", false, 0, ""},
		{"initwait=500ms", true, AckOff, ""},
		{"initwait=1h", false, 0, ""},
	} {
		c, err := ParseTCP("127.0.0.1:8001?" + tc.q)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok %v", tc.q, err, tc.ok)
			continue
		}
		if err == nil && (c.AckMode != tc.mode || string(c.Init) != tc.init) {
			t.Errorf("%s: mode %v init %q, want %v %q", tc.q, c.AckMode, c.Init, tc.mode, tc.init)
		}
	}
}

// FuzzUnescapeCommand: any string either decodes to at most as many bytes
// as it has, or fails with an error; never a panic.
func FuzzUnescapeCommand(f *testing.F) {
	for _, s := range []string{"KISS ON\\rRESTART\\r", "\\xc0\\xff\\xc0", "\\", "\\x", "\\x4", "\\q", "a\\\\b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := UnescapeCommand(s)
		if err == nil && len(b) > len(s) {
			t.Fatalf("%q decoded to %d bytes", s, len(b))
		}
		if err == nil && !strings.Contains(s, "\\") && string(b) != s {
			t.Fatalf("%q without escapes decoded to %q", s, b)
		}
	})
}

// FuzzCallsign: ax25Addr accepts only what it can encode in 7 bytes; the
// ID frame of an accepted callsign holds it.
func FuzzCallsign(f *testing.F) {
	for _, s := range []string{"N0CALL", "n0call-7", "TOOLONG", "A-15", "A-16", "-", "AB-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ax25Addr(s, true)
		if err != nil {
			return
		}
		if len(b) != 7 || b[6]&1 != 1 {
			t.Fatalf("%q: address % x", s, b)
		}
		if id := IDFrame(s); !bytes.HasSuffix(id, []byte(strings.ToUpper(s))) {
			t.Fatalf("%q: ID frame % x", s, id)
		}
	})
}

// TestAckModeSelfStall: the first burst of an auto-mode TNC probes ACKMODE,
// and slided's own process does not run for 50 s while the TNC's answer
// comes (the fake clock jumps past the watchdog before the answer is read).
// The answer is taken: ACKMODE stays on, and nothing is counted as a
// timeout. The old TNC took the 50 s for the TNC's silence and concluded,
// for the connection's life, that it does not answer ACKMODE.
func TestAckModeSelfStall(t *testing.T) {
	cfg := Defaults()
	cfg.AckMode = AckAuto
	tnc, conn, clk, _ := startFake(t, "ackstall", cfg)
	clk.drainTimers()
	if err := tnc.Transmit(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	readFrames(t, conn, 1)
	tm := clk.nextTimer(t)
	clk.Stall(tm.d + 50*time.Second)
	select { // run has handled the watchdog's timer
	case <-clk.armed: // a grace period
	case ev := <-tnc.Events():
		t.Logf("event %v at the watchdog", ev.Kind)
	case <-time.After(wait):
		t.Fatal("the watchdog's timer not handled")
	}
	conn.Write(kissproto.AppendFrame(nil, 0, kissAckMode, []byte{0, 1}))
	for deadline := time.Now().Add(wait); ; time.Sleep(time.Millisecond) { // the answer handled
		if st := tnc.Stats(); st.Acked+st.AckStray > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the answer not handled")
		}
	}
	if st := tnc.Stats(); st.AckUnsupported != 0 || st.AckTimeouts != 0 || st.Acked != 1 || st.SelfStalls != 1 {
		t.Fatalf("stats %+v: want the answer taken (acked 1), no timeout, ACKMODE kept", st)
	}
	wantEvent(t, tnc, phy.TxDone)
}
