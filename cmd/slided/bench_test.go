package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCmdBenchJSON(t *testing.T) {
	var out bytes.Buffer
	err := cmdBench([]string{"-protocol", "np-csma", "-nodes", "50", "-a", "0.1", "-load", "1", "-frames", "500", "-seed", "2", "-json"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	for _, k := range []string{"G", "S", "delay_mean", "jain", "collisions"} {
		if _, ok := r[k]; !ok {
			t.Errorf("no %q in %s", k, out.String())
		}
	}
}

func TestCmdBenchSweep(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "s")
	var out bytes.Buffer
	if err := cmdBench([]string{"-protocol", "aloha", "-nodes", "50", "-load", "0.1:2:4", "-frames", "200", "-sweep", "-out", prefix}, &out); err != nil {
		t.Fatal(err)
	}
	csv, err := os.ReadFile(prefix + ".csv")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(csv), "\n"); n != 5 {
		t.Errorf("csv has %d lines, want header + 4:\n%s", n, csv)
	}
	svg, err := os.ReadFile(prefix + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(svg), "<circle") != 5 || !strings.HasSuffix(string(svg), "</svg>\n") {
		t.Errorf("svg lacks 4 points and a legend mark, or is cut short")
	}
}

func TestCmdBenchBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"-protocol", "tdma", "-load", "1"},
		{"-protocol", "aloha", "-saturated"},
		{"-protocol", "aloha", "-load", "0.1:5:3"},
		{"-protocol", "aloha", "-load", "-1"},
		{"-protocol", "csma", "-saturated", "-cwmin", "64", "-cwmax", "8"},
		{"-protocol", "csma", "-saturated", "-burst", "1000"},
		{"-protocol", "csma", "-saturated", "-idle-target", "5000"},
		{"-protocol", "csma", "-saturated", "-nodes", "10001"},
		{"-protocol", "fama", "-load", "1"},
		{"-protocol", "fama", "-saturated", "-control", "100"},
		{"-protocol", "fama", "-saturated", "-window", "0x"},
		{"-protocol", "tlohi", "-saturated", "-window", "8"},
		{"-protocol", "csma", "-saturated", "-control", "12"},
	} {
		if err := cmdBench(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}

func TestCmdBenchPlots(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := cmdBench([]string{"-svg", dir, "-frames", "200", "-nodes", "4"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"s-vs-n.svg", "s-vs-a.svg"} {
		svg, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(svg)
		if !strings.HasPrefix(s, "<svg") || !strings.HasSuffix(s, "</svg>\n") || strings.Count(s, "<polyline") != 7 {
			t.Errorf("%s: not an SVG of seven series:\n%.300s", name, s)
		}
		if strings.Contains(s, "NaN") || strings.Contains(s, "Inf") {
			t.Errorf("%s: NaN or Inf in the plot", name)
		}
	}
}

func TestCmdBenchDefaultsFollowDelay(t *testing.T) {
	// At a = 1 the defaults give a slot of the delay: frames get through
	// (the radio slot of before delivered nothing).
	var out bytes.Buffer
	if err := cmdBench([]string{"-protocol", "csma", "-nodes", "10", "-a", "1", "-saturated", "-frames", "2000"}, &out); err != nil {
		t.Fatal(err)
	}
	var r struct{ S, Jain float64 }
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.S < 0.3 || r.Jain < 0.9 {
		t.Errorf("10 nodes at a = 1 with defaults: S %.3f Jain %.3f, want S >= 0.3, Jain >= 0.9", r.S, r.Jain)
	}
}

// TestCmdBenchSlotted: -protocol fama and tlohi run, and -control and
// -window reach the run (a longer control packet or a wider window costs
// throughput).
func TestCmdBenchSlotted(t *testing.T) {
	run := func(args ...string) float64 {
		t.Helper()
		var out bytes.Buffer
		if err := cmdBench(append([]string{"-nodes", "5", "-a", "0.1", "-saturated", "-frames", "2000"}, args...), &out); err != nil {
			t.Fatal(err)
		}
		var r struct {
			Protocol string
			S        float64
		}
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if r.S <= 0 {
			t.Errorf("%v: S %v, protocol %q", args, r.S, r.Protocol)
		}
		return r.S
	}
	for _, p := range []string{"fama", "tlohi"} {
		if d, long := run("-protocol", p), run("-protocol", p, "-control", "50"); !(long < d) {
			t.Errorf("%s: S %.3f with 50-byte control packets, %.3f with 12: want less", p, long, d)
		}
	}
	if d, wide := run("-protocol", "fama"), run("-protocol", "fama", "-window", "512"); !(wide < d) {
		t.Errorf("fama: S %.3f with window 512, %.3f with 4: want less", wide, d)
	}
}
