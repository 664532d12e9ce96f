package direwolftest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Audio format shared by both instances and the relay: 16-bit little-endian
// mono samples at SampleRate.
const (
	SampleRate     = 48000
	bytesPerSample = 2
	// KISSPort is the KISS TCP port of each instance, inside its namespace.
	KISSPort = 8001

	relayTick   = 10 * time.Millisecond
	relayMaxBuf = 32 << 20 // audio queued per direction before it is dropped (about 5 min)
	readyWait   = 15 * time.Second
)

// config is a Dire Wolf configuration: audio in from stdin, audio out
// through ALSA's built-in file plugin into a fifo (no sound card, no
// .asoundrc), one channel, KISS over TCP only: no AGW port (AGWPORT 0), no
// beacons, no digipeating (none configured).
const config = `ADEVICE stdin file:%s,raw
ARATE %d
ACHANNELS 1
CHANNEL 0
MYCALL %s
MODEM %d
AGWPORT 0
KISSPORT %d
`

// StartPair starts Dire Wolf instance A inside network namespace nsA and B
// inside nsB (both must exist; StartPair brings their lo up), both at baud
// (1200: AFSK; 9600: G3RUH), with KISS TCP on 127.0.0.1:KISSPORT inside each
// namespace, and joins them with an audio relay: goroutines in the test
// process that play each instance's audio output into the other's input at
// real-time rate and fill the gaps with silence. It returns when both KISS
// ports accept connections. Reach them with DialIn(nsA) and DialIn(nsB).
//
// t.Cleanup stops everything: the relay goroutines exit and the two
// processes are killed by PID; the fifos and config files live in
// t.TempDir(). A missing direwolf binary fails the test.
func StartPair(t testing.TB, nsA, nsB string, baud int) (kissA, kissB string) {
	t.Helper()
	bin, err := exec.LookPath("direwolf")
	if err != nil {
		t.Fatalf("direwolf not found (%v): install Debian package direwolf (apt-get install -y direwolf)", err)
	}
	if baud != 1200 && baud != 9600 {
		t.Fatalf("direwolftest: baud %d: use 1200 or 9600", baud)
	}
	linkUp(t, nsA)
	linkUp(t, nsB)
	dir := t.TempDir()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var procs []*instance
	var ab, ba *relay
	t.Cleanup(func() {
		close(stop)
		for _, p := range procs {
			p.kill()
			p.out.Close() // ends collect
		}
		wg.Wait()
		if t.Failed() {
			for _, p := range procs {
				t.Logf("direwolf %s log:\n%s", p.name, tail(p.logPath, 3000))
			}
		}
		for _, p := range procs {
			KeepLog(t, p.logPath, "direwolf-"+p.name+".log")
		}
		if ab != nil {
			keepTimeline(t, ab, ba)
		}
	})
	a, err := startInstance(bin, dir, "a", nsA, baud)
	if err != nil {
		t.Fatal(err)
	}
	procs = append(procs, a)
	b, err := startInstance(bin, dir, "b", nsB, baud)
	if err != nil {
		t.Fatal(err)
	}
	procs = append(procs, b)

	ab, ba = newRelay(a.out, b.in), newRelay(b.out, a.in)
	// Half-duplex radios: a modem hears nothing while it transmits.
	ab.muted, ba.muted = &ba.sending, &ab.sending
	for _, r := range []*relay{ab, ba} {
		wg.Add(2)
		go func() { defer wg.Done(); r.collect() }()
		go func() { defer wg.Done(); r.play(stop) }()
	}

	addr := fmt.Sprintf("127.0.0.1:%d", KISSPort)
	for _, p := range procs {
		if err := waitListening(p, addr); err != nil {
			t.Fatalf("direwolf %s: %v\n%s", p.name, err, tail(p.logPath, 3000))
		}
	}
	return addr, addr
}

// instance is one Dire Wolf process.
type instance struct {
	name    string
	ns      string
	cmd     *exec.Cmd
	in      io.WriteCloser // its stdin: received audio
	out     *os.File       // the fifo it writes its transmitted audio into
	logPath string
	exited  chan struct{}
}

func startInstance(bin, dir, name, ns string, baud int) (*instance, error) {
	fifo := filepath.Join(dir, name+".audio")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return nil, fmt.Errorf("direwolftest: mkfifo %s: %w", fifo, err)
	}
	// Read-write, so that the open does not wait for Dire Wolf, and Dire Wolf's
	// open for writing does not wait for us.
	out, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("direwolftest: open %s: %w", fifo, err)
	}
	conf := filepath.Join(dir, name+".conf")
	// Relative: Dire Wolf cuts audio device names at 29 bytes; it runs in dir.
	text := fmt.Sprintf(config, filepath.Base(fifo), SampleRate, "N0CALL-"+map[string]string{"a": "1", "b": "2"}[name], baud, KISSPort)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		out.Close()
		return nil, fmt.Errorf("direwolftest: %w", err)
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("direwolftest: %w", err)
	}
	defer logf.Close() // the child holds its own copy
	// ip netns exec execs direwolf in place: the PID is Dire Wolf's.
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "-t", "0", "-a", "0", "-q", "hd", "-c", conf)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	in, err := cmd.StdinPipe()
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("direwolftest: %w", err)
	}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("direwolftest: start direwolf in %s: %w", ns, err)
	}
	p := &instance{name: name, ns: ns, cmd: cmd, in: in, out: out, logPath: logPath, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

// kill ends the process by its PID and waits for it; a relay still writing
// to its stdin then gets an error and returns.
func (p *instance) kill() {
	p.cmd.Process.Kill()
	<-p.exited
	p.in.Close()
}

// waitListening dials the instance's KISS port inside its namespace until it
// answers, the process exits, or readyWait passes.
func waitListening(p *instance, addr string) error {
	deadline := time.Now().Add(readyWait)
	for {
		select {
		case <-p.exited:
			return errors.New("exited before its KISS port opened")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := DialIn(p.ns)(ctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("KISS port %s in %s not open after %v: %w", addr, p.ns, readyWait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// relay carries one direction of audio: collect queues what the sender's
// modem writes (in bursts, when it transmits); play feeds the receiver's
// modem a continuous real-time stream, the queued audio or silence. Like a
// radio's receiver, the receiving modem hears silence while it transmits
// itself (muted: the other direction is sending), so two stations that key
// up together collide: neither hears the other.
type relay struct {
	src *os.File
	dst io.Writer

	sending atomic.Bool  // this direction played the sender's audio in its last tick
	muted   *atomic.Bool // the receiver is transmitting (the other direction's sending)

	mu      sync.Mutex
	queue   bytes.Buffer
	dropped int // bytes dropped because the queue was full

	// keyUps holds the start and end of each transmission the relay
	// played (play's goroutine only; read after it exits).
	keyUps [][2]time.Time
}

func newRelay(src *os.File, dst io.Writer) *relay { return &relay{src: src, dst: dst} }

// collect reads the sender's audio until the fifo is closed.
func (r *relay) collect() {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			if r.queue.Len()+n <= relayMaxBuf {
				r.queue.Write(buf[:n])
			} else {
				r.dropped += n
			}
			r.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// play writes SampleRate samples a second, by the wall clock, into the
// receiver's stdin until stop is closed or the write fails.
func (r *relay) play(stop <-chan struct{}) {
	const perSecond = SampleRate * bytesPerSample
	chunk := make([]byte, 0, perSecond)
	start := time.Now()
	written := int64(0)
	tick := time.NewTicker(relayTick)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		due := int64(time.Since(start)) * SampleRate / int64(time.Second) * bytesPerSample
		n := int(min(due-written, perSecond)) // after a stall, catch up at most a second at once
		if n <= 0 {
			continue
		}
		chunk = chunk[:n]
		r.mu.Lock()
		m := min(r.queue.Len(), n) &^ (bytesPerSample - 1) // whole samples only
		copy(chunk, r.queue.Next(m))
		r.mu.Unlock()
		now := time.Now()
		switch was := r.sending.Load(); {
		case m > 0 && !was:
			r.keyUps = append(r.keyUps, [2]time.Time{now, now})
		case m > 0:
			r.keyUps[len(r.keyUps)-1][1] = now
		}
		r.sending.Store(m > 0)
		if r.muted != nil && r.muted.Load() {
			m = 0 // the receiver is keyed up: the sender's audio is lost to it
		}
		clear(chunk[m:]) // silence
		if _, err := r.dst.Write(chunk); err != nil {
			return
		}
		written = due
	}
}

// keepTimeline writes, with SLIDED_KEEP_LOGS set, each transmission the
// relays carried (direction, start and length in seconds from the first)
// as airtime.txt beside the logs, and a summary line per direction.
func keepTimeline(t testing.TB, ab, ba *relay) {
	dir := os.Getenv("SLIDED_KEEP_LOGS")
	if dir == "" {
		return
	}
	var t0 time.Time
	for _, r := range []*relay{ab, ba} {
		if len(r.keyUps) > 0 && (t0.IsZero() || r.keyUps[0][0].Before(t0)) {
			t0 = r.keyUps[0][0]
		}
	}
	type tx struct {
		dir        string
		start, end time.Time
	}
	var all []tx
	for i, r := range []*relay{ab, ba} {
		var sum time.Duration
		for _, k := range r.keyUps {
			all = append(all, tx{[]string{"a>b", "b>a"}[i], k[0], k[1]})
			sum += k[1].Sub(k[0]) + relayTick
		}
		t.Logf("relay %s: %d transmissions, %.1fs of audio", []string{"a>b", "b>a"}[i], len(r.keyUps), sum.Seconds())
	}
	slices.SortFunc(all, func(x, y tx) int { return x.start.Compare(y.start) })
	var b strings.Builder
	for _, x := range all {
		fmt.Fprintf(&b, "%s %s %9.3f %7.3f\n", x.dir, x.start.UTC().Format("15:04:05.000"), x.start.Sub(t0).Seconds(), (x.end.Sub(x.start) + relayTick).Seconds())
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("airtime-%d.txt", os.Getpid()))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err == nil {
		KeepLog(t, path, "airtime.txt")
		os.Remove(path)
	}
}

// KeepLog copies the log at path into the directory SLIDED_KEEP_LOGS names,
// if set, as <test name>/<name>, so that a benchmark's logs (Dire Wolf's
// transmissions, the daemons' JSON) can be read after its temporary
// directory is gone. Errors are logged, never fatal.
func KeepLog(t testing.TB, path, name string) {
	dir := os.Getenv("SLIDED_KEEP_LOGS")
	if dir == "" {
		return
	}
	dst := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	b, err := os.ReadFile(path)
	if err == nil {
		err = os.MkdirAll(dst, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dst, name), b, 0o644)
	}
	if err != nil {
		t.Logf("keep log %s: %v", path, err)
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
