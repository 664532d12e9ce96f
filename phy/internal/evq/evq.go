// Package evq is the queue of events a modem's goroutine holds for the
// consumer of Events, so that it never blocks delivering one (the modem
// contract in package phy, promises 1 and 4). The goroutine that owns a
// Queue pushes events and offers the head on its Events channel in its
// select loop:
//
//	out, head := q.Out(events)
//	select {
//	case out <- head:
//		q.Pop()
//	...
//	}
//
// Received events are counted (Received) so the owner stops taking frames
// from its source when it holds enough: that is its flow control, and the
// queue never drops one. Up, Down, TxDone and carrier events are never
// dropped either; the queue only cancels a pair the consumer never saw and
// whose net effect is nothing (see Push and PushDown), which bounds them
// while the consumer does not read.
package evq

import "github.com/slided/slided/phy"

// Queue is a FIFO of events. The zero value is empty and ready. It is not
// safe for concurrent use: one goroutine owns it.
type Queue struct {
	evs []phy.Event
	rx  int
}

// Len is the number of events queued.
func (q *Queue) Len() int { return len(q.evs) }

// Received is the number of Received events queued.
func (q *Queue) Received() int { return q.rx }

// Push queues ev. A CarrierOn or CarrierOff pushed right after the
// opposite one, still queued, cancels it instead: the consumer never saw
// the carrier change, and CarrierOn and CarrierOff still alternate.
func (q *Queue) Push(ev phy.Event) {
	if n := len(q.evs); n > 0 && isCarrier(ev.Kind) && isCarrier(q.evs[n-1].Kind) && q.evs[n-1].Kind != ev.Kind {
		q.evs = q.evs[:n-1]
		return
	}
	if ev.Kind == phy.Received {
		q.rx++
	}
	q.evs = append(q.evs, ev)
}

// PushDown queues Down. If the last event queued is an Up and idle is true
// (no burst was accepted since that Up), it cancels the Up instead: the
// consumer still sees the modem down, as it is.
func (q *Queue) PushDown(idle bool) {
	if n := len(q.evs); n > 0 && q.evs[n-1].Kind == phy.Up && idle {
		q.evs = q.evs[:n-1]
		return
	}
	q.Push(phy.Event{Kind: phy.Down})
}

func isCarrier(k phy.EventKind) bool { return k == phy.CarrierOn || k == phy.CarrierOff }

// Out returns events and the head of the queue when the queue is not
// empty, and a nil channel (a select case that never fires) when it is.
func (q *Queue) Out(events chan phy.Event) (chan<- phy.Event, phy.Event) {
	if len(q.evs) == 0 {
		return nil, phy.Event{}
	}
	return events, q.evs[0]
}

// Pop removes the head, which the consumer took.
func (q *Queue) Pop() {
	if q.evs[0].Kind == phy.Received {
		q.rx--
	}
	q.evs[0] = phy.Event{}
	q.evs = q.evs[1:]
	if len(q.evs) == 0 {
		q.evs = nil // let the array go; the next Push starts a new one
	}
}

// Flush moves the head of the queue into events as long as they fit
// without blocking.
func (q *Queue) Flush(events chan phy.Event) {
	for len(q.evs) > 0 {
		select {
		case events <- q.evs[0]:
			q.Pop()
		default:
			return
		}
	}
}
