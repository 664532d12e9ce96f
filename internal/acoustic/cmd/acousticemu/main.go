// Command acousticemu runs emulated acoustic modems sharing one body of
// water, for trying slided by hand without modems:
//
//	go run ./internal/acoustic/cmd/acousticemu -n 2 -air 2400 -prop 1s
//
// It prints each modem's pty path (open it with -phy serial:PATH?...), and
// with -link PREFIX also makes symlinks PREFIX0, PREFIX1, ... to them. It
// prints the modems' counters every -stats interval and on exit (SIGINT,
// SIGTERM). See docs/modems.md, "Acoustic modem emulator".
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/slided/slided/internal/acoustic"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "acousticemu:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 2, "number of modems")
	mode := flag.String("mode", "packet", "modem model: packet (store and forward) or streaming")
	baud := flag.Int("baud", acoustic.DefaultBaud, "serial rate (bytes take 10 bits)")
	airRate := flag.Int("air", acoustic.DefaultAirRate, "air rate, bit/s")
	preamble := flag.Duration("preamble", 250*time.Millisecond, "key-up time before each packet")
	gap := flag.Duration("gap", 0, "a packet is complete after no byte for this long (0: 20 byte times)")
	frame := flag.Int("frame", acoustic.DefaultMaxPacket, "largest packet, bytes")
	queue := flag.Int("queue", acoustic.DefaultQueue, "packets a modem holds while it transmits")
	prop := flag.Duration("prop", time.Second, "propagation delay between every pair")
	rangeM := flag.Float64("range", 0, "if set, distance in metres between neighbours on a line (overrides -prop; sound at 1500 m/s)")
	ber := flag.Float64("ber", 0, "bit error rate")
	drop := flag.Float64("drop", 0, "probability that a received byte is lost")
	seed := flag.Uint64("seed", 1, "seed of bit errors and drops")
	link := flag.String("link", "", "make symlinks PREFIX0, PREFIX1, ... to the pty paths")
	garbage := flag.Duration("garbage", 0, "every this long, each modem answers 20 random bytes on its serial side (0: never)")
	every := flag.Duration("stats", 0, "print counters at this interval (0: only on exit)")
	flag.Parse()

	m, err := acoustic.ParseMode(*mode)
	if err != nil {
		return err
	}
	if *n < 1 || *n > 64 {
		return fmt.Errorf("-n %d, want 1..64", *n)
	}
	mc := acoustic.ModemConfig{Mode: m, Baud: *baud, AirRate: *airRate, Preamble: *preamble,
		Gap: *gap, MaxPacket: *frame, Queue: *queue}
	cfg := acoustic.Config{BER: *ber, DropRate: *drop, Seed: *seed}
	for range *n {
		cfg.Modems = append(cfg.Modems, mc)
	}
	if *rangeM > 0 {
		for i := range *n {
			cfg.Positions = append(cfg.Positions, acoustic.Point{X: float64(i) * *rangeM})
		}
	} else {
		cfg.Delay = acoustic.UniformDelay(*n, *prop)
	}
	w, err := acoustic.Start(cfg)
	if err != nil {
		return err
	}
	defer w.Close()
	for i := range *n {
		fmt.Printf("modem %d: %s\n", i, w.Path(i))
		if *link != "" {
			l := fmt.Sprintf("%s%d", *link, i)
			os.Remove(l)
			if err := os.Symlink(w.Path(i), l); err != nil {
				return err
			}
			defer os.Remove(l)
			fmt.Printf("modem %d: %s -> %s\n", i, l, w.Path(i))
		}
	}
	fmt.Printf("%s modems, %d baud, %d bit/s on air, preamble %s, largest packet %d; delay 0->1 %s\n",
		m, *baud, *airRate, *preamble, *frame, w.Delay(0, min(1, *n-1)))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	var tick <-chan time.Time
	if *every > 0 {
		t := time.NewTicker(*every)
		defer t.Stop()
		tick = t.C
	}
	var junk <-chan time.Time
	if *garbage > 0 {
		t := time.NewTicker(*garbage)
		defer t.Stop()
		junk = t.C
	}
	for {
		select {
		case <-junk:
			for i := range w.N() {
				w.Garbage(i, 20)
			}
		case <-sig:
			printStats(w)
			return w.Close()
		case <-tick:
			printStats(w)
		}
	}
}

func printStats(w *acoustic.Water) {
	for i := range w.N() {
		st := w.Stats(i)
		fmt.Printf("modem %d: in %d B, sent %d, overflow %d; delivered %d, lost half-duplex %d, collision %d; out %d B, corrupted %d, dropped %d, garbage %d, overrun %d\n",
			i, st.BytesIn, st.Sent, st.Overflow, st.Delivered, st.LostHalfDuplex, st.LostCollision,
			st.BytesOut, st.Corrupted, st.Dropped, st.Garbage, st.Overrun)
	}
}
