//go:build linux

package tap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The qdisc tree a Shaper installs on the TAP (see docs/decisions.md, "TAP
// device", for why it is not tbf+fq or tbf+sfq, and docs/backpressure.md,
// "The credit", for why a tbf sits at the root):
//
//	a:      tbf, the credit: a size table makes every packet cost one
//	│       unit (a frame's bytes), its bucket holds Grant packets and the
//	│       kick that follows each grant (Grant+1 units), and refills only
//	│       at the leak rate; Grant (a tbf change) fills it again. A GSO
//	│       skb longer than a frame costs more than the bucket, so tbf
//	│       cuts it into its segments, each costing its bytes (gsoCut)
//	└ 1:    htb, default class 1:1 (under tbf class a:1)
//	  └ 1:100 the pacer class, rate = ceil = ShaperConfig.Rate (SetRate retunes it)
//	    ├ 1:1 .. 1:80  one class per flow bucket (128), borrowing all of their rate
//	    │   └ 101: .. 180: pfifo, limit = ShaperConfig.FlowLimit packets
//	    ├ 1:81  the kick frames (Kicker), served before the buckets (prio 0, and
//	    │       a rate of its own: always green, see installBuckets)
//	    │   └ 181: pfifo
//	    ├ 1:82  packets no local socket sends (forwarded), with
//	    │       ShaperConfig.Forward: a turn like a bucket's
//	    │   └ 182: pfifo_head_drop, limit = ShaperConfig.ForwardLimit packets
//	    ├ filter on 1:, prio 1: cls_bpf, eBPF: no socket → 1:82 (forward.go)
//	    ├ filter on 1:, prio 2: cls_bpf, eBPF: with ShaperConfig.Sockets, each
//	    │       local socket's IP packets → a bucket of its own, taken in turn
//	    │       (sockflow.go)
//	    └ filter on 1:, prio 3: cls_bpf, a classic BPF flow hash (classify.go)
//
// The buckets share the pacer's rate round robin, one packet per turn (the
// size table makes every packet the same size). The tbf is a credit, not a
// rate: the daemon grants Grant packets each time it has read that many, so
// a daemon that stops reading (SIGSTOP, a starved CPU) stops the release
// within Grant packets plus the leak, and the TAP's ring, which would drop,
// never fills. The leak is what bounds the stall: it fills the ring in
// ShaperConfig.StallLimit, after which the ring drops at the leak rate and
// every blocked socket makes progress (the upstream objection).
const (
	creditHandle = 0x000a_0000 // a:
	rootHandle   = 0x0001_0000 // 1:
	childMajor   = 0x0001      // the buckets are 1:1 .. 1:80
	childHandle  = childMajor << 16
	pacerMinor   = 0x0100 // 1:100
	leafMajor    = 0x0100 // leaf of bucket i is (leafMajor+i):
	flowBuckets  = 128
	// kickMinor is the class of the kick frames (1:81), served before the
	// buckets (htb prio kickPrio against bucketPrio) so that each kick
	// leaves with the grant it follows: in a bucket of their own, taking
	// turns with the flows', kicks piled up one per grant until the kick
	// socket's buffer was full, and then no grant woke the qdisc.
	kickMinor  = flowBuckets + 1
	kickPrio   = 0
	bucketPrio = 1
	kickLimit  = 64
	filterPrio = 3 // after the forward and socket filters (forwardPrio, socketPrio)
	filterName = "slided-flowhash"

	// bucketRate is the ceiling of each bucket class (bytes/s): far above
	// any rate the pacer lets through, so the buckets never throttle and
	// only take turns.
	bucketRate = 1_250_000_000
	// bucketFloor is each bucket's own guaranteed rate (bytes/s). htb lets a
	// class send at its own rate without asking its parent, so this is kept
	// at the minimum: 128 buckets add at most 128 B/s to the pacer's rate.
	bucketFloor = 1

	// DefaultFlowLimit is the per-bucket queue length used when
	// ShaperConfig.FlowLimit is 0: what the largest forced send buffer
	// this package plans for (16 MiB, doubled) holds of the smallest
	// packets. FlowLimitFor sizes it from wmem_max.
	DefaultFlowLimit = 2 * ForcedSndbuf / MinTruesize
	// ForcedSndbuf is the largest SO_SNDBUFFORCE a sender is expected to
	// set (the kernel doubles it).
	ForcedSndbuf = 16 << 20
	// MinTruesize is the least socket memory one queued packet costs
	// (skb head and shared info; a 1-byte datagram costs about 640 bytes
	// on 6.x kernels): a socket buffer of B bytes holds at most
	// B/MinTruesize packets.
	MinTruesize = 512
	// MaxFlowLimit bounds a bucket's queue, whatever wmem_max says: it
	// bounds what traffic without a sending socket (forwarded) may hold.
	MaxFlowLimit = 1 << 18

	// NoPacing is a Rate for the pacer class that never holds a packet
	// back: with the credit, the pacer class only shares.
	NoPacing = bucketRate

	// DefaultGrant and DefaultStallLimit: see ShaperConfig.
	DefaultGrant      = 2
	DefaultStallLimit = 60 * time.Second

	// listRetries bounds retries of netlink dumps that return
	// netlink.ErrDumpInterrupted.
	listRetries = 5
)

// FlowLimitFor returns the per-bucket queue length, in packets, that never
// drops a packet of a blocking sender whose send buffer the kernel allows
// (twice the larger of wmemMax and ForcedSndbuf, over MinTruesize), and
// whether it had to be capped at MaxFlowLimit (then a sender with the
// largest buffer and the smallest packets may lose at its bucket).
func FlowLimitFor(wmemMax uint64) (limit uint32, capped bool) {
	b := max(wmemMax, ForcedSndbuf)
	n := 2*b/MinTruesize + 1
	if n > MaxFlowLimit {
		return MaxFlowLimit, true
	}
	return uint32(n), false
}

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
	// RingLen is the TAP's txqueuelen: the credit never puts more than
	// that in the ring. 0 means the interface's txqueuelen now.
	RingLen uint32
	// Grant is how many packets each grant lets into the TAP's ring; 0
	// means DefaultGrant, and it is at most RingLen/2.
	Grant uint32
	// StallLimit is how long a daemon may stop reading with no packet
	// lost; 0 means DefaultStallLimit. Past it the ring drops at the leak
	// rate, (RingLen-2*Grant)/StallLimit packets a second.
	StallLimit time.Duration
	// Forward, if not nil, puts packets that no local socket sends
	// (forwarded from another interface) in a class of their own whose
	// queue holds ForwardLimit packets and drops the oldest (head drop);
	// nil leaves them in the flow buckets, bounded only by FlowLimit.
	Forward *ForwardFilter
	// ForwardLimit is the forward class's queue length in packets; 0
	// means ForwardLimit(DefaultForwardQueue, MTU).
	ForwardLimit uint32
	// Sockets, if not nil, gives each local socket a flow bucket of its
	// own (in turn, 128 sockets before two share one); nil hashes
	// addresses and ports into the buckets, where sockets share a
	// bucket by chance and leave it one after the other.
	Sockets *SocketFilter
	// NoCredit installs the tree without the credit (the htb at the root,
	// paced by Rate alone, as before issue 11): the fallback where tbf or
	// size tables are missing. Its rate keeps running when the daemon
	// stops, and small packets can overflow the ring.
	NoCredit bool
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
// passed to the TAP, and the drops of its per-flow queues), and of the
// forward class's queue.
type QdiscStats struct {
	Root QueueStats
	// Forward is the queue of packets no local socket sends (forwarded),
	// its drops included in Root's; nil where they share the flow
	// buckets (no eBPF: ShaperConfig.Forward nil).
	Forward *ForwardStats `json:",omitempty"`
	// Regrants counts the credit's grants made again by its grant
	// watchdog: the last grant's packets did not all reach the daemon
	// (LazyShaper.watchdog). The daemon's count, not the kernel's: 0 from
	// Shaper.Stats and without a credit.
	Regrants uint64
}

// ForwardStats are the forward class's queue counters and its length.
type ForwardStats struct {
	QueueStats
	Limit uint32 // packets
}

// Shaper is the qdisc tree on one interface. Its methods may be called
// from several goroutines; each sends one or a few netlink requests.
type Shaper struct {
	ifindex int
	burst   uint32
	grant   uint32  // packets per grant
	leak    float64 // packets/s the credit refills by itself
	credit  bool    // the tbf credit is the root (else the htb is)
	unit    uint32  // what a packet costs in the credit (a frame's bytes; unitFor)
	gsoCut  uint32  // the credit cuts GSO skbs longer than this (gsoCut); 0: it does not
	gsoErr  error   // why it does not
	fwLimit uint32  // the forward class's queue length; 0: no forward class
	fwErr   error   // why the forward class could not be installed
	sockErr error   // why the socket classifier could not be attached
	sockets bool    // the socket classifier is attached

	mu        sync.Mutex
	rate      uint64
	flowLimit uint32
	grants    uint64
	closed    bool
	// grantSock is the netlink socket Grant keeps for its requests, one
	// every GrantSize packets: a socket opened and closed for each cost
	// as much CPU as the request (docs/performance.md, "CPU under
	// load"). Opened at the first grant, closed by Close.
	grantSock *nl.SocketHandle
}

// NewShaper replaces the root qdisc of interface ifindex with the credit
// and, under it, an htb tree that lets cfg.Rate through and shares it
// fairly among flows (a hashed deficit round robin; see the comment on the
// constants above). The credit starts full. On failure it removes what it
// installed.
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
	if cfg.RingLen == 0 && link.Attrs().TxQLen > 0 {
		cfg.RingLen = uint32(link.Attrs().TxQLen)
	}
	var grant uint32
	var leak float64
	if !cfg.NoCredit {
		if grant, leak, err = creditParams(cfg); err != nil {
			return nil, fmt.Errorf("tap: shaper on %d: %w", ifindex, err)
		}
	}
	s := &Shaper{ifindex: ifindex, burst: cfg.Burst, grant: grant, leak: leak, flowLimit: cfg.FlowLimit, credit: !cfg.NoCredit}
	if s.credit {
		s.unit = unitFor(frame)
		s.gsoCut, s.gsoErr = gsoCut(frame, s.unit, grant)
	}
	if cfg.Forward != nil {
		s.fwLimit = cfg.ForwardLimit
		if s.fwLimit == 0 {
			s.fwLimit = ForwardLimit(DefaultForwardQueue, link.Attrs().MTU)
		}
	}
	pacer, err := s.pacerClass(cfg.Rate)
	if err != nil {
		return nil, err
	}
	parent, unit := uint32(creditHandle|1), s.unit
	if s.credit {
		if err := s.setCredit(unix.NLM_F_CREATE|unix.NLM_F_REPLACE, nil); err != nil {
			return nil, shaperErr(ifindex, "install the credit (tbf with a size table)", err)
		}
	} else {
		parent, unit = netlink.HANDLE_ROOT, frame
	}
	root := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: ifindex, Handle: rootHandle, Parent: parent})
	root.Defcls = 1
	root.DirectQlen = &cfg.FlowLimit
	var qerr error
	if s.credit {
		qerr = netlink.QdiscAdd(root)
	} else {
		qerr = netlink.QdiscReplace(root)
	}
	if qerr != nil {
		_ = s.deleteRoot()
		return nil, shaperErr(ifindex, "install htb", qerr)
	}
	if err := netlink.ClassAdd(pacer); err != nil {
		_ = s.deleteRoot()
		return nil, shaperErr(ifindex, "add pacer class 1:100", err)
	}
	if err := s.installBuckets(cfg.FlowLimit, unit); err != nil {
		_ = s.deleteRoot()
		return nil, err
	}
	if cfg.Forward != nil {
		// Without it forwarded packets share the flow buckets, as
		// before: not a reason to lose the credit.
		if err := s.installForward(cfg.Forward, unit); err != nil {
			s.fwErr, s.fwLimit = err, 0
		}
	}
	if cfg.Sockets != nil {
		// Without it the flow hash shares the buckets by chance.
		s.sockErr = s.installSockets(cfg.Sockets)
		s.sockets = s.sockErr == nil
	}
	s.rate = cfg.Rate
	return s, nil
}

// creditParams checks the credit's settings and returns the grant in
// packets and the leak in packets/s.
func creditParams(cfg ShaperConfig) (grant uint32, leak float64, err error) {
	if cfg.RingLen == 0 {
		return 0, 0, errors.New("the TAP's ring length must be positive")
	}
	grant = cfg.Grant
	if grant == 0 {
		grant = DefaultGrant
	}
	grant = min(grant, cfg.RingLen/2)
	if grant == 0 {
		return 0, 0, fmt.Errorf("a ring of %d packets is too short for a credit (at least 2)", cfg.RingLen)
	}
	stall := cfg.StallLimit
	if stall == 0 {
		stall = DefaultStallLimit
	}
	if stall < 0 {
		return 0, 0, fmt.Errorf("stall limit %v is negative", stall)
	}
	room := LeakRoom(cfg.RingLen, grant)
	leak = room / stall.Seconds()
	return grant, leak, nil
}

// credit installs (flags NLM_F_CREATE|NLM_F_REPLACE) or changes (flags 0)
// the root tbf. A change refills the bucket: that is the grant.
func (s *Shaper) setCredit(flags int, sock *nl.SocketHandle) error {
	// tbf's rate is in bytes/s: at least 1 byte of a unit.
	rate := uint32(max(1, math.Ceil(s.leak*float64(s.unit))))
	var q nl.TcTbfQopt
	q.Rate.Rate = rate
	q.Rate.Linklayer = nl.LINKLAYER_ETHERNET // no rate table needed
	opts := nl.NewRtAttr(nl.TCA_OPTIONS, nil)
	opts.AddRtAttr(nl.TCA_TBF_PARMS, q.Serialize())
	// TCA_TBF_BURST, not qopt.buffer: the buffer in ticks is capped at
	// about 4 s, and the grant at the leak rate lasts longer.
	// One token more than the grant: the kick frame that follows each
	// grant goes first (kickPrio) and spends it.
	opts.AddRtAttr(nl.TCA_TBF_BURST, nl.Uint32Attr((s.grant+1)*s.unit))
	return tcRequestOn(sock, unix.RTM_NEWQDISC, flags, s.ifindex, creditHandle, netlink.HANDLE_ROOT, 0, "tbf", opts, sizeTable(s.unit, s.gsoCut))
}

// unitFor is what one packet costs in the credit of a TAP whose frames
// are at most frame bytes: the frame's length, so that a segment of a GSO
// skb, which the credit cuts and charges its length in bytes (gsoCut),
// costs at most one packet; at most what the size table's 16-bit cells
// hold.
func unitFor(frame uint32) uint32 {
	return min(frame, math.MaxUint16)
}

// gsoCut returns the frame length above which the credit's size table
// charges an skb more than the whole bucket, so that tbf cuts it into its
// segments before they enter the tree (tbf_enqueue: an skb costing more
// than the bucket that is a GSO skb goes to tbf_segment; any other would
// be dropped, and no frame but a GSO skb is longer than the MTU). A
// UDP_SEGMENT sender's skb is one skb in the qdisc and up to 128 packets
// after it (UDP_MAX_SEGMENTS): uncut, one grant let three of them into a
// ring of 16. tbf_segment charges each segment its length in bytes, not
// the size table's cost (a size table is refused on the htb below: "STAB
// not supported on a non root"), which is why a packet's unit is a
// frame's bytes (unitFor): a segment then costs at most one packet. It
// returns 0 and why when the cut cannot work: a bucket the size table's
// 16-bit costs cannot exceed.
func gsoCut(frame, unit, grant uint32) (uint32, error) {
	bucket := (grant + 1) * unit
	if bucket >= math.MaxUint16 {
		return 0, fmt.Errorf("a credit of %d packets of %d bytes is too large for the size table", grant+1, unit)
	}
	return frame, nil
}

// sizeTable is the TCA_STAB attribute that makes every packet cost unit,
// and, with cut > 0, every skb longer than cut bytes more than any bucket
// (math.MaxUint16; see gsoCut). It must accompany every change of the
// root: a change without it removes the table.
func sizeTable(unit, cut uint32) *nl.RtAttr {
	const tcaStabBase, tcaStabData = 1, 2
	base := make([]byte, 24) // struct tc_sizespec
	// One cell of 2^16 bytes: every skb costs unit (the last cell's cost
	// repeats for longer ones, as GSO skbs may be).
	cellLog, cells := uint8(16), uint32(1)
	var align int16
	if cut > 0 {
		// Two cells: lengths up to cut in cell 0, longer ones in
		// cell 1 and beyond (which cost at least cell 1's cost).
		// The cells are 2^cellLog bytes, aligned so that cut+1
		// starts cell 1: cell_align is an s16, and 2^cellLog-cut-1 <
		// 2^(cellLog-1) fits for every cut < 2^16.
		cellLog = uint8(bits.Len32(cut))
		align = int16((1 << cellLog) - cut - 1)
		cells = 2
	}
	base[0] = cellLog // size_log 0, overhead 0
	nl.NativeEndian().PutUint16(base[2:], uint16(align))
	nl.NativeEndian().PutUint32(base[8:], nl.LINKLAYER_ETHERNET)
	nl.NativeEndian().PutUint32(base[20:], cells) // tsize
	data := make([]byte, 2*cells)
	for i := range cells {
		nl.NativeEndian().PutUint16(data[2*i:], uint16(unit))
	}
	if cut > 0 {
		nl.NativeEndian().PutUint16(data[2:], math.MaxUint16)
	}
	st := nl.NewRtAttr(nl.TCA_STAB, nil)
	st.AddRtAttr(tcaStabBase, base)
	st.AddRtAttr(tcaStabData, data)
	return st
}

// Grant lets the next Grant() packets into the TAP's ring (one netlink
// request). Call it after reading GrantSize packets from the TAP since the
// last grant: the bucket is set, not added to, so granting early loses
// nothing but granting before the ring has room could overflow it.
func (s *Shaper) Grant() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("tap: shaper on %d: grant: %w", s.ifindex, errClosed)
	}
	if !s.credit {
		return fmt.Errorf("tap: shaper on %d: grant: installed without a credit", s.ifindex)
	}
	if s.grantSock == nil {
		sock, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
		if err != nil {
			return shaperErr(s.ifindex, "grant", err)
		}
		sock.SetSendTimeout(&nl.SocketTimeoutTv)
		sock.SetReceiveTimeout(&nl.SocketTimeoutTv)
		s.grantSock = &nl.SocketHandle{Socket: sock}
	}
	if err := s.setCredit(0, s.grantSock); err != nil {
		// A fresh socket for the next grant: nothing the failed
		// request left behind waits in this one.
		s.grantSock.Close()
		s.grantSock = nil
		return shaperErr(s.ifindex, "grant", err)
	}
	s.grants++
	return nil
}

// GSOCut is the length above which the credit cuts a GSO skb into its
// segments (gsoCut), 0 if it does not, and why not.
func (s *Shaper) GSOCut() (uint32, error) { return s.gsoCut, s.gsoErr }

// GrantSize is the number of packets one grant lets through.
func (s *Shaper) GrantSize() uint32 { return s.grant }

// Credit reports whether the credit is installed (see NoCredit).
func (s *Shaper) Credit() bool { return s.credit }

// Leak is the rate, in packets/s, at which the credit refills by itself
// (what a stopped daemon's qdisc still releases).
func (s *Shaper) Leak() float64 { return s.leak }

// SetFlowLimit changes every bucket's queue length (128 netlink requests),
// for example when wmem_max changes.
func (s *Shaper) SetFlowLimit(limit uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("tap: shaper on %d: set flow limit: %w", s.ifindex, errClosed)
	}
	if limit == 0 || limit == s.flowLimit {
		return nil
	}
	for i := uint16(1); i <= flowBuckets; i++ {
		fifo := nl.NewRtAttr(nl.TCA_OPTIONS, nl.Uint32Attr(limit))
		if err := tcRequest(unix.RTM_NEWQDISC, 0, s.ifindex,
			uint32(leafMajor+i)<<16, netlink.MakeHandle(childMajor, i), 0, "pfifo", fifo); err != nil {
			return shaperErr(s.ifindex, fmt.Sprintf("set flow queue limit under 1:%x", i), err)
		}
	}
	s.flowLimit = limit
	return nil
}

// FlowLimit is each bucket's queue length in packets.
func (s *Shaper) FlowLimit() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flowLimit
}

// installBuckets adds the flow classes, their queues, the kick class and
// the flow hash.
func (s *Shaper) installBuckets(flowLimit, unit uint32) error {
	for i := uint16(1); i <= flowBuckets+1; i++ {
		limit, prio, rate := flowLimit, uint32(bucketPrio), uint64(bucketFloor)
		if i == kickMinor {
			// The kick class is green (its own rate, never borrowing):
			// htb serves green classes at the leaves' level before any
			// class that borrows from the pacer, whatever their prio,
			// and every bucket is green for its first packet (its
			// bucketFloor tokens). With the kick borrowing like the
			// buckets, each grant went to the first packets of up to
			// 64 buckets (as there were then) while the kicks waited,
			// and the ring crept up by one packet a grant until it
			// dropped.
			limit, prio, rate = kickLimit, kickPrio, bucketRate
		}
		class := &netlink.HtbClass{
			ClassAttrs: netlink.ClassAttrs{
				LinkIndex: s.ifindex,
				Handle:    netlink.MakeHandle(childMajor, i),
				Parent:    netlink.MakeHandle(1, pacerMinor),
			},
			Rate:    rate,
			Ceil:    bucketRate,
			Buffer:  clampTicks(float64(s.burst) / bucketRate),
			Cbuffer: clampTicks(float64(s.burst) / bucketRate),
			Quantum: unit, // one packet per turn
			Prio:    prio,
		}
		if err := netlink.ClassAdd(class); err != nil {
			return shaperErr(s.ifindex, fmt.Sprintf("add flow class 1:%x", i), err)
		}
		fifo := nl.NewRtAttr(nl.TCA_OPTIONS, nl.Uint32Attr(limit)) // struct tc_fifo_qopt
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

// installForward adds the class of packets no local socket sends, its
// head-drop queue, and the eBPF filter that sends them there.
func (s *Shaper) installForward(f *ForwardFilter, unit uint32) error {
	class := &netlink.HtbClass{
		ClassAttrs: netlink.ClassAttrs{
			LinkIndex: s.ifindex,
			Handle:    netlink.MakeHandle(childMajor, forwardMinor),
			Parent:    netlink.MakeHandle(1, pacerMinor),
		},
		Rate:    bucketFloor,
		Ceil:    bucketRate,
		Buffer:  clampTicks(float64(s.burst) / bucketRate),
		Cbuffer: clampTicks(float64(s.burst) / bucketRate),
		Quantum: unit,
		Prio:    bucketPrio,
	}
	if err := netlink.ClassAdd(class); err != nil {
		return shaperErr(s.ifindex, fmt.Sprintf("add forward class 1:%x", forwardMinor), err)
	}
	fifo := nl.NewRtAttr(nl.TCA_OPTIONS, nl.Uint32Attr(s.fwLimit))
	if err := tcRequest(unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_EXCL, s.ifindex,
		uint32(leafMajor+forwardMinor)<<16, netlink.MakeHandle(childMajor, forwardMinor), 0, "pfifo_head_drop", fifo); err != nil {
		return shaperErr(s.ifindex, "add forward queue (pfifo_head_drop)", err)
	}
	return s.attachEBPF(f.fd, forwardPrio, forwardName, "forward")
}

// installSockets attaches the socket classifier before the flow hash.
func (s *Shaper) installSockets(f *SocketFilter) error {
	return s.attachEBPF(f.fd, socketPrio, socketName, "socket")
}

// attachEBPF attaches the loaded eBPF program fd as a cls_bpf filter on the
// htb (1:) at priority prio, for every protocol; what names it in errors.
func (s *Shaper) attachEBPF(fd int, prio uint16, name, what string) error {
	opts := nl.NewRtAttr(nl.TCA_OPTIONS, nil)
	opts.AddRtAttr(nl.TCA_BPF_FD, nl.Uint32Attr(uint32(fd)))
	opts.AddRtAttr(nl.TCA_BPF_NAME, nl.ZeroTerminated(name))
	info := netlink.MakeHandle(prio, nl.Swap16(unix.ETH_P_ALL))
	if err := tcRequest(unix.RTM_NEWTFILTER, unix.NLM_F_CREATE|unix.NLM_F_EXCL, s.ifindex,
		1, childHandle, info, "bpf", opts); err != nil {
		return shaperErr(s.ifindex, "add "+what+" filter (cls_bpf, eBPF)", err)
	}
	return nil
}

// SocketsErr is why the socket classifier is missing although
// ShaperConfig.Sockets was given; nil if it is attached or was not asked
// for.
func (s *Shaper) SocketsErr() error { return s.sockErr }

// SocketBuckets reports whether each local socket has a bucket of its own
// (the socket classifier is attached), rather than a hashed one.
func (s *Shaper) SocketBuckets() bool { return s.sockets }

// ForwardErr is why the forward class is missing although
// ShaperConfig.Forward was given; nil if it is installed or was not asked
// for.
func (s *Shaper) ForwardErr() error { return s.fwErr }

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
		a := q.Attrs()
		if a.Parent != netlink.HANDLE_ROOT {
			continue
		}
		if s.credit && a.Handle == creditHandle && q.Type() == "tbf" || !s.credit && a.Handle == rootHandle && q.Type() == "htb" {
			st.Root = queueStats(a.Statistics)
			found = true
		}
	}
	if s.fwLimit > 0 {
		for _, q := range qs {
			if a := q.Attrs(); a.Handle == uint32(leafMajor+forwardMinor)<<16 {
				st.Forward = &ForwardStats{QueueStats: queueStats(a.Statistics), Limit: s.fwLimit}
			}
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
	if s.grantSock != nil {
		s.grantSock.Close()
		s.grantSock = nil
	}
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
	if !s.credit {
		return netlink.QdiscDel(&netlink.Htb{QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: s.ifindex, Handle: rootHandle, Parent: netlink.HANDLE_ROOT,
		}})
	}
	return netlink.QdiscDel(&netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: s.ifindex, Handle: creditHandle, Parent: netlink.HANDLE_ROOT,
	}, QdiscType: "tbf"})
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
func tcRequest(cmd, flags, ifindex int, handle, parent, info uint32, kind string, attrs ...*nl.RtAttr) error {
	return tcRequestOn(nil, cmd, flags, ifindex, handle, parent, info, kind, attrs...)
}

// tcRequestOn is tcRequest on the socket sock (nil: a socket of its own).
func tcRequestOn(sock *nl.SocketHandle, cmd, flags, ifindex int, handle, parent, info uint32, kind string, attrs ...*nl.RtAttr) error {
	req := nl.NewNetlinkRequest(cmd, flags|unix.NLM_F_ACK)
	if sock != nil {
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: sock}
	}
	req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(ifindex), Handle: handle, Parent: parent, Info: info})
	req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated(kind)))
	for _, a := range attrs {
		if a != nil {
			req.AddData(a)
		}
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

// kickType is the EtherType of a kick frame (IEEE 802 local experimental).
const kickType = 0x88b5

// kickMagic follows the Ethernet header of a kick frame.
var kickMagic = []byte("slided-credit-kick")

// Kicker wakes the qdisc after a grant. A tbf that ran out of tokens sleeps
// until its own timer, set for when the leak would have refilled it (seconds
// away), and a grant does not wake it; a packet sent through the qdisc does.
// So after each grant the daemon sends one kick frame through it (a raw
// socket on the TAP, opened before privileges drop: it needs CAP_NET_RAW),
// and the kick frame comes back out of the TAP, where the reader discards
// it (IsKick). Its methods may be called from several goroutines.
type Kicker struct {
	fd    int
	frame []byte
	addr  unix.SockaddrLinklayer
}

// NewKicker opens the raw socket on interface ifindex whose address is mac.
func NewKicker(ifindex int, mac net.HardwareAddr) (*Kicker, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("tap: kicker on %d: MAC %v is not 6 bytes", ifindex, mac)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: sends only
	if err != nil {
		return nil, shaperErr(ifindex, "open the kick socket (AF_PACKET)", err)
	}
	frame := make([]byte, 60)
	copy(frame, mac)
	copy(frame[6:], mac)
	binary.BigEndian.PutUint16(frame[12:], kickType)
	copy(frame[14:], kickMagic)
	k := &Kicker{fd: fd, frame: frame, addr: unix.SockaddrLinklayer{
		Protocol: nl.Swap16(kickType), Ifindex: ifindex, Halen: 6,
	}}
	copy(k.addr.Addr[:], mac)
	return k, nil
}

// Kick sends one kick frame through the qdisc.
func (k *Kicker) Kick() error {
	if err := unix.Sendto(k.fd, k.frame, unix.MSG_DONTWAIT, &k.addr); err != nil {
		return fmt.Errorf("tap: kick the qdisc: %w", err)
	}
	return nil
}

// Close closes the raw socket.
func (k *Kicker) Close() error { return unix.Close(k.fd) }

// IsKick reports whether frame, read from the TAP, is a kick frame.
func IsKick(frame []byte) bool {
	return len(frame) >= 14+len(kickMagic) && binary.BigEndian.Uint16(frame[12:]) == kickType &&
		bytes.Equal(frame[14:14+len(kickMagic)], kickMagic)
}
