package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestStartCPUProfile(t *testing.T) {
	stop, err := startCPUProfile("")
	if err != nil {
		t.Fatal(err)
	}
	stop()

	dir := t.TempDir()
	stop, err = startCPUProfile(filepath.Join(dir, "cpu-%p.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	stop()
	fi, err := os.Stat(filepath.Join(dir, "cpu-"+strconv.Itoa(os.Getpid())+".pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() == 0 {
		t.Error("empty profile")
	}

	if _, err := startCPUProfile(filepath.Join(dir, "missing", "cpu.pprof")); err == nil {
		t.Error("no error for a file that cannot be created")
	}
}
