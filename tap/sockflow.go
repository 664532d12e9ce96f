//go:build linux

package tap

// This file holds the classifier that gives each local socket a flow bucket
// of its own: an eBPF program for cls_bpf that looks the packet's socket up
// by its cookie in an LRU map and, for a socket not seen before, takes the
// next bucket in turn. A hash of the addresses and ports (classify.go) puts
// two sockets in one bucket by chance (100 sockets in 64 buckets shared
// them in pairs to fives), and a bucket is a FIFO: the sockets that share
// one leave one after the other, each with all it has queued. See
// docs/backpressure.md, "A bucket for each socket".

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// socketPrio is the socket classifier's priority: after the forward
	// filter (forwardPrio), before the flow hash (filterPrio), which
	// takes what it does not claim (no socket, not IP, no eBPF).
	socketPrio = 2
	socketName = "slided-sockets"

	// SocketMapLen is how many sockets the classifier remembers at
	// least. The least recently seen is forgotten first; a socket
	// forgotten while its packets are still queued may get another
	// bucket, and its packets could then leave out of order. The map is
	// larger by lruPerCPU for each CPU: an LRU map keeps up to that many
	// free entries on each CPU, and before Linux 6.15 it evicted live
	// entries rather than take another CPU's.
	SocketMapLen = 4096
	lruPerCPU    = 128

	skbProtocolOffset = 16 // offsetof(struct __sk_buff, protocol)

	bpfFuncMapLookupElem   = 1
	bpfFuncMapUpdateElem   = 2
	bpfFuncGetSocketCookie = 46
	bpfFuncSkFullsock      = 95
	bpfPseudoMapFD         = 1
	bpfNoExist             = 1 // BPF_NOEXIST
)

// SocketFilter is the loaded eBPF program that puts each local socket's
// packets in a flow bucket of its own, and its two maps (held by the
// program). Load it while the process still has CAP_BPF or CAP_SYS_ADMIN
// (before -user drops them): attaching it later needs only CAP_NET_ADMIN.
// One SocketFilter serves one TAP's shaper (its turn counter is its own).
type SocketFilter struct {
	fd int
}

// LoadSocketFilter creates the maps and loads the program. It fails where
// the kernel has no eBPF, no socket in __sk_buff or bpf_sk_fullsock (before
// 5.1), or the process may not create maps (before 5.11 they count against
// RLIMIT_MEMLOCK: see createMap) or load programs.
func LoadSocketFilter() (*SocketFilter, error) {
	entries := uint32(SocketMapLen + lruPerCPU*runtime.NumCPU())
	cookies, err := createMap(unix.BPF_MAP_TYPE_LRU_HASH, 8, 4, entries, "slided_sockets")
	if err != nil {
		return nil, fmt.Errorf("tap: socket classifier: %w", err)
	}
	defer unix.Close(cookies) // the program keeps its own reference
	next, err := createMap(unix.BPF_MAP_TYPE_ARRAY, 4, 4, 1, "slided_next")
	if err != nil {
		return nil, fmt.Errorf("tap: socket classifier: %w", err)
	}
	defer unix.Close(next)
	fd, err := loadSchedCLS("the socket classifier", "slided_sockets", socketProgram(childMajor<<16|1, flowBuckets, cookies, next))
	if err != nil {
		return nil, err
	}
	return &SocketFilter{fd: fd}, nil
}

// Close releases the program; attached filters keep their own reference.
func (f *SocketFilter) Close() error {
	if f == nil {
		return nil
	}
	return unix.Close(f.fd)
}

// socketProgram returns the classifier's eBPF instructions: an IPv4 or IPv6
// packet of a full socket returns the class base+b, where b is the bucket
// the map cookies holds for the socket's cookie, or, for a socket not in
// it, the next of buckets in turn (the counter in the one-element array
// next, then stored in cookies); any other packet returns 0, "no match".
// A request socket's SYN-ACK (not a full socket: the accepted socket has
// another cookie) is left to the hash, as sch_fq leaves it, so that it
// takes no turn and no place in the map. buckets must be a power of two.
// The counter is not atomic: two new sockets on two CPUs in the same
// instant may share a bucket, as with a hash; one socket's first packets
// on two CPUs at once take one bucket (BPF_NOEXIST, then the winner's).
//
//	r6 = r1
//	r2 = skb->protocol
//	if r2 == htons(ETH_P_IP) goto ip
//	if r2 != htons(ETH_P_IPV6) goto none
//	ip:	r1 = skb->sk
//	if r1 == 0 goto none
//	r0 = bpf_sk_fullsock(r1)
//	if r0 == 0 goto none
//	r1 = r6
//	r0 = bpf_get_socket_cookie(r1)
//	*(u64 *)(r10 - 8) = r0
//	r1 = cookies; r2 = r10 - 8
//	r0 = bpf_map_lookup_elem(r1, r2)
//	if r0 == 0 goto new
//	r0 = *(u32 *)(r0 + 0)
//	goto class
//	new:	*(u32 *)(r10 - 16) = 0
//	r1 = next; r2 = r10 - 16
//	r0 = bpf_map_lookup_elem(r1, r2)
//	if r0 == 0 goto none
//	r7 = *(u32 *)(r0 + 0)
//	r1 = r7 + 1
//	*(u32 *)(r0 + 0) = r1
//	r7 &= buckets-1
//	*(u32 *)(r10 - 12) = r7
//	r1 = cookies; r2 = r10 - 8; r3 = r10 - 12; r4 = BPF_NOEXIST
//	r0 = bpf_map_update_elem(r1, r2, r3, r4)
//	if r0 == 0 goto mine
//	r1 = cookies; r2 = r10 - 8
//	r0 = bpf_map_lookup_elem(r1, r2)
//	if r0 == 0 goto mine
//	r7 = *(u32 *)(r0 + 0)
//	mine:	r0 = r7
//	class:	r0 &= buckets-1
//	r0 += base
//	exit
//	none:	r0 = 0
//	exit
func socketProgram(base, buckets uint32, cookies, next int) ebpfAsm {
	const (
		mov    = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_X
		movk   = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K
		addk   = unix.BPF_ALU64 | unix.BPF_ADD | unix.BPF_K
		andk   = unix.BPF_ALU64 | unix.BPF_AND | unix.BPF_K
		ldxw   = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W
		ldxdw  = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_DW
		stxw   = unix.BPF_STX | unix.BPF_MEM | unix.BPF_W
		stxdw  = unix.BPF_STX | unix.BPF_MEM | unix.BPF_DW
		stw    = unix.BPF_ST | unix.BPF_MEM | unix.BPF_W
		jeqk   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jnek   = unix.BPF_JMP | unix.BPF_JNE | unix.BPF_K
		ja     = unix.BPF_JMP | unix.BPF_JA
		call   = unix.BPF_JMP | unix.BPF_CALL
		exitOp = unix.BPF_JMP | unix.BPF_EXIT
		lddw   = unix.BPF_LD | unix.BPF_DW | unix.BPF_IMM
	)
	mapFD := func(b *ebpfAsm, dst uint8, fd int) { // two instructions
		b.ins(lddw, dst, bpfPseudoMapFD, 0, int32(fd))
		b.ins(0, 0, 0, 0, 0)
	}
	var b ebpfAsm
	// lookup: r0 = bpf_map_lookup_elem(map fd, r10+key).
	lookup := func(fd int, key int16) {
		mapFD(&b, 1, fd)
		b.ins(mov, 2, 10, 0, 0)
		b.ins(addk, 2, 0, 0, int32(key))
		b.ins(call, 0, 0, 0, bpfFuncMapLookupElem)
	}
	labels := map[string]int{}
	type fix struct {
		at int
		to string
	}
	var fixes []fix
	jump := func(code uint8, dst uint8, imm int32, to string) {
		fixes = append(fixes, fix{b.len(), to})
		b.ins(code, dst, 0, 0, imm)
	}
	label := func(name string) { labels[name] = b.len() }

	b.ins(mov, 6, 1, 0, 0)
	b.ins(ldxw, 2, 6, skbProtocolOffset, 0)
	jump(jeqk, 2, int32(htons(unix.ETH_P_IP)), "ip")
	jump(jnek, 2, int32(htons(unix.ETH_P_IPV6)), "none")
	label("ip")
	b.ins(ldxdw, 1, 6, skbSkOffset, 0)
	jump(jeqk, 1, 0, "none")
	b.ins(call, 0, 0, 0, bpfFuncSkFullsock)
	jump(jeqk, 0, 0, "none")
	b.ins(mov, 1, 6, 0, 0)
	b.ins(call, 0, 0, 0, bpfFuncGetSocketCookie)
	b.ins(stxdw, 10, 0, -8, 0)
	lookup(cookies, -8)
	jump(jeqk, 0, 0, "new")
	b.ins(ldxw, 0, 0, 0, 0)
	jump(ja, 0, 0, "class")
	label("new")
	b.ins(stw, 10, 0, -16, 0)
	lookup(next, -16)
	jump(jeqk, 0, 0, "none")
	b.ins(ldxw, 7, 0, 0, 0)
	b.ins(mov, 1, 7, 0, 0)
	b.ins(addk, 1, 0, 0, 1)
	b.ins(stxw, 0, 1, 0, 0)
	b.ins(andk, 7, 0, 0, int32(buckets-1))
	b.ins(stxw, 10, 7, -12, 0)
	mapFD(&b, 1, cookies)
	b.ins(mov, 2, 10, 0, 0)
	b.ins(addk, 2, 0, 0, -8)
	b.ins(mov, 3, 10, 0, 0)
	b.ins(addk, 3, 0, 0, -12)
	b.ins(movk, 4, 0, 0, bpfNoExist)
	b.ins(call, 0, 0, 0, bpfFuncMapUpdateElem)
	jump(jeqk, 0, 0, "mine")
	lookup(cookies, -8)
	jump(jeqk, 0, 0, "mine")
	b.ins(ldxw, 7, 0, 0, 0)
	label("mine")
	b.ins(mov, 0, 7, 0, 0)
	label("class")
	b.ins(andk, 0, 0, 0, int32(buckets-1))
	b.ins(addk, 0, 0, 0, int32(base))
	b.ins(exitOp, 0, 0, 0, 0)
	label("none")
	b.ins(movk, 0, 0, 0, 0)
	b.ins(exitOp, 0, 0, 0, 0)

	for _, f := range fixes {
		off := int16(labels[f.to] - f.at - 1)
		binary.NativeEndian.PutUint16(b[8*f.at+2:], uint16(off))
	}
	return b
}

// htons is v as the kernel stores a __be16 and a program reads it.
func htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}

// mapCreateAttr is the head of union bpf_attr for BPF_MAP_CREATE.
type mapCreateAttr struct {
	mapType    uint32
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	mapFlags   uint32
	innerMapFD uint32
	numaNode   uint32
	name       [16]byte
}

// createMap creates a map and returns its descriptor (the kernel makes it
// close-on-exec). Before Linux 5.11 a map's memory counts against
// RLIMIT_MEMLOCK, whose default (64 KiB) is below what the socket map
// takes: refused with EPERM, it raises the soft limit to the hard one once
// and tries again.
func createMap(typ, key, value, entries uint32, name string) (int, error) {
	attr := mapCreateAttr{mapType: typ, keySize: key, valueSize: value, maxEntries: entries}
	copy(attr.name[:15], name)
	create := func() (uintptr, unix.Errno) {
		fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		runtime.KeepAlive(&attr)
		return fd, errno
	}
	fd, errno := create()
	if errno == unix.EPERM {
		var lim unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim) == nil && lim.Cur < lim.Max {
			lim.Cur = lim.Max
			if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &lim) == nil {
				fd, errno = create()
			}
		}
	}
	if errno == unix.EPERM {
		return -1, fmt.Errorf("create eBPF map %s (%d entries): %w (needs CAP_BPF or CAP_SYS_ADMIN, and before Linux 5.11 a RLIMIT_MEMLOCK that holds it: LimitMEMLOCK=infinity in the systemd unit)", name, entries, errno)
	}
	if errno != 0 {
		return -1, fmt.Errorf("create eBPF map %s (%d entries): %w", name, entries, errno)
	}
	return int(fd), nil
}
