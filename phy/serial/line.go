package serial

import (
	"errors"
	"fmt"
	"os"

	goserial "go.bug.st/serial"
	"golang.org/x/sys/unix"
)

// line is one open instance of the device: the library's port, which
// configured the tty and answers modem-status calls, and our own
// non-blocking descriptor of the same tty, registered with the runtime
// poller, that carries the bytes. Close on the file unblocks a pending Read
// or Write, which the library's port cannot do for Write.
type line struct {
	port goserial.Port
	file *os.File
	fd   int
}

func parseParity(s string) (goserial.Parity, error) {
	switch s {
	case "none", "":
		return goserial.NoParity, nil
	case "odd":
		return goserial.OddParity, nil
	case "even":
		return goserial.EvenParity, nil
	case "mark":
		return goserial.MarkParity, nil
	case "space":
		return goserial.SpaceParity, nil
	}
	return 0, cfgErr("parity", "%q, want none, odd, even, mark or space", s)
}

// openLine opens and configures cfg.Path. cfg has its defaults set and is
// valid.
func openLine(cfg Config) (*line, error) {
	// Our descriptor first: the library sets TIOCEXCL on its own, after
	// which a second open fails with EBUSY for anyone but root.
	fd, err := unix.Open(cfg.Path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: cfg.Path, Err: err}
	}
	parity, _ := parseParity(cfg.Parity)
	stop := goserial.OneStopBit
	if cfg.StopBits == 2 {
		stop = goserial.TwoStopBits
	}
	port, err := goserial.Open(cfg.Path, &goserial.Mode{
		BaudRate: cfg.Baud,
		DataBits: cfg.DataBits,
		Parity:   parity,
		StopBits: stop,
		// InitialStatusBits stays nil: setting DTR/RTS fails with ENOTTY on
		// a pty, and the library leaves both up by default anyway.
	})
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("configure %s: %w", cfg.Path, err)
	}
	// The library clears CRTSCTS in Open and has no switch for it; termios
	// belongs to the tty, so setting it through our descriptor is enough, and
	// a later SetMode keeps it.
	if err := setRTSCTS(fd, cfg.RTSCTS); err != nil {
		port.Close()
		unix.Close(fd)
		return nil, fmt.Errorf("rtscts on %s: %w", cfg.Path, err)
	}
	return &line{port: port, fd: fd, file: os.NewFile(uintptr(fd), cfg.Path)}, nil
}

func setRTSCTS(fd int, on bool) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	if on {
		t.Cflag |= unix.CRTSCTS
	} else {
		t.Cflag &^= unix.CRTSCTS
	}
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// outq is how many bytes the OS still holds for the device (TIOCOUTQ). A pty
// always answers 0.
func (l *line) outq() (int, error) {
	return unix.IoctlGetInt(l.fd, unix.TIOCOUTQ)
}

// dcd reads the DCD modem-status bit.
func (l *line) dcd() (bool, error) {
	b, err := l.port.GetModemStatusBits()
	if err != nil {
		return false, err
	}
	return b.DCD, nil
}

// close releases both descriptors; a Read or Write blocked on file returns.
// Output still queued is discarded first: the last close of a real UART
// otherwise waits up to its closing_wait (30 s by default) for it to drain,
// which never happens while flow control holds it off.
func (l *line) close() error {
	l.port.ResetOutputBuffer()
	return errors.Join(l.file.Close(), l.port.Close())
}
