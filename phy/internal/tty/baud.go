package tty

import (
	"fmt"
	"runtime"
	"slices"
)

// StandardBauds are the rates go.bug.st/serial can set on FreeBSD, OpenBSD
// and NetBSD: it has no BOTHER there and refuses any other rate with a bare
// "invalid port speed".
var StandardBauds = []int{50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800,
	9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600}

// checkStandardBaud accepts 0 (the library's default, 9600) and the
// StandardBauds. It is portable so that its test runs on Linux too.
func checkStandardBaud(baud int) error {
	if baud == 0 || slices.Contains(StandardBauds, baud) {
		return nil
	}
	return fmt.Errorf("rate %d cannot be set on %s, only the standard rates %v", baud, runtime.GOOS, StandardBauds)
}
