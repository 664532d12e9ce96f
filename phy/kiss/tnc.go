// Package kiss drives a KISS TNC (a hardware TNC on a serial port, or a
// software modem such as Dire Wolf over TCP) as a slided modem.
//
// Each burst the bridge hands to Transmit goes out as one KISS data frame on
// the configured port; each KISS data frame the TNC delivers on that port
// comes up as one Received event. A TNC says neither when a frame has left
// nor when the channel is busy, so TxDone is an estimate from the air rate
// (Config.TxTime) and no carrier events are reported: channel access is the
// TNC's own p-persistent CSMA (FullDuplex false), or the client's
// (FullDuplex true). With the TNC's CSMA, a frame received while a burst is
// outstanding restarts the estimate from its arrival: the TNC deferred to it.
// See docs/modems.md.
//
// Goroutines: Dial starts one, run, that owns the connection state, the
// TxDone timer and the reconnect backoff, and exits on Close. While
// connected, run starts a reader goroutine per connection that decodes KISS
// and exits when that connection is closed (run waits for it).
package kiss

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.bug.st/serial"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// Errors of Transmit; callers branch on them with errors.Is.
var (
	// ErrTooLong: the burst is longer than Info().MaxFrame, or its KISS
	// frame, escapes included, is longer than Config.MaxFrame.
	ErrTooLong = errors.New("kiss: burst too long")
	// ErrTooShort: the burst is empty.
	ErrTooShort = errors.New("kiss: burst too short")
	// ErrBusy: Transmit was called before the previous TxDone or Down.
	ErrBusy = errors.New("kiss: transmission outstanding")
	// ErrDown: the TNC is not connected (a Down was or is being reported).
	ErrDown = errors.New("kiss: tnc not connected")
	// ErrClosed: the TNC was closed.
	ErrClosed = errors.New("kiss: closed")
)

const (
	dialTimeout  = 10 * time.Second
	writeTimeout = 10 * time.Second // a TCP write that stalls this long drops the connection
	eventQueue   = 64
	rxQueue      = 8
	readBuf      = 4096
)

// Stats counts what a TNC has done since Dial.
type Stats struct {
	// Sent and Received count KISS data frames on the configured port.
	Sent, Received uint64
	// Ignored counts frames for other ports, other commands, or empty.
	Ignored uint64
	// Deferred counts bursts whose TxDone estimate a received frame pushed
	// back (the TNC's CSMA held them while the channel was busy).
	Deferred uint64
	// Connects counts successful (re)connects, Drops lost connections.
	Connects, Drops uint64
	// Decoder sums the KISS decoder's counters over all connections: garbage
	// bytes, bad escapes and over-long frames are counted and dropped there.
	Decoder framing.KISSStats
}

// TNC is a connected KISS TNC. Its methods are safe for concurrent use, but
// Transmit follows the one-outstanding rule of bridge.PHY.
type TNC struct {
	cfg      Config
	log      zerolog.Logger
	clk      clock
	target   string // Addr or Device, for logs
	info     phy.Info
	params   []byte // the parameter frames sent on each connect
	maxBurst int

	events  chan phy.Event
	txc     chan struct{} // Transmit → run: txbuf holds a frame
	txReply chan error    // run → Transmit: accepted (nil) or ErrDown
	txbuf   []byte        // written by Transmit while busy was false, read by run until TxDone/Down
	txlen   int           // the burst's length before escaping, like txbuf
	busy    atomic.Bool   // a burst is outstanding
	up      atomic.Bool   // connected

	closing   chan struct{}
	closeOnce sync.Once
	done      chan struct{} // closed when run has exited

	mu    sync.Mutex
	stats Stats
}

// Dial validates cfg, connects to the TNC (ctx bounds this first attempt
// only), sends the KISS parameters and starts the TNC's goroutines. The
// first event is Up. After a lost connection the TNC reports Down and
// reconnects by itself, with backoff, until Close.
func Dial(ctx context.Context, cfg Config, log zerolog.Logger) (*TNC, error) {
	return dial(ctx, cfg, log, realClock{})
}

func dial(ctx context.Context, cfg Config, log zerolog.Logger, clk clock) (*TNC, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	t := &TNC{
		cfg:      cfg,
		log:      log,
		clk:      clk,
		target:   cfg.Addr + cfg.Device,
		maxBurst: cfg.MaxBurst(),
		events:   make(chan phy.Event, eventQueue),
		txc:      make(chan struct{}),
		txReply:  make(chan error, 1),
		txbuf:    make([]byte, 0, cfg.MaxFrame),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	t.info = phy.Info{BitRate: cfg.AirRate, MaxFrame: t.maxBurst, Turnaround: cfg.TXDelay, OwnAccess: !cfg.FullDuplex,
		AccessWait: cfg.AccessWait(), MinBurst: MinBurst}
	t.params = t.paramFrames()
	conn, err := t.connect(ctx)
	if err != nil {
		return nil, err
	}
	t.log.Info().Str("tnc", t.target).Int("air_bps", cfg.AirRate).Bool("full_duplex", cfg.FullDuplex).
		Msg("kiss: tnc connected")
	go t.run(conn)
	return t, nil
}

// paramFrames encodes TXDELAY, P, SLOTTIME, TXTAIL and FULLDUPLEX for the
// configured port. check has validated the ranges.
func (t *TNC) paramFrames() []byte {
	c := t.cfg
	txd, _ := tenMs(c.TXDelay)
	slot, _ := tenMs(c.SlotTime)
	tail, _ := tenMs(c.TXTail)
	var fd byte
	if c.FullDuplex {
		fd = 1
	}
	var b []byte
	b = framing.AppendKISS(b, c.Port, framing.KISSTXDelay, []byte{txd})
	b = framing.AppendKISS(b, c.Port, framing.KISSPersistence, []byte{byte(c.Persistence)})
	b = framing.AppendKISS(b, c.Port, framing.KISSSlotTime, []byte{slot})
	b = framing.AppendKISS(b, c.Port, framing.KISSTXTail, []byte{tail})
	b = framing.AppendKISS(b, c.Port, framing.KISSFullDuplex, []byte{fd})
	return b
}

// connect opens the TCP connection or serial port and sends the parameters.
func (t *TNC) connect(ctx context.Context) (io.ReadWriteCloser, error) {
	var c io.ReadWriteCloser
	if t.cfg.Addr != "" {
		ctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		d := t.cfg.Dial
		if d == nil {
			d = (&net.Dialer{}).DialContext
		}
		nc, err := d(ctx, "tcp", t.cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("kiss: dial %s: %w", t.cfg.Addr, err)
		}
		c = nc
	} else {
		p, err := serial.Open(t.cfg.Device, &serial.Mode{BaudRate: t.cfg.Baud})
		if err != nil {
			return nil, fmt.Errorf("kiss: open %s: %w", t.cfg.Device, err)
		}
		c = p
	}
	if err := write(c, t.params); err != nil {
		c.Close()
		return nil, fmt.Errorf("kiss: send parameters to %s: %w", t.target, err)
	}
	return c, nil
}

func write(c io.Writer, b []byte) error {
	if d, ok := c.(interface{ SetWriteDeadline(time.Time) error }); ok {
		if err := d.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
			return err
		}
	}
	_, err := c.Write(b)
	return err
}

// Info describes the TNC: BitRate is the configured air rate, Turnaround
// TXDelay, and MaxFrame the longest burst that fits in the TNC's frame limit
// when no byte needs an escape (Config.MaxBurst: MaxFrame-3, 2045 bytes for
// Dire Wolf). It is the unescaped bound on purpose: escapes are rare (a
// random byte needs one with p = 2/256, under 1%), and the worst-case bound,
// (MaxFrame-3)/2, would refuse every ordinary 1000-byte datagram. Transmit
// refuses the rare burst whose escapes push it over the limit.
func (t *TNC) Info() phy.Info { return t.info }

// Events delivers Up, Received, TxDone and Down, in order. Received data is
// one KISS data frame's data and belongs to the receiver. A slow reader
// stalls the TNC's reading (TCP or serial flow control), it loses nothing.
// The channel is closed after Close.
func (t *TNC) Events() <-chan phy.Event { return t.events }

// Transmit sends b as one KISS data frame. It copies b before returning and
// does not wait for the airtime: TxDone follows after Config.TxTime(len(b))
// (or Down, if the connection is lost first). It refuses bursts longer than
// Info().MaxFrame or whose KISS frame, escapes included (Config.FrameLen),
// is longer than Config.MaxFrame (ErrTooLong: the TNC would cut it), empty
// bursts (ErrTooShort), a second burst before TxDone (ErrBusy), and bursts
// while down (ErrDown). A burst shorter than MinBurst is padded to it with
// 0x00 bytes, which slided's decoder skips as empty frames.
func (t *TNC) Transmit(b []byte) error {
	if len(b) > t.maxBurst {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLong, len(b), t.maxBurst)
	}
	if n := t.cfg.FrameLen(b); n > t.cfg.MaxFrame {
		return fmt.Errorf("%w: %d bytes are %d once escaped, at most %d", ErrTooLong, len(b), n, t.cfg.MaxFrame)
	}
	if len(b) == 0 {
		return fmt.Errorf("%w: empty burst", ErrTooShort)
	}
	var pad [MinBurst]byte
	if len(b) < MinBurst {
		// Trailing 0x00 bytes are empty frames to slided's decoder.
		copy(pad[:], b)
		b = pad[:]
	}
	if !t.up.Load() {
		return ErrDown
	}
	if !t.busy.CompareAndSwap(false, true) {
		return ErrBusy
	}
	t.txbuf = framing.AppendKISS(t.txbuf[:0], t.cfg.Port, framing.KISSData, b)
	t.txlen = len(b)
	select {
	case t.txc <- struct{}{}:
	case <-t.done:
		t.busy.Store(false)
		return ErrClosed
	}
	err := <-t.txReply
	if err != nil {
		t.busy.Store(false)
	}
	return err
}

// Close stops the goroutines, closes the connection and then the Events
// channel. It is safe to call more than once.
func (t *TNC) Close() error {
	t.closeOnce.Do(func() { close(t.closing) })
	<-t.done
	return nil
}

// Stats returns the counters so far.
func (t *TNC) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

func (t *TNC) count(f func(*Stats)) {
	t.mu.Lock()
	f(&t.stats)
	t.mu.Unlock()
}

// emit delivers ev unless the TNC is closing.
func (t *TNC) emit(ev phy.Event) {
	select {
	case t.events <- ev:
	case <-t.closing:
	}
}

// reader is the per-connection decoding goroutine's handle.
type reader struct {
	rx   chan []byte   // received data frames, owned by the receiver
	errc chan error    // the read error that ended the connection
	stop chan struct{} // closed by run to stop sending on rx
	done chan struct{} // closed when the goroutine has exited
}

func (t *TNC) startReader(c io.Reader) *reader {
	rd := &reader{
		rx:   make(chan []byte, rxQueue),
		errc: make(chan error, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go t.read(c, rd)
	return rd
}

// read decodes the TNC's byte stream until a read error (the connection was
// closed or lost) or until rd.stop.
func (t *TNC) read(c io.Reader, rd *reader) {
	defer close(rd.done)
	dec := framing.NewKISSDecoder(t.cfg.MaxFrame)
	var last framing.KISSStats
	stopped := false
	emit := func(port, cmd byte, data []byte) {
		if stopped {
			return
		}
		if port != t.cfg.Port || cmd != framing.KISSData || len(data) == 0 {
			t.count(func(s *Stats) { s.Ignored++ })
			return
		}
		select {
		case rd.rx <- bytes.Clone(data): // the event's receiver owns it
		case <-rd.stop:
			stopped = true
		}
	}
	buf := make([]byte, readBuf)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			dec.Feed(buf[:n], emit)
			s := dec.Stats()
			t.count(func(st *Stats) {
				d := &st.Decoder
				d.Frames += s.Frames - last.Frames
				d.TooLong += s.TooLong - last.TooLong
				d.BadEscape += s.BadEscape - last.BadEscape
				d.Empty += s.Empty - last.Empty
				d.Garbage += s.Garbage - last.Garbage
			})
			last = s
		}
		if stopped {
			return
		}
		if err != nil {
			rd.errc <- err
			return
		}
	}
}

type dialResult struct {
	conn io.ReadWriteCloser
	err  error
}

// run owns the connection: it forwards received frames, writes bursts, times
// TxDone, and on a lost connection reports Down and reconnects with backoff.
// It exits on Close, after closing the connection and the Events channel.
func (t *TNC) run(conn io.ReadWriteCloser) {
	defer close(t.done)
	defer close(t.events)

	var (
		rd       = t.startReader(conn)
		upSince  = t.clk.Now()
		downAt   time.Time
		attempt  int
		txTimer  timer
		txC      <-chan time.Time
		retry    timer
		retryC   <-chan time.Time
		dialc    chan dialResult
		stopDial context.CancelFunc
	)
	t.up.Store(true)
	t.count(func(s *Stats) { s.Connects++ })
	t.emit(phy.Event{Kind: phy.Up})

	stopTx := func() {
		if txTimer != nil {
			txTimer.Stop()
			txTimer, txC = nil, nil
		}
		t.busy.Store(false)
	}
	closeConn := func() {
		conn.Close()
		close(rd.stop)
		<-rd.done
	}
	scheduleRetry := func() {
		d := backoff(attempt)
		attempt++
		retry = t.clk.NewTimer(d)
		retryC = retry.C()
	}
	drop := func(err error) {
		t.up.Store(false)
		closeConn()
		for len(rd.rx) > 0 { // frames that arrived before the loss
			t.emit(phy.Event{Kind: phy.Received, Data: <-rd.rx})
			t.count(func(s *Stats) { s.Received++ })
		}
		rd, conn = nil, nil
		stopTx()
		t.count(func(s *Stats) { s.Drops++ })
		now := t.clk.Now()
		upFor := now.Sub(upSince)
		if upFor >= backoffMax {
			attempt = 0
		}
		downAt = now
		t.emit(phy.Event{Kind: phy.Down})
		scheduleRetry()
		t.log.Warn().Str("tnc", t.target).Err(err).Str("up_for", upFor.String()).Str("retry_in", backoff(attempt-1).String()).
			Msg("kiss: tnc connection lost, reconnecting")
	}

	for {
		var rxc <-chan []byte
		var errc <-chan error
		if rd != nil {
			rxc, errc = rd.rx, rd.errc
		}
		select {
		case <-t.closing:
			stopTx()
			if retry != nil {
				retry.Stop()
			}
			if dialc != nil {
				stopDial()
				if r := <-dialc; r.conn != nil {
					r.conn.Close()
				}
			}
			if conn != nil {
				closeConn()
			}
			t.up.Store(false)
			return

		case <-t.txc:
			if conn == nil {
				t.txReply <- ErrDown
				continue
			}
			t.txReply <- nil
			if err := write(conn, t.txbuf); err != nil {
				drop(fmt.Errorf("write: %w", err))
				continue
			}
			t.count(func(s *Stats) { s.Sent++ })
			txTimer = t.clk.NewTimer(t.cfg.TxTime(t.txlen))
			txC = txTimer.C()

		case <-txC:
			txTimer, txC = nil, nil
			t.busy.Store(false)
			t.emit(phy.Event{Kind: phy.TxDone})

		case b := <-rxc:
			t.count(func(s *Stats) { s.Received++ })
			if txTimer != nil && !t.cfg.FullDuplex {
				// A frame heard while our burst is outstanding held the
				// channel, and a half-duplex TNC that does its own CSMA
				// cannot have sent during it: our burst had not started
				// (it would have ended before this frame began, and
				// TxDone with it), so it goes after this frame, once the
				// TNC's p-persistence lets it.
				txTimer.Stop()
				txTimer = t.clk.NewTimer(t.cfg.TxTime(t.txlen) + t.info.AccessWait)
				txC = txTimer.C()
				t.count(func(s *Stats) { s.Deferred++ })
			}
			t.emit(phy.Event{Kind: phy.Received, Data: b})

		case err := <-errc:
			drop(err)

		case <-retryC:
			retry, retryC = nil, nil
			ctx, cancel := context.WithCancel(context.Background())
			stopDial = cancel
			dialc = make(chan dialResult, 1)
			go func(c chan<- dialResult) {
				conn, err := t.connect(ctx)
				c <- dialResult{conn, err}
			}(dialc)

		case r := <-dialc:
			dialc = nil
			stopDial()
			if r.err != nil {
				scheduleRetry()
				t.log.Warn().Str("tnc", t.target).Err(r.err).Int("attempt", attempt-1).
					Str("down_for", t.clk.Now().Sub(downAt).String()).Str("retry_in", backoff(attempt-1).String()).
					Msg("kiss: tnc reconnect failed")
				continue
			}
			conn = r.conn
			rd = t.startReader(conn)
			upSince = t.clk.Now()
			t.up.Store(true)
			t.count(func(s *Stats) { s.Connects++ })
			t.log.Info().Str("tnc", t.target).Int("attempts", attempt).Str("down_for", upSince.Sub(downAt).String()).
				Msg("kiss: tnc reconnected")
			t.emit(phy.Event{Kind: phy.Up})
		}
	}
}
