package main

// Operations: configuration, privileges, metrics, capture, the control
// socket and the command line, tested on the real binary.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/control"
	"github.com/slided/slided/internal/lab"
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
	var body string
	if err := lab.InNS(p.NS[0], func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:9469", 2*time.Second)
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
		t.Fatalf("metrics: %v", err)
	}
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
