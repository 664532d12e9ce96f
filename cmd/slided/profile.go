package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
)

// startCPUProfile starts writing a CPU profile to path, a debugging aid
// for `slided run` (SLIDED_CPUPROFILE, docs/operations.md): "%p" in path
// is replaced by the process id, so that several daemons started with the
// same environment write a file each. An empty path profiles nothing.
// The returned stop ends the profile and closes the file; `slided run`
// calls it when the daemon returns (SIGINT, SIGTERM).
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
