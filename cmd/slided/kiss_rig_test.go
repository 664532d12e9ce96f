//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slided/slided/internal/direwolftest"
	"github.com/slided/slided/internal/lab"
	"github.com/slided/slided/phy/kiss"
	"github.com/slided/slided/phy/kiss/kissproto"
)

// aprsPosition is an APRS position report as an APRS client sends it: an
// AX.25 UI frame (control 03, PID F0) to APZSLD (an experimental APRS
// "tocall") from N0APR-i, numbered n; a source call no TNC and no daemon of
// the rig uses. 0xC0 and 0xDB in the text make the KISS escapes go both
// ways through both TNCs.
func aprsPosition(i, n int) []byte {
	b, err := kiss.UIFrame("APZSLD", fmt.Sprintf("N0APR-%d", i), fmt.Appendf(nil, "!4903.50N/07201.75W-slided rig %02d from %d \xc0\xdb", n, i))
	if err != nil {
		panic(err) // the calls are constants of the test
	}
	return b
}

// kissRecorder keeps every KISS data frame one TCP connection delivers (a
// client of a daemon's -kiss-server, or a monitor on a Dire Wolf's own KISS
// port). Its goroutine exits when the connection is closed (t.Cleanup).
type kissRecorder struct {
	c      net.Conn
	mu     sync.Mutex
	frames [][]byte
}

// dialRecorder connects to addr inside ns, retrying for up to 20 s, and
// starts recording. It sends nothing: a monitor on a Dire Wolf must not
// change the TNC's parameters, which are the daemon's.
func dialRecorder(t *testing.T, ns, addr string) *kissRecorder {
	t.Helper()
	dial := direwolftest.DialIn(ns)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := dial(context.Background(), "tcp", addr)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			r := &kissRecorder{c: c}
			go r.read()
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s: not reachable: %v", addr, ns, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *kissRecorder) read() {
	dec := kissproto.NewDecoder(4096)
	buf := make([]byte, 4096)
	for {
		n, err := r.c.Read(buf)
		dec.Feed(buf[:n], func(port, cmd byte, data []byte) {
			if port != 0 || cmd != kissproto.CmdData {
				return
			}
			r.mu.Lock()
			r.frames = append(r.frames, append([]byte(nil), data...))
			r.mu.Unlock()
		})
		if err != nil {
			return
		}
	}
}

func (r *kissRecorder) all() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.frames...)
}

// aprsFrom counts the frames among fs that are aprsPosition(from, k) for
// k < n, each once (duplicates counted apart), and reports which are
// missing.
func aprsFrom(fs [][]byte, from, n int) (got, dups int, missing []int) {
	seen := make([]bool, n)
	for _, f := range fs {
		for k := range n {
			if bytes.Equal(f, aprsPosition(from, k)) {
				if seen[k] {
					dups++
				} else {
					seen[k] = true
					got++
				}
			}
		}
	}
	for k, ok := range seen {
		if !ok {
			missing = append(missing, k)
		}
	}
	return got, dups, missing
}

// fetchMetrics fetches the daemon's metrics page inside ns from addr: the
// whole HTTP answer, status line and headers included.
func fetchMetrics(t *testing.T, ns, addr string) string {
	t.Helper()
	var body string
	if err := lab.InNS(ns, func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
		all, err := io.ReadAll(c)
		body = string(all)
		return err
	}); err != nil {
		t.Fatalf("metrics in %s: %v", ns, err)
	}
	return body
}

// scrapeMetric fetches the daemon's metrics inside ns from addr and returns
// the value of the sample whose line starts with name (labels included).
func scrapeMetric(t *testing.T, ns, addr, name string) float64 {
	t.Helper()
	body := fetchMetrics(t, ns, addr)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("metrics in %s: no sample %s in:\n%.600s", ns, name, body)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("metrics in %s: %s: %v", ns, name, err)
	}
	return v
}

// TestDirewolfKISSShared: an APRS-style client beside slided on each of two
// real TNCs (issue 14). Two Dire Wolf modems at 9600 bit/s joined by the
// half-duplex audio relay, a daemon on each with -kiss-server, and on each
// server a plain KISS client that sends APRS position reports (AX.25 UI
// frames) at an APRS client's pace while pings and then UDP datagrams cross
// between the daemons both ways. Every client frame must reach the other
// client untouched (and nothing else must: no slided frame), every datagram
// must arrive, and each daemon's status and metrics must count its client's
// frames and their airtime. A monitor on each Dire Wolf's own KISS port
// (beside the daemon: Dire Wolf serves several clients) records what that
// TNC decoded from the air, so that a lost frame is placed on air or in the
// daemon: the test fails for a frame the far TNC decoded that its client
// did not get, and logs those never decoded. On the rig as it is 2-14 of 40
// a run are lost on air, to collisions between the two TNCs (docs/modems.md,
// "On the Dire Wolf rig: TestDirewolfKISSShared"): the "none lost"
// is not met there.
func TestDirewolfKISSShared(t *testing.T) {
	const (
		baud = 9600
		n    = 20                      // APRS frames from each client
		pace = 1500 * time.Millisecond // between a client's frames: an APRS client's pace, not a measurement
	)
	l, ns, dir := newModemLab(t, "dwshare")
	ka, kb := direwolftest.StartPair(t, ns[0], ns[1], baud)
	var mon [2]*kissRecorder
	for i, addr := range [2]string{ka, kb} {
		mon[i] = dialRecorder(t, ns[i], addr)
	}
	q := fmt.Sprintf("?air=%d&%s", baud, kissParams[baud])
	p := startDaemons(t, l, dir, ns, [2]string{"kiss-tcp:" + ka + q, "kiss-tcp:" + kb + q}, "198.51.100",
		"-kiss-server", "8011", "-metrics", "127.0.0.1:9469")

	var clients [2]*kissRecorder
	for i := range 2 {
		clients[i] = dialRecorder(t, ns[i], "127.0.0.1:8011")
	}
	// Send only once both servers have taken their client in: a frame
	// heard before that is no client's (TestKISSServerShared).
	for i := range 2 {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(lab.Tail(p.Logs[i+1], 1<<20), "kiss server: client connected") {
			if time.Now().After(deadline) {
				t.Fatalf("node%d: its kiss server did not log the client", i+1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Dire Wolf 1.6 looks for data on a new KISS connection once a second,
	// and the two instances, started together, look at the same instants:
	// what the daemons and clients write in their first second reaches
	// both TNCs at once, and they key up together (a collision in 6 of 7
	// runs, docs/modems.md). No station meets that on air: start once the
	// TNCs read the daemons' connections.
	time.Sleep(2 * time.Second)

	// Each client sends its frames pace apart, client 2 half a pace after
	// client 1 (two stations' beacons are not synchronised), and keeps
	// when it wrote each, to match a lost frame with the relay's
	// airtime.txt (SLIDED_KEEP_LOGS).
	start := time.Now()
	var sentAt [2][n]time.Time
	aprsDone := make(chan error, 2)
	for i := range 2 {
		go func() {
			time.Sleep(time.Duration(i) * pace / 2)
			for k := range n {
				sentAt[i][k] = time.Now()
				clients[i].c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := clients[i].c.Write(kissproto.AppendFrame(nil, 0, kissproto.CmdData, aprsPosition(i+1, k))); err != nil {
					aprsDone <- fmt.Errorf("client %d, frame %d: %w", i+1, k, err)
					return
				}
				time.Sleep(pace)
			}
			aprsDone <- nil
		}()
	}

	// slided's traffic meanwhile: pings both ways (they also resolve the
	// neighbours), node 2's half a second after node 1's, then datagrams
	// both ways at once. Pings both ways at the same instants, a second
	// apart, made the two daemons write to their TNCs in the same
	// millisecond every second, and the rig's two Dire Wolf instances,
	// which draw the same unseeded random numbers, keyed up together:
	// every run lost client 1's first frame so, and some runs two pings
	// (docs/modems.md). Two hosts on air are not in step to the
	// millisecond.
	var wg sync.WaitGroup
	var replies [2]int
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 500 * time.Millisecond)
			replies[i] = pingCount(t, l, ns[i], p.Addr[1-i], 3, 10*time.Second)
		}()
	}
	wg.Wait()
	for i := range 2 {
		// As TestDirewolf9600: the first echo also waits for ARP, which is
		// broadcast and has no link ARQ.
		if replies[i] < minPing[baud] {
			t.Errorf("ping node%d → node%d: %d of 3 replies", i+1, 2-i, replies[i])
		}
	}
	exchange(t, p, 5040, 10, 1000, 100, 30*time.Second, 90*time.Second)
	for range 2 {
		if err := <-aprsDone; err != nil {
			t.Fatal(err)
		}
	}

	// Every frame of the other client, untouched; nothing else.
	deadline := time.Now().Add(20 * time.Second)
	for i := range 2 {
		for {
			got, _, _ := aprsFrom(clients[i].all(), 2-i, n)
			if got == n || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("traffic took %.1fs", time.Since(start).Seconds())
	var decoded [2]int // the other client's frames each Dire Wolf decoded
	lost := 0          // frames no Dire Wolf decoded: lost on air
	for i := range 2 {
		from := 2 - i
		got, dups, missing := aprsFrom(clients[i].all(), from, n)
		heard, _, airMissing := aprsFrom(mon[i].all(), from, n)
		decoded[i] = heard
		t.Logf("client %d → client %d: %d of %d frames (%d duplicates); the receiving Dire Wolf decoded %d of them",
			from, i+1, got, n, dups, heard)
		// slided's part: every frame the receiving Dire Wolf decoded
		// reaches the client, once. A frame it never decoded was lost on
		// air, to a collision of the two TNCs (docs/modems.md, "On the
		// Dire Wolf rig"): issue 14's "none lost" is not met there, and
		// the test says how many, without failing for the channel.
		var inDaemon []int
		for _, k := range missing {
			if !slices.Contains(airMissing, k) {
				inDaemon = append(inDaemon, k)
			}
		}
		if len(inDaemon) != 0 || dups != 0 {
			t.Errorf("client %d → client %d: frames %v decoded by the receiving Dire Wolf did not reach the client; %d duplicates",
				from, i+1, inDaemon, dups)
		}
		lost += len(missing)
		if len(missing) != 0 {
			var at []string
			for _, k := range missing {
				at = append(at, sentAt[from-1][k].UTC().Format("15:04:05.000"))
			}
			t.Logf("client %d → client %d: %d of %d frames lost on air (never decoded by the receiving Dire Wolf): %v, written at %s",
				from, i+1, len(missing), n, missing, strings.Join(at, " "))
		}
		for _, f := range clients[i].all() {
			if g, _, _ := aprsFrom([][]byte{f}, from, n); g == 0 {
				t.Errorf("client %d got a frame that is not the other client's: %x", i+1, f)
			}
		}
		// What the monitor heard that was not slided's nor a client's.
		if own, _, _ := aprsFrom(mon[i].all(), i+1, n); own != 0 {
			t.Logf("Dire Wolf %d gave its monitor %d of its own client's frames", i+1, own)
		}
	}

	// The figure docs/modems.md quotes.
	t.Logf("APRS frames lost on air: %d of %d", lost, 2*n)

	// The daemons count their client's frames and airtime.
	air := (kiss.Config{AirRate: baud}).TxTime(len(aprsPosition(1, 0)))
	for i := range 2 {
		st := checkNoHostDrops(t, p, i)
		k, mac := st.TNC, st.Bridge.MAC
		if k == nil {
			t.Fatalf("node%d: no tnc section in status", i+1)
		}
		t.Logf("node%d: tx %d rx %d frames; tnc others sent %d lost %d heard %d; mac carrier busy %v (client frames' airtime without TXDELAY/TXTAIL %v), deferrals %d; arq %+v",
			i+1, st.Bridge.TxFrames, st.Bridge.RxFrames, k.OthersSent, k.OthersLost, k.OthersHeard, mac.BusyTime, n*air, mac.Deferrals, st.Bridge.ARQ)
		if k.OthersSent != n || k.OthersLost != 0 {
			t.Errorf("node%d: others' frames sent %d, lost %d; want %d and 0", i+1, k.OthersSent, k.OthersLost, n)
		}
		if k.OthersHeard < uint64(decoded[i]) {
			t.Errorf("node%d: others' frames heard %d, want at least the %d its Dire Wolf decoded", i+1, k.OthersHeard, decoded[i])
		}
		// The client's frames are carrier to slided's MAC (its own
		// transmissions hide what overlaps them: a lower bound).
		if mac.BusyTime <= 0 {
			t.Errorf("node%d: mac carrier busy %v: the client's airtime was not counted", i+1, mac.BusyTime)
		}
		sent := scrapeMetric(t, ns[i], "127.0.0.1:9469", `slided_tnc_other_frames_total{interface="slided0",event="sent"}`)
		busy := scrapeMetric(t, ns[i], "127.0.0.1:9469", `slided_mac_carrier_busy_seconds_total{interface="slided0"}`)
		if sent != n || busy <= 0 {
			t.Errorf("node%d metrics: other frames sent %v, carrier busy %vs; want %d and more than 0", i+1, sent, busy, n)
		}
	}
}
