package kiss

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/phy/kiss/kissproto"
)

// TestReconnectBackoff: a TNC that takes the parameters and hangs up, again
// and again, then refuses. The waits between the attempts grow (a
// connection that dropped at once does not start the backoff again), each
// lies between its step and twice that (capped), and they are jittered, so
// that the clients of one TNC that went away do not all come back at the
// same instant; the old TNC waited exactly the steps. Close returns at once
// while the TNC waits out a backoff.
func TestReconnectBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const flaps = 6
		start := time.Now()
		var (
			mu sync.Mutex
			at []time.Duration // when each connection was made, after start
		)
		cfg := Defaults()
		cfg.Addr = "tnc.invalid:8001"
		cfg.Dial = func(context.Context, string, string) (net.Conn, error) {
			mu.Lock()
			defer mu.Unlock()
			at = append(at, time.Since(start))
			if len(at) > flaps {
				return nil, errors.New("connection refused")
			}
			near, far := net.Pipe()
			go func() {
				defer far.Close() // hang up after the parameters
				buf := make([]byte, 1)
				for n := 0; n < 10; { // 5 frames, 2 FENDs each
					if _, err := far.Read(buf); err != nil {
						return
					}
					if buf[0] == kissproto.FEND {
						n++
					}
				}
			}()
			return near, nil
		}
		tnc, err := Dial(context.Background(), cfg, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		mu.Lock()
		jittered := false
		for k := 1; k < len(at); k++ {
			gap, step := at[k]-at[k-1], reconnect.Step(k-1)
			if gap < step || gap > min(2*step, backoffMax) {
				t.Errorf("attempt %d came %v after the one before, want within [%v, %v] (attempts at %v)", k, gap, step, min(2*step, backoffMax), at)
			}
			jittered = jittered || gap != step
		}
		if len(at) < flaps+2 {
			t.Errorf("%d attempts in 3 minutes, want at least %d: %v", len(at), flaps+2, at)
		}
		if !jittered {
			t.Errorf("attempts at %v: every wait exactly its step, want them jittered", at)
		}
		mu.Unlock()
		closing := time.Now()
		tnc.Close()
		if d := time.Since(closing); d != 0 {
			t.Errorf("Close took %v while the TNC waited out a backoff, want no time", d)
		}
		for range tnc.Events() { // closed by Close
		}
	})
}
