package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/link"
	"github.com/slided/slided/mac/csma"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/sim"
	"github.com/slided/slided/simbench"
)

// cmdBench runs channel-access protocols on the simulated medium in virtual
// time and prints one JSON object per run to out, or with -sweep writes a CSV
// and an SVG plot of S against G. docs/simulation.md explains the figures.
func cmdBench(args []string, out io.Writer) error {
	if wantsLinkBench(args) {
		return cmdBenchLink(args, out)
	}
	fs := newFlags("bench")
	proto := fs.String("protocol", "csma", "aloha, np-csma, csma (slided's own MAC), fama (Slotted FAMA), tlohi (ST-Lohi) or link (the daemon's link engine: see -protocol link -h)")
	nodes := fs.Int("nodes", 10, "number of nodes, 2..10000 (2..254 with -scenario)")
	a := fs.Float64("a", 0.01, "propagation delay over the frame time")
	load := fs.String("load", "", "offered channel traffic G in frames per frame time; with -sweep lo:hi:n (log-spaced)")
	saturated := fs.Bool("saturated", false, "keep every node's queue full (csma; fama and tlohi need it)")
	frames := fs.Int("frames", 10000, "length of the measured run in frame times")
	seed := fs.Uint64("seed", 1, "seed of every random choice")
	size := fs.Int("size", 100, "frame length in bytes")
	rate := fs.Int("rate", 9600, "bit rate, bit/s")
	asJSON := fs.Bool("json", false, "print JSON (the default output is JSON too; kept for scripts)")
	sweep := fs.Bool("sweep", false, "run once per load of -load lo:hi:n and write CSV and SVG")
	outPrefix := fs.String("out", "", "with -sweep: write PREFIX.csv and PREFIX.svg (default bench-PROTOCOL)")
	scenario := fs.String("scenario", "", "take the links from a scenario file instead of -a (nodes 1..N must be declared)")
	slot := fs.Duration("slot", 0, "csma: slot time (default: csma.ConfigFor: propagation delay a·T, carrier at arrival)")
	ifs := fs.Duration("ifs", -1, "csma: inter-frame space (default: ConfigFor's, one slot)")
	cwmin := fs.Int("cwmin", 0, "csma: minimum contention window (default: ConfigFor's)")
	cwmax := fs.Int("cwmax", 0, "csma: maximum contention window (default: ConfigFor's)")
	persist := fs.Float64("persistence", 0, "csma: persistence p in (0,1] (default: ConfigFor's)")
	idle := fs.Float64("idle-target", -1, "csma: mean idle slots between transmissions the window aims at; 0 turns the adaptive window off (default: computed from frame and slot)")
	burst := fs.Int("burst", 0, "csma: data frames per won contention (default: 4 when a >= 0.05, else 1)")
	ordered := fs.Bool("ordered-turns", false, "csma: after a turn no other carrier broke into, back off half the window instead of a draw (csma.Config.TurnFrame; docs/mac.md)")
	control := fs.Int("control", 0, "fama: RTS, CTS and Ack length; tlohi: tone length; in bytes (default 12)")
	window := fs.Int("window", 0, "fama: least back-off window in slots (default 4)")
	svg := fs.String("svg", "", "write SVG plots of S against N and S against a (csma with defaults beside ALOHA and np-CSMA theory) to DIR; -frames, -seed apply")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_ = asJSON

	cfg := simbench.Config{
		Protocol: *proto, Nodes: *nodes, A: *a, Saturated: *saturated,
		Frames: *frames, Seed: *seed, FrameBytes: *size, BitRate: *rate,
		Control: *control, Window: *window,
	}
	if *scenario != "" {
		sc, err := sim.LoadScenario(*scenario)
		if err != nil {
			return usageError("bench", "%v", err)
		}
		cfg.Topology = sc.Topology
	}
	if *svg != "" {
		return benchPlots(*svg, cfg, out)
	}
	if *proto == simbench.CSMA {
		mc := csma.ConfigFor(cfg.Channel())
		if *slot > 0 {
			mc.SlotTime = *slot
			mc.IFS = *slot
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
		if *burst > 0 {
			mc.Burst = *burst
		}
		if *slot > 0 || *ifs >= 0 || *burst > 0 {
			// The target follows the frame-to-slot ratio it was set for.
			air := phy.Airtime(*size, *rate)
			mc.IdleTarget = csma.IdleTargetFor(time.Duration(max(mc.Burst, 1))*air, mc.SlotTime, mc.IFS, mc.PropDelay)
		}
		if *idle >= 0 {
			mc.IdleTarget = *idle
		}
		if *ordered {
			mc.TurnFrame = phy.Airtime(*size, *rate)
		}
		cfg.MAC = mc
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

// v0MAC is the MAC configuration slided bench used before the adaptive
// window (csma.DefaultConfig of then): a radio slot of 16 bit times plus
// 100 µs, IFS two slots, CW 16..128 from the deferral estimate. The plots
// show it as "before".
func v0MAC(bitRate int) csma.Config {
	bit := float64(time.Second) / float64(bitRate)
	slot := time.Duration(math.Ceil(16*bit)) + 100*time.Microsecond
	return csma.Config{SlotTime: slot, IFS: 2 * slot, Persistence: 1, CWMin: 16, CWMax: 128, QueueLen: 16}
}

// benchPlots writes dir/s-vs-n.svg (saturated csma nodes at -a, N from 2 to
// 200) and dir/s-vs-a.svg (-nodes saturated csma nodes, a from 0.001 to 2),
// each with slided's MAC as it is now and as it was (v0MAC), the daemon's
// link engine (a ring of saturated flows, linkS), and the underwater MACs of
// research (Slotted FAMA, T-Lohi) on the same channel, beside the best
// throughput of pure ALOHA and of non-persistent CSMA in theory.
func benchPlots(dir string, base simbench.Config, out io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base.Protocol, base.Saturated, base.Load = simbench.CSMA, true, 0
	run := func(n int, a float64, old bool) (float64, error) {
		c := base
		c.Nodes, c.A = n, a
		c.MAC = csma.Config{}
		if old {
			c.MAC = v0MAC(c.BitRate)
		}
		r, err := simbench.Run(c)
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(out, "nodes %d a %g old %v: S %.3f collisions %.3f jain %.4f\n", n, a, old, r.S, r.CollisionRate, r.Jain)
		return r.S, nil
	}
	// slotted runs a research MAC (FAMA, TLohi) with its defaults.
	slotted := func(proto string, n int, a float64) (float64, error) {
		c := base
		c.Protocol, c.Nodes, c.A, c.MAC = proto, n, a, csma.Config{}
		r, err := simbench.Run(c)
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(out, "nodes %d a %g %s: S %.3f jain %.4f\n", n, a, proto, r.S, r.Jain)
		return r.S, nil
	}
	engine := func(n int, a float64) (float64, error) {
		s, err := linkS(base, n, a)
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(out, "nodes %d a %g link: S %.3f\n", n, a, s)
		return s, nil
	}
	series := func(xs []float64, f func(x float64) (float64, error)) ([]float64, error) {
		ys := make([]float64, 0, len(xs))
		for _, x := range xs {
			y, err := f(x)
			if err != nil {
				return nil, err
			}
			ys = append(ys, y)
		}
		return ys, nil
	}
	// others returns the engine's, FAMA's and T-Lohi's S at each x.
	others := func(xs []float64, na func(x float64) (int, float64)) (link, fama, tlohi []float64, err error) {
		if link, err = series(xs, func(x float64) (float64, error) { return engine(na(x)) }); err != nil {
			return nil, nil, nil, err
		}
		if fama, err = series(xs, func(x float64) (float64, error) { n, a := na(x); return slotted(simbench.FAMA, n, a) }); err != nil {
			return nil, nil, nil, err
		}
		tlohi, err = series(xs, func(x float64) (float64, error) { n, a := na(x); return slotted(simbench.TLohi, n, a) })
		return link, fama, tlohi, err
	}
	sweep := func(xs []float64, f func(x float64, old bool) (float64, error)) (now, before []float64, err error) {
		for _, x := range xs {
			s, err := f(x, false)
			if err != nil {
				return nil, nil, err
			}
			o, err := f(x, true)
			if err != nil {
				return nil, nil, err
			}
			now, before = append(now, s), append(before, o)
		}
		return now, before, nil
	}
	flat := func(xs []float64, f func(float64) float64) []float64 {
		ys := make([]float64, len(xs))
		for i, x := range xs {
			ys[i] = f(x)
		}
		return ys
	}
	ns := []float64{2, 5, 10, 20, 50, 100, 200}
	now, before, err := sweep(ns, func(x float64, old bool) (float64, error) { return run(int(x), base.A, old) })
	if err != nil {
		return err
	}
	linkN, famaN, tlohiN, err := others(ns, func(x float64) (int, float64) { return int(x), base.A })
	if err != nil {
		return err
	}
	aloha := flat(ns, func(float64) float64 { return simbench.MaxAlohaS() })
	np := flat(ns, func(float64) float64 { return simbench.MaxNPCSMAS(base.A) })
	sub := fmt.Sprintf("%d-byte frames at %d bit/s, %d frame times, seed %d", base.FrameBytes, base.BitRate, base.Frames, base.Seed)
	pn := simbench.Plot{
		Title:  fmt.Sprintf("S against N, saturated, a = %g (%s)", base.A, sub),
		XLabel: "nodes N", YLabel: "S (data frames delivered per frame time)",
		LogX: true, XMin: 2, XMax: 200, YMax: 1,
		Series: []simbench.Series{
			{Label: "slided csma, defaults (ConfigFor)", Colour: "#2ca02c", Marks: true, X: ns, Y: now},
			{Label: "slided csma before (v0 defaults)", Colour: "#7f7f7f", Marks: true, X: ns, Y: before},
			{Label: linkLabel, Colour: "#ff7f0e", Marks: true, X: ns, Y: linkN},
			{Label: "Slotted FAMA", Colour: "#9467bd", Marks: true, X: ns, Y: famaN},
			{Label: "T-Lohi (ST-Lohi)", Colour: "#8c564b", Marks: true, X: ns, Y: tlohiN},
			{Label: fmt.Sprintf("np-CSMA theory, best G, a = %g", base.A), Colour: "#d62728", X: ns, Y: np},
			{Label: "pure ALOHA theory, best G", Colour: "#1f77b4", X: ns, Y: aloha},
		},
	}
	if err := writeFile(dir+"/s-vs-n.svg", func(w io.Writer) error { return simbench.WritePlot(w, pn) }); err != nil {
		return err
	}
	as := []float64{0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.5, 1, 2}
	now, before, err = sweep(as, func(x float64, old bool) (float64, error) { return run(base.Nodes, x, old) })
	if err != nil {
		return err
	}
	linkA, famaA, tlohiA, err := others(as, func(x float64) (int, float64) { return base.Nodes, x })
	if err != nil {
		return err
	}
	pa := simbench.Plot{
		Title:  fmt.Sprintf("S against a, %d saturated nodes (%s)", base.Nodes, sub),
		XLabel: "a = propagation delay / frame time", YLabel: "S (data frames delivered per frame time)",
		LogX: true, XMin: 0.001, XMax: 2, YMax: 1,
		Series: []simbench.Series{
			{Label: "slided csma, defaults (ConfigFor)", Colour: "#2ca02c", Marks: true, X: as, Y: now},
			{Label: "slided csma before (v0 defaults)", Colour: "#7f7f7f", Marks: true, X: as, Y: before},
			{Label: linkLabel, Colour: "#ff7f0e", Marks: true, X: as, Y: linkA},
			{Label: "Slotted FAMA", Colour: "#9467bd", Marks: true, X: as, Y: famaA},
			{Label: "T-Lohi (ST-Lohi)", Colour: "#8c564b", Marks: true, X: as, Y: tlohiA},
			{Label: "np-CSMA theory, best G", Colour: "#d62728", X: as, Y: flat(as, simbench.MaxNPCSMAS)},
			{Label: "pure ALOHA theory, best G", Colour: "#1f77b4", X: as, Y: flat(as, func(float64) float64 { return simbench.MaxAlohaS() })},
		},
	}
	if err := writeFile(dir+"/s-vs-a.svg", func(w io.Writer) error { return simbench.WritePlot(w, pa) }); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s/s-vs-n.svg and %s/s-vs-a.svg\n", dir, dir)
	return nil
}

// linkLabel names the engine's series in benchPlots.
const linkLabel = "slided link engine (daemon defaults, ARQ, bursts)"

// linkS is S for the daemon's link engine on base's channel: n saturated
// nodes, node i sending to node i+1 (a ring), datagrams whose frame on air
// is base.FrameBytes long (the link's 31 bytes of overhead with compressed
// headers, docs/frame-format.md, taken from the UDP payload), a propagation
// delay of a frame times, for base.Frames frame times. S counts the
// datagrams delivered per frame time, each one useful frame, as in
// docs/mac.md ("The same rows with the daemon's engine").
func linkS(base simbench.Config, n int, a float64) (float64, error) {
	frame := phy.Airtime(base.FrameBytes, base.BitRate)
	flows := make([]simbench.Flow, n)
	for i := range flows {
		flows[i] = simbench.Flow{From: i + 1, To: (i+1)%n + 1}
	}
	// The daemon's defaults, as slided bench -protocol link builds them,
	// with -prop-delay the channel's delay.
	var f runFlags
	f.register(newFlags("run"))
	f.propDelay = time.Duration(a * float64(frame))
	pol, err := link.ParsePolicy(f.policy)
	if err != nil {
		return 0, err
	}
	r, err := simbench.RunEngine(simbench.EngineConfig{Flows: flows, BitRate: base.BitRate,
		Payload: max(base.FrameBytes-linkOverhead, 1), Duration: time.Duration(base.Frames) * frame, Seed: base.Seed,
		PropDelay: f.propDelay, Engine: func(id framing.NodeID) link.Config {
			return f.engineConfig(runConfig{node: id, policy: pol})
		}})
	if err != nil {
		return 0, err
	}
	var got uint64
	for _, f := range r.Flows {
		got += f.Datagrams
	}
	return float64(got) / float64(base.Frames), nil
}

// linkOverhead is what the link adds to a UDP payload on air, with the IP
// and UDP headers compressed and the UDP checksum elided (version 4,
// docs/frame-format.md): a 71-byte payload makes a 100-byte frame.
const linkOverhead = 29
