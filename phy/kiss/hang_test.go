package kiss

import (
	"bytes"
	"context"
	"net"
	"testing"
	"testing/synctest"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
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
			dec := framing.NewKISSDecoder(cfg.MaxFrame)
			buf := make([]byte, 4096)
			for {
				n, err := far.Read(buf)
				dec.Feed(buf[:n], func(_, cmd byte, data []byte) {
					if cmd == framing.KISSData {
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
				if _, err := far.Write(framing.AppendKISS(nil, 0, framing.KISSData, frame(i))); err != nil {
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
