package serial

import "golang.org/x/sys/unix"

// ioctlInQ counts the bytes waiting to be read.
const ioctlInQ = unix.TIOCINQ

// ioctlGetTermios reads a tty's termios in the tests.
const ioctlGetTermios = unix.TCGETS
