//go:build freebsd || darwin || openbsd || netbsd || dragonfly

package serial

import "golang.org/x/sys/unix"

// ioctlInQ counts the bytes waiting to be read.
const ioctlInQ = 0x4004667f // FIONREAD, _IOR('f', 127, int); x/sys/unix lacks it here

// ioctlGetTermios reads a tty's termios in the tests.
const ioctlGetTermios = unix.TIOCGETA
