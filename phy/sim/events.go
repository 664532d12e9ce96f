package sim

import (
	"sync"
	"sync/atomic"

	"github.com/slided/slided/phy"
)

// maxQueuedFrames bounds the received frames an eventPump holds beyond the
// Events channel's EventQueue: past it, the newest received frames are
// dropped and counted (the modem contract, phy/phy.go, rule 4).
const maxQueuedFrames = 256

// eventPump is the queue between a client's goroutines and the consumer of
// its Events channel. push never blocks, so a consumer that does not read
// never stalls the client's reading, keep-alives or Transmit.
//
// Policy when the consumer falls behind: received frames beyond
// maxQueuedFrames are dropped (newest first) and counted; a carrier event
// that would follow its opposite, both still unread, cancels it instead
// (the consumer never saw either, and the pair said nothing that lasts), so
// carrier events stay alternating and bounded; Up, Down and TxDone are never
// dropped (they are bounded by the caller's transmissions and by the
// reconnections, each of which waits a backoff).
//
// Goroutines: run moves events to the channel; it exits when stop is closed
// and then closes the channel.
type eventPump struct {
	events chan phy.Event
	wake   chan struct{} // capacity 1: the queue has events

	mu     sync.Mutex
	q      []phy.Event
	frames int // Received events in q

	dropped atomic.Uint64
}

func newEventPump() *eventPump {
	return &eventPump{events: make(chan phy.Event, EventQueue), wake: make(chan struct{}, 1)}
}

// push queues ev; it never blocks. It is safe from any goroutine; events
// pushed by one goroutine are delivered in the order pushed.
func (p *eventPump) push(ev phy.Event) {
	p.mu.Lock()
	switch ev.Kind {
	case phy.Received:
		if p.frames >= maxQueuedFrames {
			p.mu.Unlock()
			p.dropped.Add(1)
			return
		}
		p.frames++
	case phy.CarrierOn, phy.CarrierOff:
		// Never the head: run may be handing it over right now.
		if n := len(p.q); n > 1 && isCarrier(p.q[n-1].Kind) && p.q[n-1].Kind != ev.Kind {
			p.q = p.q[:n-1]
			p.mu.Unlock()
			return
		}
	}
	p.q = append(p.q, ev)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func isCarrier(k phy.EventKind) bool { return k == phy.CarrierOn || k == phy.CarrierOff }

// run delivers queued events until stop is closed, then closes the channel.
// Events still queued then are discarded (phy/phy.go, rule 6).
func (p *eventPump) run(stop <-chan struct{}) {
	defer close(p.events)
	for {
		p.mu.Lock()
		if len(p.q) == 0 {
			p.mu.Unlock()
			select {
			case <-p.wake:
				continue
			case <-stop:
				return
			}
		}
		// Move as many as fit without waiting, then wait for room.
		ev := p.q[0]
		select {
		case p.events <- ev:
			p.pop()
			p.mu.Unlock()
			continue
		default:
		}
		p.mu.Unlock()
		select {
		case p.events <- ev:
		case <-stop:
			return
		}
		p.mu.Lock()
		p.pop() // ev is still q[0]: push never removes the head
		p.mu.Unlock()
	}
}

// pop removes q[0]; p.mu is held.
func (p *eventPump) pop() {
	if p.q[0].Kind == phy.Received {
		p.frames--
	}
	p.q[0] = phy.Event{}
	p.q = p.q[1:]
	if len(p.q) == 0 {
		p.q = p.q[:0:0]
	}
}
