package tap

// The FreeBSD TAP backend: if_tuntap(4) through its cloning device
// /dev/tap, link settings with ifconfig(8), counters from the
// net.link.generic.ifdata sysctl. There is no shaping qdisc (see
// docs/backpressure.md, "FreeBSD"): when the TAP's send queue is full the
// kernel drops the packet and tells its sender with ENOBUFS.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NoShaperBackpressure says, for `slided status`, what carries
// backpressure where there is no shaping qdisc.
const NoShaperBackpressure = "no shaping qdisc on FreeBSD: when the TAP's send queue (net.link.ifqmaxlen, 50 frames by default) is full, UDP senders get ENOBUFS and TCP backs off"

const (
	// clonePath is the cloning device: each open creates a new tapN.
	clonePath = "/dev/tap"
	// tapGIFNAME is TAPGIFNAME (net/if_tap.h): _IOR('t', 93, struct ifreq),
	// sizeof(struct ifreq) = 32 on every FreeBSD platform.
	tapGIFNAME = 0x4020745d
	// ifconfigTimeout bounds one ifconfig(8) run.
	ifconfigTimeout = 10 * time.Second
)

// ifconfigPath is ifconfig(8), named absolutely: rc(8) and daemon(8) may
// start slided with a short PATH.
var ifconfigPath = "/sbin/ifconfig"

// ifreq is struct ifreq as TAPGIFNAME and SIOCIFDESTROY use it: the name
// and a union slided leaves zero.
type ifreq struct {
	Name [unix.IFNAMSIZ]byte
	_    [16]byte
}

func newIfreq(name string) (*ifreq, error) {
	var r ifreq
	if len(name) >= len(r.Name) {
		return nil, fmt.Errorf("%w: %q", ErrBadName, name)
	}
	copy(r.Name[:], name)
	return &r, nil
}

func (r *ifreq) name() string {
	b := r.Name[:]
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func ioctlIfreq(fd int, req uint, r *ifreq) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(r)))
	if e != 0 {
		return e
	}
	return nil
}

// Device is an open TAP device. Read and Write may be called concurrently
// with each other and with Close (one reader and one writer at a time: each
// call moves one whole frame). Close unblocks a blocked Read, which then
// returns an error for which errors.Is(err, os.ErrClosed) holds.
type Device struct {
	f     *os.File
	name  string
	index int

	closeOnce sync.Once
	closeErr  error
}

// Create opens /dev/tap (O_RDWR|O_NONBLOCK|O_CLOEXEC), which clones a new
// tapN, learns its name with TAPGIFNAME, renames it to cfg.Name and applies
// the rest of cfg with ifconfig(8) (MTU, MAC, addresses, up). Unlike
// Linux's, a cloned FreeBSD TAP outlives its descriptor; Close and every
// failure path destroy it (SIOCIFDESTROY). cfg.TxQueueLen and
// cfg.Backpressure are ignored: the send queue's length is the boot-time
// tunable net.link.ifqmaxlen and there is no IFF_BACKPRESSURE. Errors name
// the step and wrap the cause; a permission error says that root is needed.
func Create(cfg Config) (*Device, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	if _, err := net.InterfaceByName(cfg.Name); err == nil {
		return nil, fmt.Errorf("tap: %s: an interface of that name exists (left by an earlier run? remove it with: ifconfig %s destroy)", cfg.Name, cfg.Name)
	}
	fd, err := unix.Open(clonePath, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			err = fmt.Errorf("%w (is if_tuntap loaded? kldload if_tuntap)", err)
		}
		return nil, stepErr(cfg.Name, "open "+clonePath, err)
	}
	var r ifreq
	if err := ioctlIfreq(fd, tapGIFNAME, &r); err != nil {
		unix.Close(fd)
		// The clone exists but its name is unknown; nothing to destroy by.
		return nil, stepErr(cfg.Name, "TAPGIFNAME", err)
	}
	d := &Device{
		// The fd is non-blocking, so os.NewFile registers it with the
		// runtime poller (kqueue: if_tuntap has a kqfilter): Read parks
		// the goroutine, Close wakes it.
		f:    os.NewFile(uintptr(fd), clonePath),
		name: r.name(),
	}
	if err := d.configure(cfg); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// configure renames the clone and applies cfg, then brings it up.
func (d *Device) configure(cfg Config) error {
	if d.name != cfg.Name {
		if err := ifconfig(d.name, "name", cfg.Name); err != nil {
			return err
		}
		d.name = cfg.Name
	}
	ifi, err := net.InterfaceByName(d.name)
	if err != nil {
		return stepErr(d.name, "find interface", err)
	}
	d.index = ifi.Index
	if cfg.MTU > 0 {
		if err := ifconfig(d.name, "mtu", strconv.Itoa(cfg.MTU)); err != nil {
			return err
		}
	}
	if cfg.MAC != nil {
		if err := ifconfig(d.name, "ether", cfg.MAC.String()); err != nil {
			return err
		}
	}
	v6 := false
	for _, p := range cfg.Addrs {
		if p.Addr().Is6() && !v6 {
			// New interfaces may start with IPv6 disabled; and as on
			// Linux no DAD: a probe would hold the address tentative for
			// seconds on a slow channel.
			if err := ifconfig(d.name, "inet6", "-ifdisabled", "no_dad"); err != nil {
				return err
			}
			v6 = true
		}
		family := "inet"
		if p.Addr().Is6() {
			family = "inet6"
		}
		if err := ifconfig(d.name, family, p.String(), "alias"); err != nil {
			if p.Addr().Is6() && cfg.MTU > 0 && cfg.MTU < 1280 {
				err = fmt.Errorf("%w (IPv6 needs an MTU of at least 1280)", err)
			}
			return err
		}
	}
	return ifconfig(d.name, "up")
}

// ifconfig runs ifconfig(8) on interface name with args.
func ifconfig(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), ifconfigTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ifconfigPath, append([]string{name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return stepErr(name, "ifconfig "+name+" "+strings.Join(args, " "), err)
	}
	return nil
}

// Read reads one Ethernet frame into p and returns its length. p should hold
// MTU+14 bytes; a longer frame is cut to len(p). Read blocks until a frame
// arrives or the Device is closed.
func (d *Device) Read(p []byte) (int, error) { return d.f.Read(p) }

// Write sends one Ethernet frame (destination, source, EtherType, payload)
// into the kernel as if received on the link. The device does not keep p.
// if_tuntap drops, without an error, a frame written while the interface
// is down or a unicast frame for another MAC address.
func (d *Device) Write(p []byte) (int, error) { return d.f.Write(p) }

// Name is the interface name.
func (d *Device) Name() string { return d.name }

// Index is the interface index.
func (d *Device) Index() int { return d.index }

// Backpressure is false: FreeBSD has no IFF_BACKPRESSURE.
func (d *Device) Backpressure() bool { return false }

// GSOLimit is nil: no qdisc credit here to bypass.
func (d *Device) GSOLimit() error { return nil }

// LinkStats reads the interface counters (sysctl
// net.link.generic.ifdata.INDEX.general). TxDropped is the send queue's
// drop count (ifi_oqdrops): frames whose senders got ENOBUFS.
func (d *Device) LinkStats() (LinkStats, error) {
	b, err := ifMIBData(d.index)
	if err != nil {
		return LinkStats{}, stepErr(d.name, "read link stats", err)
	}
	m, err := parseIfMIBData(b)
	if err != nil {
		return LinkStats{}, stepErr(d.name, "read link stats", err)
	}
	return m.Stats, nil
}

// ifMIBData reads struct ifmibdata of interface index.
func ifMIBData(index int) ([]byte, error) {
	// CTL_NET, PF_LINK, NETLINK_GENERIC, IFMIB_IFDATA, index, IFDATA_GENERAL
	mib := [6]int32{unix.CTL_NET, unix.AF_LINK, 0, 2, int32(index), 1}
	b := make([]byte, 512)
	n := uintptr(len(b))
	_, _, e := unix.Syscall6(unix.SYS___SYSCTL, uintptr(unsafe.Pointer(&mib[0])), uintptr(len(mib)),
		uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&n)), 0, 0)
	if e != 0 {
		return nil, fmt.Errorf("sysctl net.link.generic.ifdata.%d.general: %w", index, e)
	}
	return b[:n], nil
}

// Close closes the fd, which unblocks a blocked Read, and destroys the
// interface (a cloned FreeBSD TAP is not removed by the last close). It is
// idempotent: later calls return the first call's result.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.closeErr = d.f.Close()
		if err := destroy(d.name); err != nil && d.closeErr == nil {
			d.closeErr = err
		}
	})
	return d.closeErr
}

// destroy removes interface name (SIOCIFDESTROY); one already gone is not
// an error.
func destroy(name string) error {
	r, err := newIfreq(name)
	if err != nil {
		return err
	}
	s, err := unix.Socket(unix.AF_LOCAL, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return stepErr(name, "destroy interface: socket", err)
	}
	defer unix.Close(s)
	if err := ioctlIfreq(s, unix.SIOCIFDESTROY, r); err != nil && !errors.Is(err, unix.ENXIO) {
		return stepErr(name, "destroy interface", err)
	}
	return nil
}

// stepErr names the failed step, wraps err and adds a hint on EPERM/EACCES.
func stepErr(name, step string, err error) error {
	prefix := "tap: "
	if name != "" {
		prefix += name + ": "
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%s%s: %w (run as root)", prefix, step, err)
	}
	return fmt.Errorf("%s%s: %w", prefix, step, err)
}
