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
// device", for why it is not tbf+fq or tbf+sfq):
//
//	1:    tbf, rate = ShaperConfig.Rate          (SetRate retunes it)
//	└ 10: htb, used as a deficit round robin     (classes never rate-limit)
//	  ├ 10:1 .. 10:64  one class per flow bucket, quantum = one frame
//	  │   └ 101: .. 140: pfifo, limit = ShaperConfig.FlowLimit packets
//	  └ filter: cls_bpf, a classic BPF flow hash (classify.go)
const (
	rootHandle  = 0x0001_0000 // 1:
	childMajor  = 0x000a      // 10:
	childHandle = childMajor << 16
	leafMajor   = 0x0100 // leaf of bucket i is (leafMajor+i):
	flowBuckets = 64
	filterPrio  = 1
	filterName  = "slided-flowhash"

	// bucketRate is what each bucket class may send as far as htb is
	// concerned (bytes/s): far above any rate tbf lets through, so htb
	// never throttles and only schedules, round robin by quantum.
	bucketRate = 1_250_000_000

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
	// Rate is the rate tbf lets through, in bytes/s (> 0).
	Rate uint64
	// Burst is tbf's bucket in bytes; 0 means two full frames (2 x
	// (MTU+14)). It must hold a full frame, or tbf would drop it.
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
	Overlimits uint32 // for tbf: times a packet had to wait for tokens
	Backlog    uint32 // bytes queued
	Qlen       uint32 // packets queued
}

// QdiscStats are the counters of the Shaper's root (tbf) and child (the
// flow scheduler, which includes the drops of its per-flow queues).
type QdiscStats struct {
	Root, Child QueueStats
}

// Shaper is the qdisc tree on one interface. Its methods may be called
// from several goroutines; each sends one or a few netlink requests.
type Shaper struct {
	ifindex int
	burst   uint32
	limit   uint32 // tbf limit in bytes, only used before the child is grafted

	mu     sync.Mutex
	rate   uint64
	closed bool
}

// NewShaper replaces the root qdisc of interface ifindex with a tbf at
// cfg.Rate whose child shares that rate fairly among flows (a hashed
// deficit round robin; see the comment on the constants above). On failure
// it removes what it installed.
func NewShaper(ifindex int, cfg ShaperConfig) (*Shaper, error) {
	link, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, shaperErr(ifindex, "find link", err)
	}
	frame := uint32(link.Attrs().MTU) + 14
	if cfg.Burst == 0 {
		cfg.Burst = 2 * frame
	}
	if cfg.Burst < frame {
		return nil, fmt.Errorf("tap: shaper on %d: burst %d bytes is less than one frame (%d)", ifindex, cfg.Burst, frame)
	}
	if cfg.FlowLimit == 0 {
		cfg.FlowLimit = DefaultFlowLimit
	}
	s := &Shaper{ifindex: ifindex, burst: cfg.Burst, limit: cfg.FlowLimit * frame}
	tbf, err := s.tbf(cfg.Rate)
	if err != nil {
		return nil, err
	}
	if err := netlink.QdiscReplace(tbf); err != nil {
		return nil, shaperErr(ifindex, "install root tbf", err)
	}
	if err := s.installChild(cfg.FlowLimit, frame); err != nil {
		_ = s.deleteRoot()
		return nil, err
	}
	s.rate = cfg.Rate
	return s, nil
}

// installChild grafts the flow scheduler under tbf.
func (s *Shaper) installChild(flowLimit, frame uint32) error {
	htb := netlink.NewHtb(netlink.QdiscAttrs{
		LinkIndex: s.ifindex,
		Handle:    childHandle,
		Parent:    netlink.MakeHandle(1, 1),
	})
	htb.Defcls = 1
	htb.DirectQlen = &flowLimit
	if err := netlink.QdiscAdd(htb); err != nil {
		return shaperErr(s.ifindex, "add flow scheduler (htb)", err)
	}
	for i := uint16(1); i <= flowBuckets; i++ {
		class := netlink.NewHtbClass(netlink.ClassAttrs{
			LinkIndex: s.ifindex,
			Handle:    netlink.MakeHandle(childMajor, i),
			Parent:    childHandle,
		}, netlink.HtbClassAttrs{Rate: 8 * bucketRate, Ceil: 8 * bucketRate, Quantum: frame})
		if err := netlink.ClassAdd(class); err != nil {
			return shaperErr(s.ifindex, fmt.Sprintf("add flow class 10:%x", i), err)
		}
		fifo := nl.NewRtAttr(nl.TCA_OPTIONS, nl.Uint32Attr(flowLimit)) // struct tc_fifo_qopt
		if err := tcRequest(unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_EXCL, s.ifindex,
			uint32(leafMajor+i)<<16, netlink.MakeHandle(childMajor, i), 0, "pfifo", fifo); err != nil {
			return shaperErr(s.ifindex, fmt.Sprintf("add flow queue under 10:%x", i), err)
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

// tbf builds the root qdisc at rate bytes/s.
func (s *Shaper) tbf(rate uint64) (*netlink.Tbf, error) {
	if rate == 0 {
		return nil, fmt.Errorf("tap: shaper on %d: rate must be positive", s.ifindex)
	}
	// Tbf.Buffer is the bucket as the time it takes to send at rate, in
	// psched ticks; netlink.Xmittime would overflow silently at low rates.
	ticks := float64(s.burst) / float64(rate) * 1e6 * netlink.TickInUsec()
	if ticks >= math.MaxUint32 {
		return nil, fmt.Errorf("tap: shaper on %d: rate %d bytes/s too low for a %d-byte burst", s.ifindex, rate, s.burst)
	}
	return &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: s.ifindex, Handle: rootHandle, Parent: netlink.HANDLE_ROOT},
		Rate:       rate,
		Limit:      s.limit,
		Buffer:     uint32(ticks),
	}, nil
}

// SetRate retunes tbf in place (one netlink request); the flow queues and
// what they hold are kept.
func (s *Shaper) SetRate(bytesPerSec uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("tap: shaper on %d: set rate: %w", s.ifindex, errClosed)
	}
	tbf, err := s.tbf(bytesPerSec)
	if err != nil {
		return err
	}
	if err := netlink.QdiscChange(tbf); err != nil {
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

// Stats reads the counters of the root tbf and of the flow scheduler.
func (s *Shaper) Stats() (QdiscStats, error) {
	qs, err := listQdiscs(s.ifindex)
	if err != nil {
		return QdiscStats{}, shaperErr(s.ifindex, "list qdiscs", err)
	}
	var st QdiscStats
	var found int
	for _, q := range qs {
		a := q.Attrs()
		switch {
		case a.Handle == rootHandle && a.Parent == netlink.HANDLE_ROOT:
			st.Root = queueStats(a.Statistics)
			found++
		case a.Handle == childHandle:
			st.Child = queueStats(a.Statistics)
			found++
		}
	}
	if found != 2 {
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
	return netlink.QdiscDel(&netlink.Tbf{QdiscAttrs: netlink.QdiscAttrs{
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
