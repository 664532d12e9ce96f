package sim

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/phy/sim/medium"
)

// TestUDPHelloAfterClockStepBack: a keyed client whose clock stepped back
// dials again with a lower hello counter: it is let in once its cookie is
// of a newer slot than the last hello accepted for its node id (at most a
// slot later), and no hello accepted before can be replayed. The old
// medium dropped its hellos as replays until the medium restarted.
func TestUDPHelloAfterClockStepBack(t *testing.T) {
	key := auth.Key{4, 4}
	ns := testNS(t)
	pc := udpListen(t, ns, "127.0.0.1:0")
	var cnt udpCounters
	u := newUDPServer(pc, 96000, &key, &cnt, newComplaintLimiter(complaintEvery), zerolog.Nop())
	m, err := medium.New(Config{BitRate: 96000})
	if err != nil {
		t.Fatal(err)
	}
	var conns [256]attachment
	from := netip.MustParseAddrPort("127.0.0.1:9") // writes to it go nowhere
	t0 := time.Unix(60*30_000_000, 0)              // the start of a cookie slot
	hello := func(nonce byte, ctr uint64, cookieAt time.Time) []byte {
		b := appendDatagram(nil, &datagram{message: message{typ: msgHello, version: udpVersion, node: 9},
			nonce: [nonceLen]byte{nonce}, cookie: u.jar.make(cookieAt, from)})
		return newTagger(helloKey(&key)).seal(b, b, dirClient, ctr)
	}
	say := func(at time.Time, b []byte) {
		t.Helper()
		d, err := parseDatagram(b)
		if err != nil {
			t.Fatal(err)
		}
		u.handle(at, m, &conns, from, &d)
	}
	session := func() byte {
		if ss := u.sessions[from]; ss != nil {
			return ss.cnonce[0]
		}
		return 0
	}

	first := hello(1, auth.CounterAt(t0), t0)
	say(t0, first)
	if session() != 1 {
		t.Fatalf("first hello: session of nonce %d, want 1", session())
	}
	// The client restarts with its clock an hour behind.
	back := t0.Add(-time.Hour)
	say(t0.Add(10*time.Second), hello(2, auth.CounterAt(back), t0.Add(10*time.Second)))
	if session() != 1 || cnt.replays.Load() != 1 {
		t.Fatalf("lower counter in the same cookie slot: session of nonce %d, %d replays; want nonce 1, 1 replay", session(), cnt.replays.Load())
	}
	later := t0.Add(70 * time.Second) // the next cookie slot
	again := hello(3, auth.CounterAt(back.Add(70*time.Second)), later)
	say(later, again)
	if session() != 3 {
		t.Fatalf("re-dial with a cookie of a newer slot: session of nonce %d, want 3 (%d replays)", session(), cnt.replays.Load())
	}
	// Replays of both accepted hellos, their cookies still valid.
	say(later.Add(5*time.Second), first)
	say(later.Add(5*time.Second), again)
	if session() != 3 || cnt.replays.Load() != 2 {
		t.Fatalf("replayed hellos: session of nonce %d, %d replays; want nonce 3, 2 replays (the repeat of the current hello is a lost welcome, answered again)", session(), cnt.replays.Load())
	}
}
