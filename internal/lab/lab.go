//go:build linux

// Package lab builds small test networks on one host: network namespaces,
// processes started inside them, and sockets opened inside them. `slided
// demo` and the end-to-end tests use it. Everything a Lab creates is removed
// by Close: processes are stopped by their own PID, namespaces deleted.
//
// A Lab is not safe for concurrent use; one goroutine sets it up and tears it
// down.
package lab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// Lab owns namespaces and processes.
type Lab struct {
	prefix     string
	namespaces []string
	procs      []*Proc
}

// Proc is a process the Lab started.
type Proc struct {
	Cmd  *exec.Cmd
	Name string
	done chan struct{}
	err  error
}

// New returns an empty Lab whose namespaces are named prefix-<pid>-<name>.
// It fails without CAP_SYS_ADMIN/CAP_NET_ADMIN (run as root).
func New(prefix string) (*Lab, error) {
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("the ip command (iproute2) is missing: apt-get install iproute2")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("creating network namespaces needs root: run as root")
	}
	return &Lab{prefix: fmt.Sprintf("%s-%d", prefix, os.Getpid())}, nil
}

// AddNS creates a namespace, brings its loopback up and returns its name.
func (l *Lab) AddNS(name string) (string, error) {
	full := l.prefix + "-" + name
	if out, err := exec.Command("ip", "netns", "add", full).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %v: %s", full, err, strings.TrimSpace(string(out)))
	}
	l.namespaces = append(l.namespaces, full)
	if out, err := exec.Command("ip", "-n", full, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return "", fmt.Errorf("bring lo up in %s: %v: %s", full, err, strings.TrimSpace(string(out)))
	}
	return full, nil
}

// Start starts argv inside namespace ns ("" for the caller's own), with its
// output appended to logPath (discarded if ""). The process is stopped by
// Close if it is still running.
func (l *Lab) Start(ns, name, logPath string, argv ...string) (*Proc, error) {
	if ns != "" {
		// ip netns exec execs the command, so the PID we hold is its own.
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := startFromSpawner(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Cmd: cmd, Name: name, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.procs = append(l.procs, p)
	return p, nil
}

// spawn carries process starts to the spawner thread.
var spawn = make(chan func())

// startFromSpawner starts cmd from one OS thread that never exits. Pdeathsig
// is sent when the *thread* that forked the child ends, not the process
// (prctl(2) PR_SET_PDEATHSIG; golang/go#27505): a child forked from a
// thread the runtime later ends (a goroutine that exits while locked to
// it) is killed with the test still running, which ended a daemon in the
// middle of a SIGSTOP once ("process already finished" at SIGCONT). The
// spawner's thread lives as long as the process, so Pdeathsig fires only
// when the test process dies, as intended.
func startFromSpawner(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	spawn <- func() { errc <- cmd.Start() }
	return <-errc
}

func init() {
	go func() {
		runtime.LockOSThread() // never unlocked: this thread only forks
		for f := range spawn {
			f()
		}
	}()
}

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to grace, then SIGKILL. It returns the
// process's exit error (nil for a clean exit on SIGTERM).
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
	}
	p.Cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s did not stop within %s and was killed", p.Name, grace)
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Exec runs argv inside ns and returns its combined output.
func (l *Lab) Exec(ns string, argv ...string) (string, error) {
	argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv[4:], " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Close stops every process (in reverse order of start) and deletes every
// namespace. It returns the first error it met but always does all of it.
func (l *Lab) Close() error {
	var first error
	for i := len(l.procs) - 1; i >= 0; i-- {
		p := l.procs[i]
		select {
		case <-p.done:
			continue
		default:
		}
		if err := p.Stop(5 * time.Second); err != nil && first == nil && !isSignalExit(err) {
			first = err
		}
	}
	l.procs = nil
	for _, ns := range l.namespaces {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil && first == nil {
			first = fmt.Errorf("ip netns del %s: %v: %s", ns, err, strings.TrimSpace(string(out)))
		}
	}
	l.namespaces = nil
	return first
}

func isSignalExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// InNS runs fn on an OS thread switched into namespace ns. Sockets fn opens
// stay in ns for their whole life, whichever thread uses them later.
func InNS(ns string, fn func() error) error {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			runtime.UnlockOSThread()
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			runtime.UnlockOSThread()
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with this goroutine
			// instead of serving others in the wrong namespace.
			errc <- errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// ListenUDP opens a UDP socket inside ns bound to addr (e.g. "192.0.2.1:5000").
func ListenUDP(ns, addr string) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := InNS(ns, func() error {
		a, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp", a)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("udp socket in %s on %s: %w", ns, addr, err)
	}
	return c, nil
}
