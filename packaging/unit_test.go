// Package packaging holds the files a distribution installs (the systemd
// unit, an example configuration, a Wireshark dissector); its tests check
// them.
package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// exitPrivileges is the exit status of `slided run` when -user cannot be
// applied (cmd/slided/privs.go); the unit must not restart on it.
const exitPrivileges = "77"

// unitDirectives reads the [Service] directives of a unit file; a directive
// given several times collects every value, and an empty assignment resets.
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section != "[Service]" {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if v == "" {
			delete(d, k)
			continue
		}
		d[k] = append(d[k], strings.Fields(v)...)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestUnitVerifies runs systemd-analyze verify on the unit, with ExecStart
// pointed at a freshly built slided (verify checks that the binary exists).
// Any warning fails the test: verify exits 0 on unknown keys.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is missing; it checks packaging/slided.service (Debian: apt-get install systemd)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "slided")
	build := exec.Command("go", "build", "-o", bin, "../cmd/slided")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build slided: %v\n%s", err, out)
	}
	unit, err := os.ReadFile("slided.service")
	if err != nil {
		t.Fatal(err)
	}
	const shipped = "ExecStart=/usr/local/bin/slided "
	if !strings.Contains(string(unit), shipped) {
		t.Fatalf("the unit has no %q line", shipped)
	}
	copyPath := filepath.Join(dir, "slided.service")
	text := strings.Replace(string(unit), shipped, "ExecStart="+bin+" ", 1)
	if err := os.WriteFile(copyPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnitAgreesWithTheDaemon: what the daemon does under the unit must be
// allowed by the unit. -user needs CAP_SETUID and CAP_SETGID in the bounding
// set; a failing -user must not be retried forever; another helper keeps
// state in /var/lib/slided.
func TestUnitAgreesWithTheDaemon(t *testing.T) {
	d := unitDirectives(t, "slided.service")
	for _, c := range []string{"CAP_NET_ADMIN", "CAP_SETUID", "CAP_SETGID"} {
		if !slices.Contains(d["CapabilityBoundingSet"], c) {
			t.Errorf("CapabilityBoundingSet %v lacks %s (-user needs it)", d["CapabilityBoundingSet"], c)
		}
	}
	if !slices.Contains(d["RestartPreventExitStatus"], exitPrivileges) {
		t.Errorf("RestartPreventExitStatus %v does not name %s, the exit status of a failing -user: systemd would restart it in a loop",
			d["RestartPreventExitStatus"], exitPrivileges)
	}
	if !slices.Contains(d["StateDirectory"], "slided") {
		t.Errorf("StateDirectory %v, want slided (/var/lib/slided)", d["StateDirectory"])
	}
}
