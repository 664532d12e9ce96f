package sim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/sim/medium"
)

// Timing of the UDP transport.
const (
	// udpPingInterval: how often a client pings; the server answers each
	// ping with the session's state. Idle, a client wakes twice per
	// interval (its ping, the answer).
	udpPingInterval = 2 * time.Second
	// udpTimeout: a peer not heard from for this long is gone (three
	// pings): the client takes the server for silent, the server parks
	// the client's session (its node leaves the medium).
	udpTimeout = 3 * udpPingInterval
	// udpExpirySlack: how late after its due time the server may notice
	// a silent session (it batches expiries that fall this close).
	udpExpirySlack = time.Second
	// udpHelloWait: how long a client waits for the answer to one hello.
	udpHelloWait = 500 * time.Millisecond
	// udpTxGrace: how long after the airtime a client waits for a tx done
	// before it takes the burst for lost and reports TxDone itself.
	udpTxGrace = time.Second
	// udpWriteTimeout bounds one datagram write (the socket buffer is full).
	udpWriteTimeout = 100 * time.Millisecond
)

// DefaultUDPSessionTimeout is how long the medium server keeps the session
// of a UDP client it has not heard from, parked, before it ends it
// (Server.SetUDPSessionTimeout): the client may come back within it
// without a new hello. Longer than the daemon's default stall limit
// (60 s) and than the limit it scales to on links down to about 600 bit/s.
const DefaultUDPSessionTimeout = 10 * time.Minute

// UDPStats counts what a Server's UDP transport saw, over all its Serve
// calls.
type UDPStats struct {
	Datagrams     uint64 // well-formed datagrams received
	Junk          uint64 // datagrams that did not decode (dropped)
	UnknownSource uint64 // well-formed datagrams, hello aside, from an address without a session (dropped)
	Unexpected    uint64 // well-formed but out of place: a server message from a client, a duplicate or refused transmit
	Sessions      uint64 // sessions opened (a client's hello accepted)
	Parked        uint64 // sessions parked: the client was silent for 6 s, its node left the medium
	Resumed       uint64 // parked sessions whose client was heard again: its node is back on the medium
	Expired       uint64 // parked sessions ended: silent for the session timeout, or their node id taken meanwhile
	SendErrors    uint64 // datagrams the socket refused to send
	Cookies       uint64 // cookies sent (hellos without a valid cookie)
	OldVersion    uint64 // hellos of another protocol version (answered at most once per source per 10 s)
	AuthFailures  uint64 // datagrams dropped: no trailer or a wrong tag (with a key), or a trailer without one
	Replays       uint64 // datagrams dropped: a counter already seen or too old
	Squats        uint64 // hellos refused because a live session holds the node id
	Suppressed    uint64 // complaint log lines suppressed by the rate limit
}

type udpCounters struct {
	datagrams, junk, unknown, unexpected, sessions, expired, sendErrors atomic.Uint64
	cookies, oldVersion, authFailures, replays, squats, parked, resumed atomic.Uint64
}

// UDPStats returns the UDP transport's counters; safe from any goroutine.
func (s *Server) UDPStats() UDPStats {
	c := &s.udpCount
	var suppressed uint64
	if l := s.complaints.Load(); l != nil {
		suppressed = l.total()
	}
	return UDPStats{
		Datagrams: c.datagrams.Load(), Junk: c.junk.Load(), UnknownSource: c.unknown.Load(),
		Unexpected: c.unexpected.Load(), Sessions: c.sessions.Load(), Parked: c.parked.Load(),
		Resumed: c.resumed.Load(), Expired: c.expired.Load(),
		SendErrors: c.sendErrors.Load(), Cookies: c.cookies.Load(), OldVersion: c.oldVersion.Load(),
		AuthFailures: c.authFailures.Load(), Replays: c.replays.Load(), Squats: c.squats.Load(),
		Suppressed: suppressed,
	}
}

// SetUDPKey makes the UDP transport authenticate its members with key (the
// clients must dial with the same key); call it before Serve. Without it,
// any address that passes the cookie exchange may attach.
func (s *Server) SetUDPKey(key auth.Key) {
	s.udpKey = &key
}

// SetUDPSessionTimeout sets how long the UDP transport keeps the session of
// a client it has not heard from (DefaultUDPSessionTimeout); call it before
// Serve. A client silent for 6 s is parked: its node leaves the medium (it
// hears nothing, sends nothing, and a new hello may take its node id), but
// the session stays, so that a client whose process was stopped (SIGSTOP,
// a starved CPU) comes back with its next datagram, without a new hello.
// After d the session ends. A d under 6 s counts as 6 s.
func (s *Server) SetUDPSessionTimeout(d time.Duration) {
	s.udpLinger = d
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

// udpSocket is what the UDP side of a Server uses of its socket
// (*net.UDPConn): the reader goroutine reads, the owner writes.
type udpSocket interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	SetWriteDeadline(t time.Time) error
}

// udpServer is the UDP side of a Server. Its sessions are owned by the
// owner goroutine, which also writes every datagram; the reader goroutine
// (readUDP) touches only pc's read side, the counters and the complaint
// limiter.
type udpServer struct {
	pc      udpSocket
	cnt     *udpCounters
	log     zerolog.Logger
	bitRate uint32
	// sessions by client address, live or parked; byNode holds the same
	// sessions by node id. A node id has at most one session (a hello for
	// the node id of a parked session ends it), so there are at most 254,
	// whatever hellos arrive.
	sessions map[netip.AddrPort]*udpSession
	byNode   [256]*udpSession
	linger   time.Duration // how long a parked session is kept
	wbuf     []byte
	jar      cookieJar
	psk      *auth.Key // nil: no member authentication
	hello    *tagger   // under the hello key, with psk
	// The hello replay check, per node id: helloSlot is the newest
	// cookie slot of a hello accepted, lastHello the highest counter of
	// the hellos accepted with a cookie of that slot. A hello is fresh if
	// its cookie is of a newer slot (whatever its counter: a client whose
	// clock stepped back dials again), or of that slot with a higher
	// counter. Every hello accepted before has an older cookie or a
	// counter up to lastHello, so none can be replayed; and a cookie is
	// valid for two slots at most, so a client is kept out a slot at most.
	lastHello  [256]uint64
	helloSlot  [256]int64
	complaints *complaintLimiter
}

func newUDPServer(pc udpSocket, bitRate int, psk *auth.Key, cnt *udpCounters, cl *complaintLimiter, log zerolog.Logger) *udpServer {
	u := &udpServer{pc: pc, bitRate: uint32(bitRate), cnt: cnt, log: log, psk: psk, complaints: cl,
		sessions: make(map[netip.AddrPort]*udpSession), wbuf: make([]byte, 0, maxDatagram),
		linger: DefaultUDPSessionTimeout}
	rand.Read(u.jar.secret[:]) // never fails (crypto/rand)
	if psk != nil {
		u.hello = newTagger(helloKey(psk))
	}
	return u
}

// setSessionTimeout sets how long a parked session is kept
// (SetUDPSessionTimeout); 0 leaves the default.
func (u *udpServer) setSessionTimeout(d time.Duration) {
	if d != 0 {
		u.linger = max(d, udpTimeout)
	}
}

// complain logs a complaint about src, at most one line per source per
// complaintEvery.
func (u *udpServer) complain(now time.Time, src netip.AddrPort, msg string, err error) {
	ok, n := u.complaints.allow(now, src.Addr())
	if !ok {
		return
	}
	ev := u.log.Warn().Str("remote", src.String())
	if err != nil {
		ev = ev.Err(err)
	}
	if n > 0 {
		ev = ev.Int("suppressed", n)
	}
	ev.Msg(msg)
}

// udpSession is one UDP client (an attachment while it is live).
//
// A session whose client has been silent for udpTimeout is parked: its
// node leaves the medium (it hears nothing, and a hello from another
// address may take its node id) but the session is kept, for u.linger,
// so that a client whose own process did not run (SIGSTOP, a starved CPU,
// swap) comes back with its next datagram, authenticated in the session
// as any other, without a new hello and without losing more than what
// the medium sent meanwhile. The server cannot tell a stopped client
// from a dead one; a dead one's session ends after u.linger.
type udpSession struct {
	u         *udpServer
	addr      netip.AddrPort
	id        NodeID
	heard     time.Time // last datagram from the client
	parked    bool      // silent: the node is off the medium (not in conns)
	carrier   bool      // last carrier event sent
	rxSeq     uint16    // last transmit seen
	haveRx    bool
	txSeq     uint16 // the transmit on air, if inTx
	inTx      bool
	txEnd     time.Time // when the transmit on air ends, if inTx
	doneSeq   uint16    // last transmit done (or refused)
	closeOnce bool
	cnonce    [nonceLen]byte // of the hello that made the session
	welcome   []byte         // the welcome sent, resent for a repeated hello
	tag       *tagger        // session key; nil without a key
	sendCtr   uint64
	recv      replayWindow
}

func (ss *udpSession) node() NodeID { return ss.id }

// enqueueEvent sends ev at once; a UDP client is never a slow reader (what
// the network drops, the state answer to the next ping repairs, or the MAC
// retries).
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
	ss.send()
	return true
}

// send seals u.wbuf for the session and writes it.
func (ss *udpSession) send() {
	u := ss.u
	if ss.tag != nil {
		ss.sendCtr++
		u.wbuf = ss.tag.seal(u.wbuf, u.wbuf, dirServer, ss.sendCtr)
	}
	u.send(ss.addr)
}

// close is called by the owner after it detached the node: the client is
// told the session is over, so that it reconnects at once.
func (ss *udpSession) close() {
	if ss.closeOnce {
		return
	}
	ss.closeOnce = true
	ss.sendError(codeGone, "session ended by the medium server")
	ss.u.forget(ss)
}

// forget drops ss from the tables.
func (u *udpServer) forget(ss *udpSession) {
	delete(u.sessions, ss.addr)
	if u.byNode[ss.id] == ss {
		u.byNode[ss.id] = nil
	}
}

func (ss *udpSession) sendError(code uint8, text string) {
	ss.u.wbuf = appendMessage(ss.u.wbuf[:0], errorMessage(code, text))
	ss.send()
}

// send writes u.wbuf to addr; a failure is counted, never waited on.
func (u *udpServer) send(addr netip.AddrPort) {
	u.pc.SetWriteDeadline(time.Now().Add(udpWriteTimeout))
	if _, err := u.pc.WriteToUDPAddrPort(u.wbuf, addr); err != nil {
		u.cnt.sendErrors.Add(1)
	}
}

// helloError answers a hello that passed the cookie exchange with an error;
// with a key it is tagged under the hello key with the hello's counter, so
// that the client can trust it.
func (u *udpServer) helloError(to netip.AddrPort, ctr uint64, code uint8, text string) {
	u.wbuf = appendMessage(u.wbuf[:0], errorMessage(code, text))
	if u.hello != nil && ctr != 0 {
		u.wbuf = u.hello.seal(u.wbuf, u.wbuf, dirServer, ctr)
	}
	u.send(to)
}

// detach ends a session without telling the client.
func (u *udpServer) detach(now time.Time, m *medium.Medium, conns *[256]attachment, ss *udpSession) {
	if conns[ss.id] == ss {
		conns[ss.id] = nil
		m.Detach(now, ss.id)
	}
	ss.closeOnce = true
	u.forget(ss)
}

// park takes the node of a silent session off the medium and keeps the
// session (udpSession).
func (u *udpServer) park(now time.Time, m *medium.Medium, conns *[256]attachment, ss *udpSession) {
	if conns[ss.id] == ss {
		conns[ss.id] = nil
		m.Detach(now, ss.id)
	}
	ss.parked, ss.carrier = true, false
	u.cnt.parked.Add(1)
	u.log.Info().Uint8("node", ss.id).Str("remote", ss.addr.String()).Stringer("keep", u.linger).
		Msg("sim: udp client silent; its node is off the medium until it is heard again")
}

// resume puts a parked session's node back on the medium. It fails when
// the node id was taken meanwhile (by a client on the Unix socket).
func (u *udpServer) resume(now time.Time, m *medium.Medium, conns *[256]attachment, ss *udpSession) error {
	if err := m.Attach(ss.id); err != nil {
		return err
	}
	conns[ss.id] = ss
	ss.parked = false
	u.cnt.resumed.Add(1)
	u.log.Info().Uint8("node", ss.id).Str("remote", ss.addr.String()).Stringer("silent", now.Sub(ss.heard).Round(time.Millisecond)).
		Msg("sim: udp client heard again; its node is back on the medium")
	return nil
}

// expire ends a parked session, telling the client in case it is still
// there.
func (u *udpServer) expire(ss *udpSession, why string) {
	ss.sendError(codeGone, why)
	ss.closeOnce = true
	u.forget(ss)
	u.cnt.expired.Add(1)
	u.log.Warn().Uint8("node", ss.id).Str("remote", ss.addr.String()).Msg("sim: udp session ended: " + why)
}

// handle is the owner's part for one datagram from from.
func (u *udpServer) handle(now time.Time, m *medium.Medium, conns *[256]attachment, from netip.AddrPort, d *datagram) {
	ss := u.sessions[from]
	if d.typ == msgHello {
		u.handleHello(now, m, conns, from, d, ss)
		return
	}
	if ss == nil {
		u.cnt.unknown.Add(1)
		return
	}
	if ss.tag != nil {
		ctr, ok := ss.tag.open(d, dirClient)
		if !ok {
			u.cnt.authFailures.Add(1)
			u.complain(now, from, "sim: udp datagram with a wrong tag dropped", nil)
			return
		}
		if !ss.recv.accept(ctr) {
			u.cnt.replays.Add(1)
			u.complain(now, from, "sim: udp datagram replayed; dropped", nil)
			return
		}
	} else if len(d.trailer) != 0 {
		u.cnt.authFailures.Add(1)
		return
	}
	if ss.parked && d.typ != msgBye {
		if err := u.resume(now, m, conns, ss); err != nil {
			u.expire(ss, "node id taken while the client was silent")
			return
		}
	}
	ss.heard = now
	switch d.typ {
	case msgPing:
		u.wbuf = appendDatagram(u.wbuf[:0], &datagram{message: message{typ: msgState}, carrier: ss.carrier, seq: ss.doneSeq})
		ss.send()
	case msgBye:
		u.detach(now, m, conns, ss)
		u.log.Info().Uint8("node", ss.id).Str("remote", from.String()).Msg("sim: udp client left")
	case msgUTransmit:
		if ss.haveRx && d.seq == ss.rxSeq {
			u.cnt.unexpected.Add(1) // a duplicated datagram
			return
		}
		ss.rxSeq, ss.haveRx = d.seq, true
		end, err := m.Transmit(now, ss.id, d.data)
		if err != nil {
			// The client gave up waiting for the previous tx done, or
			// sent too much: the burst is lost, and said so at once.
			u.cnt.unexpected.Add(1)
			u.log.Debug().Err(err).Uint8("node", ss.id).Msg("sim: udp transmit refused")
			ss.doneSeq = d.seq
			u.wbuf = appendDatagram(u.wbuf[:0], &datagram{message: message{typ: msgUTxDone}, seq: d.seq})
			ss.send()
			return
		}
		ss.txSeq, ss.inTx, ss.txEnd = d.seq, true, end
	default:
		u.cnt.unexpected.Add(1)
	}
}

// oldVersionText is the error an old client gets; short, since the address
// has not proven it asked (a spoofed version 1 hello is 9 bytes).
const oldVersionText = "sim: medium speaks udp protocol 2; upgrade slided"

func (u *udpServer) handleHello(now time.Time, m *medium.Medium, conns *[256]attachment, from netip.AddrPort, d *datagram, ss *udpSession) {
	if d.old || d.version != udpVersion {
		u.cnt.oldVersion.Add(1)
		// At most one answer per source per complaintEvery, and only if
		// it is no larger than the hello: the address has not proven it
		// asked, and a larger answer would make us a reflector. A version
		// 1 hello (9 bytes) gets no answer; the log says why.
		if ok, _ := u.complaints.allow(now, from.Addr()); ok {
			u.log.Warn().Str("remote", from.String()).Uint8("version", d.version).Msg("sim: udp hello of another protocol version (the client must upgrade)")
			u.wbuf = appendMessage(u.wbuf[:0], errorMessage(codeVersion, oldVersionText))
			if len(u.wbuf) <= len(d.raw)+len(d.trailer) {
				u.send(from)
			}
		}
		return
	}
	slot, valid := u.jar.slotOf(now, from, d.cookie)
	if !valid {
		// Stateless: the answer is smaller than the hello, and nothing is
		// kept for an address that has not proven it receives there.
		u.cnt.cookies.Add(1)
		u.wbuf = appendDatagram(u.wbuf[:0], &datagram{message: message{typ: msgCookie}, nonce: d.nonce, cookie: u.jar.make(now, from)})
		u.send(from)
		return
	}
	var ctr uint64
	switch {
	case u.psk == nil && len(d.trailer) != 0:
		u.cnt.authFailures.Add(1)
		u.helloError(from, 0, codeKey, "this medium has no key; dial without one")
		u.complain(now, from, "sim: udp hello with a key, but the medium has none", nil)
		return
	case u.psk != nil:
		var ok bool
		if ctr, ok = u.hello.open(d, dirClient); !ok {
			u.cnt.authFailures.Add(1)
			u.helloError(from, 0, codeKey, "key missing or wrong")
			u.complain(now, from, "sim: udp hello without the medium's key refused", nil)
			return
		}
		fresh := slot > u.helloSlot[d.node] || slot == u.helloSlot[d.node] && ctr > u.lastHello[d.node]
		if !fresh && !(ss != nil && ss.id == d.node && ss.cnonce == d.nonce) {
			u.cnt.replays.Add(1)
			u.complain(now, from, "sim: udp hello replayed; dropped", nil)
			if slot < cookieSlotOf(now) {
				// Perhaps a client whose clock stepped back, holding a
				// cookie of the slot of its last hello: a cookie of
				// this slot (stateless, smaller than the hello) lets it
				// in as soon as this slot is newer.
				u.cnt.cookies.Add(1)
				u.wbuf = appendDatagram(u.wbuf[:0], &datagram{message: message{typ: msgCookie}, nonce: d.nonce, cookie: u.jar.make(now, from)})
				u.send(from)
			}
			return
		}
		if slot > u.helloSlot[d.node] {
			u.helloSlot[d.node], u.lastHello[d.node] = slot, ctr
		} else {
			u.lastHello[d.node] = max(u.lastHello[d.node], ctr)
		}
	}
	if ss != nil {
		if ss.id == d.node && ss.cnonce == d.nonce {
			// The welcome was lost: the same one again. It does not
			// resume a parked session (a replay could): the datagrams
			// of the session that follow do.
			if !ss.parked {
				ss.heard = now
			}
			u.wbuf = append(u.wbuf[:0], ss.welcome...)
			u.send(from)
			return
		}
		if ss.id == d.node && (!ss.parked || u.resume(now, m, conns, ss) == nil) {
			// The client started over (it lost us for a while): a new
			// session on the same attachment.
			ss.heard = now
			u.welcome(now, ss, d)
			return
		}
		u.detach(now, m, conns, ss)
	}
	if old := u.byNode[d.node]; old != nil && old.parked {
		// The node id of a silent client, asked for by another address
		// (that client restarted on another port, or moved): the new
		// one has it, as it would have had it without parking.
		u.expire(old, "node id taken by another address while the client was silent")
	}
	if err := m.Attach(d.node); err != nil {
		code := uint8(codeProtocol)
		switch {
		case errors.Is(err, ErrNodeInUse):
			code = codeNodeInUse
			u.cnt.squats.Add(1)
		case errors.Is(err, ErrInvalidNode):
			code = codeBadNode
		}
		u.helloError(from, ctr, code, err.Error())
		u.complain(now, from, fmt.Sprintf("sim: udp client rejected (node %d)", d.node), err)
		return
	}
	ss = &udpSession{u: u, addr: from, id: d.node, heard: now}
	u.sessions[from] = ss
	u.byNode[d.node] = ss
	conns[d.node] = ss
	u.cnt.sessions.Add(1)
	u.welcome(now, ss, d)
	u.log.Info().Uint8("node", d.node).Str("remote", from.String()).Bool("key", u.psk != nil).Msg("sim: udp client attached")
}

// welcome (re)starts ss's session for hello d and sends the welcome.
func (u *udpServer) welcome(now time.Time, ss *udpSession, d *datagram) {
	w := datagram{message: message{typ: msgWelcome, version: udpVersion, bitRate: u.bitRate, maxFrame: MaxFrame}}
	rand.Read(w.nonce[:])
	ss.cnonce, ss.sendCtr, ss.recv = d.nonce, 0, replayWindow{}
	if u.psk != nil {
		ss.tag = newTagger(sessionKey(u.psk, d.nonce, w.nonce, ss.id))
	}
	u.wbuf = appendDatagram(u.wbuf[:0], &w)
	ss.send()
	ss.welcome = append(ss.welcome[:0], u.wbuf...)
}

// due is when tick has something to do for ss: park it (udpTimeout
// after it was last heard, once its transmission on air has ended) or
// end it (u.linger after).
func (u *udpServer) due(ss *udpSession) time.Time {
	if ss.parked {
		return ss.heard.Add(u.linger)
	}
	at := ss.heard.Add(udpTimeout)
	if ss.inTx && ss.txEnd.After(at) {
		at = ss.txEnd
	}
	return at
}

// nextExpiry is when the first session is due (plus the slack); false
// without sessions.
func (u *udpServer) nextExpiry() (time.Time, bool) {
	var first time.Time
	for _, ss := range u.sessions {
		if at := u.due(ss); first.IsZero() || at.Before(first) {
			first = at
		}
	}
	return first.Add(udpExpirySlack), !first.IsZero()
}

// tick parks the sessions of clients silent for udpTimeout, once their
// transmission on air has ended (a stopped client's burst is not cut),
// and ends those parked for u.linger.
func (u *udpServer) tick(now time.Time, m *medium.Medium, conns *[256]attachment) {
	for _, ss := range u.sessions {
		switch silent := now.Sub(ss.heard); {
		case ss.parked && silent >= u.linger:
			u.expire(ss, "silent for too long")
		case !ss.parked && silent >= udpTimeout && (!ss.inTx || !now.Before(ss.txEnd)):
			u.park(now, m, conns, ss)
		}
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
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		d, err = parseDatagram(buf[:n])
		if err != nil {
			u.cnt.junk.Add(1)
			u.complain(time.Now(), from, "sim: junk datagram dropped", err)
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
