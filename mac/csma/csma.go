// Package csma decides when a queued frame goes on air: p-persistent CSMA
// with a slotted backoff that only counts while the channel is idle, and a
// contention window that adapts to the channel. By default (Config.IdleTarget
// > 0, as ConfigFor sets it) the window holds the mean number of idle slots
// between transmissions near an optimum (Idle Sense); otherwise it grows in
// doublings with the number of other busy senders the node has heard. The
// slot and IFS follow the propagation delay (ConfigFor).
//
// The package is sans-I/O. Every method takes the current time; the MAC never
// reads a clock, sleeps or starts a goroutine. The daemon drives it in real
// time and the simulator in virtual time, and for a given rand seed and input
// sequence it makes the same decisions. A MAC is not safe for concurrent use:
// one goroutine owns it. docs/mac.md describes the state machine.
//
// The driver's loop:
//
//	feed inputs:     Enqueue, Carrier, TxDone
//	after each input, and whenever Deadline passes:
//	    if frame, ok := m.Poll(now); ok { transmit frame; later m.TxDone(t) }
package csma

import (
	"errors"
	"math"
	"math/rand/v2"
	"time"
)

// ErrQueueFull is returned by Enqueue when Room() == 0. The caller decides
// what gives: drop the new frame, or call DropOldest and enqueue again.
var ErrQueueFull = errors.New("csma: queue full")

// Stats counts what a MAC has done since New. All counters only grow.
type Stats struct {
	Enqueued    uint64 // frames accepted by Enqueue
	Rejected    uint64 // Enqueue calls refused with ErrQueueFull
	Transmitted uint64 // frames handed out by Poll
	Dropped     uint64 // frames removed by DropOldest (RemoveData is not counted here: its caller counts)
	Deferrals   uint64 // times the channel was found busy while a frame waited
	Backoffs    uint64 // backoff slots counted down (including persistence slots)
	Persisted   uint64 // slots waited because the p-draw said "not now"
	CWMaxHits   uint64 // doublings of the contention window capped at CWMax
	Urgent      uint64 // frames accepted by EnqueueFront (sent without IFS or backoff)
	Reserved    uint64 // busy periods that began inside a reservation (not deferrals)
	Burst       uint64 // data frames sent as the continuation of a burst
	// BusyTime is the total time the carrier was sensed busy, for busy
	// periods that have ended (the MAC learns a period's length at its end).
	// The node's own transmissions are not included.
	BusyTime time.Duration
}

// MAC is the channel access of a node whose queue holds bare frames.
type MAC = MACOf[[]byte]

// MACOf is one node's channel access: a bounded queue of elements of type T
// (a frame and whatever its driver wants back with it: the link engine
// queues a frame with its metadata, so nothing needs looking up when the
// frame leaves) and the CSMA state that decides when its head goes on air.
// The queue is a FIFO per flow, the flows served in rounds (EnqueueFlow);
// frames queued with Enqueue are one flow, a plain FIFO. The MAC never
// looks inside an element. Create it with New or NewOf.
type MACOf[T any] struct {
	cfg Config
	rng *rand.Rand

	// Ring buffer of frames. While onAir, q[head] is the zero T (the frame
	// belongs to the caller) but still counted in n. flow[i], tag[i] and
	// fin[i] are the flow key, the start tag and the finish tag (start
	// plus the frame's cost) of the data frame at q[i] (EnqueueFlowCost);
	// round is the start tag of the last data frame sent.
	q     []T
	flow  []uint64
	tag   []uint64
	fin   []uint64
	round uint64
	head  int
	n     int
	onAir bool

	urgent      int       // frames from EnqueueFront waiting at the head (after the one on air)
	reserved    time.Time // Reserve: no data frame before this
	unobserved  time.Time // Unobserved: a carrier before this leaves no gap for the window, a later one the gap from it
	unobsSet    bool      // Unobserved was called
	reservedSet bool      // Reserve was called: false, reserved is the zero time
	airUrgent   bool      // the frame on air came from EnqueueFront
	busy        bool      // carrier sensed busy (never true while onAir)
	airBusy     bool      // while onAir: the carrier as last reported, applied at TxDone
	airOn       time.Time // while onAir: when that carrier came on
	airCame     time.Time // while onAir: when another carrier first came on, if airCameSet (it may have gone again)
	airCameSet  bool
	busySince   time.Time // start of the current busy period
	idleSince   time.Time // end of the last busy period or own transmission
	armed       time.Time // the countdown counts from no earlier than this
	armedSet    bool      // armed was set (by draw or Poll): false, it is the zero time
	exact       bool      // start: idleSince is not before the zero time, IFS is under 2^61 ns
	slots       int       // backoff slots left before the p-draw
	cw          int       // contention window, in slots
	heard       int       // deferrals since the last own transmission
	load        float64   // smoothed deferrals per own transmission: other active senders
	others      int       // Contenders: other nodes sending now (-1: unknown, use load)
	loneWait    int       // contentions to win before others == 0 means alone (alone, Contenders)

	// The adaptive window (cfg.IdleTarget > 0), docs/mac.md.
	align     time.Duration    // added to idleSince: the others hear the own frame end this much later
	cwf       float64          // the window, in slots
	gaps      [idleBatch]int64 // the last idle gaps observed, in slots (a ring)
	gapOwn    [idleBatch]bool  // whether the transmission after each was the node's own
	gapSum    int64            // the sum of gaps
	gapOwnN   int              // the number of gapOwn that are true
	stormSum  int64            // gapSum below this: the mean is under idleStorm·IdleTarget (sumBelow)
	idleSum   int64            // gapSum below this: the mean is under IdleTarget
	obsN      int              // gaps in the ring, up to idleBatch
	obsAt     int              // where the next gap goes in the ring
	burstLeft int              // data frames still allowed in the current burst
	burstNext bool             // the next data frame goes at once (a burst goes on)
	turnHit   bool             // another carrier came during a transmission of the current turn
	turnDone  bool             // the last turn ended and no other carrier came during it (draw)

	stats Stats
}

// New returns a MAC with an empty queue on a channel idle since long ago.
// rng drives every random choice (backoff draws, persistence), so a fixed
// seed gives reproducible runs; the MAC is its only user from now on.
func New(cfg Config, rng *rand.Rand) (*MAC, error) { return NewOf[[]byte](cfg, rng) }

// NewOf is New for a queue of elements of type T.
func NewOf[T any](cfg Config, rng *rand.Rand) (*MACOf[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rng == nil {
		return nil, errors.New("csma: nil rand source")
	}
	m := &MACOf[T]{
		cfg:    cfg,
		rng:    rng,
		q:      make([]T, cfg.QueueLen),
		flow:   make([]uint64, cfg.QueueLen),
		tag:    make([]uint64, cfg.QueueLen),
		fin:    make([]uint64, cfg.QueueLen),
		cw:     cfg.CWMin,
		others: -1,
	}
	m.setIdle(time.Time{}, 0)
	if cfg.IdleTarget > 0 {
		m.setWindow(m.twoSenders())
		m.stormSum = sumBelow(idleStorm * cfg.IdleTarget)
		m.idleSum = sumBelow(cfg.IdleTarget)
	}
	return m, nil
}

// Enqueue appends frame to the queue. From now on the MAC owns frame until
// Poll or DropOldest hands it back. It returns ErrQueueFull when Room() == 0.
// A frame that arrives at an empty queue draws a backoff; if the channel is
// busy at that moment this counts as a deferral first. Enqueue is
// EnqueueFlow with flow 0: a caller that never gives a flow gets a FIFO.
func (m *MACOf[T]) Enqueue(now time.Time, frame T) error {
	return m.EnqueueFlow(now, frame, 0)
}

// EnqueueFlow queues frame as a data frame of the given flow (any key the
// caller derives from the frame: the link engine hashes addresses and
// ports). The data frames leave in rounds, one frame of each flow per
// round, as in deficit round robin with a quantum of one frame (start-time
// fair queueing with frames of one size): a frame of a flow with nothing
// waiting joins the round in progress, the round of the last data frame
// sent, and so waits behind at most one frame of each other flow, not
// behind a greedy flow's whole backlog; a frame of a flow with frames
// waiting joins the round after its flow's last. Frames of one flow keep
// their order; nothing goes ahead of the frame on air (or a burst's frames
// taken by Follow) or of the urgent frames (EnqueueFront). The countdown in
// progress is the MAC's, not a frame's: a frame put ahead of the one that
// was counting down goes when the countdown runs out. Ownership and
// ErrQueueFull are as for Enqueue. EnqueueFlow is EnqueueFlowCost with a
// cost of 1.
func (m *MACOf[T]) EnqueueFlow(now time.Time, frame T, flow uint64) error {
	return m.EnqueueFlowCost(now, frame, flow, 1)
}

// EnqueueFlowCost is EnqueueFlow for frames of different costs (the link
// engine gives each frame's bytes on air): start-time fair queueing
// (Goyal, Vin and Cheng, SIGCOMM 1996), the flows sharing the queue's
// departures by cost, as deficit round robin does by bytes. A frame starts
// where its flow's previous frame finished (start plus cost), or at the
// start of the last data frame sent if its flow had nothing waiting, and
// the frames leave in order of their starts. A flow of small frames thus
// sends several in the time a flow of large ones sends one: a sparse
// flow's backlog of 64-byte datagrams is not served one per greedy frame.
// A cost below 1 counts as 1. Frames queued with one caller's costs should
// all have them (EnqueueFlow's frames cost 1).
func (m *MACOf[T]) EnqueueFlowCost(now time.Time, frame T, flow uint64, cost int) error {
	if m.n == len(m.q) {
		m.stats.Rejected++
		return ErrQueueFull
	}
	// The data frames are in the order of their starts; the queue is
	// short (QueueLen), so the flow's last frame (the data frame on air
	// included) is looked up each time.
	first := m.offset() + m.urgent
	tag := m.round
	for i, j := first, m.at(first); i < m.n; i++ {
		if m.flow[j] == flow {
			tag = max(tag, m.fin[j])
		}
		if j++; j == len(m.q) {
			j = 0
		}
	}
	if m.onAir && !m.airUrgent && m.flow[m.head] == flow {
		tag = max(tag, m.fin[m.head])
	}
	pos := m.n
	for pos > first && m.tag[m.at(pos-1)] > tag {
		pos--
	}
	// Shift the data frames from pos on one place back.
	for i := m.n - 1; i >= pos; i-- {
		j, k := m.at(i+1), m.at(i)
		m.q[j], m.flow[j], m.tag[j], m.fin[j] = m.q[k], m.flow[k], m.tag[k], m.fin[k]
	}
	j := m.at(pos)
	m.q[j], m.flow[j], m.tag[j], m.fin[j] = frame, flow, tag, tag+uint64(max(cost, 1))
	m.n++
	m.stats.Enqueued++
	// The first data frame waiting draws its backoff now, unless a data
	// frame is on air (its TxDone draws for the next). Urgent frames in
	// front of it do not matter: they go without backoff and leave its
	// countdown as it is.
	if m.n-m.urgent-m.offset() == 1 && !(m.onAir && !m.airUrgent) {
		if m.busy {
			m.deferral()
		}
		m.draw(now)
	}
	return nil
}

// Queued reports whether a data frame of flow waits in the queue or is on
// air (EnqueueFlow).
func (m *MACOf[T]) Queued(flow uint64) bool {
	if m.onAir && !m.airUrgent && m.flow[m.head] == flow {
		return true
	}
	for i := m.offset() + m.urgent; i < m.n; i++ {
		if m.flow[m.at(i)] == flow {
			return true
		}
	}
	return false
}

// at is the index in the ring of the frame i places from the head, for i
// in 0..len(m.q) (a modulo without the division).
func (m *MACOf[T]) at(i int) int {
	if j := m.head + i; j < len(m.q) {
		return j
	}
	return m.head + i - len(m.q)
}

// EnqueueFront puts frame at the head of the queue, behind only the frame on
// air and other urgent frames, and sends it as soon as the channel is idle:
// no IFS, no backoff, no persistence draw. It is for link acknowledgements,
// which answer the frame just received while every other node still waits
// out its IFS, so they neither wait behind data nor collide with the next
// data frame. An urgent frame does not change the contention estimate, and
// the data frame behind it keeps its countdown (resumed after IFS with the
// slots it had left). Ownership and ErrQueueFull are as for Enqueue.
func (m *MACOf[T]) EnqueueFront(now time.Time, frame T) error {
	if m.n == len(m.q) {
		m.stats.Rejected++
		return ErrQueueFull
	}
	// Urgent frames sit at positions first .. first+urgent-1, in order.
	first := m.head
	if m.onAir {
		first = (m.head + 1) % len(m.q)
	}
	pos := (first + m.urgent) % len(m.q)
	// Shift the data frames from pos on one place back.
	for i := m.n - 1; i >= m.offset()+m.urgent; i-- {
		j, k := (m.head+i+1)%len(m.q), (m.head+i)%len(m.q)
		m.q[j], m.flow[j], m.tag[j], m.fin[j] = m.q[k], m.flow[k], m.tag[k], m.fin[k]
	}
	m.q[pos] = frame
	m.n++
	m.urgent++
	m.stats.Enqueued++
	m.stats.Urgent++
	return nil
}

// ReplaceUrgent puts frame in the place of the first urgent frame waiting
// (from EnqueueFront, not the one on air) for which match reports true, and
// returns the frame it replaced, which belongs to the caller again. It
// returns false, and keeps frame out of the queue, when none matches. The
// replacement keeps the old frame's place and sends as urgently; counters
// and backoff state do not change. It is for a newer acknowledgement that
// says all an older one waiting still would.
func (m *MACOf[T]) ReplaceUrgent(match func(T) bool, frame T) (T, bool) {
	for i := m.offset(); i < m.offset()+m.urgent; i++ {
		j := (m.head + i) % len(m.q)
		if match(m.q[j]) {
			old := m.q[j]
			m.q[j] = frame
			return old, true
		}
	}
	var zero T
	return zero, false
}

// offset is the index of the first frame not on air.
func (m *MACOf[T]) offset() int {
	if m.onAir {
		return 1
	}
	return 0
}

// DropOldest removes and returns the data frame at the head of the data
// frames, the next to go (not the one on air, not an urgent one), for a
// drop-head policy when the queue is full: with a single flow the oldest,
// with several the first of the current round (EnqueueFlow). It returns
// false when no data frame waits. The frame on air is never returned: it
// belongs to the caller.
func (m *MACOf[T]) DropOldest() (T, bool) {
	i := m.offset() + m.urgent // the oldest data frame
	if m.n <= i {
		var zero T
		return zero, false
	}
	f := m.q[(m.head+i)%len(m.q)]
	m.round = m.tag[(m.head+i)%len(m.q)]
	// Close the gap: move the frames in front of it (the one on air and the
	// urgent ones) one place back. The backoff state stays with the MAC.
	for j := i; j > 0; j-- {
		a, b := (m.head+j)%len(m.q), (m.head+j-1)%len(m.q)
		m.q[a], m.flow[a], m.tag[a], m.fin[a] = m.q[b], m.flow[b], m.tag[b], m.fin[b]
	}
	m.q[m.head] = *new(T)
	m.head = (m.head + 1) % len(m.q)
	m.n--
	m.stats.Dropped++
	if m.n-m.urgent-m.offset() == 0 {
		m.burstNext = false
	}
	return f, true
}

// RemoveData takes out of the queue every waiting data frame (not the
// one on air or a burst's frames taken by Follow, not an urgent one) for
// which match reports true, hands each to gone (it belongs to the caller
// again) and returns how many it took. The other frames keep their order,
// flows and tags; the countdown in progress is the MAC's and goes on for
// the frame now first. It is for frames that became useless while they
// waited: the link engine takes out the retransmissions of a packet its
// receiver has acknowledged meanwhile (docs/link-arq.md, "A sender that
// restarts"). It walks the queue once (QueueLen frames at most) and
// allocates nothing; match and gone must not call back into the MAC.
func (m *MACOf[T]) RemoveData(match func(T) bool, gone func(T)) int {
	first := m.offset() + m.urgent
	w := first // where the next kept frame goes
	for i := first; i < m.n; i++ {
		j := m.at(i)
		if match(m.q[j]) {
			gone(m.q[j])
			continue
		}
		if w != i {
			k := m.at(w)
			m.q[k], m.flow[k], m.tag[k], m.fin[k] = m.q[j], m.flow[j], m.tag[j], m.fin[j]
		}
		w++
	}
	removed := m.n - w
	for i := w; i < m.n; i++ {
		m.q[m.at(i)] = *new(T)
	}
	m.n = w
	if removed > 0 && m.n-m.urgent-m.offset() == 0 {
		m.burstNext = false
	}
	return removed
}

// AnyData reports whether match holds for a data frame waiting in the
// queue (not the one on air, nor an urgent frame). It walks the queue once
// and allocates nothing; match must not call back into the MAC.
func (m *MACOf[T]) AnyData(match func(T) bool) bool {
	for i := m.offset() + m.urgent; i < m.n; i++ {
		if match(m.q[m.at(i)]) {
			return true
		}
	}
	return false
}

// Room is the number of frames Enqueue still accepts.
func (m *MACOf[T]) Room() int { return len(m.q) - m.n }

// Len is the number of frames held, including the one on air.
func (m *MACOf[T]) Len() int { return m.n }

// Transmitting reports whether a frame returned by Poll awaits its TxDone.
func (m *MACOf[T]) Transmitting() bool { return m.onAir }

// Stats returns a copy of the counters.
func (m *MACOf[T]) Stats() Stats { return m.stats }

// Carrier reports the modem's carrier sense. Repeating the current state is
// a no-op. While a frame is on air the report is recorded and takes effect
// at TxDone: the modem reports the channel at all times, including during
// the node's own transmission, and does not repeat a CarrierOn that came
// before its TxDone (phy.go, the modem contract), so a carrier still on at
// TxDone holds the next frame back until it drops. A carrier that came and
// went while the node transmitted leaves no trace.
//
// When the channel turns busy while a frame waits, this is a deferral: the
// countdown freezes with the slots it has left, and the deferral counts
// towards the contention estimate that sets the next window. Once the carrier
// has dropped and the channel has been idle for IFS, the countdown resumes
// where it stopped. docs/mac.md explains the rule and what it was measured
// against.
func (m *MACOf[T]) Carrier(now time.Time, busy bool) {
	if m.onAir {
		if busy && !m.airBusy {
			m.airOn = now
		}
		if busy && !m.airCameSet {
			m.airCame, m.airCameSet = now, true
		}
		m.airBusy = busy
		return
	}
	if busy == m.busy {
		return
	}
	m.busy = busy
	if !busy {
		m.stats.BusyTime += now.Sub(m.busySince)
		m.setIdle(now, 0)
		return
	}
	m.busySince = now
	since := now.Sub(m.idleSince)
	unheard := m.observeUnheard(now) // (Unobserved) observed here, or not at all
	// The transmission began PropDelay before its carrier came: the slots
	// since then were not idle.
	if off, armed, ok := m.start(); ok && !armed && near(since) {
		// The countdown counts from idleSince + align + IFS, where
		// observe's gap begins: the idle time before the transmission
		// is both, in one division.
		slot := m.cfg.SlotTime
		idle := since - off - m.cfg.PropDelay
		var q, r time.Duration
		if idle > 0 {
			q = idle / slot
			r = idle - q*slot
		}
		if since >= off && !unheard { // observe's gap is not negative
			n := int64(q) // the gap rounded to slots, as observe does
			if idle > 0 && r >= slot-slot/2 {
				n++
			}
			m.observeSlots(min(n, maxIdleGap), false)
		}
		if m.n == m.urgent {
			return // no data frame counts down (urgent frames do not)
		}
		if idle > 0 {
			m.countDownSlots(int(q))
		}
	} else {
		if !unheard {
			m.observe(now, since, false)
		}
		if m.n == m.urgent {
			return
		}
		d := since - off // now − countStart()
		if armed {
			d = now.Sub(m.armed)
		}
		if ok && near(d) && near(since) {
			if d > m.cfg.PropDelay {
				m.countDown(d - m.cfg.PropDelay)
			}
		} else if start := m.countStart().Add(m.cfg.PropDelay); now.After(start) {
			m.countDown(now.Sub(start))
		}
	}
	reply := m.beforeReserved(now)
	if m.burstNext && !reply {
		// Another's signal ends the burst: contend again. The answer
		// the channel was reserved for (the Ack to the burst's last
		// frame) does not: the burst goes on after it.
		m.burstNext = false
		m.burstLeft = 0
		m.turnDone = false // another sender broke into the turn
		m.draw(now)
	}
	if reply {
		// The answer the channel was reserved for (an Ack): not a
		// competing sender.
		m.stats.Reserved++
		return
	}
	m.deferral()
}

// Unobserved says that the channel is not idle for the adaptive window
// until end, though we hear nothing: the link keeps the channel for the Ack
// to a poll to a node it does not hear, and end is when that Ack ends as
// the configured (or measured) delay reckons it. A carrier that begins
// before end is not a contention's outcome (the poller's next frame of a
// burst follows the Ack at once) and leaves no gap to observe; one that
// begins later leaves the gap from end, as at a node that hears the Ack's
// carrier end. Measured from the poll's end, the gaps held the unheard
// Ack: none (under IFS) before a frame that went on at once, which widened
// a neighbour's window to 100-180 slots, and a slot or more before one
// that contended, which narrowed it. The countdown is not affected.
func (m *MACOf[T]) Unobserved(end time.Time) {
	if !m.unobsSet || end.After(m.unobserved) {
		m.unobserved, m.unobsSet = end, true
	}
}

// observeUnheard observes, for the adaptive window, a carrier beginning at
// now while the channel was idle since before the time Unobserved set: no
// gap before that time, the gap from it after. It reports whether it took
// the observation (then the caller observes nothing).
func (m *MACOf[T]) observeUnheard(now time.Time) bool {
	if !m.unobsSet || !m.unobserved.After(m.idleSince) {
		return false
	}
	if !now.Before(m.unobserved) {
		m.observeGap(now.Sub(m.unobserved)-m.cfg.IFS, false)
	}
	return true
}

// Reserve keeps the channel for an expected answer until the given time: no
// data frame goes before it, and a carrier that starts before it is the
// answer, not a competing sender, so it does not widen the contention
// window. The link layer reserves the time an Ack needs after each frame
// that asks for one, and ends the reservation (Reserve(now, now)) when the
// Ack has come. Urgent frames ignore the reservation.
func (m *MACOf[T]) Reserve(now, until time.Time) {
	m.reserved, m.reservedSet = until, true
}

// Contenders tells the MAC how many other nodes are sending now, as the
// caller knows them (the link layer counts the distinct senders it has
// decoded recently). From then on the window after each transmission is
// sized from n instead of the MAC's own deferral estimate: every node on a
// shared channel hears the same senders, so their windows agree, whereas
// the deferrals a node counts per frame of its own grow as it falls behind
// and would widen its window further (docs/mac.md). A negative n goes back
// to the deferral estimate. Takes effect at the next TxDone.
//
// With the adaptive window (IdleTarget > 0) only n = 0 matters: the caller
// heard nobody else sending, so the node draws its backoffs from
// [0, 2·CWMin) instead of the window and stops tuning the window (its own
// short gaps would only widen it). The idle slots it leaves, under two on
// average, still let a newcomer's countdown run out. Once n is not 0 again
// the window restarts from the two-sender value, where a newcomer's starts,
// and follows the idle slots from there (docs/mac.md). A node that learns
// of another sender this way while its data frame counts down (and it
// knew of none before: n was 0 or not given) cuts its count to a draw from
// [0, 2·CWMin): that sender may be alone with its small window, leaving
// under two idle slots per frame, and would otherwise keep the channel for
// as many frames as the count has slots. Its first frame heard ends the
// other's small window.
//
// A node that had heard others (n > 0) and is then told n = 0 contends as
// before, window, tuning and Burst, for loneAfter more won contentions
// before it is alone: the caller stops counting a sender it has not heard
// for a while, and a sender that merely lost several contentions in a row
// would otherwise wait behind LoneBurst frames per contention with under
// two idle slots before each (docs/mac.md, "A winner alone too soon").
func (m *MACOf[T]) Contenders(n int) {
	n = max(n, -1)
	if m.cfg.IdleTarget > 0 && n > 0 && (m.others < 0 || m.alone()) {
		if m.others == 0 {
			m.setWindow(m.twoSenders())
			m.obsN, m.obsAt = 0, 0
		}
		if small := min(2*m.cfg.CWMin, m.cfg.CWMax); !m.onAir && m.n-m.urgent-m.offset() > 0 && m.slots >= small {
			m.slots = m.rng.IntN(small)
		}
	}
	switch {
	case n == 0 && m.others > 0:
		m.loneWait = loneAfter
	case n != 0:
		m.loneWait = 0
	}
	m.others = n
}

// MeasuredDelay tells the MAC a one-way propagation delay the link has
// measured (half an ARQ round trip less the airtimes and turnarounds in it).
// A delay longer than the configured one lengthens PropDelay, SlotTime and
// IFS by the difference, so that a daemon configured for radio on an
// acoustic channel does not keep a radio slot. A measurement never shortens
// them (a round trip also holds processing time), and one that jumps is
// taken a step at a time: each call at most doubles PropDelay (plus one
// slot). Delays outside 0..MaxPropDelay are clamped. It reports whether the
// timing changed, so that the caller can log it. Takes effect at once: a
// countdown in progress continues in the new slots.
func (m *MACOf[T]) MeasuredDelay(d time.Duration) bool {
	d = min(max(d, 0), MaxPropDelay)
	if d <= m.cfg.PropDelay {
		return false
	}
	d = min(d, 2*m.cfg.PropDelay+m.cfg.SlotTime)
	grow := d - m.cfg.PropDelay
	if m.cfg.SlotTime+grow > math.MaxInt64/(2*maxCW) {
		return false
	}
	m.cfg.PropDelay = d
	m.cfg.SlotTime += grow
	m.cfg.IFS += grow
	m.setIdle(m.idleSince, m.align)
	return true
}

// Config returns the configuration in use (MeasuredDelay may have changed
// its timing).
func (m *MACOf[T]) Config() Config { return m.cfg }

// TxDone reports that the frame from Poll has left the modem (or was lost
// with it). The next data frame draws its backoff, counted after IFS; a
// carrier reported on while the frame was on air, and not off since, then
// turns the channel busy (see Carrier). Without a frame on air it is a no-op.
func (m *MACOf[T]) TxDone(now time.Time) {
	if !m.onAir {
		return
	}
	m.onAir = false
	m.head = (m.head + 1) % len(m.q)
	m.n--
	m.busy = false
	align := time.Duration(0)
	if m.cfg.IdleTarget > 0 {
		// Count from when the others hear the end, so that every node's
		// slots line up. A lone sender pays this too: otherwise its slots
		// run ahead of a newcomer's by the delay, and with the delay over
		// half a slot the newcomer's frame would collide unseen with its
		// every one (a sender hears nothing while it transmits).
		align = m.cfg.PropDelay
	}
	m.setIdle(now, align)
	if m.airUrgent {
		// The data frame behind resumes its countdown after IFS, with the
		// slots it had left: an Ack sent in the middle of a backoff must
		// not cost the node its place (a node that acknowledges the other's
		// every frame would never get its own out).
		m.airUrgent = false
	} else {
		m.adapt()
		m.burstLeft--
		// A carrier noted while on air ends the burst, unless it came
		// on at the very end of our frame and inside the reservation:
		// the answer (an Ack) that a receiver at no distance began as
		// our frame ended, reported before our TxDone. One that came on
		// earlier is another sender's (with a propagation delay the
		// answer comes after TxDone: TestBenchLinkTwoSendersLateCarrier
		// took 80-120 retransmissions for Acks otherwise).
		answer := m.airBusy && !m.airOn.Before(now) && now.Before(m.reserved)
		if m.airCameSet && (m.airCame.Before(now) || !now.Before(m.reserved)) {
			// Another carrier came during the frame, even one that
			// went again (a collision of two frames of one length
			// ends at once), and it was not the answer the channel
			// is reserved for (as for the burst below): not a clean
			// turn (draw).
			m.turnHit = true
		}
		if m.burstLeft > 0 && m.n > m.urgent && (!m.airBusy || answer) {
			m.burstNext = true // the burst goes on: no IFS, no backoff
		} else {
			// The turn is over. The next backoff follows from how it
			// went (draw), whether it is drawn now or when the next
			// data frame comes (a burst often takes the whole queue).
			m.turnDone = !m.turnHit
			if m.n > 0 {
				m.burstLeft = 0
				m.draw(now)
			}
		}
	}
	// A carrier that began during the transmission and is still on: the
	// channel is busy from now on (the own frame's time is not busy time).
	if m.airBusy {
		m.airBusy = false
		m.Carrier(now, true)
	}
}

// Poll returns the head frame if it should go on air now; ownership passes
// to the caller, who hands it to the modem and calls TxDone when it is gone.
// Poll is safe to call at any time and calling it again with the same now
// returns nothing new. When the backoff has run out and the persistence draw
// fails, the MAC waits one more slot.
func (m *MACOf[T]) Poll(now time.Time) (T, bool) {
	var none T
	if m.onAir || m.n == 0 || m.busy {
		return none, false
	}
	if m.urgent > 0 {
		if now.Before(m.idleSince) {
			return none, false
		}
		m.observe(now, now.Sub(m.idleSince), true)
		// The data frame behind keeps its countdown: take off the slots
		// that have run, as a busy channel would.
		if start := m.countStart(); m.n > m.urgent && now.After(start) {
			m.countDown(now.Sub(start))
		}
		m.urgent--
		m.onAir, m.airUrgent, m.airBusy, m.airCameSet = true, true, false, false
		f := m.q[m.head]
		m.q[m.head] = *new(T)
		m.stats.Transmitted++
		return f, true
	}
	if m.burstNext {
		if now.Before(m.idleSince) || now.Before(m.reserved) {
			return none, false
		}
		m.burstNext = false
		m.stats.Burst++
		return m.send(now), true
	}
	d := m.decision()
	if now.Before(d) {
		return none, false
	}
	m.stats.Backoffs += uint64(m.slots)
	m.slots = 0
	if m.cfg.Persistence < 1 && m.rng.Float64() >= m.cfg.Persistence {
		// Not this slot. Count the next slot from the latest slot boundary
		// not after now, so that a late Poll makes one draw, not many.
		m.stats.Persisted++
		m.slots = 1
		late := now.Sub(d)
		m.armed, m.armedSet = d.Add(late-late%m.cfg.SlotTime), true
		return none, false
	}
	m.burstLeft = m.burstLen()
	m.turnHit = false
	if m.others == 0 && m.loneWait > 0 {
		m.loneWait--
	}
	return m.send(now), true
}

// EndBurst makes the data frame on air the last of its burst: once it is
// gone the next data frame contends (IFS and backoff) whatever Burst or
// LoneBurst allowed. The caller that shortens its turns with the number of
// senders it hears (link's turn budget, docs/mac.md) calls it after Poll
// gave the turn's last frame. Without a data frame on air it does nothing.
func (m *MACOf[T]) EndBurst() {
	if m.onAir && !m.airUrgent {
		m.burstLeft = min(m.burstLeft, 1)
	}
}

// loneAfter is the number of contentions a node that heard others sending
// must win after the caller says it hears nobody (Contenders(0)) before it
// takes a lone sender's window and bursts. One or two are enough for a
// node that lost a few in a row (its frozen count is small by then); four
// gave a receiver's TCP ACKs, which ride with its link Acks while the bulk
// sender is alone, three times the contention rounds of their own
// (link's TestAnswersRideWithAcks: 18 of 92 against 6).
const loneAfter = 2

// alone reports whether the adaptive window treats the node as the only
// sender: the caller said so (Contenders(0)) and, if it had heard others
// before, the node has since won loneAfter contentions.
func (m *MACOf[T]) alone() bool {
	return m.cfg.IdleTarget > 0 && m.others == 0 && m.loneWait == 0
}

// burstLen is the number of data frames a won contention sends: LoneBurst
// while the node hears nobody else (Contenders(0), adaptive window), else
// Burst, at least 1.
func (m *MACOf[T]) burstLen() int {
	if m.cfg.LoneBurst > 0 && m.alone() {
		return m.cfg.LoneBurst
	}
	return max(m.cfg.Burst, 1)
}

// send puts the head data frame on air.
func (m *MACOf[T]) send(now time.Time) T {
	m.observe(now, now.Sub(m.idleSince), true)
	m.onAir, m.airBusy, m.airCameSet = true, false, false
	m.turnDone = false
	f := m.q[m.head]
	m.q[m.head] = *new(T)
	m.round = m.tag[m.head]
	m.stats.Transmitted++
	return f
}

// Deadline returns when Poll must next be called if no other input arrives.
// It returns false when only an input can change anything: the queue is
// empty, a frame is on air (waiting for TxDone), or the carrier is busy
// (waiting for Carrier). After Poll(now) the deadline is later than now.
func (m *MACOf[T]) Deadline() (time.Time, bool) {
	if m.onAir || m.n == 0 || m.busy {
		return time.Time{}, false
	}
	if m.urgent > 0 {
		return m.idleSince, true
	}
	if m.burstNext {
		if m.reserved.After(m.idleSince) {
			return m.reserved, true
		}
		return m.idleSince, true
	}
	return m.decision(), true
}

// DeadlineSince is Deadline as a Duration since ref: d.Sub(ref), true for
// the d, true that Deadline returns, and 0, false for its false. It is for
// a driver that keeps its clock as a count since an epoch (the simulator
// asks every waiting MAC after every busy period), and takes a Sub where
// Deadline takes a time.Time sum. The same to the nanosecond while the
// times are within 2^61 ns (73 years) of each other and before 2157, where
// a time.Time sum drops the monotonic reading.
func (m *MACOf[T]) DeadlineSince(ref time.Time) (time.Duration, bool) {
	if m.onAir || m.n == 0 || m.busy {
		return 0, false
	}
	if m.urgent == 0 && !m.burstNext && !m.reservedSet {
		// decision, without the sum: idleSince + off + slots, or
		// armed + slots (see decision for the reservation).
		slots := time.Duration(m.slots) * m.cfg.SlotTime
		if off, armed, ok := m.start(); ok && slots < 1<<59 {
			base := m.idleSince
			if armed {
				base, off = m.armed, 0
			}
			if b := base.Sub(ref); near(b) {
				return b + off + slots, true
			}
		}
	}
	d, ok := m.Deadline()
	if !ok {
		return 0, false
	}
	return d.Sub(ref), true
}

// setIdle records that the channel is idle since t, for the countdown from
// align later (TxDone).
func (m *MACOf[T]) setIdle(t time.Time, align time.Duration) {
	m.idleSince, m.align = t, align
	m.exact = !beforeZero(t) && m.cfg.IFS < 1<<61
}

// zeroUnix is the zero time.Time's Unix time.
var zeroUnix = time.Time{}.Unix()

// beforeZero is t.Before(time.Time{}), without the call (Before is not
// inlined, Unix is; Unix overflows only 292 billion years from now).
func beforeZero(t time.Time) bool { return t.Unix() < zeroUnix }

// beforeReserved is now.Before(m.reserved), without a call while nothing
// was reserved (the simulator never reserves).
func (m *MACOf[T]) beforeReserved(now time.Time) bool {
	if !m.reservedSet {
		return beforeZero(now)
	}
	return now.Before(m.reserved)
}

// The MAC's times are the caller's time.Time values, but its hot paths
// (Carrier, Deadline) compute with Durations since idleSince: a Sub where a
// time.Time sum would take an Add and a comparison (the simulator calls them
// for every waiting node at every busy period). For times near each other
// the two are the same, to the nanosecond and in the same clock (both
// monotonic readings, or both wall clocks: t.Sub(u) and t.Before(u) choose
// alike). Where they may not be (a Sub that saturates: the zero time against
// a clock's reading), the paths fall back on the sums (countStart), so that
// the decisions are the same for every input (TestPinnedTraces).

// near reports whether d, a difference of two times, is small enough that
// it is exact (not saturated) and sums of it with the MAC's own durations
// (delays, IFS, align) cannot overflow: under 2^62 ns, 146 years.
func near(d time.Duration) bool { return d > -1<<62 && d < 1<<62 }

// start returns countStart() − idleSince, and whether countStart() is armed,
// without time.Time sums; ok is false where it cannot (times far apart).
func (m *MACOf[T]) start() (off time.Duration, armed, ok bool) {
	if !m.exact {
		return 0, false, false
	}
	off = m.align + m.cfg.IFS
	if !m.armedSet {
		// armed is the zero time, not after idleSince + off.
		return off, false, true
	}
	a := m.armed.Sub(m.idleSince)
	if !near(a) {
		return 0, false, false
	}
	if a > off { // armed.After(idleSince + off)
		return a, true, true
	}
	return off, false, true
}

// countStart is when the countdown (re)starts counting: the channel has been
// idle for IFS and the current backoff has been armed.
func (m *MACOf[T]) countStart() time.Time {
	s := m.idleSince.Add(m.align + m.cfg.IFS)
	if m.armed.After(s) {
		return m.armed
	}
	return s
}

// countDown takes off the slots counted down in d (> 0) of idle channel,
// and the countdown from now on counts from when the channel is next idle.
func (m *MACOf[T]) countDown(d time.Duration) {
	m.countDownSlots(int(d / m.cfg.SlotTime))
}

// countDownSlots is countDown of n whole slots.
func (m *MACOf[T]) countDownSlots(n int) {
	counted := min(n, m.slots)
	m.stats.Backoffs += uint64(counted)
	m.slots -= counted
	m.armed, m.armedSet = time.Time{}, false
}

// decision is when the countdown runs out, given an idle channel, and no
// earlier than the end of a reservation.
func (m *MACOf[T]) decision() time.Time {
	slots := time.Duration(m.slots) * m.cfg.SlotTime
	var d time.Time
	switch off, armed, ok := m.start(); {
	case !ok:
		d = m.countStart().Add(slots)
	case armed:
		d = m.armed.Add(slots)
	default: // idleSince.Add(off).Add(slots), in one sum
		d = m.idleSince.Add(off + slots)
	}
	if !m.reservedSet && m.exact {
		// d is not before idleSince, which is not before the zero
		// time, the reservation's.
		return d
	}
	if d.Before(m.reserved) {
		return m.reserved
	}
	return d
}

// draw starts a fresh backoff from [0, CW), counted from now at the earliest.
// After a turn during which no other carrier came (turnDone), with the
// adaptive window and Config.TurnFrame, the backoff is half the window, a
// draw's mean, within turnJitter slots, so that the nodes that have not
// had a turn since go first and the next turns come in order, as in
// CSMA/ECA (docs/mac.md, "Turns in order after a clean turn"). After a
// collision, and alone, it is drawn from the whole window.
func (m *MACOf[T]) draw(now time.Time) {
	cw := m.cw
	switch {
	case m.alone():
		cw = min(2*m.cfg.CWMin, m.cfg.CWMax) // alone (Contenders)
	case m.turnDone && m.ordered():
		j := min(turnJitter, cw)
		m.slots = max(cw/2-j/2, 0) + m.rng.IntN(j)
		m.armed, m.armedSet = now, true
		return
	}
	m.slots = m.rng.IntN(cw)
	m.armed, m.armedSet = now, true
}

// turnJitter is the width, in slots, of the range around half the window
// that a backoff after a clean turn is drawn from (draw). Two nodes that
// cannot hear each other's frames (hidden from each other, or a tie of two
// frames of one length that a half-duplex modem does not report) take
// every turn for clean; with a backoff of exactly half the window they
// collided at every turn (simbench's five hidden nodes: 3,620 collisions
// in 3,620 transmissions). With 4 they part at three turns in four; wider,
// more of the order is lost (ten nodes at a = 0.01: S 0.916 with none,
// 0.906 with 2, 0.885 with 4, 0.867 with 8, 0.856 drawing from the whole
// window).
const turnJitter = 4

// ordered reports whether a clean turn is followed by half the window
// rather than a draw (draw): the adaptive window is on and a collision
// is heard during the own frame, which needs the frame (Config.TurnFrame)
// at least twice as long as two delays and a slot, the latest a collider's
// carrier comes. With a longer delay two nodes whose frames collided could
// both take their turns for clean and collide again at every turn (at a =
// 1 the simulated channel's ten nodes delivered nothing).
func (m *MACOf[T]) ordered() bool {
	return m.cfg.IdleTarget > 0 && m.cfg.TurnFrame > 0 && 2*(2*m.cfg.PropDelay+m.cfg.SlotTime) <= m.cfg.TurnFrame
}

// Adaptive window constants (docs/mac.md).
const (
	// idleBatch is the number of transmissions over which the mean idle
	// gap is taken: the last idleBatch, at every transmission (a sliding
	// window, not batches one after another).
	idleBatch = 5
	// idleIncrease is the slots added to the window over idleBatch gaps
	// while the channel is idle less than the target (additive increase):
	// a fifth of it per gap.
	idleIncrease = 6
	// idleDecrease multiplies the window over idleBatch gaps while it is
	// idle more than the target (multiplicative decrease: windows that
	// differ converge): its fifth root per gap.
	idleDecrease = 0.9375
	// idleStorm: a mean gap under this fraction of the target doubles the
	// window over idleBatch gaps, so that a crowd that arrives at once is
	// absorbed in a few dozen gaps rather than hundreds.
	idleStorm = 0.25
)

// The steps of one gap: over idleBatch gaps they make idleIncrease,
// idleDecrease and a doubling.
var (
	gapIncrease = float64(idleIncrease) / idleBatch
	gapDecrease = math.Pow(idleDecrease, 1.0/idleBatch)
	gapStorm    = math.Pow(2, 1.0/idleBatch)
)

// twoSenders is the adaptive window for two senders, where it starts: a
// newcomer neither waits long nor collides much, and the rule takes it from
// there.
func (m *MACOf[T]) twoSenders() float64 {
	return min(max(4*(m.cfg.IdleTarget+1), float64(m.cfg.CWMin)), float64(m.cfg.CWMax))
}

func (m *MACOf[T]) setWindow(cw float64) {
	m.cwf = cw
	m.cw = int(math.Ceil(cw))
}

// maxIdleGap bounds the idle slots one gap adds to the adaptive window's
// mean (observe).
const maxIdleGap = 1 << 20

// observe records that a transmission began at now (own or another's),
// since = now − idleSince after the channel went idle, for the adaptive
// window. A busy period that starts within IFS of the last
// one's end continues it (an Ack, the next frame of a burst, a flickering
// carrier) and is not a new transmission. The idle slots before it count
// while the node has a data frame to send: a node that does not contend has
// nothing to tune. The window moves at every gap, from the mean of the last
// idleBatch gaps: two nodes that saw the same last gaps take the same step,
// whenever each began counting (docs/mac.md, "Why two windows drifted
// apart").
func (m *MACOf[T]) observe(now time.Time, since time.Duration, own bool) {
	if m.cfg.IdleTarget <= 0 {
		return
	}
	gap := since - m.align - m.cfg.IFS
	if !m.exact || !near(since) {
		gap = now.Sub(m.idleSince.Add(m.align)) - m.cfg.IFS
	}
	m.observeGap(gap, own)
}

// observeGap takes an idle gap (past IFS) before a transmission, our own or
// another's, for the adaptive window (observe, observeUnheard).
func (m *MACOf[T]) observeGap(gap time.Duration, own bool) {
	if gap < 0 {
		return
	}
	if !own {
		gap -= m.cfg.PropDelay // its carrier took that long to come
	}
	if !m.tuning() {
		return
	}
	// A gap counts at most maxIdleGap slots: longer is as idle as it
	// gets, and the first gap (from the zero time) must not overflow the
	// sum, which is an int64 so that 32-bit boards compute as 64-bit ones.
	// It is rounded to the nearest slot, not truncated: another's carrier
	// comes up to PropDelay sooner than the worst case taken off above, so
	// a truncated gap counted another's slots one short and its own ones
	// in full, and the node that sent more saw the longer gaps, kept the
	// narrower window and stayed ahead (Jain 0.98 for two senders to a
	// third over 10 minutes, TestEngineTwoSendersAdaptiveFair).
	m.observeSlots(int64(min((max(gap, 0)+m.cfg.SlotTime/2)/m.cfg.SlotTime, maxIdleGap)), own)
}

// tuning reports whether the adaptive window follows the gaps: it is on and
// the node contends (a data frame waits) and does not send alone
// (Contenders).
func (m *MACOf[T]) tuning() bool {
	return m.cfg.IdleTarget > 0 && m.n-m.urgent-m.offset() > 0 && !m.alone()
}

// observeSlots is observe's step of the window, with the gap in slots.
func (m *MACOf[T]) observeSlots(slots int64, own bool) {
	if !m.tuning() {
		return
	}
	m.gapSum += slots - m.gaps[m.obsAt]
	m.gaps[m.obsAt] = slots
	if own != m.gapOwn[m.obsAt] {
		m.gapOwn[m.obsAt] = own
		if own {
			m.gapOwnN++
		} else {
			m.gapOwnN--
		}
	}
	m.obsAt = (m.obsAt + 1) % idleBatch
	m.obsN = min(m.obsN+1, idleBatch)
	if m.obsN < idleBatch {
		return
	}
	// gapSum and gapOwnN are the whole ring's, which obsN = idleBatch
	// has filled anew since Contenders last emptied it.
	// The mean's comparisons with the targets, as nextWindow makes them,
	// in integers (sumBelow).
	storm := m.gapOwnN > 0 && m.gapSum < m.stormSum
	m.setWindow(windowStep(m.cwf, storm, m.gapSum < m.idleSum, m.cfg.CWMin, m.cfg.CWMax))
}

// nextWindow is the adaptive window rule: the window after one more gap,
// when the last idleBatch gaps averaged mean slots and sent says whether
// the node transmitted after one of them.
func nextWindow(cw, mean float64, sent bool, cfg Config) float64 {
	return windowStep(cw, sent && mean < idleStorm*cfg.IdleTarget, mean < cfg.IdleTarget, cfg.CWMin, cfg.CWMax)
}

// windowStep is nextWindow once the mean is compared: storm, the node sent
// and the mean is under idleStorm·IdleTarget; busy, it is under IdleTarget.
func windowStep(cw float64, storm, busy bool, cwMin, cwMax int) float64 {
	switch {
	case storm:
		cw *= gapStorm
	case busy:
		cw += gapIncrease
	default:
		cw *= gapDecrease
	}
	// min(max(cw, CWMin), CWMax), written out: the same for every cw
	// (a NaN stays one; the bounds are at least 1, so no signed zero),
	// without the builtins' handling of those.
	if lo := float64(cwMin); cw < lo {
		return lo
	}
	if hi := float64(cwMax); cw > hi {
		return hi
	}
	return cw
}

// sumBelow returns the least sum s of idleBatch gaps whose mean
// float64(s)/idleBatch is not below x (x in 0..1000, not NaN): the mean of
// a sum is below x exactly when the sum is below it. The mean grows with
// the sum (a sum is exact in a float64, and division rounds monotonically),
// so the sums below x are those under the one returned.
func sumBelow(x float64) int64 {
	s := max(int64(x*idleBatch), 0)
	for s > 0 && float64(s-1)/idleBatch >= x {
		s--
	}
	for float64(s)/idleBatch < x {
		s++
	}
	return s
}

// deferral records that the channel was found busy while a frame waited and
// doubles the contention window.
func (m *MACOf[T]) deferral() {
	m.stats.Deferrals++
	m.heard++
}

// adapt sets the window for the next backoff after a transmission. The
// number of deferrals between two of a node's own transmissions estimates
// how many other senders are busy (one frame each when shares are fair);
// the window is CWMin + CWPerSender·estimate, smoothed, rounded up to a
// doubling of CWMin as in binary exponential backoff and capped at CWMax. Waiting nodes keep
// their frozen counts, which only shrink, so a node that has just sent cannot
// keep the channel: shares stay fair in the short term.
// loadFloor is the smoothed load below which the others count as silent.
const loadFloor = 0.1

func (m *MACOf[T]) adapt() {
	m.load = 0.75*m.load + 0.25*float64(m.heard)
	m.heard = 0
	if m.load < loadFloor {
		m.load = 0 // the others have been silent for a while
	}
	if m.cfg.IdleTarget > 0 {
		return // the window follows the idle slots observed (observe)
	}
	per := m.cfg.CWPerSender
	if per == 0 {
		per = m.cfg.CWMin
	}
	load := m.load
	if m.others >= 0 {
		load = float64(m.others)
	}
	cw := m.cfg.CWMin
	for want := float64(m.cfg.CWMin) + float64(per)*load; float64(cw) < want; {
		if cw*2 > m.cfg.CWMax {
			m.stats.CWMaxHits++
			cw = m.cfg.CWMax
			break
		}
		cw *= 2
	}
	m.cw = cw
}

// Follow hands out the next queued frame to go on air in the same
// transmission as the frame Poll returned (a burst: the modem keys up once
// for all of them), as long as that transmission has not ended (TxDone).
// Urgent frames come first, then data frames in order; a data frame taken
// this way makes the transmission count as a data transmission at TxDone
// (the next backoff is drawn afresh), even if it began with an urgent one.
// It returns false when nothing is on air, nothing waits, or fits (if not
// nil) says the next frame does not fit the burst, which leaves it queued.
// The caller decides how many frames a burst holds; ownership passes as
// with Poll, and the one TxDone ends them all.
func (m *MACOf[T]) Follow(now time.Time, fits func(T) bool) (T, bool) {
	var none T
	if !m.onAir || m.n < 2 {
		return none, false
	}
	// q[head] is the zero placeholder of the transmission; the next frame
	// sits behind it. Move the placeholder onto that frame's place.
	next := (m.head + 1) % len(m.q)
	f := m.q[next]
	if fits != nil && !fits(f) {
		return none, false
	}
	m.q[next] = none
	if m.urgent > 0 && !m.airUrgent {
		// The transmission is a data frame's: the placeholder keeps its
		// flow and tags (Queued, EnqueueFlowCost), not the urgent
		// frame's place's stale ones.
		m.flow[next], m.tag[next], m.fin[next] = m.flow[m.head], m.tag[m.head], m.fin[m.head]
	}
	m.head = next
	m.n--
	if m.urgent > 0 {
		m.urgent--
	} else {
		m.airUrgent = false
		m.round = m.tag[next]
	}
	m.stats.Transmitted++
	return f, true
}
