package testmedium

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/slided/slided/phy"
)

// script is a station that sends the given bursts at the given offsets
// from Epoch (each once the previous one's TxDone came) and records what it
// is told.
type script struct {
	at   []time.Duration
	data [][]byte
	busy bool
	log  []string
}

func (s *script) Event(now time.Time, ev phy.Event) {
	e := fmt.Sprintf("%v %v", now.Sub(Epoch), ev.Kind)
	if ev.Kind == phy.Received {
		e += " " + string(ev.Data)
	}
	if ev.Kind == phy.TxDone {
		s.busy = false
	}
	s.log = append(s.log, e)
}

func (s *script) Poll(now time.Time) ([]byte, bool) {
	if s.busy || len(s.at) == 0 || now.Sub(Epoch) < s.at[0] {
		return nil, false
	}
	d := s.data[0]
	s.at, s.data, s.busy = s.at[1:], s.data[1:], true
	return d, true
}

func (s *script) Deadline() (time.Time, bool) {
	if s.busy || len(s.at) == 0 {
		return time.Time{}, false
	}
	return Epoch.Add(s.at[0]), true
}

// At 8000 bit/s a byte is 1 ms on air.
const rate = 8000

func TestModel(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		setup func(m *Medium)
		a, b  *script // c only listens
		want  [3][]string
		stats Stats
	}{
		{
			desc: "same slot collides",
			a:    &script{at: []time.Duration{0}, data: [][]byte{[]byte("aaaa")}},
			b:    &script{at: []time.Duration{0}, data: [][]byte{[]byte("bbbb")}},
			want: [3][]string{
				{"0s carrier-on", "4ms carrier-off", "4ms tx-done"},
				{"0s carrier-on", "4ms carrier-off", "4ms tx-done"},
				{"0s carrier-on", "4ms carrier-off"},
			},
			stats: Stats{Bursts: 2, Collided: 2, LostHalfDuplex: 2, LostCollision: 2, BusyTime: 4 * time.Millisecond},
		},
		{
			desc: "back to back, and one that senses the carrier",
			a:    &script{at: []time.Duration{0}, data: [][]byte{[]byte("aaaa")}},
			b:    &script{at: []time.Duration{4 * time.Millisecond}, data: [][]byte{[]byte("bb")}},
			want: [3][]string{
				{"4ms tx-done", "4ms carrier-on", "6ms carrier-off", "6ms received bb"},
				{"0s carrier-on", "4ms carrier-off", "4ms received aaaa", "6ms tx-done"},
				{"0s carrier-on", "4ms carrier-off", "4ms received aaaa", "4ms carrier-on", "6ms carrier-off", "6ms received bb"},
			},
			stats: Stats{Bursts: 2, BusyTime: 6 * time.Millisecond},
		},
		{
			desc:  "propagation and half duplex, no carrier",
			setup: func(m *Medium) { m.Prop, m.NoCarrier = 3*time.Millisecond, true },
			a:     &script{at: []time.Duration{0}, data: [][]byte{[]byte("aaaa")}},
			b:     &script{at: []time.Duration{500 * time.Microsecond}, data: [][]byte{[]byte("bbbb")}},
			// a's signal is at b over [3ms, 7ms), b's at a over
			// [3.5ms, 7.5ms): each arrives while its receiver is still
			// on air; at c they overlap.
			want: [3][]string{
				{"4ms tx-done"},
				{"4.5ms tx-done"},
				{},
			},
			stats: Stats{Bursts: 2, Collided: 2, LostHalfDuplex: 2, LostCollision: 2, BusyTime: 4500 * time.Microsecond},
		},
		{
			desc: "frames of a burst handed up one by one, key-up and serial lines",
			setup: func(m *Medium) {
				m.KeyUp, m.Baud = 2*time.Millisecond, 80_000 // a byte: 0.125 ms on the line
				m.Split = func(b []byte) [][]byte { return [][]byte{b[:2], b[2:]} }
			},
			a: &script{at: []time.Duration{0}, data: [][]byte{[]byte("a1a2")}},
			b: &script{},
			want: [3][]string{
				{"6.5ms tx-done"},
				{"500µs carrier-on", "4.75ms received a1", "6.5ms carrier-off", "6.75ms received a2"},
				{"500µs carrier-on", "4.75ms received a1", "6.5ms carrier-off", "6.75ms received a2"},
			},
			stats: Stats{Bursts: 1, BusyTime: 6 * time.Millisecond},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			m := New(t, rate)
			if tc.setup != nil {
				tc.setup(m)
			}
			c := &script{}
			for _, s := range []*script{tc.a, tc.b, c} {
				m.Add(s)
			}
			m.Run(time.Second)
			for i, s := range []*script{tc.a, tc.b, c} {
				if !slices.Equal(s.log, tc.want[i]) {
					t.Errorf("station %d heard %q, want %q", i, s.log, tc.want[i])
				}
			}
			if st := m.Stats(); st != tc.stats {
				t.Errorf("stats %+v, want %+v", st, tc.stats)
			}
		})
	}
}

// TestLoseAndDrain: Lose drops one reception; Drain ends the burst on air
// without polling anyone.
func TestLoseAndDrain(t *testing.T) {
	m := New(t, rate)
	m.Lose = func(from, to int, data []byte) bool { return to == 1 }
	a := &script{at: []time.Duration{0, 0}, data: [][]byte{[]byte("aa"), []byte("again")}}
	b, c := &script{}, &script{}
	for _, s := range []*script{a, b, c} {
		m.Add(s)
	}
	if !m.Step() || !m.Transmitting(0) {
		t.Fatal("station 0 did not start")
	}
	m.Drain()
	if m.Busy() || m.Now() != Epoch.Add(2*time.Millisecond) || len(a.at) != 1 {
		t.Fatalf("after Drain: busy %v at %v, %d bursts left; want idle at 2ms, the second not sent", m.Busy(), m.Now().Sub(Epoch), len(a.at))
	}
	if want := []string{"0s carrier-on", "2ms carrier-off"}; !slices.Equal(b.log, want) {
		t.Errorf("station 1 heard %q, want %q", b.log, want)
	}
	if want := []string{"0s carrier-on", "2ms carrier-off", "2ms received aa"}; !slices.Equal(c.log, want) {
		t.Errorf("station 2 heard %q, want %q", c.log, want)
	}
	if st, s0 := m.Stats(), m.Station(0); st.Lost != 1 || s0.Sent != 1 || s0.Clean != 1 {
		t.Errorf("stats %+v, station 0 %+v; want 1 lost, 1 sent and clean", st, s0)
	}
}
