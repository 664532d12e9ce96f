package capture

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/slided/slided/framing"
)

// DefaultQueueLen is the number of records a Queue holds when NewQueue is
// given 0.
const DefaultQueueLen = 256

// Queue puts a Writer behind a bounded queue and a goroutine of its own, so
// that the caller (the daemon's loop) never waits for the disk: WriteLink
// copies the frame into one of a fixed set of buffers and returns; when
// every buffer is waiting for the disk the frame is dropped and counted in
// Stats.Dropped. Memory is bounded by the queue length times the largest
// record (at most SnapLen bytes each).
//
// WriteLink is meant for one goroutine; Stats and Close may be called from
// any. The writer goroutine exits when Close returns.
type Queue struct {
	w       *Writer
	free    chan *queued // buffers ready for WriteLink
	full    chan *queued // records waiting for the writer goroutine
	stop    chan struct{}
	done    chan struct{}
	closing atomic.Bool
	dropped atomic.Uint64
	once    sync.Once
	err     error       // Close's result
	onErr   func(error) // see NewQueue
}

type queued struct {
	t   time.Time
	dir Direction
	h   framing.Header
	buf []byte
}

// NewQueue starts the writer goroutine for w with n buffers (0 means
// DefaultQueueLen). The Queue owns w from now on: Close closes it. onErr,
// if not nil, is called once, from the writer goroutine, with the write
// error that turns the Writer off (for the log).
func NewQueue(w *Writer, n int, onErr func(error)) *Queue {
	if n <= 0 {
		n = DefaultQueueLen
	}
	q := &Queue{w: w, free: make(chan *queued, n), full: make(chan *queued, n),
		stop: make(chan struct{}), done: make(chan struct{}), onErr: onErr}
	for range n {
		q.free <- &queued{}
	}
	go q.run()
	return q
}

// WriteLink queues one frame, as Writer.WriteLink would write it, without
// blocking. It does not keep payload. It reports false if the frame was
// dropped: the queue is full, or closed.
func (q *Queue) WriteLink(t time.Time, dir Direction, h framing.Header, payload []byte) bool {
	if q.closing.Load() {
		q.dropped.Add(1)
		return false
	}
	var r *queued
	select {
	case r = <-q.free:
	default:
		q.dropped.Add(1)
		return false
	}
	r.t, r.dir, r.h = t, dir, h
	r.buf = append(r.buf[:0], payload[:min(len(payload), SnapLen)]...)
	q.full <- r // never blocks: full holds every buffer there is
	return true
}

// run writes queued records until Close, then writes what is still queued.
func (q *Queue) run() {
	defer close(q.done)
	for {
		select {
		case r := <-q.full:
			q.write(r)
		case <-q.stop:
			for {
				select {
				case r := <-q.full:
					q.write(r)
				default:
					return
				}
			}
		}
	}
}

func (q *Queue) write(r *queued) {
	// A write error turns the Writer off, and is returned once; Stats.Err
	// reports it after.
	if err := q.w.WriteLink(r.t, r.dir, r.h, r.buf); err != nil && q.onErr != nil {
		q.onErr(err)
	}
	q.free <- r
}

// Stats returns the Writer's counters and the queue's drops.
func (q *Queue) Stats() Stats {
	st := q.w.Stats()
	st.Dropped = q.dropped.Load()
	return st
}

// Close stops taking frames, waits until the queued ones are written (a
// stuck disk makes it wait as long), closes the Writer and returns its
// error. It is idempotent.
func (q *Queue) Close() error {
	q.once.Do(func() {
		q.closing.Store(true)
		close(q.stop)
		<-q.done
		q.err = q.w.Close()
	})
	return q.err
}
