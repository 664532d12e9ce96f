package sim

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/phytest"
	"github.com/slided/slided/phy/sim/medium"
)

// Real-time tests wait for events with generous timeouts but never assert
// durations.
const waitFor = 10 * time.Second

// checkGoroutines fails the test if goroutines started during it are still
// running once its cleanups are done. Call it first.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(waitFor)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

type testServer struct {
	srv  *Server
	log  *phytest.SyncBuffer
	path string
	stop func() // stops the current Serve and waits for it; idempotent
}

func startServer(t *testing.T, cfg Config, path string) *testServer {
	t.Helper()
	logs := &phytest.SyncBuffer{}
	srv, err := NewServer(cfg, zerolog.New(logs))
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ts := &testServer{srv: srv, log: logs, path: path}
	ts.serve(t)
	return ts
}

// serve (re)starts the server on its path.
func (ts *testServer) serve(t *testing.T) {
	t.Helper()
	ln, err := ListenUnix(ts.path)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.srv.Serve(ctx, ln) }()
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(ts.stop)
}

func dialNode(t *testing.T, path string, id NodeID) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := dial(ctx, path, id, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("Dial node %d: %v", id, err)
	}
	t.Cleanup(func() { c.Close() })
	expect(t, c, phy.Up)
	return c
}

// expect reads the next events of c and checks their kinds.
func expect(t *testing.T, c *Client, kinds ...phy.EventKind) []phy.Event {
	t.Helper()
	var got []phy.Event
	for _, want := range kinds {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("node %d: events closed; got %v, want %v", c.node, got, kinds)
			}
			got = append(got, ev)
			if ev.Kind != want {
				t.Fatalf("node %d: event %d is %v, want %v (so far %v)", c.node, len(got), ev.Kind, want, kindsOf(got))
			}
		case <-time.After(waitFor):
			t.Fatalf("node %d: no %v event; got %v", c.node, want, kindsOf(got))
		}
	}
	return got
}

func kindsOf(evs []phy.Event) []phy.EventKind {
	var k []phy.EventKind
	for _, ev := range evs {
		k = append(k, ev.Kind)
	}
	return k
}

// waitStats polls the server's counters until ok accepts them.
func waitStats(t *testing.T, srv *Server, ok func(medium.Stats) bool) medium.Stats {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		st := srv.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never settled: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var rtConfig = Config{BitRate: 9600, PropDelay: time.Millisecond, Seed: 1}

// burst sends data from a to each of to, and checks a's TxDone and each
// receiver's carrier and data.
func burst(t *testing.T, a *Client, data []byte, to ...*Client) {
	t.Helper()
	if err := a.Transmit(data); err != nil {
		t.Fatalf("Transmit: %v", err)
	}
	expect(t, a, phy.TxDone)
	for _, r := range to {
		evs := expect(t, r, phy.CarrierOn, phy.CarrierOff, phy.Received)
		if !bytes.Equal(evs[2].Data, data) {
			t.Errorf("node %d received % x, want % x", r.node, evs[2].Data, data)
		}
	}
}

func TestServerBurst(t *testing.T) {
	checkGoroutines(t)
	path := filepath.Join(t.TempDir(), "medium.sock")
	ts := startServer(t, rtConfig, path)
	n1, n2, n3 := dialNode(t, path, 1), dialNode(t, path, 2), dialNode(t, path, 3)
	if info := n1.Info(); info.BitRate != 9600 || info.MaxFrame != MaxFrame {
		t.Errorf("Info = %+v, want bit rate 9600, max frame %d", info, MaxFrame)
	}
	data := bytes.Repeat([]byte("slided "), 20)
	burst(t, n1, data, n2, n3)
	if err := n1.Transmit(make([]byte, MaxFrame+1)); !errors.Is(err, phy.ErrTooLarge) {
		t.Errorf("Transmit too long: err = %v, want phy.ErrTooLarge", err)
	}
	if err := n1.Transmit(nil); !errors.Is(err, phy.ErrEmpty) {
		t.Errorf("Transmit empty: err = %v, want phy.ErrEmpty", err)
	}
	// Node 3 answers; the sender's own buffer may be reused at once.
	reply := []byte("ack")
	burst(t, n3, reply, n1, n2)
	st := ts.srv.Stats()
	if st.Transmissions != 2 || st.Deliveries != 4 || st.Collisions != 0 {
		t.Errorf("stats = %+v, want 2 transmissions, 4 deliveries", st)
	}
}

func TestServerCollision(t *testing.T) {
	checkGoroutines(t)
	path := filepath.Join(t.TempDir(), "medium.sock")
	// 1200 bit/s: 100 bytes are 667 ms on air, so two bursts sent one after
	// the other overlap whatever the scheduler does.
	cfg := rtConfig
	cfg.BitRate = 1200
	ts := startServer(t, cfg, path)
	n1, n2, n3 := dialNode(t, path, 1), dialNode(t, path, 2), dialNode(t, path, 3)
	data := make([]byte, 100)
	if err := n1.Transmit(data); err != nil {
		t.Fatal(err)
	}
	if err := n1.Transmit(data); !errors.Is(err, phy.ErrBusy) {
		t.Errorf("second Transmit before TxDone: err = %v, want ErrBusy", err)
	}
	if err := n2.Transmit(data); err != nil {
		t.Fatal(err)
	}
	st := waitStats(t, ts.srv, func(st medium.Stats) bool { return st.Deliveries+st.Collisions >= 4 })
	if st.Deliveries != 0 || st.Collisions != 4 {
		t.Errorf("stats = %+v, want 0 deliveries and 4 collisions (1↔2 half duplex, both at 3)", st)
	}
	// Node 3 sensed the channel and got nothing; the sender got its TxDone.
	expect(t, n3, phy.CarrierOn, phy.CarrierOff)
	for _, c := range []*Client{n1, n2} {
		deadline := time.After(waitFor)
		for done := false; !done; {
			select {
			case ev := <-c.Events():
				if ev.Kind == phy.Received {
					t.Errorf("node %d received a collided burst", c.node)
				}
				done = ev.Kind == phy.TxDone
			case <-deadline:
				t.Fatalf("node %d: no TxDone", c.node)
			}
		}
	}
}

func TestServerDuplicateNode(t *testing.T) {
	checkGoroutines(t)
	path := filepath.Join(t.TempDir(), "medium.sock")
	ts := startServer(t, rtConfig, path)
	dialNode(t, path, 5)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := Dial(ctx, path, 5, zerolog.Nop())
	if err == nil {
		c.Close()
		t.Fatal("second Dial with node 5 succeeded")
	}
	if !errors.Is(err, ErrNodeInUse) || !errors.Is(err, ErrRejected) || ctx.Err() != nil {
		t.Errorf("Dial error = %v; want ErrNodeInUse and ErrRejected, before the deadline", err)
	}
	if _, err := Dial(ctx, path, 0, zerolog.Nop()); !errors.Is(err, ErrInvalidNode) {
		t.Errorf("Dial node 0: err = %v, want ErrInvalidNode", err)
	}
	// The server logs just after it wrote the rejection.
	for deadline := time.Now().Add(waitFor); !strings.Contains(ts.log.String(), "client rejected") && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(ts.log.String(), "client rejected") {
		t.Errorf("no log line for the rejection:\n%s", ts.log)
	}
}

func TestServerSurvivesJunk(t *testing.T) {
	checkGoroutines(t)
	path := filepath.Join(t.TempDir(), "medium.sock")
	ts := startServer(t, rtConfig, path)
	n1, n2 := dialNode(t, path, 1), dialNode(t, path, 2)

	rng := rand.New(rand.NewPCG(3, 4))
	junk := make([]byte, 2000)
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	hello := appendMessage(nil, &message{typ: msgHello, version: protoVersion, node: 9})
	helloFrom := func(id NodeID) []byte {
		return appendMessage(nil, &message{typ: msgHello, version: protoVersion, node: id})
	}
	for _, tc := range []struct {
		desc string
		send []byte
	}{
		{"random bytes", junk},
		{"hang-up inside the hello", hello[:5]},
		{"hang-up inside a transmit", append(helloFrom(9), 0, 100, byte(msgTransmit), 1, 2, 3)},
		{"carrier message from a client", append(helloFrom(10), appendEmpty(nil, msgCarrierOn)...)},
		{"wrong version", appendMessage(nil, &message{typ: msgHello, version: 99, node: 11})},
	} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("%s: dial: %v", tc.desc, err)
		}
		c.Write(tc.send) // the server may hang up first
		c.Close()
	}
	// The server still serves the others, and node 9 is free again.
	burst(t, n1, []byte("still here"), n2)
	waitStats(t, ts.srv, func(medium.Stats) bool { return strings.Count(ts.log.String(), `"level":"warn"`) >= 5 })
	// Node 9 is free again once the server has seen its connection end.
	waitStats(t, ts.srv, func(medium.Stats) bool {
		return strings.Contains(ts.log.String(), `"node":9,"message":"sim: client left"`)
	})
	n9 := dialNode(t, path, 9)
	burst(t, n9, []byte("nine"), n1, n2)
	for _, want := range []string{"client dropped before hello", "unexpected EOF", "unexpected message", "not supported"} {
		if !strings.Contains(ts.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, ts.log)
		}
	}
}

func TestServerDropsSlowReader(t *testing.T) {
	checkGoroutines(t)
	path := filepath.Join(t.TempDir(), "medium.sock")
	cfg := rtConfig
	cfg.BitRate = 100_000_000 // bursts take 0.3 ms: the queue fills fast
	ts := startServer(t, cfg, path)
	n1 := dialNode(t, path, 1)

	// Node 7 says hello and then never reads.
	lazy, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer lazy.Close()
	lazy.Write(appendMessage(nil, &message{typ: msgHello, version: protoVersion, node: 7}))

	data := make([]byte, MaxFrame)
	for i := 0; i < 1000 && !strings.Contains(ts.log.String(), "slow reader"); i++ {
		if err := n1.Transmit(data); err != nil {
			t.Fatalf("burst %d: %v", i, err)
		}
		expect(t, n1, phy.TxDone)
	}
	if !strings.Contains(ts.log.String(), "slow reader") {
		t.Fatalf("the lazy client was never dropped:\n%s", ts.log)
	}
	// Its connection is closed: reading it to the end terminates.
	lazy.SetReadDeadline(time.Now().Add(waitFor))
	buf := make([]byte, 1<<16)
	for {
		if _, err := lazy.Read(buf); err != nil {
			if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout") {
				t.Errorf("the lazy client's connection stayed open")
			}
			break
		}
	}
}

func TestClientReconnects(t *testing.T) {
	checkGoroutines(t)
	path := filepath.Join(t.TempDir(), "medium.sock")
	ts := startServer(t, rtConfig, path)
	n1, n2 := dialNode(t, path, 1), dialNode(t, path, 2)
	burst(t, n1, []byte("before"), n2)

	ts.stop()
	expect(t, n1, phy.Down)
	expect(t, n2, phy.Down)
	if err := n1.Transmit([]byte("void")); !errors.Is(err, phy.ErrDown) {
		t.Errorf("Transmit while down: err = %v, want ErrDown", err)
	}

	ts.serve(t) // same path, same server
	expect(t, n1, phy.Up)
	expect(t, n2, phy.Up)
	burst(t, n2, []byte("after"), n1)
}

func TestDialWaitsForServer(t *testing.T) {
	checkGoroutines(t)
	path := filepath.Join(t.TempDir(), "medium.sock")
	logs := &phytest.SyncBuffer{}
	type result struct {
		c   *Client
		err error
	}
	res := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		c, err := dial(ctx, path, 1, zerolog.New(logs), 10*time.Millisecond, 50*time.Millisecond)
		res <- result{c, err}
	}()
	// Start the server once the client has failed at least once.
	deadline := time.Now().Add(waitFor)
	for !strings.Contains(logs.String(), "cannot connect, retrying") {
		if time.Now().After(deadline) {
			t.Fatal("no log line for a failed attempt")
		}
		time.Sleep(5 * time.Millisecond)
	}
	startServer(t, rtConfig, path)
	r := <-res
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	expect(t, r.c, phy.Up)
	r.c.Close()
	if _, ok := <-r.c.Events(); ok {
		t.Errorf("events not closed after Close")
	}

	// With no server and a short context, Dial gives up with the context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, filepath.Join(t.TempDir(), "none.sock"), 1, zerolog.Nop()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial without server: err = %v, want context.DeadlineExceeded", err)
	}
}

func TestListenUnixStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "medium.sock")
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	// A second listener on a live path fails.
	if ln2, err := ListenUnix(path); err == nil {
		ln2.Close()
		t.Errorf("ListenUnix on a live socket succeeded")
	}
	// A socket file left behind (no unlink on close) is replaced.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln, err = ListenUnix(path)
	if err != nil {
		t.Fatalf("ListenUnix over a stale socket: %v", err)
	}
	ln.Close()
}

// TestServerVersions: a version 1 client (before the keep-alive) is still
// welcomed, in version 1, and may not ping; a version 2 client's ping gets
// a pong, and it may not send a frame message (version 3's bursts); a
// version 3 client may; a version 4 hello is refused with error 2.
func TestServerVersions(t *testing.T) {
	checkGoroutines(t)
	path := filepath.Join(t.TempDir(), "medium.sock")
	startServer(t, rtConfig, path)
	ping := appendEmpty(nil, msgPing)
	frame := appendData(nil, msgFrame, []byte("a"))
	transmit := appendData(nil, msgTransmit, []byte("b"))
	node := NodeID(3)
	for _, tc := range []struct {
		version uint8
		send    [][]byte  // after the hello
		want    []message // after the hello
	}{
		{1, [][]byte{ping}, []message{{typ: msgWelcome, version: 1, bitRate: 9600, maxFrame: MaxFrame}, {typ: msgError, code: codeProtocol}}},
		{2, [][]byte{ping}, []message{{typ: msgWelcome, version: 2, bitRate: 9600, maxFrame: MaxFrame}, {typ: msgPong}}},
		{2, [][]byte{frame, transmit}, []message{{typ: msgWelcome, version: 2, bitRate: 9600, maxFrame: MaxFrame}, {typ: msgError, code: codeProtocol}}},
		{3, [][]byte{ping, frame, transmit}, []message{{typ: msgWelcome, version: 3, bitRate: 9600, maxFrame: MaxFrame}, {typ: msgPong}, {typ: msgTxDone}}},
		{4, [][]byte{ping}, []message{{typ: msgError, code: codeVersion}}},
	} {
		node++ // the last case's node may not be detached yet
		nc, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(waitFor))
		nc.Write(appendMessage(nil, &message{typ: msgHello, version: tc.version, node: node}))
		for _, b := range tc.send {
			nc.Write(b)
		}
		mr := newMsgReader(nc)
		for i, want := range tc.want {
			got, err := mr.next()
			if err != nil {
				t.Fatalf("version %d, message %d: %v", tc.version, i, err)
			}
			if got.typ != want.typ || got.version != want.version || got.code != want.code || got.bitRate != want.bitRate {
				t.Errorf("version %d, message %d: %+v, want %+v", tc.version, i, got, want)
			}
		}
		nc.Close()
	}
}
