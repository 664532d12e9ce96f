package simbench

import "time"

// timers is an indexed min-heap of at most one deadline per slot (a node's
// attempt timer, its MAC deadline, its next arrival). Setting a slot that is
// already armed moves it; ties fire in slot order, so runs are deterministic.
type timers struct {
	at    []int64 // ns since epoch: cheaper to compare than time.Time
	pos   []int   // index in heap, or -1
	heap  []int   // slots
	epoch time.Time
}

func newTimers(n int, epoch time.Time) *timers {
	t := &timers{at: make([]int64, n), pos: make([]int, n), heap: make([]int, 0, n), epoch: epoch}
	for i := range t.pos {
		t.pos[i] = -1
	}
	return t
}

func (t *timers) less(i, j int) bool {
	a, b := t.heap[i], t.heap[j]
	if t.at[a] != t.at[b] {
		return t.at[a] < t.at[b]
	}
	return a < b
}

func (t *timers) swap(i, j int) {
	t.heap[i], t.heap[j] = t.heap[j], t.heap[i]
	t.pos[t.heap[i]] = i
	t.pos[t.heap[j]] = j
}

func (t *timers) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.less(i, p) {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *timers) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(t.heap) {
			return
		}
		c := l
		if r := l + 1; r < len(t.heap) && t.less(r, l) {
			c = r
		}
		if !t.less(c, i) {
			return
		}
		t.swap(i, c)
		i = c
	}
}

// set arms slot s for at.
func (t *timers) set(s int, at time.Time) {
	t.at[s] = int64(at.Sub(t.epoch))
	if i := t.pos[s]; i >= 0 {
		t.up(i)
		t.down(t.pos[s])
		return
	}
	t.heap = append(t.heap, s)
	t.pos[s] = len(t.heap) - 1
	t.up(len(t.heap) - 1)
}

// clear disarms slot s.
func (t *timers) clear(s int) {
	i := t.pos[s]
	if i < 0 {
		return
	}
	last := len(t.heap) - 1
	t.swap(i, last)
	t.heap = t.heap[:last]
	t.pos[s] = -1
	if i < last {
		moved := t.heap[i]
		t.up(i)
		t.down(t.pos[moved])
	}
}

// peek returns the earliest armed slot.
func (t *timers) peek() (int, time.Time, bool) {
	if len(t.heap) == 0 {
		return 0, time.Time{}, false
	}
	s := t.heap[0]
	return s, t.epoch.Add(time.Duration(t.at[s])), true
}

// peekAt is peek with the time in ns since epoch.
func (t *timers) peekAt() (int, int64, bool) {
	if len(t.heap) == 0 {
		return 0, 0, false
	}
	s := t.heap[0]
	return s, t.at[s], true
}
