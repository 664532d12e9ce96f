package tty

import "testing"

func TestCheckStandardBaud(t *testing.T) {
	tests := []struct {
		baud int
		ok   bool
	}{
		{0, true}, {50, true}, {1200, true}, {9600, true}, {115200, true}, {921600, true},
		{31250, false}, {1, false}, {-9600, false}, {1000000, false}, {9601, false},
	}
	for _, tt := range tests {
		if err := checkStandardBaud(tt.baud); (err == nil) != tt.ok {
			t.Errorf("checkStandardBaud(%d) = %v, want ok %v", tt.baud, err, tt.ok)
		}
	}
}
