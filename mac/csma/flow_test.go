package csma

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// flowFrame is a queued element of the flow tests: its flow and its number
// within the flow.
type flowFrame struct {
	flow uint64
	seq  int
	tag  string // "a…" for an urgent frame
	id   int    // the order of enqueueing (TestEnqueueFlowKeepsFlowOrder)
}

func (f flowFrame) String() string {
	if f.tag != "" {
		return f.tag
	}
	return fmt.Sprintf("%c%d", 'A'+rune(f.flow), f.seq)
}

// drain sends everything queued, frame by frame, and returns the order.
func drain(t *testing.T, m *MACOf[flowFrame], now time.Time) string {
	t.Helper()
	var got []string
	for m.Len() > 0 {
		now = now.Add(time.Second) // past any backoff
		f, ok := m.Poll(now)
		if !ok {
			t.Fatalf("nothing sent with %d queued", m.Len())
		}
		got = append(got, f.String())
		m.TxDone(now)
	}
	return strings.Join(got, " ")
}

// TestEnqueueFlowRounds: data frames go in rounds, one frame of each flow
// per round; a frame of a flow with nothing waiting goes behind the first
// frame of each busy flow, not behind their backlog; urgent frames and the
// frame on air keep their places; Enqueue alone is a FIFO.
func TestEnqueueFlowRounds(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		onAir bool   // the first frame enqueued is put on air first
		in    string // flows enqueued in order ("AAAB"); "u": an urgent frame
		want  string
	}{
		{desc: "one flow is a fifo", in: "AAAA", want: "A0 A1 A2 A3"},
		{desc: "sparse behind the first greedy frame", in: "AAAB", want: "A0 B0 A1 A2"},
		{desc: "sparse right behind a frame on air", onAir: true, in: "AAAB", want: "A0 B0 A1 A2"},
		{desc: "two rounds", in: "AAABB", want: "A0 B0 A1 B1 A2"},
		{desc: "three flows", in: "AAABC", want: "A0 B0 C0 A1 A2"},
		{desc: "late round", in: "AABBAB", want: "A0 B0 A1 B1 A2 B2"},
		{desc: "urgent frames stay in front", in: "AAuB", want: "a A0 B0 A1"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := testConfig()
			cfg.QueueLen = 8
			m, err := NewOf[flowFrame](cfg, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			seq := map[uint64]int{}
			var got []string
			now := t0
			for i, c := range tc.in {
				if c == 'u' {
					if err := m.EnqueueFront(now, flowFrame{tag: "a"}); err != nil {
						t.Fatal(err)
					}
					continue
				}
				fl := uint64(c - 'A')
				if err := m.EnqueueFlow(now, flowFrame{flow: fl, seq: seq[fl]}, fl); err != nil {
					t.Fatal(err)
				}
				seq[fl]++
				if i == 0 && tc.onAir {
					now = now.Add(time.Second)
					f, ok := m.Poll(now)
					if !ok {
						t.Fatal("first frame not sent")
					}
					got = append(got, f.String())
				}
			}
			if tc.onAir {
				m.TxDone(now)
			}
			if rest := drain(t, m, now); rest != "" {
				got = append(got, rest)
			}
			if s := strings.Join(got, " "); s != tc.want {
				t.Errorf("sent %s, want %s", s, tc.want)
			}
		})
	}
}

// TestEnqueueFlowKeepsFlowOrder: random enqueues of a few flows, urgent
// frames, bursts (Follow), drops and transmissions: every flow's frames
// leave in the order they came, none is lost or sent twice, and of the
// frames already waiting when a frame came, at most one of each other flow
// leaves before it if its flow had none waiting (r+2 if r).
func TestEnqueueFlowKeepsFlowOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	cfg := testConfig()
	cfg.QueueLen = 12
	m, err := NewOf[flowFrame](cfg, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	next := map[uint64]int{} // next number to enqueue, per flow
	want := map[uint64]int{} // next number expected out, per flow
	// waiting[id] is a frame still queued: the frames queued before it
	// that may still leave ahead of it.
	type wait struct{ budget int }
	waiting := map[int]*wait{}
	id, out := 0, 0
	left := func(f flowFrame) {
		t.Helper()
		if f.tag != "" {
			return
		}
		out++
		if f.seq != want[f.flow] {
			t.Fatalf("%v left, want %c%d", f, 'A'+rune(f.flow), want[f.flow])
		}
		want[f.flow]++
		delete(waiting, f.id)
		for k, w := range waiting {
			if k > f.id {
				if w.budget--; w.budget < 0 {
					t.Fatalf("frame %d overtaken by more earlier frames than its round allows (%v left)", k, f)
				}
			}
		}
	}
	for step := 0; step < 20000; step++ {
		switch op := r.IntN(10); {
		case op < 5 && m.Room() > 0:
			fl := uint64(r.IntN(4))
			round := next[fl] - want[fl]
			if m.onAir && !m.airUrgent && m.flow[m.head] == fl {
				round++ // its frame on air counts as waiting
			}
			budget := round
			for o := range uint64(4) {
				if o != fl {
					// A flow's first waiting frame is in the round
					// in progress or the next.
					if round == 0 {
						budget += min(next[o]-want[o], 1)
					} else {
						budget += min(next[o]-want[o], round+2)
					}
				}
			}
			f := flowFrame{flow: fl, seq: next[fl], id: id}
			if err := m.EnqueueFlow(now, f, fl); err != nil {
				t.Fatal(err)
			}
			waiting[id] = &wait{budget}
			id++
			next[fl]++
		case op == 5 && m.Room() > 0:
			if err := m.EnqueueFront(now, flowFrame{tag: "a"}); err != nil {
				t.Fatal(err)
			}
		case op == 6:
			if f, ok := m.DropOldest(); ok {
				left(f)
			}
		default:
			if m.Transmitting() {
				if r.IntN(2) == 0 {
					if f, ok := m.Follow(now, nil); ok {
						left(f)
						continue
					}
				}
				now = now.Add(time.Second)
				m.TxDone(now)
				continue
			}
			now = now.Add(time.Second)
			if f, ok := m.Poll(now); ok {
				left(f)
			}
		}
	}
	if out < 1000 || len(waiting) > 12 {
		t.Fatalf("%d frames out, %d still tracked (the queue holds 12)", out, len(waiting))
	}
}

// TestQueued: Queued sees a flow's data frames waiting and on air, not
// urgent frames or other flows.
func TestQueued(t *testing.T) {
	m, err := NewOf[flowFrame](testConfig(), rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.EnqueueFlow(t0, flowFrame{flow: 1}, 1); err != nil {
		t.Fatal(err)
	}
	if err := m.EnqueueFront(t0, flowFrame{tag: "a"}); err != nil {
		t.Fatal(err)
	}
	if !m.Queued(1) || m.Queued(0) || m.Queued(2) {
		t.Fatalf("waiting: Queued(1, 0, 2) = %v %v %v; want true false false", m.Queued(1), m.Queued(0), m.Queued(2))
	}
	now := t0.Add(time.Second)
	if f, ok := m.Poll(now); !ok || f.tag != "a" {
		t.Fatalf("Poll = %v %v, want the urgent frame", f, ok)
	}
	m.TxDone(now)
	now = now.Add(time.Second)
	if _, ok := m.Poll(now); !ok || !m.Queued(1) {
		t.Fatalf("on air: sent %v, Queued(1) %v; want both", ok, m.Queued(1))
	}
	m.TxDone(now)
	if m.Queued(1) {
		t.Fatal("sent: still Queued")
	}
}

// TestEnqueueFlowCostShares: with costs (EnqueueFlowCost) the flows share
// the departures by cost, not by frames: a flow of 100-byte frames sends
// ten in the time a flow of 1000-byte frames sends one, its first behind
// the frame of the current round, and frames of one cost are still served
// in rounds.
func TestEnqueueFlowCostShares(t *testing.T) {
	for _, tc := range []struct {
		desc string
		in   []int // cost of each frame enqueued, in order: 1000 is flow A, anything else flow B
		want string
	}{
		{desc: "one size: rounds", in: []int{1000, 1000, 1000, 1000, 1000, 1000}, want: "A0 A1 A2 A3 A4 A5"},
		{desc: "small backlog goes before the next large frame",
			in:   []int{1000, 1000, 1000, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100},
			want: "A0 B0 B1 B2 B3 B4 B5 B6 B7 B8 B9 A1 B10 B11 A2"},
		{desc: "like costs alternate", in: []int{1000, 1000, 1001, 1001}, want: "A0 B0 A1 B1"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := testConfig()
			cfg.QueueLen = 16
			m, err := NewOf[flowFrame](cfg, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			seq := map[uint64]int{}
			for _, c := range tc.in {
				fl := uint64(0)
				if c != 1000 {
					fl = 1
				}
				if err := m.EnqueueFlowCost(t0, flowFrame{flow: fl, seq: seq[fl]}, fl, c); err != nil {
					t.Fatal(err)
				}
				seq[fl]++
			}
			if got := drain(t, m, t0); got != tc.want {
				t.Errorf("sent %s, want %s", got, tc.want)
			}
		})
	}
}

// TestQueuedThroughABurst: a data frame on air stays queued for its flow
// (Queued) when an Ack follows it in the burst (Follow takes an urgent
// frame): the placeholder moved onto the Ack's place and took that place's
// stale flow, so Queued said no for the flow on air.
func TestQueuedThroughABurst(t *testing.T) {
	m, err := NewOf[flowFrame](testConfig(), rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Second)
	if err := m.EnqueueFlow(now, flowFrame{flow: 1}, 1); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Poll(now.Add(time.Second)); !ok {
		t.Fatal("data frame not sent")
	}
	if err := m.EnqueueFront(now, flowFrame{tag: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Follow(now, nil); !ok {
		t.Fatal("the Ack did not follow")
	}
	if !m.Queued(1) {
		t.Error("flow 1's frame is on air, Queued says no")
	}
	if m.Queued(0) {
		t.Error("nothing of flow 0 is queued, Queued says yes")
	}
}

// TestRemoveData: RemoveData takes out the waiting data frames that match,
// hands each to gone, and leaves the frame on air, the urgent frames and
// the other data frames where they were, each flow in its order; frames
// enqueued after it take their places in the rounds as before; it
// allocates nothing.
func TestRemoveData(t *testing.T) {
	cfg := testConfig()
	cfg.QueueLen = 10
	m, err := NewOf[flowFrame](cfg, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	enq := func(fl uint64, seq int) {
		t.Helper()
		if err := m.EnqueueFlow(now, flowFrame{flow: fl, seq: seq}, fl); err != nil {
			t.Fatal(err)
		}
	}
	// A0 goes on air; then A1 A2 A3, B0 B1, an urgent frame.
	enq(0, 0)
	now = now.Add(time.Second)
	f, ok := m.Poll(now)
	if !ok || f.String() != "A0" {
		t.Fatalf("on air %v %v, want A0", f, ok)
	}
	for i := 1; i <= 3; i++ {
		enq(0, i)
	}
	enq(1, 0)
	enq(1, 1)
	if err := m.EnqueueFront(now, flowFrame{tag: "a"}); err != nil {
		t.Fatal(err)
	}
	var gone []string
	match := func(f flowFrame) bool { return f.tag == "a" || f.flow == 0 || f.seq == 1 }
	drop := func(f flowFrame) { gone = append(gone, f.String()) }
	// A0 (on air) and a (urgent) match too, and stay.
	if n := m.RemoveData(match, drop); n != 4 || strings.Join(gone, " ") != "A1 B1 A2 A3" {
		t.Fatalf("removed %d: %v; want 4 in queue order: A1 B1 A2 A3", n, gone)
	}
	if m.Len() != 3 || m.Room() != 7 {
		t.Fatalf("len %d room %d after removal, want 3 and 7", m.Len(), m.Room())
	}
	if n := m.RemoveData(func(flowFrame) bool { return false }, drop); n != 0 {
		t.Fatalf("removed %d matching nothing", n)
	}
	if a := testing.AllocsPerRun(10, func() { m.RemoveData(func(f flowFrame) bool { return f.seq == 9 }, drop) }); a != 0 {
		t.Errorf("RemoveData allocates %v times", a)
	}
	// AnyData sees the data frames waiting (B0), not the one on air (A0)
	// nor the urgent one (a).
	for _, tc := range []struct {
		name  string
		match func(flowFrame) bool
		want  bool
	}{
		{"waiting", func(f flowFrame) bool { return f.flow == 1 && f.seq == 0 }, true},
		{"on air", func(f flowFrame) bool { return f.flow == 0 }, false},
		{"urgent", func(f flowFrame) bool { return f.tag == "a" }, false},
	} {
		if got := m.AnyData(tc.match); got != tc.want {
			t.Errorf("AnyData(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
	m.TxDone(now)
	enq(0, 4)
	enq(2, 0)
	enq(1, 2)
	if got, want := drain(t, m, now), "a B0 A4 C0 B2"; got != want {
		t.Errorf("sent %s, want %s", got, want)
	}
}
