package netnstest

import (
	"os/exec"
	"strings"
	"testing"
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
		Start(t, name, "sleep", "60") // the cleanup must kill it
		pids, err := Pids(name)
		if err != nil || len(pids) != 1 {
			t.Errorf("Pids(%s) = %v, %v; want the one sleep", name, pids, err)
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
