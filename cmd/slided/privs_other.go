//go:build !linux

package main

import (
	"fmt"
	"runtime"
)

// capNetAdmin is Linux's CAP_NET_ADMIN (linux/capability.h); hasNetAdmin
// only uses it where /proc/self/status has a CapEff line, which other
// systems lack (it then asks for euid 0).
const capNetAdmin = 12

// exitPrivileges is the exit status of `slided run` when -user cannot be
// applied (sysexits.h calls 77 EX_NOPERM).
const exitPrivileges = 77

// privilegeError is a failure to apply -user; cmdRun turns it into
// exitPrivileges.
type privilegeError struct{ err error }

func (e *privilegeError) Error() string { return e.err.Error() }
func (e *privilegeError) Unwrap() error { return e.err }

// credentials are what -user resolves to; on this system -user is refused
// before any is made.
type credentials struct{ name string }

// resolveUser refuses -user. On Linux the daemon keeps CAP_NET_ADMIN after
// the switch; other systems have no such capability, and an unprivileged
// process could not even destroy its TAP on exit (FreeBSD's cloned TAPs
// outlive their descriptor and SIOCIFDESTROY needs root), so it would
// leave the interface behind. Run as root, in a jail if it must be
// confined (docs/operations.md, "FreeBSD").
func resolveUser(name string) (*credentials, error) {
	return nil, &privilegeError{fmt.Errorf("-user %s: not supported on %s: the daemon needs root to the end, to destroy its TAP (run it as root, in a jail to confine it)", name, runtime.GOOS)}
}

// apply is never reached: resolveUser refuses every -user.
func (c *credentials) apply() error {
	return &privilegeError{fmt.Errorf("-user %s: not supported on %s", c.name, runtime.GOOS)}
}
