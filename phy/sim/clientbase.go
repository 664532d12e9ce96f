package sim

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/internal/redial"
	"github.com/slided/slided/internal/selfstall"
	"github.com/slided/slided/phy"
)

// clientBase is what Client (stream) and UDPClient share: the client's
// lifetime, its event pump and the goroutines that feed it, the modem
// figures, the Transmit checks and the reconnect backoff. Each client embeds
// it; its run goroutine is started by start.
type clientBase struct {
	log zerolog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	pump   *eventPump
	done   chan struct{} // closed when run and the pump have exited

	// redial is the reconnect policy and its log lines: Dial's caller
	// uses it, then run.
	redial *redial.Loop

	// mu guards closed, info and txBusy, and the fields of the embedding
	// client that say so.
	mu     sync.Mutex
	closed bool
	info   phy.Info
	txBusy bool // a Transmit was accepted and its TxDone not yet reported

	carrier bool // owned by run: last carrier event sent

	// now is the client's clock for its deadlines: time.Now, unless a
	// test stops it. Set before start.
	now func() time.Time

	selfStalls atomic.Uint64
}

// init sets up a client's base before anything else uses it: what names
// the medium in the reconnect log lines; bmin and bmax bound the backoff.
func (b *clientBase) init(log zerolog.Logger, what string, bmin, bmax time.Duration) {
	b.log, b.pump, b.done, b.now = log, newEventPump(), make(chan struct{}), time.Now
	b.redial = redial.New(redial.Policy{Min: bmin, Max: bmax}, what, log)
	b.ctx, b.cancel = context.WithCancel(context.Background())
}

// start reports Up and starts the event pump and run, the client's
// goroutine; done is closed once both have exited (run first, then the
// pump, which closes Events).
func (b *clientBase) start(run func()) {
	b.pump.push(phy.Event{Kind: phy.Up})
	pumpStop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); b.pump.run(pumpStop) }()
	go func() { defer wg.Done(); defer close(pumpStop); run() }()
	go func() { wg.Wait(); close(b.done) }()
}

// Info returns the modem figures from the server's last welcome.
func (b *clientBase) Info() phy.Info {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.info
}

// Events returns the channel of the client's reports; it is closed after
// Close.
func (b *clientBase) Events() <-chan phy.Event { return b.pump.events }

// checkTransmitLocked is Transmit's refusal of b, if any, with up telling
// whether the client has a session; b.mu is held.
func (b *clientBase) checkTransmitLocked(up bool, n int) error {
	switch {
	case b.closed:
		return fmt.Errorf("sim: transmit: %w", phy.ErrClosed)
	case !up:
		return fmt.Errorf("sim: transmit: %w", phy.ErrDown)
	case b.txBusy:
		return fmt.Errorf("sim: transmit: %w", phy.ErrBusy)
	case n == 0:
		return fmt.Errorf("sim: transmit: %w", phy.ErrEmpty)
	case n > b.info.MaxFrame:
		return fmt.Errorf("sim: transmit %d bytes (max %d): %w", n, b.info.MaxFrame, phy.ErrTooLarge)
	}
	return nil
}

// carrierTo reports a carrier change to on, and says whether it was one
// (never two carrier events of a kind in a row). Only run calls it.
func (b *clientBase) carrierTo(on bool) bool {
	if on == b.carrier {
		return false
	}
	b.carrier = on
	k := phy.CarrierOff
	if on {
		k = phy.CarrierOn
	}
	b.pump.push(phy.Event{Kind: k})
	return true
}

// reportDown reports the session lost: CarrierOff if the carrier was on,
// then Down. Only run calls it.
func (b *clientBase) reportDown() {
	b.carrierTo(false)
	b.pump.push(phy.Event{Kind: phy.Down})
}

// SelfStalls counts the times the client found that its own process had
// not run (SIGSTOP, a starved CPU, swap) while it waited on the medium, and
// gave the medium a grace period instead of taking it for silent (package
// selfstall).
func (b *clientBase) SelfStalls() uint64 { return b.selfStalls.Load() }

// selfStall counts and logs a stall of the client's own process, found
// late after its expected wake-up.
func (b *clientBase) selfStall(late time.Duration) {
	b.selfStalls.Add(1)
	selfstall.Log(b.log, late, "the medium")
}
