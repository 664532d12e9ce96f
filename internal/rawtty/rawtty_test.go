//go:build linux

package rawtty

import (
	"testing"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// TestMakeRaw: a fresh pty slave (cooked, echoing) is raw afterwards.
func TestMakeRaw(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	fd := int(slave.Fd())
	if err := MakeRaw(fd); err != nil {
		t.Fatal(err)
	}
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG) != 0 || tio.Oflag&unix.OPOST != 0 ||
		tio.Iflag&unix.ICRNL != 0 || tio.Cflag&unix.CSIZE != unix.CS8 || tio.Cc[unix.VMIN] != 1 {
		t.Errorf("not raw: %+v", tio)
	}
}

// TestMakeRawNotATerminal: a descriptor that is no terminal is an error.
func TestMakeRawNotATerminal(t *testing.T) {
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if err := MakeRaw(p[0]); err == nil {
		t.Error("MakeRaw of a pipe: no error")
	}
}
