package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/internal/redial"
	"github.com/slided/slided/internal/selfstall"
	"github.com/slided/slided/phy"
)

// ErrRejected: the server refused the client (see RejectError).
var ErrRejected = errors.New("sim: rejected by the medium server")

// errSilent: the medium answered nothing for the keep-alive timeout.
var errSilent = errors.New("sim: medium silent")

// RejectError is the server's error message. It wraps ErrRejected, and also
// ErrNodeInUse or ErrInvalidNode when that was the reason.
type RejectError struct {
	Code uint8
	Text string
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("sim: rejected by the medium server (code %d): %s", e.Code, e.Text)
}

// Unwrap lets errors.Is find ErrRejected and the specific reason.
func (e *RejectError) Unwrap() []error {
	switch e.Code {
	case codeNodeInUse:
		return []error{ErrRejected, ErrNodeInUse}
	case codeBadNode:
		return []error{ErrRejected, ErrInvalidNode}
	}
	return []error{ErrRejected}
}

// EventQueue is the capacity of a client's Events channel; a client holds
// up to maxQueuedFrames more received frames behind it (eventPump).
const EventQueue = 64

const (
	handshakeTimeout = 5 * time.Second
	// writeTimeout is the write watchdog: a write to the medium that does
	// not finish within it (the server stopped reading) takes the
	// connection down.
	writeTimeout = 2 * time.Second
	// kaInterval: an idle stream client that heard nothing from the server
	// for this long pings it (version 2); idle, that is one ping and one
	// pong every kaInterval, the only thing that wakes an idle client. Each
	// wake costs an idle daemon a dozen context switches or more (the Go
	// runtime's, around the timer and the two syscalls), so idle pings are
	// rare: at 3 s they alone made 3.5 wake-ups a second (issue 11). A
	// medium that died closes the socket, which the client sees at once;
	// the ping finds only a medium that hangs with its socket open, and an
	// idle client loses nothing by finding it late.
	kaInterval = 30 * time.Second
	// kaTimeout: a server not heard from for this long is gone (the ping
	// sent after kaInterval unanswered): the client reports Down and
	// reconnects.
	kaTimeout = 2 * kaInterval
	// kaBusyInterval and kaBusyTimeout take their place while a Transmit
	// waits for its TxDone, counted from the later of the last message
	// heard and the Transmit: a hung medium then holds up the link, so it
	// is found within seconds (three pings unanswered).
	kaBusyInterval = 3 * time.Second
	kaBusyTimeout  = 3 * kaBusyInterval
	// kaSlack: a ping is sent up to this much before its interval is
	// over, so that a round trip heard after the timer was set does not
	// cost a second wake-up for the rest of it.
	kaSlack = 500 * time.Millisecond
)

// Client is a PHY on a medium server over a stream socket (it satisfies
// bridge.PHY and keeps the modem contract of phy/phy.go).
//
// Goroutines:
//   - run, started by Dial, reads the connection, turns messages into events
//     and reconnects when the server goes away; it exits on Close.
//   - per connection, a writer writes what Transmit queued and the
//     keep-alive pings, each write bounded by writeTimeout, and takes the
//     connection down when the server has been silent for kaTimeout; it
//     exits when the connection ends.
//   - the event pump hands events to the consumer of Events (eventPump); it
//     exits after run, and closes Events.
//
// Transmit, Info and Close are safe from any goroutine and never wait on
// the socket or the consumer.
type Client struct {
	clientBase
	path   string
	node   NodeID
	dialFn func(ctx context.Context) (net.Conn, error)

	cur   *clientConn // nil while down; guarded by mu
	split Splitter    // Transmit's, guarded by mu

	// For the tests: how often a writer set its keep-alive timer, and
	// how often that timer woke it.
	kaResets, kaWakes atomic.Uint64
}

// clientConn is one connection to the server.
type clientConn struct {
	nc      net.Conn
	mr      *msgReader
	version uint8        // of the server's welcome; pings from 2 on
	heard   atomic.Int64 // time of the last message from the server, unix ns
	wake    chan struct{}
	done    chan struct{} // closed by run when the connection ended

	// Guarded by Client.mu.
	out []byte // encoded messages for the writer
	why error  // why the writer took the connection down
}

// Dial connects node to the medium server at path. It retries with capped
// backoff, logging each failure, until it is attached or ctx is done; a
// rejection by the server (node id in use, bad id, wrong version) is returned
// at once. ctx bounds Dial only; the client then lives until Close and
// reconnects by itself, reporting Down and then Up. The first event is Up.
func Dial(ctx context.Context, path string, node NodeID, log zerolog.Logger) (*Client, error) {
	return dial(ctx, path, node, log, 100*time.Millisecond, 2*time.Second)
}

func dial(ctx context.Context, path string, node NodeID, log zerolog.Logger, bmin, bmax time.Duration) (*Client, error) {
	dialFn := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	return dialWith(ctx, path, dialFn, node, log, bmin, bmax)
}

// dialWith is Dial with the connection made by dialFn (tests hand in pipes).
func dialWith(ctx context.Context, path string, dialFn func(context.Context) (net.Conn, error), node NodeID, log zerolog.Logger, bmin, bmax time.Duration) (*Client, error) {
	c, err := newClient(path, dialFn, node, log, bmin, bmax)
	if err != nil {
		return nil, err
	}
	if err := c.attach(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// newClient makes a Client that is not yet attached (attach); tests set
// its clock in between.
func newClient(path string, dialFn func(context.Context) (net.Conn, error), node NodeID, log zerolog.Logger, bmin, bmax time.Duration) (*Client, error) {
	if node == 0 || node == 0xFF {
		return nil, fmt.Errorf("%w: %d", ErrInvalidNode, node)
	}
	c := &Client{path: path, node: node, dialFn: dialFn}
	c.init(log.With().Str("medium", path).Uint8("node", node).Logger(), "sim: medium server", bmin, bmax)
	return c, nil
}

// attach connects c for the first time, as Dial says, and starts it.
func (c *Client) attach(ctx context.Context) error {
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	cc, info, err := c.connectLoop(dctx, 0, true)
	if err != nil {
		c.cancel()
		return err
	}
	c.cur, c.info = cc, info
	c.start(func() { c.run(cc) })
	return nil
}

// Dropped counts received frames dropped because the consumer of Events
// fell behind by more than EventQueue + 256 frames.
func (c *Client) Dropped() uint64 { return c.pump.dropped.Load() }

// Transmit queues b (copied) for the medium and returns at once; TxDone
// follows after the airtime. When the server speaks version 3
// (Info().MaxBurstFrames > 1) and b is several slided frames back to back,
// each frame goes on air as a transmission of its own, right after the one
// before, and one TxDone follows the last (as a KISS TNC sends a burst);
// otherwise b is one transmission. Errors wrap phy.ErrClosed after Close,
// phy.ErrDown while the server is unreachable, phy.ErrBusy before the
// previous TxDone or Down, phy.ErrEmpty, and phy.ErrTooLarge for a
// transmission or a frame of a burst longer than Info().MaxFrame or a burst
// of more than Info().MaxBurstFrames frames.
func (c *Client) Transmit(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cc := c.cur
	var frames [][]byte
	if cc != nil && cc.version >= 3 {
		frames = c.split.Split(b)
	}
	longest := len(b)
	if frames != nil {
		longest = 0
		for _, f := range frames {
			longest = max(longest, len(f))
		}
	}
	if err := c.checkTransmitLocked(cc != nil, longest); err != nil {
		return err
	}
	if len(frames) > c.info.MaxBurstFrames {
		return fmt.Errorf("sim: transmit a burst of %d frames (max %d): %w", len(frames), c.info.MaxBurstFrames, phy.ErrTooLarge)
	}
	if frames != nil {
		for _, f := range frames[:len(frames)-1] {
			cc.out = appendData(cc.out, msgFrame, f)
		}
		b = frames[len(frames)-1]
	}
	cc.out = appendData(cc.out, msgTransmit, b)
	c.txBusy = true
	select {
	case cc.wake <- struct{}{}:
	default:
	}
	return nil
}

// Close disconnects, stops the goroutines and closes Events. It returns even
// if nobody reads Events or a write is wedged. It is safe to call more than
// once.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	if c.cur != nil {
		c.cur.nc.Close()
	}
	c.mu.Unlock()
	c.cancel()
	<-c.done
	return nil
}

// run is the reading goroutine.
func (c *Client) run(cc *clientConn) {
	for {
		go c.write(cc)
		err := c.read(cc)
		cc.nc.Close()
		close(cc.done)
		c.mu.Lock()
		if cc.why != nil {
			err = cc.why
		}
		c.cur, c.txBusy = nil, false
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		wait := c.redial.Lost(time.Now(), err)
		c.reportDown()
		var info phy.Info
		cc, info, err = c.connectLoop(c.ctx, wait, false)
		if err != nil {
			return // closed
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			cc.nc.Close()
			return
		}
		c.cur, c.info = cc, info
		c.mu.Unlock()
		c.pump.push(phy.Event{Kind: phy.Up})
	}
}

// read turns messages into events until the connection fails.
func (c *Client) read(cc *clientConn) error {
	for {
		msg, err := cc.mr.next()
		if err != nil {
			return err
		}
		cc.heard.Store(c.now().UnixNano())
		var ev phy.Event
		switch msg.typ {
		case msgReceived:
			ev = phy.Event{Kind: phy.Received, Data: append([]byte(nil), msg.data...)}
		case msgCarrierOn, msgCarrierOff:
			c.carrierTo(msg.typ == msgCarrierOn)
			continue
		case msgTxDone:
			c.mu.Lock()
			busy := c.txBusy
			c.txBusy = false
			c.mu.Unlock()
			if !busy {
				continue // not ours (a transmit lost with a connection)
			}
			ev = phy.Event{Kind: phy.TxDone}
		case msgPong:
			continue
		case msgError:
			return &RejectError{Code: msg.code, Text: string(msg.data)}
		default:
			return fmt.Errorf("%w: unexpected type %d from server", errBadMessage, msg.typ)
		}
		c.pump.push(ev)
	}
}

// write is a connection's writer goroutine: it writes what Transmit queued
// and the keep-alive pings, and takes the connection down when a write does
// not finish within writeTimeout or the server was silent for kaTimeout
// (kaBusyTimeout while a TxDone is awaited). Idle, it wakes once per
// kaInterval.
//
// When it wakes much later than its timer was due, its own process did not
// run meanwhile (package selfstall): what the server sent waits in the
// socket for the reader, so the silence is not the server's. It then pings
// and counts the silence from now, a fresh grace period.
func (c *Client) write(cc *clientConn) {
	t := time.NewTimer(kaInterval)
	defer t.Stop()
	armed := c.now().Add(kaInterval) // what t is set for; zero: not pending
	var buf []byte
	var pinged, busySince, graceFrom time.Time
	var watch selfstall.Watch
	watch.Expect(c.now(), armed)
	fail := func(err error) {
		c.mu.Lock()
		if cc.why == nil {
			cc.why = err
		}
		c.mu.Unlock()
		cc.nc.Close() // the reader returns and run reports Down
	}
	for {
		select {
		case <-cc.done:
			return
		case <-cc.wake:
		case <-t.C:
			armed = time.Time{}
			c.kaWakes.Add(1)
		}
		now := c.now()
		stalled := false
		if late := watch.Stalled(now); late > 0 && cc.version >= 2 {
			c.selfStall(late)
			stalled, graceFrom = true, now
		}
		c.mu.Lock()
		buf = append(buf[:0], cc.out...)
		cc.out = cc.out[:0]
		busy := c.txBusy
		c.mu.Unlock()
		// Silence counts from the last message heard, and while a TxDone
		// is awaited from the Transmit at the latest.
		since := time.Unix(0, cc.heard.Load())
		interval, timeout := kaInterval, kaTimeout
		if busy {
			if busySince.IsZero() {
				busySince = now
			}
			if busySince.After(since) {
				since = busySince
			}
			interval, timeout = kaBusyInterval, kaBusyTimeout
		} else {
			busySince = time.Time{}
		}
		if graceFrom.After(since) {
			since = graceFrom
		}
		if cc.version >= 2 && now.Sub(since) >= timeout {
			fail(fmt.Errorf("%w: nothing heard for %v (%d pings unanswered)", errSilent, now.Sub(since).Round(time.Millisecond), timeout/interval-1))
			return
		}
		// A ping is due after interval of silence, within kaSlack: the
		// timer set for it fires a round trip before the silence since the
		// pong of the last ping is a whole interval.
		if cc.version >= 2 && (stalled || now.Sub(since) >= interval-kaSlack && now.Sub(pinged) >= interval-kaSlack) {
			buf = appendEmpty(buf, msgPing)
			pinged = now
		}
		if len(buf) > 0 {
			// The watchdog's deadline is cleared after the write rather
			// than moved later by the next: a pending deadline moved later
			// keeps its old time in the runtime's heap, and one left
			// pending fires by itself (a wake-up after every idle ping).
			cc.nc.SetWriteDeadline(now.Add(writeTimeout))
			if _, err := cc.nc.Write(buf); err != nil {
				fail(fmt.Errorf("sim: write to the medium: %w", err))
				return
			}
			cc.nc.SetWriteDeadline(time.Time{})
		}
		if cc.version < 2 {
			t.Stop()
			armed = time.Time{}
			watch.Expect(now, time.Time{})
			continue
		}
		next := since.Add(interval)
		if p := pinged.Add(interval); p.After(next) {
			next = p
		}
		if d := since.Add(timeout); d.Before(next) {
			next = d
		}
		// The timer is set again only when the deadline moves earlier (or
		// after it fired): a timer moved later keeps its old time in the
		// runtime's heap, which then wakes the process for nothing, and
		// under load every message moves the deadline later. A timer that
		// fires before the deadline finds nothing due and is set for the
		// rest.
		at := c.now()
		if armed.IsZero() || next.Before(armed) {
			t.Reset(next.Sub(at))
			armed = next
			c.kaResets.Add(1)
		}
		watch.Expect(at, armed)
	}
}

// connectLoop connects after wait, with backoff (package redial), until
// it succeeds or ctx is done. With permanent set, a rejection by the server
// ends it at once.
func (c *Client) connectLoop(ctx context.Context, wait time.Duration, permanent bool) (*clientConn, phy.Info, error) {
	type session struct {
		cc   *clientConn
		info phy.Info
	}
	s, err := redial.Redial(ctx, c.redial, wait, func(ctx context.Context) (session, error) {
		cc, info, err := c.connect(ctx)
		return session{cc, info}, err
	}, func(err error) bool { return permanent && errors.Is(err, ErrRejected) })
	if err != nil && ctx.Err() != nil {
		return nil, phy.Info{}, fmt.Errorf("sim: dial %s: %w", c.path, err)
	}
	return s.cc, s.info, err
}

// connect makes one attempt: dial, hello, welcome. A server that refuses
// protoVersion (one from before version 3) is asked again at once in
// oldProtoVersion.
func (c *Client) connect(ctx context.Context) (*clientConn, phy.Info, error) {
	cc, info, err := c.connectVersion(ctx, protoVersion)
	var rej *RejectError
	if errors.As(err, &rej) && rej.Code == codeVersion && ctx.Err() == nil {
		return c.connectVersion(ctx, oldProtoVersion)
	}
	return cc, info, err
}

// connectVersion is connect saying version in its hello.
func (c *Client) connectVersion(ctx context.Context, version uint8) (*clientConn, phy.Info, error) {
	nc, err := c.dialFn(ctx)
	if err != nil {
		return nil, phy.Info{}, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	fail := func(err error) (*clientConn, phy.Info, error) {
		nc.Close()
		return nil, phy.Info{}, err
	}
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := nc.Write(appendMessage(nil, &message{typ: msgHello, version: version, node: c.node})); err != nil {
		return fail(fmt.Errorf("sim: hello: %w", err))
	}
	mr := newMsgReader(nc)
	msg, err := mr.next()
	if err != nil {
		return fail(fmt.Errorf("sim: welcome: %w", err))
	}
	switch {
	case msg.typ == msgError:
		return fail(&RejectError{Code: msg.code, Text: string(msg.data)})
	case msg.typ != msgWelcome:
		return fail(fmt.Errorf("%w: expected welcome, got type %d", errBadMessage, msg.typ))
	case msg.version != version:
		return fail(&RejectError{Code: codeVersion, Text: fmt.Sprintf("server speaks protocol version %d", msg.version)})
	case msg.bitRate == 0:
		return fail(fmt.Errorf("%w: welcome with bit rate 0", errBadMessage))
	}
	nc.SetDeadline(time.Time{})
	maxFrame := int(msg.maxFrame)
	if maxFrame == 0 || maxFrame > MaxFrame {
		maxFrame = MaxFrame
	}
	if !stop() {
		return fail(ctx.Err())
	}
	cc := &clientConn{nc: nc, mr: mr, version: msg.version, wake: make(chan struct{}, 1), done: make(chan struct{})}
	cc.heard.Store(c.now().UnixNano())
	info := phy.Info{BitRate: int(msg.bitRate), MaxFrame: maxFrame, CarrierAtArrival: true}
	if msg.version >= 3 {
		info.MaxBurstFrames = BurstFrames
	}
	return cc, info, nil
}
