package sim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/internal/redial"
	"github.com/slided/slided/internal/selfstall"
	"github.com/slided/slided/phy"
)

// UDPClientStats counts what a UDPClient repaired or dropped.
type UDPClientStats struct {
	Junk           uint64 // datagrams that did not decode
	CarrierRepairs uint64 // carrier events made up from a state message (one was lost)
	TxDoneRepairs  uint64 // tx dones made up from a state message (the tx done was lost)
	TxLost         uint64 // transmissions with no word from the server within airtime + 1 s (TxDone reported anyway)
	Downs          uint64 // sessions lost
	AuthFailures   uint64 // datagrams dropped: wrong or missing tag, or a replayed counter (with a key)
	Dropped        uint64 // received frames dropped because the consumer of Events fell behind
	SelfStalls     uint64 // wake-ups found late because the client's own process did not run (package selfstall): the medium got a grace period
	Rejoins        uint64 // sessions the server ended while the client's process was stopped, joined again at once without Down
}

// UDPClient is a PHY on a medium server over UDP (it satisfies bridge.PHY
// and keeps the modem contract of phy/phy.go), for a medium on another
// host.
//
// Goroutines:
//   - run, started by DialUDP, owns the session: it reads datagrams, turns
//     them into events, sends keep-alives, notices a silent or refusing
//     server (then reports CarrierOff if needed and Down) and reconnects
//     (Up). It exits on Close.
//   - the event pump hands events to the consumer (eventPump); it exits
//     after run and closes Events.
//
// Transmit, Info, Stats and Close are safe from any goroutine; Transmit
// writes one datagram with a write deadline of udpWriteTimeout and never
// waits on the consumer.
//
// Lost datagrams: a lost received burst is lost (like a collision); a lost
// carrier or tx-done message is repaired by the state message that answers
// the next ping (every udpPingInterval); a lost transmit is reported as sent
// (TxDone) airtime + 1 s after Transmit.
type UDPClient struct {
	clientBase
	addr string
	node NodeID
	conn net.Conn // connected to the server, for the client's whole life
	psk  *auth.Key

	// Guarded by mu.
	up         bool
	txSeq      uint16
	txDeadline time.Time
	wbuf       []byte
	sess       *tagger // session key, with psk; guarded by mu
	sendCtr    uint64

	// Owned by run.
	ka       keepalive
	rbuf     []byte
	cookie   [cookieLen]byte
	helloCtr uint64
	hello    *tagger // hello key, with psk
	recv     replayWindow

	junk, carrierRepairs, txDoneRepairs, txLost, downs, authFailures, rejoins atomic.Uint64
}

// DialUDP attaches node to the medium server at addr ("HOST:PORT", e.g.
// "198.51.100.1:7300") over UDP; with key non-nil, the medium must have the
// same key (slided sim -key). The socket is made in the caller's network
// namespace. Like Dial, it retries with capped backoff until attached or ctx
// is done; a rejection is returned at once, except "node id in use", which
// is retried for udpTimeout (the server may still hold this node's previous
// session). The first event is Up.
func DialUDP(ctx context.Context, addr string, node NodeID, key *auth.Key, log zerolog.Logger) (*UDPClient, error) {
	return dialUDP(ctx, addr, node, key, log, 100*time.Millisecond, 2*time.Second)
}

func dialUDP(ctx context.Context, addr string, node NodeID, key *auth.Key, log zerolog.Logger, bmin, bmax time.Duration) (*UDPClient, error) {
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
	return dialUDPConn(ctx, conn, addr, node, key, log, bmin, bmax)
}

// dialUDPConn is DialUDP on conn, a connected datagram socket (tests hand
// in one end of a pipe); it closes conn when it fails.
func dialUDPConn(ctx context.Context, conn net.Conn, addr string, node NodeID, key *auth.Key, log zerolog.Logger, bmin, bmax time.Duration) (*UDPClient, error) {
	c, err := newUDPClient(conn, addr, node, key, log, bmin, bmax)
	if err != nil {
		return nil, err
	}
	if err := c.attach(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// newUDPClient makes a UDPClient on conn that is not yet attached
// (attach); tests set its clock in between. It closes conn when it fails.
func newUDPClient(conn net.Conn, addr string, node NodeID, key *auth.Key, log zerolog.Logger, bmin, bmax time.Duration) (*UDPClient, error) {
	if node == 0 || node == 0xFF {
		conn.Close()
		return nil, fmt.Errorf("%w: %d", ErrInvalidNode, node)
	}
	c := &UDPClient{
		addr: addr, node: node, conn: conn, psk: key,
		ka:   keepalive{interval: udpPingInterval, timeout: udpTimeout},
		rbuf: make([]byte, maxDatagram+1),
		wbuf: make([]byte, 0, maxDatagram),
	}
	c.init(log.With().Str("medium", "udp:"+addr).Uint8("node", node).Logger(), "sim: udp medium server", bmin, bmax)
	if key != nil {
		c.hello = newTagger(helloKey(key))
	}
	return c, nil
}

// attach says hello for the first time, as DialUDP says, and starts c; it
// closes c's connection when it fails.
func (c *UDPClient) attach(ctx context.Context) error {
	info, err := c.connectLoop(ctx, 0, true)
	if err != nil {
		c.cancel()
		c.conn.Close()
		return err
	}
	c.up, c.info = true, info
	c.start(c.run)
	return nil
}

// Stats returns the client's repair counters.
func (c *UDPClient) Stats() UDPClientStats {
	return UDPClientStats{Junk: c.junk.Load(), CarrierRepairs: c.carrierRepairs.Load(),
		TxDoneRepairs: c.txDoneRepairs.Load(), TxLost: c.txLost.Load(), Downs: c.downs.Load(),
		AuthFailures: c.authFailures.Load(), Dropped: c.pump.dropped.Load(), SelfStalls: c.selfStalls.Load(),
		Rejoins: c.rejoins.Load()}
}

// Transmit sends b to the medium in one datagram (it copies b); TxDone
// follows after the airtime. Errors as Client.Transmit; a failed write
// wraps phy.ErrDown (the client notices the medium is gone soon after).
func (c *UDPClient) Transmit(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkTransmitLocked(c.up, len(b)); err != nil {
		return err
	}
	c.txSeq++
	if c.txSeq == 0 { // 0 is a fresh session's "nothing done yet"
		c.txSeq = 1
	}
	c.wbuf = appendDatagram(c.wbuf[:0], &datagram{message: message{typ: msgUTransmit, data: b}, seq: c.txSeq})
	if err := c.sendLocked(); err != nil {
		return fmt.Errorf("sim: transmit: %w (%w)", phy.ErrDown, err)
	}
	c.txBusy = true
	c.txDeadline = c.now().Add(phy.Airtime(len(b), c.info.BitRate) + udpTxGrace)
	return nil
}

// sendLocked seals c.wbuf with the session key, if any, and writes it; c.mu
// is held.
func (c *UDPClient) sendLocked() error {
	if c.sess != nil {
		c.sendCtr++
		c.wbuf = c.sess.seal(c.wbuf, c.wbuf, dirClient, c.sendCtr)
	}
	// The deadline is cleared after the write rather than moved later by
	// the next: a pending deadline moved later keeps its old time in the
	// runtime's heap, which wakes the process for nothing, and one left
	// pending fires by itself.
	c.conn.SetWriteDeadline(time.Now().Add(udpWriteTimeout))
	_, err := c.conn.Write(c.wbuf)
	c.conn.SetWriteDeadline(time.Time{})
	return err
}

// sendEmpty sends a message without a body (ping, bye) in the session.
func (c *UDPClient) sendEmpty(t msgType) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wbuf = appendEmpty(c.wbuf[:0], t)
	return c.sendLocked()
}

// Close tells the server goodbye, stops the goroutines and closes Events.
// It returns even if nobody reads Events. It is safe to call more than once.
func (c *UDPClient) Close() error {
	c.mu.Lock()
	first := !c.closed
	c.closed = true
	up := c.up
	c.mu.Unlock()
	if first && up {
		c.sendEmpty(msgBye)
	}
	c.cancel()
	c.conn.SetReadDeadline(time.Unix(1, 0))
	<-c.done
	c.conn.Close()
	return nil
}

// run is the client's goroutine.
func (c *UDPClient) run() {
	for {
		err := c.serve()
		c.mu.Lock()
		c.up, c.txBusy, c.sess = false, false, nil
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		c.downs.Add(1)
		wait := c.redial.Lost(time.Now(), err)
		c.reportDown()
		info, err := c.connectLoop(c.ctx, wait, false)
		if err != nil {
			return // closed
		}
		c.mu.Lock()
		c.up, c.info = true, info
		c.mu.Unlock()
		c.pump.push(phy.Event{Kind: phy.Up})
	}
}

// serve runs one session until the server is lost or the client closed.
//
// When a read returns much later than its deadline, the client's own
// process did not run meanwhile (package selfstall): what the server sent
// waits in the socket, and the deadline that fired first says nothing of
// the server. The client then reads on, pings, and gives the server a fresh
// keep-alive timeout and the outstanding transmission a fresh udpTxGrace.
// If what it reads is the server ending the session meanwhile (rejoin),
// it says hello again at once.
func (c *UDPClient) serve() error {
	c.ka.reset(c.now())
	var watch selfstall.Watch
	var rdl time.Time       // the read deadline set
	var stalledAt time.Time // when the client last found its process had stopped
	for {
		wake := c.ka.next()
		c.mu.Lock()
		if c.txBusy && c.txDeadline.Before(wake) {
			wake = c.txDeadline
		}
		c.mu.Unlock()
		// The deadline is set again only when it moves earlier or has
		// passed: one moved later keeps its old time in the runtime's
		// heap and wakes the process for nothing. A read that returns at
		// an earlier deadline finds nothing due and waits for the rest.
		if now := c.now(); rdl.IsZero() || wake.Before(rdl) || !now.Before(rdl) {
			c.conn.SetReadDeadline(wake)
			rdl = wake
		}
		watch.Expect(c.now(), rdl)
		if c.ctx.Err() != nil { // Close may have set its deadline just before
			return c.ctx.Err()
		}
		n, err := c.conn.Read(c.rbuf)
		if c.ctx.Err() != nil {
			return c.ctx.Err()
		}
		now := c.now()
		if late := watch.Stalled(now); late > 0 {
			c.selfStall(late)
			stalledAt = now
			c.ka.reset(now) // the timeout from now, and a ping at once
			c.mu.Lock()
			if grace := now.Add(udpTxGrace); c.txBusy && c.txDeadline.Before(grace) {
				c.txDeadline = grace
			}
			c.mu.Unlock()
		}
		var ne net.Error
		switch {
		case err == nil:
			if err := c.handle(now, c.rbuf[:n]); err != nil {
				if !c.rejoin(now, stalledAt, err) {
					return err
				}
				stalledAt, rdl = time.Time{}, time.Time{} // connect set its own deadlines
				continue
			}
		case errors.Is(err, syscall.ECONNREFUSED):
			// ICMP port unreachable: the host is up, the medium is not.
			return fmt.Errorf("sim: udp medium refused: %w", err)
		case errors.As(err, &ne) && ne.Timeout():
		default:
			return err
		}
		if c.ka.dead(now) {
			return fmt.Errorf("%w: nothing heard for %v", errSilent, now.Sub(c.ka.heardAt).Round(time.Millisecond))
		}
		if c.ka.pingDue(now) {
			c.sendEmpty(msgPing)
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
			c.pump.push(phy.Event{Kind: phy.TxDone})
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
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess != nil {
		ctr, ok := sess.open(&d, dirServer)
		if !ok || !c.recv.accept(ctr) {
			c.authFailures.Add(1)
			return nil
		}
	} else if len(d.trailer) != 0 {
		c.junk.Add(1)
		return nil
	}
	c.ka.heard(now)
	switch d.typ {
	case msgReceived:
		c.pump.push(phy.Event{Kind: phy.Received, Data: append([]byte(nil), d.data...)})
	case msgCarrierOn, msgCarrierOff:
		c.setCarrier(d.typ == msgCarrierOn, false)
	case msgUTxDone:
		c.txDone(d.seq, false)
	case msgState:
		c.setCarrier(d.carrier, true)
		c.txDone(d.seq, true)
	case msgError:
		return &RejectError{Code: d.code, Text: string(d.data)}
	}
	return nil // a late welcome or cookie, or a client message echoed: ignored
}

// rejoin answers err, the server ending the session (error 6), read at
// now, within udpTimeout after the client found its process had stopped
// (at stalledAt): the server took the stopped client for gone (a medium
// of before parked sessions did after 6 s, a newer one after its session
// timeout). It says hello again at once and, welcomed, carries on without
// reporting Down; a transmission outstanding, unknown to the new session,
// is reported done after its grace, as a lost burst. It returns false
// when err is anything else or the hello fails (the caller reports Down
// and reconnects as usual).
func (c *UDPClient) rejoin(now, stalledAt time.Time, err error) bool {
	var rej *RejectError
	if stalledAt.IsZero() || now.Sub(stalledAt) >= udpTimeout || !errors.As(err, &rej) || rej.Code != codeGone {
		return false
	}
	info, cerr := c.connect(c.ctx)
	if cerr != nil {
		c.log.Info().Err(cerr).Msg("sim: the udp medium ended the session while this process was stopped; hello again failed")
		return false
	}
	c.mu.Lock()
	c.info = info
	c.mu.Unlock()
	c.ka.reset(c.now())
	c.rejoins.Add(1)
	c.log.Info().Str("reason", rej.Text).Msg("sim: the udp medium ended the session while this process was stopped; joined again")
	return true
}

// setCarrier reports a carrier change, counting it as a repair if it came
// from a state message.
func (c *UDPClient) setCarrier(on, repair bool) {
	if c.carrierTo(on) && repair {
		c.carrierRepairs.Add(1)
	}
}

// txDone reports TxDone if seq is the transmission outstanding.
func (c *UDPClient) txDone(seq uint16, repair bool) {
	c.mu.Lock()
	match := c.txBusy && c.txSeq == seq
	if match {
		c.txBusy = false
	}
	c.mu.Unlock()
	if !match {
		return
	}
	if repair {
		c.txDoneRepairs.Add(1)
	}
	c.pump.push(phy.Event{Kind: phy.TxDone})
}

// connectLoop says hello after wait, with backoff (package redial), until
// welcomed or ctx is done. With permanent set, a rejection ends it, except
// node-in-use before udpTimeout has passed.
func (c *UDPClient) connectLoop(ctx context.Context, wait time.Duration, permanent bool) (phy.Info, error) {
	stop := context.AfterFunc(ctx, func() { c.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	start := time.Now()
	info, err := redial.Redial(ctx, c.redial, wait, c.connect, func(err error) bool {
		return permanent && errors.Is(err, ErrRejected) &&
			(!errors.Is(err, ErrNodeInUse) || time.Since(start) > udpTimeout+udpExpirySlack)
	})
	if err != nil && ctx.Err() != nil {
		return phy.Info{}, fmt.Errorf("sim: dial udp %s: %w", c.addr, err)
	}
	return info, err
}

// errNoWelcome: a hello went unanswered.
var errNoWelcome = errors.New("sim: no answer to hello (is the medium slided sim -listen-udp of UDP protocol 2, with the same key?)")

// connect makes one attempt: hello, the cookie if the server asks for one
// (hello again, echoing it), welcome. It ignores leftovers of an earlier
// session.
func (c *UDPClient) connect(ctx context.Context) (phy.Info, error) {
	var cnonce [nonceLen]byte
	rand.Read(cnonce[:])
	c.helloCtr = max(auth.CounterAt(time.Now()), c.helloCtr+1)
	ctr := c.helloCtr
	sendHello := func() error {
		h := datagram{message: message{typ: msgHello, version: udpVersion, node: c.node}, nonce: cnonce, cookie: c.cookie}
		b := appendDatagram(make([]byte, 0, 3+udpHelloLen+trailerLen), &h)
		if c.hello != nil {
			b = c.hello.seal(b, b, dirClient, ctr)
		}
		c.conn.SetWriteDeadline(time.Now().Add(udpWriteTimeout))
		if _, err := c.conn.Write(b); err != nil {
			return fmt.Errorf("sim: hello: %w", err)
		}
		return nil
	}
	if err := sendHello(); err != nil {
		return phy.Info{}, err
	}
	deadline := time.Now().Add(udpHelloWait)
	cookies := 0
	var said error // an unauthenticated error from the server, kept as the reason
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
			var ne net.Error
			switch {
			case said != nil:
				return phy.Info{}, said
			case errors.As(err, &ne) && ne.Timeout():
				return phy.Info{}, errNoWelcome
			}
			return phy.Info{}, fmt.Errorf("sim: welcome: %w", err)
		}
		d, err := parseDatagram(c.rbuf[:n])
		if err != nil {
			c.junk.Add(1)
			continue
		}
		switch d.typ {
		case msgCookie:
			if d.nonce != cnonce || cookies >= 2 {
				continue // not for this hello
			}
			cookies++
			c.cookie = d.cookie
			if err := sendHello(); err != nil {
				return phy.Info{}, err
			}
			deadline = time.Now().Add(udpHelloWait)
		case msgError:
			if d.code == codeGone {
				continue // the end of an earlier session
			}
			rej := &RejectError{Code: d.code, Text: string(d.data)}
			if c.hello != nil {
				if got, ok := c.hello.open(&d, dirServer); !ok || got != ctr {
					// Anybody could have sent it: a reason to log,
					// not to give up.
					said = fmt.Errorf("sim: the medium says (unauthenticated): %s", d.data)
					continue
				}
			}
			return phy.Info{}, rej
		case msgWelcome:
			if d.version != udpVersion {
				return phy.Info{}, &RejectError{Code: codeVersion, Text: fmt.Sprintf("server speaks udp protocol version %d", d.version)}
			}
			var sess *tagger
			if c.psk != nil {
				sess = newTagger(sessionKey(c.psk, cnonce, d.nonce, c.node))
				wctr, ok := sess.open(&d, dirServer)
				if !ok {
					c.authFailures.Add(1)
					continue
				}
				c.recv = replayWindow{}
				c.recv.accept(wctr)
			} else if len(d.trailer) != 0 {
				c.junk.Add(1)
				continue
			}
			if d.bitRate == 0 {
				return phy.Info{}, fmt.Errorf("%w: welcome with bit rate 0", errBadMessage)
			}
			maxFrame := int(d.maxFrame)
			if maxFrame == 0 || maxFrame > MaxFrame {
				maxFrame = MaxFrame
			}
			c.mu.Lock()
			c.sess, c.sendCtr = sess, 0
			c.mu.Unlock()
			return phy.Info{BitRate: int(d.bitRate), MaxFrame: maxFrame, CarrierAtArrival: true}, nil
		}
	}
}

// UDPTarget is the argument of `-phy sim-udp:HOST:PORT[?key=FILE]`.
type UDPTarget struct {
	Addr    string // HOST:PORT of the medium
	KeyFile string // the pre-shared key (auth.LoadKey); empty: none
}

// ParseUDPTarget parses "HOST:PORT" with an optional "?key=FILE".
func ParseUDPTarget(s string) (UDPTarget, error) {
	addr, query, _ := strings.Cut(s, "?")
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return UDPTarget{}, fmt.Errorf("want sim-udp:HOST:PORT[?key=FILE]: %w", err)
	}
	t := UDPTarget{Addr: addr}
	q, err := url.ParseQuery(query)
	if err != nil {
		return UDPTarget{}, fmt.Errorf("sim-udp options %q: %w", query, err)
	}
	for k, v := range q {
		switch {
		case k != "key":
			return UDPTarget{}, fmt.Errorf("sim-udp option %q unknown (known: key)", k)
		case len(v) != 1 || v[0] == "":
			return UDPTarget{}, fmt.Errorf("sim-udp option key wants one file name")
		}
		t.KeyFile = v[0]
	}
	return t, nil
}
