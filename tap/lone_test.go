//go:build linux

package tap

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestShaperLonePackets: one datagram at a time (a 200-byte echo behind
// a slow link, issue 14), each read and taken before the next is sent,
// with the daemon's grant loop and no leak to fall back on. Every packet
// must leave the qdisc on its credit: a lone packet on an idle link
// waits for no grant. (The Dire Wolf echo study saw about one packet in
// twenty reach the link 0.45 s or 1.0 s late; this rules out the credit.)
func TestShaperLonePackets(t *testing.T) {
	d, s, k := creditRig(t, "slt-lone0", 16)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: peerPort, Addr: peerIP.As4()}); err != nil {
		t.Fatal(err)
	}
	frames := make(chan bool, 64) // true: a kick frame
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := d.Read(buf)
			if err != nil {
				close(frames)
				return
			}
			frames <- IsKick(buf[:n])
		}
	}()
	g := &daemonGrants{s: s, k: k}
	payload := make([]byte, 200)
	const n = 40
	var worst, slowGrant time.Duration
	kicks := 0
	for i := range n {
		start := time.Now()
		if _, err := unix.Write(fd, payload); err != nil && !errors.Is(err, unix.EAGAIN) {
			t.Fatal(err)
		}
		failSafe := time.After(5 * time.Second) // the leak is hours away: a stall, not a measurement
	wait:
		for {
			select {
			case kick, ok := <-frames:
				if !ok {
					t.Fatal("tap closed")
				}
				if kick {
					kicks++
					continue
				}
				break wait
			case <-failSafe:
				t.Fatalf("packet %d of %d: not out of the qdisc after 5 s (the credit ran dry)", i+1, n)
			}
		}
		worst = max(worst, time.Since(start))
		t0 := time.Now()
		g.read(t)
		slowGrant = max(slowGrant, time.Since(t0))
		time.Sleep(time.Duration(i%5) * 20 * time.Millisecond) // the echo's pause, varied
	}
	t.Logf("%d lone packets, each out of the qdisc at once (slowest %v from send to read; slowest grant and kick %v), %d kick frames, %d kicks failed", n, worst, slowGrant, kicks, g.kickErrs)
}
