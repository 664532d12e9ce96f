//go:build linux

package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// SendStats is what a sender saw.
type SendStats struct {
	Sent    int           // datagrams handed to the kernel
	Bytes   int64         // UDP payload bytes of those
	Elapsed time.Duration // from the first send to the return
	Blocked time.Duration // time spent inside send calls longer than 1ms: the socket pushed back
	Errors  int           // sends that failed (for example ENOBUFS)
	// Late is the number sent in the second half of the blast, LateDur the
	// length of that half: the sender's rate once its socket buffer is full.
	Late    int
	LateDur time.Duration
}

// LateRate is the payload rate of the second half of the blast, bytes/s.
func (s SendStats) LateRate(size int) float64 {
	if s.LateDur <= 0 {
		return 0
	}
	return float64(s.Late*size) / s.LateDur.Seconds()
}

// Blast sends datagrams of size bytes (at least 16) from c to dst as fast as
// the socket accepts them, for at most d and at most max datagrams. Each
// datagram starts with flow (8 bytes) and a sequence number (8 bytes). Go's
// UDP writes wait when the socket buffer is full, as a blocking send() would.
func Blast(c *net.UDPConn, dst *net.UDPAddr, flow uint64, size int, d time.Duration, max int) SendStats {
	if size < 16 {
		size = 16
	}
	buf := make([]byte, size)
	binary.BigEndian.PutUint64(buf, flow)
	var st SendStats
	start := time.Now()
	end := start.Add(d)
	half := start.Add(d / 2)
	halfSent := -1
	var halfAt time.Time
	c.SetWriteDeadline(end)
	defer c.SetWriteDeadline(time.Time{})
	for i := 0; i < max && time.Now().Before(end); i++ {
		binary.BigEndian.PutUint64(buf[8:], uint64(i))
		t0 := time.Now()
		_, err := c.WriteToUDP(buf, dst)
		if dt := time.Since(t0); dt > time.Millisecond {
			st.Blocked += dt
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			st.Errors++
			continue
		}
		st.Sent++
		st.Bytes += int64(size)
		if halfSent < 0 && time.Now().After(half) {
			halfSent, halfAt = st.Sent, time.Now()
		}
	}
	st.Elapsed = time.Since(start)
	if halfSent >= 0 {
		st.Late, st.LateDur = st.Sent-halfSent, time.Since(halfAt)
	}
	return st
}

// RecvStats is what a receiver saw, per flow.
type RecvStats struct {
	Flows map[uint64]*FlowStats
	// First and Last are when the first and the last datagram arrived.
	First, Last time.Time
}

// FlowStats counts one flow's datagrams.
type FlowStats struct {
	Received   int
	Bytes      int64
	Duplicates int
	Reordered  int
	seen       map[uint64]bool
	next       uint64
	First      time.Time
	Last       time.Time
}

// Goodput is the flow's payload rate between its first and last datagram, bytes/s.
func (f *FlowStats) Goodput() float64 {
	d := f.Last.Sub(f.First).Seconds()
	if d <= 0 || f.Received < 2 {
		return 0
	}
	return float64(f.Bytes-f.Bytes/int64(f.Received)) / d
}

// Receive reads datagrams from c until no datagram has arrived for idle, or
// until deadline, whichever comes first.
func Receive(c *net.UDPConn, idle time.Duration, deadline time.Time) (*RecvStats, error) {
	rs := &RecvStats{Flows: make(map[uint64]*FlowStats)}
	buf := make([]byte, 65536)
	for {
		wait := time.Now().Add(idle)
		if wait.After(deadline) {
			wait = deadline
		}
		c.SetReadDeadline(wait)
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return rs, nil
			}
			return rs, fmt.Errorf("receive: %w", err)
		}
		now := time.Now()
		if n < 16 {
			continue
		}
		flow, seq := binary.BigEndian.Uint64(buf), binary.BigEndian.Uint64(buf[8:])
		f := rs.Flows[flow]
		if f == nil {
			f = &FlowStats{seen: make(map[uint64]bool), First: now}
			rs.Flows[flow] = f
		}
		if rs.First.IsZero() {
			rs.First = now
		}
		rs.Last, f.Last = now, now
		if f.seen[seq] {
			f.Duplicates++
			continue
		}
		f.seen[seq] = true
		if seq < f.next {
			f.Reordered++
		} else {
			f.next = seq + 1
		}
		f.Received++
		f.Bytes += int64(n)
	}
}

// Jain returns Jain's fairness index of xs: 1 when all are equal, 1/n when
// one takes everything.
func Jain(xs ...float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 0
	}
	return sum * sum / (float64(len(xs)) * sq)
}
