package evq

import (
	"fmt"
	"testing"

	"github.com/slided/slided/phy"
)

func kinds(q *Queue) string {
	var s []phy.EventKind
	for _, ev := range q.evs {
		s = append(s, ev.Kind)
	}
	return fmt.Sprint(s)
}

func TestQueue(t *testing.T) {
	up, down := phy.Event{Kind: phy.Up}, phy.Event{Kind: phy.Down}
	on, off := phy.Event{Kind: phy.CarrierOn}, phy.Event{Kind: phy.CarrierOff}
	rx, done := phy.Event{Kind: phy.Received, Data: []byte{1}}, phy.Event{Kind: phy.TxDone}
	tests := []struct {
		desc string
		push []phy.Event
		down int // push Down (idle) after the events, if > 0; -1: not idle
		want string
		rx   int
	}{
		{"fifo", []phy.Event{up, rx, done, rx}, 0, "[up received tx-done received]", 2},
		{"carrier blip unseen", []phy.Event{up, on, off}, 0, "[up]", 0},
		{"carrier with data kept", []phy.Event{up, on, rx, off}, 0, "[up carrier-on received carrier-off]", 1},
		{"up then down unseen", []phy.Event{up, rx, down, up}, 1, "[up received down]", 1},
		{"up with a burst outstanding", []phy.Event{up}, -1, "[up down]", 0},
		{"down after tx-done", []phy.Event{up, done}, 1, "[up tx-done down]", 0},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var q Queue
			for _, ev := range tc.push {
				q.Push(ev)
			}
			if tc.down != 0 {
				q.PushDown(tc.down > 0)
			}
			if got := kinds(&q); got != tc.want {
				t.Errorf("queue %s, want %s", got, tc.want)
			}
			if q.Received() != tc.rx {
				t.Errorf("Received() = %d, want %d", q.Received(), tc.rx)
			}
			ch := make(chan phy.Event, 1)
			n := q.Len()
			for i := 0; i < n; i++ {
				out, head := q.Out(ch)
				out <- head
				q.Pop()
				<-ch
			}
			if out, _ := q.Out(ch); out != nil || q.Received() != 0 {
				t.Errorf("queue not empty after popping all: %s", kinds(&q))
			}
		})
	}
}

func TestFlush(t *testing.T) {
	var q Queue
	for range 3 {
		q.Push(phy.Event{Kind: phy.Received, Data: []byte{1}})
	}
	ch := make(chan phy.Event, 2)
	q.Flush(ch)
	if len(ch) != 2 || q.Len() != 1 || q.Received() != 1 {
		t.Errorf("after Flush: channel %d, queue %d (%d received), want 2, 1, 1", len(ch), q.Len(), q.Received())
	}
}
