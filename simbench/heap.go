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

// setAt is set with the time in ns since epoch.
func (t *timers) setAt(s int, at int64) {
	t.at[s] = at
	if i := t.pos[s]; i >= 0 {
		t.up(i)
		t.down(t.pos[s])
		return
	}
	t.heap = append(t.heap, s)
	t.pos[s] = len(t.heap) - 1
	t.up(len(t.heap) - 1)
}

// deadlines holds at most one deadline per slot, as timers does, for the
// MACs of a csma run: every carrier change on a broadcast channel disarms
// or rearms nearly all of them at once, and the earliest is asked for only
// a few times in between. So a slot is an array entry, set and cleared in
// O(1), and the earliest is found by a scan when the one known is gone.
// Ties go to the lowest slot, as in timers.
type deadlines struct {
	at    []int64 // ns since epoch; unarmed: never
	first int     // the earliest armed slot, or -1 for none, if known
	known bool
}

const never = int64(^uint64(0) >> 1)

func newDeadlines(n int) *deadlines {
	d := &deadlines{at: make([]int64, n), first: -1, known: true}
	for i := range d.at {
		d.at[i] = never
	}
	return d
}

// set arms slot s for at.
func (d *deadlines) set(s int, at int64) {
	old := d.at[s]
	d.at[s] = at
	switch {
	case !d.known:
	case d.first == s:
		d.known = at <= old
	case d.first < 0 || at < d.at[d.first] || at == d.at[d.first] && s < d.first:
		d.first = s
	}
}

// clear disarms slot s.
func (d *deadlines) clear(s int) {
	d.at[s] = never
	if d.first == s {
		d.known = false
	}
}

// peek returns the earliest armed slot and its time.
func (d *deadlines) peek() (int, int64, bool) {
	if !d.known {
		d.first = -1
		best := never
		for s, at := range d.at {
			if at < best {
				d.first, best = s, at
			}
		}
		d.known = true
	}
	if d.first < 0 {
		return 0, 0, false
	}
	return d.first, d.at[d.first], true
}
