//go:build freebsd || darwin || openbsd || netbsd || dragonfly

package tty

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// The termios ioctls (TIOCGETA/TIOCSETA on the BSDs, tcgetattr/tcsetattr).
const (
	ioctlGetTermios = unix.TIOCGETA
	ioctlSetTermios = unix.TIOCSETA
)

// CheckBaud refuses, with a clear error, a rate go.bug.st/serial cannot
// set on this system: on macOS it sets any rate (IOSSIOSPEED), on the
// other BSDs only the StandardBauds.
func CheckBaud(baud int) error {
	if runtime.GOOS == "darwin" {
		return nil
	}
	return checkStandardBaud(baud)
}
