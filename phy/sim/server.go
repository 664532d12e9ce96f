package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/internal/precise"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/sim/medium"
)

// Server runs a medium.Medium in real time for clients on a stream socket.
//
// Goroutines, while Serve runs:
//   - the owner goroutine owns the Medium and the table of attached
//     connections; a timer wakes it at the Medium's next event. It exits when
//     Serve's context is done or the listener fails.
//   - Serve's own goroutine accepts connections.
//   - per connection, a reader goroutine (hello, then transmit requests to
//     the owner) and, once attached, a writer goroutine draining a bounded
//     byte queue filled by the owner. Both exit when the connection closes;
//     Serve closes every connection before it returns.
//
// The owner never blocks on a client: when a connection's queue exceeds
// queueLimit bytes, the client is disconnected (slow reader).
//
// With a UDP socket (ServeUDP, ServeAll), a reader goroutine decodes
// datagrams and hands them to the owner, which keeps one session per client
// address and writes datagrams itself (udpserver.go); a timer wakes the
// owner when the quietest session is due to expire.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	m       *medium.Medium // owned by the owner goroutine while Serve runs
	reqs    chan request
	serving atomic.Bool
	setMu   sync.Mutex // SetTopology before Serve against Serve starting

	statsMu sync.Mutex
	stats   medium.Stats

	udpCount   udpCounters                      // UDP transport counters, kept across Serve calls
	udpKey     *auth.Key                        // set before Serve (SetUDPKey)
	udpLinger  time.Duration                    // set before Serve (SetUDPSessionTimeout); 0: the default
	complaints atomic.Pointer[complaintLimiter] // the UDP transport's, kept across Serve calls
	precise    bool                             // the owner's timer is a timerfd (UsePreciseTimer)
}

// UsePreciseTimer makes the owner wake for the medium's events with a
// timerfd (internal/precise) instead of a time.Timer, which the runtime may
// fire up to a millisecond late: every TxDone, carrier change and delivery
// would then come late by as much, a slot or more at 115200 bit/s. Call it
// before Serve; `slided sim` does, the tests (synctest bubbles among them)
// do not.
func (s *Server) UsePreciseTimer() { s.precise = true }

// queueLimit bounds the bytes waiting for one client's writer: room for a few
// dozen largest bursts, far more than a client that keeps up ever holds.
const queueLimit = 16 * maxMsg

// helloTimeout bounds how long a new connection may take to say hello.
const helloTimeout = 5 * time.Second

type reqOp uint8

const (
	reqAttach reqOp = iota + 1
	reqTransmit
	reqDetach
	reqTopology
	reqDatagram
)

type request struct {
	op    reqOp
	c     *serverConn
	data  []byte           // reqTransmit: lent until reply
	burst [][]byte         // reqTransmit: a burst's frames, data the last one; lent until reply
	topo  *medium.Topology // reqTopology
	reply chan error       // reqAttach, reqTransmit, reqDatagram
	from  netip.AddrPort   // reqDatagram: the sender
	dg    *datagram        // reqDatagram: lent until reply
}

// attachment is an attached client as the owner sees it: a stream
// connection (serverConn) or a UDP session (udpSession). Both methods are
// called by the owner only.
type attachment interface {
	node() NodeID
	// enqueueEvent passes ev on; false means the client cannot keep up.
	enqueueEvent(ev phy.Event) bool
	close()
}

// NewServer returns a server for a medium configured by cfg, logging to log.
func NewServer(cfg Config, log zerolog.Logger) (*Server, error) {
	m, err := medium.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, log: log, m: m, reqs: make(chan request)}, nil
}

// Stats returns the medium's counters. It is safe from any goroutine; the
// figures are as of the owner's last wake-up.
func (s *Server) Stats() medium.Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// SetTopology replaces the medium's links (Medium.SetTopology) while the
// server runs, or before Serve; it is safe from any goroutine and applies to
// transmissions that start after it returns. It fails only when ctx is done
// or Serve is stopping. The server keeps t; do not change it afterwards.
func (s *Server) SetTopology(ctx context.Context, t *medium.Topology) error {
	if !s.serving.Load() {
		s.setMu.Lock()
		defer s.setMu.Unlock()
		if !s.serving.Load() {
			s.m.SetTopology(t)
			return nil
		}
	}
	return s.ask(ctx, request{op: reqTopology, topo: t, reply: make(chan error, 1)})
}

// Serve accepts clients on ln until ctx is done or ln fails, then closes ln
// and every connection, detaches their nodes, and returns: nil after ctx is
// done, otherwise the listener's error. One Serve at a time; Serve may be
// called again (on a new listener) after it returned, with the same medium.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.ServeAll(ctx, ln, nil)
}

// ServeAll is Serve on a stream listener and a UDP socket at once, one
// medium for the clients of both; either may be nil, not both. It closes
// both before it returns (nil after ctx is done, otherwise the first error
// of either). The UDP protocol is in docs/simulator.md.
func (s *Server) ServeAll(ctx context.Context, ln net.Listener, pc *net.UDPConn) error {
	if ln == nil && pc == nil {
		return errors.New("sim: serve: no listener and no UDP socket")
	}
	s.setMu.Lock()
	ok := s.serving.CompareAndSwap(false, true)
	s.setMu.Unlock()
	if !ok {
		return errors.New("sim: server already serving")
	}
	defer s.serving.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var u *udpServer
	var udpErr chan error
	if pc != nil {
		defer pc.Close()
		cl := s.complaints.Load()
		if cl == nil {
			cl = newComplaintLimiter(complaintEvery)
			s.complaints.Store(cl)
		}
		u = newUDPServer(pc, s.cfg.BitRate, s.udpKey, &s.udpCount, cl, s.log)
		u.setSessionTimeout(s.udpLinger)
		udpErr = make(chan error, 1)
		// Wake the reader without closing the socket: the owner still
		// says goodbye to the UDP clients on its way out.
		stopPC := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Unix(1, 0)) })
		defer stopPC()
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.own(ctx, u)
	}()
	if u != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.readUDP(ctx, u); err != nil {
				udpErr <- err
				cancel()
			}
		}()
		s.log.Info().Str("udp", pc.LocalAddr().String()).Int("bit_rate", s.cfg.BitRate).
			Dur("prop_delay", s.cfg.PropDelay).Msg("sim: medium serving on UDP")
	}

	var err error
	if ln != nil {
		stopLn := context.AfterFunc(ctx, func() { ln.Close() })
		defer stopLn()
		s.log.Info().Str("addr", ln.Addr().String()).Int("bit_rate", s.cfg.BitRate).
			Dur("prop_delay", s.cfg.PropDelay).Msg("sim: medium serving")
		for {
			nc, aerr := ln.Accept()
			if aerr != nil {
				if ctx.Err() == nil {
					err = fmt.Errorf("sim: accept: %w", aerr)
				}
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.handle(ctx, &wg, nc)
			}()
		}
		cancel()
		ln.Close()
	} else {
		<-ctx.Done()
	}
	wg.Wait()
	if err == nil && udpErr != nil {
		select {
		case err = <-udpErr:
		default:
		}
	}
	s.log.Info().Msg("sim: medium stopped")
	return err
}

// own is the owner goroutine: the only one that touches s.m (and u's
// sessions, u may be nil).
func (s *Server) own(ctx context.Context, u *udpServer) {
	var conns [256]attachment
	var drops []attachment
	// expiry wakes the owner when the quietest UDP session is due to
	// expire; it is stopped while there is none, so an idle medium does
	// not wake.
	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	defer expiry.Stop()
	deliver := func(to NodeID, ev phy.Event) {
		c := conns[to]
		if c == nil {
			return
		}
		if !c.enqueueEvent(ev) {
			drops = append(drops, c)
		}
	}
	drop := func(now time.Time, c attachment, reason string) {
		if conns[c.node()] != c {
			return
		}
		conns[c.node()] = nil
		s.m.Detach(now, c.node())
		c.close()
		s.log.Warn().Uint8("node", c.node()).Str("reason", reason).Msg("sim: client dropped")
	}
	timer := precise.Choose(s.precise) // the medium's next event
	defer timer.Close()
	for {
		if u != nil {
			if next, ok := u.nextExpiry(); ok {
				expiry.Reset(time.Until(next))
			} else {
				expiry.Stop()
			}
		}
		if next, ok := s.m.Next(); ok {
			timer.Reset(time.Until(next))
		} else {
			timer.Stop()
		}
		var now time.Time
		select {
		case <-ctx.Done():
			now = time.Now()
			s.m.Advance(now, func(NodeID, phy.Event) {})
			for _, c := range conns {
				if c != nil {
					conns[c.node()] = nil
					s.m.Detach(now, c.node())
					c.close()
				}
			}
			s.publish()
			return
		case <-expiry.C:
			now = time.Now()
			s.m.Advance(now, deliver)
			u.tick(now, s.m, &conns)
		case <-timer.C:
			now = time.Now()
			s.m.Advance(now, deliver)
		case r := <-s.reqs:
			now = time.Now()
			s.m.Advance(now, deliver)
			switch r.op {
			case reqAttach:
				err := s.m.Attach(r.c.id)
				if err == nil {
					conns[r.c.id] = r.c
					r.c.enqueue(&message{typ: msgWelcome, version: r.c.version, bitRate: uint32(s.cfg.BitRate), maxFrame: MaxFrame})
				}
				r.reply <- err
			case reqTransmit:
				var err error
				if conns[r.c.id] == r.c {
					if len(r.burst) > 0 {
						_, err = s.m.TransmitBurst(now, r.c.id, append(r.burst, r.data))
					} else {
						_, err = s.m.Transmit(now, r.c.id, r.data)
					}
				} else {
					err = ErrNotAttached
				}
				r.reply <- err
			case reqTopology:
				s.m.SetTopology(r.topo)
				r.reply <- nil
			case reqDatagram:
				u.handle(now, s.m, &conns, r.from, r.dg)
				r.reply <- nil
			case reqDetach:
				if conns[r.c.id] == r.c {
					conns[r.c.id] = nil
					s.m.Detach(now, r.c.id)
					s.log.Info().Uint8("node", r.c.id).Msg("sim: client left")
				}
			}
		}
		for _, c := range drops {
			drop(now, c, "slow reader: outgoing queue full")
		}
		clear(drops)
		drops = drops[:0]
		s.publish()
	}
}

func (s *Server) publish() {
	st := s.m.Stats()
	s.statsMu.Lock()
	s.stats = st
	s.statsMu.Unlock()
}

// ask hands r to the owner and waits for its reply. It fails when the server
// is stopping.
func (s *Server) ask(ctx context.Context, r request) error {
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.reply == nil {
		return nil
	}
	select {
	case err := <-r.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handle is a connection's reader goroutine.
func (s *Server) handle(ctx context.Context, wg *sync.WaitGroup, nc net.Conn) {
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	defer nc.Close()
	log := s.log.With().Str("remote", nc.RemoteAddr().String()).Logger()

	mr := newMsgReader(nc)
	nc.SetReadDeadline(time.Now().Add(helloTimeout))
	hello, err := mr.next()
	if err != nil {
		log.Warn().Err(err).Msg("sim: client dropped before hello")
		return
	}
	reject := func(code uint8, err error) {
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(appendMessage(nil, errorMessage(code, err.Error())))
		log.Warn().Err(err).Uint8("node", hello.node).Msg("sim: client rejected")
	}
	switch {
	case hello.typ != msgHello:
		reject(codeProtocol, fmt.Errorf("%w: expected hello, got type %d", errBadMessage, hello.typ))
		return
	case hello.version < minProtoVersion || hello.version > protoVersion:
		reject(codeVersion, fmt.Errorf("sim: protocol version %d not supported (want %d to %d)", hello.version, minProtoVersion, protoVersion))
		return
	}
	c := &serverConn{nc: nc, id: hello.node, version: hello.version, notify: make(chan struct{}, 1), done: make(chan struct{})}
	if err := s.ask(ctx, request{op: reqAttach, c: c, reply: make(chan error, 1)}); err != nil {
		code := uint8(codeProtocol)
		switch {
		case errors.Is(err, ErrNodeInUse):
			code = codeNodeInUse
		case errors.Is(err, ErrInvalidNode):
			code = codeBadNode
		case ctx.Err() != nil:
			return
		}
		reject(code, err)
		return
	}
	nc.SetReadDeadline(time.Time{})
	log = log.With().Uint8("node", c.id).Logger()
	log.Info().Msg("sim: client attached")
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.write()
	}()

	reply := make(chan error, 1)
	// The frames of a burst so far (version 3): copies back to back in
	// held, each ending at its ends entry; frames slices them.
	var held []byte
	var ends []int
	var frames [][]byte
	for {
		msg, err := mr.next()
		if err != nil {
			select {
			case <-c.done: // dropped by the owner; it logged why
			default:
				if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
					log.Warn().Err(err).Msg("sim: client connection ended")
				}
			}
			break
		}
		if msg.typ == msgPing && c.version >= 2 {
			c.enqueue(&message{typ: msgPong})
			continue
		}
		if msg.typ == msgFrame && c.version >= 3 {
			if len(ends)+1 >= medium.MaxBurstFrames {
				log.Warn().Int("frames", len(ends)+1).Msg("sim: client sent too long a burst; dropping it")
				c.fail(errorMessage(codeProtocol, fmt.Sprintf("a burst of more than %d frames", medium.MaxBurstFrames)))
				break
			}
			held = append(held, msg.data...)
			ends = append(ends, len(held))
			continue
		}
		if msg.typ != msgTransmit {
			log.Warn().Uint8("type", uint8(msg.typ)).Msg("sim: client sent an unexpected message; dropping it")
			c.fail(errorMessage(codeProtocol, "unexpected message type"))
			break
		}
		frames = frames[:0]
		for i, end := range ends {
			start := 0
			if i > 0 {
				start = ends[i-1]
			}
			frames = append(frames, held[start:end])
		}
		held, ends = held[:0], ends[:0]
		if err := s.ask(ctx, request{op: reqTransmit, c: c, data: msg.data, burst: frames, reply: reply}); err != nil {
			if ctx.Err() != nil {
				break
			}
			log.Warn().Err(err).Msg("sim: client transmit refused; dropping it")
			c.fail(errorMessage(codeProtocol, err.Error()))
			break
		}
	}
	s.ask(ctx, request{op: reqDetach, c: c})
	c.mu.Lock()
	finishing := c.finishing
	c.mu.Unlock()
	if finishing {
		// Let the writer send the error message before the connection
		// closes; the write deadline set by fail bounds the wait.
		select {
		case <-c.done:
		case <-ctx.Done():
		}
	}
	c.close()
}

func errorMessage(code uint8, text string) *message {
	if len(text) > 200 {
		text = text[:200]
	}
	return &message{typ: msgError, code: code, data: []byte(text)}
}

func (c *serverConn) node() NodeID { return c.id }

// serverConn is one attached client as the owner and the writer see it.
type serverConn struct {
	nc      net.Conn
	id      NodeID
	version uint8         // the protocol version of the client's hello
	notify  chan struct{} // capacity 1: the writer has work
	done    chan struct{} // closed by close

	mu        sync.Mutex
	pending   []byte // encoded messages for the writer
	spare     []byte // the writer's other buffer
	finishing bool   // close once pending is written
	closeOnce sync.Once
}

// enqueueEvent encodes ev for the client. It returns false when the queue is
// over its limit (the client is not reading).
func (c *serverConn) enqueueEvent(ev phy.Event) bool {
	c.mu.Lock()
	switch ev.Kind {
	case phy.Received:
		c.pending = appendData(c.pending, msgReceived, ev.Data)
	case phy.CarrierOn:
		c.pending = appendEmpty(c.pending, msgCarrierOn)
	case phy.CarrierOff:
		c.pending = appendEmpty(c.pending, msgCarrierOff)
	case phy.TxDone:
		c.pending = appendEmpty(c.pending, msgTxDone)
	}
	ok := len(c.pending) <= queueLimit
	c.mu.Unlock()
	c.wake()
	return ok
}

func (c *serverConn) enqueue(m *message) {
	c.mu.Lock()
	c.pending = appendMessage(c.pending, m)
	c.mu.Unlock()
	c.wake()
}

// fail queues a last message and has the writer close the connection after
// writing it.
func (c *serverConn) fail(m *message) {
	c.mu.Lock()
	c.pending = appendMessage(c.pending, m)
	c.finishing = true
	c.mu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.wake()
}

func (c *serverConn) wake() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *serverConn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}

// write is the writer goroutine; it exits when the connection is closed or a
// write fails.
func (c *serverConn) write() {
	for {
		select {
		case <-c.notify:
		case <-c.done:
			return
		}
		c.mu.Lock()
		buf := c.pending
		c.pending = c.spare[:0]
		finishing := c.finishing
		c.mu.Unlock()
		if len(buf) > 0 {
			if _, err := c.nc.Write(buf); err != nil {
				c.close()
				return
			}
		}
		if finishing {
			c.close()
			return
		}
		c.mu.Lock()
		c.spare = buf[:0]
		c.mu.Unlock()
	}
}

// ListenUnix listens on a Unix stream socket at path for Serve. A socket file
// left behind by a server that died is removed first; a live server at path
// gives an error.
func ListenUnix(path string) (net.Listener, error) {
	ln, err := net.Listen("unix", path)
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		return ln, err
	}
	if c, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
		c.Close()
		return nil, fmt.Errorf("sim: %s: a medium server is already listening: %w", path, err)
	}
	if rerr := os.Remove(path); rerr != nil {
		return nil, fmt.Errorf("sim: remove stale socket: %w", rerr)
	}
	return net.Listen("unix", path)
}
