package tap

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The layout of FreeBSD's struct ifmibdata (net/if_mib.h) around struct
// if_data (net/if.h), FreeBSD 11 and later, the same on every platform:
// five ints and four filler ints after the 16-byte name, if_data aligned
// to 8 bytes, its counters 64-bit. The parser is portable so that its
// tests and fuzz target run on the Linux CI too.
const (
	ifmdSndLen    = 24 // int ifmd_snd_len: frames in the send queue now
	ifmdSndMaxlen = 28 // int ifmd_snd_maxlen
	ifmdData      = 56 // struct if_data ifmd_data

	ifiIpackets = 24
	ifiIerrors  = 32
	ifiOpackets = 40
	ifiOerrors  = 48
	ifiIbytes   = 64
	ifiObytes   = 72
	ifiIqdrops  = 96
	ifiOqdrops  = 104

	ifMIBDataMin = ifmdData + ifiOqdrops + 8 // the last field read
)

// ifMIB is what slided reads from one interface's ifmibdata.
type ifMIB struct {
	Stats             LinkStats
	SndLen, SndMaxlen int // the send queue (if_snd), in frames
}

var errShortIfMIB = errors.New("ifmibdata too short")

// parseIfMIBData decodes the ifmibdata the kernel returned, in the host's
// byte order. A short or odd buffer is an error.
func parseIfMIBData(b []byte) (ifMIB, error) {
	if len(b) < ifMIBDataMin {
		return ifMIB{}, fmt.Errorf("%w: %d bytes, want at least %d", errShortIfMIB, len(b), ifMIBDataMin)
	}
	e := binary.NativeEndian
	u64 := func(off int) uint64 { return e.Uint64(b[ifmdData+off:]) }
	i32 := func(off int) int { return int(int32(e.Uint32(b[off:]))) }
	m := ifMIB{
		Stats: LinkStats{
			TxPackets: u64(ifiOpackets), TxBytes: u64(ifiObytes), TxDropped: u64(ifiOqdrops), TxErrors: u64(ifiOerrors),
			RxPackets: u64(ifiIpackets), RxBytes: u64(ifiIbytes), RxDropped: u64(ifiIqdrops), RxErrors: u64(ifiIerrors),
		},
		SndLen:    i32(ifmdSndLen),
		SndMaxlen: i32(ifmdSndMaxlen),
	}
	if m.SndLen < 0 || m.SndMaxlen < 0 {
		return ifMIB{}, fmt.Errorf("ifmibdata: negative send queue length %d or maximum %d", m.SndLen, m.SndMaxlen)
	}
	return m, nil
}
