package serial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/internal/redial"
	"github.com/slided/slided/internal/selfstall"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/internal/evq"
)

// Transmit's errors wrap phy.ErrTooLarge, phy.ErrEmpty, phy.ErrBusy,
// phy.ErrDown and phy.ErrClosed (package phy); callers branch on those with
// errors.Is. The errors below are causes of a Down, logged and wrapped in
// the log line's error.
var (
	// ErrHangup is the cause logged when a read returns end of file or EIO:
	// the device hung up (a pty whose master closed, a USB adapter
	// unplugged). Linux gives a tty's reader either, depending on whether
	// the read was already waiting when the other side went.
	ErrHangup = errors.New("device hung up")
	// ErrVanished is the cause logged when the device path no longer exists
	// although the open device still answers.
	ErrVanished = errors.New("device path vanished")
	// ErrWriteTimeout is the cause logged when the write watchdog fires.
	ErrWriteTimeout = errors.New("write did not finish in time (flow control held off?)")
)

// Stats are the port's counters since Open.
type Stats struct {
	BytesIn  uint64 // bytes received from the device
	BytesOut uint64 // bytes written to the device
	// Bursts is the number of TxDone reported.
	Bursts uint64
	// Reopens counts successful reopens after a Down.
	Reopens uint64
	// WriteTimeouts counts bursts the watchdog abandoned.
	WriteTimeouts uint64
	// SelfStalls counts timer wake-ups found late because the port's own
	// process did not run (package selfstall); a write watchdog that
	// expired meanwhile got a fresh period instead of dropping the burst.
	SelfStalls uint64
	// Refused counts Transmit calls that returned an error.
	Refused uint64
}

const (
	eventQueue = 64 // Events channel capacity
	// rxHeld bounds the received chunks run holds beyond the Events
	// channel; with both full it stops taking chunks from the reader, which
	// stops reading the device (the tty's buffer, then the modem's flow
	// control, holds the rest off).
	rxHeld   = 64
	rxQueue  = 16   // chunks between the reader and the run goroutine
	slabSize = 4096 // receive chunks are carved out of slabs this big
	minRead  = 512  // a new slab is taken when less than this is left

	defaultDCDPoll    = 20 * time.Millisecond
	defaultBackoffMin = 250 * time.Millisecond
	defaultBackoffMax = 10 * time.Second
	// defaultPathCheck is how often an idle port checks that its device
	// path still exists. Every timer costs an idle daemon a dozen or more
	// context switches (the Go runtime's sysmon spins while the timer is
	// run), so an idle port wakes for this only twice a minute; a vanished
	// device usually ends the read at once anyway (EIO, end of file).
	defaultPathCheck = 30 * time.Second
	// pathCheckTx: a burst checks the path first if the last check is older
	// than this, so a port in use notices a vanished path within a burst.
	pathCheckTx = time.Second
)

// options are what tests change; Open uses the defaults.
type options struct {
	clock      Clock
	dcdPoll    time.Duration
	backoffMin time.Duration
	backoffMax time.Duration
	pathCheck  time.Duration             // how often the device path is checked while idle (and before a burst: pathCheckTx)
	dcd        func(*line) (bool, error) // reads DCD; (*line).DCD unless faked
}

func defaultOptions() options {
	return options{
		clock:      realClock{},
		dcdPoll:    defaultDCDPoll,
		backoffMin: defaultBackoffMin,
		backoffMax: defaultBackoffMax,
		pathCheck:  defaultPathCheck,
		dcd:        (*line).DCD,
	}
}

// Port is a raw serial modem. It satisfies bridge.PHY.
//
// Goroutines: one run goroutine owns all mutable state (the open device,
// the burst on air, carrier, timers, backoff) and is the only sender on
// Events. Each open instance of the device has a reader goroutine, which
// exits at the first read error (closing the device causes one), and a
// writer goroutine, which exits when the device is dropped. Close (or the
// end of the context given to Open) stops run, which closes the device,
// waits for every reader and writer to exit, then closes Events.
//
// The run goroutine never blocks on the consumer of Events: events wait in
// its queue (evq). While the consumer does not read, Transmit, Close, the
// timers and the write watchdog go on, and received bytes beyond the
// queue's bound wait in the OS buffer: nothing is lost.
type Port struct {
	cfg  Config
	info phy.Info
	log  zerolog.Logger
	opt  options
	ctx  context.Context

	events   chan phy.Event
	txReq    chan []byte
	txResp   chan error
	rx       chan rxMsg
	wrDone   chan wrMsg
	tick     chan struct{}
	ctl      chan func()
	quit     chan struct{} // closed by Close
	stopping chan struct{} // closed when run starts to shut down
	done     chan struct{} // closed when run has exited
	quitOnce sync.Once
	txMu     sync.Mutex // one Transmit at a time
	wg       sync.WaitGroup

	bytesIn, bytesOut, bursts, reopens, writeTimeouts, refused, selfStalls atomic.Uint64

	st runState  // owned by run
	q  evq.Queue // events not yet delivered, owned by run
}

// conn is one open instance of the device with its goroutines' channels.
type conn struct {
	*line
	wr   chan []byte   // to the writer; capacity 1, one burst at a time
	stop chan struct{} // closed when the conn is dropped
}

type rxMsg struct {
	c    *conn
	data []byte
	err  error
}

type wrMsg struct {
	c   *conn
	n   int
	err error
}

type runState struct {
	c     *conn // nil while down
	timer Timer
	armed time.Time
	watch selfstall.Watch // when the timer is due, to tell a stall of this process

	txActive   bool
	txWritten  bool
	txBuf      []byte
	paceAt     time.Time // TXDelay + airtime after Transmit (pushed by TIOCOUTQ)
	watchdogAt time.Time
	outqFailed bool

	sensed, reported bool // carrier: what the modem senses, what we last told
	lastRx           time.Time
	dcdAt            time.Time
	dcdErr           string
	pathAt           time.Time // the next check of the device path (pathCheck after the last)
	pathChecked      time.Time // the last one

	reopenAt time.Time
	redial   *redial.Loop // the reopen backoff and its log lines
}

// Open opens cfg.Path (defaults filled in, see Config), reports Up on Events
// and serves the device until Close or until ctx ends. If the device cannot
// be opened, Open returns the error (errors.Is(err, fs.ErrNotExist) when the
// path does not exist) and the caller retries; once open, the port reopens
// the device by itself after it went away.
func Open(ctx context.Context, cfg Config, log zerolog.Logger) (*Port, error) {
	return open(ctx, cfg, log, defaultOptions())
}

func open(ctx context.Context, cfg Config, log zerolog.Logger, opt options) (*Port, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Port{
		cfg: cfg,
		info: phy.Info{BitRate: cfg.AirRate, MaxFrame: cfg.MaxFrame, Turnaround: cfg.Turnaround, CarrierLag: carrierLag(cfg),
			NoCarrier: cfg.Carrier == CarrierNone},
		log:      log.With().Str("phy", "serial").Str("path", cfg.Path).Logger(),
		opt:      opt,
		ctx:      ctx,
		events:   make(chan phy.Event, eventQueue),
		txReq:    make(chan []byte),
		txResp:   make(chan error, 1),
		rx:       make(chan rxMsg, rxQueue),
		wrDone:   make(chan wrMsg, 1),
		tick:     make(chan struct{}, 1),
		ctl:      make(chan func()),
		quit:     make(chan struct{}),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	c, err := p.openConn()
	if err != nil {
		return nil, err
	}
	if cfg.MaxFrame > 0 {
		p.st.txBuf = make([]byte, 0, cfg.MaxFrame)
	}
	p.st.redial = redial.New(redial.Policy{Min: opt.backoffMin, Max: opt.backoffMax}, "serial: modem", p.log)
	p.st.redial.Up(opt.clock.Now())
	p.st.timer = opt.clock.AfterFunc(time.Hour, p.onTimer)
	p.st.timer.Stop()
	p.log.Info().Str("profile", cfg.Profile).Str("mode", cfg.Mode).Int("baud", cfg.Baud).Int("air", cfg.AirRate).
		Int("frame", cfg.MaxFrame).Dur("txdelay", cfg.TXDelay).Dur("gap", cfg.Gap).Dur("turnaround", cfg.Turnaround).
		Str("carrier", cfg.Carrier).Bool("rtscts", cfg.RTSCTS).Msg("modem open")
	go p.run(c)
	return p, nil
}

// Info describes the modem: the air rate, largest packet and turnaround.
func (p *Port) Info() phy.Info { return p.info }

// Events delivers Up (first), Received, CarrierOn/Off, TxDone, Down in
// order. It is closed after Close.
func (p *Port) Events() <-chan phy.Event { return p.events }

// Stats returns the counters; safe from any goroutine.
func (p *Port) Stats() Stats {
	return Stats{
		BytesIn: p.bytesIn.Load(), BytesOut: p.bytesOut.Load(), Bursts: p.bursts.Load(),
		Reopens: p.reopens.Load(), WriteTimeouts: p.writeTimeouts.Load(), Refused: p.refused.Load(), SelfStalls: p.selfStalls.Load(),
	}
}

// Transmit copies b and starts writing it to the modem; it returns without
// waiting for the airtime. TxDone follows once the burst is on air in full
// by the modem model (Config.BurstTime: in stream mode TXDelay plus the
// airtime of b at the air rate; in packet mode first the serial time of b
// and the modem's Gap) and the OS holds none of it (TIOCOUTQ), or
// Down follows if the device went away or the write watchdog fired. It must
// not be called again before then (phy.ErrBusy). A burst longer than MaxFrame
// is refused (phy.ErrTooLarge), as is one while the device is down (phy.ErrDown)
// and after Close (phy.ErrClosed); an empty one gives phy.ErrEmpty. It never
// waits on the consumer of Events nor on the device.
func (p *Port) Transmit(b []byte) error {
	if len(b) == 0 {
		p.refused.Add(1)
		return fmt.Errorf("serial: %w", phy.ErrEmpty)
	}
	if p.cfg.MaxFrame > 0 && len(b) > p.cfg.MaxFrame {
		p.refused.Add(1)
		return fmt.Errorf("serial: %d bytes, largest %d: %w", len(b), p.cfg.MaxFrame, phy.ErrTooLarge)
	}
	p.txMu.Lock()
	defer p.txMu.Unlock()
	select {
	case p.txReq <- b:
		return <-p.txResp
	case <-p.stopping:
		return fmt.Errorf("serial: %w", phy.ErrClosed)
	}
}

// Close stops the port, closes the device, waits for its goroutines to
// exit and closes Events. It is safe to call more than once.
func (p *Port) Close() error {
	p.quitOnce.Do(func() { close(p.quit) })
	<-p.done
	return nil
}

func (p *Port) onTimer() {
	select {
	case p.tick <- struct{}{}:
	default:
	}
}

func (p *Port) openConn() (*conn, error) {
	ln, err := openLine(p.cfg)
	if err != nil {
		return nil, err
	}
	if p.cfg.Carrier == CarrierDCD {
		if _, err := p.opt.dcd(ln); err != nil {
			ln.Close()
			return nil, fmt.Errorf("carrier=dcd needs the modem status of %s: %w", p.cfg.Path, err)
		}
	}
	c := &conn{line: ln, wr: make(chan []byte, 1), stop: make(chan struct{})}
	p.wg.Add(2)
	go p.reader(c)
	go p.writer(c)
	return c, nil
}

// reader delivers what the device returns, in chunks carved from a slab so
// that a steady stream costs one allocation per slab, not per read. Each
// chunk is handed over for good (the slab's next chunk starts after it). It
// exits after the first error, which closing the device causes.
func (p *Port) reader(c *conn) {
	defer p.wg.Done()
	var slab []byte
	for {
		if cap(slab)-len(slab) < minRead {
			slab = make([]byte, 0, slabSize)
		}
		buf := slab[len(slab):cap(slab)]
		n, err := c.Read(buf)
		var data []byte
		if n > 0 {
			data = buf[:n:n]
			slab = slab[:len(slab)+n]
		}
		if n > 0 || err != nil {
			select {
			case p.rx <- rxMsg{c: c, data: data, err: err}:
			case <-p.stopping:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// writer writes one burst at a time; it exits when c is dropped. A Write
// blocked by flow control returns when the run goroutine closes the device.
func (p *Port) writer(c *conn) {
	defer p.wg.Done()
	for {
		select {
		case b := <-c.wr:
			n, err := c.Write(b)
			select {
			case p.wrDone <- wrMsg{c: c, n: n, err: err}:
			case <-p.stopping:
				return
			}
		case <-c.stop:
			return
		}
	}
}

func (p *Port) run(c *conn) {
	defer func() {
		close(p.stopping)
		p.st.timer.Stop()
		if p.st.c != nil {
			p.drop()
		}
		p.wg.Wait()
		close(p.events)
		close(p.done)
	}()
	p.st.c = c
	p.push(phy.Event{Kind: phy.Up})
	now := p.opt.clock.Now()
	p.st.pathChecked, p.st.pathAt = now, now.Add(p.opt.pathCheck)
	if p.cfg.Carrier == CarrierDCD {
		p.st.dcdAt = now
	}
	for {
		p.arm()
		out, head := p.q.Out(p.events)
		rx := p.rx
		if p.q.Received() >= rxHeld {
			rx = nil // flow control: the reader waits, then the OS buffer
		}
		select {
		case <-p.quit:
			return
		case <-p.ctx.Done():
			return
		case out <- head:
			p.q.Pop()
		case b := <-p.txReq:
			p.txResp <- p.startTx(b)
		case m := <-rx:
			p.onRx(m)
		case m := <-p.wrDone:
			p.onWrote(m)
		case <-p.tick:
			p.onTick()
		case f := <-p.ctl:
			// A test barrier: ticks the fake clock already fired (also those
			// that handling a tick fires) are handled first.
			for drained := false; !drained; {
				select {
				case <-p.tick:
					p.onTick()
					p.arm()
				default:
					drained = true
				}
			}
			p.q.Flush(p.events)
			f()
		}
	}
}

// push queues ev for the consumer; run delivers it when it can.
func (p *Port) push(ev phy.Event) { p.q.Push(ev) }

// arm sets the one timer for the earliest pending deadline, or earlier.
func (p *Port) arm() {
	st := &p.st
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if st.c == nil {
		consider(st.reopenAt)
	} else {
		if st.txActive {
			consider(st.watchdogAt)
			if st.txWritten {
				consider(st.paceAt)
			}
		}
		consider(st.pathAt)
		if p.cfg.Carrier == CarrierDCD {
			consider(st.dcdAt)
		} else if st.sensed {
			consider(st.lastRx.Add(p.cfg.Hangover))
		}
	}
	// The timer is set again only when the deadline moves earlier (or
	// after it fired, which clears armed): a timer moved later keeps its
	// old time in the runtime's heap, which then wakes the process for
	// nothing, and on a busy line every read moves the hang-over's end
	// later. A timer that fires before the deadline finds nothing due and
	// is set for the rest (onTick).
	if next.IsZero() {
		if !st.armed.IsZero() {
			st.armed = time.Time{}
			st.watch.Expect(p.opt.clock.Now(), time.Time{})
			st.timer.Stop()
		}
		return
	}
	if !st.armed.IsZero() && !next.Before(st.armed) {
		return
	}
	st.armed = next
	now := p.opt.clock.Now()
	st.watch.Expect(now, next)
	st.timer.Reset(max(next.Sub(now), 0))
}

func (p *Port) onTick() {
	st := &p.st
	st.armed = time.Time{} // re-arm whatever is still pending
	now := p.opt.clock.Now()
	if late := st.watch.Stalled(now); late > 0 && st.c != nil {
		// This process did not run: a burst written meanwhile has gone,
		// and its write's report waits in run's queue. The watchdog
		// counts from now.
		p.selfStalls.Add(1)
		selfstall.Log(p.log, late, "the modem")
		if st.txActive && !now.Before(st.watchdogAt) {
			st.watchdogAt = now.Add(p.cfg.WriteTimeout)
		}
	}
	if st.c == nil {
		if !st.reopenAt.IsZero() && !now.Before(st.reopenAt) {
			p.reopen(now)
		}
		return
	}
	if st.txActive && !now.Before(st.watchdogAt) {
		p.writeTimeouts.Add(1)
		p.down(now, ErrWriteTimeout)
		return
	}
	if !now.Before(st.pathAt) && !p.checkPath(now) {
		return
	}
	p.finishTx(now)
	if p.cfg.Carrier == CarrierDCD && !now.Before(st.dcdAt) {
		st.dcdAt = now.Add(p.opt.dcdPoll)
		on, err := p.opt.dcd(st.c.line)
		if err != nil {
			if msg := err.Error(); msg != st.dcdErr {
				st.dcdErr = msg
				p.log.Warn().Err(err).Msg("reading DCD failed")
			}
		} else {
			st.dcdErr = ""
			st.sensed = on
		}
	}
	p.carrier(now)
}

// checkPath checks that the device path still exists; if it does not, it
// takes the port down and returns false.
func (p *Port) checkPath(now time.Time) bool {
	st := &p.st
	st.pathChecked, st.pathAt = now, now.Add(p.opt.pathCheck)
	if _, err := os.Stat(p.cfg.Path); errors.Is(err, fs.ErrNotExist) {
		p.down(now, fmt.Errorf("%w: %w", ErrVanished, err))
		return false
	}
	return true
}

func (p *Port) startTx(b []byte) error {
	st := &p.st
	switch {
	case st.c == nil:
		p.refused.Add(1)
		return fmt.Errorf("serial %s: %w", p.cfg.Path, phy.ErrDown)
	case st.txActive:
		p.refused.Add(1)
		return fmt.Errorf("serial: %w", phy.ErrBusy)
	}
	now := p.opt.clock.Now()
	if now.Sub(st.pathChecked) >= pathCheckTx && !p.checkPath(now) {
		p.refused.Add(1)
		return fmt.Errorf("serial %s: %w", p.cfg.Path, phy.ErrDown)
	}
	st.txBuf = append(st.txBuf[:0], b...)
	air := p.cfg.burstTime(len(b))
	st.txActive, st.txWritten = true, false
	st.paceAt = now.Add(air)
	st.watchdogAt = now.Add(air + p.cfg.WriteTimeout)
	st.c.wr <- st.txBuf // the writer is idle: its last burst was reported
	return nil
}

func (p *Port) onWrote(m wrMsg) {
	st := &p.st
	if m.c != st.c || !st.txActive {
		return // from a device already dropped
	}
	p.bytesOut.Add(uint64(m.n))
	now := p.opt.clock.Now()
	if m.err != nil {
		p.down(now, fmt.Errorf("write: %w", m.err))
		return
	}
	st.txWritten = true
	p.finishTx(now)
	p.carrier(now)
}

// finishTx reports TxDone once the burst is written, its paced airtime is
// over and the OS holds none of it; bytes still in the OS push the end out
// by their own airtime.
func (p *Port) finishTx(now time.Time) {
	st := &p.st
	if !st.txActive || !st.txWritten || now.Before(st.paceAt) {
		return
	}
	if !st.outqFailed {
		q, err := st.c.OutQ()
		if err != nil {
			st.outqFailed = true
			p.log.Info().Err(err).Msg("TIOCOUTQ not supported, pacing by air rate only")
		} else if q > 0 {
			// Stream mode: the bytes still queued go on air as they leave.
			// Packet mode: the modem keys up only after the last of them,
			// then sends the whole packet.
			rest := phy.Airtime(q, p.cfg.AirRate)
			if p.cfg.Mode == ModePacket {
				rest = p.cfg.charTime(q) + p.cfg.Gap + p.cfg.TXDelay + phy.Airtime(len(st.txBuf), p.cfg.AirRate)
			}
			st.paceAt = now.Add(max(rest, time.Millisecond))
			return
		}
	}
	st.txActive = false
	p.bursts.Add(1)
	p.push(phy.Event{Kind: phy.TxDone})
}

func (p *Port) onRx(m rxMsg) {
	st := &p.st
	if m.c != st.c {
		return
	}
	now := p.opt.clock.Now()
	if len(m.data) > 0 {
		p.bytesIn.Add(uint64(len(m.data)))
		// A half-duplex modem hears nothing while it transmits: bytes that
		// arrive then (echoes, status) do not count as carrier.
		if p.cfg.Carrier == CarrierRx && !st.txActive {
			st.lastRx = now
			st.sensed = true
			p.carrier(now)
		}
		p.push(phy.Event{Kind: phy.Received, Data: m.data})
	}
	if m.err != nil {
		err := m.err
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.EIO) {
			err = fmt.Errorf("%w (%w)", ErrHangup, err)
		}
		p.down(now, fmt.Errorf("read: %w", err))
	}
}

// carrier reports a change of the sensed carrier, except while transmitting.
func (p *Port) carrier(now time.Time) {
	st := &p.st
	if p.cfg.Carrier == CarrierRx && st.sensed && !now.Before(st.lastRx.Add(p.cfg.Hangover)) {
		st.sensed = false
	}
	if st.txActive || st.sensed == st.reported {
		return
	}
	st.reported = st.sensed
	if st.sensed {
		p.push(phy.Event{Kind: phy.CarrierOn})
	} else {
		p.push(phy.Event{Kind: phy.CarrierOff})
	}
}

// drop closes the device and lets its goroutines go.
func (p *Port) drop() {
	st := &p.st
	if err := st.c.Close(); err != nil {
		p.log.Debug().Err(err).Msg("closing the device")
	}
	close(st.c.stop)
	st.c = nil
}

// down drops the device after an error, reports it and schedules a reopen.
func (p *Port) down(now time.Time, cause error) {
	st := &p.st
	p.drop()
	idle := !st.txActive
	if st.txActive {
		// The abandoned writer may still hold txBuf for a moment.
		st.txBuf = nil
		st.txActive = false
	}
	st.sensed, st.lastRx = false, time.Time{}
	if st.reported {
		st.reported = false
		p.push(phy.Event{Kind: phy.CarrierOff})
	}
	p.q.PushDown(idle)
	st.reopenAt = now.Add(st.redial.Lost(now, cause))
}

// reopen tries once; failures back off (package redial: exponentially up
// to backoffMax, jittered, logged once per backoff step and again when the
// error changes, not per try).
func (p *Port) reopen(now time.Time) {
	st := &p.st
	c, err := p.openConn()
	if err != nil {
		st.reopenAt = now.Add(st.redial.Failed(now, err))
		return
	}
	st.c, st.reopenAt = c, time.Time{}
	st.pathChecked, st.pathAt = now, now.Add(p.opt.pathCheck)
	if p.cfg.Carrier == CarrierDCD {
		st.dcdAt = now
	}
	p.reopens.Add(1)
	st.redial.Up(now)
	p.push(phy.Event{Kind: phy.Up})
}

// sync runs f on the run goroutine after any tick already fired (tests).
func (p *Port) sync(f func()) bool {
	done := make(chan struct{})
	select {
	case p.ctl <- func() { f(); close(done) }:
		<-done
		return true
	case <-p.stopping:
		return false
	}
}

// carrierLag is the hang-over of carrier sense inferred from receive
// activity; the DCD line follows the channel.
func carrierLag(cfg Config) time.Duration {
	if cfg.Carrier == CarrierRx {
		return cfg.Hangover
	}
	return 0
}
