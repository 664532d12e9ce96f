//go:build linux

package acoustic

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slided/slided/internal/rawtty"
)

// MaxOutQueue bounds the bytes waiting to go out on one modem's serial side
// (a daemon that does not read); a delivery that does not fit is dropped and
// counted in Stats.Overrun.
const MaxOutQueue = 64 << 10

// Water runs a Channel in real time: each modem's serial side is a pty whose
// slave path (Path) a daemon opens as -phy serial:PATH. Bytes the daemon
// writes are read from the master no faster than the modem's serial rate;
// what the modem receives is written back to the master at that rate.
//
// Goroutines: for each modem a reader (master → Channel; exits when the
// master is closed) and a writer (Channel's deliveries → master; exits on
// Close or when writing the master fails), plus one timer goroutine that
// runs the Channel's events on time (exits on Close). The Channel is owned
// by whoever holds mu. Close closes the masters and the slaves the Water
// holds open and waits for every goroutine.
type Water struct {
	start time.Time

	mu   sync.Mutex // guards core
	core *Channel

	ports []*port
	poke  chan struct{} // wakes the timer goroutine after new input
	quit  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	errMu sync.Mutex
	err   error
}

type port struct {
	master, slave *os.File
	path          string
	byteTime      time.Duration

	stallMu    sync.Mutex
	stallAfter int           // bytes still to read before the stall; -1: none planned
	stallFor   time.Duration // how long to stop reading

	outMu    sync.Mutex
	outQ     []Delivery
	outBytes int
	wake     chan struct{}
	overrun  atomic.Uint64
	garbRand *rand.Rand // guarded by outMu
}

// Start opens a pty for each modem of cfg and starts the Water.
func Start(cfg Config) (*Water, error) {
	core, err := NewChannel(cfg)
	if err != nil {
		return nil, err
	}
	w := &Water{
		start: time.Now(),
		core:  core,
		poke:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
	}
	for i := range core.N() {
		m, s, path, err := openPTY()
		if err != nil {
			w.closePorts()
			return nil, fmt.Errorf("acoustic: modem %d: %w", i, err)
		}
		w.ports = append(w.ports, &port{
			master: m, slave: s, path: path,
			byteTime:   core.modems[i].serialByte,
			stallAfter: -1,
			wake:       make(chan struct{}, 1),
			garbRand:   rand.New(rand.NewPCG(cfg.Seed, uint64(i)+100)),
		})
	}
	w.wg.Add(2*len(w.ports) + 1)
	for i := range w.ports {
		go w.reader(i)
		go w.writer(i)
	}
	go w.timer()
	return w, nil
}

// openPTY opens a pty pair: the master non-blocking (served by the runtime
// poller, so Close unblocks its Read and Write), the slave in raw mode. The
// Water keeps the slave open so that the master does not see a hang-up while
// no daemon has it open.
func openPTY() (master, slave *os.File, path string, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, "", fmt.Errorf("open /dev/ptmx: %w", err)
	}
	fail := func(e error) (*os.File, *os.File, string, error) {
		unix.Close(fd)
		return nil, nil, "", e
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return fail(fmt.Errorf("unlock pty: %w", err))
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		return fail(fmt.Errorf("pty number: %w", err))
	}
	path = fmt.Sprintf("/dev/pts/%d", n)
	sfd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(fmt.Errorf("open %s: %w", path, err))
	}
	if err := rawtty.MakeRaw(sfd); err != nil {
		unix.Close(sfd)
		return fail(fmt.Errorf("raw mode on %s: %w", path, err))
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), os.NewFile(uintptr(sfd), path), path, nil
}

// N is the number of modems.
func (w *Water) N() int { return len(w.ports) }

// Path is the slave path of modem i's pty, for -phy serial:PATH.
func (w *Water) Path(i int) string { return w.ports[i].path }

// Stats returns modem i's counters (the Channel's, plus the shell's serial
// output overruns).
func (w *Water) Stats(i int) Stats {
	w.mu.Lock()
	st := w.core.Stats(i)
	w.mu.Unlock()
	st.Overrun += w.ports[i].overrun.Load()
	return st
}

// Delay is the propagation delay from modem i to modem j.
func (w *Water) Delay(i, j int) time.Duration { return w.core.Delay(i, j) }

// Modem is modem i's configuration, defaults filled in.
func (w *Water) Modem(i int) ModemConfig { return w.core.Modem(i) }

// SetBER changes the bit error rate from now on.
func (w *Water) SetBER(p float64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.core.SetBER(p)
}

// SetDropRate changes the byte drop rate from now on.
func (w *Water) SetDropRate(p float64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.core.SetDropRate(p)
}

// Garbage makes modem i answer n random bytes on its serial side now.
func (w *Water) Garbage(i, n int) {
	p := w.ports[i]
	b := make([]byte, n)
	p.outMu.Lock()
	for k := range b {
		b[k] = byte(p.garbRand.Uint32())
	}
	p.outMu.Unlock()
	w.mu.Lock()
	ds := w.core.Inject(i, w.now(), b)
	w.mu.Unlock()
	w.dispatch(ds)
}

// Stall makes modem i stop reading its serial side for d once it has read
// `after` more bytes (0: at once), as a modem that wedges mid-packet. The
// daemon's writes then pile up in the pty until it is full, and block.
func (w *Water) Stall(i, after int, d time.Duration) {
	p := w.ports[i]
	p.stallMu.Lock()
	p.stallAfter, p.stallFor = max(after, 0), d
	p.stallMu.Unlock()
}

// Err is the first I/O error that stopped a goroutine, nil if none.
func (w *Water) Err() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

func (w *Water) fail(err error) {
	if w.stopping() {
		return
	}
	w.errMu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.errMu.Unlock()
}

// Close stops the Water, closes its ptys and waits for its goroutines.
// Safe to call more than once.
func (w *Water) Close() error {
	w.once.Do(func() {
		close(w.quit)
		w.closePorts()
	})
	w.wg.Wait()
	return w.Err()
}

func (w *Water) closePorts() {
	for _, p := range w.ports {
		p.master.Close()
		p.slave.Close()
	}
}

func (w *Water) stopping() bool {
	select {
	case <-w.quit:
		return true
	default:
		return false
	}
}

func (w *Water) now() time.Duration { return time.Since(w.start) }

// sleepUntil waits until the Water's clock reaches t; false if closed.
func (w *Water) sleepUntil(t time.Duration) bool {
	d := t - w.now()
	if d <= 0 {
		return !w.stopping()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-w.quit:
		return false
	case <-tm.C:
		return true
	}
}

// reader takes what the daemon writes to modem i, no faster than the
// serial rate (it sleeps while the Channel holds more than 50 ms of bytes
// not yet arrived), honouring a planned stall. It exits when the master is
// closed.
func (w *Water) reader(i int) {
	defer w.wg.Done()
	p := w.ports[i]
	rc, err := p.master.SyscallConn()
	if err != nil {
		w.fail(fmt.Errorf("acoustic: %s: %w", p.path, err))
		return
	}
	buf := make([]byte, 64)
	// The reader takes the next bytes while the Channel still holds this
	// much of the earlier ones, so that a reader woken late on a busy
	// machine does not open a gap that would split the daemon's packet.
	const slack = 50 * time.Millisecond
	for {
		// The stall plan is read when the master is readable, not before
		// waiting, so that a Stall called meanwhile applies to these bytes.
		var k int
		var rerr error
		stall := false
		err := rc.Read(func(fd uintptr) bool {
			k, rerr = 0, nil // a previous call may have seen EAGAIN
			n := len(buf)
			p.stallMu.Lock()
			after := p.stallAfter
			switch {
			case after == 0:
				p.stallAfter = -1
				stall = true
			case after > 0:
				n = min(n, after)
			}
			p.stallMu.Unlock()
			if stall {
				return true
			}
			k, rerr = unix.Read(int(fd), buf[:n])
			if rerr == unix.EAGAIN || rerr == unix.EINTR {
				return false
			}
			return true
		})
		if err == nil && rerr != nil {
			err = rerr
		}
		if err == nil && k == 0 && !stall {
			err = io.EOF
		}
		if err != nil {
			w.fail(fmt.Errorf("acoustic: read %s: %w", p.path, err))
			return
		}
		if stall {
			p.stallMu.Lock()
			d := p.stallFor
			p.stallMu.Unlock()
			if !w.sleepUntil(w.now() + d) {
				return
			}
			continue
		}
		p.stallMu.Lock()
		if p.stallAfter > 0 {
			p.stallAfter = max(p.stallAfter-k, 0)
		}
		p.stallMu.Unlock()
		w.mu.Lock()
		ds := w.core.Write(i, w.now(), buf[:k])
		free := w.core.InFree(i)
		w.mu.Unlock()
		w.dispatch(ds)
		select {
		case w.poke <- struct{}{}:
		default:
		}
		if !w.sleepUntil(free - slack) {
			return
		}
	}
}

// timer runs the Channel's events on time; it exits on Close.
func (w *Water) timer() {
	defer w.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		w.mu.Lock()
		ds := w.core.Advance(w.now())
		next, ok := w.core.Next()
		w.mu.Unlock()
		w.dispatch(ds)
		wait := time.Hour
		if ok {
			wait = max(next-w.now(), 0)
		}
		t.Reset(wait)
		select {
		case <-w.quit:
			return
		case <-w.poke:
		case <-t.C:
		}
	}
}

// dispatch queues deliveries for the writers; a delivery that would take a
// modem's queue beyond MaxOutQueue is dropped and counted.
func (w *Water) dispatch(ds []Delivery) {
	for _, d := range ds {
		p := w.ports[d.Modem]
		p.outMu.Lock()
		if p.outBytes+len(d.Data) > MaxOutQueue {
			p.outMu.Unlock()
			p.overrun.Add(uint64(len(d.Data)))
			continue
		}
		p.outQ = append(p.outQ, d)
		p.outBytes += len(d.Data)
		p.outMu.Unlock()
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// writer writes modem i's deliveries to the master at their times, in
// chunks of about 10 ms at the serial rate. It exits on Close (a write
// blocked on a full pty is unblocked by closing the master) or when a
// write fails.
func (w *Water) writer(i int) {
	defer w.wg.Done()
	p := w.ports[i]
	chunk := max(1, int(10*time.Millisecond/p.byteTime))
	for {
		p.outMu.Lock()
		var d Delivery
		ok := len(p.outQ) > 0
		if ok {
			d = p.outQ[0]
			p.outQ[0] = Delivery{}
			p.outQ = p.outQ[1:]
		}
		p.outMu.Unlock()
		if !ok {
			select {
			case <-w.quit:
				return
			case <-p.wake:
				continue
			}
		}
		for off := 0; off < len(d.Data); off += chunk {
			if !w.sleepUntil(d.At + time.Duration(off)*p.byteTime) {
				return
			}
			end := min(off+chunk, len(d.Data))
			if _, err := p.master.Write(d.Data[off:end]); err != nil {
				w.fail(fmt.Errorf("acoustic: write %s: %w", p.path, err))
				return
			}
		}
		p.outMu.Lock()
		p.outBytes -= len(d.Data)
		p.outMu.Unlock()
	}
}
