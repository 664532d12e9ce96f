//go:build linux

package main

// Operations: configuration, privileges, metrics, capture, the control
// socket and the command line, tested on the real binary.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slided/slided/capture"
	"github.com/slided/slided/control"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/internal/lab"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/status"
)

// TestRunAsUserWithMetricsAndCapture: daemons that drop to nobody keep only
// CAP_NET_ADMIN, still pace their qdisc, serve metrics and write a pcap file.
func TestRunAsUserWithMetricsAndCapture(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("run as root")
	}
	l, err := lab.New("slided-ops")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	dir := t.TempDir()
	pcaps := [2]string{filepath.Join(dir, "n1.pcap"), filepath.Join(dir, "n2.pcap")}
	p, err := l.StartPair(lab.PairConfig{Bin: slidedBin, Dir: dir, Rate: 115200, Subnet: "192.0.2",
		Args:     []string{"-user", "nobody", "-metrics", "127.0.0.1:9469"},
		NodeArgs: func(i int) []string { return []string{"-pcap", pcaps[i]} }})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := l.Exec(p.NS[0], "ping", "-c", "3", "-i", "0.3", "-W", "5", p.Addr[1]); err != nil || !strings.Contains(out, "3 received") {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	// Credentials of the running daemon.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Daemons[0].Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	if fields["Uid"] != "65534 65534 65534 65534" {
		t.Errorf("daemon Uid %q, want nobody (65534) everywhere", fields["Uid"])
	}
	if fields["CapEff"] != "0000000000001000" || fields["CapPrm"] != "0000000000001000" {
		t.Errorf("daemon CapEff %s CapPrm %s, want only CAP_NET_ADMIN (0x1000)", fields["CapEff"], fields["CapPrm"])
	}
	// Traffic so the pacer retunes the qdisc after the drop.
	cs := udpPair(t, p, 5010, 32768)
	go lab.Blast(cs[0], udpAddr(p.Addr[1], 5010), 1, 1000, 2*time.Second, 100000)
	rs, err := lab.Receive(cs[1], 3*time.Second, time.Now().Add(30*time.Second))
	if err != nil || rs.Flows[1] == nil || rs.Flows[1].Received == 0 {
		t.Fatalf("no datagram crossed: %v", err)
	}
	st, err := p.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bridge.ShaperErrors != 0 || st.Bridge.PacingRate == 0 {
		t.Errorf("pacer after dropping privileges: %d errors, rate %d", st.Bridge.ShaperErrors, st.Bridge.PacingRate)
	}
	// Metrics, fetched inside node 1's namespace.
	body := fetchMetrics(t, p.NS[0], "127.0.0.1:9469")
	if !strings.HasPrefix(body, "HTTP/1.1 200") || !strings.Contains(body, "slided_tx_frames_total") {
		t.Errorf("metrics answer:\n%.400s", body)
	}
	// Stop the daemons so the capture files are complete, then read them.
	for _, d := range p.Daemons {
		if err := d.Stop(5 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
	}
	for i, path := range pcaps {
		n, err := countPcap(path)
		if err != nil {
			t.Errorf("node%d capture: %v", i+1, err)
		} else if n < 6 {
			t.Errorf("node%d capture holds %d records, want the pings and datagrams", i+1, n)
		}
	}
}

// countPcap checks a classic pcap header with link type USER0 and counts records.
func countPcap(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 147 {
		return 0, errors.New("not a little-endian pcap file with link type 147")
	}
	n := 0
	for off := 24; off+16 <= len(b); n++ {
		incl := int(binary.LittleEndian.Uint32(b[off+8:]))
		off += 16 + incl
		if off > len(b) {
			return n, errors.New("truncated record")
		}
	}
	return n, nil
}

// TestControlSocketSurvivesJunk: junk, silence and a hang-up on the control
// socket get an error or nothing, and the daemon keeps answering.
func TestControlSocketSurvivesJunk(t *testing.T) {
	_, p := startPair(t, 115200, "192.0.2")
	for _, junk := range [][]byte{[]byte("\x00\xff garbage\n"), bytes.Repeat([]byte("a"), 4096), nil, []byte("stat")} {
		c, err := net.Dial("unix", p.Ctl[0])
		if err != nil {
			t.Fatal(err)
		}
		c.Write(junk)
		if junk == nil || string(junk) == "stat" {
			c.Close() // hang up mid-request
			continue
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.Contains(line, `"error"`) {
			t.Errorf("junk %q answered %q, want an error", junk[:min(len(junk), 16)], line)
		}
	}
	if _, err := control.Query(p.Ctl[0], "status", 2*time.Second); err != nil {
		t.Fatalf("status after junk: %v", err)
	}
	fi, err := os.Stat(p.Ctl[0])
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o002 != 0 {
		t.Errorf("control socket mode %v is world-writable", fi.Mode().Perm())
	}
}

// TestCommandLineErrors: wrong flags and bad config files get one clear line
// and exit status 2, without root.
func TestCommandLineErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("tap = \"s0\"\nnode = 1\nbogus_key = 3\n"), 0o600)
	openKey := filepath.Join(dir, "open.key")
	os.WriteFile(openKey, []byte(strings.Repeat("ab", 32)+"\n"), 0o644)
	shortKey := filepath.Join(dir, "short.key")
	os.WriteFile(shortKey, []byte("abcd\n"), 0o600)
	for _, tc := range []struct {
		desc string
		args []string
		want string
	}{
		{"no command", nil, "usage"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"run without tap", []string{"run"}, "-tap NAME is required"},
		{"bad node", []string{"run", "-tap", "s0", "-node", "300", "-phy", "sim:/x"}, "-node 300"},
		{"bad phy", []string{"run", "-tap", "s0", "-node", "1", "-phy", "carrier-pigeon:x"}, "unknown modem kind"},
		{"bad serial option", []string{"run", "-tap", "s0", "-node", "1", "-phy", "serial:/dev/ttyS9?baud=fast"}, "baud"},
		{"bad address", []string{"run", "-tap", "s0", "-node", "1", "-phy", "sim:/x", "-addr", "192.0.2.1"}, "CIDR"},
		{"bad policy", []string{"run", "-tap", "s0", "-node", "1", "-phy", "sim:/x", "-policy", "maybe"}, "policy"},
		{"key readable by others", []string{"run", "-tap", "s0", "-node", "1", "-phy", "sim:/x", "-key", openKey}, "-key"},
		{"key too short", []string{"run", "-tap", "s0", "-node", "1", "-phy", "sim:/x", "-key", shortKey}, "-key"},
		{"negative frame max", []string{"run", "-tap", "s0", "-node", "1", "-phy", "sim:/x", "-frame-max", "-5"}, "-frame-max"},
		{"frame max too small", []string{"run", "-tap", "s0", "-node", "1", "-phy", "sim:/x", "-frame-max", "30"}, "-frame-max 30: arq: invalid config"},
		{"key mode without key", []string{"run", "-tap", "s0", "-node", "1", "-phy", "sim:/x", "-key-mode", "sign"}, "-key-mode sign: only with -key"},
		{"kiss server without kiss", []string{"run", "-tap", "s0", "-node", "1", "-phy", "sim:/x", "-kiss-server", "8001"}, "-kiss-server: only with a kiss modem"},
		{"bad kiss server address", []string{"run", "-tap", "s0", "-node", "1", "-phy", "kiss-tcp:127.0.0.1:8001", "-kiss-server", "nowhere"}, "-kiss-server: kiss server address"},
		{"station id without kiss", []string{"run", "-tap", "s0", "-node", "1", "-phy", "sim:/x", "-station-id", "N0CALL"}, "-station-id: only with a kiss modem"},
		{"bad station id", []string{"run", "-tap", "s0", "-node", "1", "-phy", "kiss-tcp:127.0.0.1:8001", "-station-id", "NOT A CALL"}, "-station-id: kiss: bad config: station id"},
		{"bad ackmode", []string{"run", "-tap", "s0", "-node", "1", "-phy", "kiss-tcp:127.0.0.1:8001?ackmode=maybe"}, "ackmode"},
		{"unknown config key", []string{"run", "-config", bad}, "bad.toml:3"},
		{"missing config", []string{"run", "-config", filepath.Join(dir, "none.toml")}, "none.toml"},
		{"status without control", []string{"status"}, "-control PATH is required"},
		{"sim without listen", []string{"sim"}, "-listen PATH or -listen-udp HOST:PORT (or both) is required"},
		{"sim zero rate", []string{"sim", "-listen", filepath.Join(dir, "m.sock"), "-rate", "0"}, "rate"},
		{"sim udp session timeout too short", []string{"sim", "-listen-udp", "127.0.0.1:0", "-udp-session-timeout", "2s"}, "-udp-session-timeout 2s: want at least 6s"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			out, err := exec.Command(slidedBin, tc.args...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("exit %v, want status 2; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output %q does not mention %q", out, tc.want)
			}
		})
	}
}

// unitService reads one [Service] directive of packaging/slided.service,
// split into words; every assignment adds, an empty one resets.
func unitService(t *testing.T, key string) []string {
	t.Helper()
	b, err := os.ReadFile("../../packaging/slided.service")
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section != "[Service]" || strings.TrimSpace(k) != key {
			continue
		}
		if strings.TrimSpace(v) == "" {
			vals = nil
			continue
		}
		vals = append(vals, strings.Fields(v)...)
	}
	return vals
}

// unitSandbox returns a command prefix that runs a program as the unit
// would start slided: its capability bounding set (from the unit file, or
// caps if not nil), no new privileges, and /proc/sys read-only if the unit
// sets ProtectKernelTunables. extra is shell run first, in the private
// mount namespace.
func unitSandbox(t *testing.T, caps []string, extra string) []string {
	t.Helper()
	if caps == nil {
		caps = unitService(t, "CapabilityBoundingSet")
	}
	bounding := "-all"
	for _, c := range caps {
		bounding += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	script := "set -e\n"
	if v := unitService(t, "ProtectKernelTunables"); len(v) == 1 && v[0] == "yes" {
		script += "mount --bind /proc/sys /proc/sys\nmount -o remount,bind,ro /proc/sys\n"
	}
	script += extra + "\nexec setpriv --no-new-privs --bounding-set=" + bounding + " -- \"$@\"\n"
	return []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"}
}

// startSandboxed starts a medium at rate and one daemon (node 1, TAP
// slided0, 192.0.2.1/24) in a namespace of its own, wrapped in prefix.
// With asNobody the medium runs as nobody, so that a daemon started as
// nobody can reach its socket.
func startSandboxed(t *testing.T, rate int, asNobody bool, prefix []string, args ...string) (l *lab.Lab, ns, ctl, logf string, d *lab.Proc) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("run as root")
	}
	l, err := lab.New("slided-ops")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Open to a daemon that does not run as root (the medium's and the
	// control socket are made here).
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	logf = filepath.Join(dir, "node.log")
	t.Cleanup(func() {
		l.Close()
		if t.Failed() {
			t.Logf("--- node.log ---\n%s", lab.Tail(logf, 30))
		}
	})
	sock := filepath.Join(dir, "medium.sock")
	medium := []string{slidedBin, "sim", "-listen", sock, "-rate", fmt.Sprint(rate)}
	if asNobody {
		medium = append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}, medium...)
	}
	if _, err := l.Start("", "medium", filepath.Join(dir, "medium.log"), medium...); err != nil {
		t.Fatal(err)
	}
	if ns, err = l.AddNS("n1"); err != nil {
		t.Fatal(err)
	}
	ctl = filepath.Join(dir, "node.ctl")
	argv := append(append([]string{}, prefix...), slidedBin, "run", "-tap", "slided0", "-node", "1", "-phy", "sim:"+sock,
		"-addr", "192.0.2.1/24", "-control", ctl, "-log-format", "json")
	if d, err = l.Start(ns, "node", logf, append(argv, args...)...); err != nil {
		t.Fatal(err)
	}
	return l, ns, ctl, logf, d
}

// waitExit waits up to 20 s for d to end and returns its exit status, or
// -1 if it is still running.
func waitExitCode(d *lab.Proc) int {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if done, err := d.Exited(); done {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode()
			}
			return 0
		}
	}
	return -1
}

// TestOpsUnderTheUnitSandbox: started as packaging/slided.service starts it
// (its bounding set, no new privileges, /proc/sys read-only) with -user
// nobody, the daemon comes up as nobody with CAP_NET_ADMIN only, and the
// neighbour settings for a slow link are in place.
func TestOpsUnderTheUnitSandbox(t *testing.T) {
	l, ns, ctl, _, d := startSandboxed(t, 1200, false, unitSandbox(t, nil, ""), "-user", "nobody")
	var st status.Snapshot
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		raw, err := control.Query(ctl, "status", 2*time.Second)
		if err == nil && json.Unmarshal(raw, &st) == nil && st.Bridge != nil && st.Bridge.Up {
			break
		}
		if done, err := d.Exited(); done {
			t.Fatalf("daemon exited: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not up after 15 s: %v", err)
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.Contains(s, "\nUid:\t65534\t65534\t65534\t65534") || !strings.Contains(s, "\nCapEff:\t0000000000001000") {
		t.Errorf("daemon credentials, want nobody with CAP_NET_ADMIN only:\n%s", s)
	}
	// 1200 bit/s: a full frame takes over 10 s, so probes go out that plus
	// a second apart, enough of them to last for an answer the ARQ sends
	// again (tap.NeighTimersFor; set again once the link is up, as nobody
	// with CAP_NET_ADMIN).
	checkNeighTimers(t, l, ns, 10*time.Second, 50*time.Second, 5)
}

// checkNeighTimers waits up to 10 s for the daemon in ns to set the
// neighbour settings of a slow link on slided0: a 1 MiB queue, entries
// reachable for two minutes, probes at least minRetrans apart, the unicast
// ones lasting at least minWindow in all and the broadcast ones mcast in
// number. It fails the test if they do not come.
func checkNeighTimers(t *testing.T, l *lab.Lab, ns string, minRetrans, minWindow time.Duration, mcast int) {
	t.Helper()
	read := func(family, k string) (int, error) {
		out, err := l.Exec(ns, "cat", "/proc/sys/net/"+family+"/neigh/slided0/"+k)
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(out))
	}
	var wrong []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		wrong = wrong[:0]
		for _, family := range []string{"ipv4", "ipv6"} {
			for k, want := range map[string]int{"unres_qlen_bytes": 1 << 20, "base_reachable_time_ms": 120000} {
				if v, err := read(family, k); err != nil || v != want {
					wrong = append(wrong, fmt.Sprintf("%s %s = %d (%v), want %d", family, k, v, err, want))
				}
			}
			ms, err := read(family, "retrans_time_ms")
			retrans := time.Duration(ms) * time.Millisecond
			if err != nil || retrans < minRetrans {
				wrong = append(wrong, fmt.Sprintf("%s retrans_time_ms = %d (%v), want at least %v", family, ms, err, minRetrans))
			}
			if n, err := read(family, "ucast_solicit"); err != nil || time.Duration(n)*retrans < minWindow {
				wrong = append(wrong, fmt.Sprintf("%s ucast_solicit = %d (%v) probes %v apart, want them to last %v", family, n, err, retrans, minWindow))
			}
			if n, err := read(family, "mcast_solicit"); err != nil || n != mcast {
				wrong = append(wrong, fmt.Sprintf("%s mcast_solicit = %d (%v), want %d", family, n, err, mcast))
			}
		}
		if len(wrong) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range wrong {
		t.Error(w)
	}
}

// TestNeighTimersOutlastAnAckTimeout: at 115200 bit/s on the simulated
// medium a full frame takes 0.1 s, but an answer to an ARP or ND probe that
// collides once comes back only after the link ARQ's Ack timeout (about
// 1.9 s: a node's turn there is a burst of frames). With the kernel's LAN
// timers (3 probes 1 s apart, which the daemon left at this rate) a
// neighbour that answers was marked failed under load and what waited for
// it dropped: babeld's unicast to its neighbour in the Mininet line, four
// runs in five (docs/mininet.md). The unicast probes of a known neighbour
// must last for an answer lost once (its frame, the Ack timeout and a
// second), twice over.
func TestNeighTimersOutlastAnAckTimeout(t *testing.T) {
	l, ns, _, logf, d := startSandboxed(t, 115200, false, nil)
	var ackTimeout time.Duration
	for deadline := time.Now().Add(15 * time.Second); ackTimeout == 0; time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(logf)
		for _, line := range strings.Split(string(b), "\n") {
			var rec struct {
				Message    string  `json:"message"`
				AckTimeout float64 `json:"ack_timeout"` // ms
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Message == "link layer" && rec.AckTimeout > 0 {
				ackTimeout = time.Duration(rec.AckTimeout * float64(time.Millisecond))
			}
		}
		if done, err := d.Exited(); done {
			t.Fatalf("daemon exited: %v", err)
		}
		if ackTimeout == 0 && time.Now().After(deadline) {
			t.Fatal("no link layer line with the ack timeout in the log after 15 s")
		}
	}
	t.Logf("ack timeout %v", ackTimeout)
	frame := phy.Airtime(1500+14+framing.Overhead, 115200)
	// The first resolution's broadcast requests stay the kernel's 3: what
	// waits for them holds its sockets' buffers
	// (TestStoppedDaemonDoesNotBlockOtherInterfaces).
	checkNeighTimers(t, l, ns, time.Second, 2*(frame+ackTimeout+time.Second), 3)
}

// TestOpsPrivUserFailureDoesNotLoop: when -user cannot be applied (here the
// bounding set lacks CAP_SETUID and CAP_SETGID), the daemon says why before
// it creates anything and exits with the status the unit's
// RestartPreventExitStatus names, so systemd does not restart it forever.
func TestOpsPrivUserFailureDoesNotLoop(t *testing.T) {
	_, _, _, logf, d := startSandboxed(t, 115200, false, unitSandbox(t, []string{"CAP_NET_ADMIN"}, ""), "-user", "nobody")
	code := waitExitCode(d)
	if prevent := unitService(t, "RestartPreventExitStatus"); code < 0 || !slices.Contains(prevent, strconv.Itoa(code)) {
		t.Errorf("exit status %d; the unit's RestartPreventExitStatus is %v", code, prevent)
	}
	if log := lab.Tail(logf, 5); !strings.Contains(log, "CAP_SETUID") {
		t.Errorf("the error does not name the missing capability:\n%s", log)
	}
}

// TestOpsPrivGroupIdsFailure: if the supplementary groups of the -user
// account cannot be read (here /etc/group is a directory), the daemon
// stops with an error instead of running without them.
func TestOpsPrivGroupIdsFailure(t *testing.T) {
	etc := t.TempDir()
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "passwd"), passwd, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(etc, "group"), 0o755); err != nil {
		t.Fatal(err)
	}
	prefix := []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		"set -e\nmount --bind " + etc + " /etc\nexec \"$@\"", "sh"}
	_, _, _, logf, d := startSandboxed(t, 115200, false, prefix, "-user", "nobody")
	if code := waitExitCode(d); code != 77 {
		t.Errorf("exit status %d, want 77 (privileges)", code)
	}
	if log := lab.Tail(logf, 5); !strings.Contains(log, "supplementary groups") {
		t.Errorf("the error does not say the groups could not be read:\n%s", log)
	}
}

// stuckDisk takes the pcap file header, then blocks every Write until
// release is closed.
type stuckDisk struct {
	writes  atomic.Int64
	release chan struct{}
}

func (w *stuckDisk) Write(b []byte) (int, error) {
	if w.writes.Add(1) > 1 {
		<-w.release
	}
	return len(b), nil
}

// TestPcapSlowDiskDoesNotBlockTheLoop: the bridge's Capture returns at once
// while the disk is stuck; the frames it has no room for are counted.
func TestPcapSlowDiskDoesNotBlockTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		disk := &stuckDisk{release: make(chan struct{})}
		w, err := capture.New(disk)
		if err != nil {
			t.Fatal(err)
		}
		c := &pcapCapture{q: capture.NewQueue(w, 0, nil)}
		var done atomic.Bool
		go func() { // the bridge's loop
			for range 1000 {
				c.WriteLink(time.Now(), true, framing.Header{Kind: framing.KindData, Dst: 2, Src: 1}, make([]byte, 100))
			}
			done.Store(true)
		}()
		synctest.Wait()
		if !done.Load() {
			t.Fatal("the loop is stuck in a capture write")
		}
		if st := c.stats(); st.Dropped == 0 || st.Dropped+uint64(capture.DefaultQueueLen) != 1000 {
			t.Errorf("dropped %d of 1000 with a %d-record queue", st.Dropped, capture.DefaultQueueLen)
		}
		close(disk.release)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPcapFlags: sizes take suffixes; a bound too small for one record, or
// no file at all, is refused.
func TestPcapFlags(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{{"16M", 16 << 20, true}, {"512k", 512 << 10, true}, {"1G", 1 << 30, true}, {"70000", 70000, true},
		{"", 0, false}, {"-1", 0, false}, {"12X", 0, false}, {"99999999999G", 0, false}} {
		var b byteSize
		err := b.Set(tc.in)
		if (err == nil) != tc.ok || (tc.ok && int64(b) != tc.want) {
			t.Errorf("Set(%q) = %d, %v; want %d, ok %v", tc.in, b, err, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-pcap-max-size", "1k"}, "-pcap-max-size 1024"},
		{[]string{"-pcap-files", "0"}, "-pcap-files 0"},
	} {
		args := append([]string{"run", "-tap", "s0", "-node", "1", "-phy", "sim:/x", "-pcap", "/tmp/x.pcap"}, tc.args...)
		out, err := exec.Command(slidedBin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: %v, %q; want exit 2 mentioning %q", tc.args, err, out, tc.want)
		}
	}
}

// TestOpsPrivAlreadyThatUser: started as systemd's User=nobody with
// AmbientCapabilities=CAP_NET_ADMIN would start it (and /dev/net/tun mode
// 0666, as Debian's udev makes it), -user nobody changes nothing but the
// capability sets: the daemon does not call setgroups, which would fail.
func TestOpsPrivAlreadyThatUser(t *testing.T) {
	script := "mount -t tmpfs -o mode=755 none /dev/net\nmknod -m 666 /dev/net/tun c 10 200\n" +
		"exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=+net_admin --ambient-caps=+net_admin -- \"$@\""
	prefix := []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", "set -e\n" + script, "sh"}
	_, _, ctl, _, d := startSandboxed(t, 115200, true, prefix, "-user", "nobody")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		raw, err := control.Query(ctl, "status", 2*time.Second)
		var st status.Snapshot
		if err == nil && json.Unmarshal(raw, &st) == nil && st.Bridge != nil && st.Bridge.Up {
			break
		}
		if done, err := d.Exited(); done {
			t.Fatalf("daemon exited: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not up after 15 s: %v", err)
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.Contains(s, "\nUid:\t65534\t65534\t65534\t65534") || !strings.Contains(s, "\nCapEff:\t0000000000001000") {
		t.Errorf("daemon credentials, want nobody with CAP_NET_ADMIN only:\n%s", s)
	}
}

// FuzzByteSize: any text is refused or gives a size that reads back the same.
func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"16M", "512k", "1G", "0", "70000", "", "-1", "9223372036854775807", "8589934591G", "1g", "k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b byteSize
		if err := b.Set(s); err != nil {
			return
		}
		if b < 0 {
			t.Fatalf("Set(%q) = %d, negative", s, b)
		}
		var again byteSize
		if err := again.Set(b.String()); err != nil || again != b {
			t.Fatalf("Set(%q) = %d; Set(%q) = %d, %v", s, b, b.String(), again, err)
		}
	})
}
