// Package tty opens a serial device the way slided's modems need it: the
// line configured by go.bug.st/serial (raw mode, any baud rate, parity, stop
// bits, modem status bits), and the bytes carried by a second, non-blocking
// descriptor of the same tty registered with the Go runtime poller. Close
// on that descriptor unblocks a pending Read or Write, which the library's
// port cannot do for Write, and it has deadlines; the library's Read uses
// select(2), which breaks for descriptors >= 1024. phy/serial and phy/kiss
// (KISS over a serial port) share it, with their own write watchdogs.
package tty

import (
	"errors"
	"fmt"
	"os"
	"time"

	goserial "go.bug.st/serial"
	"golang.org/x/sys/unix"
)

// Line is one open instance of a serial device. Read, Write and
// SetWriteDeadline go to the non-blocking descriptor; Close releases both
// descriptors and unblocks a Read or Write in progress.
type Line struct {
	port goserial.Port
	file *os.File
	fd   int
}

// Open opens and configures path. rtscts sets hardware flow control
// (CRTSCTS), which the library has no switch for.
func Open(path string, mode goserial.Mode, rtscts bool) (*Line, error) {
	if err := CheckBaud(mode.BaudRate); err != nil {
		return nil, fmt.Errorf("configure %s: baud: %w", path, err)
	}
	// Our descriptor first: the library sets TIOCEXCL on its own, after
	// which a second open fails with EBUSY for anyone but root.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	// InitialStatusBits stays nil: setting DTR/RTS fails with ENOTTY on a
	// pty, and the library leaves both up by default anyway.
	port, err := goserial.Open(path, &mode)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("configure %s: %w", path, err)
	}
	// The library clears CRTSCTS in Open; termios belongs to the tty, so
	// setting it through our descriptor is enough, and a later SetMode
	// keeps it.
	if err := setRTSCTS(fd, rtscts); err != nil {
		port.Close()
		unix.Close(fd)
		return nil, fmt.Errorf("rtscts on %s: %w", path, err)
	}
	return &Line{port: port, fd: fd, file: os.NewFile(uintptr(fd), path)}, nil
}

func setRTSCTS(fd int, on bool) error {
	t, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return err
	}
	if on {
		t.Cflag |= unix.CRTSCTS
	} else {
		t.Cflag &^= unix.CRTSCTS
	}
	return unix.IoctlSetTermios(fd, ioctlSetTermios, t)
}

func (l *Line) Read(b []byte) (int, error)  { return l.file.Read(b) }
func (l *Line) Write(b []byte) (int, error) { return l.file.Write(b) }

// SetWriteDeadline bounds Write like net.Conn's.
func (l *Line) SetWriteDeadline(t time.Time) error { return l.file.SetWriteDeadline(t) }

// Fd is the non-blocking descriptor (for termios calls).
func (l *Line) Fd() int { return l.fd }

// OutQ is how many bytes the OS still holds for the device (TIOCOUTQ). A
// pty always answers 0.
func (l *Line) OutQ() (int, error) { return unix.IoctlGetInt(l.fd, unix.TIOCOUTQ) }

// DCD reads the DCD modem-status bit.
func (l *Line) DCD() (bool, error) {
	b, err := l.port.GetModemStatusBits()
	if err != nil {
		return false, err
	}
	return b.DCD, nil
}

// Close releases both descriptors; a Read or Write blocked on the line
// returns. Output still queued is discarded first: the last close of a real
// UART otherwise waits up to its closing_wait (30 s by default) for it to
// drain, which never happens while flow control holds it off.
func (l *Line) Close() error {
	l.port.ResetOutputBuffer()
	return errors.Join(l.file.Close(), l.port.Close())
}
