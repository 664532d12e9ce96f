//go:build linux

package tap

// This file holds the classifier of traffic that no local socket sends
// (forwarded from another interface, ARP, IGMP): an eBPF program for
// cls_bpf that tests the packet's socket, which classic BPF cannot see.
// See docs/backpressure.md, "Forwarded traffic", and docs/decisions.md.

import "golang.org/x/sys/unix"

const (
	// forwardMinor is the class of packets without a sending socket
	// (1:82), beside the buckets and the kick class.
	forwardMinor = flowBuckets + 2
	// forwardPrio is the forward filter's priority: it runs before the
	// flow hash (filterPrio), and sends what it does not claim on to it.
	forwardPrio = 1
	forwardName = "slided-nosocket"

	// DefaultForwardQueue is the memory budget, in bytes, of the queue of
	// traffic without a sending socket (-forward-queue).
	DefaultForwardQueue = 4 << 20
	// ForwardOverhead is what a queued packet costs the kernel beyond its
	// frame (struct sk_buff, skb_shared_info, headroom and kmalloc's
	// rounding, about 1 KiB for a full frame on 6.x kernels): the
	// forward queue holds budget/(frame+ForwardOverhead) packets.
	ForwardOverhead = 1024
	// minForwardLimit keeps a tiny budget from refusing every packet.
	minForwardLimit = 4

	// skbSkOffset is offsetof(struct __sk_buff, sk) (Linux 5.1 on).
	skbSkOffset = 168
)

// ForwardLimit is the forward queue's length in packets for a budget of
// budget bytes (0: DefaultForwardQueue) on an interface of MTU mtu.
func ForwardLimit(budget uint64, mtu int) uint32 {
	if budget == 0 {
		budget = DefaultForwardQueue
	}
	n := budget / uint64(max(mtu, 68)+14+ForwardOverhead)
	return uint32(min(max(n, minForwardLimit), MaxFlowLimit))
}

// ForwardFilter is the loaded eBPF program that puts packets without a
// sending socket in their own class. Load it while the process still has
// CAP_BPF or CAP_SYS_ADMIN (before -user drops them): attaching it later
// needs only CAP_NET_ADMIN.
type ForwardFilter struct {
	fd int
}

// LoadForwardFilter loads the program. It fails where the kernel has no
// eBPF (CONFIG_BPF_SYSCALL), no socket in __sk_buff (before 5.1), or the
// process may not load programs.
func LoadForwardFilter() (*ForwardFilter, error) {
	fd, err := loadSchedCLS("the forward classifier", "slided_nosock", forwardProgram(childMajor<<16|forwardMinor))
	if err != nil {
		return nil, err
	}
	return &ForwardFilter{fd: fd}, nil
}

// Close releases the program; attached filters keep their own reference.
func (f *ForwardFilter) Close() error {
	if f == nil {
		return nil
	}
	return unix.Close(f.fd)
}

// forwardProgram returns the eBPF instructions (struct bpf_insn, host
// order) of the classifier: a packet whose skb holds no socket returns
// classid; any other returns 0, "no match", and goes on to the flow hash.
//
//	r2 = *(u64 *)(r1 + offsetof(struct __sk_buff, sk))
//	if r2 != 0 goto +2
//	r0 = classid
//	exit
//	r0 = 0
//	exit
func forwardProgram(classid uint32) ebpfAsm {
	const (
		ldxdw  = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_DW
		jnek   = unix.BPF_JMP | unix.BPF_JNE | unix.BPF_K
		movk   = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K
		exitOp = unix.BPF_JMP | unix.BPF_EXIT
	)
	var b ebpfAsm
	b.ins(ldxdw, 2, 1, skbSkOffset, 0)
	b.ins(jnek, 2, 0, 2, 0)
	b.ins(movk, 0, 0, 0, int32(classid))
	b.ins(exitOp, 0, 0, 0, 0)
	b.ins(movk, 0, 0, 0, 0)
	b.ins(exitOp, 0, 0, 0, 0)
	return b
}
