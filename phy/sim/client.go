package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/phy"
)

// Client errors.
var (
	// ErrDown: the medium server is not reachable right now; the client is
	// reconnecting by itself.
	ErrDown = errors.New("sim: medium down")
	// ErrBusy: Transmit was called before the TxDone of the previous one.
	ErrBusy = errors.New("sim: transmission outstanding")
	// ErrRejected: the server refused the client (see RejectError).
	ErrRejected = errors.New("sim: rejected by the medium server")
)

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

// EventQueue is the capacity of a Client's Events channel.
const EventQueue = 64

const (
	handshakeTimeout = 5 * time.Second
	writeTimeout     = 2 * time.Second
)

// backoff is the wait before retry number attempt (0-based): min doubling
// up to max.
func backoff(attempt int, min, max time.Duration) time.Duration {
	d := min
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// Client is a PHY on a medium server (it satisfies bridge.PHY).
//
// One goroutine, started by Dial, reads the connection, turns messages into
// events and reconnects when the server goes away; it exits on Close, after
// which Events is closed. Transmit and Info are safe from any goroutine.
//
// Events has room for EventQueue events. When the consumer falls behind, the
// reading goroutine blocks rather than drop anything (carrier events are
// never lost); the socket then fills, the server's queue for this node grows,
// and if the consumer stays behind the server disconnects the client, which
// reports Down, reconnects and reports Up.
type Client struct {
	path string
	node NodeID
	log  zerolog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	events chan phy.Event
	done   chan struct{} // closed when the reading goroutine has exited

	backoffMin, backoffMax time.Duration

	mu     sync.Mutex
	conn   net.Conn // nil while down
	info   phy.Info
	txBusy bool
	wbuf   []byte

	carrier bool // owned by the reading goroutine: last carrier event sent
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
	if node == 0 || node == 0xFF {
		return nil, fmt.Errorf("%w: %d", ErrInvalidNode, node)
	}
	c := &Client{
		path: path, node: node,
		log:        log.With().Str("medium", path).Uint8("node", node).Logger(),
		events:     make(chan phy.Event, EventQueue),
		done:       make(chan struct{}),
		backoffMin: bmin, backoffMax: bmax,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	nc, mr, info, err := c.connectLoop(dctx, true)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.conn, c.info = nc, info
	c.events <- phy.Event{Kind: phy.Up}
	go c.run(nc, mr)
	return c, nil
}

// Info returns the modem figures from the server's last welcome.
func (c *Client) Info() phy.Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// Events returns the channel of the client's reports; it is closed after
// Close.
func (c *Client) Events() <-chan phy.Event { return c.events }

// Transmit sends b to the medium; it returns once b is handed to the socket
// (it copies b), not after the airtime: TxDone follows. It returns ErrBusy
// before the previous TxDone, ErrFrameSize for an empty or too long b, and an
// error wrapping ErrDown while the server is unreachable.
func (c *Client) Transmit(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.conn == nil:
		return fmt.Errorf("sim: transmit: %w", ErrDown)
	case c.txBusy:
		return ErrBusy
	case len(b) == 0 || len(b) > c.info.MaxFrame:
		return fmt.Errorf("%w: %d bytes", ErrFrameSize, len(b))
	}
	c.wbuf = appendData(c.wbuf[:0], msgTransmit, b)
	c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.conn.Write(c.wbuf); err != nil {
		c.conn.Close() // the reading goroutine reports Down and reconnects
		c.conn = nil
		return fmt.Errorf("sim: transmit: %w (%w)", ErrDown, err)
	}
	c.txBusy = true
	return nil
}

// Close disconnects, stops the reading goroutine and closes Events. It is
// safe to call more than once.
func (c *Client) Close() error {
	c.cancel()
	c.mu.Lock()
	if c.conn != nil {
		c.conn.Close()
	}
	c.mu.Unlock()
	<-c.done
	return nil
}

// run is the reading goroutine.
func (c *Client) run(nc net.Conn, mr *msgReader) {
	defer close(c.done)
	defer close(c.events)
	for {
		err := c.read(mr)
		nc.Close()
		c.mu.Lock()
		c.conn, c.txBusy = nil, false
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		c.log.Warn().Err(err).Msg("sim: medium connection lost")
		if c.carrier {
			c.carrier = false
			if !c.emit(phy.Event{Kind: phy.CarrierOff}) {
				return
			}
		}
		if !c.emit(phy.Event{Kind: phy.Down}) {
			return
		}
		var info phy.Info
		nc, mr, info, err = c.connectLoop(c.ctx, false)
		if err != nil {
			return // closed
		}
		c.mu.Lock()
		if c.ctx.Err() != nil {
			c.mu.Unlock()
			nc.Close()
			return
		}
		c.conn, c.info = nc, info
		c.mu.Unlock()
		c.log.Info().Msg("sim: medium connection restored")
		if !c.emit(phy.Event{Kind: phy.Up}) {
			return
		}
	}
}

// read turns messages into events until the connection fails.
func (c *Client) read(mr *msgReader) error {
	for {
		msg, err := mr.next()
		if err != nil {
			return err
		}
		var ev phy.Event
		switch msg.typ {
		case msgReceived:
			ev = phy.Event{Kind: phy.Received, Data: append([]byte(nil), msg.data...)}
		case msgCarrierOn:
			c.carrier = true
			ev = phy.Event{Kind: phy.CarrierOn}
		case msgCarrierOff:
			c.carrier = false
			ev = phy.Event{Kind: phy.CarrierOff}
		case msgTxDone:
			c.mu.Lock()
			c.txBusy = false
			c.mu.Unlock()
			ev = phy.Event{Kind: phy.TxDone}
		case msgError:
			return &RejectError{Code: msg.code, Text: string(msg.data)}
		default:
			return fmt.Errorf("%w: unexpected type %d from server", errBadMessage, msg.typ)
		}
		if !c.emit(ev) {
			return c.ctx.Err()
		}
	}
}

// emit delivers ev, blocking while the channel is full; false after Close.
func (c *Client) emit(ev phy.Event) bool {
	select {
	case c.events <- ev:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// connectLoop connects until it succeeds or ctx is done. With permanent set,
// a rejection by the server ends it at once.
func (c *Client) connectLoop(ctx context.Context, permanent bool) (net.Conn, *msgReader, phy.Info, error) {
	for attempt := 0; ; attempt++ {
		nc, mr, info, err := c.connect(ctx)
		if err == nil {
			return nc, mr, info, nil
		}
		if ctx.Err() != nil {
			return nil, nil, phy.Info{}, fmt.Errorf("sim: dial %s: %w (last error: %w)", c.path, ctx.Err(), err)
		}
		if permanent && errors.Is(err, ErrRejected) {
			return nil, nil, phy.Info{}, err
		}
		wait := backoff(attempt, c.backoffMin, c.backoffMax)
		c.log.Warn().Err(err).Int("attempt", attempt+1).Dur("retry_in", wait).Msg("sim: cannot reach the medium server")
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, nil, phy.Info{}, fmt.Errorf("sim: dial %s: %w (last error: %w)", c.path, ctx.Err(), err)
		}
	}
}

// connect makes one attempt: dial, hello, welcome.
func (c *Client) connect(ctx context.Context) (net.Conn, *msgReader, phy.Info, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return nil, nil, phy.Info{}, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	fail := func(err error) (net.Conn, *msgReader, phy.Info, error) {
		nc.Close()
		return nil, nil, phy.Info{}, err
	}
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := nc.Write(appendMessage(nil, &message{typ: msgHello, version: protoVersion, node: c.node})); err != nil {
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
	case msg.version != protoVersion:
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
	return nc, mr, phy.Info{BitRate: int(msg.bitRate), MaxFrame: maxFrame}, nil
}
