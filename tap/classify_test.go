//go:build linux

package tap

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// runBPF interprets the subset of classic BPF that flowHashProgram uses,
// with the kernel's rule that a load beyond the packet returns 0 (no match).
func runBPF(t testing.TB, prog []unix.SockFilter, pkt []byte) uint32 {
	var a, x uint32
	var mem [16]uint32
	load := func(off uint32, size int) (uint32, bool) {
		if uint64(off)+uint64(size) > uint64(len(pkt)) {
			return 0, false
		}
		switch size {
		case 4:
			return binary.BigEndian.Uint32(pkt[off:]), true
		case 2:
			return uint32(binary.BigEndian.Uint16(pkt[off:])), true
		}
		return uint32(pkt[off]), true
	}
	size := func(code uint16) int {
		switch code & 0x18 {
		case unix.BPF_W:
			return 4
		case unix.BPF_H:
			return 2
		}
		return 1
	}
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		var ok = true
		switch c := in.Code; {
		case c&^0x18 == unix.BPF_LD|unix.BPF_ABS:
			a, ok = load(in.K, size(c))
		case c&^0x18 == unix.BPF_LD|unix.BPF_IND:
			a, ok = load(x+in.K, size(c))
		case c == unix.BPF_LD|unix.BPF_MEM:
			a = mem[in.K]
		case c == unix.BPF_LDX|unix.BPF_B|unix.BPF_MSH:
			var v uint32
			v, ok = load(in.K, 1)
			x = 4 * (v & 0xf)
		case c == unix.BPF_ST:
			mem[in.K] = a
		case c == unix.BPF_MISC|unix.BPF_TAX:
			x = a
		case c == unix.BPF_ALU|unix.BPF_XOR|unix.BPF_X:
			a ^= x
		case c == unix.BPF_ALU|unix.BPF_RSH|unix.BPF_K:
			a >>= in.K
		case c == unix.BPF_ALU|unix.BPF_MUL|unix.BPF_K:
			a *= in.K
		case c == unix.BPF_ALU|unix.BPF_ADD|unix.BPF_X:
			a += x
		case c == unix.BPF_ALU|unix.BPF_AND|unix.BPF_K:
			a &= in.K
		case c == unix.BPF_ALU|unix.BPF_ADD|unix.BPF_K:
			a += in.K
		case c == unix.BPF_JMP|unix.BPF_JA:
			pc += int(in.K)
		case c == unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K:
			if a == in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case c == unix.BPF_JMP|unix.BPF_JSET|unix.BPF_K:
			if a&in.K != 0 {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case c == unix.BPF_RET|unix.BPF_A:
			return a
		case c == unix.BPF_RET|unix.BPF_K:
			return in.K
		default:
			t.Fatalf("pc %d: opcode %#x not interpreted", pc, c)
		}
		if !ok {
			return 0
		}
	}
	t.Fatal("program ran off its end")
	return 0
}

func ip4Frame(proto byte, frag uint16, sport, dport uint16) []byte {
	f := make([]byte, 14+20+8)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	f[14] = 0x45
	binary.BigEndian.PutUint16(f[14+6:], frag)
	f[14+9] = proto
	copy(f[14+12:], []byte{192, 0, 2, 1, 192, 0, 2, 2})
	binary.BigEndian.PutUint16(f[34:], sport)
	binary.BigEndian.PutUint16(f[36:], dport)
	return f
}

func ip6Frame(proto byte, sport, dport uint16) []byte {
	f := make([]byte, 14+40+8)
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	f[14] = 0x60
	f[14+6] = proto
	f[14+8], f[14+9], f[14+23] = 0xfd, 0x00, 1
	f[14+24], f[14+25], f[14+39] = 0xfd, 0x00, 2
	binary.BigEndian.PutUint16(f[54:], sport)
	binary.BigEndian.PutUint16(f[56:], dport)
	return f
}

func TestFlowHashProgram(t *testing.T) {
	prog, err := flowHashProgram(childMajor, flowBuckets)
	if err != nil {
		t.Fatal(err)
	}
	arp := make([]byte, 42)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	kick := make([]byte, 60)
	binary.BigEndian.PutUint16(kick[12:], kickType)
	copy(kick[14:], kickMagic)
	other88b5 := make([]byte, 60)
	binary.BigEndian.PutUint16(other88b5[12:], kickType)
	base := uint32(childHandle | 1)
	tests := []struct {
		desc     string
		a, b     []byte
		same     bool   // a and b in one bucket
		wantA    uint32 // 0: any bucket
		noMatchA bool   // a matches nothing (htb then uses its default class)
	}{
		{desc: "udp4 consecutive source ports", a: ip4Frame(17, 0, 40000, 9), b: ip4Frame(17, 0, 40001, 9)},
		{desc: "tcp4 consecutive destination ports", a: ip4Frame(6, 0, 40000, 80), b: ip4Frame(6, 0, 40000, 81)},
		{desc: "udp4 same flow twice", a: ip4Frame(17, 0, 1234, 9), b: ip4Frame(17, 0, 1234, 9), same: true},
		{desc: "icmp4 ignores ports", a: ip4Frame(1, 0, 1, 2), b: ip4Frame(1, 0, 3, 4), same: true},
		{desc: "udp4 fragments ignore ports", a: ip4Frame(17, 0x00b9, 1, 2), b: ip4Frame(17, 0x00b9, 3, 4), same: true},
		// The first fragment (more-fragments set, offset 0) carries the
		// ports, the others do not: all go to one bucket, so a datagram's
		// fragments leave in order and together.
		{desc: "udp4 first fragment with the rest", a: ip4Frame(17, 0x2000, 40000, 9), b: ip4Frame(17, 0x00b9, 0, 0), same: true},
		{desc: "udp6 consecutive source ports", a: ip6Frame(17, 40000, 9), b: ip6Frame(17, 40001, 9)},
		{desc: "tcp6 consecutive destination ports", a: ip6Frame(6, 5000, 22), b: ip6Frame(6, 5000, 23)},
		{desc: "udp4 both ports shifted by one", a: ip4Frame(17, 0, 6000, 6000), b: ip4Frame(17, 0, 6001, 6001)},
		{desc: "udp4 ports swapped", a: ip4Frame(17, 0, 5000, 6000), b: ip4Frame(17, 0, 6000, 5000)},
		{desc: "udp6 both ports shifted by one", a: ip6Frame(17, 6000, 6000), b: ip6Frame(17, 6001, 6001)},
		{desc: "arp goes to bucket 1", a: arp, b: arp, same: true, wantA: base},
		{desc: "a kick frame goes to the kick class", a: kick, b: kick, same: true, wantA: base + flowBuckets},
		{desc: "other 0x88b5 frames go to bucket 1", a: other88b5, b: other88b5, same: true, wantA: base},
		{desc: "truncated udp4 matches nothing", a: ip4Frame(17, 0, 1, 2)[:36], b: ip4Frame(17, 0, 1, 2)[:36], same: true, noMatchA: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			ca, cb := runBPF(t, prog, tc.a), runBPF(t, prog, tc.b)
			if tc.noMatchA {
				if ca != 0 {
					t.Errorf("class %#x, want 0 (no match)", ca)
				}
				return
			}
			for _, c := range []uint32{ca, cb} {
				if c < base || c > base+flowBuckets {
					t.Fatalf("class %#x outside 1:1..1:%x", c, flowBuckets+1)
				}
			}
			if (ca == cb) != tc.same {
				t.Errorf("classes %#x and %#x, want same=%v", ca, cb, tc.same)
			}
			if tc.wantA != 0 && ca != tc.wantA {
				t.Errorf("class %#x, want %#x", ca, tc.wantA)
			}
		})
	}
}

// FuzzFlowHashProgram: on any bytes the program returns 0 or a bucket.
func FuzzFlowHashProgram(f *testing.F) {
	f.Add(ip4Frame(17, 0, 40000, 9))
	f.Add(ip6Frame(6, 1, 2))
	f.Add([]byte{})
	prog, err := flowHashProgram(childMajor, flowBuckets)
	if err != nil {
		f.Fatal(err)
	}
	base := uint32(childHandle | 1)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if c := runBPF(t, prog, pkt); c != 0 && (c < base || c > base+flowBuckets) {
			t.Fatalf("class %#x outside the buckets", c)
		}
	})
}

func TestFlowHashProgramRejectsBadBuckets(t *testing.T) {
	for _, n := range []uint32{0, 3, 100, 1 << 16} {
		if _, err := flowHashProgram(childMajor, n); err == nil {
			t.Errorf("flowHashProgram(%d buckets) succeeded", n)
		}
	}
}
