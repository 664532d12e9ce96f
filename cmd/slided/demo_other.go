//go:build !linux

package main

import (
	"io"
	"runtime"
)

// cmdDemo needs Linux: the demo builds its network from network namespaces
// (internal/lab).
func cmdDemo(args []string, out io.Writer) error {
	return usageError("demo", "the demo builds its network from Linux network namespaces; it does not run on %s", runtime.GOOS)
}
