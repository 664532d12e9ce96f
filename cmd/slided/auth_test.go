package main

// The pre-shared key through real daemons: replays after a receiver restart,
// a second station with our node id, and a key changeover (docs/link-arq.md,
// "Kind 4").

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/control"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/internal/lab"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/sim"
)

// recorder is a station on the simulated medium that records every burst it
// hears and can put recorded bursts back on air: an attacker with a radio.
type recorder struct {
	c      *sim.Client
	mu     sync.Mutex
	bursts [][]byte
	rec    bool
	txDone chan struct{}
	done   chan struct{}
	busy   bool      // carrier sensed (mu)
	idleAt time.Time // when the carrier last dropped (mu)
}

func startRecorder(t *testing.T, p *lab.Pair, node sim.NodeID) *recorder {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sim.Dial(ctx, filepath.Join(p.Cfg.Dir, "medium.sock"), node, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{c: c, rec: true, txDone: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ev := range c.Events() {
			switch ev.Kind {
			case phy.Received:
				r.mu.Lock()
				if r.rec {
					r.bursts = append(r.bursts, ev.Data)
				}
				r.mu.Unlock()
			case phy.CarrierOn, phy.CarrierOff:
				r.mu.Lock()
				r.busy = ev.Kind == phy.CarrierOn
				r.idleAt = time.Now()
				r.mu.Unlock()
			case phy.TxDone:
				select {
				case r.txDone <- struct{}{}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-r.done
	})
	return r
}

// stop ends the recording and returns what was heard.
func (r *recorder) stop() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec = false
	return r.bursts
}

// replay puts bursts on air one after the other, each after the last one's
// TxDone and once the channel has been idle for 50 ms (the daemon may answer).
func (r *recorder) replay(t *testing.T, bursts [][]byte) {
	t.Helper()
	for _, b := range bursts {
		for deadline := time.Now().Add(10 * time.Second); ; {
			r.mu.Lock()
			idle := !r.busy && time.Since(r.idleAt) > 50*time.Millisecond
			r.mu.Unlock()
			if idle {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("replay: channel busy for 10 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := r.c.Transmit(b); err != nil {
			t.Fatalf("replay: %v", err)
		}
		select {
		case <-r.txDone:
		case <-time.After(10 * time.Second):
			t.Fatal("replay: no TxDone")
		}
	}
}

// sealedFrom counts the sealed frames from node src in bursts.
func sealedFrom(bursts [][]byte, src framing.NodeID) int {
	n := 0
	d := framing.NewDecoder(4096)
	for _, b := range bursts {
		d.Feed(b, func(h framing.Header, _ []byte) {
			if h.Src == src && h.Kind == framing.KindSealed {
				n++
			}
		})
	}
	return n
}

// settle waits until daemon i has received n bursts from the modem, or
// until its count has not moved for 2 s (a burst that met the daemon's own
// transmission is lost), and returns its status.
func settle(t *testing.T, p *lab.Pair, i int, n uint64) *control.Status {
	t.Helper()
	last, since := uint64(0), time.Now()
	for deadline := time.Now().Add(30 * time.Second); ; {
		st := cliStatus(t, p, i)
		if st.Bridge.RxBursts >= n || time.Since(since) > 2*time.Second || time.Now().After(deadline) {
			return st
		}
		if st.Bridge.RxBursts != last {
			last, since = st.Bridge.RxBursts, time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// keyArgs gives each daemon the key file(s) and its own state directory.
func keyArgs(state string, keys ...string) func(i int) []string {
	return func(i int) []string {
		return []string{"-key", keys[i%len(keys)], "-state-dir", filepath.Join(state, fmt.Sprintf("node%d", i+1))}
	}
}

// TestReplayAfterReceiverRestart: an attacker records node 1's sealed
// frames to node 2 (pings, with ARQ: First fragments among them), node 2 is
// restarted, node 1 is gone, and the attacker replays the recording in
// order. Nothing may reach node 2's TAP. Before the receive windows were
// persisted, the restarted node took the first replayed counter as node 1's
// window and delivered the rest.
func TestReplayAfterReceiverRestart(t *testing.T) {
	keys := t.TempDir()
	k := writeKey(t, keys, "net.key", 0x5a)
	l, p := startPairConfig(t, lab.PairConfig{Rate: 115200, Subnet: "192.0.2", NodeArgs: keyArgs(t.TempDir(), k)})
	r := startRecorder(t, p, 200)
	if got := pingCount(t, l, p.NS[0], p.Addr[1], 3, 3*time.Second); got < 2 {
		t.Fatalf("ping with the key: %d of 3 replies", got)
	}
	bursts := r.stop()
	n := sealedFrom(bursts, 1)
	if n < 3 {
		t.Fatalf("recorded %d sealed frames from node 1 in %d bursts", n, len(bursts))
	}
	if err := p.Daemons[0].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.RestartNode(p, 1); err != nil {
		t.Fatal(err)
	}
	base := cliStatus(t, p, 1).Bridge.RxBursts
	r.replay(t, bursts)
	st := settle(t, p, 1, base+uint64(len(bursts))).Bridge
	t.Logf("replayed %d bursts (%d sealed frames from node 1): node2 drops %+v", len(bursts), n, st.Drops)
	if st.RxFrames != 0 {
		t.Errorf("node2 wrote %d replayed frames to its TAP", st.RxFrames)
	}
	if st.Drops.Replayed < uint64(n) {
		t.Errorf("node2 refused %d frames as replays, want the %d sealed frames of node 1", st.Drops.Replayed, n)
	}
}
