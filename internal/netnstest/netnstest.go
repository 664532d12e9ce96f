// Package netnstest runs tests inside network namespaces that the tests
// create and remove themselves, so that TAP devices, addresses, qdiscs and
// traffic never touch the host's network.
//
// It needs root (or CAP_SYS_ADMIN and CAP_NET_ADMIN) and the ip(8) command.
// A test that cannot get a namespace fails; it never skips, because a skip
// would hide the feature under test.
package netnstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// envInside marks a test binary that Main has already re-executed inside
// its namespace; its value is the namespace's name.
const envInside = "SLIDED_NETNSTEST_NS"

// Inside reports the name of the namespace Main put this process in, or ""
// when the process was not started by Main.
func Inside() string { return os.Getenv(envInside) }

// Main runs the test binary inside a fresh network namespace. If the process
// is not already inside one made by Main, it creates a namespace named
// "slided-test-<pid>", brings its loopback up, re-executes the test binary
// in it with the same arguments (ip netns exec), kills whatever the child
// left running in the namespace, removes the namespace and exits with the
// child's status. Inside the namespace it runs m and exits.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { netnstest.Main(m) }
//
// SIGINT and SIGTERM received while the child runs are passed on to the
// child, so an interrupted run still removes its namespace.
func Main(m *testing.M) {
	if Inside() != "" {
		os.Exit(m.Run())
	}
	if err := requireRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "netnstest:", err)
		os.Exit(2)
	}
	name := "slided-test-" + strconv.Itoa(os.Getpid())
	if err := add(name); err != nil {
		fmt.Fprintln(os.Stderr, "netnstest:", err)
		os.Exit(2)
	}
	code := runInside(name)
	if err := remove(name); err != nil {
		fmt.Fprintln(os.Stderr, "netnstest:", err)
		if code == 0 {
			code = 2
		}
	}
	os.Exit(code)
}

// runInside re-executes the test binary inside namespace name and returns
// its exit status.
func runInside(name string) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "netnstest: find test binary:", err)
		return 2
	}
	args := append([]string{"netns", "exec", name, exe}, os.Args[1:]...)
	cmd := exec.Command("ip", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInside+"="+name)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "netnstest: start test binary:", err)
		return 2
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // exits when the child does
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case err := <-done:
			if err == nil {
				return 0
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() > 0 {
				return ee.ExitCode()
			}
			fmt.Fprintln(os.Stderr, "netnstest: test binary:", err)
			return 2
		}
	}
}

var seq atomic.Uint32

// New creates a network namespace named "<prefix>-<pid>-<n>" with its
// loopback up and returns its name. t.Cleanup kills every process left in
// it (by PID) and removes it. Not being root fails the test.
func New(t testing.TB, prefix string) string {
	t.Helper()
	if err := requireRoot(); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
	if err := add(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := remove(name); err != nil {
			t.Error(err)
		}
	})
	return name
}

// Exec runs argv inside namespace ns (ip netns exec) and returns its
// combined output. The error wraps the exit status and includes the output.
func Exec(ns string, argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("netnstest: exec: empty command")
	}
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netnstest: %s in %s: %w: %s", strings.Join(argv, " "), ns, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Start starts argv inside namespace ns with its output going to the test
// log, and registers a cleanup that kills it by PID and waits for it. The
// caller may Wait for it first; the cleanup then only reaps nothing.
func Start(t testing.TB, ns string, argv ...string) *exec.Cmd {
	t.Helper()
	if len(argv) == 0 {
		t.Fatal("netnstest: start: empty command")
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	w := logWriter{t}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("netnstest: start %s in %s: %v", strings.Join(argv, " "), ns, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return
		}
		_ = cmd.Process.Kill() // ip netns exec execs the command: this PID is the command itself
		_ = cmd.Wait()
	})
	return cmd
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func requireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("netnstest: these tests create network namespaces and TAP devices: run them as root (CI does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("netnstest: the ip command (iproute2) is needed: %w", err)
	}
	return nil
}

func add(name string) error {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("netnstest: ip netns add %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		_ = remove(name)
		return fmt.Errorf("netnstest: loopback up in %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// remove kills the processes left in namespace name, by PID, and deletes it.
func remove(name string) error {
	for range 3 {
		pids, err := Pids(name)
		if err != nil || len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond) // let the kernel reap them before deleting
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("netnstest: ip netns del %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Pids lists the processes running in namespace name (ip netns pids).
func Pids(name string) ([]int, error) {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return nil, fmt.Errorf("netnstest: ip netns pids %s: %w", name, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
