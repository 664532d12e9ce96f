package kiss

import (
	"testing"
	"time"
)

// TestWriteBound: the write watchdog scales with the serial line's rate, so
// that a healthy TNC at a low baud rate is not declared down in the middle
// of a long frame; over TCP it stays writeTimeout.
func TestWriteBound(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		serial bool
		baud   int
		want   time.Duration
	}{
		{"tcp, long frame", 2048, false, 1200, writeTimeout},
		{"serial 9600, long frame", 2048, true, 9600, writeTimeout},          // 2.1 s on the line
		{"serial 1200, short frame", 100, true, 1200, writeTimeout},          // 0.8 s
		{"serial 1200, 2 KB", 2048, true, 1200, 2*17066666666 + time.Second}, // 17.07 s on the line
		{"serial 300, 1 KB", 1024, true, 300, 2*34133333333 + time.Second},
		{"serial, no baud", 2048, true, 0, writeTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := writeBound(writeTimeout, tc.n, tc.serial, tc.baud)
			if got != tc.want {
				t.Fatalf("writeBound(%d bytes, serial %v, %d baud) = %v, want %v", tc.n, tc.serial, tc.baud, got, tc.want)
			}
			if line := time.Duration(tc.n) * 10 * time.Second / time.Duration(max(tc.baud, 1)); tc.serial && tc.baud > 0 && got < 2*line {
				t.Fatalf("bound %v below twice the line time %v", got, line)
			}
		})
	}
}
