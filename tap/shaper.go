//go:build linux

package tap

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The qdisc tree a Shaper installs on the TAP (see docs/decisions.md, "TAP
// device", for why it is not tbf+fq or tbf+sfq, and docs/backpressure.md for
// why the rate sits in an htb class and not in a tbf):
//
//	1:      htb, default class 1:1
//	└ 1:100 the pacer class, rate = ceil = ShaperConfig.Rate (SetRate retunes it)
//	  ├ 1:1 .. 1:64  one class per flow bucket, borrowing all of their rate
//	  │   └ 101: .. 140: pfifo, limit = ShaperConfig.FlowLimit packets
//	  └ filter on 1:: cls_bpf, a classic BPF flow hash (classify.go)
//
// The buckets share the pacer's rate round robin, one frame per turn. A tbf
// root would be simpler, but the kernel refills a tbf's bucket on every
// change, so a rate retuned four times a second lets four bursts a second
// through (measured: 84 kB instead of 12.5 kB in 9 s at 1084 B/s); an htb
// class change keeps its tokens.
const (
	rootHandle  = 0x0001_0000 // 1:
	childMajor  = 0x0001      // the buckets are 1:1 .. 1:64
	childHandle = childMajor << 16
	pacerMinor  = 0x0100 // 1:100
	leafMajor   = 0x0100 // leaf of bucket i is (leafMajor+i):
	flowBuckets = 64
	filterPrio  = 1
	filterName  = "slided-flowhash"

	// bucketRate is the ceiling of each bucket class (bytes/s): far above
	// any rate the pacer lets through, so the buckets never throttle and
	// only take turns.
	bucketRate = 1_250_000_000
	// bucketFloor is each bucket's own guaranteed rate (bytes/s). htb lets a
	// class send at its own rate without asking its parent, so this is kept
	// at the minimum: 64 buckets add at most 64 B/s to the pacer's rate.
	bucketFloor = 1

	// DefaultFlowLimit is the per-bucket queue length used when
	// ShaperConfig.FlowLimit is 0. It is deliberately larger than a default
	// socket send buffer holds (212992 bytes is about 90 full-size or 280
	// small datagrams), so a sender blocks before its bucket drops.
	DefaultFlowLimit = 1000

	// listRetries bounds retries of netlink dumps that return
	// netlink.ErrDumpInterrupted.
	listRetries = 5
)

// ShaperConfig sets the qdisc that carries backpressure.
type ShaperConfig struct {
	// Rate is the rate the pacer class lets through, in bytes/s (> 0).
	Rate uint64
	// Burst is the pacer class's bucket in bytes; 0 means one full frame
	// (MTU+14). It must hold a full frame.
	Burst uint32
	// FlowLimit is how many packets each flow bucket holds before it
	// drops; 0 means DefaultFlowLimit.
	FlowLimit uint32
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

// QdiscStats are the counters of the Shaper's root qdisc (htb: what it
// passed to the TAP, and the drops of its per-flow queues).
type QdiscStats struct {
	Root QueueStats
}

// Shaper is the qdisc tree on one interface. Its methods may be called
// from several goroutines; each sends one or a few netlink requests.
type Shaper struct {
	ifindex int
	burst   uint32

	mu     sync.Mutex
	rate   uint64
	closed bool
}

// NewShaper replaces the root qdisc of interface ifindex with an htb tree
// that lets cfg.Rate through and shares it fairly among flows (a hashed
// deficit round robin; see the comment on the constants above). On failure
// it removes what it installed.
func NewShaper(ifindex int, cfg ShaperConfig) (*Shaper, error) {
	link, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, shaperErr(ifindex, "find link", err)
	}
	frame := uint32(link.Attrs().MTU) + 14
	if cfg.Burst == 0 {
		cfg.Burst = frame
	}
	if cfg.Burst < frame {
		return nil, fmt.Errorf("tap: shaper on %d: burst %d bytes is less than one frame (%d)", ifindex, cfg.Burst, frame)
	}
	if cfg.FlowLimit == 0 {
		cfg.FlowLimit = DefaultFlowLimit
	}
	s := &Shaper{ifindex: ifindex, burst: cfg.Burst}
	pacer, err := s.pacerClass(cfg.Rate)
	if err != nil {
		return nil, err
	}
	root := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: ifindex, Handle: rootHandle, Parent: netlink.HANDLE_ROOT})
	root.Defcls = 1
	root.DirectQlen = &cfg.FlowLimit
	if err := netlink.QdiscReplace(root); err != nil {
		return nil, shaperErr(ifindex, "install root htb", err)
	}
	if err := netlink.ClassAdd(pacer); err != nil {
		_ = s.deleteRoot()
		return nil, shaperErr(ifindex, "add pacer class 1:100", err)
	}
	if err := s.installBuckets(cfg.FlowLimit, frame); err != nil {
		_ = s.deleteRoot()
		return nil, err
	}
	s.rate = cfg.Rate
	return s, nil
}

// installBuckets adds the flow classes, their queues and the flow hash.
func (s *Shaper) installBuckets(flowLimit, frame uint32) error {
	for i := uint16(1); i <= flowBuckets; i++ {
		class := &netlink.HtbClass{
			ClassAttrs: netlink.ClassAttrs{
				LinkIndex: s.ifindex,
				Handle:    netlink.MakeHandle(childMajor, i),
				Parent:    netlink.MakeHandle(1, pacerMinor),
			},
			Rate:    bucketFloor,
			Ceil:    bucketRate,
			Buffer:  clampTicks(float64(frame) / bucketRate),
			Cbuffer: clampTicks(float64(frame) / bucketRate),
			Quantum: frame,
		}
		if err := netlink.ClassAdd(class); err != nil {
			return shaperErr(s.ifindex, fmt.Sprintf("add flow class 1:%x", i), err)
		}
		fifo := nl.NewRtAttr(nl.TCA_OPTIONS, nl.Uint32Attr(flowLimit)) // struct tc_fifo_qopt
		if err := tcRequest(unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_EXCL, s.ifindex,
			uint32(leafMajor+i)<<16, netlink.MakeHandle(childMajor, i), 0, "pfifo", fifo); err != nil {
			return shaperErr(s.ifindex, fmt.Sprintf("add flow queue under 1:%x", i), err)
		}
	}
	prog, err := flowHashProgram(childMajor, flowBuckets)
	if err != nil {
		return err
	}
	opts := nl.NewRtAttr(nl.TCA_OPTIONS, nil)
	opts.AddRtAttr(nl.TCA_BPF_OPS_LEN, nl.Uint16Attr(uint16(len(prog))))
	opts.AddRtAttr(nl.TCA_BPF_OPS, marshalFilter(prog))
	opts.AddRtAttr(nl.TCA_BPF_NAME, nl.ZeroTerminated(filterName))
	info := netlink.MakeHandle(filterPrio, nl.Swap16(unix.ETH_P_ALL))
	if err := tcRequest(unix.RTM_NEWTFILTER, unix.NLM_F_CREATE|unix.NLM_F_EXCL, s.ifindex,
		1, childHandle, info, "bpf", opts); err != nil {
		return shaperErr(s.ifindex, "add flow hash filter (cls_bpf)", err)
	}
	return nil
}

// clampTicks converts seconds to psched ticks, the unit of htb's buffers,
// saturating instead of overflowing (netlink.Xmittime overflows silently at
// low rates).
func clampTicks(seconds float64) uint32 {
	t := seconds * 1e6 * netlink.TickInUsec()
	if t >= math.MaxUint32 {
		return math.MaxUint32
	}
	if t < 1 {
		return 1
	}
	return uint32(t)
}

// pacerClass builds class 1:100 at rate bytes/s.
func (s *Shaper) pacerClass(rate uint64) (*netlink.HtbClass, error) {
	if rate == 0 {
		return nil, fmt.Errorf("tap: shaper on %d: rate must be positive", s.ifindex)
	}
	buf := clampTicks(float64(s.burst) / float64(rate))
	return &netlink.HtbClass{
		ClassAttrs: netlink.ClassAttrs{
			LinkIndex: s.ifindex,
			Handle:    netlink.MakeHandle(1, pacerMinor),
			Parent:    rootHandle,
		},
		Rate:    rate,
		Ceil:    rate,
		Buffer:  buf,
		Cbuffer: buf,
		Quantum: s.burst,
	}, nil
}

// SetRate retunes the pacer class in place (one netlink request); the flow
// queues, what they hold and the class's tokens are kept.
func (s *Shaper) SetRate(bytesPerSec uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("tap: shaper on %d: set rate: %w", s.ifindex, errClosed)
	}
	c, err := s.pacerClass(bytesPerSec)
	if err != nil {
		return err
	}
	if err := netlink.ClassChange(c); err != nil {
		return shaperErr(s.ifindex, fmt.Sprintf("set rate %d bytes/s", bytesPerSec), err)
	}
	s.rate = bytesPerSec
	return nil
}

// Rate is the rate last set, in bytes/s.
func (s *Shaper) Rate() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rate
}

// Stats reads the counters of the root qdisc.
func (s *Shaper) Stats() (QdiscStats, error) {
	qs, err := listQdiscs(s.ifindex)
	if err != nil {
		return QdiscStats{}, shaperErr(s.ifindex, "list qdiscs", err)
	}
	var st QdiscStats
	found := false
	for _, q := range qs {
		if a := q.Attrs(); a.Handle == rootHandle && a.Parent == netlink.HANDLE_ROOT && q.Type() == "htb" {
			st.Root = queueStats(a.Statistics)
			found = true
		}
	}
	if !found {
		return st, shaperErr(s.ifindex, "stats", errors.New("the shaper's qdiscs are gone"))
	}
	return st, nil
}

// Close removes the root qdisc, which restores the kernel's default. It is
// idempotent, and it is not an error if the interface is already gone.
func (s *Shaper) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.deleteRoot()
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return shaperErr(s.ifindex, "delete root qdisc", err)
	}
	return nil
}

func (s *Shaper) deleteRoot() error {
	return netlink.QdiscDel(&netlink.Htb{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: s.ifindex, Handle: rootHandle, Parent: netlink.HANDLE_ROOT,
	}})
}

var errClosed = errors.New("shaper closed")

func queueStats(s *netlink.QdiscStatistics) QueueStats {
	var q QueueStats
	if s == nil {
		return q
	}
	if s.Basic != nil {
		q.Packets, q.Bytes = uint64(s.Basic.Packets), s.Basic.Bytes
	}
	if s.Queue != nil {
		q.Drops, q.Overlimits, q.Backlog, q.Qlen = s.Queue.Drops, s.Queue.Overlimits, s.Queue.Backlog, s.Queue.Qlen
	}
	return q
}

// listQdiscs dumps the qdiscs of ifindex, retrying interrupted dumps.
func listQdiscs(ifindex int) ([]netlink.Qdisc, error) {
	link := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}
	var err error
	for range listRetries {
		var qs []netlink.Qdisc
		qs, err = netlink.QdiscList(link)
		if err == nil {
			return qs, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, err
		}
	}
	return nil, err
}

// tcRequest sends one rtnetlink traffic-control request (qdisc, class or
// filter) that the netlink package cannot build: pfifo with a limit, and
// cls_bpf with a classic BPF program.
func tcRequest(cmd, flags, ifindex int, handle, parent, info uint32, kind string, opts *nl.RtAttr) error {
	req := nl.NewNetlinkRequest(cmd, flags|unix.NLM_F_ACK)
	req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(ifindex), Handle: handle, Parent: parent, Info: info})
	req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated(kind)))
	if opts != nil {
		req.AddData(opts)
	}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

func shaperErr(ifindex int, step string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("tap: shaper on %d: %s: %w (run as root or with CAP_NET_ADMIN)", ifindex, step, err)
	}
	return fmt.Errorf("tap: shaper on %d: %s: %w", ifindex, step, err)
}
