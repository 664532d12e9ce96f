// Package direwolftest runs real Dire Wolf soundcard modems for tests: two
// instances, each in its own network namespace, joined by an audio relay in
// the test process instead of a radio. It also has the namespace helpers
// such tests need: the test process stays in its own namespace and opens
// sockets inside a test namespace with DialIn and ListenIn.
package direwolftest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// NewNS creates the network namespace name (ip netns add), brings its
// loopback up, and deletes it in t.Cleanup. Register it before anything
// that runs inside it, so that it is removed last.
func NewNS(t testing.TB, name string) string {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	linkUp(t, name)
	return name
}

func linkUp(t testing.TB, ns string) {
	t.Helper()
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("bring lo up in %s: %v: %s", ns, err, out)
	}
}

// inNS runs f on a thread switched into namespace ns; sockets f creates
// stay in ns. The thread goes back to its namespace afterwards; if that
// fails it stays locked, and Go discards it when the goroutine ends.
func inNS(ns string, f func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("direwolftest: current netns: %w", err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("direwolftest: netns %s: %w", ns, err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("direwolftest: enter netns %s: %w", ns, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("direwolftest: leave netns %s: %w", ns, err) // thread stays locked
	}
	runtime.UnlockOSThread()
	return ferr
}

// DialIn returns a dial function (the shape of net.Dialer.DialContext) whose
// sockets are created inside namespace ns.
func DialIn(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNS(ns, func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		if err != nil && c != nil {
			c.Close()
			return nil, err
		}
		return c, err
	}
}

// ListenIn listens on addr inside namespace ns.
func ListenIn(ns, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNS(ns, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil && l != nil {
		l.Close()
		return nil, err
	}
	return l, err
}
