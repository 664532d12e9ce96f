package kiss

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/internal/direwolftest"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/kiss/kissproto"
)

// TestTNCBurst: a burst of several slided frames goes to the TNC as one
// KISS data frame each, back to back (an Ack padded to MinBurst), TxDone
// comes after the burst's estimate (one TXDELAY and TXTAIL for all), with
// ACKMODE only the last frame asks for the answer, and bursts over the
// limits are refused.
func TestTNCBurst(t *testing.T) {
	tnc, conn, clk, cfg := upTNC(t, "burst", func(cfg *Config) { cfg.AirRate, cfg.Burst, cfg.BurstAir = 9600, 3, 20*time.Second })
	if info := tnc.Info(); info.MaxBurstFrames != 3 || info.MaxFrame != 2045 || info.MaxBurstAir != 20*time.Second {
		t.Fatalf("info %+v: want 3 frames a burst of at most 2045 bytes each, 20s of airtime", info)
	}

	ack := framing.AppendFrame(nil, framing.Header{Kind: framing.KindAck, Dst: 2, Src: 1}, []byte{7, 1, 1})
	data := framing.AppendFrame(nil, framing.Header{Kind: framing.KindData, Dst: 2, Src: 1}, bytes.Repeat([]byte{0xC0, 0, 5}, 400))
	big := framing.AppendFrame(nil, framing.Header{Kind: framing.KindData, Dst: 3, Src: 1}, bytes.Repeat([]byte{9}, 1900))
	burst := append(append(append([]byte(nil), ack...), data...), big...)
	if len(burst) <= tnc.Info().MaxFrame {
		t.Fatalf("test burst of %d bytes should exceed one frame's limit", len(burst))
	}
	if err := tnc.Transmit(burst); err != nil {
		t.Fatal(err)
	}
	padded := append(append([]byte(nil), ack...), make([]byte, MinBurst-len(ack))...)
	want := []string{fmt.Sprintf("0/0/%x", padded), fmt.Sprintf("0/0/%x", data), fmt.Sprintf("0/0/%x", big)}
	if got := readFrames(t, conn, 3); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("TNC got %.200v\nwant %.200v", got, want)
	}
	tm := clk.nextTimer(t)
	est := cfg.BurstTime(burst)
	sum := cfg.TxTime(MinBurst) + cfg.TxTime(len(data)) + cfg.TxTime(len(big))
	if tm.d != est || est != sum-2*(cfg.TXDelay+cfg.TXTail) {
		t.Fatalf("TxDone after %v, estimate %v; want one key-up for the three frames (%v)", tm.d, est, sum-2*(cfg.TXDelay+cfg.TXTail))
	}
	clk.Advance(tm.d - time.Millisecond)
	select {
	case ev := <-tnc.Events():
		t.Fatalf("event %v before the burst's estimate ended", ev.Kind)
	default:
	}
	clk.Advance(time.Millisecond)
	wantEvent(t, tnc, phy.TxDone)
	if st := tnc.Stats(); st.Sent != 3 || st.Bursts != 1 {
		t.Fatalf("sent %d, bursts %d; want 3, 1", st.Sent, st.Bursts)
	}

	// Limits: more frames than Burst, and a frame that is too long once
	// escaped, are refused whole.
	four := append(append([]byte(nil), burst...), ack...)
	long := framing.AppendFrame(nil, framing.Header{Kind: framing.KindData, Dst: 2, Src: 1}, bytes.Repeat([]byte{0xC0}, 1100))
	for _, tc := range []struct {
		desc string
		b    []byte
	}{
		{"four frames", four},
		{"a frame too long once escaped", append(append([]byte(nil), ack...), long...)},
	} {
		if err := tnc.Transmit(tc.b); !errors.Is(err, phy.ErrTooLarge) {
			t.Errorf("%s: Transmit = %v, want ErrTooLarge", tc.desc, err)
		}
	}
}

// TestTNCBurstAckMode: with ACKMODE a burst's frames go as data frames but
// the last, which carries the id; TxDone comes with its answer.
func TestTNCBurstAckMode(t *testing.T) {
	tnc, conn, clk, _ := upTNC(t, "burstack", func(cfg *Config) { cfg.AirRate, cfg.AckMode = 9600, AckOn })
	a := framing.AppendFrame(nil, framing.Header{Kind: framing.KindData, Dst: 2, Src: 1}, bytes.Repeat([]byte{1}, 40))
	b := framing.AppendFrame(nil, framing.Header{Kind: framing.KindData, Dst: 2, Src: 1}, bytes.Repeat([]byte{2}, 40))
	if err := tnc.Transmit(append(append([]byte(nil), a...), b...)); err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("0/0/%x", a), fmt.Sprintf("0/12/0001%x", b)}
	if got := readFrames(t, conn, 2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("TNC got %v\nwant %v", got, want)
	}
	clk.nextTimer(t) // the watchdog is armed once the write is reported
	if _, err := conn.Write(kissproto.AppendFrame(nil, 0, kissAckMode, []byte{0, 1})); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, tnc, phy.TxDone)
	if st := tnc.Stats(); st.Acked != 1 || st.Sent != 2 {
		t.Fatalf("acked %d sent %d; want 1, 2", st.Acked, st.Sent)
	}
}

// TestTNCShortBurstJoins: an Ack-sized burst the TNC holds for a busy
// channel (a frame arrives after it was written) is reported done at once,
// before the frame that showed the channel busy, so that the next burst
// joins it in the TNC's queue; a longer one waits for its estimate as
// before. (A burst of Acks only is done once written, AcksOnly: the short
// burst here is a small fragment, or a sealed Ack, whose kind the TNC
// cannot see.)
func TestTNCShortBurstJoins(t *testing.T) {
	tnc, conn, clk, cfg := upTNC(t, "join", func(cfg *Config) { cfg.AirRate = 9600 })
	ack := framing.AppendFrame(nil, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 1}, []byte{7, 1, 1})
	heard := kissproto.AppendFrame(nil, 0, kissproto.CmdData, []byte("a frame of the other station"))

	if err := tnc.Transmit(ack); err != nil {
		t.Fatal(err)
	}
	readFrames(t, conn, 1)
	clk.nextTimer(t) // the estimate is armed
	if _, err := conn.Write(heard); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, tnc, phy.TxDone) // no time passed
	wantEvent(t, tnc, phy.Received)
	if err := tnc.Transmit(ack); err != nil {
		t.Fatalf("a burst right after: %v", err)
	}
	readFrames(t, conn, 1)
	clk.Advance(clk.nextTimer(t).d)
	wantEvent(t, tnc, phy.TxDone)

	long := bytes.Repeat([]byte{0x11}, joinMax+1)
	if err := tnc.Transmit(long); err != nil {
		t.Fatal(err)
	}
	readFrames(t, conn, 1)
	tm := clk.nextTimer(t)
	if _, err := conn.Write(heard); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, tnc, phy.Received)
	again := clk.nextTimer(t)
	if again.d != cfg.TxTime(len(long))+cfg.AccessWait() {
		t.Fatalf("a long burst's estimate after the frame: %v, want %v", again.d, cfg.TxTime(len(long))+cfg.AccessWait())
	}
	clk.Advance(tm.d + again.d)
	wantEvent(t, tnc, phy.TxDone)
	if st := tnc.Stats(); st.Joined != 1 || st.Deferred != 2 {
		t.Fatalf("joined %d deferred %d; want 1, 2", st.Joined, st.Deferred)
	}
}

// TestTNCAckBurstJoins: a burst of broadcast frames (nothing in it waits
// for an answer) that the TNC holds for a busy channel is reported done at
// once whatever its length, like a short one, so that the Ack to the frame
// that showed the channel busy joins it in the same key-up; a burst as long
// that carries data waits for its estimate. (Acks alone are done once
// written: TestTNCAcksDoneOnWrite.)
func TestTNCAckBurstJoins(t *testing.T) {
	tnc, conn, clk, _ := upTNC(t, "ackjoin", func(cfg *Config) { cfg.AirRate = 9600 })
	heard := kissproto.AppendFrame(nil, 0, kissproto.CmdData, []byte("a frame of the other station"))
	var acks, mixed []byte
	for i := range 6 {
		acks = framing.AppendFrame(acks, framing.Header{Kind: framing.KindAck, Dst: 2, Src: 1}, []byte{byte(i), 1, 1})
	}
	mixed = append(framing.AppendFrame(nil, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 1}, bytes.Repeat([]byte{5}, 40)), acks[:len(acks)/2]...)

	// A broadcast frame (a host's neighbour discovery) asks for no
	// answer either, however long.
	bcast := framing.AppendFrame(nil, framing.Header{Kind: framing.KindFragment, Dst: framing.Broadcast, Src: 1}, bytes.Repeat([]byte{6}, 70))
	if err := tnc.Transmit(bcast); err != nil {
		t.Fatal(err)
	}
	readFrames(t, conn, 1)
	clk.nextTimer(t)
	if _, err := conn.Write(heard); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, tnc, phy.TxDone)
	wantEvent(t, tnc, phy.Received)

	if err := tnc.Transmit(mixed); err != nil {
		t.Fatal(err)
	}
	readFrames(t, conn, framing.CountFrames(mixed))
	tm := clk.nextTimer(t)
	if _, err := conn.Write(heard); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, tnc, phy.Received)
	again := clk.nextTimer(t)
	clk.Advance(tm.d + again.d)
	wantEvent(t, tnc, phy.TxDone)
	if st := tnc.Stats(); st.Joined != 1 || st.Deferred != 2 {
		t.Fatalf("joined %d deferred %d; want 1, 2", st.Joined, st.Deferred)
	}
}

// TestTNCAcksDoneOnWrite: a burst of Acks only (AcksOnly) is reported done
// as soon as the TNC has it, with no estimate armed and without ACKMODE
// where the TNC answers it, so that the answer the host gives a little
// after the Ack joins the Ack's key-up in the TNC's queue instead of
// waiting for the Ack's estimated end (docs/modems.md, "Limits and the
// TxDone estimate"); a burst of data keeps its estimate.
func TestTNCAcksDoneOnWrite(t *testing.T) {
	tnc, conn, clk, cfg := upTNC(t, "ackdone", func(cfg *Config) { cfg.AirRate = 9600; cfg.AckMode = AckOn })
	var acks []byte
	for i := range 3 {
		acks = framing.AppendFrame(acks, framing.Header{Kind: framing.KindAck, Dst: 2, Src: 1}, []byte{byte(i), 1, 1})
	}
	data := framing.AppendFrame(nil, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 1}, bytes.Repeat([]byte{5}, 200))
	if !AcksOnly(acks) || AcksOnly(data) || AcksOnly(append(append([]byte(nil), acks...), data...)) || AcksOnly(acks[:len(acks)-3]) {
		t.Fatal("AcksOnly: want true for the Acks only")
	}

	if err := tnc.Transmit(acks); err != nil {
		t.Fatal(err)
	}
	for i, f := range readFrames(t, conn, 3) {
		if !strings.HasPrefix(f, "0/0/") {
			t.Fatalf("Ack frame %d went as %s, want a plain data frame (no ACKMODE)", i, f)
		}
	}
	wantEvent(t, tnc, phy.TxDone) // no time passed
	select {
	case tm := <-clk.armed:
		t.Fatalf("a timer of %v armed for a burst of Acks", tm.d)
	default:
	}

	clk.drainTimers()
	if err := tnc.Transmit(data); err != nil {
		t.Fatalf("data right after the Acks: %v", err)
	}
	readFrames(t, conn, 1)
	tm := clk.nextTimer(t)
	noEvent(t, tnc, "before the data's ACKMODE answer or watchdog")
	if want := 2*cfg.TxTime(len(data)) + 4*cfg.AccessWait() + time.Second; tm.d != want {
		t.Fatalf("the data's watchdog %v, want %v", tm.d, want)
	}
	if st := tnc.Stats(); st.Early != 1 || st.AckSent != 1 {
		t.Fatalf("early %d, ackmode sent %d; want 1, 1", st.Early, st.AckSent)
	}
}

// TestTNCAnswerEndsLongBurst: a frame heard while a burst's estimate runs
// defers it only if that frame began on air before the burst, written
// when it was, could have ended; one that began later is the far end's
// answer to the burst, which has gone: TxDone at once. A 28 s burst (32
// frames of 1000 bytes at 9600) whose Acks came a few hundred ms before
// its estimate (it counts 3% bit stuffing) was otherwise pushed back by
// its whole airtime again at each Ack heard, and the sender stayed silent
// for a minute (BenchmarkDirewolfVersusKISS with burst=32).
func TestTNCAnswerEndsLongBurst(t *testing.T) {
	tnc, conn, clk, cfg := upTNC(t, "answer", func(cfg *Config) {
		cfg.AirRate, cfg.Burst, cfg.BurstAir, cfg.TOT = 9600, 32, time.Minute, 2*time.Minute
	})
	var burst []byte
	for i := range 8 {
		burst = framing.AppendFrame(burst, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 1}, bytes.Repeat([]byte{byte(i + 1)}, 1000))
	}
	ack := kissproto.AppendFrame(nil, 0, kissproto.CmdData, framing.AppendFrame(nil, framing.Header{Kind: framing.KindAck, Dst: 1, Src: 2}, []byte{7, 1, 1}))

	// Heard early: the burst cannot have gone yet; deferred.
	if err := tnc.Transmit(burst); err != nil {
		t.Fatal(err)
	}
	readFrames(t, conn, 8)
	est := clk.nextTimer(t)
	clk.Advance(time.Second)
	if _, err := conn.Write(ack); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, tnc, phy.Received)
	again := clk.nextTimer(t)
	if again.d != cfg.BurstTime(burst)+cfg.AccessWait() {
		t.Fatalf("deferred by %v, want the burst's %v and the access wait", again.d, cfg.BurstTime(burst))
	}
	clk.Advance(again.d)
	wantEvent(t, tnc, phy.TxDone)
	_ = est

	// Heard when the burst, sent at once, would have ended: the answer.
	if err := tnc.Transmit(burst); err != nil {
		t.Fatal(err)
	}
	readFrames(t, conn, 8)
	est = clk.nextTimer(t)
	clk.Advance(est.d * 97 / 100)
	if _, err := conn.Write(ack); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, tnc, phy.TxDone)
	wantEvent(t, tnc, phy.Received)
	if st := tnc.Stats(); st.Deferred != 1 || st.Answered != 1 {
		t.Fatalf("deferred %d, answered %d; want 1, 1", st.Deferred, st.Answered)
	}
}

func TestParseBurst(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want int
		ok   bool
	}{{"", DefaultBurst, true}, {"?burst=1", 1, true}, {"?burst=256", 256, true}, {"?burst=0", 0, false}, {"?burst=257", 0, false}, {"?burst=x", 0, false}} {
		c, err := ParseTCP("127.0.0.1:8001" + tc.q)
		if err == nil {
			err = c.check()
		}
		if (err == nil) != tc.ok || (tc.ok && c.Burst != tc.want) {
			t.Errorf("%q: burst %d, %v; want %d, ok %v", tc.q, c.Burst, err, tc.want, tc.ok)
		}
	}
}

// FuzzSplitBurst: cutting any bytes into frames (nextFrame) never panics,
// finds framing.CountFrames frames, each one run of non-zero bytes with its
// delimiters, keeps every non-zero byte in order, and BurstTime is at
// least one MinBurst frame's TxTime.
func FuzzSplitBurst(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0, 0, 3, 0})
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{})
	cfg := Defaults()
	cfg.AirRate = 9600
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		var kept []byte
		for fr, rest := nextFrame(b); len(fr) > 0; fr, rest = nextFrame(rest) {
			n++
			inner := bytes.Trim(fr, "\x00")
			if len(inner) == 0 || bytes.IndexByte(inner, 0) >= 0 || len(fr)-len(inner) > 2 {
				t.Fatalf("frame % x is not one run with its delimiters", fr)
			}
			kept = append(kept, inner...)
		}
		if n != framing.CountFrames(b) {
			t.Fatalf("%d frames, CountFrames says %d", n, framing.CountFrames(b))
		}
		if !bytes.Equal(kept, bytes.ReplaceAll(b, []byte{0}, nil)) {
			t.Fatal("the frames do not hold every non-zero byte in order")
		}
		if d := cfg.BurstTime(b); d < cfg.TxTime(MinBurst) {
			t.Fatalf("BurstTime %v below one frame's %v", d, cfg.TxTime(MinBurst))
		}
	})
}

// upTNC dials a TNC of Defaults(), changed by tweak if not nil, to a fake
// TNC in a namespace of its own (named for the test), on a fake clock;
// reads the parameters it sends and waits for Up. The TNC closes at the
// end of the test.
func upTNC(t *testing.T, name string, tweak func(*Config)) (*TNC, net.Conn, *fakeClock, Config) {
	t.Helper()
	ns := testNS(t, name)
	srv := listenFake(t, ns, "127.0.0.1:0")
	clk := newFakeClock()
	cfg := Defaults()
	cfg.Addr, cfg.Dial = srv.addr, direwolftest.DialIn(ns)
	if tweak != nil {
		tweak(&cfg)
	}
	tnc, err := dial(context.Background(), cfg, testLog(t), clk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tnc.Close() })
	conn := srv.accept(t)
	readFrames(t, conn, 5) // parameters
	wantEvent(t, tnc, phy.Up)
	return tnc, conn, clk, cfg
}

// TestTNCDefaultBurstFillsWindow: with the defaults at 9600 bit/s a TNC
// takes a burst of forty 1000-byte packets (the bulk flow of
// BenchmarkDirewolfVersusKISS, 35 s of airtime) in one Transmit, as one
// key-up: the bounds are the ARQ's window (64 frames) and the radio's
// time-out (BurstAir 53.6 s), not 32 frames and 30 s, which cut that flow
// into two key-ups of about 1.7 s of fixed cost each.
func TestTNCDefaultBurstFillsWindow(t *testing.T) {
	tnc, conn, _, _ := upTNC(t, "window", func(cfg *Config) { cfg.AirRate = 9600 })
	info := tnc.Info()
	if info.MaxBurstFrames != 64 || info.MaxBurstAir != 53640*time.Millisecond {
		t.Fatalf("info: %d frames, %v of airtime a burst; want 64 and 53.64s", info.MaxBurstFrames, info.MaxBurstAir)
	}
	var burst []byte
	var air time.Duration
	for i := range 40 {
		f := framing.AppendFrame(nil, framing.Header{Kind: framing.KindFragment, Dst: 2, Src: 1}, bytes.Repeat([]byte{byte(i + 1)}, 1030))
		burst = append(burst, f...)
		air += phy.Airtime(len(f), info.BitRate)
	}
	if air > info.MaxBurstAir {
		t.Fatalf("40 frames take %v, beyond the %v bound", air, info.MaxBurstAir)
	}
	if err := tnc.Transmit(burst); err != nil {
		t.Fatalf("a burst of 40 frames refused: %v", err)
	}
	readFrames(t, conn, 40)
}

// TestTNCAckBurstsBounded: a station that holds the channel (its carrier
// keeps our TNC from keying up) and sends short polls addressed to us gets
// an Ack burst per poll; at most one burst reported done before its
// estimated end, on write (AcksOnly) or joined at a frame heard, may be
// outstanding. A further one waits for its estimate, pushed back by each
// frame heard, as a data burst does, so that the TNC's queue holds at most
// two of them however many polls come; once the estimate has passed
// (nothing more heard) the next Ack is done on write again. Before,
// every Ack burst was reported done on write (or joined at the next poll)
// and went straight into the TNC's queue, stale by the time it went on air.
func TestTNCAckBurstsBounded(t *testing.T) {
	tnc, conn, clk, _ := upTNC(t, "ackbound", func(cfg *Config) { cfg.AirRate = 9600 })
	ack := framing.AppendFrame(nil, framing.Header{Kind: framing.KindAck, Dst: 2, Src: 1}, []byte{7, 1, 1})
	poll := kissproto.AppendFrame(nil, 0, kissproto.CmdData, framing.AppendFrame(nil, framing.Header{Kind: framing.KindFragment, Dst: 1, Src: 2}, []byte{1}))

	written, done := 0, 0
	for range 10 { // no time passes: the channel is held throughout
		if err := tnc.Transmit(ack); errors.Is(err, phy.ErrBusy) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		written++
		readFrames(t, conn, 1)
		waitStats(t, tnc, func(s Stats) bool { return s.Sent == uint64(written) })
		if _, err := conn.Write(poll); err != nil {
			t.Fatal(err)
		}
		for ev := nextEvent(t, tnc); ev.Kind != phy.Received; ev = nextEvent(t, tnc) {
			if ev.Kind != phy.TxDone {
				t.Fatalf("event %v, want TxDone or Received", ev.Kind)
			}
			done++
		}
	}
	if written > 2 || done != written-1 {
		t.Fatalf("%d Ack bursts written, %d reported done, while the channel was held; want at most 2 written, 1 done", written, done)
	}

	// The held burst's estimate passes with nothing more heard: it is
	// done, and the next Ack is done on write again.
	clk.Advance(time.Minute)
	wantEvent(t, tnc, phy.TxDone)
	if err := tnc.Transmit(ack); err != nil {
		t.Fatal(err)
	}
	readFrames(t, conn, 1)
	wantEvent(t, tnc, phy.TxDone)
	if st := tnc.Stats(); st.Early != 2 || st.Joined != 0 {
		t.Fatalf("early %d joined %d; want 2, 0", st.Early, st.Joined)
	}
}
