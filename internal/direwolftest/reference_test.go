package direwolftest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/slided/slided/phy/kiss/kissproto"
)

// perfectTNC joins two client connections like a lossless channel: every
// KISS data frame one side writes reaches the other; commands are dropped.
func perfectTNC(t *testing.T) (a, b net.Conn) {
	a, ta := net.Pipe()
	b, tb := net.Pipe()
	relay := func(from, to net.Conn) {
		d := kissproto.NewDecoder(4096)
		buf := make([]byte, 4096)
		for {
			n, err := from.Read(buf)
			d.Feed(buf[:n], func(port, cmd byte, data []byte) {
				if cmd == kissproto.CmdData {
					to.Write(kissproto.AppendFrame(nil, port, cmd, data))
				}
			})
			if err != nil {
				return
			}
		}
	}
	go relay(ta, tb)
	go relay(tb, ta)
	t.Cleanup(func() { ta.Close(); tb.Close() })
	return a, b
}

// TestReference: the reference's bulk flow and echoes over a perfect
// channel: everything arrives and is counted once.
func TestReference(t *testing.T) {
	clientWarmup = 0
	ca, cb := perfectTNC(t)
	a, err := NewClient(ca, DefaultKISSParams)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewClient(cb, DefaultKISSParams)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	f, err := Bulk(ctx, a, b, 20, 1000, 5*time.Second)
	if err != nil || f.Received != 20 || f.Bytes != 20*1000 {
		t.Fatalf("bulk: %+v, %v", f, err)
	}
	e, err := Echo(ctx, a, b, 5, 200, 5*time.Second)
	if err != nil || e.Answered != 5 || e.Median() <= 0 {
		t.Fatalf("echo: %+v, %v", e, err)
	}
	if _, err := (KISSParams{TXDelay: 3 * time.Second}).frames(); err == nil {
		t.Error("a 3 s TXDELAY was accepted")
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{{nil, 0}, {[]time.Duration{3}, 3}, {[]time.Duration{5, 1, 3}, 3}, {[]time.Duration{4, 1, 2, 3}, 2}} {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
