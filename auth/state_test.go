package auth

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/framing"
)

// run is one life of a daemon's envelope: its state file, Sealer and Opener.
type run struct {
	f *StateFile
	s *Sealer
	o *Opener
}

func startRun(t *testing.T, dir string, k Key, self framing.NodeID, now time.Time) *run {
	t.Helper()
	f, err := OpenState(dir, k, self)
	if err != nil {
		t.Fatal(err)
	}
	st := f.State()
	s, err := Resume(k, self, now, st.Send, &syncState{f: f})
	if err != nil {
		t.Fatal(err)
	}
	o := mustOpener(t, k)
	o.Restore(&st.Recv)
	o.SetSaver(&syncState{f: f})
	return &run{f: f, s: s, o: o}
}

// sealAt seals n frames at now and returns their envelopes.
func (r *run) sealAt(t *testing.T, now time.Time, n int) (framing.Header, [][]byte) {
	t.Helper()
	var h framing.Header
	var envs [][]byte
	for i := range n {
		var env []byte
		var err error
		h, env, err = r.s.Seal(now, nil, framing.Header{Kind: framing.KindEthernet, Dst: 2}, []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	return h, envs
}

func counterOf(env []byte) uint64 {
	c, _ := parse(framing.Header{Kind: framing.KindSealed}, env, Seal)
	return c
}

// TestRestartNeverReusesCounters: a node seals, stops (cleanly or not) and
// starts again with its clock wherever a board may find it: the new life's
// counters are all above the old life's.
func TestRestartNeverReusesCounters(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		clock time.Duration // the clock at the restart, from the first life's start
		crash bool          // no Close: the lock dies with the process
		wipe  bool          // the state directory is lost
	}{
		{"clock goes back an hour (no RTC)", -time.Hour, false, false},
		{"clock back to 1970", -time.Since(time.Unix(0, 0)), true, false},
		{"clock unchanged, crash", 0, true, false},
		{"clock ahead", time.Hour, false, false},
		{"state lost, clock right: the clock keeps counters apart", 11 * time.Minute, false, true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			r1 := startRun(t, dir, testKey, 1, t0)
			_, envs := r1.sealAt(t, t0, 50)
			_, more := r1.sealAt(t, t0.Add(10*time.Minute), 50) // past one reservation
			envs = append(envs, more...)
			if tc.crash {
				r1.f.lock.Close()
			} else {
				r1.f.Close()
			}
			if tc.wipe {
				os.RemoveAll(dir)
			}
			r2 := startRun(t, dir, testKey, 1, t0.Add(tc.clock))
			defer r2.f.Close()
			_, again := r2.sealAt(t, t0.Add(tc.clock), 3)
			last := counterOf(envs[len(envs)-1])
			for _, e := range again {
				if c := counterOf(e); c <= last {
					t.Errorf("restart sealed counter %d, the first life used up to %d", c, last)
				}
			}
		})
	}
}

// TestSealerTiedToClock: with no frames to seal the counter still moves at
// CounterRate, so a receiver's floor (FloorAhead) is passed soon after it
// restarts; a clock that goes back never moves it back.
func TestSealerTiedToClock(t *testing.T) {
	s, err := Resume(testKey, 1, t0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		at   time.Duration
		want uint64 // at least, from CounterAt(t0)
	}{
		{0, 0},
		{time.Second, CounterRate},
		{10 * time.Second, FloorAhead},
		{5 * time.Second, FloorAhead + 1}, // clock back: one more than the last
	}
	start := CounterAt(t0)
	for _, st := range steps {
		_, env, err := s.Seal(t0.Add(st.at), nil, framing.Header{Dst: 2}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c := counterOf(env); c < start+st.want {
			t.Errorf("at %v: counter %d, want at least %d", st.at, c-start, st.want)
		}
	}
}

type failing struct{ err error }

func (f failing) Reserve(uint64)                            {}
func (f failing) Reserved() (uint64, error)                 { return 0, f.err }
func (f failing) SaveFloor(framing.NodeID, uint64)          {}
func (f failing) SavedFloor(framing.NodeID) (uint64, error) { return 0, f.err }

// syncState writes a StateFile at each request, on the caller's goroutine:
// a Reserver and FloorSaver for tests that need every request durable at
// once (the daemon uses AsyncState).
type syncState struct {
	f   *StateFile
	err error
}

func (s *syncState) Reserve(mark uint64) {
	st := s.f.State()
	if mark > st.Send {
		st.Send = mark
		s.err = s.f.Write(&st)
	}
}
func (s *syncState) Reserved() (uint64, error) { return s.f.State().Send, s.err }
func (s *syncState) SaveFloor(src framing.NodeID, floor uint64) {
	st := s.f.State()
	if floor > st.Recv[src] {
		st.Recv[src] = floor
		s.err = s.f.Write(&st)
	}
}
func (s *syncState) SavedFloor(src framing.NodeID) (uint64, error) {
	return s.f.State().Recv[src], s.err
}

// TestSealRefusesWithoutReservation: when the state cannot be written the
// Sealer refuses, and does not burn the counter; once it can, it seals.
func TestSealRefusesWithoutReservation(t *testing.T) {
	dir := t.TempDir()
	f, err := OpenState(dir, testKey, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := mustSealer(t, testKey, 1, 100)
	s.SetReserver(failing{errors.New("disk full")})
	if _, _, err := s.Seal(t0, nil, framing.Header{Dst: 2}, nil); !errors.Is(err, ErrNotReserved) {
		t.Fatalf("seal without a reservation: %v", err)
	}
	if s.Counter() != 100 {
		t.Fatalf("a refused seal moved the counter to %d", s.Counter())
	}
	// A state directory that went away (unmounted, removed).
	s.SetReserver(&syncState{f: f})
	os.RemoveAll(dir)
	if _, _, err := s.Seal(t0, nil, framing.Header{Dst: 2}, nil); !errors.Is(err, ErrNotReserved) {
		t.Fatalf("seal with the state directory gone: %v", err)
	}
	os.MkdirAll(dir, 0o700)
	if _, env, err := s.Seal(t0, nil, framing.Header{Dst: 2}, nil); err != nil || counterOf(env) != 100 {
		t.Fatalf("seal once the directory is back: %v", err)
	}
	if got := f.State().Send; got != 100+ReserveAhead {
		t.Fatalf("reserved up to %d, want %d", got, 100+ReserveAhead)
	}
}

// TestReplayAfterRestartRefused: frames recorded while a receiver ran are
// all refused after it restarts (cleanly or not), in order or not; the
// sender's new frames are accepted once its counter passes the floor.
func TestReplayAfterRestartRefused(t *testing.T) {
	for _, crash := range []bool{false, true} {
		dirS, dirR := t.TempDir(), t.TempDir()
		snd := startRun(t, dirS, testKey, 1, t0)
		rcv := startRun(t, dirR, testKey, 2, t0)
		var rec [][]byte
		var h framing.Header
		for i := range 5 {
			var envs [][]byte
			h, envs = snd.sealAt(t, t0.Add(time.Duration(i)*3*time.Second), 10)
			for _, e := range envs {
				if _, _, err := rcv.o.Open(t0, nil, h, e); err != nil {
					t.Fatal(err)
				}
			}
			rec = append(rec, envs...)
		}
		if crash {
			rcv.f.lock.Close()
		} else {
			rcv.f.Close()
		}
		later := t0.Add(time.Minute)
		rcv = startRun(t, dirR, testKey, 2, later)
		for i, e := range rec {
			if _, _, err := rcv.o.Open(later, nil, h, e); !errors.Is(err, ErrReplay) && !errors.Is(err, ErrTooOld) {
				t.Errorf("crash %v: recorded frame %d after the restart: %v", crash, i, err)
			}
		}
		_, fresh := snd.sealAt(t, later, 1)
		if _, out, err := rcv.o.Open(later, nil, h, fresh[0]); err != nil || len(out) != 1 {
			t.Errorf("crash %v: the sender's next frame: %v", crash, err)
		}
		rcv.f.Close()
		snd.f.Close()
	}
}

// TestOpenRefusesUnsaved: a frame whose counter cannot be saved is refused
// and leaves the window where it was.
func TestOpenRefusesUnsaved(t *testing.T) {
	s := mustSealer(t, testKey, 1, 1000)
	h, env := seal(t, s, []byte{1})
	o := mustOpener(t, testKey)
	o.SetSaver(failing{errors.New("read-only file system")})
	if _, out, err := o.Open(t0, nil, h, env); !errors.Is(err, ErrNotSaved) || len(out) != 0 {
		t.Fatalf("unsaved frame: %v, % x", err, out)
	}
	o.SetSaver(nil)
	if _, _, err := o.Open(t0, nil, h, env); err != nil {
		t.Fatalf("the same frame once saving works: %v", err)
	}
}

// TestMaxAge: with a maximum age, counters older than the receiver's clock
// minus the age are refused even from a sender the receiver never heard.
func TestMaxAge(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		maxAge time.Duration
		sealed time.Duration // the sender's clock, from the receiver's
		want   error
	}{
		{"off", 0, -24 * time.Hour, nil},
		{"within", 10 * time.Minute, -9 * time.Minute, nil},
		{"sender ahead", 10 * time.Minute, time.Hour, nil},
		{"too old", 10 * time.Minute, -11 * time.Minute, ErrStale},
	} {
		s := mustSealer(t, testKey, 1, CounterAt(t0.Add(tc.sealed)))
		h, env := seal(t, s, []byte{1})
		o := mustOpener(t, testKey)
		o.SetMaxAge(tc.maxAge)
		if _, _, err := o.Open(t0, nil, h, env); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.desc, err, tc.want)
		}
	}
}

// TestForeign: our own frames heard back are ours; frames with our id and
// key that we did not seal are another station's; older ones prove nothing.
func TestForeign(t *testing.T) {
	s := mustSealer(t, testKey, 1, 1000)
	s.Tie(t0)
	var used []uint64
	for i := range 100 {
		_, env, err := s.Seal(t0.Add(time.Duration(i)*time.Millisecond), nil, framing.Header{Dst: 2}, nil)
		if err != nil {
			t.Fatal(err)
		}
		used = append(used, counterOf(env))
	}
	for _, tc := range []struct {
		desc string
		c    uint64
		want bool
	}{
		{"our last frame", used[99], false},
		{"our 64th last frame", used[100-recentSent], false},
		{"between two of ours", used[99] - 1, true},
		{"above ours", used[99] + 1, true},
		{"far above", used[99] + 1<<30, true},
		{"older than we remember", used[100-recentSent] - 1, false},
		{"before this life", 999, false},
	} {
		if got := s.Foreign(tc.c); got != tc.want {
			t.Errorf("%s (%d): Foreign %v, want %v", tc.desc, tc.c, got, tc.want)
		}
	}
}

// TestStateFileLock: a second daemon with the same key and node id on the
// host is refused; another node id or another key is not.
func TestStateFileLock(t *testing.T) {
	dir := t.TempDir()
	f, err := OpenState(dir, testKey, 1)
	if err != nil {
		t.Fatal(err)
	}
	other := testKey
	other[0] ^= 1
	for _, tc := range []struct {
		desc string
		k    Key
		id   framing.NodeID
		want error
	}{
		{"same key and id", testKey, 1, ErrLocked},
		{"same key, other id", testKey, 2, nil},
		{"other key, same id", other, 1, nil},
	} {
		g, err := OpenState(dir, tc.k, tc.id)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.desc, err, tc.want)
		}
		if err == nil {
			g.Close()
		}
	}
	f.Close()
	g, err := OpenState(dir, testKey, 1)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	g.Close()
}

func TestParseState(t *testing.T) {
	good := "slided-auth-state 1\nsend 12345\nrecv 2 99\nrecv 254 7\n"
	for _, tc := range []struct {
		desc, text string
		ok         bool
	}{
		{"good", good, true},
		{"no recv", "slided-auth-state 1\nsend 0\n", true},
		{"no final newline", "slided-auth-state 1\nsend 5", true},
		{"empty", "", false},
		{"other version", "slided-auth-state 2\nsend 1\n", false},
		{"no send", "slided-auth-state 1\n", false},
		{"two sends", "slided-auth-state 1\nsend 1\nsend 2\n", false},
		{"sender 0", "slided-auth-state 1\nsend 1\nrecv 0 5\n", false},
		{"sender 255", "slided-auth-state 1\nsend 1\nrecv 255 5\n", false},
		{"sender twice", "slided-auth-state 1\nsend 1\nrecv 3 5\nrecv 3 6\n", false},
		{"counter too big", "slided-auth-state 1\nsend 281474976710657\n", false},
		{"counter 2^48 (all used)", "slided-auth-state 1\nsend 281474976710656\n", true},
		{"negative", "slided-auth-state 1\nsend -1\n", false},
		{"leading zero", "slided-auth-state 1\nsend 01\n", false},
		{"extra field", "slided-auth-state 1\nsend 1 2\n", false},
		{"unknown line", "slided-auth-state 1\nsend 1\nkey 00\n", false},
		{"huge", "slided-auth-state 1\nsend 1\n" + strings.Repeat("\n", maxStateFile), false},
	} {
		st, err := ParseState([]byte(tc.text))
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrStateFormat)) {
			t.Errorf("%s: %v", tc.desc, err)
		}
		if err == nil && tc.desc == "good" && (st.Send != 12345 || st.Recv[2] != 99 || st.Recv[254] != 7) {
			t.Errorf("good: %+v", st)
		}
	}
	// A state file nobody can read stops the daemon: it must not guess.
	dir := t.TempDir()
	name := filepath.Join(dir, "auth-"+Fingerprint(testKey)+"-n1.state")
	os.WriteFile(name, []byte("garbage"), 0o600)
	if _, err := OpenState(dir, testKey, 1); !errors.Is(err, ErrStateFormat) {
		t.Errorf("corrupt state file: %v", err)
	}
}

// FuzzParseState: no panic; what parses is written back byte for byte in
// the canonical form and parses to the same State.
func FuzzParseState(f *testing.F) {
	f.Add([]byte("slided-auth-state 1\nsend 12345\nrecv 2 99\nrecv 254 7\n"))
	f.Add([]byte("slided-auth-state 1\nsend 0\n"))
	f.Add([]byte("slided-auth-state 1\nsend 281474976710656\nrecv 1 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseState(data)
		if err != nil {
			return
		}
		out := AppendState(nil, &st)
		st2, err := ParseState(out)
		if err != nil || st2 != st {
			t.Fatalf("round trip: %v\n%s", err, out)
		}
		if !bytes.Equal(AppendState(nil, &st2), out) {
			t.Fatalf("not canonical:\n%s", out)
		}
	})
}

func TestLoadKeys(t *testing.T) {
	other := "ff" + keyHex[2:]
	for _, tc := range []struct {
		desc, text string
		n          int
		want       error
	}{
		{"one key (the old format)", keyHex + "\n", 1, nil},
		{"two keys", keyHex + "\n" + other + "\n", 2, nil},
		{"comments and blank lines", "# new key first\n\n" + keyHex + "\n  " + other + "  \n", 2, nil},
		{"three keys", keyHex + "\n" + other + "\n" + keyHex + "\n", 0, ErrKeyCount},
		{"empty", "\n# nothing\n", 0, ErrKeyFormat},
		{"bad second line", keyHex + "\nzz\n", 0, ErrKeyFormat},
	} {
		keys, err := LoadKeys(writeKey(t, 0o600, tc.text))
		if !errors.Is(err, tc.want) || len(keys) != tc.n {
			t.Errorf("%s: %d keys, %v; want %d, %v", tc.desc, len(keys), err, tc.n, tc.want)
		}
		if tc.n > 0 && keys[0] != testKey {
			t.Errorf("%s: first key % x", tc.desc, keys[0])
		}
	}
	if _, err := LoadKeys(writeKey(t, 0o644, keyHex)); !errors.Is(err, ErrKeyPerm) {
		t.Errorf("world-readable: %v", err)
	}
}

// TestOvertakenFrames: counters follow the clock, so an Ack sealed 100 ms
// after a fragment that still waits in the queue carries a counter 6,553
// higher, and goes on air first. The fragment must still be accepted. (A
// window of 64 consecutive counters refused it; the end-to-end
// TestKeyChangeover counted such refusals as replays.)
func TestOvertakenFrames(t *testing.T) {
	s, err := Resume(testKey, 1, t0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := mustOpener(t, testKey)
	var frags [][]byte
	var h framing.Header
	for i := range 10 {
		var env []byte
		h, env, err = s.Seal(t0, nil, framing.Header{Kind: framing.KindFragment, Dst: 2}, []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		frags = append(frags, env)
	}
	ah, ack, err := s.Seal(t0.Add(100*time.Millisecond), nil, framing.Header{Kind: framing.KindAck, Dst: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	order := append([][]byte{frags[0], ack}, frags[1:]...)
	for i, e := range order {
		hh := h
		if i == 1 {
			hh = ah
		}
		if _, _, err := o.Open(t0, nil, hh, e); err != nil {
			t.Errorf("frame %d on air: %v", i, err)
		}
	}
}

// FuzzParseKeys: no panic; what parses is one or two keys, written back one
// per line they parse the same.
func FuzzParseKeys(f *testing.F) {
	f.Add([]byte(keyHex + "\n"))
	f.Add([]byte("# changeover\n" + keyHex + "\n\n" + keyHex + "\n"))
	f.Add([]byte(keyHex + "\nzz\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		keys, err := ParseKeys(text)
		if err != nil {
			return
		}
		if len(keys) < 1 || len(keys) > 2 {
			t.Fatalf("%d keys", len(keys))
		}
		var out []byte
		for _, k := range keys {
			out = append(out, hex.EncodeToString(k[:])+"\n"...)
		}
		again, err := ParseKeys(out)
		if err != nil || len(again) != len(keys) || again[0] != keys[0] || again[len(again)-1] != keys[len(keys)-1] {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// pendingReserver records a reservation only when told to, as
// AsyncState does once its write is done.
type pendingReserver struct{ asked, durable uint64 }

func (p *pendingReserver) Reserve(mark uint64)       { p.asked = max(p.asked, mark) }
func (p *pendingReserver) Reserved() (uint64, error) { return p.durable, nil }

// TestSealerWaiting: Waiting is true while the reservation that covers the
// next counter is being written, and false once it is durable, when it has
// failed (Seal then refuses with the error; waiting would not help) and
// without a Reserver. It uses no counter.
func TestSealerWaiting(t *testing.T) {
	s := mustSealer(t, testKey, 1, 100)
	if s.Waiting(t0) {
		t.Fatal("waiting without a Reserver")
	}
	r := &pendingReserver{}
	s.SetReserver(r)
	if !s.Waiting(t0) {
		t.Fatal("not waiting while the first reservation is written")
	}
	if _, _, err := s.Seal(t0, nil, framing.Header{Dst: 2}, nil); !errors.Is(err, ErrPending) {
		t.Fatalf("seal while waiting: %v, want ErrPending", err)
	}
	r.durable = r.asked
	if s.Waiting(t0) {
		t.Fatal("waiting once the reservation is durable")
	}
	if _, env, err := s.Seal(t0, nil, framing.Header{Dst: 2}, nil); err != nil || counterOf(env) != 100 {
		t.Fatalf("seal once durable: %v (counter %d, want 100: waiting used none)", err, counterOf(env))
	}
	s.SetReserver(failing{errors.New("disk full")})
	if s.Waiting(t0) {
		t.Fatal("waiting on a reservation that failed")
	}
}

// TestSealerKeep: a Sealer that seals nothing asks for its next reservation
// when the clock has used half of the last one (Keep), and says when that
// falls due, so that its first Seal after a long silence finds its counter
// durable. Before, only Seal asked, and the first frame after ten idle
// minutes was refused (ErrPending) while the write went on.
func TestSealerKeep(t *testing.T) {
	r := &pendingReserver{}
	s, err := Resume(testKey, 1, t0, 0, r)
	if err != nil {
		t.Fatal(err)
	}
	r.durable = r.asked // the first reservation, written
	now := t0
	for i := range 5 {
		due := s.Keep(now)
		if !due.After(now) {
			t.Fatalf("round %d: next Keep due at %v, not after %v", i, due, now)
		}
		if d := due.Sub(now); d > 6*time.Minute {
			t.Fatalf("round %d: next Keep due in %v, want within half a reservation (5 min)", i, d)
		}
		now = due
		s.Keep(now)
		r.durable = r.asked // the write is done at once
		if s.Waiting(now.Add(time.Minute)) {
			t.Fatalf("round %d: waiting a minute after Keep", i)
		}
	}
	if now.Sub(t0) < 20*time.Minute {
		t.Fatalf("five rounds of Keep covered %v, want past two reservations", now.Sub(t0))
	}
	if _, _, err := s.Seal(now.Add(time.Minute), nil, framing.Header{Dst: 2}, nil); err != nil {
		t.Fatalf("first Seal after %v of silence: %v", now.Add(time.Minute).Sub(t0), err)
	}
	if due := mustSealer(t, testKey, 1, 100).Keep(t0); !due.IsZero() {
		t.Fatalf("Keep without a Reserver: due %v, want none", due)
	}
}
