package netnstest

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestMainPutsUsInANamespace(t *testing.T) {
	if !strings.HasPrefix(Inside(), "slided-test-") {
		t.Fatalf("Inside() = %q, want slided-test-<pid>", Inside())
	}
}

func TestNewExecStart(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		name = New(t, "slt-ns")
		out, err := Exec(name, "ip", "-o", "link", "show", "lo")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "UP") {
			t.Errorf("loopback in %s not up: %s", name, out)
		}
		if _, err := Exec(name, "false"); err == nil {
			t.Error("Exec(false) returned no error")
		}
		cmd := Start(t, name, "sleep", "60") // the cleanup must kill it
		// ip netns exec enters the namespace after fork, so the child may not
		// be listed yet: look again for up to 5 s.
		var pids []int
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if pids, err = Pids(name); err != nil || len(pids) > 0 {
				break
			}
		}
		if err != nil || len(pids) != 1 || pids[0] != cmd.Process.Pid {
			t.Errorf("Pids(%s) = %v, %v; want [%d], the one sleep", name, pids, err, cmd.Process.Pid)
		}
	})
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), name) {
		t.Errorf("namespace %s still listed after cleanup", name)
	}
}
