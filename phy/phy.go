// Package phy is the vocabulary every modem shares with the code that drives
// it: the events a modem reports and the figures that describe it. Each modem
// lives in a package below this one (phy/sim, phy/serial, phy/kiss) and returns
// its own concrete type; the interface those types satisfy is declared by the
// package that uses them (bridge.PHY).
package phy

import "time"

// EventKind says what a modem reports.
type EventKind uint8

const (
	// Received carries bytes that arrived from the air in Event.Data. A modem
	// that delivers whole bursts (phy/sim) puts one burst in one event; a
	// byte-stream modem (phy/serial) delivers whatever the port returned.
	Received EventKind = iota + 1
	// CarrierOn: the modem senses the channel busy (someone else transmits).
	CarrierOn
	// CarrierOff: the channel is idle again as far as the modem can tell.
	CarrierOff
	// TxDone: the bytes of the last Transmit have left the modem (are on air
	// in full). Exactly one TxDone follows each Transmit that returned nil,
	// unless the modem goes Down first.
	TxDone
	// Down: the modem or the medium went away (unplugged, medium server gone).
	// A transmission in progress is lost and no TxDone follows it. The modem
	// tries to come back by itself and reports Up when it has.
	Down
	// Up: the modem is usable again (also reported once after open).
	Up
)

var kindNames = [...]string{"", "received", "carrier-on", "carrier-off", "tx-done", "down", "up"}

func (k EventKind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return "unknown"
}

// Event is one report from a modem. Data is set for Received only; the
// receiver of the event owns it (the modem never touches it again).
type Event struct {
	Kind EventKind
	Data []byte
}

// Info describes a modem to the MAC above it.
type Info struct {
	// BitRate is the air rate in bit/s (not the serial baud rate).
	BitRate int
	// MaxFrame is the largest burst, in bytes as written to the modem, that
	// the modem carries in one transmission; 0 means no limit of its own.
	MaxFrame int
	// Turnaround is the time the modem needs between receiving and
	// transmitting (key-up, TXDELAY); zero for the simulated medium.
	Turnaround time.Duration
	// OwnAccess is true when the modem does its own channel access (a KISS
	// TNC that is not full duplex): a burst may wait inside it, so TxDone
	// is an estimate that can come before the burst went on air.
	OwnAccess bool
	// AccessWait, with OwnAccess, is the mean time the modem's own channel
	// access waits after the channel clears before it keys up (a TNC's
	// p-persistence); zero otherwise.
	AccessWait time.Duration
	// CarrierLag is how long the modem's carrier sense may stay on after
	// the channel went quiet (a hang-over on receive activity); zero when
	// carrier follows the channel (DCD, the simulated medium).
	CarrierLag time.Duration
	// MinBurst is the shortest burst the modem sends; shorter ones are
	// padded to it (a KISS TNC: 15 bytes). 0: no minimum.
	MinBurst int
}

// Airtime is how long n bytes occupy a channel of bitRate bit/s (8 bits a
// byte, no start/stop bits: the modem's air rate).
func Airtime(n, bitRate int) time.Duration {
	if bitRate <= 0 {
		return 0
	}
	return time.Duration(int64(n) * 8 * int64(time.Second) / int64(bitRate))
}
