package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/vishvananda/netns"

	"github.com/slided/slided/phy"
)

// The UDP tests run inside a network namespace of their own, on its
// loopback: nothing reaches the host's network.

var nsCount atomic.Int32

// testNS creates a network namespace with its loopback up and removes it at
// the end of the test.
func testNS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("UDP transport tests create a network namespace: run them as root")
	}
	name := fmt.Sprintf("slided-simudp-%d-%d", os.Getpid(), nsCount.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	return name
}

// inNS runs fn on a thread switched into ns; sockets it opens stay there.
func inNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func udpListen(t *testing.T, ns, addr string) *net.UDPConn {
	var pc *net.UDPConn
	inNS(t, ns, func() (err error) { pc, err = ListenUDP(addr); return err })
	return pc
}

func udpDial(t *testing.T, ns, addr string, node NodeID) *UDPClient {
	t.Helper()
	var c *UDPClient
	inNS(t, ns, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err = dialUDP(ctx, addr, node, nil, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// serveUDP runs a server on pc until the test ends or stop is called.
func serveUDP(t *testing.T, srv *Server, pc *net.UDPConn) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeUDP(ctx, pc) }()
	var once atomic.Bool
	stop = func() {
		if once.Swap(true) {
			return
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeUDP: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// nextEvent waits for an event; the bound only turns a hang into a failure.
func nextEvent(t *testing.T, ch <-chan phy.Event) phy.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("events closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return phy.Event{}
}

func wantEvents(t *testing.T, ch <-chan phy.Event, kinds ...phy.EventKind) []phy.Event {
	t.Helper()
	var got []phy.Event
	for _, k := range kinds {
		ev := nextEvent(t, ch)
		if ev.Kind != k {
			t.Fatalf("event %d: got %v, want %v (so far %v)", len(got), ev.Kind, k, got)
		}
		got = append(got, ev)
	}
	return got
}

func TestParseDatagram(t *testing.T) {
	burst := bytes.Repeat([]byte{0xAB}, MaxFrame)
	tests := []struct {
		desc string
		in   []byte
		want datagram // checked when ok
		ok   bool
	}{
		{desc: "hello of version 1", in: []byte{0, 7, 1, 'S', 'L', 'S', 'M', 1, 7}, ok: true,
			want: datagram{message: message{typ: msgHello, version: 1, node: 7}, old: true}},
		{desc: "hello", in: append([]byte{0, 39, 1, 'S', 'L', 'S', 'M', 2, 7}, append(n16(1), n16(2)...)...), ok: true,
			want: datagram{message: message{typ: msgHello, version: 2, node: 7}, nonce: [16]byte(n16(1)), cookie: [16]byte(n16(2))}},
		{desc: "hello with a trailer", in: append(append([]byte{0, 39, 1, 'S', 'L', 'S', 'M', 2, 7}, append(n16(1), n16(2)...)...), make([]byte, trailerLen)...), ok: true,
			want: datagram{message: message{typ: msgHello, version: 2, node: 7}, nonce: [16]byte(n16(1)), cookie: [16]byte(n16(2))}},
		{desc: "welcome", in: append([]byte{0, 24, 2, 2, 0, 0, 0x25, 0x80, 0x10, 0}, n16(3)...), ok: true,
			want: datagram{message: message{typ: msgWelcome, version: 2, bitRate: 9600, maxFrame: 4096}, nonce: [16]byte(n16(3))}},
		{desc: "cookie", in: append([]byte{0, 33, 15}, append(n16(4), n16(5)...)...), ok: true,
			want: datagram{message: message{typ: msgCookie}, nonce: [16]byte(n16(4)), cookie: [16]byte(n16(5))}},
		{desc: "welcome of version 1", in: []byte{0, 8, 2, 1, 0, 0, 0x25, 0x80, 0x10, 0}},
		{desc: "hello of another length", in: []byte{0, 8, 1, 'S', 'L', 'S', 'M', 2, 7, 0}},
		{desc: "cookie too short", in: append([]byte{0, 32, 15}, make([]byte, 31)...)},
		{desc: "a trailer too short", in: []byte{0, 1, 11, 1, 2, 3}},
		{desc: "transmit with seq", in: []byte{0, 6, 9, 0x12, 0x34, 'a', 'b', 'c'}, ok: true,
			want: datagram{message: message{typ: msgUTransmit, data: []byte("abc")}, seq: 0x1234}},
		{desc: "largest transmit", in: append([]byte{0x10, 3, 9, 0, 1}, burst...), ok: true,
			want: datagram{message: message{typ: msgUTransmit, data: burst}, seq: 1}},
		{desc: "tx done", in: []byte{0, 3, 10, 0xFF, 0xFE}, ok: true,
			want: datagram{message: message{typ: msgUTxDone}, seq: 0xFFFE}},
		{desc: "state", in: []byte{0, 4, 12, 1, 0, 9}, ok: true,
			want: datagram{message: message{typ: msgState}, carrier: true, seq: 9}},
		{desc: "ping", in: []byte{0, 1, 11}, ok: true, want: datagram{message: message{typ: msgPing}}},
		{desc: "received", in: []byte{0, 2, 4, 'x'}, ok: true,
			want: datagram{message: message{typ: msgReceived, data: []byte("x")}}},
		{desc: "error", in: []byte{0, 3, 8, 6, 'z'}, ok: true,
			want: datagram{message: message{typ: msgError, code: 6, data: []byte("z")}}},
		{desc: "empty", in: nil},
		{desc: "two bytes", in: []byte{0, 1}},
		{desc: "length says more", in: []byte{0, 2, 11}},
		{desc: "length says less (two messages)", in: []byte{0, 1, 11, 0, 1, 11}},
		{desc: "stream transmit", in: []byte{0, 2, 3, 'a'}},
		{desc: "stream tx done", in: []byte{0, 1, 7}},
		{desc: "transmit without burst", in: []byte{0, 3, 9, 0, 1}},
		{desc: "transmit too long", in: append([]byte{0x10, 4, 9, 0, 1}, append(burst, 0)...)},
		{desc: "received too long", in: append([]byte{0x10, 2, 4}, append(burst, 0)...)},
		{desc: "state with carrier 2", in: []byte{0, 4, 12, 2, 0, 0}},
		{desc: "ping with body", in: []byte{0, 2, 11, 0}},
		{desc: "unknown type", in: []byte{0, 1, 99}},
		{desc: "bad magic", in: []byte{0, 7, 1, 'S', 'L', 'S', 'X', 1, 7}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := parseDatagram(tc.in)
			if !tc.ok {
				if !errors.Is(err, errBadMessage) {
					t.Fatalf("got %+v, %v; want errBadMessage", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.typ != tc.want.typ || got.seq != tc.want.seq || got.carrier != tc.want.carrier ||
				got.version != tc.want.version || got.node != tc.want.node || got.bitRate != tc.want.bitRate ||
				got.maxFrame != tc.want.maxFrame || got.code != tc.want.code || !bytes.Equal(got.data, tc.want.data) ||
				got.old != tc.want.old || got.nonce != tc.want.nonce || got.cookie != tc.want.cookie {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if enc := append(appendDatagram(nil, &got), got.trailer...); !bytes.Equal(enc, tc.in) {
				t.Fatalf("re-encoded % x, want % x", enc, tc.in)
			}
		})
	}
}

// n16 is 16 bytes of v.
func n16(v byte) []byte { return bytes.Repeat([]byte{v}, 16) }

func FuzzDatagramDecoder(f *testing.F) {
	for _, s := range [][]byte{
		{0, 7, 1, 'S', 'L', 'S', 'M', 1, 7}, {0, 6, 9, 0x12, 0x34, 'a', 'b', 'c'}, {0, 3, 10, 0, 1},
		{0, 4, 12, 1, 0, 9}, {0, 1, 11}, {0, 1, 13}, {0, 3, 8, 6, 'z'}, {0, 8, 2, 1, 0, 0, 0x25, 0x80, 0x10, 0},
		append([]byte{0, 39, 1, 'S', 'L', 'S', 'M', 2, 7}, append(n16(1), n16(2)...)...),
		append([]byte{0, 24, 2, 2, 0, 0, 0x25, 0x80, 0x10, 0}, n16(3)...),
		append([]byte{0, 33, 15}, append(n16(4), n16(5)...)...),
		append([]byte{0, 1, 11}, make([]byte, trailerLen)...),
		append([]byte{0, 6, 9, 0x12, 0x34, 'a', 'b', 'c'}, bytes.Repeat([]byte{6}, trailerLen)...),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseDatagram(b)
		if err != nil {
			if !errors.Is(err, errBadMessage) {
				t.Fatalf("error %v does not wrap errBadMessage", err)
			}
			return
		}
		if enc := append(appendDatagram(nil, &d), d.trailer...); !bytes.Equal(enc, b) {
			t.Fatalf("round trip: % x became % x", b, enc)
		}
	})
}

func TestKeepalive(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		desc        string
		heard, sent time.Time
		now         time.Time
		dead, ping  bool
		next        time.Time
	}{
		{desc: "just heard and pinged", heard: ms(0), sent: ms(0), now: ms(10), next: ms(250)},
		{desc: "ping due", heard: ms(0), sent: ms(0), now: ms(250), ping: true, next: ms(250)},
		{desc: "silent but not yet dead", heard: ms(0), sent: ms(1900), now: ms(1999), next: ms(2000)},
		{desc: "dead at the timeout", heard: ms(0), sent: ms(1900), now: ms(2000), dead: true, next: ms(2000)},
		{desc: "fresh session pings at once", heard: ms(0), now: ms(0), ping: true, next: time.Time{}.Add(250 * time.Millisecond)},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			k := keepalive{interval: 250 * time.Millisecond, timeout: 2 * time.Second, heardAt: tc.heard, sentAt: tc.sent}
			if got := k.dead(tc.now); got != tc.dead {
				t.Errorf("dead = %v, want %v", got, tc.dead)
			}
			if got := k.pingDue(tc.now); got != tc.ping {
				t.Errorf("pingDue = %v, want %v", got, tc.ping)
			}
			if got := k.next(); !got.Equal(tc.next) {
				t.Errorf("next = %v, want %v", got, tc.next)
			}
		})
	}
}

// TestUDPServerBurst: two clients over UDP hear each other, as over the
// Unix socket; junk and strangers are counted and change nothing.
func TestUDPServerBurst(t *testing.T) {
	ns := testNS(t)
	srv, err := NewServer(Config{BitRate: 96000}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	pc := udpListen(t, ns, "127.0.0.1:0")
	addr := pc.LocalAddr().String()
	serveUDP(t, srv, pc)
	a, b := udpDial(t, ns, addr, 1), udpDial(t, ns, addr, 2)
	wantEvents(t, a.Events(), phy.Up)
	wantEvents(t, b.Events(), phy.Up)
	if got := a.Info(); got.BitRate != 96000 || got.MaxFrame != MaxFrame {
		t.Fatalf("info %+v", got)
	}

	// Junk and a stranger's ping from a third socket.
	var junk *net.UDPConn
	inNS(t, ns, func() (err error) { junk, err = net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr)); return err })
	defer junk.Close()
	for _, dg := range [][]byte{{0xFF}, {0, 9, 1, 2}, {0, 2, 3, 'a'}, {0, 1, 11}} {
		if _, err := junk.Write(dg); err != nil {
			t.Fatal(err)
		}
	}

	for i := range 3 {
		payload := bytes.Repeat([]byte{byte(i)}, 100+i)
		if err := a.Transmit(payload); err != nil {
			t.Fatal(err)
		}
		if err := a.Transmit(payload); !errors.Is(err, phy.ErrBusy) {
			t.Fatalf("second Transmit: %v, want ErrBusy", err)
		}
		evs := wantEvents(t, b.Events(), phy.CarrierOn, phy.CarrierOff, phy.Received)
		if !bytes.Equal(evs[2].Data, payload) {
			t.Fatalf("received % x, want % x", evs[2].Data, payload)
		}
		wantEvents(t, a.Events(), phy.TxDone)
	}
	st := srv.UDPStats()
	if st.Junk != 3 || st.UnknownSource != 1 || st.Sessions != 2 {
		t.Errorf("stats %+v: want 3 junk, 1 unknown source, 2 sessions", st)
	}
	// The owner publishes its counters just after it sent the events.
	ms := srv.Stats()
	for deadline := time.Now().Add(5 * time.Second); ms.Deliveries < 3 && time.Now().Before(deadline); ms = srv.Stats() {
		time.Sleep(10 * time.Millisecond)
	}
	if ms.Transmissions != 3 || ms.Deliveries != 3 {
		t.Errorf("medium stats %+v: want 3 transmissions and deliveries", ms)
	}

	// The node id is taken: a third client is refused.
	inNS(t, ns, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := dialUDP(ctx, addr, 1, nil, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
		if !errors.Is(err, ErrNodeInUse) {
			return fmt.Errorf("dial node 1 again: %v, want ErrNodeInUse", err)
		}
		return nil
	})
}

// fakeServer is the server's end played by the test, to lose messages on
// purpose.
type fakeServer struct {
	t    *testing.T
	pc   *net.UDPConn
	peer net.Addr
	buf  []byte
}

func (f *fakeServer) read() datagram {
	f.t.Helper()
	for {
		f.pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := f.pc.ReadFrom(f.buf)
		if err != nil {
			f.t.Fatal(err)
		}
		d, err := parseDatagram(f.buf[:n])
		if err != nil {
			f.t.Fatal(err)
		}
		f.peer = from
		if d.typ != msgPing {
			return d
		}
	}
}

func (f *fakeServer) send(d *datagram) {
	f.t.Helper()
	if _, err := f.pc.WriteTo(appendDatagram(nil, d), f.peer); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeServer) welcome() {
	f.t.Helper()
	if d := f.read(); d.typ != msgHello {
		f.t.Fatalf("got type %d, want hello", d.typ)
	}
	f.send(&datagram{message: message{typ: msgWelcome, version: udpVersion, bitRate: 9600, maxFrame: 1000}})
}

// TestUDPClientRepairsLoss: a lost carrier off and a lost tx done are made
// up from the state message; a transmit nobody answers is reported done
// after airtime + grace; a session ended by the server gives Down, Up.
func TestUDPClientRepairsLoss(t *testing.T) {
	ns := testNS(t)
	f := &fakeServer{t: t, pc: udpListen(t, ns, "127.0.0.1:0"), buf: make([]byte, maxDatagram)}
	defer f.pc.Close()
	dialed := make(chan *UDPClient, 1)
	go func() {
		var c *UDPClient
		h, _ := netns.GetFromName(ns)
		defer h.Close()
		runtime.LockOSThread()
		netns.Set(h)
		c, err := dialUDP(context.Background(), f.pc.LocalAddr().String(), 5, nil, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
		if err != nil {
			t.Error(err)
		}
		dialed <- c
	}()
	f.welcome()
	c := <-dialed
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	wantEvents(t, c.Events(), phy.Up)
	if got := c.Info().MaxFrame; got != 1000 {
		t.Fatalf("max frame %d, want 1000", got)
	}

	// Carrier on arrives, carrier off is lost, the state says off.
	f.send(&datagram{message: message{typ: msgCarrierOn}})
	wantEvents(t, c.Events(), phy.CarrierOn)
	f.send(&datagram{message: message{typ: msgState}, carrier: false})
	wantEvents(t, c.Events(), phy.CarrierOff)

	// A transmit whose tx done is lost; the state carries its seq.
	if err := c.Transmit([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	d := f.read()
	if d.typ != msgUTransmit || string(d.data) != "hello" {
		t.Fatalf("got %+v, want the transmit", d)
	}
	f.send(&datagram{message: message{typ: msgState}, seq: d.seq - 1})   // older: nothing
	f.send(&datagram{message: message{typ: msgUTxDone}, seq: d.seq + 7}) // not ours: nothing
	f.send(&datagram{message: message{typ: msgState}, seq: d.seq})
	wantEvents(t, c.Events(), phy.TxDone)

	// A transmit nobody answers.
	if err := c.Transmit([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	if d := f.read(); d.typ != msgUTransmit {
		t.Fatalf("got type %d, want transmit", d.typ)
	}
	wantEvents(t, c.Events(), phy.TxDone)

	// Junk from the server is ignored.
	f.pc.WriteTo([]byte{1, 2, 3, 4}, f.peer)

	// The server ends the session; the client says hello again.
	f.send(&datagram{message: message{typ: msgCarrierOn}})
	wantEvents(t, c.Events(), phy.CarrierOn)
	f.send(&datagram{message: *errorMessage(codeGone, "bye")})
	wantEvents(t, c.Events(), phy.CarrierOff, phy.Down)
	if err := c.Transmit([]byte("x")); !errors.Is(err, phy.ErrDown) {
		t.Fatalf("Transmit while down: %v, want ErrDown", err)
	}
	f.welcome()
	wantEvents(t, c.Events(), phy.Up)

	st := c.Stats()
	want := UDPClientStats{Junk: 1, CarrierRepairs: 1, TxDoneRepairs: 1, TxLost: 1, Downs: 1}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	c.Close()
	if d := f.read(); d.typ != msgBye {
		t.Errorf("got type %d on close, want bye", d.typ)
	}
}

// TestUDPServerRestart: the server stops (clients hear it go) and a new one
// on the same port takes them back; a silent client's session is parked,
// and its node id goes to a client on another address, which ends it.
func TestUDPServerRestart(t *testing.T) {
	ns := testNS(t)
	srv, err := NewServer(Config{BitRate: 96000}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	pc := udpListen(t, ns, "127.0.0.1:0")
	addr := pc.LocalAddr().String()
	stop := serveUDP(t, srv, pc)
	a, b := udpDial(t, ns, addr, 1), udpDial(t, ns, addr, 2)
	wantEvents(t, a.Events(), phy.Up)
	wantEvents(t, b.Events(), phy.Up)
	stop()
	wantEvents(t, a.Events(), phy.Down)
	wantEvents(t, b.Events(), phy.Down)

	srv2, err := NewServer(Config{BitRate: 96000}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	serveUDP(t, srv2, udpListen(t, ns, addr))
	wantEvents(t, a.Events(), phy.Up)
	wantEvents(t, b.Events(), phy.Up)
	if err := a.Transmit([]byte("again")); err != nil {
		t.Fatal(err)
	}
	evs := wantEvents(t, b.Events(), phy.CarrierOn, phy.CarrierOff, phy.Received)
	if string(evs[2].Data) != "again" {
		t.Fatalf("received %q", evs[2].Data)
	}

	// A client that says hello as node 9 and then nothing.
	var raw *net.UDPConn
	inNS(t, ns, func() (err error) { raw, err = net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr)); return err })
	defer raw.Close()
	hello := func(cookie [cookieLen]byte) []byte {
		return appendDatagram(nil, &datagram{message: message{typ: msgHello, version: udpVersion, node: 9}, cookie: cookie})
	}
	raw.Write(hello([cookieLen]byte{}))
	buf := make([]byte, maxDatagram)
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := raw.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDatagram(buf[:n])
	if err != nil || d.typ != msgCookie {
		t.Fatalf("answer to a hello without a cookie: %+v, %v; want a cookie", d, err)
	}
	raw.Write(hello(d.cookie))
	// DialUDP retries "node in use" for udpTimeout, by which time the
	// silent session is parked.
	c := udpDial(t, ns, addr, 9)
	wantEvents(t, c.Events(), phy.Up)
	if st := srv2.UDPStats(); st.Parked != 1 || st.Expired != 1 {
		t.Errorf("stats %+v: want 1 session parked, then ended", st)
	}
}

func BenchmarkDatagram(b *testing.B) {
	d := datagram{message: message{typ: msgUTransmit, data: bytes.Repeat([]byte{1}, 256)}, seq: 42}
	buf := make([]byte, 0, maxDatagram)
	b.ReportAllocs()
	b.SetBytes(256)
	for b.Loop() {
		buf = appendDatagram(buf[:0], &d)
		if _, err := parseDatagram(buf); err != nil {
			b.Fatal(err)
		}
	}
}
