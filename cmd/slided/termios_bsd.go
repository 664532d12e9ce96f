//go:build freebsd || darwin || openbsd || netbsd || dragonfly

package main

import "golang.org/x/sys/unix"

// ioctlGetTermios reads a tty's termios (isTerminal).
const ioctlGetTermios = unix.TIOCGETA
