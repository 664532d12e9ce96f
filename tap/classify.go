//go:build linux

package tap

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// flowHashProgram returns a classic BPF program for cls_bpf that puts each
// flow in one of buckets classes major:(1+hash&(buckets-1)), and the
// credit's kick frames (Kicker) in class major:(buckets+1); buckets must be
// a power of two. The hash folds the IPv4 or IPv6 source and destination
// addresses and, for TCP and UDP (not fragments, the first one included; no
// IPv6 extension headers), both ports; consecutive source ports to one destination always land in
// different buckets. Frames that are neither IPv4 nor IPv6 (ARP), or too
// short, go to bucket 1. cls_bpf hands the program the frame from its
// Ethernet header on; a return value is the class id.
func flowHashProgram(major uint16, buckets uint32) ([]unix.SockFilter, error) {
	if buckets == 0 || buckets&(buckets-1) != 0 || buckets > 0xfff0 {
		return nil, fmt.Errorf("tap: flow buckets %d: not a power of two below 65520", buckets)
	}
	base := uint32(major)<<16 | 1
	var a asm
	a.op(unix.BPF_LD|unix.BPF_H|unix.BPF_ABS, 12) // EtherType
	a.jeq(0x0800, "ip4", "")
	a.jeq(0x86dd, "ip6", "")
	a.jeq(kickType, "", "other")
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, 14) // the kick's magic, first word
	a.jeq(binary.BigEndian.Uint32(kickMagic), "kick", "other")

	a.label("ip4")
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, 14+12) // source address
	a.op(unix.BPF_MISC|unix.BPF_TAX, 0)
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, 14+16) // destination address
	a.op(unix.BPF_ALU|unix.BPF_XOR|unix.BPF_X, 0)
	a.op(unix.BPF_ST, 0)                            // M[0] = src ^ dst
	a.op(unix.BPF_LD|unix.BPF_B|unix.BPF_ABS, 14+9) // protocol
	a.jeq(unix.IPPROTO_TCP, "ports4", "")
	a.jeq(unix.IPPROTO_UDP, "ports4", "fold")
	a.label("ports4")
	// A fragment, the first one (more fragments, offset 0) included,
	// hashes by address only: every fragment of a datagram goes to one
	// bucket and leaves in order. (The first alone in the ports' bucket
	// reached the far host long before the rest, which a slow link can
	// keep past the reassembly timeout.)
	a.op(unix.BPF_LD|unix.BPF_H|unix.BPF_ABS, 14+6) // flags, fragment offset
	a.jset(0x3fff, "fold", "")
	a.op(unix.BPF_LDX|unix.BPF_B|unix.BPF_MSH, 14) // X = IPv4 header length
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_IND, 14)  // source port << 16 | destination port
	a.jmp("mixports")

	a.label("ip6")
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, 14+8) // first word of the source address
	for off := uint32(14 + 12); off < 14+40; off += 4 {
		a.op(unix.BPF_MISC|unix.BPF_TAX, 0)
		a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off)
		a.op(unix.BPF_ALU|unix.BPF_XOR|unix.BPF_X, 0)
	}
	a.op(unix.BPF_ST, 0)
	a.op(unix.BPF_LD|unix.BPF_B|unix.BPF_ABS, 14+6) // next header
	a.jeq(unix.IPPROTO_TCP, "ports6", "")
	a.jeq(unix.IPPROTO_UDP, "ports6", "fold")
	a.label("ports6")
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, 14+40)

	// A = sport<<16 | dport. Mix the ports as dport + 3*sport (16 bits), so
	// that swapping or shifting both ports by the same amount changes the
	// hash (a plain XOR fold cancels sport against dport: 6000->6000 and
	// 6001->6001 would share a bucket).
	a.label("mixports")
	a.op(unix.BPF_MISC|unix.BPF_TAX, 0)
	a.op(unix.BPF_ALU|unix.BPF_RSH|unix.BPF_K, 16)
	a.op(unix.BPF_ALU|unix.BPF_MUL|unix.BPF_K, 3)
	a.op(unix.BPF_ALU|unix.BPF_ADD|unix.BPF_X, 0)
	a.op(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, 0xffff)
	a.op(unix.BPF_MISC|unix.BPF_TAX, 0)
	a.op(unix.BPF_LD|unix.BPF_MEM, 0)
	a.op(unix.BPF_ALU|unix.BPF_XOR|unix.BPF_X, 0)
	a.op(unix.BPF_ST, 0)

	a.label("fold") // A = M[0]; A ^= A>>16; A ^= A>>8
	a.op(unix.BPF_LD|unix.BPF_MEM, 0)
	a.op(unix.BPF_MISC|unix.BPF_TAX, 0)
	a.op(unix.BPF_ALU|unix.BPF_RSH|unix.BPF_K, 16)
	a.op(unix.BPF_ALU|unix.BPF_XOR|unix.BPF_X, 0)
	a.op(unix.BPF_MISC|unix.BPF_TAX, 0)
	a.op(unix.BPF_ALU|unix.BPF_RSH|unix.BPF_K, 8)
	a.op(unix.BPF_ALU|unix.BPF_XOR|unix.BPF_X, 0)
	a.op(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, buckets-1)
	a.op(unix.BPF_ALU|unix.BPF_ADD|unix.BPF_K, base)
	a.op(unix.BPF_RET|unix.BPF_A, 0)

	a.label("other")
	a.op(unix.BPF_RET|unix.BPF_K, base)

	a.label("kick")
	a.op(unix.BPF_RET|unix.BPF_K, base+buckets)
	return a.assemble()
}

// asm is a tiny classic-BPF assembler with forward labels.
type asm struct {
	ins    []unix.SockFilter
	labels map[string]int
	fixups []fixup
}

type fixup struct {
	at     int
	jt, jf string
}

func (a *asm) op(code uint16, k uint32) {
	a.ins = append(a.ins, unix.SockFilter{Code: code, K: k})
}

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.ins)
}

// cond adds a conditional jump; "" means the next instruction.
func (a *asm) cond(code uint16, k uint32, jt, jf string) {
	a.fixups = append(a.fixups, fixup{at: len(a.ins), jt: jt, jf: jf})
	a.op(code, k)
}

func (a *asm) jeq(k uint32, jt, jf string) { a.cond(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, k, jt, jf) }
func (a *asm) jset(k uint32, jt, jf string) {
	a.cond(unix.BPF_JMP|unix.BPF_JSET|unix.BPF_K, k, jt, jf)
}

func (a *asm) jmp(to string) {
	a.fixups = append(a.fixups, fixup{at: len(a.ins), jt: to})
	a.op(unix.BPF_JMP|unix.BPF_JA, 0)
}

func (a *asm) assemble() ([]unix.SockFilter, error) {
	rel := func(from int, to string) (int, error) {
		if to == "" {
			return 0, nil
		}
		at, ok := a.labels[to]
		if !ok || at <= from {
			return 0, fmt.Errorf("tap: bpf: label %q missing or backwards", to)
		}
		return at - from - 1, nil
	}
	for _, f := range a.fixups {
		jt, err := rel(f.at, f.jt)
		if err != nil {
			return nil, err
		}
		jf, err := rel(f.at, f.jf)
		if err != nil {
			return nil, err
		}
		in := &a.ins[f.at]
		if in.Code == unix.BPF_JMP|unix.BPF_JA {
			in.K = uint32(jt)
			continue
		}
		if jt > 255 || jf > 255 {
			return nil, fmt.Errorf("tap: bpf: jump too far")
		}
		in.Jt, in.Jf = uint8(jt), uint8(jf)
	}
	return a.ins, nil
}

// marshalFilter encodes a program as struct sock_filter[] in host order,
// the TCA_BPF_OPS attribute.
func marshalFilter(prog []unix.SockFilter) []byte {
	b := make([]byte, 0, 8*len(prog))
	for _, in := range prog {
		b = binary.NativeEndian.AppendUint16(b, in.Code)
		b = append(b, in.Jt, in.Jf)
		b = binary.NativeEndian.AppendUint32(b, in.K)
	}
	return b
}
