package csma

import (
	"testing"
	"time"
)

// TestFollow: after Poll, Follow hands out the rest of the queue for the
// same transmission, urgent frames first; one TxDone ends them all and the
// queue is empty; without a frame on air it hands out nothing.
func TestFollow(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		data    []string // enqueued in order
		urgent  []string // then EnqueueFront, in order
		want    []string // Poll then Follow until false
		afterTx int      // Len after TxDone
	}{
		{desc: "lone frame", data: []string{"d1"}, want: []string{"d1"}},
		{desc: "data burst", data: []string{"d1", "d2", "d3"}, want: []string{"d1", "d2", "d3"}},
		{desc: "acks first then data", data: []string{"d1", "d2"}, urgent: []string{"a1", "a2"}, want: []string{"a1", "a2", "d1", "d2"}},
		{desc: "ack alone", urgent: []string{"a1"}, want: []string{"a1"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			m, _ := newPair(t, testConfig(), 1)
			if f, ok := m.Follow(t0, nil); ok {
				t.Fatalf("Follow with nothing on air = %q", f)
			}
			for _, d := range tc.data {
				mustEnqueue(t, m, t0, []byte(d))
			}
			for _, u := range tc.urgent {
				if err := m.EnqueueFront(t0, []byte(u)); err != nil {
					t.Fatal(err)
				}
			}
			if f, ok := m.Follow(t0, nil); ok {
				t.Fatalf("Follow before Poll = %q", f)
			}
			now := t0.Add(time.Second) // past any backoff
			var got []string
			f, ok := m.Poll(now)
			for ok {
				got = append(got, string(f))
				f, ok = m.Follow(now, nil)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("burst %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("burst %q, want %q", got, tc.want)
				}
			}
			if !m.Transmitting() || m.Len() != 1 {
				t.Fatalf("during the burst: transmitting %v, len %d; want true, 1", m.Transmitting(), m.Len())
			}
			m.TxDone(now.Add(time.Second))
			if m.Transmitting() || m.Len() != 0 {
				t.Fatalf("after TxDone: transmitting %v, len %d", m.Transmitting(), m.Len())
			}
			if s := m.Stats(); s.Transmitted != uint64(len(tc.want)) {
				t.Fatalf("Transmitted %d, want %d", s.Transmitted, len(tc.want))
			}
			// The queue still works: a new frame goes after its backoff.
			mustEnqueue(t, m, now.Add(time.Second), []byte("n"))
			if f, ok := m.Poll(now.Add(10 * time.Second)); !ok || string(f) != "n" {
				t.Fatalf("after the burst Poll = %q, %v", f, ok)
			}
		})
	}
}

// TestFollowPartial: a burst that takes only some frames leaves the rest
// queued in order, and the urgent count right.
func TestFollowPartial(t *testing.T) {
	m, _ := newPair(t, testConfig(), 2)
	mustEnqueue(t, m, t0, []byte("d1"))
	mustEnqueue(t, m, t0, []byte("d2"))
	if err := m.EnqueueFront(t0, []byte("a1")); err != nil {
		t.Fatal(err)
	}
	if err := m.EnqueueFront(t0, []byte("a2")); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Second)
	if f, ok := m.Poll(now); !ok || string(f) != "a1" {
		t.Fatalf("Poll = %q, %v", f, ok)
	}
	if f, ok := m.Follow(now, nil); !ok || string(f) != "a2" {
		t.Fatalf("Follow = %q, %v", f, ok)
	}
	m.TxDone(now)
	// d1, d2 wait as data: no urgent left, so Poll waits for the backoff.
	var got []string
	for i := 0; i < 100 && len(got) < 2; i++ {
		now = now.Add(100 * time.Millisecond)
		if f, ok := m.Poll(now); ok {
			got = append(got, string(f))
			m.TxDone(now)
		}
	}
	if len(got) != 2 || got[0] != "d1" || got[1] != "d2" {
		t.Fatalf("after the partial burst: %q", got)
	}
}

// TestFollowFits: a frame that does not fit the burst stays queued, first
// in line.
func TestFollowFits(t *testing.T) {
	m, _ := newPair(t, testConfig(), 3)
	for _, f := range []string{"d1", "long", "d3"} {
		mustEnqueue(t, m, t0, []byte(f))
	}
	now := t0.Add(time.Second)
	short := func(f []byte) bool { return len(f) < 3 }
	if f, ok := m.Poll(now); !ok || string(f) != "d1" {
		t.Fatalf("Poll = %q, %v", f, ok)
	}
	if f, ok := m.Follow(now, short); ok {
		t.Fatalf("Follow took %q, which does not fit", f)
	}
	m.TxDone(now)
	var got []string
	for i := 0; i < 100 && len(got) < 2; i++ {
		now = now.Add(100 * time.Millisecond)
		if f, ok := m.Poll(now); ok {
			got = append(got, string(f))
			m.TxDone(now)
		}
	}
	if len(got) != 2 || got[0] != "long" || got[1] != "d3" {
		t.Fatalf("after: %q", got)
	}
}
