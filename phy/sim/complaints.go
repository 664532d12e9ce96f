package sim

import (
	"net/netip"
	"sync"
	"time"
)

// complaintEvery is how often at most the UDP medium logs a complaint
// (junk, a refused hello, a failed tag) about one source address.
const complaintEvery = 10 * time.Second

// maxComplainers bounds the sources a complaintLimiter remembers; past it,
// complaints about new sources are suppressed (and counted) until old
// entries age out.
const maxComplainers = 1024

// complaintLimiter rate-limits log lines per source IP address: at most one
// per period, and the line after a quiet spell says how many were
// suppressed. Memory is bounded by maxComplainers. Safe from any goroutine;
// the time is passed in.
type complaintLimiter struct {
	period time.Duration

	mu         sync.Mutex
	srcs       map[netip.Addr]*complainer
	overflow   uint64 // complaints suppressed because the table was full
	suppressed uint64 // all complaints suppressed
}

type complainer struct {
	last       time.Time
	suppressed int
}

func newComplaintLimiter(period time.Duration) *complaintLimiter {
	return &complaintLimiter{period: period, srcs: make(map[netip.Addr]*complainer)}
}

// allow says whether a complaint about src may be logged now, and how many
// about src were suppressed since the last one logged.
func (l *complaintLimiter) allow(now time.Time, src netip.Addr) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.srcs[src]
	if c == nil {
		if len(l.srcs) >= maxComplainers {
			for a, old := range l.srcs {
				if now.Sub(old.last) >= l.period {
					delete(l.srcs, a)
				}
			}
			if len(l.srcs) >= maxComplainers {
				l.overflow++
				l.suppressed++
				return false, 0
			}
		}
		l.srcs[src] = &complainer{last: now}
		return true, 0
	}
	if now.Sub(c.last) < l.period {
		c.suppressed++
		l.suppressed++
		return false, 0
	}
	n := c.suppressed
	c.last, c.suppressed = now, 0
	return true, n
}

// total is the number of complaints suppressed so far.
func (l *complaintLimiter) total() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.suppressed
}
