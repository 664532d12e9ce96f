//go:build linux

package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slided/slided/internal/biterr"
	"github.com/slided/slided/internal/rawtty"
)

// A Flipper is a noisy cable: it copies bytes both ways between two ends
// (in the tests, the far sides of two socat pseudo-terminal pairs, one per
// daemon), flipping each bit independently with probability BER, and, if
// asked, every so often pours a burst of random bytes into both directions
// (line noise that a receiver takes for data).
//
// Bit errors are drawn as geometric gaps between flips (one random draw per
// flipped bit, not one per relayed bit), each direction with its own
// generator seeded from FlipperConfig.Seed, so a run is repeatable given the
// same chunks.
//
// Lifetime: five goroutines (one per direction, one for the bursts, one
// watching ctx, one closing Done). The Flipper stops, closing both ends, when
// Close is called, when ctx is done, or when reading or writing either end
// fails (Err then says why). Closing the ends unblocks the copying
// goroutines; Done is closed once the first four have returned, and the
// fifth returns right after closing it. Close waits for Done, so once it
// returns nothing of the Flipper runs any more. The ends' Close must unblock
// a pending Read or Write on them: true for an *os.File of a tty, pipe or
// socket opened non-blocking (OpenRawTTY, os.Pipe), a net.Conn, net.Pipe.
type Flipper struct {
	ends  [2]io.ReadWriteCloser
	wmu   [2]sync.Mutex // serialises relayed chunks and bursts written into ends[i]
	ber   atomic.Uint64 // math.Float64bits of the bit error rate
	every atomic.Int64  // burst interval, ns; 0: no bursts
	cfg   FlipperConfig

	reconf   chan struct{} // wakes the burst goroutine after SetBursts
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	bytes      [2]atomic.Uint64 // relayed a→b (0) and b→a (1)
	flipped    [2]atomic.Uint64
	bursts     atomic.Uint64
	burstBytes atomic.Uint64

	errMu sync.Mutex
	err   error
}

// FlipperConfig sets up a Flipper. BER and the burst interval can be changed
// later (SetBER, SetBursts).
type FlipperConfig struct {
	BER  float64 // probability that a relayed bit is flipped, 0..1
	Seed uint64  // seeds the bit errors and the bursts
	// BurstEvery is the interval between bursts of random bytes; 0: none.
	BurstEvery time.Duration
	// BurstMin and BurstMax bound a burst's length in bytes, drawn
	// uniformly for each direction (defaults 20 and 200).
	BurstMin, BurstMax int
	// Chunk is the largest read from an end (default 4096). Bytes are
	// relayed as soon as a read returns them.
	Chunk int
}

// FlipperStats are a Flipper's counters. Index 0 is the direction a→b (what
// was read from a and written into b), 1 is b→a.
type FlipperStats struct {
	Bytes      [2]uint64 // bytes read and passed on (bursts not included)
	Flipped    [2]uint64 // bits flipped in those
	Bursts     uint64    // bursts injected (one burst goes into both directions)
	BurstBytes uint64    // random bytes injected, both directions together
}

// StartFlipper starts relaying between a and b. The Flipper owns both ends
// from now on and closes them when it stops.
func StartFlipper(ctx context.Context, a, b io.ReadWriteCloser, cfg FlipperConfig) (*Flipper, error) {
	if err := checkBER(cfg.BER); err != nil {
		return nil, err
	}
	if cfg.BurstEvery < 0 {
		return nil, fmt.Errorf("flipper: negative burst interval %s", cfg.BurstEvery)
	}
	if cfg.BurstMin <= 0 {
		cfg.BurstMin = 20
	}
	if cfg.BurstMax <= 0 {
		cfg.BurstMax = 200
	}
	if cfg.BurstMax < cfg.BurstMin {
		return nil, fmt.Errorf("flipper: burst length %d..%d", cfg.BurstMin, cfg.BurstMax)
	}
	if cfg.Chunk <= 0 {
		cfg.Chunk = 4096
	}
	f := &Flipper{
		ends:   [2]io.ReadWriteCloser{a, b},
		cfg:    cfg,
		reconf: make(chan struct{}, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	f.ber.Store(math.Float64bits(cfg.BER))
	f.every.Store(int64(cfg.BurstEvery))
	f.wg.Add(4)
	for d := range 2 {
		go f.relay(d, rand.New(rand.NewPCG(cfg.Seed, uint64(d)+1)))
	}
	go f.burster(rand.New(rand.NewPCG(cfg.Seed, 3)))
	go func() {
		f.wg.Wait()
		close(f.done)
	}()
	go func() {
		defer f.wg.Done()
		select {
		case <-ctx.Done():
			f.stop(nil)
		case <-f.quit:
		}
	}()
	return f, nil
}

func checkBER(ber float64) error {
	if !(ber >= 0 && ber <= 1) {
		return fmt.Errorf("flipper: bit error rate %g, want 0..1", ber)
	}
	return nil
}

// SetBER changes the bit error rate from the next relayed chunk on.
func (f *Flipper) SetBER(ber float64) error {
	if err := checkBER(ber); err != nil {
		return err
	}
	f.ber.Store(math.Float64bits(ber))
	return nil
}

// BER is the current bit error rate.
func (f *Flipper) BER() float64 { return math.Float64frombits(f.ber.Load()) }

// SetBursts changes the burst interval (0: no more bursts); the next burst
// comes one interval after the call.
func (f *Flipper) SetBursts(every time.Duration) {
	if every < 0 {
		every = 0
	}
	f.every.Store(int64(every))
	select {
	case f.reconf <- struct{}{}:
	default:
	}
}

// Stats returns the counters; safe at any time from any goroutine.
func (f *Flipper) Stats() FlipperStats {
	var s FlipperStats
	for d := range 2 {
		s.Bytes[d] = f.bytes[d].Load()
		s.Flipped[d] = f.flipped[d].Load()
	}
	s.Bursts = f.bursts.Load()
	s.BurstBytes = f.burstBytes.Load()
	return s
}

// Done is closed once the Flipper has stopped and its goroutines have exited.
func (f *Flipper) Done() <-chan struct{} { return f.done }

// Err is the read or write error that stopped the Flipper, nil if it was
// stopped by Close or its context (or is still running).
func (f *Flipper) Err() error {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	return f.err
}

// Close stops the relay, closes both ends and waits until the Flipper's
// goroutines have exited. It returns Err. Safe to call more than once.
func (f *Flipper) Close() error {
	f.stop(nil)
	<-f.done
	return f.Err()
}

// stop records cause (if it is the first stop), and closes quit and both
// ends, which unblocks the goroutines.
func (f *Flipper) stop(cause error) {
	f.stopOnce.Do(func() {
		f.errMu.Lock()
		f.err = cause
		f.errMu.Unlock()
		close(f.quit)
		for _, e := range f.ends {
			e.Close()
		}
	})
}

func (f *Flipper) stopping() bool {
	select {
	case <-f.quit:
		return true
	default:
		return false
	}
}

// relay copies ends[d] into ends[1-d], flipping bits.
func (f *Flipper) relay(d int, rng *rand.Rand) {
	defer f.wg.Done()
	src, dst := f.ends[d], f.ends[1-d]
	names := [2]string{"a", "b"}
	buf := make([]byte, f.cfg.Chunk)
	var fl biterr.Flipper
	for {
		n, err := src.Read(buf)
		if n > 0 {
			flips, _ := fl.Flip(buf[:n], f.BER(), rng)
			// Counted before the write, so that a reader that got the
			// bytes sees them counted.
			f.flipped[d].Add(uint64(flips))
			f.bytes[d].Add(uint64(n))
			f.wmu[1-d].Lock()
			_, werr := dst.Write(buf[:n])
			f.wmu[1-d].Unlock()
			if werr != nil {
				if !f.stopping() {
					f.stop(fmt.Errorf("flipper: write %s: %w", names[1-d], werr))
				}
				return
			}
		}
		if err != nil {
			if !f.stopping() {
				f.stop(fmt.Errorf("flipper: read %s: %w", names[d], err))
			}
			return
		}
	}
}

// burster injects bursts of random bytes into both directions.
func (f *Flipper) burster(rng *rand.Rand) {
	defer f.wg.Done()
	for {
		every := time.Duration(f.every.Load())
		if every <= 0 {
			select {
			case <-f.quit:
				return
			case <-f.reconf:
				continue
			}
		}
		t := time.NewTimer(every)
		select {
		case <-f.quit:
			t.Stop()
			return
		case <-f.reconf:
			t.Stop()
			continue
		case <-t.C:
		}
		f.bursts.Add(1)
		for d := range 2 {
			b := make([]byte, f.cfg.BurstMin+rng.IntN(f.cfg.BurstMax-f.cfg.BurstMin+1))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			f.burstBytes.Add(uint64(len(b)))
			f.wmu[d].Lock()
			_, err := f.ends[d].Write(b)
			f.wmu[d].Unlock()
			if err != nil {
				if !f.stopping() {
					f.stop(fmt.Errorf("flipper: burst into %s: %w", [2]string{"a", "b"}[d], err))
				}
				return
			}
		}
	}
}

// OpenRawTTY opens a terminal device (such as a socat pty link) for the
// Flipper: read-write, not as the controlling terminal, non-blocking (so the
// *os.File is served by the runtime poller and Close unblocks a pending Read
// or Write), in raw mode without echo.
func OpenRawTTY(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := rawtty.MakeRaw(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("raw mode on %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	if f == nil {
		unix.Close(fd)
		return nil, errors.New("os.NewFile failed for " + path)
	}
	return f, nil
}
