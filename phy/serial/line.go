package serial

import (
	goserial "go.bug.st/serial"

	"github.com/slided/slided/phy/internal/tty"
)

// line is one open instance of the device (see package tty): the bytes go
// through a non-blocking descriptor that Close unblocks.
type line = tty.Line

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
	parity, _ := parseParity(cfg.Parity)
	stop := goserial.OneStopBit
	if cfg.StopBits == 2 {
		stop = goserial.TwoStopBits
	}
	return tty.Open(cfg.Path, goserial.Mode{
		BaudRate: cfg.Baud,
		DataBits: cfg.DataBits,
		Parity:   parity,
		StopBits: stop,
	}, cfg.RTSCTS)
}
