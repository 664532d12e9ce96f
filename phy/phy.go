// Package phy is the vocabulary every modem shares with the code that drives
// it: the events a modem reports, the figures that describe it, the errors it
// returns, and the contract below. Each modem lives in a package below this
// one (phy/sim, phy/serial, phy/kiss) and returns its own concrete type; the
// interface those types satisfy is declared by the package that uses them
// (bridge.PHY). phy/phytest is the conformance suite every modem runs.
//
// # The modem contract
//
// A modem has three methods that matter here, Transmit(b), Events() and
// Close(), and it keeps these promises:
//
//  1. Transmit never waits on the consumer of Events, nor on I/O that can
//     stall (a full socket, a wedged USB adapter, flow control held off): it
//     checks b, copies it (or hands it to the modem's goroutine) and returns
//     in bounded time whether or not anybody reads Events. A write that
//     cannot finish later makes the modem go Down; it never blocks the
//     caller. The caller may transmit again only after the TxDone or Down
//     that follows an accepted Transmit; earlier calls return ErrBusy.
//
//  2. Events are delivered in the order they happened. The first event is
//     Up. Between an Up and the next Down come Received, CarrierOn,
//     CarrierOff and TxDone in any order the channel produces. Exactly one
//     TxDone follows each Transmit that returned nil, unless Down comes
//     first: then the burst is lost and no TxDone follows it.
//
//  3. Carrier events report the channel as the modem senses it, at all
//     times, including while the node itself transmits: a CarrierOn that
//     arrives before our own TxDone still holds after it, until a
//     CarrierOff. CarrierOn and CarrierOff alternate (a modem never repeats
//     the state it reported last); a modem that cannot sense while it
//     transmits (a half-duplex radio) reports the state it senses again
//     after its TxDone if it changed. Down resets the carrier to off for
//     the consumer; after Up it stays off until a CarrierOn. A modem that
//     senses no carrier at all (a KISS TNC, a modem that reports nothing
//     until it decoded a packet) reports no carrier events.
//
//  4. Events are buffered in a bounded queue. A modem whose consumer does
//     not read keeps working: Transmit, Close and the modem's own timers
//     and watchdogs go on. When its queue of received frames is full it
//     either stops reading its source (a byte stream's own flow control:
//     TCP, a serial port's buffer) or drops the newest received frames and
//     counts them; it never drops Up, Down or TxDone. While nobody reads,
//     a modem may remove from its queue a pair of events that cancel out
//     and that the consumer has not seen (CarrierOn then CarrierOff, or Up
//     then Down with no burst accepted in between), so that a flapping
//     carrier line cannot grow the queue; what the consumer reads still
//     alternates and still ends in the modem's current state.
//
//  5. Down is reported when the modem or medium went away or stopped
//     answering (a hang-up, a write that did not finish within the modem's
//     watchdog, a medium that missed its keep-alives). Received frames that
//     arrived before the loss are delivered before the Down. While down,
//     Transmit returns ErrDown; the modem reconnects by itself, with
//     backoff, and reports Up when it is usable again, logging why it went
//     down and how long it took to come back.
//
//  6. Close stops the modem's goroutines, closes its port or socket and then
//     the Events channel, and returns even if nobody reads Events and even
//     if a write is wedged (within the write watchdog). Events not yet read
//     at Close are discarded. After Close, Transmit returns ErrClosed.
//     Close is safe to call more than once.
//
// Every error a modem returns from Transmit wraps one of ErrBusy, ErrDown,
// ErrClosed, ErrTooLarge or ErrEmpty, so that callers branch with errors.Is
// without knowing the modem.
package phy

import (
	"errors"
	"time"
)

// Errors of Transmit, shared by every modem: a modem wraps them with its own
// context (fmt.Errorf("kiss: %d bytes: %w", n, phy.ErrTooLarge)), and callers
// test them with errors.Is.
var (
	// ErrBusy: Transmit was called before the TxDone or Down of the
	// previous accepted burst. The caller's bug, never the channel's.
	ErrBusy = errors.New("transmission outstanding")
	// ErrDown: the modem is not connected; a Down was or is being
	// reported, and an Up will follow when it is back.
	ErrDown = errors.New("modem down")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("modem closed")
	// ErrTooLarge: the burst is larger than the modem carries in one
	// transmission (Info.MaxFrame, or a limit after escaping).
	ErrTooLarge = errors.New("burst larger than the modem carries")
	// ErrEmpty: the burst is empty.
	ErrEmpty = errors.New("empty burst")
)

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
	// CarrierAtArrival is true when the modem reports a carrier as soon as
	// the first bit of another's burst arrives (the simulated medium);
	// otherwise the MAC assumes carrier detection takes about two bytes.
	CarrierAtArrival bool
	// NoCarrier is true when the modem reports no carrier events at all (a
	// transparent acoustic modem that says nothing until it has decoded a
	// packet): the MAC cannot sense the channel, and waiting for it to be
	// idle gains nothing.
	NoCarrier bool
	// MinBurst is the shortest burst the modem sends; shorter ones are
	// padded to it (a KISS TNC: 15 bytes). 0: no minimum.
	MinBurst int
	// MaxBurstFrames is how many frames one burst may hold when the modem
	// sends each frame of a burst as a frame of its own, all in one
	// transmission after one key-up (a KISS TNC splits the burst at the
	// frames' 0x00 delimiters into KISS data frames, which the TNC sends
	// back to back). MaxFrame then bounds each frame, not the burst. 0 or
	// 1: a burst is one frame, as the modem's only unit.
	MaxBurstFrames int
	// MaxBurstAir, with MaxBurstFrames > 1, bounds the airtime of one
	// burst (the frames' bytes at BitRate; a first frame longer than it
	// goes alone): the other stations wait that long. 0: the link's
	// default (8 s: eight 1000-byte frames at 9600 bit/s, one at 1200).
	MaxBurstAir time.Duration
}

// Airtime is how long n bytes occupy a channel of bitRate bit/s (8 bits a
// byte, no start/stop bits: the modem's air rate).
func Airtime(n, bitRate int) time.Duration {
	if bitRate <= 0 {
		return 0
	}
	return time.Duration(int64(n) * 8 * int64(time.Second) / int64(bitRate))
}
