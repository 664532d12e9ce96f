package simbench

import (
	"bufio"
	"fmt"
	"io"
	"math"
)

// Series is one line of a Plot: points joined in order, drawn as a line with
// dots (Marks) or as a plain line (a theory curve).
type Series struct {
	Label  string
	Colour string
	Marks  bool
	X, Y   []float64
}

// Plot is a line chart written as SVG by WritePlot: a linear y axis from 0 to
// YMax and an x axis that is logarithmic when LogX.
type Plot struct {
	Title, XLabel, YLabel string
	LogX                  bool
	XMin, XMax, YMax      float64
	Series                []Series
}

// WritePlot writes p as a standalone SVG document. It is written by hand with
// the standard library: no plotting package.
func WritePlot(w io.Writer, p Plot) error {
	const (
		width                  = 720
		left, right, top, bott = 70, 20, 40, 60
		plotH                  = 360
	)
	// The legend goes under the plot, two entries a row: it never hides a
	// point.
	height := top + plotH + bott + 18*((len(p.Series)+1)/2) + 8
	pw, ph := float64(width-left-right), float64(plotH)
	tx := func(v float64) float64 {
		if p.LogX {
			return math.Log10(v)
		}
		return v
	}
	x := func(v float64) float64 {
		return float64(left) + pw*(tx(v)-tx(p.XMin))/(tx(p.XMax)-tx(p.XMin))
	}
	y := func(v float64) float64 { return float64(top) + ph*(1-v/p.YMax) }

	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(bw, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(bw, `<text x="%d" y="24" font-size="13">%s</text>`+"\n", left, xmlEscape(p.Title))
	// Vertical grid: decades (and 2, 5) on a log axis, tenths otherwise.
	var ticks []float64
	if p.LogX {
		for e := math.Floor(math.Log10(p.XMin)); e <= math.Ceil(math.Log10(p.XMax)); e++ {
			for _, m := range []float64{1, 2, 5} {
				if v := m * math.Pow(10, e); v >= p.XMin*(1-1e-9) && v <= p.XMax*(1+1e-9) {
					ticks = append(ticks, v)
				}
			}
		}
	} else {
		for i := 0; i <= 10; i++ {
			ticks = append(ticks, p.XMin+(p.XMax-p.XMin)*float64(i)/10)
		}
	}
	for _, v := range ticks {
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x(v), top, x(v), top+plotH)
		fmt.Fprintf(bw, `<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", x(v), top+plotH+16, v)
	}
	for i := 0; i <= 5; i++ {
		s := p.YMax * float64(i) / 5
		fmt.Fprintf(bw, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(s), width-right, y(s))
		fmt.Fprintf(bw, `<text x="%d" y="%.1f" text-anchor="end">%.1f</text>`+"\n", left-6, y(s)+4, s)
	}
	fmt.Fprintf(bw, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="black"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(bw, `<text x="%.0f" y="%d" text-anchor="middle">%s</text>`+"\n", float64(left)+pw/2, top+plotH+36, xmlEscape(p.XLabel))
	fmt.Fprintf(bw, `<text x="18" y="%.0f" text-anchor="middle" transform="rotate(-90 18 %.0f)">%s</text>`+"\n", float64(top)+ph/2, float64(top)+ph/2, xmlEscape(p.YLabel))
	for row, s := range p.Series {
		fmt.Fprintf(bw, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="`, s.Colour)
		for i := range s.X {
			fmt.Fprintf(bw, "%.1f,%.1f ", x(s.X[i]), y(math.Min(s.Y[i], p.YMax)))
		}
		fmt.Fprintln(bw, `"/>`)
		if s.Marks {
			for i := range s.X {
				fmt.Fprintf(bw, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s: x=%g S=%.3f</title></circle>`+"\n",
					x(s.X[i]), y(math.Min(s.Y[i], p.YMax)), s.Colour, xmlEscape(s.Label), s.X[i], s.Y[i])
			}
		}
		lx, ly := left+(row%2)*320, top+plotH+bott+8+18*(row/2)
		fmt.Fprintf(bw, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.5"/>`+"\n", lx, ly-4, lx+20, ly-4, s.Colour)
		if s.Marks {
			fmt.Fprintf(bw, `<circle cx="%d" cy="%d" r="3.5" fill="%s"/>`+"\n", lx+10, ly-4, s.Colour)
		}
		fmt.Fprintf(bw, `<text x="%d" y="%d">%s</text>`+"\n", lx+26, ly, xmlEscape(s.Label))
	}
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

// MaxAlohaS is pure ALOHA's best throughput, 1/(2e), at G = 0.5.
func MaxAlohaS() float64 { return AlohaS(0.5) }

// MaxNPCSMAS is non-persistent CSMA's best throughput at delay a: NPCSMAS
// maximised over G (golden-section search on log G; the curve is unimodal).
func MaxNPCSMAS(a float64) float64 {
	lo, hi := math.Log(1e-3), math.Log(1e4)
	const g = 0.6180339887498949
	f := func(l float64) float64 { return NPCSMAS(math.Exp(l), a) }
	for range 200 {
		m1, m2 := hi-g*(hi-lo), lo+g*(hi-lo)
		if f(m1) < f(m2) {
			lo = m1
		} else {
			hi = m2
		}
	}
	return f((lo + hi) / 2)
}
