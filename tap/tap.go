//go:build linux

// Package tap gives slided its Ethernet interface: a TAP device opened
// non-blocking and close-on-exec through /dev/net/tun, its link settings
// (MAC, MTU, txqueuelen, addresses, up) over rtnetlink, and the Shaper, the
// qdisc on the TAP that carries backpressure to the sending applications.
//
// Why a qdisc: since Linux 3.8 the tun driver drops when its ring is full
// and orphans each skb as it enters the ring, so only packets held in the
// qdisc still count against a sender's socket buffer. A rate-limiting qdisc
// whose rate follows what the MAC achieves makes senders block (or see
// EAGAIN) instead of losing packets at the TAP. IFF_BACKPRESSURE, where the
// kernel has it, makes the tun driver stop its queue instead of dropping;
// Create asks for it when told to and TUNGETFEATURES reports it.
//
// Everything here talks to the kernel in the calling thread's network
// namespace.
package tap

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// IFFBackpressure is the TUNSETIFF flag (if_tun.h) that makes the tun
// driver stop its transmit queue instead of dropping when its ring is full.
const IFFBackpressure = 0x0080

// tunPath is the clone device.
const tunPath = "/dev/net/tun"

// ErrBadName reports an interface name the kernel would refuse: empty,
// longer than 15 bytes, "." or "..", or containing '/', ':' or white space.
var ErrBadName = errors.New("tap: bad interface name")

// Config describes the TAP device to create.
type Config struct {
	// Name is the interface name (required, at most 15 bytes).
	Name string
	// MTU is the link MTU; 0 leaves the kernel default (1500).
	MTU int
	// TxQueueLen is the device's txqueuelen; 0 leaves the default (1000).
	// slided uses a small value so that little hides in the tun ring.
	TxQueueLen int
	// MAC is the interface's Ethernet address; nil lets the kernel choose.
	MAC net.HardwareAddr
	// Addrs are addresses to add (IPv4 and/or IPv6). IPv6 addresses are
	// added with IFA_F_NODAD: the link is point-to-multipoint over a slow
	// channel and a DAD probe would hold them tentative for seconds.
	Addrs []netip.Prefix
	// Backpressure asks for IFF_BACKPRESSURE if TUNGETFEATURES reports it;
	// Device.Backpressure says whether it took effect.
	Backpressure bool
}

// Device is an open TAP device. Read and Write may be called concurrently
// with each other and with Close (one reader and one writer at a time: each
// call moves one whole frame). Close unblocks a blocked Read, which then
// returns an error for which errors.Is(err, os.ErrClosed) holds.
type Device struct {
	f            *os.File
	name         string
	index        int
	backpressure bool
	gsoErr       error // gso_max_segs could not be set to 1 (GSOLimit)

	closeOnce sync.Once
	closeErr  error
}

// Create opens /dev/net/tun (O_RDWR|O_NONBLOCK|O_CLOEXEC), makes a TAP
// device with TUNSETIFF (IFF_TAP|IFF_NO_PI, plus IFF_BACKPRESSURE when asked
// and supported), applies cfg over netlink and brings the link up. The
// device is not persistent: it goes away when the Device is closed or the
// process exits. On any failure nothing is left behind (no fd, no device).
// Errors name the step and wrap the cause; a permission error says that
// root or CAP_NET_ADMIN is needed.
func Create(cfg Config) (*Device, error) {
	if err := checkName(cfg.Name); err != nil {
		return nil, err
	}
	if cfg.MTU < 0 || cfg.TxQueueLen < 0 {
		return nil, fmt.Errorf("tap: %s: negative MTU or txqueuelen", cfg.Name)
	}
	if cfg.MAC != nil && len(cfg.MAC) != 6 {
		return nil, fmt.Errorf("tap: %s: MAC %v is not a 6-byte Ethernet address", cfg.Name, cfg.MAC)
	}
	fd, err := unix.Open(tunPath, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, stepErr(cfg.Name, "open "+tunPath, err)
	}
	// From here on the fd is ours to close on failure; closing it destroys
	// the (non-persistent) device too.
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if cfg.Backpressure {
		feat, err := unix.IoctlGetUint32(fd, unix.TUNGETFEATURES)
		if err != nil {
			unix.Close(fd)
			return nil, stepErr(cfg.Name, "TUNGETFEATURES", err)
		}
		if feat&IFFBackpressure != 0 {
			flags |= IFFBackpressure
		}
	}
	ifr, err := unix.NewIfreq(cfg.Name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %q: %w", ErrBadName, cfg.Name, err)
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		switch {
		case errors.Is(err, unix.EINVAL):
			err = fmt.Errorf("%w (is the name taken by a device that is not a TAP?)", err)
		case errors.Is(err, unix.EBUSY):
			err = fmt.Errorf("%w (is a TAP of that name open elsewhere?)", err)
		}
		return nil, stepErr(cfg.Name, "TUNSETIFF", err)
	}
	// TUNSETIFF ignores flags it does not know: read back what took effect.
	got, err := unix.NewIfreq(cfg.Name)
	if err == nil {
		err = unix.IoctlIfreq(fd, unix.TUNGETIFF, got)
	}
	if err != nil {
		unix.Close(fd)
		return nil, stepErr(cfg.Name, "TUNGETIFF", err)
	}
	d := &Device{
		// The fd is non-blocking, so os.NewFile registers it with the
		// runtime poller: Read parks the goroutine, Close wakes it.
		f:            os.NewFile(uintptr(fd), tunPath),
		name:         got.Name(),
		backpressure: got.Uint16()&IFFBackpressure != 0,
	}
	if err := d.configure(cfg); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// configure applies cfg to the new link and brings it up.
func (d *Device) configure(cfg Config) error {
	link, err := netlink.LinkByName(d.name)
	if err != nil {
		return stepErr(d.name, "find link", err)
	}
	d.index = link.Attrs().Index
	if cfg.MAC != nil {
		if err := netlink.LinkSetHardwareAddr(link, cfg.MAC); err != nil {
			return stepErr(d.name, "set MAC", err)
		}
	}
	if cfg.MTU > 0 {
		if err := netlink.LinkSetMTU(link, cfg.MTU); err != nil {
			return stepErr(d.name, fmt.Sprintf("set MTU %d", cfg.MTU), err)
		}
	}
	if cfg.TxQueueLen > 0 {
		if err := netlink.LinkSetTxQLen(link, cfg.TxQueueLen); err != nil {
			return stepErr(d.name, fmt.Sprintf("set txqueuelen %d", cfg.TxQueueLen), err)
		}
	}
	// One packet per skb through the qdisc: the stack would otherwise send
	// TCP in GSO skbs of up to 64 KiB that the device cuts into dozens of
	// packets after the qdisc, where the credit (shaper.go) counts one,
	// and the ring overflows (iperf3 through two daemons: 2 ring drops in
	// 30 s). A kernel that cannot set it keeps its default: said, not fatal.
	if err := netlink.LinkSetGSOMaxSegs(link, 1); err != nil {
		d.gsoErr = stepErr(d.name, "set gso_max_segs 1", err)
	}
	for _, p := range cfg.Addrs {
		if !p.IsValid() {
			return fmt.Errorf("tap: %s: add address: invalid prefix", d.name)
		}
		a := &netlink.Addr{IPNet: &net.IPNet{
			IP:   p.Addr().AsSlice(),
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, a); err != nil {
			if p.Addr().Is6() && cfg.MTU > 0 && cfg.MTU < 1280 {
				err = fmt.Errorf("%w (IPv6 needs an MTU of at least 1280)", err)
			}
			return stepErr(d.name, "add address "+p.String(), err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return stepErr(d.name, "set link up", err)
	}
	return nil
}

// GSOLimit reports why the device could not be limited to one packet per
// skb (gso_max_segs 1), or nil when it is: without it a TCP sender's GSO
// skbs pass the credit as one packet each.
func (d *Device) GSOLimit() error { return d.gsoErr }

// Read reads one Ethernet frame into p and returns its length. p should hold
// MTU+14 bytes; a longer frame is cut to len(p). Read blocks until a frame
// arrives or the Device is closed.
func (d *Device) Read(p []byte) (int, error) { return d.f.Read(p) }

// Write sends one Ethernet frame (destination, source, EtherType, payload)
// into the kernel as if received on the link. The device does not keep p.
func (d *Device) Write(p []byte) (int, error) { return d.f.Write(p) }

// Name is the interface name.
func (d *Device) Name() string { return d.name }

// Index is the interface index, as netlink and the Shaper want it.
func (d *Device) Index() int { return d.index }

// Backpressure reports whether IFF_BACKPRESSURE is in effect: the kernel
// stops the TAP's queue when the ring is full instead of dropping.
func (d *Device) Backpressure() bool { return d.backpressure }

// LinkStats are the interface counters. From the kernel's side of the TAP,
// Tx is what the stack sent to the TAP (what Read returns) and TxDropped
// counts frames lost because the ring was full; Rx is what Write injected.
type LinkStats struct {
	TxPackets, TxBytes, TxDropped, TxErrors uint64
	RxPackets, RxBytes, RxDropped, RxErrors uint64
}

// LinkStats reads the interface counters over netlink.
func (d *Device) LinkStats() (LinkStats, error) {
	link, err := netlink.LinkByIndex(d.index)
	if err != nil {
		return LinkStats{}, stepErr(d.name, "read link stats", err)
	}
	s := link.Attrs().Statistics
	if s == nil {
		return LinkStats{}, fmt.Errorf("tap: %s: read link stats: kernel sent none", d.name)
	}
	return LinkStats{
		TxPackets: s.TxPackets, TxBytes: s.TxBytes, TxDropped: s.TxDropped, TxErrors: s.TxErrors,
		RxPackets: s.RxPackets, RxBytes: s.RxBytes, RxDropped: s.RxDropped, RxErrors: s.RxErrors,
	}, nil
}

// Close closes the fd, which unblocks a blocked Read and destroys the
// device (it is not persistent), then makes sure the link is gone. It is
// idempotent: later calls return the first call's result.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.closeErr = d.f.Close()
		if d.index == 0 {
			return
		}
		// The last close of a non-persistent TAP unregisters it; delete it
		// explicitly should anything (a leaked dup of the fd) keep it.
		link, err := netlink.LinkByIndex(d.index)
		if err != nil || link.Attrs().Name != d.name {
			return
		}
		if err := netlink.LinkDel(link); err != nil && d.closeErr == nil {
			d.closeErr = stepErr(d.name, "delete link", err)
		}
	})
	return d.closeErr
}

// Features returns the flags the tun driver supports (TUNGETFEATURES), for
// instance IFFBackpressure.
func Features() (uint32, error) {
	fd, err := unix.Open(tunPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, stepErr("", "open "+tunPath, err)
	}
	defer unix.Close(fd)
	f, err := unix.IoctlGetUint32(fd, unix.TUNGETFEATURES)
	if err != nil {
		return 0, stepErr("", "TUNGETFEATURES", err)
	}
	return f, nil
}

// checkName applies the kernel's dev_valid_name rules.
func checkName(name string) error {
	if name == "" || len(name) > unix.IFNAMSIZ-1 || name == "." || name == ".." ||
		strings.ContainsAny(name, "/: \t\n\r\v\f") {
		return fmt.Errorf("%w: %q", ErrBadName, name)
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
		return fmt.Errorf("%s%s: %w (run as root or with CAP_NET_ADMIN)", prefix, step, err)
	}
	return fmt.Errorf("%s%s: %w", prefix, step, err)
}
