package simbench

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ParseRange parses "lo:hi:n" into n loads spaced evenly on a log scale from
// lo to hi (both > 0); a single number is a range of one.
func ParseRange(s string) ([]float64, error) {
	parts := strings.Split(s, ":")
	if len(parts) == 1 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || !(v > 0) {
			return nil, fmt.Errorf("load %q: want a positive number or lo:hi:n", s)
		}
		return []float64{v}, nil
	}
	if len(parts) != 3 {
		return nil, fmt.Errorf("load %q: want lo:hi:n", s)
	}
	lo, err1 := strconv.ParseFloat(parts[0], 64)
	hi, err2 := strconv.ParseFloat(parts[1], 64)
	n, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || !(lo > 0) || !(hi >= lo) || math.IsInf(hi, 0) || n < 1 || n > 1000 {
		return nil, fmt.Errorf("load %q: want lo:hi:n with 0 < lo <= hi and 1 <= n <= 1000", s)
	}
	out := make([]float64, n)
	for i := range out {
		if n == 1 {
			out[i] = lo
			continue
		}
		out[i] = lo * math.Pow(hi/lo, float64(i)/float64(n-1))
	}
	return out, nil
}

// Sweep runs cfg once per load.
func Sweep(cfg Config, loads []float64) ([]Result, error) {
	return SweepProgress(cfg, loads, nil)
}

// SweepProgress is Sweep that calls progress (if not nil) after each run with
// the runs done so far, out of len(loads), and the last result.
func SweepProgress(cfg Config, loads []float64, progress func(done, total int, r Result)) ([]Result, error) {
	out := make([]Result, 0, len(loads))
	for _, g := range loads {
		c := cfg
		c.Load, c.Saturated = g, false
		r, err := Run(c)
		if err != nil {
			return out, err
		}
		out = append(out, r)
		if progress != nil {
			progress(len(out), len(loads), r)
		}
	}
	return out, nil
}

// WriteCSV writes one line per result with a header line.
func WriteCSV(w io.Writer, rs []Result) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "protocol,nodes,a,load,G,S,S_theory,attempts,transmissions,successes,collisions,collision_rate,delay_mean,delay_p95,jain,seed")
	for _, r := range rs {
		fmt.Fprintf(bw, "%s,%d,%g,%g,%.5f,%.5f,%.5f,%d,%d,%d,%d,%.5f,%.3f,%.3f,%.5f,%d\n",
			r.Protocol, r.Nodes, r.A, r.Load, r.G, r.S, r.Theory, r.Attempts, r.Transmissions,
			r.Successes, r.Collisions, r.CollisionRate, r.DelayMean, r.DelayP95, r.Jain, r.Seed)
	}
	return bw.Flush()
}

// WriteSVG draws S against G (log scale) for the results, as points, with
// the analytic curves of pure ALOHA and of non-persistent CSMA at the
// normalised delay a beside them. It is written by hand: no plotting library.
func WriteSVG(w io.Writer, rs []Result, a float64, title string) error {
	const (
		width, height          = 720, 460
		left, right, top, bott = 70, 20, 40, 60
	)
	pw, ph := float64(width-left-right), float64(height-top-bott)
	gmin, gmax := 0.01, 100.0
	for _, r := range rs {
		if r.G > 0 {
			gmin = math.Min(gmin, math.Pow(10, math.Floor(math.Log10(r.G))))
			gmax = math.Max(gmax, math.Pow(10, math.Ceil(math.Log10(r.G))))
		}
	}
	x := func(g float64) float64 {
		return float64(left) + pw*(math.Log10(g)-math.Log10(gmin))/(math.Log10(gmax)-math.Log10(gmin))
	}
	y := func(s float64) float64 { return float64(top) + ph*(1-s) }

	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(bw, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(bw, `<text x="%d" y="24" font-size="14">%s</text>`+"\n", left, xmlEscape(title))
	// Grid and axes.
	for e := math.Log10(gmin); e <= math.Log10(gmax)+1e-9; e++ {
		g := math.Pow(10, e)
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x(g), top, x(g), height-bott)
		fmt.Fprintf(bw, `<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", x(g), height-bott+16, g)
	}
	for s := 0.0; s <= 1.0001; s += 0.2 {
		fmt.Fprintf(bw, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(s), width-right, y(s))
		fmt.Fprintf(bw, `<text x="%d" y="%.1f" text-anchor="end">%.1f</text>`+"\n", left-6, y(s)+4, s)
	}
	fmt.Fprintf(bw, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="black"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(bw, `<text x="%.0f" y="%d" text-anchor="middle">G (attempts per frame time)</text>`+"\n", float64(left)+pw/2, height-20)
	fmt.Fprintf(bw, `<text x="18" y="%.0f" text-anchor="middle" transform="rotate(-90 18 %.0f)">S (successes per frame time)</text>`+"\n", float64(top)+ph/2, float64(top)+ph/2)

	curve := func(f func(float64) float64, colour, label string, row int) {
		fmt.Fprintf(bw, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="`, colour)
		for i := 0; i <= 200; i++ {
			g := gmin * math.Pow(gmax/gmin, float64(i)/200)
			fmt.Fprintf(bw, "%.1f,%.1f ", x(g), y(f(g)))
		}
		fmt.Fprintln(bw, `"/>`)
		ly := top + 14 + 16*row
		fmt.Fprintf(bw, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.5"/>`+"\n", width-right-200, ly-4, width-right-180, ly-4, colour)
		fmt.Fprintf(bw, `<text x="%d" y="%d">%s</text>`+"\n", width-right-174, ly, xmlEscape(label))
	}
	curve(AlohaS, "#1f77b4", "pure ALOHA, G·e^(−2G)", 0)
	curve(func(g float64) float64 { return NPCSMAS(g, a) }, "#d62728", fmt.Sprintf("np-CSMA, a = %g", a), 1)

	ly := top + 14 + 16*2
	fmt.Fprintf(bw, `<circle cx="%d" cy="%d" r="4" fill="black"/>`+"\n", width-right-190, ly-4)
	fmt.Fprintf(bw, `<text x="%d" y="%d">measured</text>`+"\n", width-right-174, ly)
	for _, r := range rs {
		if r.G <= 0 {
			continue
		}
		fmt.Fprintf(bw, `<circle cx="%.1f" cy="%.1f" r="4" fill="black"><title>%s G=%.3f S=%.3f</title></circle>`+"\n",
			x(r.G), y(r.S), r.Protocol, r.G, r.S)
	}
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
