//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capability numbers (linux/capability.h).
const (
	capSetgid   = 6
	capSetuid   = 7
	capNetAdmin = 12 // the one capability the daemon keeps: the pacer retunes the qdisc
)

// exitPrivileges is the exit status of `slided run` when -user cannot be
// applied. Restarting cannot help, so packaging/slided.service names it in
// RestartPreventExitStatus (sysexits.h calls 77 EX_NOPERM).
const exitPrivileges = 77

// privilegeError is a failure to apply -user; cmdRun turns it into
// exitPrivileges.
type privilegeError struct{ err error }

func (e *privilegeError) Error() string { return e.err.Error() }
func (e *privilegeError) Unwrap() error { return e.err }

// credentials are what -user resolves to, checked before the daemon sets
// anything up so that a -user that cannot work fails at once.
type credentials struct {
	name     string
	uid, gid int
	groups   []int // supplementary groups
	// already: the process runs as this user (systemd's User=, with
	// AmbientCapabilities=CAP_NET_ADMIN): apply only trims capabilities.
	already bool
}

// resolveUser looks up the account name and checks that this process can
// switch to it: it needs CAP_SETUID and CAP_SETGID unless it already runs
// as that user and group. A failure to read the account's supplementary
// groups is an error, not a silent drop of those groups.
func resolveUser(name string) (*credentials, error) {
	c, err := lookupCredentials(name)
	if err != nil {
		return nil, &privilegeError{err}
	}
	if c.uid == os.Getuid() && c.uid == os.Geteuid() && c.gid == os.Getgid() && c.gid == os.Getegid() {
		c.already = true
		return c, nil
	}
	eff, err := effectiveCaps()
	if err != nil {
		return nil, &privilegeError{fmt.Errorf("-user %s: %w", name, err)}
	}
	var missing []string
	if eff&(1<<capSetuid) == 0 {
		missing = append(missing, "CAP_SETUID")
	}
	if eff&(1<<capSetgid) == 0 {
		missing = append(missing, "CAP_SETGID")
	}
	if len(missing) > 0 {
		return nil, &privilegeError{fmt.Errorf("-user %s: switching user needs %s, which this process lacks "+
			"(under systemd: add them to CapabilityBoundingSet=, or set User=%s and drop -user)",
			name, strings.Join(missing, " and "), name)}
	}
	return c, nil
}

func lookupCredentials(name string) (*credentials, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("-user %s: %w", name, err)
	}
	c := &credentials{name: name}
	if c.uid, err = strconv.Atoi(u.Uid); err != nil {
		return nil, fmt.Errorf("-user %s: uid %q: %w", name, u.Uid, err)
	}
	if c.gid, err = strconv.Atoi(u.Gid); err != nil {
		return nil, fmt.Errorf("-user %s: gid %q: %w", name, u.Gid, err)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("-user %s: cannot read its supplementary groups (/etc/group): %w", name, err)
	}
	for _, s := range ids {
		g, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("-user %s: supplementary group id %q: %w", name, s, err)
		}
		c.groups = append(c.groups, g)
	}
	return c, nil
}

// effectiveCaps reads the effective capability set of this process.
func effectiveCaps() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("read capabilities: CapEff %q: %w", v, err)
			}
			return caps, nil
		}
	}
	return 0, errors.New("read capabilities: no CapEff in /proc/self/status")
}

// apply switches every thread of the process to c (uid, primary group and
// supplementary groups) and keeps only CAP_NET_ADMIN, in the effective and
// permitted sets. If the process already runs as c it only trims the
// capabilities (setgroups would fail without CAP_SETGID). It needs a static
// build (CGO_ENABLED=0): with cgo, Go cannot change credentials on all
// threads. Errors are *privilegeError.
func (c *credentials) apply() error {
	if err := c.switchUser(); err != nil {
		return &privilegeError{err}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{{Effective: 1 << capNetAdmin, Permitted: 1 << capNetAdmin}}
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		if e == syscall.ENOTSUP {
			return &privilegeError{errors.New("-user needs a static build (CGO_ENABLED=0), which can change credentials on every thread")}
		}
		return &privilegeError{fmt.Errorf("-user %s: capset: %w", c.name, e)}
	}
	return nil
}

func (c *credentials) switchUser() error {
	if c.already {
		return nil
	}
	// Keep the permitted capabilities across setuid; the effective set is
	// cleared by it and restored by apply.
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0); e != 0 {
		if e == syscall.ENOTSUP {
			return errors.New("-user needs a static build (CGO_ENABLED=0), which can change credentials on every thread")
		}
		return fmt.Errorf("-user %s: prctl(PR_SET_KEEPCAPS): %w", c.name, e)
	}
	if err := syscall.Setgroups(c.groups); err != nil {
		return fmt.Errorf("-user %s: setgroups: %w", c.name, err)
	}
	if err := syscall.Setgid(c.gid); err != nil {
		return fmt.Errorf("-user %s: setgid %d: %w", c.name, c.gid, err)
	}
	if err := syscall.Setuid(c.uid); err != nil {
		return fmt.Errorf("-user %s: setuid %d: %w", c.name, c.uid, err)
	}
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0); e != 0 {
		return fmt.Errorf("-user %s: prctl(PR_SET_KEEPCAPS, 0): %w", c.name, e)
	}
	return nil
}
