package kiss

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/slided/slided/internal/direwolftest"
	"github.com/slided/slided/phy"
)

// direwolfPair starts two Dire Wolf modems at baud, joined by the audio
// relay, each in its own namespace, and a TNC client on each.
func direwolfPair(t testing.TB, baud int) (a, b *TNC) {
	t.Helper()
	pid := os.Getpid()
	nsA := direwolftest.NewNS(t, fmt.Sprintf("slided-kiss-%d-%d-a", pid, baud))
	nsB := direwolftest.NewNS(t, fmt.Sprintf("slided-kiss-%d-%d-b", pid, baud))
	addrA, addrB := direwolftest.StartPair(t, nsA, nsB, baud)
	open := func(ns, addr string) *TNC {
		cfg := Defaults()
		cfg.Addr, cfg.Dial, cfg.AirRate = addr, direwolftest.DialIn(ns), baud
		// No radio to key up: a short preamble is enough. One sender at a
		// time in these tests, so P = 255 (send as soon as the channel is clear).
		cfg.TXDelay, cfg.Persistence, cfg.SlotTime, cfg.TXTail = 50*time.Millisecond, 255, 10*time.Millisecond, 10*time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		tnc, err := Dial(ctx, cfg, testLog(t))
		if err != nil {
			t.Fatalf("dial direwolf in %s: %v", ns, err)
		}
		t.Cleanup(func() { tnc.Close() })
		wantEvent(t, tnc, phy.Up)
		return tnc
	}
	return open(nsA, addrA), open(nsB, addrB)
}

// waitKind waits up to d for an event of kind, skipping none: any other
// event first is a failure.
func waitKind(t testing.TB, tnc *TNC, kind phy.EventKind, d time.Duration) phy.Event {
	t.Helper()
	select {
	case ev, ok := <-tnc.Events():
		if !ok {
			t.Fatal("events channel closed")
		}
		if ev.Kind != kind {
			t.Fatalf("event %v, want %v", ev.Kind, kind)
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no %v within %v", kind, d)
		return phy.Event{}
	}
}

// TestDirewolf sends bursts of 100 and 1000 bytes both ways between two
// TNC clients over a pair of real Dire Wolf modems, at 9600 (G3RUH) and
// 1200 (AFSK) bit/s, and checks that each arrives intact, once.
func TestDirewolf(t *testing.T) {
	for _, baud := range []int{9600, 1200} {
		t.Run(fmt.Sprint(baud), func(t *testing.T) {
			a, b := direwolfPair(t, baud)
			rng := rand.New(rand.NewPCG(uint64(baud), 1))
			for _, size := range []int{100, 1000} {
				for _, dir := range []struct {
					name     string
					from, to *TNC
				}{{"a→b", a, b}, {"b→a", b, a}} {
					burst := make([]byte, size)
					for i := range burst {
						burst[i] = byte(rng.Uint32())
					}
					if err := dir.from.Transmit(burst); err != nil {
						t.Fatalf("%s %d bytes: %v", dir.name, size, err)
					}
					// Generous: the airtime plus Dire Wolf's up-to-1 s first read.
					limit := 10*dir.from.cfg.TxTime(size) + 10*time.Second
					waitKind(t, dir.from, phy.TxDone, limit)
					ev := waitKind(t, dir.to, phy.Received, limit)
					if !bytes.Equal(ev.Data, burst) {
						t.Fatalf("%s %d bytes: received %d bytes, not the burst sent", dir.name, size, len(ev.Data))
					}
				}
			}
			// Nothing else arrived (no duplicates, no stray frames).
			for _, tnc := range []*TNC{a, b} {
				select {
				case ev := <-tnc.Events():
					t.Fatalf("unexpected %v event", ev.Kind)
				default:
				}
				if st := tnc.Stats(); st.Sent != 2 || st.Received != 2 || st.Decoder.BadEscape+st.Decoder.TooLong != 0 {
					t.Fatalf("stats %+v: want 2 sent, 2 received, no decoder faults", st)
				}
			}
		})
	}
}

// BenchmarkDirewolfGoodput measures the goodput between two TNC clients
// over a Dire Wolf pair at 9600 and 1200 bit/s: 1000-byte bursts from A,
// each sent at the TxDone of the one before, timed from the first Transmit
// to the last reception at B. Run with a fixed count:
// -bench DirewolfGoodput/9600 -benchtime=30x.
func BenchmarkDirewolfGoodput(b *testing.B) {
	for _, baud := range []int{9600, 1200} {
		b.Run(fmt.Sprint(baud), func(b *testing.B) { benchGoodput(b, baud) })
	}
}

func benchGoodput(b *testing.B, baud int) {
	a, rx := direwolfPair(b, baud)
	const size = 1000
	burst := make([]byte, size)
	for i := range burst {
		burst[i] = byte(i*7 + 3)
	}
	type arrival struct {
		at     time.Time
		intact bool
	}
	arrivals := make(chan arrival, 4096)
	go func() { // exits when rx is closed (t.Cleanup)
		for ev := range rx.Events() {
			if ev.Kind == phy.Received {
				select {
				case arrivals <- arrival{time.Now(), bytes.Equal(ev.Data, burst)}:
				default: // more than 4096: the count is off, reported as lost
				}
			}
		}
	}()
	want := 0
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if err := a.Transmit(burst); err != nil {
			b.Fatal(err)
		}
		waitKind(b, a, phy.TxDone, time.Minute)
		want++
	}
	// Wait for the last reception (or give up after a generous pause).
	var last time.Time
	received, corrupt := 0, 0
wait:
	for received < want {
		select {
		case ar := <-arrivals:
			received++
			last = ar.at
			if !ar.intact {
				corrupt++
			}
		case <-time.After(30 * time.Second):
			b.Logf("gave up waiting: %d of %d bursts received", received, want)
			break wait
		}
	}
	if received == 0 {
		b.Fatal("nothing received")
	}
	if corrupt > 0 {
		b.Fatalf("%d of %d bursts arrived corrupted", corrupt, received)
	}
	elapsed := last.Sub(start)
	b.ReportMetric(float64(received*size*8)/elapsed.Seconds(), "goodput-bit/s")
	b.ReportMetric(float64(want-received), "lost")
	b.ReportMetric(float64(size*8*received)/float64(baud)/elapsed.Seconds(), "efficiency")
}

// BenchmarkDirewolfLatency measures how much later than the TxDone estimate
// a burst reaches the other client over a Dire Wolf pair at 9600 bit/s: the
// time from Transmit to the Received event at B, minus Config.TxTime. That
// excess is the write path into the modem plus its receive path (demodulate,
// check, KISS over TCP), which TxDone cannot see. Bursts go one at a time on
// an idle channel, a second apart. Run with -benchtime=20x; reports the
// median excess per size in milliseconds.
func BenchmarkDirewolfLatency(b *testing.B) {
	a, rx := direwolfPair(b, 9600)
	// Dire Wolf reads a new client only after up to a second: one burst
	// first, not timed.
	if err := a.Transmit(make([]byte, 100)); err != nil {
		b.Fatal(err)
	}
	waitKind(b, rx, phy.Received, 20*time.Second)
	waitKind(b, a, phy.TxDone, 20*time.Second)
	sizes := []int{15, 1000}
	excess := make([][]time.Duration, len(sizes))
	b.ReportAllocs()
	for b.Loop() {
		for i, size := range sizes {
			burst := bytes.Repeat([]byte{byte(size)}, size)
			start := time.Now()
			if err := a.Transmit(burst); err != nil {
				b.Fatal(err)
			}
			waitKind(b, rx, phy.Received, 20*time.Second)
			excess[i] = append(excess[i], time.Since(start)-a.cfg.TxTime(size))
			waitKind(b, a, phy.TxDone, 20*time.Second)
			time.Sleep(time.Second) // let both modems' carrier detect drop
		}
	}
	for i, size := range sizes {
		d := excess[i]
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2])/1e6, fmt.Sprintf("ms-excess-%dB", size))
		b.Logf("%d-byte bursts: excess over TxTime min %v median %v max %v", size, d[0], d[len(d)/2], d[len(d)-1])
	}
}
