// Package kiss drives a KISS TNC (a hardware TNC on a serial port, or a
// software modem such as Dire Wolf over TCP) as a slided modem.
//
// Each burst the bridge hands to Transmit goes out as one KISS data frame on
// the configured port, or, when it holds several slided frames, as one KISS
// data frame each, back to back, which the TNC sends in one transmission;
// each KISS data frame the TNC delivers on that port
// comes up as one Received event. A TNC says neither when a frame has left
// nor when the channel is busy, so TxDone is an estimate from the air rate
// (Config.TxTime), or the TNC's ACKMODE answer where it gives one
// (Config.AckMode), and no carrier events of the channel are reported (only
// the estimated airtime of other programs' frames, SendOther, shows as
// carrier: see Server): channel access is the
// TNC's own p-persistent CSMA (FullDuplex false), or the client's
// (FullDuplex true). With the TNC's CSMA, a frame received while a burst is
// outstanding restarts the estimate from its arrival: the TNC deferred to it.
// See docs/modems.md.
//
// Goroutines: Dial starts one, run, that owns the connection state, the
// event queue, the TxDone timer and the reconnect backoff, and exits on
// Close. While connected, run starts a reader goroutine per connection that
// decodes KISS and a writer goroutine that writes bursts with a deadline
// (the write watchdog); both exit when that connection is closed, and run
// waits for them. To reconnect, run starts a dialer goroutine that exits
// when its attempt ends (cancelled on Close, which does not wait for it).
// run never blocks on the consumer of Events nor on I/O, so Transmit and
// Close return promptly whether or not anybody reads Events.
package kiss

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.bug.st/serial"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/internal/redial"
	"github.com/slided/slided/internal/selfstall"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/internal/evq"
	"github.com/slided/slided/phy/internal/tty"
	"github.com/slided/slided/phy/kiss/kissproto"
)

// Transmit's errors wrap phy.ErrTooLarge, phy.ErrEmpty, phy.ErrBusy,
// phy.ErrDown and phy.ErrClosed (package phy); callers branch on those with
// errors.Is.

// ErrWriteTimeout is the cause logged (and counted in Stats.WriteTimeouts)
// when a write to the TNC did not finish within the write watchdog: the
// connection is dropped, Down reported, and the TNC reconnected.
var ErrWriteTimeout = errors.New("write did not finish in time (tnc not reading, flow control held off?)")

const (
	dialTimeout = 10 * time.Second
	// writeTimeout is the write watchdog: a write to the TNC (TCP or serial)
	// that has not finished this long after it started drops the
	// connection. The longest KISS frame takes 2.2 s at 9600 baud; on a
	// serial port a frame longer than the watchdog allows at a low rate
	// gets more (writeBound).
	writeTimeout = 10 * time.Second
	eventQueue   = 64 // capacity of the Events channel
	// rxHeld bounds the received frames run holds beyond the Events
	// channel; with both full it stops taking frames from the reader, which
	// stops reading the connection (TCP or the tty holds the rest off).
	rxHeld  = 64
	rxQueue = 8 // frames between the reader and run
	readBuf = 4096
	// otherQueue bounds the frames of other programs (SendOther) waiting
	// for the writer; SendOther refuses more.
	otherQueue = 32
	// otherBacklog bounds the estimated airtime of other programs' frames
	// written to the TNC and not yet on air: SendOther refuses more (a
	// client that floods), so that slided's own bursts never wait longer
	// behind them.
	otherBacklog = 15 * time.Second
	// joinMax is the longest burst reported done as soon as the TNC is
	// known to hold it for a busy channel (run's deferTx): a few Acks
	// (13 bytes each, 28 sealed), nothing that waits for an Ack of its own
	// long enough to matter.
	joinMax = 64
	// exitWait bounds the write of the exit command at Close.
	exitWait = time.Second
)

// Stats counts what a TNC has done since Dial.
type Stats struct {
	// Sent and Received count KISS data frames on the configured port
	// (a burst of several frames counts each, and once in Bursts).
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
	Bursts   uint64 `json:"bursts"`
	// Ignored counts frames for other ports, other commands, or empty.
	Ignored uint64 `json:"ignored"`
	// Deferred counts bursts whose TxDone estimate a received frame pushed
	// back (the TNC's CSMA held them while the channel was busy); Joined
	// those of them short enough to be reported done at once, so that the
	// next burst joins them in the TNC's queue (joinMax).
	Deferred uint64 `json:"deferred"`
	Joined   uint64 `json:"joined"`
	// Answered counts bursts reported done when a frame heard while their
	// estimate ran began after they would have ended, sent at once: the
	// far end's answer (the estimate counts 3% bit stuffing, so a long
	// burst's answer can come before it ends).
	Answered uint64 `json:"answered"`
	// Early counts bursts of Acks (and Hellos) only, reported done as
	// soon as written (AcksOnly). Of the bursts reported done before
	// their estimated end (Early and Joined) at most one is outstanding:
	// a further one waits for its estimate.
	Early uint64 `json:"early"`
	// Connects counts successful (re)connects, Drops lost connections.
	Connects uint64 `json:"connects"`
	Drops    uint64 `json:"drops"`
	// WriteTimeouts counts the drops by the write watchdog.
	WriteTimeouts uint64 `json:"write_timeouts"`
	// AckSent counts bursts sent as ACKMODE frames, Acked those the TNC
	// answered; AckTimeouts those whose answer did not come within the
	// watchdog (TxDone then came from it), AckStray answers with an id we
	// were not waiting for. AckUnsupported is 1 once auto mode found that
	// the TNC does not answer ACKMODE.
	AckSent        uint64 `json:"ack_sent"`
	Acked          uint64 `json:"acked"`
	AckTimeouts    uint64 `json:"ack_timeouts"`
	AckStray       uint64 `json:"ack_stray"`
	AckUnsupported uint64 `json:"ack_unsupported"`
	// SelfStalls counts ACKMODE watchdogs that fired late because slided's
	// own process did not run (package selfstall): the watchdog then ran
	// again instead of taking the TNC for silent.
	SelfStalls uint64 `json:"self_stalls"`
	// OthersSent counts the frames of other programs (the KISS server's
	// clients, SendOther) written to the TNC; OthersLost those dropped
	// unsent when the connection was lost; OthersHeard the frames received
	// that are not slided's and were offered to the tap.
	OthersSent  uint64 `json:"others_sent"`
	OthersLost  uint64 `json:"others_lost"`
	OthersHeard uint64 `json:"others_heard"`
	// IDSent counts station identifications sent (Config.StationID).
	IDSent uint64 `json:"id_sent"`
	// Decoder sums the KISS decoder's counters over all connections: garbage
	// bytes, bad escapes and over-long frames are counted and dropped there.
	Decoder kissproto.Stats `json:"decoder"`
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
	wtime    time.Duration // the write watchdog (writeTimeout; tests shorten it)

	events  chan phy.Event
	txc     chan struct{} // Transmit → run: txbuf holds a frame
	txReply chan error    // run → Transmit: accepted (nil) or ErrDown
	txraw   []byte        // written by Transmit while busy was false, read by run until TxDone/Down
	txbuf   []byte        // the KISS frame(s) of txraw, encoded by run, read by the writer
	txpad   []byte        // run's scratch space for one frame of a burst
	txsplit bool          // txraw is a burst of several slided frames, sent as one KISS frame each
	txquiet bool          // txraw is slided Acks, Hellos and broadcast frames only: nothing in it waits for an answer
	txacks  bool          // txraw is slided Acks and Hellos only: reported done once written (AcksOnly)
	splitMu sync.Mutex
	split   *framing.Decoder // Transmit's check that a burst is slided frames
	otherc  chan []byte      // SendOther → run: KISS frames of other programs, bounded
	tap     atomic.Pointer[func(port byte, data []byte)]
	idFrame []byte // the station identification's KISS frame; nil: none
	// otherEnd is run's estimate of when the other programs' frames
	// written so far have left (UnixNano), for SendOther's backlog check.
	otherEnd atomic.Int64
	// otherQueued is the estimated airtime (ns) of the other programs'
	// frames in otherc, not yet taken by run (takeOther).
	otherQueued atomic.Int64
	busy        atomic.Bool // a burst is outstanding
	up          atomic.Bool // connected

	// redial is the reconnect policy and its log lines (package redial);
	// dial uses it, then run.
	redial *redial.Loop

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

// dial is Dial with the clock and, for tests, options applied before the
// first connect.
func dial(ctx context.Context, cfg Config, log zerolog.Logger, clk clock, opts ...func(*TNC)) (*TNC, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	t := &TNC{
		cfg:      cfg,
		log:      log,
		clk:      clk,
		target:   cfg.Addr + cfg.Device,
		maxBurst: cfg.MaxBurst(),
		wtime:    writeTimeout,
		events:   make(chan phy.Event, eventQueue),
		txc:      make(chan struct{}),
		txReply:  make(chan error, 1),
		txraw:    make([]byte, 0, cfg.MaxFrame),
		txbuf:    make([]byte, 0, cfg.MaxFrame+4),
		otherc:   make(chan []byte, otherQueue),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	t.info = phy.Info{BitRate: cfg.AirRate, MaxFrame: t.maxBurst, Turnaround: cfg.TXDelay, OwnAccess: !cfg.FullDuplex,
		AccessWait: cfg.AccessWait(), MinBurst: MinBurst, MaxBurstFrames: cfg.Burst, MaxBurstAir: cfg.BurstAir}
	t.params = t.paramFrames()
	if cfg.StationID != "" {
		t.idFrame = kissproto.AppendFrame(nil, cfg.Port, kissproto.CmdData, IDFrame(cfg.StationID))
	}
	for _, o := range opts {
		o(t)
	}
	c, err := t.connect(ctx)
	if err != nil {
		return nil, err
	}
	t.log.Info().Str("tnc", t.target).Int("air_bps", cfg.AirRate).Bool("full_duplex", cfg.FullDuplex).
		Msg("kiss: tnc connected")
	t.redial = redial.New(reconnect, "kiss: tnc", t.log.With().Str("tnc", t.target).Logger())
	t.redial.Up(t.clk.Now())
	t.up.Store(true) // before the Up is read: Transmit may come first
	go t.run(c)
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
	b = kissproto.AppendFrame(b, c.Port, kissproto.CmdTXDelay, []byte{txd})
	b = kissproto.AppendFrame(b, c.Port, kissproto.CmdPersistence, []byte{byte(c.Persistence)})
	b = kissproto.AppendFrame(b, c.Port, kissproto.CmdSlotTime, []byte{slot})
	b = kissproto.AppendFrame(b, c.Port, kissproto.CmdTXTail, []byte{tail})
	b = kissproto.AppendFrame(b, c.Port, kissproto.CmdFullDuplex, []byte{fd})
	return b
}

// connect opens the TCP connection or serial port and sends the parameters.
// ctx bounds the dial; the parameters' write is bounded by the watchdog.
func (t *TNC) connect(ctx context.Context) (conn, error) {
	var c conn
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
		l, err := tty.Open(t.cfg.Device, serial.Mode{BaudRate: t.cfg.Baud}, false)
		if err != nil {
			return nil, fmt.Errorf("kiss: open %s: %w", t.cfg.Device, err)
		}
		c = l
	}
	c.SetWriteDeadline(time.Now().Add(t.wtime))
	if len(t.cfg.Init) > 0 {
		if _, err := c.Write(t.cfg.Init); err != nil {
			c.Close()
			return nil, fmt.Errorf("kiss: send init command to %s: %w", t.target, err)
		}
		if t.cfg.InitWait > 0 {
			select {
			case <-time.After(t.cfg.InitWait):
			case <-ctx.Done():
				c.Close()
				return nil, fmt.Errorf("kiss: %s: %w", t.target, ctx.Err())
			}
			c.SetWriteDeadline(time.Now().Add(t.wtime))
		}
	}
	if _, err := c.Write(t.params); err != nil {
		c.Close()
		return nil, fmt.Errorf("kiss: send parameters to %s: %w", t.target, err)
	}
	c.SetWriteDeadline(time.Time{})
	return c, nil
}

// conn is a connection to the TNC: a net.Conn or a tty.Line. Close
// unblocks a Read or Write in progress on either.
type conn interface {
	io.ReadWriteCloser
	SetWriteDeadline(time.Time) error
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
// stalls the TNC's reading once rxHeld frames wait beyond the channel (TCP
// or serial flow control holds the TNC off), it loses nothing, and it
// never stalls Transmit, Close, TxDone or the reconnects. The channel is
// closed after Close; events not read by then are discarded.
func (t *TNC) Events() <-chan phy.Event { return t.events }

// Transmit sends b as one KISS data frame (an ACKMODE frame, see
// Config.AckMode), or a burst of several slided frames (every run of
// non-zero bytes between 0x00 delimiters in b is a good slided frame, and
// there are several) as one KISS data frame
// per slided frame, written back to back so that the TNC sends them all in
// one transmission (Config.Burst, Info().MaxBurstFrames; with ACKMODE the
// last one asks for the answer). It copies b and returns without waiting
// for the write, the airtime or the consumer of Events: TxDone follows once
// the frames are written, when the TNC answers ACKMODE, or else after
// Config.BurstTime(b) (Config.TxTime(len(b)) for one frame) plus the
// estimated airtime of other programs' frames written before it (or Down,
// if the connection is lost or the write watchdog fires first); a burst of
// Acks only (AcksOnly) goes without ACKMODE and is done as soon as it is
// written, unless a burst so reported (or joined) is still outstanding, its
// estimate not yet passed. It refuses
// frames longer than Info().MaxFrame or whose KISS frame, escapes included
// (Config.FrameLen), is longer than Config.MaxFrame (phy.ErrTooLarge: the
// TNC would cut it), bursts of more than Config.Burst frames
// (phy.ErrTooLarge), empty bursts (phy.ErrEmpty), a second burst before
// TxDone (phy.ErrBusy), bursts while down (phy.ErrDown) and after Close
// (phy.ErrClosed). A frame shorter than MinBurst is padded to it with 0x00
// bytes, which slided's decoder skips as empty frames.
func (t *TNC) Transmit(b []byte) error {
	split := false
	if n := framing.CountFrames(b); n > 1 && t.slidedFrames(b) == n {
		if err := t.checkBurst(b, n); err != nil {
			return err
		}
		split = true
	} else {
		if len(b) > t.maxBurst {
			return fmt.Errorf("kiss: %d bytes, at most %d: %w", len(b), t.maxBurst, phy.ErrTooLarge)
		}
		if n := t.cfg.FrameLen(b) + t.cfg.ackOverhead(); n > t.cfg.MaxFrame {
			return fmt.Errorf("kiss: %d bytes are %d once escaped, at most %d: %w", len(b), n, t.cfg.MaxFrame, phy.ErrTooLarge)
		}
	}
	if len(b) == 0 {
		return fmt.Errorf("kiss: %w", phy.ErrEmpty)
	}
	var pad [MinBurst]byte
	if len(b) < MinBurst {
		// Trailing 0x00 bytes are empty frames to slided's decoder.
		copy(pad[:], b)
		b = pad[:]
	}
	select {
	case <-t.closing:
		return fmt.Errorf("kiss: %w", phy.ErrClosed)
	default:
	}
	if !t.up.Load() {
		return fmt.Errorf("kiss: %s: %w", t.target, phy.ErrDown)
	}
	if !t.busy.CompareAndSwap(false, true) {
		return fmt.Errorf("kiss: %w", phy.ErrBusy)
	}
	t.txraw = append(t.txraw[:0], b...)
	t.txsplit = split
	t.txquiet = len(b) > joinMax && t.answerless(b)
	t.txacks = t.acksOnly(b)
	// run never blocks for long (it waits on no consumer and no I/O), so
	// this hand-over is prompt.
	select {
	case t.txc <- struct{}{}:
	case <-t.done:
		t.busy.Store(false)
		return fmt.Errorf("kiss: %w", phy.ErrClosed)
	}
	err := <-t.txReply
	if err != nil {
		t.busy.Store(false)
	}
	return err
}

// nextFrame returns the first slided frame of b with its delimiters (0x00,
// the run of non-zero bytes, 0x00 if b has it) and the rest of b; frame is
// empty when b holds no frame. Leading delimiters of the next frame stay
// with the rest.
func nextFrame(b []byte) (frame, rest []byte) {
	i := 0
	for i < len(b) && b[i] == 0 {
		i++
	}
	if i == len(b) {
		return nil, nil
	}
	start := max(i-1, 0) // its opening delimiter
	j := i
	for j < len(b) && b[j] != 0 {
		j++
	}
	end := min(j+1, len(b)) // and its closing one
	return b[start:end], b[end:]
}

// slidedFrames counts the good slided frames (COBS, header, CRC) in b:
// only a burst in which every run of non-zero bytes is one is split into
// frames; any other bytes go as one KISS frame, as they are.
func (t *TNC) slidedFrames(b []byte) int {
	t.splitMu.Lock()
	defer t.splitMu.Unlock()
	if t.split == nil {
		t.split = framing.NewDecoder(t.cfg.MaxFrame)
	}
	n := 0
	count := func(framing.Header, []byte) { n++ }
	t.split.Reset()
	t.split.Feed(b, count)
	t.split.Feed([]byte{0}, count)
	return n
}

// acksOnly is AcksOnly with the TNC's decoder.
func (t *TNC) acksOnly(b []byte) bool {
	t.splitMu.Lock()
	defer t.splitMu.Unlock()
	if t.split == nil {
		t.split = framing.NewDecoder(t.cfg.MaxFrame)
	}
	return acksOnly(t.split, b)
}

// AcksOnly reports whether burst b (as Transmit takes it) is slided Acks
// and Hellos only, every run of non-zero bytes one of them: nothing in it
// waits for an answer or carries a host's packet, and its length is
// bounded by what slided has received. Transmit reports such a burst done
// as soon as it is written to the TNC, not after its estimated airtime,
// and sends it without ACKMODE: the TNC sends it after its own channel
// access wait, and what slided writes meanwhile (the answer to the packet
// the Ack acknowledges, when the host was slower than the engine's
// ackHold) joins the same key-up, since the TNC sends all it has queued.
// With the estimate, that answer waited for the Ack's TXDELAY, airtime and
// TXTAIL (415 ms at Dire Wolf's defaults) and then for a key-up of its
// own (docs/modems.md, "Limits and the TxDone estimate"). A sealed frame
// hides its kind: with a key, Acks wait for their estimate. So does a
// burst of Acks while an earlier one reported done before its estimated
// end (on write, or joined) is still outstanding: at most one such burst
// waits in the TNC's queue, however many frames a station that holds the
// channel makes us Ack.
func AcksOnly(b []byte) bool {
	return acksOnly(framing.NewDecoder(len(b)), b)
}

func acksOnly(dec *framing.Decoder, b []byte) bool {
	n, acks := 0, true
	check := func(h framing.Header, _ []byte) {
		n++
		acks = acks && (h.Kind == framing.KindAck || h.Kind == framing.KindHello)
	}
	dec.Reset()
	dec.Feed(b, check)
	dec.Feed([]byte{0}, check)
	return acks && n > 0 && n == framing.CountFrames(b)
}

// answerless reports whether b is slided frames that ask for no answer
// (Acks, Hellos, broadcast frames) and nothing else: run may report such a
// burst done as soon as the TNC holds it for a busy channel, whatever its
// length (deferTx). A sealed unicast frame hides its kind and counts as
// asking.
func (t *TNC) answerless(b []byte) bool {
	t.splitMu.Lock()
	defer t.splitMu.Unlock()
	if t.split == nil {
		t.split = framing.NewDecoder(t.cfg.MaxFrame)
	}
	n, quiet := 0, true
	check := func(h framing.Header, _ []byte) {
		n++
		quiet = quiet && (h.Kind == framing.KindAck || h.Kind == framing.KindHello || h.Dst == framing.Broadcast)
	}
	t.split.Reset()
	t.split.Feed(b, check)
	t.split.Feed([]byte{0}, check)
	return quiet && n > 0 && n == framing.CountFrames(b)
}

// checkBurst checks a burst of n > 1 frames against the TNC's limits:
// the frame count, and each frame (padded to MinBurst) as one KISS frame.
func (t *TNC) checkBurst(b []byte, n int) error {
	if n > t.cfg.Burst {
		return fmt.Errorf("kiss: a burst of %d frames, at most %d: %w", n, t.cfg.Burst, phy.ErrTooLarge)
	}
	for f, rest := nextFrame(b); len(f) > 0; f, rest = nextFrame(rest) {
		if len(f) > t.maxBurst {
			return fmt.Errorf("kiss: a frame of %d bytes in a burst, at most %d: %w", len(f), t.maxBurst, phy.ErrTooLarge)
		}
		if l := t.cfg.FrameLen(f) + t.cfg.ackOverhead(); l > t.cfg.MaxFrame {
			return fmt.Errorf("kiss: a frame of %d bytes in a burst is %d once escaped, at most %d: %w", len(f), l, t.cfg.MaxFrame, phy.ErrTooLarge)
		}
	}
	return nil
}

// BurstTime estimates how long the TNC keeps the channel for burst b, as
// Transmit sends it: one TXDelay and TXTail, and each slided frame in it
// (padded to MinBurst) as an HDLC frame at AirRate (TxTime's rule). For b
// of one frame it is TxTime(len(b)).
func (c Config) BurstTime(b []byte) time.Duration {
	if framing.CountFrames(b) < 2 {
		return c.TxTime(max(len(b), MinBurst))
	}
	d := c.TXDelay + c.TXTail
	for f, rest := nextFrame(b); len(f) > 0; f, rest = nextFrame(rest) {
		d += c.TxTime(max(len(f), MinBurst)) - c.TXDelay - c.TXTail
	}
	return d
}

// appendBurst appends burst b to dst as KISS frames on the configured port:
// one data frame per slided frame, each padded to MinBurst; with ackID >= 0
// the last goes as an ACKMODE frame with that id. pad is scratch space.
func (t *TNC) appendBurst(dst, pad, b []byte, ackID int) ([]byte, []byte) {
	n := framing.CountFrames(b)
	i := 0
	for f, rest := nextFrame(b); len(f) > 0; f, rest = nextFrame(rest) {
		i++
		pad = append(pad[:0], f...)
		for len(pad) < MinBurst {
			pad = append(pad, 0)
		}
		if i == n && ackID >= 0 {
			pad = append([]byte{byte(ackID >> 8), byte(ackID)}, pad...)
			dst = kissproto.AppendFrame(dst, t.cfg.Port, kissAckMode, pad)
			continue
		}
		dst = kissproto.AppendFrame(dst, t.cfg.Port, kissproto.CmdData, pad)
	}
	return dst, pad
}

// SendOther queues a frame of another program (a client of the KISS
// server) for the TNC: data goes as one KISS data frame on port, untouched,
// serialised with slided's own bursts by the TNC's single writer (slided's
// burst first when both wait). It copies data and never blocks: it refuses
// an empty or over-long frame (phy.ErrEmpty, phy.ErrTooLarge), a frame while
// down or closed (phy.ErrDown, phy.ErrClosed) and, with phy.ErrBusy, a frame
// when otherQueue frames already wait or the other programs' frames written
// or waiting already take otherBacklog of airtime. Once the frame is written, the TNC
// reports its estimated airtime as carrier (CarrierOn, then CarrierOff when
// the estimate of every such frame written has run out), so that slided's
// MAC defers to it; slided's own TxDone estimate counts it too.
func (t *TNC) SendOther(port byte, data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("kiss: %w", phy.ErrEmpty)
	}
	if port > 15 {
		return fmt.Errorf("kiss: port %d: %w", port, ErrConfig)
	}
	f := kissproto.AppendFrame(make([]byte, 0, 2*len(data)+4), port, kissproto.CmdData, data)
	if len(f) > t.cfg.MaxFrame {
		return fmt.Errorf("kiss: %d bytes are %d once escaped, at most %d: %w", len(data), len(f), t.cfg.MaxFrame, phy.ErrTooLarge)
	}
	select {
	case <-t.closing:
		return fmt.Errorf("kiss: %w", phy.ErrClosed)
	default:
	}
	if !t.up.Load() {
		return fmt.Errorf("kiss: %s: %w", t.target, phy.ErrDown)
	}
	// The backlog counts the frames written and not yet on air, and those
	// still waiting for the writer: otherwise a flood fills otherQueue
	// whatever their airtime, and the frames of every client after it are
	// refused for as long as those take (a minute at 1200 bit/s).
	b := max(0, time.Duration(t.otherEnd.Load()-t.clk.Now().UnixNano())) + time.Duration(t.otherQueued.Load())
	if b > otherBacklog {
		return fmt.Errorf("kiss: other programs' frames hold the channel for %v more (at most %v): %w", b.Round(time.Millisecond), otherBacklog, phy.ErrBusy)
	}
	air := t.cfg.TxTime(len(f))
	t.otherQueued.Add(int64(air))
	select {
	case t.otherc <- f:
		return nil
	default:
		t.otherQueued.Add(-int64(air))
		return fmt.Errorf("kiss: %d frames of other programs wait: %w", otherQueue, phy.ErrBusy)
	}
}

// takeOther accounts for frame f of another program taken from otherc
// (SendOther's backlog): its airtime counts from now on in otherEnd once it
// is written, or not at all if it is lost.
func (t *TNC) takeOther(f []byte) {
	t.otherQueued.Add(-int64(t.cfg.TxTime(len(f))))
}

// SetTap sets the function that gets every KISS data frame the TNC
// delivers that is not slided's (any other port; on slided's port, a frame
// in which framing's decoder finds no good frame), with its port. It is
// called on the TNC's reader goroutine with data it may keep; it must not
// block (the KISS server queues and drops). nil removes it. While a tap is
// set, such frames no longer come up as Received (slided's decoder would
// only count them as garbage); slided's own still do.
func (t *TNC) SetTap(f func(port byte, data []byte)) {
	if f == nil {
		t.tap.Store(nil)
		return
	}
	t.tap.Store(&f)
}

// IsSlided says whether b, a KISS data frame's payload, carries at least
// one good slided frame (COBS, version, addresses, CRC-32C): a frame of
// another program (APRS, AX.25) does not, but for a 2^-32 chance.
func IsSlided(b []byte) bool {
	d := framing.NewDecoder(len(b))
	found := false
	d.Feed(b, func(framing.Header, []byte) { found = true })
	if !found {
		d.Feed([]byte{0}, func(framing.Header, []byte) { found = true })
	}
	return found
}

// Close stops the goroutines, closes the connection and then the Events
// channel; events not yet read are discarded. It returns whether or not
// anybody reads Events, and a write in progress is cut (closing the
// connection unblocks it). It is safe to call more than once.
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

// link is one connection with its reader and writer goroutines.
type link struct {
	c      conn
	rx     chan []byte   // received data frames, owned by the receiver
	acks   chan uint16   // ACKMODE answers: the id
	heard  chan int      // a frame of another program was heard on our port (tap): its length
	errc   chan error    // the read error that ended the connection
	wr     chan []byte   // to the writer: one frame at a time
	wrDone chan error    // the writer's result for the frame
	stop   chan struct{} // closed by run to stop the reader and writer
	wg     sync.WaitGroup
}

func (t *TNC) startLink(c conn) *link {
	l := &link{
		c:      c,
		rx:     make(chan []byte, rxQueue),
		acks:   make(chan uint16, 4),
		heard:  make(chan int, 1),
		errc:   make(chan error, 1),
		wr:     make(chan []byte, 1),
		wrDone: make(chan error, 1),
		stop:   make(chan struct{}),
	}
	l.wg.Add(2)
	go t.read(l)
	go t.write(l)
	return l
}

// close closes the connection, which unblocks the reader's Read and the
// writer's Write, and waits for both goroutines to exit.
func (l *link) close() {
	l.c.Close()
	close(l.stop)
	l.wg.Wait()
}

// write writes the frames run hands over, one at a time, until l.stop. A
// Write that has not finished when the write watchdog's deadline passes
// fails with os.ErrDeadlineExceeded (run drops the connection); one in
// progress returns when run closes the connection (a lost connection,
// Close).
func (t *TNC) write(l *link) {
	defer l.wg.Done()
	for {
		select {
		case b := <-l.wr:
			// The write watchdog: a deadline on the connection (TCP, or
			// the tty's non-blocking descriptor). It is cleared after the
			// write rather than moved later by the next: a pending
			// deadline moved later keeps its old time in the runtime's
			// heap, which wakes the process for nothing, and one left
			// pending fires by itself.
			err := l.c.SetWriteDeadline(time.Now().Add(writeBound(t.wtime, len(b), t.cfg.Device != "", t.cfg.Baud)))
			if err == nil {
				_, err = l.c.Write(b)
				l.c.SetWriteDeadline(time.Time{})
			}
			l.wrDone <- err // capacity 1, one frame at a time
		case <-l.stop:
			return
		}
	}
}

// writeBound is the write watchdog for a write of n bytes: wtime over TCP;
// on a serial port at least twice the time the n bytes take on the line at
// baud (8N1: 10 bits a byte) plus a tenth of wtime, so that a long frame at
// a low rate (2 KB take 17 s at 1200 baud) does not pass for a TNC that
// stopped reading.
func writeBound(wtime time.Duration, n int, serial bool, baud int) time.Duration {
	if !serial || baud <= 0 {
		return wtime
	}
	line := time.Duration(n) * 10 * time.Second / time.Duration(baud)
	return max(wtime, 2*line+wtime/10)
}

// read decodes the TNC's byte stream until a read error (the connection was
// closed or lost) or until l.stop. While run takes no frames (its queue is
// full: nobody reads Events) read waits, and so does the connection.
func (t *TNC) read(l *link) {
	defer l.wg.Done()
	dec := kissproto.NewDecoder(t.cfg.MaxFrame)
	var last kissproto.Stats
	stopped := false
	garbageLogged := false
	// sync adds the decoder's new counts to Stats: after each read, and
	// before a frame is handed on, so that whoever sees the frame sees
	// the counts of what came before it.
	sync := func() {
		s := dec.Stats()
		t.count(func(st *Stats) {
			d := &st.Decoder
			d.Frames += s.Frames - last.Frames
			d.TooLong += s.TooLong - last.TooLong
			d.BadEscape += s.BadEscape - last.BadEscape
			d.Empty += s.Empty - last.Empty
			d.Garbage += s.Garbage - last.Garbage
		})
		if s.Garbage > last.Garbage && !garbageLogged {
			// Text from a TNC not (yet) in KISS mode: an answer to the
			// init command, an error message, a prompt.
			garbageLogged = true
			t.log.Warn().Str("tnc", t.target).Uint64("bytes", s.Garbage-last.Garbage).
				Msg("kiss: tnc sent bytes that are not KISS (an answer to the init command? a TNC not in KISS mode?); ignored and counted (decoder garbage), logged once per connection")
		}
		last = s
	}
	emit := func(port, cmd byte, data []byte) {
		if stopped {
			return
		}
		sync()
		if port == t.cfg.Port && cmd == kissAckMode {
			if len(data) < 2 {
				t.count(func(s *Stats) { s.AckStray++ })
				return
			}
			select {
			case l.acks <- uint16(data[0])<<8 | uint16(data[1]):
			default: // run has not taken 4 answers: stray ones, dropped
				t.count(func(s *Stats) { s.AckStray++ })
			}
			return
		}
		if cmd != kissproto.CmdData || len(data) == 0 {
			t.count(func(s *Stats) { s.Ignored++ })
			return
		}
		if tap := t.tap.Load(); tap != nil && (port != t.cfg.Port || !IsSlided(data)) {
			// Another program's frame: to the tap only; slided's
			// decoder would count it as garbage.
			t.count(func(s *Stats) { s.OthersHeard++ })
			(*tap)(port, bytes.Clone(data))
			if port == t.cfg.Port {
				select { // the channel was busy: run defers our burst's estimate
				case l.heard <- len(data):
				default:
				}
			}
			return
		}
		if port != t.cfg.Port {
			t.count(func(s *Stats) { s.Ignored++ })
			return
		}
		select {
		case l.rx <- bytes.Clone(data): // the event's receiver owns it
		case <-l.stop:
			stopped = true
		}
	}
	buf := make([]byte, readBuf)
	for {
		n, err := l.c.Read(buf)
		if n > 0 {
			dec.Feed(buf[:n], emit)
			sync()
		}
		if stopped {
			return
		}
		if err != nil {
			l.errc <- err
			return
		}
	}
}

type dialResult struct {
	c   conn
	err error
}

// ackState is what run knows of the TNC's ACKMODE support.
type ackState uint8

const (
	ackUnknown ackState = iota // auto mode, not probed yet
	ackYes                     // answered (or AckOn)
	ackNo                      // auto mode, no answer to the probe
)

// run owns the connection: it forwards received frames, hands bursts and
// other programs' frames to the writer (one at a time, slided's first), times
// TxDone (the TNC's ACKMODE answer, or the estimate) and the carrier of the
// other programs' frames, and on a lost connection reports Down and
// reconnects with backoff. It never blocks on the consumer of Events
// (events wait in its queue) nor on I/O (the reader, the writer and the
// dialer are goroutines of their own). It exits on Close, after sending the
// exit command (if any) and closing the connection and the Events channel.
func (t *TNC) run(c conn) {
	defer close(t.done)
	defer close(t.events)

	var (
		l        = t.startLink(c)
		q        evq.Queue // events not yet delivered
		txTimer  timer     // TxDone: the estimate, or the ACKMODE watchdog
		txC      <-chan time.Time
		txFrom   time.Time     // txTimer counts from here: the write's end, or the last frame heard that deferred it
		txEst    time.Duration // ... this long
		txWait   bool          // slided's burst waits for the writer
		wbusy    bool          // the writer holds a frame
		wSlided  bool          // ... and it is slided's burst
		wOther   int           // ... or another program's frame of this many bytes
		wID      bool          // ... or the station identification
		idTimer  timer         // the next identification: armed by a burst of ours
		idC      <-chan time.Time
		idWait   bool   // the identification waits for the writer
		acking   bool   // the outstanding burst went as ACKMODE
		ackID    uint16 // its id
		ackEarly bool   // its answer came before the write was reported
		acks     ackState
		carrier  bool      // CarrierOn reported for other programs' frames
		otherEnd time.Time // when their estimated airtime ends
		carTimer timer
		carC     <-chan time.Time
		retry    timer
		retryC   <-chan time.Time
		dialc    chan dialResult
		stopDial context.CancelFunc
	)
	// The last burst reported done before its estimated end (on write,
	// AcksOnly, or joined in deferTx) is outstanding, in the TNC's queue,
	// while earlyFrom+earlyEst is ahead. Only one may be: a further one
	// waits for its estimate (early).
	var (
		earlyFrom time.Time
		earlyEst  time.Duration // 0: none outstanding
		earlyAir  time.Duration // its own estimate, ahead() aside
	)
	switch t.cfg.AckMode {
	case AckOn:
		acks = ackYes
	case AckOff:
		acks = ackNo
	}
	t.count(func(s *Stats) { s.Connects++ })
	q.Push(phy.Event{Kind: phy.Up})

	stopTx := func() {
		if txTimer != nil {
			txTimer.Stop()
			txTimer, txC = nil, nil
		}
		txWait, acking, ackEarly = false, false, false
		t.busy.Store(false) // the writer has exited (link.close) or finished
	}
	carrierOff := func() {
		if carTimer != nil {
			carTimer.Stop()
			carTimer, carC = nil, nil
		}
		if carrier {
			carrier = false
			q.Push(phy.Event{Kind: phy.CarrierOff})
		}
	}
	txDone := func() {
		if txTimer != nil {
			txTimer.Stop()
		}
		txTimer, txC = nil, nil
		acking, ackEarly = false, false
		t.busy.Store(false)
		q.Push(phy.Event{Kind: phy.TxDone})
	}
	// ahead is the estimated airtime of other programs' frames the TNC
	// still holds before slided's burst.
	ahead := func() time.Duration {
		return max(0, otherEnd.Sub(t.clk.Now()))
	}
	// kick hands the writer its next frame when it is idle: slided's
	// burst first, then other programs' frames.
	kick := func() {
		if l == nil || wbusy {
			return
		}
		if txWait {
			txWait = false
			acking = acks != ackNo && !t.txacks
			if t.txsplit {
				id := -1
				if acking {
					ackID++
					ackEarly = false
					id = int(ackID)
					t.count(func(s *Stats) { s.AckSent++ })
				}
				t.txbuf, t.txpad = t.appendBurst(t.txbuf[:0], t.txpad, t.txraw, id)
			} else if acking {
				ackID++
				ackEarly = false
				var hdr [2]byte
				hdr[0], hdr[1] = byte(ackID>>8), byte(ackID)
				t.txbuf = kissproto.AppendFrame(t.txbuf[:0], t.cfg.Port, kissAckMode, append(hdr[:], t.txraw...))
				t.count(func(s *Stats) { s.AckSent++ })
			} else {
				t.txbuf = kissproto.AppendFrame(t.txbuf[:0], t.cfg.Port, kissproto.CmdData, t.txraw)
			}
			wbusy, wSlided = true, true
			l.wr <- t.txbuf // the writer is idle
			return
		}
		if idWait {
			idWait = false
			wbusy, wSlided, wID, wOther = true, false, true, len(t.idFrame)
			l.wr <- t.idFrame
			return
		}
		select {
		case f := <-t.otherc:
			t.takeOther(f)
			wbusy, wSlided, wID, wOther = true, false, false, len(f)
			l.wr <- f
		default:
		}
	}
	// txTime is the time to wait for slided's burst: the estimate, or the
	// ACKMODE watchdog, after the other programs' frames ahead of it.
	txTime := func() time.Duration {
		if acking {
			if t.txsplit {
				return ahead() + 2*t.cfg.BurstTime(t.txraw) + 4*t.cfg.AccessWait() + time.Second
			}
			return ahead() + t.cfg.ackWait(len(t.txraw))
		}
		if t.txsplit {
			return ahead() + t.cfg.BurstTime(t.txraw)
		}
		return ahead() + t.cfg.TxTime(len(t.txraw))
	}
	// early reports whether a burst reported done before its estimated
	// end is still outstanding; if not, it makes the current burst
	// (txraw, as txTime estimates it after d more) that one. A hostile
	// station that holds the channel and polls us makes an Ack burst per
	// poll: without this bound each went straight into the TNC's queue,
	// to go stale there (TestTNCAckBurstsBounded).
	early := func(d time.Duration) bool {
		now := t.clk.Now()
		if earlyEst > 0 && now.Before(earlyFrom.Add(earlyEst)) {
			return true
		}
		earlyAir = txTime() - ahead()
		earlyFrom, earlyEst = now, d+txTime()
		return false
	}
	// heldEarly: a frame heard while the early burst is outstanding held
	// it too, as deferTx has it for the current burst: its estimate
	// restarts from now, unless the frame is the answer to it.
	heldEarly := func(n int) {
		if earlyEst == 0 || t.cfg.FullDuplex {
			return
		}
		now := t.clk.Now()
		began := now.Add(-(t.cfg.TxTime(n) - t.cfg.TXDelay - t.cfg.TXTail))
		if !now.Before(earlyFrom.Add(earlyEst)) || !began.Before(earlyFrom.Add(earlyEst-earlyEst/16)) {
			earlyEst = 0
			return
		}
		earlyFrom, earlyEst = now, earlyAir+t.info.AccessWait
	}
	// deferTx: a frame heard while our burst is outstanding held the
	// channel, and a half-duplex TNC that does its own CSMA cannot have
	// sent during it: our burst had not started (it would have ended
	// before this frame began, and TxDone with it), so it goes after this
	// frame, once the TNC's p-persistence lets it.
	//
	// A short burst (an Ack or a few: at most joinMax bytes), or one of
	// Acks only however many (txquiet: nothing in it arms an Ack timer),
	// that is held this way is reported done at once, without ACKMODE: the
	// TNC sends it when the channel clears, and whatever slided writes
	// meanwhile joins the same key-up (the TNC sends all it has queued), so the Acks to a
	// burst heard frame by frame go out together, not the first alone;
	// unless a burst reported done early is still outstanding (early).
	deferTx := func(n int) {
		if txTimer == nil || t.cfg.FullDuplex {
			return
		}
		if !acking {
			// When the heard frame began on air (its airtime before
			// now, TXDELAY and TXTAIL aside). If that is after our
			// burst, sent at once, would have ended (less a sixteenth:
			// the estimate counts 3% bit stuffing), it is the far end's
			// answer to the burst, which has gone.
			now := t.clk.Now()
			began := now.Add(-(t.cfg.TxTime(n) - t.cfg.TXDelay - t.cfg.TXTail))
			if !began.Before(txFrom.Add(txEst - txEst/16)) {
				t.count(func(s *Stats) { s.Answered++ })
				txDone()
				return
			}
		}
		if !acking && (len(t.txraw) <= joinMax || t.txquiet) && !early(t.info.AccessWait) {
			t.count(func(s *Stats) { s.Deferred++; s.Joined++ })
			txDone()
			return
		}
		txTimer.Stop()
		txFrom, txEst = t.clk.Now(), txTime()+t.info.AccessWait
		txTimer = t.clk.NewTimer(txEst)
		txC = txTimer.C()
		t.count(func(s *Stats) { s.Deferred++ })
	}
	scheduleRetry := func(d time.Duration) {
		retry = t.clk.NewTimer(d)
		retryC = retry.C()
	}
	drop := func(err error) {
		t.up.Store(false)
		outstanding := t.busy.Load()
		l.close()           // before stopTx: the writer no longer holds txbuf
		for len(l.rx) > 0 { // frames that arrived before the loss
			q.Push(phy.Event{Kind: phy.Received, Data: <-l.rx})
			t.count(func(s *Stats) { s.Received++ })
		}
		l = nil
		wbusy = false
		stopTx()
		for lost := true; lost; {
			select {
			case f := <-t.otherc:
				t.takeOther(f)
				t.count(func(s *Stats) { s.OthersLost++ })
			default:
				lost = false
			}
		}
		carrierOff()
		otherEnd = time.Time{}
		t.otherEnd.Store(0)
		t.count(func(s *Stats) { s.Drops++ })
		q.PushDown(!outstanding)
		scheduleRetry(t.redial.Lost(t.clk.Now(), err))
	}

	for {
		var (
			rxc    <-chan []byte
			errc   <-chan error
			wrc    <-chan error
			ackc   <-chan uint16
			heardc <-chan int
			otherc <-chan []byte
			out    chan<- phy.Event
			head   phy.Event
		)
		if l != nil {
			errc, wrc, ackc, heardc = l.errc, l.wrDone, l.acks, l.heard
			if q.Received() < rxHeld {
				rxc = l.rx
			}
			if !wbusy && !txWait {
				otherc = t.otherc
			}
		}
		out, head = q.Out(t.events)
		select {
		case <-t.closing:
			if l != nil {
				t.sendExit(l, wbusy)
				l.close()
			}
			stopTx()
			carrierOff()
			if idTimer != nil {
				idTimer.Stop()
			}
			if retry != nil {
				retry.Stop()
			}
			if dialc != nil {
				// Do not wait for the dial: a serial open can hang in the
				// kernel. Its goroutine closes what it got and exits.
				stopDial()
				go func(ch <-chan dialResult) {
					if r := <-ch; r.c != nil {
						r.c.Close()
					}
				}(dialc)
			}
			t.up.Store(false)
			return

		case out <- head:
			q.Pop()

		case <-t.txc:
			if l == nil {
				t.txReply <- fmt.Errorf("kiss: %s: %w", t.target, phy.ErrDown)
				continue
			}
			t.txReply <- nil
			txWait = true
			kick()

		case f := <-otherc:
			t.takeOther(f)
			wbusy, wSlided, wID, wOther = true, false, false, len(f)
			l.wr <- f

		case <-idC:
			idTimer, idC = nil, nil
			idWait = true
			kick()

		case err := <-wrc:
			if !wbusy {
				continue
			}
			wbusy = false
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.count(func(s *Stats) { s.WriteTimeouts++ })
				drop(fmt.Errorf("%w: %v", ErrWriteTimeout, t.wtime))
				continue
			}
			if err != nil {
				drop(fmt.Errorf("write: %w", err))
				continue
			}
			if wSlided {
				switch {
				case t.txacks && !early(0):
					t.count(func(s *Stats) { s.Early++ })
					txDone()
				case acking && ackEarly:
					t.count(func(s *Stats) { s.Acked++ })
					txDone()
				default:
					txFrom, txEst = t.clk.Now(), txTime()
					txTimer = t.clk.NewTimer(txEst)
					txC = txTimer.C()
				}
				if t.idFrame != nil && idTimer == nil {
					// We transmitted: identify within the interval (and so
					// again at its end, and once after the last burst).
					idTimer = t.clk.NewTimer(t.cfg.StationIDInterval)
					idC = idTimer.C()
				}
				n := uint64(1)
				if t.txsplit {
					n = uint64(framing.CountFrames(t.txraw))
					t.count(func(s *Stats) { s.Bursts++ })
				}
				t.count(func(s *Stats) { s.Sent += n }) // after the timer: tests wait for the count
			} else {
				now := t.clk.Now()
				if otherEnd.Before(now) {
					otherEnd = now
				}
				otherEnd = otherEnd.Add(t.cfg.TxTime(wOther))
				t.otherEnd.Store(otherEnd.UnixNano())
				if !carrier {
					carrier = true
					q.Push(phy.Event{Kind: phy.CarrierOn})
				}
				if carTimer != nil {
					carTimer.Stop()
				}
				carTimer = t.clk.NewTimer(otherEnd.Sub(now))
				carC = carTimer.C()
				if wID {
					t.count(func(s *Stats) { s.IDSent++ })
				} else {
					t.count(func(s *Stats) { s.OthersSent++ })
				}
			}
			kick()

		case id := <-ackc:
			if !acking || id != ackID || (txTimer == nil && !(wbusy && wSlided)) {
				t.count(func(s *Stats) { s.AckStray++ })
				continue
			}
			if acks == ackUnknown {
				acks = ackYes
				t.log.Info().Str("tnc", t.target).Msg("kiss: tnc answers ACKMODE: TxDone from the tnc from now on")
			}
			if txTimer == nil { // the write is not reported yet
				ackEarly = true
				continue
			}
			t.count(func(s *Stats) { s.Acked++ })
			txDone()

		case fired := <-txC:
			txTimer, txC = nil, nil
			if acking {
				// The ACKMODE watchdog fired; if it fired late, this
				// process did not run meanwhile (package selfstall)
				// and the TNC's answer may wait unread: the watchdog
				// counts again from now. A timer's value is the time
				// it fired: after a stop, when the process resumed.
				var w selfstall.Watch
				w.Expect(txFrom, txFrom.Add(txEst))
				if late := w.Stalled(fired); late > 0 {
					t.count(func(s *Stats) { s.SelfStalls++ })
					selfstall.Log(t.log.With().Str("tnc", t.target).Logger(), late, "the tnc")
					txFrom = t.clk.Now()
					txTimer = t.clk.NewTimer(txEst)
					txC = txTimer.C()
					continue
				}
				if acks == ackUnknown {
					acks = ackNo
					t.count(func(s *Stats) { s.AckUnsupported = 1 })
					t.log.Warn().Str("tnc", t.target).Str("waited", t.cfg.ackWait(len(t.txraw)).String()).
						Msg("kiss: tnc did not answer ACKMODE: TxDone from the airtime estimate from now on (the probe burst may have been dropped by the tnc; link ARQ resends it)")
				} else {
					t.count(func(s *Stats) { s.AckTimeouts++ })
					t.log.Warn().Str("tnc", t.target).Uint16("id", ackID).
						Msg("kiss: no ACKMODE answer from the tnc within the watchdog; taking the burst as sent")
				}
			}
			txDone()

		case <-carC:
			carTimer, carC = nil, nil
			carrierOff()

		case b := <-rxc:
			t.count(func(s *Stats) { s.Received++ })
			heldEarly(len(b))
			deferTx(len(b))
			q.Push(phy.Event{Kind: phy.Received, Data: b})

		case n := <-heardc:
			heldEarly(n)
			deferTx(n)

		case err := <-errc:
			drop(err)

		case <-retryC:
			retry, retryC = nil, nil
			ctx, cancel := context.WithCancel(context.Background())
			stopDial = cancel
			dialc = make(chan dialResult, 1)
			go func(ch chan<- dialResult) {
				c, err := t.connect(ctx)
				ch <- dialResult{c, err}
			}(dialc)

		case r := <-dialc:
			dialc = nil
			stopDial()
			if r.err != nil {
				scheduleRetry(t.redial.Failed(t.clk.Now(), r.err))
				continue
			}
			l = t.startLink(r.c)
			t.redial.Up(t.clk.Now())
			t.up.Store(true)
			t.count(func(s *Stats) { s.Connects++ })
			q.Push(phy.Event{Kind: phy.Up})
		}
	}
}

// sendExit writes the exit command at Close, through the writer when it is
// idle (a frame in progress is not cut into), and waits for the write at
// most exitWait.
func (t *TNC) sendExit(l *link, wbusy bool) {
	if len(t.cfg.Exit) == 0 {
		return
	}
	if wbusy {
		t.log.Warn().Str("tnc", t.target).Msg("kiss: exit command not sent: a write was in progress at close")
		return
	}
	l.wr <- t.cfg.Exit
	tm := time.NewTimer(exitWait)
	defer tm.Stop()
	select {
	case err := <-l.wrDone:
		if err != nil {
			t.log.Warn().Str("tnc", t.target).Err(err).Msg("kiss: exit command not sent")
		}
	case <-tm.C:
		t.log.Warn().Str("tnc", t.target).Msg("kiss: exit command not sent within a second")
	}
}
