package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/slided/slided/mac/csma"
	"github.com/slided/slided/phy/sim"
	"github.com/slided/slided/simbench"
)

// cmdBench runs channel-access protocols on the simulated medium in virtual
// time and prints one JSON object per run to out, or with -sweep writes a CSV
// and an SVG plot of S against G. docs/simulation.md explains the figures.
func cmdBench(args []string, out io.Writer) error {
	fs := newFlags("bench")
	proto := fs.String("protocol", "csma", "aloha, np-csma or csma (slided's own MAC)")
	nodes := fs.Int("nodes", 10, "number of nodes, 2..254")
	a := fs.Float64("a", 0.01, "propagation delay over the frame time")
	load := fs.String("load", "", "offered channel traffic G in frames per frame time; with -sweep lo:hi:n (log-spaced)")
	saturated := fs.Bool("saturated", false, "keep every node's queue full (csma only)")
	frames := fs.Int("frames", 10000, "length of the measured run in frame times")
	seed := fs.Uint64("seed", 1, "seed of every random choice")
	size := fs.Int("size", 100, "frame length in bytes")
	rate := fs.Int("rate", 9600, "bit rate, bit/s")
	asJSON := fs.Bool("json", false, "print JSON (the default output is JSON too; kept for scripts)")
	sweep := fs.Bool("sweep", false, "run once per load of -load lo:hi:n and write CSV and SVG")
	outPrefix := fs.String("out", "", "with -sweep: write PREFIX.csv and PREFIX.svg (default bench-PROTOCOL)")
	scenario := fs.String("scenario", "", "take the links from a scenario file instead of -a (nodes 1..N must be declared)")
	slot := fs.Duration("slot", 0, "csma: slot time (default: csma.DefaultConfig for -rate)")
	ifs := fs.Duration("ifs", -1, "csma: inter-frame space (default: the DefaultConfig's)")
	cwmin := fs.Int("cwmin", 0, "csma: minimum contention window (default: DefaultConfig's)")
	cwmax := fs.Int("cwmax", 0, "csma: maximum contention window (default: DefaultConfig's)")
	persist := fs.Float64("persistence", 0, "csma: persistence p in (0,1] (default: DefaultConfig's)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_ = asJSON

	cfg := simbench.Config{
		Protocol: *proto, Nodes: *nodes, A: *a, Saturated: *saturated,
		Frames: *frames, Seed: *seed, FrameBytes: *size, BitRate: *rate,
	}
	if *proto == simbench.CSMA {
		mc := csma.ConfigFor(cfg.Channel())
		if *slot > 0 {
			mc.SlotTime = *slot
			mc.IFS = 2 * *slot
		}
		if *ifs >= 0 {
			mc.IFS = *ifs
		}
		if *cwmin > 0 {
			mc.CWMin = *cwmin
		}
		if *cwmax > 0 {
			mc.CWMax = *cwmax
		}
		if *persist > 0 {
			mc.Persistence = *persist
		}
		cfg.MAC = mc
	}
	if *scenario != "" {
		sc, err := sim.LoadScenario(*scenario)
		if err != nil {
			return usageError("bench", "%v", err)
		}
		cfg.Topology = sc.Topology
	}
	var loads []float64
	if *load != "" {
		var err error
		if loads, err = simbench.ParseRange(*load); err != nil {
			return usageError("bench", "%v", err)
		}
	}
	if *sweep {
		if len(loads) == 0 {
			return usageError("bench", "-sweep needs -load lo:hi:n")
		}
		cfg.Saturated = false
		cfg.Load = loads[0]
		if err := cfg.Validate(); err != nil {
			return usageError("bench", "%v", err)
		}
		rs, err := simbench.SweepProgress(cfg, loads, sweepProgress(os.Stderr, time.Now()))
		if err != nil {
			return err
		}
		prefix := *outPrefix
		if prefix == "" {
			prefix = "bench-" + *proto
		}
		if err := writeFile(prefix+".csv", func(w io.Writer) error { return simbench.WriteCSV(w, rs) }); err != nil {
			return err
		}
		title := fmt.Sprintf("%s, %d nodes, a = %g, %d frame times per point, seed %d", *proto, *nodes, *a, *frames, *seed)
		if err := writeFile(prefix+".svg", func(w io.Writer) error { return simbench.WriteSVG(w, rs, *a, title) }); err != nil {
			return err
		}
		fmt.Fprintf(out, "wrote %s.csv and %s.svg (%d runs)\n", prefix, prefix, len(rs))
		return nil
	}
	if len(loads) > 1 {
		return usageError("bench", "-load lo:hi:n needs -sweep")
	}
	if len(loads) == 1 {
		cfg.Load = loads[0]
	}
	if err := cfg.Validate(); err != nil {
		return usageError("bench", "%v", err)
	}
	r, err := simbench.Run(cfg)
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(r)
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// sweepProgress reports a sweep's progress on w: one line rewritten in place
// on a terminal (runs done, the last point, rate, ETA), nothing otherwise,
// so that scripts that capture the output get only the results.
func sweepProgress(w *os.File, start time.Time) func(done, total int, r simbench.Result) {
	if !isTerminal(w) {
		return nil
	}
	return func(done, total int, r simbench.Result) {
		el := time.Since(start)
		eta := time.Duration(float64(el) / float64(done) * float64(total-done))
		fmt.Fprintf(w, "\r  %d/%d runs  G=%.3f S=%.3f  %.0f frame times/s  ETA %s   ",
			done, total, r.G, r.S, r.Speed, eta.Round(100*time.Millisecond))
		if done == total {
			fmt.Fprintln(w)
		}
	}
}
