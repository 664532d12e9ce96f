package main

import "golang.org/x/sys/unix"

// ioctlGetTermios reads a tty's termios (isTerminal).
const ioctlGetTermios = unix.TCGETS
