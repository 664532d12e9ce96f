package auth

// The state directory: what the envelope must remember across restarts,
// one small text file per (key, node id), written whole and atomically.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/slided/slided/framing"
)

// Fingerprint names a key without revealing it: the first 8 bytes of
// SHA-256 over a label and the key, in hexadecimal. Two nodes with the same
// key show the same fingerprint (slided status), and the state directory
// keys its files by it, so a new key starts with fresh state.
func Fingerprint(k Key) string {
	h := sha256.New()
	h.Write([]byte("slided key fingerprint v1\x00"))
	h.Write(k[:])
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// State is what one node keeps under one key across restarts.
type State struct {
	// Send: this node may have used every counter below Send (a Sealer's
	// reservation). A restarted Sealer starts at Send or above.
	Send uint64
	// Recv[src]: every counter up to Recv[src] from sender src may have
	// been accepted (0: nothing saved). A restarted Opener refuses them.
	Recv [256]uint64
}

// stateMagic is the first line of a state file.
const stateMagic = "slided-auth-state 1"

// maxStateFile bounds what ParseState reads: the magic line, a send line
// and 254 recv lines of at most 30 bytes each fit in 8 KiB.
const maxStateFile = 16 << 10

// ErrStateFormat: a state file that ParseState cannot read.
var ErrStateFormat = errors.New("auth: bad state file")

// AppendState appends the text form of st to dst:
//
//	slided-auth-state 1
//	send COUNTER
//	recv SRC COUNTER      (one line per sender with a counter saved)
func AppendState(dst []byte, st *State) []byte {
	dst = append(dst, stateMagic...)
	dst = append(dst, "\nsend "...)
	dst = strconv.AppendUint(dst, st.Send, 10)
	dst = append(dst, '\n')
	for src, c := range st.Recv {
		if c == 0 {
			continue
		}
		dst = append(dst, "recv "...)
		dst = strconv.AppendUint(dst, uint64(src), 10)
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, c, 10)
		dst = append(dst, '\n')
	}
	return dst
}

// ParseState reads the text form written by AppendState. It refuses, with
// ErrStateFormat, anything else: another first line, unknown or repeated
// lines, counters above MaxCounter, sender ids 0 or 255, more than
// maxStateFile bytes.
func ParseState(data []byte) (State, error) {
	var st State
	if len(data) > maxStateFile {
		return st, fmt.Errorf("%w: %d bytes, at most %d", ErrStateFormat, len(data), maxStateFile)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 256), maxStateFile)
	line, sawSend := 0, false
	bad := func(msg string) (State, error) {
		return State{}, fmt.Errorf("%w: line %d: %s", ErrStateFormat, line, msg)
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			if text != stateMagic {
				return bad(fmt.Sprintf("want %q", stateMagic))
			}
			continue
		}
		f := strings.Split(text, " ")
		switch {
		case f[0] == "send" && len(f) == 2:
			if sawSend {
				return bad("second send line")
			}
			c, err := parseCounter(f[1])
			if err != nil {
				return bad(err.Error())
			}
			st.Send, sawSend = c, true
		case f[0] == "recv" && len(f) == 3:
			src, err := strconv.ParseUint(f[1], 10, 8)
			if err != nil || src == 0 || src == uint64(framing.Broadcast) {
				return bad(fmt.Sprintf("sender %q: want 1 to 254", f[1]))
			}
			c, err := parseCounter(f[2])
			if err != nil {
				return bad(err.Error())
			}
			if c == 0 || st.Recv[src] != 0 {
				return bad(fmt.Sprintf("sender %d: zero or repeated", src))
			}
			st.Recv[src] = c
		default:
			return bad(fmt.Sprintf("unknown line %.40q", text))
		}
	}
	if err := sc.Err(); err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrStateFormat, err)
	}
	if line == 0 || !sawSend {
		return State{}, fmt.Errorf("%w: no send line", ErrStateFormat)
	}
	return st, nil
}

func parseCounter(s string) (uint64, error) {
	c, err := strconv.ParseUint(s, 10, 64)
	if err != nil || c > MaxCounter+1 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("counter %.30q: want a decimal number up to 2^48", s)
	}
	return c, nil
}

// ErrLocked: another process holds the state of this key and node id.
var ErrLocked = errors.New("another slided on this host uses this node id with this key (its lock is held)")

// StateFile keeps one node's State under one key in a directory:
// auth-FINGERPRINT-nNODE.state, and a lock file beside it held (flock) for
// as long as the StateFile is open, so that a second daemon on the same
// host with the same key and node id refuses to start. Writes go to a
// temporary file that is synced, renamed over the state file, and the
// directory synced: after a crash or a power cut the file holds the old or
// the new State, never a mix, and a write that returned nil is on disk.
//
// Write blocks for as long as the disk takes (an SD card: up to seconds):
// a Sealer and an Opener use a StateFile through an AsyncState, which
// writes it on a goroutine of its own. A StateFile is used by one goroutine
// at a time.
type StateFile struct {
	path string
	dir  string
	lock *os.File
	st   State
	buf  []byte
}

// OpenState creates dir (mode 0700) if needed, takes the lock for key k and
// node self, and reads the saved State (zero if there is none). A state
// file that cannot be read is an error: the caller must not guess.
func OpenState(dir string, k Key, self framing.NodeID) (*StateFile, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	name := fmt.Sprintf("auth-%s-n%d", Fingerprint(k), self)
	lockPath := filepath.Join(dir, name+".lock")
	lock, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", lockPath, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	f := &StateFile{path: filepath.Join(dir, name+".state"), dir: dir, lock: lock}
	data, err := os.ReadFile(f.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		lock.Close()
		return nil, fmt.Errorf("read state: %w", err)
	default:
		if f.st, err = ParseState(data); err != nil {
			lock.Close()
			return nil, fmt.Errorf("%s: %w (move it away to start afresh: the counters then start from the clock)", f.path, err)
		}
	}
	return f, nil
}

// Path is the state file's path.
func (f *StateFile) Path() string { return f.path }

// State returns the State read at open or last written.
func (f *StateFile) State() State { return f.st }

// Chown gives the directory, the state file and the lock file to uid:gid,
// for a daemon that drops its privileges after opening them.
func (f *StateFile) Chown(uid, gid int) error {
	for _, p := range []string{f.dir, f.path, f.lock.Name()} {
		if err := os.Chown(p, uid, gid); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Write replaces the saved State with st, durably.
func (f *StateFile) Write(st *State) error {
	f.buf = AppendState(f.buf[:0], st)
	tmp := f.path + ".tmp"
	w, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	_, err = w.Write(f.buf)
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.path)
	}
	if err == nil {
		err = syncDir(f.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state: %w", err)
	}
	f.st = *st
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close releases the lock.
func (f *StateFile) Close() error { return f.lock.Close() }

// StateWriter is what AsyncState writes to (StateFile): State is what was
// saved before, Write replaces it durably and may block.
type StateWriter interface {
	State() State
	Write(st *State) error
}

// AsyncState is the Reserver and FloorSaver of one key, for a Sealer and
// an Opener on a goroutine that must not wait for the disk (the daemon's
// loop): Reserve and SaveFloor record a request and return; a goroutine of
// its own writes the State asked for (the highest marks and floors asked,
// merged) to its StateWriter, one write at a time, the latest request
// superseding those not yet written; Reserved and SavedFloor report what
// the last successful write made durable. A write that fails is retried at
// the next request. All methods may be called from any goroutine. The
// goroutine exits when Close is called (after the write under way, if
// any, returns).
type AsyncState struct {
	w    StateWriter
	kick chan struct{} // capacity 1: a request is waiting
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	want    State // asked for
	durable State // written
	err     error // the last write's error (nil: it succeeded)
}

// NewAsyncState returns an AsyncState writing to w, starting from what w
// saved before.
func NewAsyncState(w StateWriter) *AsyncState {
	st := w.State()
	a := &AsyncState{w: w, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		want: st, durable: st}
	go a.run()
	return a
}

// State returns the State that was durable when a was created or last
// written.
func (a *AsyncState) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.durable
}

// Reserve implements Reserver.
func (a *AsyncState) Reserve(mark uint64) {
	a.mu.Lock()
	a.want.Send = max(a.want.Send, mark)
	a.mu.Unlock()
	a.wake()
}

// Reserved implements Reserver.
func (a *AsyncState) Reserved() (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.durable.Send, a.err
}

// SaveFloor implements FloorSaver.
func (a *AsyncState) SaveFloor(src framing.NodeID, floor uint64) {
	a.mu.Lock()
	a.want.Recv[src] = max(a.want.Recv[src], floor)
	a.mu.Unlock()
	a.wake()
}

// SavedFloor implements FloorSaver.
func (a *AsyncState) SavedFloor(src framing.NodeID) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.durable.Recv[src], a.err
}

func (a *AsyncState) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// run writes what is asked for until Close.
func (a *AsyncState) run() {
	defer close(a.done)
	for {
		select {
		case <-a.stop:
			return
		case <-a.kick:
		}
		a.mu.Lock()
		st := a.want
		same := st == a.durable
		a.mu.Unlock()
		if same {
			continue
		}
		err := a.w.Write(&st)
		a.mu.Lock()
		if a.err = err; err == nil {
			a.durable = st
		}
		a.mu.Unlock()
	}
}

// Close stops the writing goroutine and waits for it; requests not written
// by then are lost (their counters were never used). It does not close the
// StateWriter.
func (a *AsyncState) Close() error {
	a.once.Do(func() { close(a.stop) })
	<-a.done
	return nil
}
