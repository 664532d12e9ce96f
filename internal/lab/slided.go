//go:build linux

package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/slided/slided/control"
	"github.com/slided/slided/status"
)

// PairConfig describes two slided daemons in two namespaces sharing one
// simulated medium.
type PairConfig struct {
	Bin    string   // the slided binary
	Dir    string   // where sockets and logs go (a temporary directory)
	Rate   int      // the medium's bit rate
	Subnet string   // first three octets of a /24 from the documentation ranges, e.g. "192.0.2"
	Args   []string // extra arguments for both daemons' run command
	// NodeArgs, if set, gives extra arguments for daemon i (0 or 1).
	NodeArgs func(i int) []string
	TAP      string // TAP name (default "slided0")
	// MediumArgs are extra arguments for the medium (slided sim), e.g.
	// -scenario FILE.
	MediumArgs []string
	// NoIPv6 turns IPv6 off in both namespaces before the daemons start:
	// no router solicitations or MLD reports from the kernel, so the
	// first frame a node sends is the test's own (an ARP request).
	NoIPv6 bool
}

// Pair is a running pair: node 1 in NS[0] at Addr[0], node 2 in NS[1] at Addr[1].
type Pair struct {
	Cfg     PairConfig
	NS      [2]string
	Addr    [2]string
	Ctl     [2]string
	Logs    [3]string // medium, daemon 1, daemon 2
	Medium  *Proc
	Daemons [2]*Proc

	argv [2][]string // each daemon's command line, for RestartNode
}

// StartPair starts a medium and two daemons and waits until both daemons
// report their modem up.
func (l *Lab) StartPair(cfg PairConfig) (*Pair, error) {
	if cfg.TAP == "" {
		cfg.TAP = "slided0"
	}
	p := &Pair{Cfg: cfg}
	sock := filepath.Join(cfg.Dir, "medium.sock")
	p.Logs[0] = filepath.Join(cfg.Dir, "medium.log")
	margs := append([]string{cfg.Bin, "sim", "-listen", sock, "-rate", strconv.Itoa(cfg.Rate), "-log-format", "json"}, cfg.MediumArgs...)
	m, err := l.Start("", "medium", p.Logs[0], margs...)
	if err != nil {
		return nil, err
	}
	p.Medium = m
	for i := range 2 {
		ns, err := l.AddNS(fmt.Sprintf("n%d", i+1))
		if err != nil {
			return nil, err
		}
		p.NS[i] = ns
		if cfg.NoIPv6 {
			if out, err := l.Exec(ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"); err != nil {
				return nil, fmt.Errorf("turn IPv6 off in %s: %w: %s", ns, err, out)
			}
		}
		p.Addr[i] = fmt.Sprintf("%s.%d", cfg.Subnet, i+1)
		p.Ctl[i] = filepath.Join(cfg.Dir, fmt.Sprintf("node%d.ctl", i+1))
		p.Logs[i+1] = filepath.Join(cfg.Dir, fmt.Sprintf("node%d.log", i+1))
		args := []string{cfg.Bin, "run", "-tap", cfg.TAP, "-node", strconv.Itoa(i + 1),
			"-phy", "sim:" + sock, "-addr", p.Addr[i] + "/24", "-control", p.Ctl[i], "-log-format", "json"}
		args = append(args, cfg.Args...)
		if cfg.NodeArgs != nil {
			args = append(args, cfg.NodeArgs(i)...)
		}
		d, err := l.Start(ns, fmt.Sprintf("node%d", i+1), p.Logs[i+1], args...)
		if err != nil {
			return nil, err
		}
		p.Daemons[i] = d
		p.argv[i] = args
	}
	for i := range 2 {
		if err := p.waitUp(i); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// RestartNode stops daemon i (0 or 1) with SIGTERM, starts it again with the
// same command line (its TAP is created anew) and waits until its modem is
// up.
func (l *Lab) RestartNode(p *Pair, i int) error {
	if err := p.Daemons[i].Stop(10 * time.Second); err != nil {
		return fmt.Errorf("stop node%d: %w", i+1, err)
	}
	d, err := l.Start(p.NS[i], fmt.Sprintf("node%d", i+1), p.Logs[i+1], p.argv[i]...)
	if err != nil {
		return err
	}
	p.Daemons[i] = d
	return p.waitUp(i)
}

// waitUp waits up to 15 s until daemon i reports its modem up.
func (p *Pair) waitUp(i int) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := p.Status(i)
		if err == nil && st.Bridge != nil && st.Bridge.Up {
			return nil
		}
		if done, perr := p.Daemons[i].Exited(); done {
			return fmt.Errorf("node%d exited (%v); its log:\n%s", i+1, perr, Tail(p.Logs[i+1], 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node%d not up after 15s (last: %v); its log:\n%s", i+1, err, Tail(p.Logs[i+1], 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Status asks daemon i (0 or 1) for its status.
func (p *Pair) Status(i int) (*status.Snapshot, error) {
	raw, err := control.Query(p.Ctl[i], "status", 2*time.Second)
	if err != nil {
		return nil, err
	}
	var st status.Snapshot
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, err
	}
	if st.Bridge == nil {
		return &st, errors.New("bridge not running yet")
	}
	return &st, nil
}

// Tail returns the last n lines of a file, for error messages.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
