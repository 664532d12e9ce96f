package phytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// StreamEnd is a FarEnd over a byte stream: a TCP connection, a pty master.
// The harness attaches each new connection (Attach) and supplies what is
// specific to the modem: framing, hanging up and coming back, carrier.
// Reading runs in a goroutine per attached connection, which exits when
// the connection fails or is closed (Attach of the next one, Close).
type StreamEnd struct {
	// Encode turns a frame into the bytes Send writes; nil sends it as is.
	Encode func(frame []byte) []byte
	// NewDecoder, if set, returns a decoder for one connection: it is fed
	// what the far end reads and calls out with each burst the modem wrote
	// (a KISS data frame's data). Nil: a raw stream, Expect compares bytes.
	NewDecoder func() func(in []byte, out func(burst []byte))
	// OnHangUp and OnReturn do what HangUp and Return mean for this modem
	// (close the listener and the connection; unplug the device). OnCarrier
	// drives the carrier.
	OnHangUp, OnReturn func()
	OnCarrier          func(on bool)

	mu      sync.Mutex
	conn    io.ReadWriteCloser // current connection; nil while none
	gen     int                // bumped by each Attach and Detach
	closed  bool
	stalled bool
	bursts  [][]byte      // framed: bursts read, oldest first
	raw     []byte        // raw: bytes read
	changed chan struct{} // closed (and replaced) at every change: a broadcast
}

// changes returns the channel closed at the next change. s.mu is held.
func (s *StreamEnd) changes() <-chan struct{} {
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

// bump wakes everyone waiting for a change. s.mu is held.
func (s *StreamEnd) bump() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// Attach makes c the connection to the modem, closing the previous one,
// and starts reading it.
func (s *StreamEnd) Attach(c io.ReadWriteCloser) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	old := s.conn
	s.conn = c
	s.gen++
	gen := s.gen
	s.bump()
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
	go s.read(c, gen)
}

// Detach closes the current connection, if any.
func (s *StreamEnd) Detach() {
	s.mu.Lock()
	c := s.conn
	s.conn = nil
	s.gen++
	s.bump()
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// Close detaches and refuses further connections; a blocked Send returns.
func (s *StreamEnd) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.Detach()
}

// read reads c until it fails or is no longer the current connection.
func (s *StreamEnd) read(c io.ReadWriteCloser, gen int) {
	var dec func([]byte, func([]byte))
	if s.NewDecoder != nil {
		dec = s.NewDecoder()
	}
	buf := make([]byte, 4096)
	for {
		s.mu.Lock()
		for s.stalled && s.gen == gen {
			ch := s.changes()
			s.mu.Unlock()
			<-ch
			s.mu.Lock()
		}
		current := s.gen == gen
		s.mu.Unlock()
		if !current {
			return
		}
		n, err := c.Read(buf)
		s.mu.Lock()
		if s.gen == gen && n > 0 {
			if dec == nil {
				s.raw = append(s.raw, buf[:n]...)
			} else {
				dec(buf[:n], func(b []byte) { s.bursts = append(s.bursts, bytes.Clone(b)) })
			}
			s.bump()
		}
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Send writes frame (encoded) to the current connection, waiting up to
// Patience for one.
func (s *StreamEnd) Send(frame []byte) error {
	if s.Encode != nil {
		frame = s.Encode(frame)
	}
	timer := time.NewTimer(Patience)
	defer timer.Stop()
	for {
		s.mu.Lock()
		c, closed, ch := s.conn, s.closed, s.changes()
		s.mu.Unlock()
		if closed {
			return errors.New("far end closed")
		}
		if c != nil {
			_, err := c.Write(frame)
			return err
		}
		select {
		case <-ch:
		case <-timer.C:
			return fmt.Errorf("no connection from the modem in %v", Patience)
		}
	}
}

// Expect waits up to d for the next burst the modem wrote to be b.
func (s *StreamEnd) Expect(b []byte, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if s.NewDecoder != nil && len(s.bursts) > 0 {
			got := s.bursts[0]
			s.bursts = s.bursts[1:]
			s.mu.Unlock()
			if !bytes.Equal(got, b) {
				return fmt.Errorf("modem wrote %d bytes %.32x..., want %d bytes %.32x...", len(got), got, len(b), b)
			}
			return nil
		}
		if s.NewDecoder == nil && len(s.raw) >= len(b) {
			got := s.raw[:len(b)]
			s.raw = s.raw[len(b):]
			s.mu.Unlock()
			if !bytes.Equal(got, b) {
				return fmt.Errorf("modem wrote %.32x..., want %.32x...", got, b)
			}
			return nil
		}
		have := len(s.raw) + len(s.bursts)
		ch := s.changes()
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return fmt.Errorf("the modem did not write a %d-byte burst in %v (%d bytes or bursts read)", len(b), d, have)
		}
	}
}

// Stall stops reading the connection (what is read already stays).
func (s *StreamEnd) Stall() {
	s.mu.Lock()
	s.stalled = true
	s.mu.Unlock()
}

// Resume reads again and discards what was read so far.
func (s *StreamEnd) Resume() {
	s.mu.Lock()
	s.stalled = false
	s.bursts, s.raw = nil, nil
	s.bump()
	s.mu.Unlock()
}

// HangUp calls OnHangUp.
func (s *StreamEnd) HangUp() {
	if s.OnHangUp != nil {
		s.OnHangUp()
	}
}

// Return calls OnReturn.
func (s *StreamEnd) Return() {
	if s.OnReturn != nil {
		s.OnReturn()
	}
}

// Carrier calls OnCarrier.
func (s *StreamEnd) Carrier(on bool) {
	if s.OnCarrier != nil {
		s.OnCarrier(on)
	}
}
