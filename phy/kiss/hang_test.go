package kiss

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/kiss/kissproto"
	"github.com/slided/slided/phy/phytest"
)

// TestTransmitDuringFullEventQueue is the hang of issue 1: the TNC delivers
// more received frames than Events holds while nobody reads, then the
// consumer (the bridge loop) transmits before it reads again. Transmit must
// return at once; then every frame and the TxDone arrive. Inside the bubble
// a Transmit that waits on the consumer is a deadlock synctest reports.
// It failed on the old code (run blocked in emit, Transmit on run).
func TestTransmitDuringFullEventQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		near, far := net.Pipe()
		cfg := Defaults()
		cfg.Addr = "tnc.invalid:8001"
		cfg.Dial = func(context.Context, string, string) (net.Conn, error) { return near, nil }
		// The far end: read what the TNC writes, send n frames.
		written := make(chan []byte, 16)
		go func() {
			dec := kissproto.NewDecoder(cfg.MaxFrame)
			buf := make([]byte, 4096)
			for {
				n, err := far.Read(buf)
				dec.Feed(buf[:n], func(_, cmd byte, data []byte) {
					if cmd == kissproto.CmdData {
						written <- bytes.Clone(data)
					}
				})
				if err != nil {
					close(written)
					return
				}
			}
		}()
		tnc, err := Dial(context.Background(), cfg, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		defer tnc.Close()
		const n = 4 * eventQueue
		var want []byte
		go func() {
			for i := range n {
				if _, err := far.Write(kissproto.AppendFrame(nil, 0, kissproto.CmdData, frame(i))); err != nil {
					return
				}
			}
		}()
		for i := range n {
			want = append(want, frame(i)...)
		}
		synctest.Wait() // the TNC is as far as it gets without a reader

		burst := bytes.Repeat([]byte("x"), 100)
		if err := tnc.Transmit(burst); err != nil {
			t.Fatalf("Transmit while nobody reads Events: %v", err)
		}
		if got := <-written; !bytes.Equal(got, burst) {
			t.Fatalf("TNC wrote %q", got)
		}
		var got []byte
		txDone := 0
		for len(got) < len(want) || txDone == 0 {
			ev := <-tnc.Events()
			switch ev.Kind {
			case phy.Received:
				got = append(got, ev.Data...)
			case phy.TxDone:
				txDone++
			case phy.Up:
			default:
				t.Fatalf("event %v", ev.Kind)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("received %d bytes, want %d (frames lost or reordered)", len(got), len(want))
		}
		tnc.Close()
		far.Close()
	})
}

func frame(i int) []byte {
	return bytes.Repeat([]byte{byte(i)}, 20+i%50)
}

// TestWriteWatchdog: a TNC that stops reading wedges a write; after the
// watchdog (writeTimeout, in the bubble's virtual time) the connection is
// dropped: Down, a log line naming the cause, a reconnect after the
// backoff, Up. Close returns while a write is wedged and nobody reads.
func TestWriteWatchdog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs phytest.SyncBuffer
		log := zerolog.New(&logs)
		// The far end of each connection reads the parameters, then
		// stops reading.
		params := func(c net.Conn) {
			go func() {
				buf := make([]byte, 1)
				for n := 0; n < 10; { // 5 frames, 2 FENDs each
					if _, err := c.Read(buf); err != nil {
						return
					}
					if buf[0] == kissproto.FEND {
						n++
					}
				}
			}()
		}
		cfg := Defaults()
		cfg.Addr = "tnc.invalid:8001"
		cfg.Dial = func(context.Context, string, string) (net.Conn, error) {
			near, far := net.Pipe()
			params(far)
			return near, nil
		}
		tnc, err := Dial(context.Background(), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		wantKind(t, tnc, phy.Up)
		if err := tnc.Transmit(bytes.Repeat([]byte("x"), 100)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		wantKind(t, tnc, phy.Down)
		if d := time.Since(start); d != writeTimeout {
			t.Errorf("Down %v after the write started, want the watchdog's %v", d, writeTimeout)
		}
		if !strings.Contains(logs.String(), ErrWriteTimeout.Error()) {
			t.Errorf("no log line naming %q:\n%s", ErrWriteTimeout, logs.String())
		}
		if st := tnc.Stats(); st.WriteTimeouts != 1 || st.Drops != 1 {
			t.Errorf("stats %+v, want 1 write timeout, 1 drop", st)
		}
		if err := tnc.Transmit([]byte("while down, padded")); !errors.Is(err, phy.ErrDown) {
			t.Errorf("Transmit while down = %v, want phy.ErrDown", err)
		}
		wantKind(t, tnc, phy.Up)
		if d := time.Since(start); d < writeTimeout+backoffMin || d > writeTimeout+2*backoffMin {
			t.Errorf("Up %v after the write started, want within [%v, %v]", d, writeTimeout+backoffMin, writeTimeout+2*backoffMin)
		}
		// Wedge again, read nothing more, Close.
		if err := tnc.Transmit(bytes.Repeat([]byte("y"), 100)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		tnc.Close()
		for range tnc.Events() {
		}
		t.Logf("log:\n%s", logs.String())
	})
}

func wantKind(t *testing.T, tnc *TNC, kind phy.EventKind) {
	t.Helper()
	if ev := <-tnc.Events(); ev.Kind != kind {
		t.Fatalf("event %v, want %v", ev.Kind, kind)
	}
}
