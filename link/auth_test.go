package link

import (
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
