package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/phy"
)

// The UDP transport (docs/simulator.md, "Across machines (UDP)"): the stream
// protocol's messages, one per datagram, with the length field equal to the
// datagram's size minus 2. Over UDP the server keeps a session per client
// address; both sides send keep-alives, and the server's periodic state
// message repairs a lost carrier or tx-done message. Transmit and tx done
// carry a sequence number so that a late or lost one is told apart.

// Message types used over UDP only.
const (
	msgUTransmit msgType = 9  // client → server: seq u16, burst
	msgUTxDone   msgType = 10 // server → client: seq u16 of the transmit done
	msgPing      msgType = 11 // client → server: keep-alive, empty
	msgState     msgType = 12 // server → client: carrier u8 (0/1), seq u16 of the last transmit done
	msgBye       msgType = 13 // client → server: detach me now, empty
)

// codeGone: the server ended the session (stopping, or the client fell
// silent); the client reconnects.
const codeGone = 6

// maxDatagram is the largest datagram of the UDP protocol: a transmit of
// MaxFrame bytes.
const maxDatagram = 2 + 1 + 2 + MaxFrame

// Timing of the UDP transport.
const (
	// udpPingInterval: how often a client sends a ping.
	udpPingInterval = 250 * time.Millisecond
	// udpStateInterval: how often the server sends each session its state.
	udpStateInterval = 250 * time.Millisecond
	// udpTimeout: a peer heard from for this long is gone (8 keep-alives).
	udpTimeout = 2 * time.Second
	// udpHelloWait: how long a client waits for the welcome to one hello.
	udpHelloWait = 500 * time.Millisecond
	// udpTxGrace: how long after the airtime a client waits for a tx done
	// before it takes the burst for lost and reports TxDone itself.
	udpTxGrace = time.Second
	// udpWriteTimeout bounds one datagram write (the socket buffer is full).
	udpWriteTimeout = 100 * time.Millisecond
)

// datagram is one decoded UDP message. Data aliases the decoder's input.
type datagram struct {
	message
	seq     uint16 // utransmit, utxdone, state
	carrier bool   // state
}

// parseDatagram decodes one whole datagram. Anything malformed, including a
// length field that does not match the datagram's size, gives an error
// wrapping errBadMessage. It never panics.
func parseDatagram(b []byte) (datagram, error) {
	if len(b) < 3 {
		return datagram{}, fmt.Errorf("%w: %d-byte datagram", errBadMessage, len(b))
	}
	n := int(b[0])<<8 | int(b[1])
	if n != len(b)-2 {
		return datagram{}, fmt.Errorf("%w: length %d in a %d-byte datagram", errBadMessage, n, len(b))
	}
	t, body := msgType(b[2]), b[3:]
	var d datagram
	switch t {
	case msgHello, msgWelcome, msgReceived, msgCarrierOn, msgCarrierOff, msgError:
		if len(body) > maxBody {
			return datagram{}, fmt.Errorf("%w: length %d", errBadMessage, n)
		}
		m, err := parseBody(t, body)
		if err != nil {
			return datagram{}, err
		}
		d.message = m
		return d, nil
	case msgUTransmit:
		if len(body) < 3 || len(body) > 2+MaxFrame {
			return datagram{}, fmt.Errorf("%w: transmit of %d bytes", errBadMessage, len(body)-2)
		}
		d.seq, d.data = uint16(body[0])<<8|uint16(body[1]), body[2:]
	case msgUTxDone:
		if len(body) != 2 {
			return datagram{}, fmt.Errorf("%w: tx done", errBadMessage)
		}
		d.seq = uint16(body[0])<<8 | uint16(body[1])
	case msgState:
		if len(body) != 3 || body[0] > 1 {
			return datagram{}, fmt.Errorf("%w: state", errBadMessage)
		}
		d.carrier, d.seq = body[0] == 1, uint16(body[1])<<8|uint16(body[2])
	case msgPing, msgBye:
		if len(body) != 0 {
			return datagram{}, fmt.Errorf("%w: type %d with a body", errBadMessage, t)
		}
	default:
		// Transmit (3) and tx done (7) are stream-only: UDP has them
		// with a sequence number.
		return datagram{}, fmt.Errorf("%w: type %d over UDP", errBadMessage, t)
	}
	d.typ = t
	return d, nil
}

// appendDatagram appends the encoding of d to dst.
func appendDatagram(dst []byte, d *datagram) []byte {
	switch d.typ {
	case msgUTransmit:
		n := 1 + 2 + len(d.data)
		dst = append(dst, byte(n>>8), byte(n), byte(d.typ), byte(d.seq>>8), byte(d.seq))
		return append(dst, d.data...)
	case msgUTxDone:
		return append(dst, 0, 3, byte(d.typ), byte(d.seq>>8), byte(d.seq))
	case msgState:
		var c byte
		if d.carrier {
			c = 1
		}
		return append(dst, 0, 4, byte(d.typ), c, byte(d.seq>>8), byte(d.seq))
	case msgPing, msgBye, msgCarrierOn, msgCarrierOff:
		return appendEmpty(dst, d.typ)
	}
	return appendMessage(dst, &d.message)
}

// UDPStats counts what a Server's UDP transport saw, over all its Serve
// calls.
type UDPStats struct {
	Datagrams     uint64 // well-formed datagrams received
	Junk          uint64 // datagrams that did not decode (dropped)
	UnknownSource uint64 // well-formed datagrams, hello aside, from an address without a session (dropped)
	Unexpected    uint64 // well-formed but out of place: a server message from a client, a duplicate or refused transmit
	Sessions      uint64 // sessions opened (a client's hello accepted)
	Expired       uint64 // sessions ended because the client fell silent for udpTimeout
	SendErrors    uint64 // datagrams the socket refused to send
}

type udpCounters struct {
	datagrams, junk, unknown, unexpected, sessions, expired, sendErrors atomic.Uint64
}

// UDPStats returns the UDP transport's counters; safe from any goroutine.
func (s *Server) UDPStats() UDPStats {
	c := &s.udpCount
	return UDPStats{
		Datagrams: c.datagrams.Load(), Junk: c.junk.Load(), UnknownSource: c.unknown.Load(),
		Unexpected: c.unexpected.Load(), Sessions: c.sessions.Load(), Expired: c.expired.Load(),
		SendErrors: c.sendErrors.Load(),
	}
}

// ServeUDP is Serve for clients on a UDP socket (DialUDP): it serves until
// ctx is done or pc fails, closes pc and returns.
func (s *Server) ServeUDP(ctx context.Context, pc *net.UDPConn) error {
	return s.ServeAll(ctx, nil, pc)
}

// ListenUDP opens a UDP socket on addr ("HOST:PORT") for ServeUDP.
func ListenUDP(addr string) (*net.UDPConn, error) {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("sim: udp address %q: %w", addr, err)
	}
	pc, err := net.ListenUDP("udp", a)
	if err != nil {
		return nil, fmt.Errorf("sim: listen udp: %w", err)
	}
	return pc, nil
}

// udpServer is the UDP side of a Server. Its sessions are owned by the
// owner goroutine, which also writes every datagram; the reader goroutine
// (readUDP) touches only pc's read side and the counters.
type udpServer struct {
	pc       *net.UDPConn
	cnt      *udpCounters
	log      zerolog.Logger
	bitRate  uint32
	sessions map[netip.AddrPort]*udpSession
	wbuf     []byte
}

func newUDPServer(pc *net.UDPConn, bitRate int, cnt *udpCounters, log zerolog.Logger) *udpServer {
	return &udpServer{pc: pc, bitRate: uint32(bitRate), cnt: cnt, log: log, sessions: make(map[netip.AddrPort]*udpSession), wbuf: make([]byte, 0, maxDatagram)}
}

// udpSession is one attached UDP client (an attachment).
type udpSession struct {
	u         *udpServer
	addr      netip.AddrPort
	id        NodeID
	heard     time.Time // last datagram from the client
	carrier   bool      // last carrier event sent
	rxSeq     uint16    // last transmit seen
	haveRx    bool
	txSeq     uint16 // the transmit on air, if inTx
	inTx      bool
	doneSeq   uint16 // last transmit done (or refused)
	closeOnce bool
}

func (ss *udpSession) node() NodeID { return ss.id }

// enqueueEvent sends ev at once; a UDP client is never a slow reader (what
// the network drops, the state refresh repairs or the MAC retries).
func (ss *udpSession) enqueueEvent(ev phy.Event) bool {
	u := ss.u
	switch ev.Kind {
	case phy.Received:
		u.wbuf = appendData(u.wbuf[:0], msgReceived, ev.Data)
	case phy.CarrierOn, phy.CarrierOff:
		ss.carrier = ev.Kind == phy.CarrierOn
		t := msgCarrierOff
		if ss.carrier {
			t = msgCarrierOn
		}
		u.wbuf = appendEmpty(u.wbuf[:0], t)
	case phy.TxDone:
		ss.inTx, ss.doneSeq = false, ss.txSeq
		u.wbuf = appendDatagram(u.wbuf[:0], &datagram{message: message{typ: msgUTxDone}, seq: ss.txSeq})
	default:
		return true
	}
	u.send(ss.addr)
	return true
}

// close is called by the owner after it detached the node: the client is
// told the session is over, so that it reconnects at once.
func (ss *udpSession) close() {
	if ss.closeOnce {
		return
	}
	ss.closeOnce = true
	ss.u.sendError(ss.addr, codeGone, "session ended by the medium server")
	delete(ss.u.sessions, ss.addr)
}

// send writes u.wbuf to addr; a failure is counted, never waited on.
func (u *udpServer) send(addr netip.AddrPort) {
	u.pc.SetWriteDeadline(time.Now().Add(udpWriteTimeout))
	if _, err := u.pc.WriteToUDPAddrPort(u.wbuf, addr); err != nil {
		u.cnt.sendErrors.Add(1)
	}
}

func (u *udpServer) sendError(addr netip.AddrPort, code uint8, text string) {
	u.wbuf = appendMessage(u.wbuf[:0], errorMessage(code, text))
	u.send(addr)
}

// detach ends a session without telling the client.
func (u *udpServer) detach(now time.Time, m *Medium, conns *[256]attachment, ss *udpSession) {
	if conns[ss.id] == ss {
		conns[ss.id] = nil
		m.Detach(now, ss.id)
	}
	ss.closeOnce = true
	delete(u.sessions, ss.addr)
}

// handle is the owner's part for one datagram from from.
func (u *udpServer) handle(now time.Time, m *Medium, conns *[256]attachment, from netip.AddrPort, d *datagram) {
	ss := u.sessions[from]
	if d.typ == msgHello {
		u.hello(now, m, conns, from, d, ss)
		return
	}
	if ss == nil {
		u.cnt.unknown.Add(1)
		return
	}
	ss.heard = now
	switch d.typ {
	case msgPing:
	case msgBye:
		u.detach(now, m, conns, ss)
		u.log.Info().Uint8("node", ss.id).Str("remote", from.String()).Msg("sim: udp client left")
	case msgUTransmit:
		if ss.haveRx && d.seq == ss.rxSeq {
			u.cnt.unexpected.Add(1) // a duplicated datagram
			return
		}
		ss.rxSeq, ss.haveRx = d.seq, true
		if _, err := m.Transmit(now, ss.id, d.data); err != nil {
			// The client gave up waiting for the previous tx done, or
			// sent too much: the burst is lost, and said so at once.
			u.cnt.unexpected.Add(1)
			u.log.Debug().Err(err).Uint8("node", ss.id).Msg("sim: udp transmit refused")
			ss.doneSeq = d.seq
			u.wbuf = appendDatagram(u.wbuf[:0], &datagram{message: message{typ: msgUTxDone}, seq: d.seq})
			u.send(from)
			return
		}
		ss.txSeq, ss.inTx = d.seq, true
	default:
		u.cnt.unexpected.Add(1)
	}
}

func (u *udpServer) hello(now time.Time, m *Medium, conns *[256]attachment, from netip.AddrPort, d *datagram, ss *udpSession) {
	if d.version != protoVersion {
		u.sendError(from, codeVersion, fmt.Sprintf("sim: protocol version %d not supported (want %d)", d.version, protoVersion))
		return
	}
	welcome := func() {
		u.wbuf = appendMessage(u.wbuf[:0], &message{typ: msgWelcome, version: protoVersion, bitRate: u.bitRate, maxFrame: MaxFrame})
		u.send(from)
	}
	if ss != nil {
		if ss.id == d.node {
			// The welcome was lost, or the client lost us for a while.
			ss.heard = now
			welcome()
			return
		}
		u.detach(now, m, conns, ss)
	}
	if err := m.Attach(d.node); err != nil {
		code := uint8(codeProtocol)
		switch {
		case errors.Is(err, ErrNodeInUse):
			code = codeNodeInUse
		case errors.Is(err, ErrInvalidNode):
			code = codeBadNode
		}
		u.sendError(from, code, err.Error())
		u.log.Warn().Err(err).Uint8("node", d.node).Str("remote", from.String()).Msg("sim: udp client rejected")
		return
	}
	ss = &udpSession{u: u, addr: from, id: d.node, heard: now}
	u.sessions[from] = ss
	conns[d.node] = ss
	u.cnt.sessions.Add(1)
	welcome()
	u.log.Info().Uint8("node", d.node).Str("remote", from.String()).Msg("sim: udp client attached")
}

// tick ends the sessions of silent clients and sends the others their state.
func (u *udpServer) tick(now time.Time, m *Medium, conns *[256]attachment) {
	for _, ss := range u.sessions {
		if now.Sub(ss.heard) >= udpTimeout {
			u.sendError(ss.addr, codeGone, "silent for too long")
			u.detach(now, m, conns, ss)
			u.cnt.expired.Add(1)
			u.log.Warn().Uint8("node", ss.id).Str("remote", ss.addr.String()).Msg("sim: udp client silent; detached")
			continue
		}
		u.wbuf = appendDatagram(u.wbuf[:0], &datagram{message: message{typ: msgState}, carrier: ss.carrier, seq: ss.doneSeq})
		u.send(ss.addr)
	}
}

// readUDP is the UDP reader goroutine: it decodes datagrams and hands the
// good ones to the owner. It returns nil once ctx is done, or the socket's
// error if it fails otherwise.
func (s *Server) readUDP(ctx context.Context, u *udpServer) error {
	buf := make([]byte, maxDatagram+1) // one more: a longer datagram shows as junk
	reply := make(chan error, 1)
	var d datagram
	for {
		n, from, err := u.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("sim: udp read: %w", err)
			}
			s.log.Warn().Err(err).Msg("sim: udp read")
			continue
		}
		d, err = parseDatagram(buf[:n])
		if err != nil {
			u.cnt.junk.Add(1)
			s.log.Debug().Err(err).Str("remote", from.String()).Msg("sim: junk datagram dropped")
			continue
		}
		u.cnt.datagrams.Add(1)
		if s.ask(ctx, request{op: reqDatagram, from: from, dg: &d, reply: reply}) != nil {
			return nil
		}
	}
}

// keepalive tracks one peer's liveness; the owner passes the time in.
type keepalive struct {
	interval, timeout time.Duration
	heardAt, sentAt   time.Time
}

func (k *keepalive) reset(now time.Time)        { k.heardAt, k.sentAt = now, time.Time{} }
func (k *keepalive) heard(now time.Time)        { k.heardAt = now }
func (k *keepalive) sent(now time.Time)         { k.sentAt = now }
func (k *keepalive) dead(now time.Time) bool    { return now.Sub(k.heardAt) >= k.timeout }
func (k *keepalive) pingDue(now time.Time) bool { return now.Sub(k.sentAt) >= k.interval }

// next is when something is due: a ping, or the peer's timeout.
func (k *keepalive) next() time.Time {
	p, d := k.sentAt.Add(k.interval), k.heardAt.Add(k.timeout)
	if p.Before(d) {
		return p
	}
	return d
}

// UDPClientStats counts what a UDPClient repaired or dropped.
type UDPClientStats struct {
	Junk           uint64 // datagrams that did not decode
	CarrierRepairs uint64 // carrier events made up from a state message (one was lost)
	TxDoneRepairs  uint64 // tx dones made up from a state message (the tx done was lost)
	TxLost         uint64 // transmissions with no word from the server within airtime + 1 s (TxDone reported anyway)
	Downs          uint64 // sessions lost
}

// UDPClient is a PHY on a medium server over UDP (it satisfies
// bridge.PHY), for a medium on another host.
//
// One goroutine, started by DialUDP, owns the session: it reads datagrams,
// turns them into events, sends keep-alives, notices a silent or refusing
// server (then reports CarrierOff if needed and Down) and reconnects (Up).
// It exits on Close, after which Events is closed. Transmit, Info and Stats
// are safe from any goroutine. Like Client, the goroutine blocks on a full
// Events rather than drop an event; a consumer that stays behind for
// udpTimeout has its session ended by the server (Down, then Up).
//
// Lost datagrams: a lost received burst is lost (like a collision); a lost
// carrier or tx-done message is repaired by the server's next state message
// (every 250 ms); a lost transmit is reported as sent (TxDone) airtime + 1 s
// after Transmit.
type UDPClient struct {
	addr string
	node NodeID
	log  zerolog.Logger
	conn *net.UDPConn // connected to the server, for the client's whole life

	ctx    context.Context
	cancel context.CancelFunc
	events chan phy.Event
	done   chan struct{}

	backoffMin, backoffMax time.Duration

	mu         sync.Mutex
	up         bool
	info       phy.Info
	txBusy     bool
	txSeq      uint16
	txDeadline time.Time
	wbuf       []byte

	// Owned by the goroutine.
	carrier bool
	ka      keepalive
	rbuf    []byte
	ping    [3]byte

	junk, carrierRepairs, txDoneRepairs, txLost, downs atomic.Uint64
}

// DialUDP attaches node to the medium server at addr ("HOST:PORT", e.g.
// "198.51.100.1:7300") over UDP. The socket is made in the caller's network
// namespace. Like Dial, it retries with capped backoff until attached or ctx
// is done; a rejection is returned at once, except "node id in use", which
// is retried for udpTimeout (the server may still hold this node's previous
// session). The first event is Up.
func DialUDP(ctx context.Context, addr string, node NodeID, log zerolog.Logger) (*UDPClient, error) {
	return dialUDP(ctx, addr, node, log, 100*time.Millisecond, 2*time.Second)
}

func dialUDP(ctx context.Context, addr string, node NodeID, log zerolog.Logger, bmin, bmax time.Duration) (*UDPClient, error) {
	if node == 0 || node == 0xFF {
		return nil, fmt.Errorf("%w: %d", ErrInvalidNode, node)
	}
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("sim: udp medium address %q: %w", addr, err)
	}
	conn, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		return nil, fmt.Errorf("sim: udp medium %s: %w", addr, err)
	}
	c := &UDPClient{
		addr: addr, node: node, conn: conn,
		log:        log.With().Str("medium", "udp:"+addr).Uint8("node", node).Logger(),
		events:     make(chan phy.Event, EventQueue),
		done:       make(chan struct{}),
		backoffMin: bmin, backoffMax: bmax,
		ka:   keepalive{interval: udpPingInterval, timeout: udpTimeout},
		rbuf: make([]byte, maxDatagram+1),
		wbuf: make([]byte, 0, maxDatagram),
	}
	copy(c.ping[:], appendEmpty(nil, msgPing))
	c.ctx, c.cancel = context.WithCancel(context.Background())
	info, err := c.connectLoop(ctx, true)
	if err != nil {
		c.cancel()
		conn.Close()
		return nil, err
	}
	c.up, c.info = true, info
	c.events <- phy.Event{Kind: phy.Up}
	go c.run()
	return c, nil
}

// Info returns the modem figures from the server's last welcome.
func (c *UDPClient) Info() phy.Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// Events returns the channel of the client's reports; it is closed after
// Close.
func (c *UDPClient) Events() <-chan phy.Event { return c.events }

// Stats returns the client's repair counters.
func (c *UDPClient) Stats() UDPClientStats {
	return UDPClientStats{Junk: c.junk.Load(), CarrierRepairs: c.carrierRepairs.Load(),
		TxDoneRepairs: c.txDoneRepairs.Load(), TxLost: c.txLost.Load(), Downs: c.downs.Load()}
}

// Transmit sends b to the medium in one datagram (it copies b); TxDone
// follows after the airtime. Errors as Client.Transmit.
func (c *UDPClient) Transmit(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.up:
		return fmt.Errorf("sim: transmit: %w", ErrDown)
	case c.txBusy:
		return ErrBusy
	case len(b) == 0 || len(b) > c.info.MaxFrame:
		return fmt.Errorf("%w: %d bytes", ErrFrameSize, len(b))
	}
	c.txSeq++
	if c.txSeq == 0 { // 0 is a fresh session's "nothing done yet"
		c.txSeq = 1
	}
	c.wbuf = appendDatagram(c.wbuf[:0], &datagram{message: message{typ: msgUTransmit, data: b}, seq: c.txSeq})
	if _, err := c.conn.Write(c.wbuf); err != nil {
		return fmt.Errorf("sim: transmit: %w (%w)", ErrDown, err)
	}
	c.txBusy = true
	c.txDeadline = time.Now().Add(phy.Airtime(len(b), c.info.BitRate) + udpTxGrace)
	return nil
}

// Close tells the server goodbye, stops the goroutine and closes Events. It
// is safe to call more than once.
func (c *UDPClient) Close() error {
	if c.ctx.Err() == nil {
		c.mu.Lock()
		if c.up {
			c.conn.Write(appendEmpty(nil, msgBye))
		}
		c.mu.Unlock()
	}
	c.cancel()
	c.conn.SetReadDeadline(time.Unix(1, 0))
	<-c.done
	c.conn.Close()
	return nil
}

// run is the client's goroutine.
func (c *UDPClient) run() {
	defer close(c.done)
	defer close(c.events)
	for {
		err := c.serve()
		c.mu.Lock()
		c.up, c.txBusy = false, false
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		c.downs.Add(1)
		c.log.Warn().Err(err).Msg("sim: udp medium lost")
		if c.carrier {
			c.carrier = false
			if !c.emit(phy.Event{Kind: phy.CarrierOff}) {
				return
			}
		}
		if !c.emit(phy.Event{Kind: phy.Down}) {
			return
		}
		info, err := c.connectLoop(c.ctx, false)
		if err != nil {
			return // closed
		}
		c.mu.Lock()
		c.up, c.info = true, info
		c.mu.Unlock()
		c.log.Info().Msg("sim: udp medium restored")
		if !c.emit(phy.Event{Kind: phy.Up}) {
			return
		}
	}
}

// errSilent: the server sent nothing for udpTimeout.
var errSilent = errors.New("sim: udp medium silent")

// serve runs one session until the server is lost or the client closed.
func (c *UDPClient) serve() error {
	c.ka.reset(time.Now())
	for {
		wake := c.ka.next()
		c.mu.Lock()
		if c.txBusy && c.txDeadline.Before(wake) {
			wake = c.txDeadline
		}
		c.mu.Unlock()
		c.conn.SetReadDeadline(wake)
		if c.ctx.Err() != nil { // Close may have set its deadline just before
			return c.ctx.Err()
		}
		n, err := c.conn.Read(c.rbuf)
		if c.ctx.Err() != nil {
			return c.ctx.Err()
		}
		now := time.Now()
		var ne net.Error
		switch {
		case err == nil:
			if err := c.handle(now, c.rbuf[:n]); err != nil {
				return err
			}
		case errors.Is(err, syscall.ECONNREFUSED):
			// ICMP port unreachable: the host is up, the medium is not.
			return fmt.Errorf("sim: udp medium refused: %w", err)
		case errors.As(err, &ne) && ne.Timeout():
		default:
			return err
		}
		if c.ka.dead(now) {
			return errSilent
		}
		if c.ka.pingDue(now) {
			c.conn.Write(c.ping[:])
			c.ka.sent(now)
		}
		c.mu.Lock()
		lost := c.txBusy && !now.Before(c.txDeadline)
		if lost {
			c.txBusy = false
		}
		c.mu.Unlock()
		if lost {
			c.txLost.Add(1)
			c.log.Warn().Msg("sim: no tx done from the udp medium; taking the burst for lost")
			if !c.emit(phy.Event{Kind: phy.TxDone}) {
				return c.ctx.Err()
			}
		}
	}
}

// handle turns one datagram into events.
func (c *UDPClient) handle(now time.Time, b []byte) error {
	d, err := parseDatagram(b)
	if err != nil {
		c.junk.Add(1)
		return nil
	}
	c.ka.heard(now)
	switch d.typ {
	case msgReceived:
		return c.emitOK(phy.Event{Kind: phy.Received, Data: append([]byte(nil), d.data...)})
	case msgCarrierOn, msgCarrierOff:
		return c.setCarrier(d.typ == msgCarrierOn, false)
	case msgUTxDone:
		return c.txDone(d.seq, false)
	case msgState:
		if err := c.setCarrier(d.carrier, true); err != nil {
			return err
		}
		return c.txDone(d.seq, true)
	case msgError:
		return &RejectError{Code: d.code, Text: string(d.data)}
	}
	return nil // a late welcome, or a client message echoed: ignored
}

func (c *UDPClient) setCarrier(on, repair bool) error {
	if on == c.carrier {
		return nil
	}
	c.carrier = on
	if repair {
		c.carrierRepairs.Add(1)
	}
	k := phy.CarrierOff
	if on {
		k = phy.CarrierOn
	}
	return c.emitOK(phy.Event{Kind: k})
}

// txDone reports TxDone if seq is the transmission outstanding.
func (c *UDPClient) txDone(seq uint16, repair bool) error {
	c.mu.Lock()
	match := c.txBusy && c.txSeq == seq
	if match {
		c.txBusy = false
	}
	c.mu.Unlock()
	if !match {
		return nil
	}
	if repair {
		c.txDoneRepairs.Add(1)
	}
	return c.emitOK(phy.Event{Kind: phy.TxDone})
}

func (c *UDPClient) emit(ev phy.Event) bool {
	select {
	case c.events <- ev:
		return true
	case <-c.ctx.Done():
		return false
	}
}

func (c *UDPClient) emitOK(ev phy.Event) error {
	if !c.emit(ev) {
		return c.ctx.Err()
	}
	return nil
}

// connectLoop sends hellos until welcomed or ctx is done. With permanent
// set, a rejection ends it, except node-in-use before udpTimeout has passed.
func (c *UDPClient) connectLoop(ctx context.Context, permanent bool) (phy.Info, error) {
	stop := context.AfterFunc(ctx, func() { c.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	start := time.Now()
	for attempt := 0; ; attempt++ {
		info, err := c.connect(ctx)
		if err == nil {
			return info, nil
		}
		if ctx.Err() != nil {
			return phy.Info{}, fmt.Errorf("sim: dial udp %s: %w (last error: %w)", c.addr, ctx.Err(), err)
		}
		if permanent && errors.Is(err, ErrRejected) &&
			(!errors.Is(err, ErrNodeInUse) || time.Since(start) > udpTimeout+udpStateInterval) {
			return phy.Info{}, err
		}
		wait := backoff(attempt, c.backoffMin, c.backoffMax)
		c.log.Warn().Err(err).Int("attempt", attempt+1).Dur("retry_in", wait).Msg("sim: cannot reach the udp medium server")
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return phy.Info{}, fmt.Errorf("sim: dial udp %s: %w (last error: %w)", c.addr, ctx.Err(), err)
		}
	}
}

// connect sends one hello and waits udpHelloWait for the welcome, ignoring
// leftovers of an earlier session.
func (c *UDPClient) connect(ctx context.Context) (phy.Info, error) {
	hello := appendMessage(nil, &message{typ: msgHello, version: protoVersion, node: c.node})
	if _, err := c.conn.Write(hello); err != nil {
		return phy.Info{}, fmt.Errorf("sim: hello: %w", err)
	}
	deadline := time.Now().Add(udpHelloWait)
	for {
		if ctx.Err() != nil {
			return phy.Info{}, ctx.Err()
		}
		c.conn.SetReadDeadline(deadline)
		if ctx.Err() != nil { // AfterFunc may have run before this deadline
			return phy.Info{}, ctx.Err()
		}
		n, err := c.conn.Read(c.rbuf)
		if err != nil {
			return phy.Info{}, fmt.Errorf("sim: welcome: %w", err)
		}
		d, err := parseDatagram(c.rbuf[:n])
		if err != nil {
			c.junk.Add(1)
			continue
		}
		switch {
		case d.typ == msgError && d.code != codeGone:
			return phy.Info{}, &RejectError{Code: d.code, Text: string(d.data)}
		case d.typ != msgWelcome:
			continue
		case d.version != protoVersion:
			return phy.Info{}, &RejectError{Code: codeVersion, Text: fmt.Sprintf("server speaks protocol version %d", d.version)}
		case d.bitRate == 0:
			return phy.Info{}, fmt.Errorf("%w: welcome with bit rate 0", errBadMessage)
		}
		maxFrame := int(d.maxFrame)
		if maxFrame == 0 || maxFrame > MaxFrame {
			maxFrame = MaxFrame
		}
		return phy.Info{BitRate: int(d.bitRate), MaxFrame: maxFrame}, nil
	}
}
