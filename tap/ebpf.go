//go:build linux

package tap

// A small eBPF assembler and the bpf(2) calls the classifiers need (forward.go,
// sockflow.go). Hand-assembled: the programs are a few dozen instructions
// and need no ELF or BTF (docs/decisions.md, "Forwarded traffic").

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loadAttempts bounds BPF_PROG_LOAD's attempts when it is interrupted.
const loadAttempts = 50

// ebpfAsm collects eBPF instructions (struct bpf_insn, host order).
type ebpfAsm []byte

// ins appends one instruction.
func (b *ebpfAsm) ins(code uint8, dst, src uint8, off int16, imm int32) {
	p := append(*b, code)
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 { // little endian: dst in the low nibble
		p = append(p, src<<4|dst)
	} else {
		p = append(p, dst<<4|src)
	}
	p = binary.NativeEndian.AppendUint16(p, uint16(off))
	*b = binary.NativeEndian.AppendUint32(p, uint32(imm))
}

// len is the number of instructions so far.
func (b ebpfAsm) len() int { return len(b) / 8 }

// loadSchedCLS loads insns as a cls_bpf program named name (at most 15
// bytes) and returns its descriptor, close-on-exec. what names the program
// in errors. A verifier's refusal comes with the verifier's log.
func loadSchedCLS(what, name string, insns ebpfAsm) (int, error) {
	license := []byte("GPL\x00") // no GPL-only helper is called; any string would do
	logBuf := make([]byte, 4096)
	attr := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_SCHED_CLS,
		insnCnt:  uint32(insns.len()),
		insns:    uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
		logLevel: 1,
		logSize:  uint32(len(logBuf)),
		logBuf:   uint64(uintptr(unsafe.Pointer(&logBuf[0]))),
	}
	copy(attr.name[:15], name)
	// The verifier gives up with EAGAIN when a signal is pending, and the
	// Go runtime signals its threads (SIGURG, to preempt goroutines): try
	// again, as libbpf does.
	var fd uintptr
	var errno unix.Errno
	for range loadAttempts {
		fd, _, errno = unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		if errno != unix.EAGAIN && errno != unix.EINTR {
			break
		}
	}
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	runtime.KeepAlive(logBuf)
	if errno != 0 {
		err := error(errno)
		if n := bytesBeforeNUL(logBuf); n > 0 {
			err = fmt.Errorf("%w (verifier: %s)", errno, logBuf[:n])
		}
		if errors.Is(errno, unix.EPERM) {
			return -1, fmt.Errorf("tap: load %s (eBPF): %w (needs CAP_BPF or CAP_SYS_ADMIN)", what, err)
		}
		return -1, fmt.Errorf("tap: load %s (eBPF): %w", what, err)
	}
	unix.CloseOnExec(int(fd))
	return int(fd), nil
}

func bytesBeforeNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}

// progLoadAttr is the head of union bpf_attr for BPF_PROG_LOAD.
type progLoadAttr struct {
	progType    uint32
	insnCnt     uint32
	insns       uint64
	license     uint64
	logLevel    uint32
	logSize     uint32
	logBuf      uint64
	kernVersion uint32
	progFlags   uint32
	name        [16]byte
}
