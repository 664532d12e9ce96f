//go:build linux

package precise

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

type timer struct {
	fd   int
	f    *os.File
	c    chan time.Time
	done chan struct{}
}

// New returns a stopped Timer backed by a timerfd on CLOCK_MONOTONIC. Its
// goroutine reads the timerfd through the runtime's poller and exits when
// Close is called.
func New() (*Timer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("precise timer: timerfd_create: %w", err)
	}
	c := make(chan time.Time, 1)
	tm := &Timer{C: c, t: timer{fd: fd, f: os.NewFile(uintptr(fd), "timerfd"), c: c, done: make(chan struct{})}}
	go tm.t.run()
	return tm, nil
}

// run hands each expiry to C, dropping it if one is still there (a
// one-shot timer has nothing more to say). It exits when the file is
// closed.
func (t *timer) run() {
	defer close(t.done)
	var buf [8]byte
	for {
		if _, err := t.f.Read(buf[:]); err != nil {
			return // closed (os.ErrClosed), or the file failed: Close follows
		}
		select {
		case t.c <- time.Now():
		default:
		}
	}
}

func (tm *Timer) reset(d time.Duration) {
	tm.drain()
	if d <= 0 {
		d = 1 // a zero it_value disarms the timerfd
	}
	its := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	_ = unix.TimerfdSettime(tm.t.fd, 0, &its, nil) // EINVAL only for bad values, which d cannot make
}

func (tm *Timer) stop() {
	var its unix.ItimerSpec
	_ = unix.TimerfdSettime(tm.t.fd, 0, &its, nil)
	tm.drain()
}

func (tm *Timer) drain() {
	select {
	case <-tm.t.c:
	default:
	}
}

func (tm *Timer) close() error {
	tm.stop()
	err := tm.t.f.Close()
	<-tm.t.done
	return err
}
