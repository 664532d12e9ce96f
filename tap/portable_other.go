//go:build !linux

package tap

// This file holds, for systems other than Linux, the declarations that
// tap.go, shaper.go and neigh.go make on Linux and that portable code
// (cmd/slided, control, metrics) names: the configuration and counter
// types, and a Shaper and SetNeighParams that say they are not available.
// The shaping qdisc and the per-interface neighbour settings are Linux
// features (rtnetlink, tc); see docs/backpressure.md, "FreeBSD".

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"
)

// ShaperSupported reports whether NewShaper can work on this system.
const ShaperSupported = false

// ErrNotSupported is returned by the parts of this package that exist on
// Linux only.
var ErrNotSupported = errors.New("tap: not supported on " + runtime.GOOS)

// IFFBackpressure is the Linux TUNSETIFF flag of the same name; no other
// system has it, and Device.Backpressure is always false here.
const IFFBackpressure = 0x0080

// ErrBadName reports an interface name the kernel would refuse: empty,
// longer than 15 bytes, "." or "..", or containing '/', ':' or white space.
var ErrBadName = errors.New("tap: bad interface name")

// ifNameMax is the longest interface name (IFNAMSIZ-1 on the BSDs and
// Linux alike).
const ifNameMax = 15

// Config describes the TAP device to create.
type Config struct {
	// Name is the interface name (required, at most 15 bytes).
	Name string
	// MTU is the link MTU; 0 leaves the kernel default (1500).
	MTU int
	// TxQueueLen is Linux's txqueuelen; it is ignored here. On FreeBSD the
	// TAP's send queue has the length of the boot-time tunable
	// net.link.ifqmaxlen (50 frames by default).
	TxQueueLen int
	// MAC is the interface's Ethernet address; nil lets the kernel choose.
	MAC net.HardwareAddr
	// Addrs are addresses to add (IPv4 and/or IPv6).
	Addrs []netip.Prefix
	// Backpressure asks for Linux's IFF_BACKPRESSURE; elsewhere it is
	// ignored and Device.Backpressure reports false.
	Backpressure bool
}

// LinkStats are the interface counters. From the kernel's side of the TAP,
// Tx is what the stack sent to the TAP (what Read returns) and TxDropped
// counts frames lost because its send queue was full; Rx is what Write
// injected.
type LinkStats struct {
	TxPackets, TxBytes, TxDropped, TxErrors uint64
	RxPackets, RxBytes, RxDropped, RxErrors uint64
}

// checkName applies the rules common to Linux's dev_valid_name and the
// BSDs' interface names.
func checkName(name string) error {
	if name == "" || len(name) > ifNameMax || name == "." || name == ".." ||
		strings.ContainsAny(name, "/: \t\n\r\v\f") {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return nil
}

// checkConfig checks what Create checks before it touches the system.
func checkConfig(cfg Config) error {
	if err := checkName(cfg.Name); err != nil {
		return err
	}
	if cfg.MTU < 0 || cfg.TxQueueLen < 0 {
		return fmt.Errorf("tap: %s: negative MTU or txqueuelen", cfg.Name)
	}
	if cfg.MAC != nil && len(cfg.MAC) != 6 {
		return fmt.Errorf("tap: %s: MAC %v is not a 6-byte Ethernet address", cfg.Name, cfg.MAC)
	}
	for _, p := range cfg.Addrs {
		if !p.IsValid() {
			return fmt.Errorf("tap: %s: add address: invalid prefix", cfg.Name)
		}
	}
	return nil
}

// DefaultFlowLimit is the Linux shaper's per-bucket queue length; kept
// here so that portable code compiles.
const DefaultFlowLimit = 1000

// The Linux shaper's defaults and bounds, kept here so that portable code
// compiles; see shaper.go.
const (
	DefaultGrant      = 2
	DefaultStallLimit = 60 * time.Second
	NoPacing          = 1_250_000_000
	MaxFlowLimit      = 1 << 18
)

// FlowLimitFor returns DefaultFlowLimit: there is no flow queue here.
func FlowLimitFor(wmemMax uint64) (limit uint32, capped bool) { return DefaultFlowLimit, false }

// ShaperConfig sets the qdisc that carries backpressure (Linux only).
type ShaperConfig struct {
	Rate         uint64
	Burst        uint32
	FlowLimit    uint32
	RingLen      uint32
	Grant        uint32
	StallLimit   time.Duration
	NoCredit     bool
	Forward      *ForwardFilter
	ForwardLimit uint32
	Sockets      *SocketFilter
}

// QueueStats are one qdisc's counters.
type QueueStats struct {
	Packets    uint64 // sent
	Bytes      uint64 // sent
	Drops      uint32
	Overlimits uint32 // times a packet had to wait for the pacer's tokens
	Backlog    uint32 // bytes queued
	Qlen       uint32 // packets queued
}

// QdiscStats are the counters of the Shaper's root qdisc.
type QdiscStats struct {
	Root     QueueStats
	Forward  *ForwardStats `json:",omitempty"`
	Regrants uint64        // the credit's grants made again (LazyShaper); never counted here
}

// ForwardStats are the Linux forward class's counters; never filled here.
type ForwardStats struct {
	QueueStats
	Limit uint32 // packets
}

// DefaultForwardQueue is the Linux forward queue's default budget in bytes.
const DefaultForwardQueue = 4 << 20

// ForwardLimit is 0: there is no forward queue here.
func ForwardLimit(budget uint64, mtu int) uint32 { return 0 }

// ForwardFilter is the Linux eBPF classifier of forwarded traffic; here
// none is ever made.
type ForwardFilter struct{}

// LoadForwardFilter fails with ErrNotSupported.
func LoadForwardFilter() (*ForwardFilter, error) { return nil, ErrNotSupported }

// Close does nothing.
func (f *ForwardFilter) Close() error { return nil }

// ForwardErr is nil.
func (s *Shaper) ForwardErr() error { return nil }

// SocketFilter is the Linux eBPF classifier that gives each socket a flow
// bucket; here none is ever made.
type SocketFilter struct{}

// LoadSocketFilter fails with ErrNotSupported.
func LoadSocketFilter() (*SocketFilter, error) { return nil, ErrNotSupported }

// Close does nothing.
func (f *SocketFilter) Close() error { return nil }

// SocketsErr is nil.
func (s *Shaper) SocketsErr() error { return nil }

// SocketBuckets is false.
func (s *Shaper) SocketBuckets() bool { return false }

// Shaper is the Linux qdisc tree; here no Shaper is ever made.
type Shaper struct{}

// NewShaper fails with ErrNotSupported: the shaping qdisc is Linux's tc.
func NewShaper(ifindex int, cfg ShaperConfig) (*Shaper, error) {
	return nil, fmt.Errorf("shaping qdisc on interface %d: %w", ifindex, ErrNotSupported)
}

// SetRate fails with ErrNotSupported.
func (s *Shaper) SetRate(bytesPerSec uint64) error { return ErrNotSupported }

// Rate is 0.
func (s *Shaper) Rate() uint64 { return 0 }

// Stats fails with ErrNotSupported.
func (s *Shaper) Stats() (QdiscStats, error) { return QdiscStats{}, ErrNotSupported }

// Close does nothing.
func (s *Shaper) Close() error { return nil }

// Grant fails with ErrNotSupported.
func (s *Shaper) Grant() error { return ErrNotSupported }

// GrantSize is 0.
func (s *Shaper) GrantSize() uint32 { return 0 }

// GSOCut is 0: there is no credit to cut GSO skbs.
func (s *Shaper) GSOCut() (uint32, error) { return 0, nil }

// Credit is false.
func (s *Shaper) Credit() bool { return false }

// Leak is 0.
func (s *Shaper) Leak() float64 { return 0 }

// SetFlowLimit fails with ErrNotSupported.
func (s *Shaper) SetFlowLimit(limit uint32) error { return ErrNotSupported }

// FlowLimit is 0.
func (s *Shaper) FlowLimit() uint32 { return 0 }

// Kicker sends the Linux credit's wake-up frames; here none is ever made.
type Kicker struct{}

// NewKicker fails with ErrNotSupported.
func NewKicker(ifindex int, mac net.HardwareAddr) (*Kicker, error) { return nil, ErrNotSupported }

// Kick fails with ErrNotSupported.
func (k *Kicker) Kick() error { return ErrNotSupported }

// Close does nothing.
func (k *Kicker) Close() error { return nil }

// IsKick is false: no kick frame is ever sent here.
func IsKick(frame []byte) bool { return false }

// NeighParams are Linux's per-interface neighbour-table settings. The BSDs
// keep the corresponding ARP settings system-wide (net.link.ether.inet.*
// sysctls), which slided does not change.
type NeighParams struct {
	QueueLenBytes     uint32
	RetransTime       time.Duration
	BaseReachableTime time.Duration
	UcastProbes       uint32
	McastProbes       uint32
}

// SetNeighParams fails with ErrNotSupported.
func SetNeighParams(ifindex int, p NeighParams) error {
	return fmt.Errorf("tap: neighbour settings of interface %d are per-interface on Linux only (here: system-wide sysctls, left as they are): %w", ifindex, ErrNotSupported)
}
