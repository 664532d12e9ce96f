package direwolftest

// The plain-KISS reference: what two ordinary KISS clients get from the
// Dire Wolf pair, with no slided in between, so that slided's figures can be
// read as a ratio to the TNC alone (issue 14). A bulk sender writes all its
// frames to its TNC at once, as a KISS client with a queue does, and Dire
// Wolf sends what it has queued in one transmission after one TXDELAY (up
// to 256 frames); an echo client answers each frame as it arrives.
//
// go test ./cmd/slided -run '^$' -bench DirewolfVersusKISS -benchtime 1x -v
// runs it next to two daemons on a second pair (docs/modems.md).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/slided/slided/phy/kiss/kissproto"
)

// KISSParams are the channel-access settings a reference client sends its
// TNC on connect, as KISS commands on port 0 (each time 0 to 2.55 s, in
// 10 ms units).
type KISSParams struct {
	TXDelay     time.Duration
	Persistence int // P: p = (P+1)/256
	SlotTime    time.Duration
	TXTail      time.Duration
}

// DefaultKISSParams are Dire Wolf's own defaults, which are slided's KISS
// defaults too: TXDELAY 300 ms, P 63, SLOTTIME 100 ms, TXTAIL 100 ms.
var DefaultKISSParams = KISSParams{TXDelay: 300 * time.Millisecond, Persistence: 63, SlotTime: 100 * time.Millisecond, TXTail: 100 * time.Millisecond}

// frames encodes p as KISS commands.
func (p KISSParams) frames() ([]byte, error) {
	var b []byte
	for _, c := range []struct {
		cmd byte
		v   time.Duration
	}{{kissproto.CmdTXDelay, p.TXDelay}, {kissproto.CmdSlotTime, p.SlotTime}, {kissproto.CmdTXTail, p.TXTail}} {
		u := c.v / (10 * time.Millisecond)
		if u < 0 || u > 255 || c.v%(10*time.Millisecond) != 0 {
			return nil, fmt.Errorf("direwolftest: %v is not 0 to 2.55 s in 10 ms steps", c.v)
		}
		b = kissproto.AppendFrame(b, 0, c.cmd, []byte{byte(u)})
	}
	if p.Persistence < 0 || p.Persistence > 255 {
		return nil, fmt.Errorf("direwolftest: persistence %d (0 to 255)", p.Persistence)
	}
	b = kissproto.AppendFrame(b, 0, kissproto.CmdPersistence, []byte{byte(p.Persistence)})
	return append(b, kissproto.AppendFrame(nil, 0, kissproto.CmdFullDuplex, []byte{0})...), nil
}

// clientWarmup is how long NewClient waits for the TNC to read a new
// client (tests of the reference itself shorten it).
var clientWarmup = 1500 * time.Millisecond

// Client is a plain KISS client of one TNC: it writes data frames on port
// 0 and hands up the data frames the TNC delivers, with their arrival time.
// Its reader goroutine exits when Close closes the connection.
type Client struct {
	c  net.Conn
	rx chan rxFrame
}

type rxFrame struct {
	data []byte
	at   time.Time
}

// NewClient sends the parameters on c and starts the reader. Dire Wolf reads
// a new client only after up to a second: NewClient waits 1.5 s for that.
func NewClient(c net.Conn, p KISSParams) (*Client, error) {
	b, err := p.frames()
	if err != nil {
		return nil, err
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b); err != nil {
		return nil, fmt.Errorf("direwolftest: kiss parameters: %w", err)
	}
	cl := &Client{c: c, rx: make(chan rxFrame, 1024)}
	go cl.read()
	time.Sleep(clientWarmup)
	return cl, nil
}

func (cl *Client) read() {
	defer close(cl.rx)
	d := kissproto.NewDecoder(4096)
	buf := make([]byte, 4096)
	for {
		n, err := cl.c.Read(buf)
		now := time.Now()
		d.Feed(buf[:n], func(port, cmd byte, data []byte) {
			if port == 0 && cmd == kissproto.CmdData {
				select {
				case cl.rx <- rxFrame{append([]byte(nil), data...), now}:
				default: // nobody reads: dropped (bounded)
				}
			}
		})
		if err != nil {
			return
		}
	}
}

// Send writes frames as KISS data frames, all in one write.
func (cl *Client) Send(frames ...[]byte) error {
	var b []byte
	for _, f := range frames {
		b = kissproto.AppendFrame(b, 0, kissproto.CmdData, f)
	}
	cl.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := cl.c.Write(b)
	return err
}

// Close closes the connection; the reader exits.
func (cl *Client) Close() error { return cl.c.Close() }

// frame is size bytes (at least 16, Dire Wolf's minimum being 15) that
// start with flow and seq.
func frame(flow, seq uint32, size int) []byte {
	b := make([]byte, max(size, 16))
	binary.BigEndian.PutUint32(b, flow)
	binary.BigEndian.PutUint32(b[4:], seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(i*31) ^ byte(seq)
	}
	return b
}

// Flow is what a bulk flow delivered.
type Flow struct {
	Sent, Received int
	First, Last    time.Time // arrivals of the first and last frame
	Bytes          int64     // bytes received, the first frame's included
}

// Goodput is the payload rate from the first arrival to the last, counting
// the bytes after the first frame (the first starts the clock), as the
// daemons' benchmarks count it; 0 with fewer than two frames.
func (f Flow) Goodput() float64 {
	d := f.Last.Sub(f.First).Seconds()
	if f.Received < 2 || d <= 0 {
		return 0
	}
	return float64(f.Bytes-f.Bytes/int64(f.Received)) * 8 / d
}

// Bulk sends n frames of size bytes from a to b, all written to a's TNC at
// once, and collects them at b until all came, nothing came for idle, or
// ctx ends.
func Bulk(ctx context.Context, a, b *Client, n, size int, idle time.Duration) (Flow, error) {
	const flow = 0xB0B0
	fs := make([][]byte, n)
	for i := range fs {
		fs[i] = frame(flow, uint32(i), size)
	}
	f := Flow{Sent: n}
	if err := a.Send(fs...); err != nil {
		return f, err
	}
	seen := make(map[uint32]bool, n)
	t := time.NewTimer(idle)
	defer t.Stop()
	for f.Received < n {
		select {
		case <-ctx.Done():
			return f, ctx.Err()
		case <-t.C:
			return f, nil
		case r, ok := <-b.rx:
			if !ok {
				return f, errors.New("direwolftest: receiver's connection closed")
			}
			if len(r.data) < 8 || binary.BigEndian.Uint32(r.data) != flow || seen[binary.BigEndian.Uint32(r.data[4:])] {
				continue
			}
			seen[binary.BigEndian.Uint32(r.data[4:])] = true
			if f.Received == 0 {
				f.First = r.at
			}
			f.Received++
			f.Last = r.at
			f.Bytes += int64(len(r.data))
			t.Reset(idle)
		}
	}
	return f, nil
}

// Echoes is what an echo run measured.
type Echoes struct {
	Sent     int
	RTTs     []time.Duration // of the answers that came within the wait, in order
	Answered int             // len(RTTs)
}

// Median is the median round trip of the answered echoes (0: none).
func (e Echoes) Median() time.Duration { return Median(e.RTTs) }

// Median is the median of ds (the mean of the middle two for an even
// count); 0 for none.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Echo sends n frames of size bytes from a to b, one at a time; b's client
// answers each at once with the same bytes. Each waits up to wait for its
// answer before the next is sent (late answers are not counted).
func Echo(ctx context.Context, a, b *Client, n, size int, wait time.Duration) (Echoes, error) {
	const flow = 0xEC40
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	echoed := make(chan error, 1)
	go func() { // b's client: answer every frame of the flow
		for {
			select {
			case <-ctx.Done():
				echoed <- nil
				return
			case r, ok := <-b.rx:
				if !ok {
					echoed <- errors.New("direwolftest: echo side's connection closed")
					return
				}
				if len(r.data) >= 8 && binary.BigEndian.Uint32(r.data) == flow {
					if err := b.Send(r.data); err != nil {
						echoed <- err
						return
					}
				}
			}
		}
	}()
	var e Echoes
	for i := range n {
		sent := time.Now()
		if err := a.Send(frame(flow, uint32(i), size)); err != nil {
			return e, err
		}
		e.Sent++
		t := time.NewTimer(wait)
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return e, ctx.Err()
			case err := <-echoed:
				t.Stop()
				return e, err
			case <-t.C:
				break wait
			case r, ok := <-a.rx:
				if !ok {
					t.Stop()
					return e, errors.New("direwolftest: sender's connection closed")
				}
				if len(r.data) >= 8 && binary.BigEndian.Uint32(r.data) == flow && binary.BigEndian.Uint32(r.data[4:]) == uint32(i) {
					e.RTTs = append(e.RTTs, r.at.Sub(sent))
					t.Stop()
					break wait
				}
			}
		}
	}
	e.Answered = len(e.RTTs)
	return e, nil
}
