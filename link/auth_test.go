package link

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/framing"
)

// memState is an AuthState in memory that can be made to fail.
type memState struct {
	mu     sync.Mutex
	st     auth.State
	fail   error
	writes int
}

func (m *memState) State() auth.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}

// Reserve records mark at once (a synchronous AuthState: the engine's
// decisions stay reproducible), unless the state is made to fail.
func (m *memState) Reserve(mark uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail == nil && mark > m.st.Send {
		m.st.Send, m.writes = mark, m.writes+1
	}
}

func (m *memState) Reserved() (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Send, m.fail
}

func (m *memState) SaveFloor(src framing.NodeID, floor uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail == nil && floor > m.st.Recv[src] {
		m.st.Recv[src], m.writes = floor, m.writes+1
	}
}

func (m *memState) SavedFloor(src framing.NodeID) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Recv[src], m.fail
}

// TestKeyStateFailure: a sender whose counters cannot be reserved sends
// nothing (seal_failed); a receiver that cannot save a sender's counter
// delivers nothing (state_failed); with working state both save what they
// used and accepted.
func TestKeyStateFailure(t *testing.T) {
	k := auth.Key{1, 2, 3}
	disk := errors.New("read-only file system")
	for _, tc := range []struct {
		name       string
		fail       [2]error
		delivered  int
		sealFailed uint64 // at node 1
		saveFailed uint64 // at node 2
	}{
		{"state works", [2]error{}, 5, 0, 0},
		{"sender cannot reserve", [2]error{disk, nil}, 0, 5, 0},
		{"receiver cannot save", [2]error{nil, disk}, 0, 0, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := [2]*memState{{fail: tc.fail[0]}, {fail: tc.fail[1]}}
			m := newMedium(t, 115200)
			n1 := m.add(Config{Node: 1, Key: &k, NoARQ: true, KeyState: [2]AuthState{st[0]}})
			n2 := m.add(Config{Node: 2, Key: &k, NoARQ: true, KeyState: [2]AuthState{st[1]}})
			sent := map[uint32][]byte{}
			for id := range uint32(5) {
				f := numbered(2, 1, id, 100)
				sent[id] = f
				m.hostFrame(n1, f)
				m.run(time.Second)
			}
			if got := checkDelivered(t, n2, sent); got != tc.delivered {
				t.Fatalf("%d packets delivered, want %d", got, tc.delivered)
			}
			if d := n1.e.Stats(m.Now()).Drops; d.SealFailed != tc.sealFailed {
				t.Errorf("node1 drops %+v, want %d seal_failed", d, tc.sealFailed)
			}
			if d := n2.e.Stats(m.Now()).Drops; d.StateFailed != tc.saveFailed {
				t.Errorf("node2 drops %+v, want %d state_failed", d, tc.saveFailed)
			}
			if tc.delivered > 0 {
				if s := st[0].State(); s.Send == 0 {
					t.Errorf("node1 reserved no counters")
				}
				if s := st[1].State(); s.Recv[1] == 0 {
					t.Errorf("node2 saved no floor for node1")
				}
			}
		})
	}
}

// slowState is an AuthState whose writes take delay of the medium's
// virtual time, as a disk's do behind auth.AsyncState: what is asked for
// becomes durable delay after the ask, in the order asked.
type slowState struct {
	now     func() time.Time
	delay   time.Duration
	durable auth.State
	asks    []slowAsk
}

type slowAsk struct {
	at    time.Time
	send  uint64         // a reservation, or
	src   framing.NodeID // a floor for src
	floor uint64
}

// settle makes durable what was asked for at least delay ago.
func (s *slowState) settle() {
	now := s.now()
	for len(s.asks) > 0 && !now.Before(s.asks[0].at.Add(s.delay)) {
		a := s.asks[0]
		s.asks = s.asks[1:]
		if a.src == 0 {
			s.durable.Send = max(s.durable.Send, a.send)
		} else {
			s.durable.Recv[a.src] = max(s.durable.Recv[a.src], a.floor)
		}
	}
}

func (s *slowState) State() auth.State { s.settle(); return s.durable }

func (s *slowState) Reserve(mark uint64) {
	s.asks = append(s.asks, slowAsk{at: s.now(), send: mark})
}

func (s *slowState) Reserved() (uint64, error) { s.settle(); return s.durable.Send, nil }

func (s *slowState) SaveFloor(src framing.NodeID, floor uint64) {
	s.asks = append(s.asks, slowAsk{at: s.now(), src: src, floor: floor})
}

func (s *slowState) SavedFloor(src framing.NodeID) (uint64, error) {
	s.settle()
	return s.durable.Recv[src], nil
}

// slowPair is nodes 1 and 2 on a 115200 bit/s medium with one key, whose
// key state writes take d1 and d2 (slowState), and their states.
func slowPair(t *testing.T, d1, d2 time.Duration) (*medium, *node, *node, [2]*slowState) {
	k := auth.Key{9, 9, 9}
	m := newMedium(t, 115200)
	st := [2]*slowState{{now: m.Now, delay: d1}, {now: m.Now, delay: d2}}
	n1 := m.add(Config{Node: 1, Key: &k, KeyState: [2]AuthState{st[0]}})
	n2 := m.add(Config{Node: 2, Key: &k, KeyState: [2]AuthState{st[1]}})
	return m, n1, n2, st
}

// broadcastFrame is numbered's frame id from src to the broadcast address.
func broadcastFrame(src framing.NodeID, id uint32, size int) []byte {
	f := numbered(framing.Broadcast, src, id, size)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	return f
}

// TestFirstFramesWaitForTheFloor: after a start, a sender's first frames
// reach the host once its floor is written (30 ms on this disk), in order,
// not refused: a broadcast has no ARQ to send it again (a host's first
// ARP request after every start was lost), and a unicast frame refused
// waited an Ack timeout for its resend. Where the floor is never written,
// the frames wait floorWaitMax at most, at most maxFloorWait of them, and
// are then refused (state_failed) as before.
func TestFirstFramesWaitForTheFloor(t *testing.T) {
	k := auth.Key{7, 7, 7}
	for _, tc := range []struct {
		name      string
		delay     time.Duration
		delivered int
	}{
		{"disk takes 30ms", 30 * time.Millisecond, 40},
		{"disk never writes", time.Hour, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMedium(t, 115200)
			st := [2]*slowState{{now: m.Now, delay: 30 * time.Millisecond}, {now: m.Now, delay: tc.delay}}
			// Node 1's counters are reserved before its first frame (the
			// engine asks at its start).
			n1 := m.add(Config{Node: 1, Key: &k, KeyState: [2]AuthState{st[0]}})
			n2 := m.add(Config{Node: 2, Key: &k, KeyState: [2]AuthState{st[1]}})
			m.run(time.Second)
			// Node 2 hears node 1 for the first time: a broadcast, then
			// unicast frames, one burst's worth and more.
			bc := broadcastFrame(1, 0, 60)
			sent := map[uint32][]byte{0: bc}
			m.hostFrame(n1, bc)
			for id := uint32(1); id < 40; id++ {
				f := numbered(2, 1, id, 200)
				sent[id] = f
				for i := 0; !n1.e.WantRead() && i < 1000; i++ {
					m.run(time.Millisecond)
				}
				m.hostFrame(n1, f)
				if id == 3 {
					m.run(10 * time.Millisecond)
				}
			}
			m.run(200 * time.Millisecond)
			if got := checkDelivered(t, n2, sent); got != 0 && tc.delivered == 0 {
				t.Fatalf("%d delivered with no floor written", got)
			}
			if n := len(n2.e.floorWait); n > maxFloorWait {
				t.Fatalf("%d frames held, more than %d", n, maxFloorWait)
			}
			m.run(20 * time.Second)
			got := checkDelivered(t, n2, sent)
			d := n2.e.Stats(m.Now()).Drops
			if tc.delivered == 0 {
				if got != 0 || d.StateFailed == 0 {
					t.Errorf("floor never written: %d delivered, drops %+v; want none delivered, state_failed", got, d)
				}
				for _, w := range n2.e.floorWait { // the ARQ's resends still come
					if age := m.Now().Sub(w.at); age > floorWaitMax+floorRetry {
						t.Errorf("a frame held for %v", age)
					}
				}
				return
			}
			if got != tc.delivered || d.StateFailed != 0 {
				t.Fatalf("%d of %d delivered, drops %+v; want all, none refused", got, tc.delivered, d)
			}
			if id := binary.BigEndian.Uint32(n2.host[0][14:]); id != 0 {
				t.Errorf("first delivery is frame %d, want the broadcast (0)", id)
			}
			for i, f := range n2.host[1:] {
				if id := binary.BigEndian.Uint32(f[14:]); id != uint32(i+1) {
					t.Fatalf("delivery %d is frame %d: out of order", i+1, id)
				}
			}
			if r := n1.e.Stats(m.Now()).ARQ.Retransmissions; r != 0 {
				t.Errorf("node 1 sent %d frames again; want none (none refused)", r)
			}
		})
	}
}

// TestFirstFramesWaitForTheReservation: just after a start, while the
// first reservation of counters is written (300 ms on this disk), the
// engine does not read its host (WantRead), so that the host's first
// packet, a broadcast here, waits in the host's queue rather than go
// unsealed: nothing would send it again. Before, it was read at once and
// lost (drops.seal_failed).
func TestFirstFramesWaitForTheReservation(t *testing.T) {
	m, n1, n2, _ := slowPair(t, 300*time.Millisecond, 0)
	bc := broadcastFrame(1, 0, 60)
	waited := time.Duration(0)
	for ; !n1.e.WantRead() && waited < 10*time.Second; waited += time.Millisecond {
		m.run(time.Millisecond)
	}
	m.hostFrame(n1, bc)
	m.run(time.Second)
	if got := checkDelivered(t, n2, map[uint32][]byte{0: bc}); got != 1 {
		t.Fatalf("the host's first broadcast (read after %v): %d delivered, node1 drops %+v", waited, got, n1.e.Stats(m.Now()).Drops)
	}
	if d := n1.e.Stats(m.Now()).Drops; d.SealFailed != 0 {
		t.Errorf("node1 drops %+v, want no seal_failed", d)
	}
	if waited < 300*time.Millisecond || waited > 400*time.Millisecond {
		t.Errorf("read the host %v after the start, want once the reservation is written (300 ms) and soon after", waited)
	}
}

// TestListenerKeepsItsCounters: a node that only listens for an hour keeps
// reading its host, and the first frame it sends after twelve minutes of
// silence (no event at all) is sealed at once: its reservation follows the
// clock (auth.Sealer.Keep, on a Deadline). Before, only Seal asked for
// counters: after ten minutes the next counter passed the durable mark, the
// host was held for good once a frame was heard, and a broadcast sent after
// a silence was refused (drops.seal_failed).
func TestListenerKeepsItsCounters(t *testing.T) {
	m, n1, n2, _ := slowPair(t, 30*time.Millisecond, 30*time.Millisecond)
	m.run(time.Second)
	for i := range uint32(60) { // node 2 broadcasts once a minute; node 1 listens
		bc := broadcastFrame(2, i, 60)
		m.hostFrame(n2, bc)
		m.run(time.Minute)
		if !n1.e.WantRead() {
			t.Fatalf("minute %d of listening: node 1 does not read its host", i+1)
		}
	}
	m.run(12 * time.Minute) // nothing at all on air
	bc := broadcastFrame(1, 99, 60)
	if !n1.e.WantRead() {
		t.Fatal("after 12 silent minutes node 1 does not read its host")
	}
	m.hostFrame(n1, bc)
	m.run(time.Second)
	if got := checkDelivered(t, n2, map[uint32][]byte{99: bc}); got != 1 {
		t.Fatalf("node 1's broadcast after the silence: %d delivered, node 1 drops %+v", got, n1.e.Stats(m.Now()).Drops)
	}
}

// TestHungDiskHoldsTheHostForAWhile: where the first reservation is never
// written (a hung disk), the host is held floorWaitMax at most: then it is
// read again, its frames are refused and counted (drops.seal_failed), and
// a warning says why, once.
func TestHungDiskHoldsTheHostForAWhile(t *testing.T) {
	m, n1, _, _ := slowPair(t, 1000*time.Hour, 0)
	m.run(floorWaitMax / 2)
	if n1.e.WantRead() {
		t.Fatal("host read while the first reservation is written")
	}
	m.run(floorWaitMax)
	if !n1.e.WantRead() {
		t.Fatalf("host still held %v after the start", 3*floorWaitMax/2)
	}
	m.hostFrame(n1, numbered(2, 1, 1, 100))
	m.run(2 * time.Second)
	if d := n1.e.Stats(m.Now()).Drops; d.SealFailed == 0 {
		t.Errorf("drops %+v, want seal_failed counted", d)
	}
	if c := n1.logCount("counters not reserved in time"); c != 1 {
		t.Errorf("%d warnings, want 1", c)
	}
}

// TestLateAckGivesNoSample: an Ack that waited for its sender's floor (the
// first frame we hear from a peer after our start) advances the ARQ but
// gives no round-trip sample: the wait is the disk's, not the channel's.
// Before, a 150 ms write made the peer's SRTT 118 ms against 3 ms.
func TestLateAckGivesNoSample(t *testing.T) {
	srtt := map[time.Duration]time.Duration{}
	for _, d := range []time.Duration{0, 150 * time.Millisecond} {
		k := auth.Key{9, 9, 9}
		m := newMedium(t, 115200)
		st := [2]*slowState{{now: m.Now, delay: d}, {now: m.Now}}
		n1 := m.add(Config{Node: 1, Key: &k, KeyState: [2]AuthState{st[0]}})
		n2 := m.add(Config{Node: 2, Key: &k, KeyState: [2]AuthState{st[1]}})
		for i := 0; !n1.e.WantRead() && i < 10000; i++ {
			m.run(time.Millisecond)
		}
		for id := range uint32(3) {
			m.hostFrame(n1, numbered(2, 1, id, 200))
			m.run(2 * time.Second)
		}
		if got := len(n2.host); got != 3 {
			t.Fatalf("floor write %v: %d of 3 delivered", d, got)
		}
		for _, p := range n1.e.arq.AppendPeers(nil) {
			if p.Node == 2 {
				srtt[d] = p.SRTT
			}
		}
	}
	if srtt[150*time.Millisecond] > 2*srtt[0] {
		t.Errorf("SRTT %v after a 150 ms floor write, %v without: the wait counted as round trip", srtt[150*time.Millisecond], srtt[0])
	}
}

// TestCopiesDoNotFillTheWait: copies of one frame, repeated (by a station
// without the key) while its sender's floor is written, take one place:
// the others are counted as replayed, and the sender's next frames wait
// and are delivered.
func TestCopiesDoNotFillTheWait(t *testing.T) {
	m, n1, n2, _ := slowPair(t, time.Millisecond, 100*time.Millisecond)
	m.run(200 * time.Millisecond)
	var first []byte
	m.lose = func(from, to *node, data []byte) bool {
		if from == n1 && to == n2 && first == nil {
			first = append([]byte(nil), data...)
		}
		return false
	}
	sent := map[uint32][]byte{}
	for id := range uint32(2) {
		bc := broadcastFrame(1, id, 60)
		sent[id] = bc
	}
	m.hostFrame(n1, sent[0])
	for i := 0; first == nil && i < 100; i++ {
		m.run(time.Millisecond)
	}
	if first == nil {
		t.Fatal("node 1's broadcast not on air")
	}
	for range 20 {
		m.inject(n2, first)
	}
	if n := len(n2.e.floorWait); n != 1 {
		t.Errorf("%d frames wait after 20 copies of one, want 1", n)
	}
	m.hostFrame(n1, sent[1])
	m.run(time.Second)
	if got := checkDelivered(t, n2, sent); got != 2 {
		t.Errorf("%d of node 1's 2 broadcasts delivered, drops %+v", got, n2.e.Stats(m.Now()).Drops)
	}
	if d := n2.e.Stats(m.Now()).Drops; d.Replayed != 20 || d.StateFailed != 0 {
		t.Errorf("drops %+v, want 20 replayed (the copies; the first arrival is kept), no state_failed", d)
	}
}
