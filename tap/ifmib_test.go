package tap

import (
	"encoding/binary"
	"errors"
	"testing"
)

// ifMIBBytes lays out an ifmibdata as FreeBSD's sysctl returns it (208
// bytes on amd64, arm64 and armv7).
func ifMIBBytes(sndLen, sndMax int32, s LinkStats) []byte {
	b := make([]byte, 208)
	e := binary.NativeEndian
	copy(b, "slide0")
	e.PutUint32(b[ifmdSndLen:], uint32(sndLen))
	e.PutUint32(b[ifmdSndMaxlen:], uint32(sndMax))
	put := func(off int, v uint64) { e.PutUint64(b[ifmdData+off:], v) }
	put(ifiIpackets, s.RxPackets)
	put(ifiIerrors, s.RxErrors)
	put(ifiOpackets, s.TxPackets)
	put(ifiOerrors, s.TxErrors)
	put(ifiIbytes, s.RxBytes)
	put(ifiObytes, s.TxBytes)
	put(ifiIqdrops, s.RxDropped)
	put(ifiOqdrops, s.TxDropped)
	return b
}

func TestParseIfMIBData(t *testing.T) {
	want := LinkStats{TxPackets: 1, TxBytes: 2, TxDropped: 3, TxErrors: 4, RxPackets: 5, RxBytes: 6, RxDropped: 7, RxErrors: 8}
	tests := []struct {
		name    string
		b       []byte
		want    ifMIB
		wantErr bool
	}{
		{name: "full", b: ifMIBBytes(7, 50, want), want: ifMIB{Stats: want, SndLen: 7, SndMaxlen: 50}},
		{name: "just long enough", b: ifMIBBytes(0, 50, want)[:ifMIBDataMin], want: ifMIB{Stats: want, SndMaxlen: 50}},
		{name: "empty", b: nil, wantErr: true},
		{name: "one byte short", b: ifMIBBytes(0, 50, want)[:ifMIBDataMin-1], wantErr: true},
		{name: "negative queue", b: ifMIBBytes(-1, 50, want), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIfMIBData(tt.b)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := parseIfMIBData(nil); !errors.Is(err, errShortIfMIB) {
		t.Errorf("nil: err = %v, want errShortIfMIB", err)
	}
}

func FuzzParseIfMIBData(f *testing.F) {
	f.Add(ifMIBBytes(3, 50, LinkStats{TxPackets: 9, TxDropped: 1}))
	f.Add([]byte{})
	f.Add(make([]byte, ifMIBDataMin))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseIfMIBData(b)
		if err != nil {
			return
		}
		if len(b) < ifMIBDataMin || m.SndLen < 0 || m.SndMaxlen < 0 {
			t.Fatalf("accepted %d bytes as %+v", len(b), m)
		}
	})
}
