package sim

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/phytest"
)

// rawPeer speaks the UDP protocol by hand from a socket of its own: a
// spoofer, a squatter, an injector.
type rawPeer struct {
	t      *testing.T
	c      net.Conn
	buf    []byte
	nonce  [nonceLen]byte
	cookie [cookieLen]byte
	sess   *tagger
	ctr    uint64
}

func newRawPeer(t *testing.T, ns string, to net.Addr) *rawPeer {
	p := &rawPeer{t: t, buf: make([]byte, maxDatagram+1)}
	inNS(t, ns, func() (err error) { p.c, err = net.DialUDP("udp", nil, to.(*net.UDPAddr)); return err })
	t.Cleanup(func() { p.c.Close() })
	p.nonce[0] = 0x5A
	return p
}

func (p *rawPeer) write(b []byte) {
	p.t.Helper()
	if _, err := p.c.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// read returns the next datagram within d, raw; ok false after d.
func (p *rawPeer) read(d time.Duration) ([]byte, bool) {
	p.c.SetReadDeadline(time.Now().Add(d))
	n, err := p.c.Read(p.buf)
	if err != nil {
		return nil, false
	}
	return append([]byte(nil), p.buf[:n]...), true
}

func (p *rawPeer) hello(node NodeID, key *auth.Key, ctr uint64) []byte {
	b := appendDatagram(nil, &datagram{message: message{typ: msgHello, version: udpVersion, node: node}, nonce: p.nonce, cookie: p.cookie})
	if key != nil {
		b = newTagger(helloKey(key)).seal(b, b, dirClient, ctr)
	}
	return b
}

// attach goes through the cookie exchange and says hello as node; it
// returns the server's answer to the hello with the cookie.
func (p *rawPeer) attach(node NodeID, key *auth.Key) datagram {
	p.t.Helper()
	ctr := auth.CounterAt(time.Now())
	p.write(p.hello(node, key, ctr))
	b, ok := p.read(waitFor)
	if !ok {
		p.t.Fatal("no answer to a hello")
	}
	d, err := parseDatagram(b)
	if err != nil || d.typ != msgCookie || d.nonce != p.nonce {
		p.t.Fatalf("answer to a hello without a cookie: %+v, %v; want our cookie", d, err)
	}
	p.cookie = d.cookie
	p.write(p.hello(node, key, ctr))
	b, ok = p.read(waitFor)
	if !ok {
		p.t.Fatal("no answer to a hello with the cookie")
	}
	d, err = parseDatagram(b)
	if err != nil {
		p.t.Fatal(err)
	}
	if d.typ == msgWelcome && key != nil {
		p.sess = newTagger(sessionKey(key, p.nonce, d.nonce, node))
	}
	return d
}

// sealed is msg with a trailer under the session key and the next counter.
func (p *rawPeer) sealed(msg []byte) []byte {
	p.ctr++
	return p.sess.seal(msg, msg, dirClient, p.ctr)
}

func newUDPServerForTest(t *testing.T, key *auth.Key, log zerolog.Logger) (*Server, *net.UDPConn, string) {
	ns := testNS(t)
	srv, err := NewServer(Config{BitRate: 96000}, log)
	if err != nil {
		t.Fatal(err)
	}
	if key != nil {
		srv.SetUDPKey(*key)
	}
	pc := udpListen(t, ns, "127.0.0.1:0")
	serveUDP(t, srv, pc)
	return srv, pc, ns
}

func udpDialKey(t *testing.T, ns, addr string, node NodeID, key *auth.Key) *UDPClient {
	t.Helper()
	var c *UDPClient
	inNS(t, ns, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		c, err = dialUDP(ctx, addr, node, key, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
		return err
	})
	t.Cleanup(func() { c.Close() })
	wantEvents(t, c.Events(), phy.Up)
	return c
}

// udpBurst sends data from a and checks that b hears it.
func udpBurst(t *testing.T, a, b *UDPClient, data []byte) {
	t.Helper()
	if err := a.Transmit(data); err != nil {
		t.Fatal(err)
	}
	evs := wantEvents(t, b.Events(), phy.CarrierOn, phy.CarrierOff, phy.Received)
	if !bytes.Equal(evs[2].Data, data) {
		t.Fatalf("received %q, want %q", evs[2].Data, data)
	}
	wantEvents(t, a.Events(), phy.TxDone)
}

// TestUDPSpoofedHelloGetsNoBursts: a hello from an address that never
// echoes the cookie (a spoofed victim) gets one cookie, no larger than the
// hello, and none of the bursts on the medium, whatever it pings. An old
// client's hello gets one short version error per 10 s. The old medium
// attached the spoofed address at once and sent it every burst.
func TestUDPSpoofedHelloGetsNoBursts(t *testing.T) {
	srv, pc, ns := newUDPServerForTest(t, nil, zerolog.Nop())
	addr := pc.LocalAddr().String()
	a, b := udpDialKey(t, ns, addr, 1, nil), udpDialKey(t, ns, addr, 2, nil)

	victim := newRawPeer(t, ns, pc.LocalAddr())
	hello := victim.hello(9, nil, 0)
	victim.write(hello)
	for range 5 {
		victim.write(appendEmpty(nil, msgPing))
	}
	old := newRawPeer(t, ns, pc.LocalAddr())
	oldHello := appendMessage(nil, &message{typ: msgHello, version: 1, node: 8})
	for range 6 {
		old.write(oldHello)
	}
	for i := range 3 {
		udpBurst(t, a, b, bytes.Repeat([]byte{byte(i)}, 500))
	}

	// Read the victim while the medium keeps sending the real member
	// bursts, so that one sent to the victim late is caught too.
	var got [][]byte
	for i := 3; ; i++ {
		if i < 8 {
			udpBurst(t, a, b, bytes.Repeat([]byte{byte(i)}, 500))
		}
		dg, ok := victim.read(300 * time.Millisecond)
		if !ok && i >= 8 {
			break
		}
		if ok {
			got = append(got, dg)
		}
	}
	if len(got) != 1 {
		t.Fatalf("the spoofed address got %d datagrams, want 1 (the cookie)", len(got))
	}
	if d, err := parseDatagram(got[0]); err != nil || d.typ != msgCookie || len(got[0]) > len(hello) {
		t.Errorf("the spoofed address got %d bytes (%+v, %v), want a cookie of at most the hello's %d", len(got[0]), d, err, len(hello))
	}
	var oldGot [][]byte
	for {
		dg, ok := old.read(300 * time.Millisecond)
		if !ok {
			break
		}
		oldGot = append(oldGot, dg)
	}
	for _, dg := range oldGot {
		if len(dg) > len(oldHello) {
			t.Errorf("the old client's %d-byte hello got a %d-byte answer: a reflector", len(oldHello), len(dg))
		}
	}
	st := srv.UDPStats()
	// A stall of the clients may make them say hello again: more cookies.
	if st.Sessions != 2 || st.Cookies < 3 || st.UnknownSource != 5 || st.OldVersion != 6 {
		t.Errorf("stats %+v: want 2 sessions, at least 3 cookies (a, b, the victim), 5 unknown, 6 old version", st)
	}
}

// TestUDPSquat: an address that passed the cookie exchange asks for the
// node id of a live member: refused, and the member keeps it. The old
// medium refused too, but without a cookie anybody could spoof it.
func TestUDPSquat(t *testing.T) {
	srv, pc, ns := newUDPServerForTest(t, nil, zerolog.Nop())
	addr := pc.LocalAddr().String()
	a, b := udpDialKey(t, ns, addr, 1, nil), udpDialKey(t, ns, addr, 2, nil)
	squatter := newRawPeer(t, ns, pc.LocalAddr())
	if d := squatter.attach(1, nil); d.typ != msgError || d.code != codeNodeInUse {
		t.Fatalf("squatter got %+v, want node in use", d)
	}
	squatter.write(appendEmpty(nil, msgPing)) // no session: dropped
	udpBurst(t, a, b, []byte("still mine"))
	udpBurst(t, b, a, []byte("still yours"))
	if st := srv.UDPStats(); st.Squats != 1 || st.Sessions != 2 {
		t.Errorf("stats %+v: want 1 squat, 2 sessions", st)
	}
}

// TestUDPKey: with a key, members authenticate; a client without the key
// is refused with a clear error, a hello under another key is refused, and
// a member's forged or replayed datagrams are dropped and counted. The old
// medium had no key: any datagram from a member's address was taken.
func TestUDPKey(t *testing.T) {
	key := auth.Key{1, 2, 3}
	other := auth.Key{9}
	srv, pc, ns := newUDPServerForTest(t, &key, zerolog.Nop())
	addr := pc.LocalAddr().String()
	a, b := udpDialKey(t, ns, addr, 1, &key), udpDialKey(t, ns, addr, 2, &key)
	udpBurst(t, a, b, []byte("keyed"))

	inNS(t, ns, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_, err := dialUDP(ctx, addr, 3, nil, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
		var rej *RejectError
		if !errors.As(err, &rej) || rej.Code != codeKey {
			t.Errorf("dial without the key: %v, want a key rejection", err)
		}
		return nil
	})
	wrong := newRawPeer(t, ns, pc.LocalAddr())
	if d := wrong.attach(4, &other); d.typ != msgError || d.code != codeKey {
		t.Errorf("hello under another key: %+v, want a key error", d)
	}

	inj := newRawPeer(t, ns, pc.LocalAddr())
	if d := inj.attach(9, &key); d.typ != msgWelcome {
		t.Fatalf("member 9: %+v, want welcome", d)
	}
	tx := func(seq uint16, s string) []byte {
		return appendDatagram(nil, &datagram{message: message{typ: msgUTransmit, data: []byte(s)}, seq: seq})
	}
	forged := inj.sealed(tx(1, "forged"))
	forged[len(forged)-1] ^= 1
	inj.write(forged)
	inj.write(tx(2, "untagged"))
	good := inj.sealed(tx(3, "nine"))
	inj.write(good)
	evs := wantEvents(t, b.Events(), phy.CarrierOn, phy.CarrierOff, phy.Received)
	if string(evs[2].Data) != "nine" {
		t.Fatalf("b received %q, want the authenticated burst", evs[2].Data)
	}
	wantEvents(t, a.Events(), phy.CarrierOn, phy.CarrierOff, phy.Received)
	inj.write(good) // replayed
	udpBurst(t, a, b, []byte("after"))
	st := srv.UDPStats()
	if st.AuthFailures < 4 || st.Replays != 1 {
		// Two tag failures from the injector; two hellos refused (no key,
		// another key), more if a stall made a client say hello again.
		t.Errorf("stats %+v: want at least 4 auth failures, 1 replay", st)
	}
	if ms := srv.Stats(); ms.Transmissions != 3 {
		t.Errorf("medium stats %+v: want 3 transmissions", ms)
	}
}

// TestUDPComplaintsRateLimited: 50 junk datagrams from one source make one
// log line; the rest are counted. The old medium logged each one.
func TestUDPComplaintsRateLimited(t *testing.T) {
	logs := &phytest.SyncBuffer{}
	srv, pc, ns := newUDPServerForTest(t, nil, zerolog.New(logs))
	p := newRawPeer(t, ns, pc.LocalAddr())
	for range 50 {
		p.write([]byte{0xFF, 0xFF})
	}
	deadline := time.Now().Add(waitFor)
	for srv.UDPStats().Junk < 50 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := srv.UDPStats()
	if n := strings.Count(logs.String(), "junk datagram"); n != 1 || st.Junk != 50 || st.Suppressed != 49 {
		t.Errorf("%d log lines, stats %+v: want 1 line, 50 junk, 49 suppressed", n, st)
	}
}

func TestComplaintLimiter(t *testing.T) {
	l := newComplaintLimiter(10 * time.Second)
	t0 := time.Unix(1000, 0)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	steps := []struct {
		at         time.Duration
		src        netip.Addr
		ok         bool
		suppressed int
	}{
		{0, a, true, 0},
		{time.Second, a, false, 0},
		{2 * time.Second, a, false, 0},
		{2 * time.Second, b, true, 0},
		{10 * time.Second, a, true, 2},
		{11 * time.Second, a, false, 0},
		{30 * time.Second, a, true, 1},
	}
	for i, s := range steps {
		ok, n := l.allow(t0.Add(s.at), s.src)
		if ok != s.ok || n != s.suppressed {
			t.Errorf("step %d: allow = %v, %d; want %v, %d", i, ok, n, s.ok, s.suppressed)
		}
	}
	// The table is bounded: new sources past it are suppressed until old
	// ones age out.
	for i := range maxComplainers {
		l.allow(t0.Add(31*time.Second), netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}))
	}
	if ok, _ := l.allow(t0.Add(32*time.Second), netip.MustParseAddr("198.51.100.250")); ok {
		t.Error("a new source allowed with the table full")
	}
	if ok, _ := l.allow(t0.Add(60*time.Second), netip.MustParseAddr("198.51.100.250")); !ok {
		t.Error("a new source refused after the table aged out")
	}
	if len(l.srcs) > maxComplainers {
		t.Errorf("%d sources remembered, bound %d", len(l.srcs), maxComplainers)
	}
}

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	for i, s := range []struct {
		c  uint64
		ok bool
	}{{0, false}, {1, true}, {1, false}, {3, true}, {2, true}, {2, false}, {100, true}, {36, false}, {37, true}, {37, false}, {200, true}, {99, false}} {
		if got := w.accept(s.c); got != s.ok {
			t.Errorf("step %d: accept(%d) = %v, want %v", i, s.c, got, s.ok)
		}
	}
}

func TestCookie(t *testing.T) {
	var j cookieJar
	j.secret[0] = 1
	now := time.Unix(6000, 0)
	a := netip.MustParseAddrPort("192.0.2.1:7300")
	c := j.make(now, a)
	for _, tc := range []struct {
		desc  string
		at    time.Time
		addr  netip.AddrPort
		valid bool
	}{
		{"now", now, a, true},
		{"next slot", now.Add(cookieSlot), a, true},
		{"two slots on", now.Add(2 * cookieSlot), a, false},
		{"another port", now, netip.MustParseAddrPort("192.0.2.1:7301"), false},
		{"another address", now, netip.MustParseAddrPort("192.0.2.2:7300"), false},
	} {
		if got := j.valid(tc.at, tc.addr, c); got != tc.valid {
			t.Errorf("%s: valid = %v, want %v", tc.desc, got, tc.valid)
		}
	}
	if j.valid(now, a, [cookieLen]byte{}) {
		t.Error("the zero cookie is valid")
	}
}

func BenchmarkDatagramKeyed(b *testing.B) {
	key := auth.Key{1}
	tg := newTagger(sessionKey(&key, [nonceLen]byte{1}, [nonceLen]byte{2}, 3))
	d := datagram{message: message{typ: msgUTransmit, data: bytes.Repeat([]byte{1}, 256)}, seq: 42}
	buf := make([]byte, 0, maxDatagram)
	b.ReportAllocs()
	b.SetBytes(256)
	var ctr uint64
	for b.Loop() {
		ctr++
		buf = appendDatagram(buf[:0], &d)
		buf = tg.seal(buf, buf, dirClient, ctr)
		got, err := parseDatagram(buf)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := tg.open(&got, dirClient); !ok {
			b.Fatal("tag")
		}
	}
}

func TestParseUDPTarget(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want UDPTarget
		ok   bool
	}{
		{"198.51.100.1:7300", UDPTarget{Addr: "198.51.100.1:7300"}, true},
		{"198.51.100.1:7300?key=/etc/slided/medium.key", UDPTarget{Addr: "198.51.100.1:7300", KeyFile: "/etc/slided/medium.key"}, true},
		{"[fd00::1]:7300?key=k", UDPTarget{Addr: "[fd00::1]:7300", KeyFile: "k"}, true},
		{"198.51.100.1", UDPTarget{}, false},
		{"198.51.100.1:7300?key=", UDPTarget{}, false},
		{"198.51.100.1:7300?key=a&key=b", UDPTarget{}, false},
		{"198.51.100.1:7300?keyfile=a", UDPTarget{}, false},
		{"198.51.100.1:7300?%zz", UDPTarget{}, false},
	} {
		got, err := ParseUDPTarget(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseUDPTarget(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
