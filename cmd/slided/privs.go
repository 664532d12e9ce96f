package main

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// capNetAdmin is the one capability the daemon keeps after setup: the pacer
// retunes the TAP's qdisc over netlink while it runs.
const capNetAdmin = 12

// dropPrivileges switches every thread of the process to the named user
// (its uid, primary group and supplementary groups) and keeps only
// CAP_NET_ADMIN, in the effective and permitted sets. It needs a static build
// (CGO_ENABLED=0): with cgo, Go cannot change credentials on all threads.
func dropPrivileges(name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("-user %s: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("-user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("-user %s: gid %q: %w", name, u.Gid, err)
	}
	var gids []int
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil {
				gids = append(gids, g)
			}
		}
	}
	// Keep the permitted capabilities across setuid; the effective set is
	// cleared by it and restored below.
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0); e != 0 {
		if e == syscall.ENOTSUP {
			return errors.New("-user needs a static build (CGO_ENABLED=0), which can change credentials on every thread")
		}
		return fmt.Errorf("prctl(PR_SET_KEEPCAPS): %w", e)
	}
	if err := syscall.Setgroups(gids); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid %d: %w", uid, err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{{Effective: 1 << capNetAdmin, Permitted: 1 << capNetAdmin}}
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_KEEPCAPS, 0): %w", e)
	}
	return nil
}
