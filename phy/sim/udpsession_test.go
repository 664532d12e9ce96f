package sim

import (
	"context"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/phy"
)

// memNet is a datagram network in memory, for a whole medium server and
// its UDP clients in a synctest bubble: the server's socket (udpSocket)
// and the clients' connected sockets (memConn). Each socket's receive
// queue drops what does not fit, as UDP does; a datagram to an address
// nobody holds is lost.
type memNet struct {
	srvIn  chan memDatagram
	closed chan struct{}
	once   sync.Once

	mu      sync.Mutex
	clients map[netip.AddrPort]*memConn
	cut     map[netip.AddrPort]bool // hosts gone: nothing to or from them
}

type memDatagram struct {
	from netip.AddrPort
	b    []byte
}

// memQueue is a socket's receive queue, in datagrams.
const memQueue = 256

var memServerAddr = netip.MustParseAddrPort("198.51.100.1:7300")

func newMemNet() *memNet {
	return &memNet{srvIn: make(chan memDatagram, memQueue), closed: make(chan struct{}),
		clients: make(map[netip.AddrPort]*memConn), cut: make(map[netip.AddrPort]bool)}
}

func (n *memNet) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	select {
	case d := <-n.srvIn:
		return copy(b, d.b), d.from, nil
	case <-n.closed:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (n *memNet) WriteToUDPAddrPort(b []byte, to netip.AddrPort) (int, error) {
	n.mu.Lock()
	c := n.clients[to]
	if n.cut[to] {
		c = nil
	}
	n.mu.Unlock()
	if c != nil {
		select {
		case c.in <- append([]byte(nil), b...):
		default:
		}
	}
	return len(b), nil
}

func (n *memNet) SetWriteDeadline(time.Time) error { return nil }

func (n *memNet) close() { n.once.Do(func() { close(n.closed) }) }

// unplug makes the host at addr vanish: what it sends and what is sent to
// it is lost from now on (a dead host).
func (n *memNet) unplug(addr netip.AddrPort) {
	n.mu.Lock()
	n.cut[addr] = true
	n.mu.Unlock()
}

// dial returns a socket at addr connected to the server.
func (n *memNet) dial(addr netip.AddrPort) *memConn {
	c := &memConn{n: n, addr: addr, in: make(chan []byte, memQueue), moved: make(chan struct{}), closed: make(chan struct{})}
	n.mu.Lock()
	n.clients[addr] = c
	n.mu.Unlock()
	return c
}

// memConn is a client's socket on a memNet; its read deadline works on the
// bubble's clock.
type memConn struct {
	n    *memNet
	addr netip.AddrPort
	in   chan []byte
	once sync.Once

	mu     sync.Mutex
	rdl    time.Time
	moved  chan struct{} // closed when rdl changes
	closed chan struct{}
}

func (c *memConn) Read(p []byte) (int, error) {
	for {
		c.mu.Lock()
		dl, moved := c.rdl, c.moved
		c.mu.Unlock()
		var expired <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(d)
			defer t.Stop()
			expired = t.C
		}
		select {
		case b := <-c.in:
			return copy(p, b), nil
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		case <-moved:
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
}

func (c *memConn) Write(b []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	c.n.mu.Lock()
	cut := c.n.cut[c.addr]
	c.n.mu.Unlock()
	if !cut {
		select {
		case c.n.srvIn <- memDatagram{from: c.addr, b: append([]byte(nil), b...)}:
		default:
		}
	}
	return len(b), nil
}

func (c *memConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	close(c.moved)
	c.moved = make(chan struct{})
	c.mu.Unlock()
	return nil
}

func (c *memConn) SetDeadline(t time.Time) error    { return c.SetReadDeadline(t) }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
func (c *memConn) LocalAddr() net.Addr              { return net.UDPAddrFromAddrPort(c.addr) }
func (c *memConn) RemoteAddr() net.Addr             { return net.UDPAddrFromAddrPort(memServerAddr) }

func (c *memConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.n.mu.Lock()
		delete(c.n.clients, c.addr)
		c.n.mu.Unlock()
	})
	return nil
}

// memServe runs srv's owner and UDP reader on n, as ServeAll does on a
// UDP socket, until the test ends; linger 0 keeps the default session
// timeout. The returned udpServer may be looked at after synctest.Wait.
func memServe(t *testing.T, srv *Server, n *memNet, linger time.Duration) *udpServer {
	ctx, cancel := context.WithCancel(context.Background())
	u := newUDPServer(n, srv.cfg.BitRate, srv.udpKey, &srv.udpCount, newComplaintLimiter(complaintEvery), srv.log)
	u.setSessionTimeout(linger)
	srv.complaints.Store(u.complaints)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.own(ctx, u) }()
	go func() { defer wg.Done(); srv.readUDP(ctx, u) }()
	t.Cleanup(func() {
		cancel()
		n.close()
		wg.Wait()
	})
	return u
}

// memAddr is a client address on the memNet.
func memAddr(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), port)
}

// memDial attaches a UDPClient at memAddr(port) as node; with clk, its
// clock and reads stop with clk (selfstall_test.go). It is up when it
// returns.
func memDial(t *testing.T, n *memNet, port uint16, node NodeID, key *auth.Key, clk *stopClock) *UDPClient {
	t.Helper()
	var conn net.Conn = n.dial(memAddr(port))
	if clk != nil {
		conn = &stoppedConn{Conn: conn, gate: clk}
	}
	c, err := newUDPClient(conn, "mem", node, key, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if clk != nil {
		c.now = clk.now
	}
	if err := c.attach(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if clk != nil {
		t.Cleanup(func() { // first, so that a test that failed stopped can close c
			if clk.stopped() {
				clk.cont()
			}
		})
	}
	wantEvents(t, c.Events(), phy.Up)
	return c
}

// memBurst sends data from a and checks that b hears it and a gets its
// TxDone.
func memBurst(t *testing.T, a, b *UDPClient, data string) {
	t.Helper()
	if err := a.Transmit([]byte(data)); err != nil {
		t.Fatal(err)
	}
	evs := wantEvents(t, b.Events(), phy.CarrierOn, phy.CarrierOff, phy.Received)
	if string(evs[2].Data) != data {
		t.Fatalf("received %q, want %q", evs[2].Data, data)
	}
	wantEvents(t, a.Events(), phy.TxDone)
}

// drain returns the kinds of the events that arrive within d.
func drain(ch <-chan phy.Event, d time.Duration) []phy.EventKind {
	var got []phy.EventKind
	timeout := time.After(d)
	for {
		select {
		case ev := <-ch:
			got = append(got, ev.Kind)
		case <-timeout:
			return got
		}
	}
}

// TestUDPSessionSurvivesStall: a UDP client whose process stops for 12 s
// (SIGSTOP) with a burst just sent, beside a live member that transmits
// meanwhile. On resumption it reads its TxDone, stays up (no Down: the
// daemon counts no phy_down) and its next burst is heard. The old server
// ended the session of a client silent for 6 s and told it so (error 6
// "silent for too long"), which the resumed client read after its TxDone:
// Down, a new hello, Up. The server now parks the session (the node off
// the medium) and resumes it at the client's first datagram.
func TestUDPSessionSurvivesStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		srv, err := NewServer(Config{BitRate: 96000}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		memServe(t, srv, n, 0)
		clk := newStopClock()
		a := memDial(t, n, 4001, 4, nil, clk)
		b := memDial(t, n, 4002, 5, nil, nil)
		memBurst(t, a, b, "before")

		if err := a.Transmit([]byte("stopping")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the medium has the burst
		clk.stop()
		wantEvents(t, b.Events(), phy.CarrierOn, phy.CarrierOff, phy.Received)
		time.Sleep(6 * time.Second)
		if err := b.Transmit([]byte("while a is stopped")); err != nil {
			t.Fatal(err)
		}
		wantEvents(t, b.Events(), phy.TxDone)
		time.Sleep(6 * time.Second)
		clk.cont()
		got := drain(a.Events(), 30*time.Second)
		// a may have heard b's burst before its session was parked.
		got = slices.DeleteFunc(got, func(k phy.EventKind) bool {
			return k == phy.CarrierOn || k == phy.CarrierOff || k == phy.Received
		})
		if want := []phy.EventKind{phy.TxDone}; !slices.Equal(got, want) {
			t.Fatalf("a's events after the stop: %v, want %v (no Down)", got, want)
		}
		memBurst(t, a, b, "after")
		memBurst(t, b, a, "to a")
		if st := a.Stats(); st.Downs != 0 || st.TxLost != 0 || st.SelfStalls != 1 {
			t.Errorf("client stats %+v: want no down, no tx lost, one self-stall", st)
		}
		if st := srv.UDPStats(); st.Sessions != 2 || st.Parked != 1 || st.Resumed != 1 || st.Expired != 0 {
			t.Errorf("server stats %+v: want 2 sessions, 1 parked and resumed, none expired", st)
		}
	})
}

// TestUDPSessionDeadClient: a client that vanishes (its host dies) is
// parked after 6 s: its node id is free at once for a client on another
// address (a daemon restarted on a new port), and a session nobody takes
// over ends after the session timeout; the server keeps nothing of it.
func TestUDPSessionDeadClient(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		restart bool
	}{
		{"restarted elsewhere", true},
		{"never back", false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newMemNet()
				srv, err := NewServer(Config{BitRate: 96000}, zerolog.Nop())
				if err != nil {
					t.Fatal(err)
				}
				u := memServe(t, srv, n, time.Minute)
				a := memDial(t, n, 4001, 4, nil, nil)
				b := memDial(t, n, 4002, 5, nil, nil)
				n.unplug(memAddr(4001))
				time.Sleep(8 * time.Second) // parked at 6 to 7 s
				if st := srv.UDPStats(); st.Parked != 1 {
					t.Fatalf("stats %+v: want a parked", st)
				}
				if tc.restart {
					a2 := memDial(t, n, 4003, 4, nil, nil) // taken at once: no "node id in use"
					memBurst(t, a2, b, "restarted")
					if st := srv.UDPStats(); st.Expired != 1 || st.Squats != 0 {
						t.Errorf("stats %+v: want the parked session ended for the new one, no squat", st)
					}
					return
				}
				time.Sleep(time.Minute)
				synctest.Wait()
				if st := srv.UDPStats(); st.Expired != 1 || st.Resumed != 0 {
					t.Errorf("stats %+v: want 1 expired, none resumed", st)
				}
				if len(u.sessions) != 1 || u.byNode[4] != nil || u.byNode[5] == nil {
					t.Errorf("%d sessions, node 4 %p, node 5 %p: want only b's", len(u.sessions), u.byNode[4], u.byNode[5])
				}
				_ = a
			})
		})
	}
}

// memPeer is a rawPeer on the memNet at memAddr(port).
func memPeer(t *testing.T, n *memNet, port uint16) *rawPeer {
	p := &rawPeer{t: t, c: n.dial(memAddr(port)), buf: make([]byte, maxDatagram+1)}
	p.nonce[0] = 0x5A
	return p
}

// readType reads datagrams for up to d and returns the type of the first
// that decodes, or 0.
func (p *rawPeer) readType(d time.Duration) msgType {
	b, ok := p.read(d)
	if !ok {
		return 0
	}
	dg, err := parseDatagram(b)
	if err != nil {
		p.t.Fatalf("junk from the server: %v", err)
	}
	return dg.typ
}

// TestUDPParkedSessionSecurity: with a key, a parked session is resumed
// only by a datagram of that session (its address, its session key, a
// counter not seen): a replay of one of its datagrams, a forged or
// untagged one from its address, the same from another address, or a
// hello for its node id without the key leave it parked and are counted.
// The member's next genuine datagram resumes it; it hears the medium
// again.
func TestUDPParkedSessionSecurity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key, other := auth.Key{7, 7}, auth.Key{8}
		n := newMemNet()
		srv, err := NewServer(Config{BitRate: 96000}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		srv.SetUDPKey(key)
		u := memServe(t, srv, n, 0)
		b := memDial(t, n, 4002, 5, &key, nil)
		member := memPeer(t, n, 4009)
		if d := member.attach(9, &key); d.typ != msgWelcome {
			t.Fatalf("member: %+v, want welcome", d)
		}
		ping := member.sealed(appendEmpty(nil, msgPing))
		member.write(ping)
		if typ := member.readType(time.Second); typ != msgState {
			t.Fatalf("answer to a ping: type %d, want state", typ)
		}
		time.Sleep(8 * time.Second)
		if st := srv.UDPStats(); st.Parked != 1 {
			t.Fatalf("stats %+v: want the member parked", st)
		}

		member.write(ping) // replayed from its address
		forged := member.sealed(appendEmpty(nil, msgPing))
		forged[len(forged)-1] ^= 1
		member.write(forged)
		member.write(appendEmpty(nil, msgPing)) // untagged
		stranger := memPeer(t, n, 5000)
		stranger.write(ping) // from another address
		if d := stranger.attach(9, nil); d.typ != msgError || d.code != codeKey {
			t.Errorf("hello for the parked node without the key: %+v, want a key error", d)
		}
		if d := memPeer(t, n, 5001).attach(9, &other); d.typ != msgError || d.code != codeKey {
			t.Errorf("hello for the parked node under another key: %+v, want a key error", d)
		}
		if err := b.Transmit([]byte("not for a parked node")); err != nil {
			t.Fatal(err)
		}
		wantEvents(t, b.Events(), phy.TxDone)
		if typ := member.readType(time.Second); typ != 0 {
			t.Errorf("the parked member got type %d, want nothing", typ)
		}
		synctest.Wait()
		st := srv.UDPStats()
		if st.Resumed != 0 || st.Replays != 1 || st.AuthFailures != 4 || st.UnknownSource != 1 || !u.byNode[9].parked {
			t.Fatalf("stats %+v: want the member still parked, 1 replay, 4 auth failures (forged, untagged, two hellos), 1 unknown source", st)
		}

		member.write(member.sealed(appendEmpty(nil, msgPing)))
		if typ := member.readType(time.Second); typ != msgState {
			t.Fatalf("answer to the member's ping: type %d, want state", typ)
		}
		if err := b.Transmit([]byte("back")); err != nil {
			t.Fatal(err)
		}
		var got []msgType
		for typ := member.readType(time.Second); typ != 0; typ = member.readType(time.Second) {
			got = append(got, typ)
		}
		if want := []msgType{msgCarrierOn, msgCarrierOff, msgReceived}; !slices.Equal(got, want) {
			t.Errorf("the resumed member got %v, want %v", got, want)
		}
		if st := srv.UDPStats(); st.Resumed != 1 || st.Expired != 0 {
			t.Errorf("stats %+v: want 1 resumed, none expired", st)
		}
	})
}

// TestUDPSessionsBoundedUnderHelloFlood: hellos with valid cookies from
// 762 addresses, three for each node id, the second while the first is
// live and the third once it is parked: a node id has one session at
// most, so the server never holds more than 254, parked ones included.
func TestUDPSessionsBoundedUnderHelloFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		srv, err := NewServer(Config{BitRate: 96000}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		u := memServe(t, srv, n, 0)
		check := func(round int) {
			t.Helper()
			synctest.Wait()
			if len(u.sessions) > 254 {
				t.Fatalf("round %d: %d sessions, bound 254", round, len(u.sessions))
			}
			for addr, ss := range u.sessions {
				if u.byNode[ss.id] != ss {
					t.Fatalf("round %d: session of %v for node %d not indexed", round, addr, ss.id)
				}
			}
		}
		port := uint16(10000)
		for round := range 3 {
			for node := 1; node < 255; node++ {
				port++
				memPeer(t, n, port).attach(NodeID(node), nil)
			}
			check(round)
			if round == 1 {
				time.Sleep(8 * time.Second) // all parked
				check(round)
			}
		}
		if st := srv.UDPStats(); st.Sessions != 508 || st.Squats != 254 || st.Parked != 254 || st.Expired != 254 || len(u.sessions) != 254 {
			t.Errorf("stats %+v, %d sessions: want 508 opened, 254 squats, 254 parked and ended by a new hello, 254 left", st, len(u.sessions))
		}
	})
}

// TestUDPParkWaitsForBurst: at 1200 bit/s a 2000-byte burst is on air for
// about 13 s; a client stopped just after sending it is parked only once it
// has ended, so the others receive it whole, though the server wakes
// meanwhile to park another silent client.
func TestUDPParkWaitsForBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		srv, err := NewServer(Config{BitRate: 1200}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		memServe(t, srv, n, 0)
		clk := newStopClock()
		a := memDial(t, n, 4001, 4, nil, clk)
		b := memDial(t, n, 4002, 5, nil, nil)
		if d := memPeer(t, n, 4003).attach(6, nil); d.typ != msgWelcome { // then silent
			t.Fatalf("peer: %+v, want welcome", d)
		}
		long := string(make([]byte, 2000))
		if err := a.Transmit([]byte(long)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		clk.stop()
		var got []phy.EventKind
		for range 3 {
			select {
			case ev := <-b.Events():
				got = append(got, ev.Kind)
				if ev.Kind == phy.Received && len(ev.Data) != len(long) {
					t.Errorf("b received %d bytes, want %d", len(ev.Data), len(long))
				}
			case <-time.After(20 * time.Second):
			}
		}
		if want := []phy.EventKind{phy.CarrierOn, phy.CarrierOff, phy.Received}; !slices.Equal(got, want) {
			t.Fatalf("b's events: %v, want %v", got, want)
		}
		time.Sleep(10 * time.Second)
		clk.cont()
		if got := drain(a.Events(), 30*time.Second); !slices.Equal(got, []phy.EventKind{phy.TxDone}) {
			t.Errorf("a's events after the stop: %v, want its TxDone only", got)
		}
		if st := srv.UDPStats(); st.Parked != 2 || st.Resumed != 1 {
			t.Errorf("stats %+v: want 2 parked (a after its burst, the silent peer), a resumed", st)
		}
	})
}
