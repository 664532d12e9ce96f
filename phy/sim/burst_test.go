package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy"
)

// slidedBurst is n slided frames of size payload bytes back to back, as
// the link engine hands a modem that takes bursts.
func slidedBurst(n, size int) ([]byte, [][]byte) {
	var b []byte
	var frames [][]byte
	for i := range n {
		p := bytes.Repeat([]byte{byte(i + 1)}, size)
		start := len(b)
		b = framing.AppendFrame(b, framing.Header{Kind: 1, Dst: 2, Src: 1}, p)
		frames = append(frames, b[start:])
	}
	return b, frames
}

// TestClientBurstFrames: a burst of four 1,032-byte frames (more than the
// medium carries in one transmission) goes through the server in one
// Transmit, each frame on air as its own transmission, right after the one
// before: the receivers get each frame, under one carrier, and the sender
// one TxDone. Before version 3 of the stream protocol the client reported
// no bursts and refused these 4,128 bytes (phy.ErrTooLarge), so the link
// handed over one frame per TxDone, and through real daemons each frame of a
// burst began about 0.5 ms after the end of the one before
// (docs/performance.md).
func TestClientBurstFrames(t *testing.T) {
	checkGoroutines(t)
	path := filepath.Join(t.TempDir(), "medium.sock")
	cfg := rtConfig
	cfg.BitRate = 1_000_000
	ts := startServer(t, cfg, path)
	n1, n2 := dialNode(t, path, 1), dialNode(t, path, 2)
	if got := n1.Info().MaxBurstFrames; got != BurstFrames {
		t.Fatalf("Info().MaxBurstFrames = %d, want %d", got, BurstFrames)
	}
	b, frames := slidedBurst(4, 1020) // 1,032-byte frames, the daemon's 1000-byte datagrams
	if err := n1.Transmit(b); err != nil {
		t.Fatalf("Transmit of %d bytes in %d frames: %v", len(b), len(frames), err)
	}
	expect(t, n1, phy.TxDone)
	evs := expect(t, n2, phy.CarrierOn, phy.Received, phy.Received, phy.Received, phy.CarrierOff, phy.Received)
	got := [][]byte{evs[1].Data, evs[2].Data, evs[3].Data, evs[5].Data}
	for i := range frames {
		if !bytes.Equal(got[i], frames[i]) {
			t.Errorf("frame %d: received %d bytes, want %d (% x...)", i, len(got[i]), len(frames[i]), got[i][:min(8, len(got[i]))])
		}
	}
	if st := ts.srv.Stats(); st.Transmissions != 4 || st.Deliveries != 4 || st.Collisions != 0 {
		t.Errorf("stats = %+v, want 4 transmissions, 4 deliveries", st)
	}
	// Too many frames, or one too long, is refused whole.
	many, _ := slidedBurst(BurstFrames+1, 10)
	if err := n1.Transmit(many); !errors.Is(err, phy.ErrTooLarge) {
		t.Errorf("a burst of %d frames: %v, want phy.ErrTooLarge", BurstFrames+1, err)
	}
	long, _ := slidedBurst(2, MaxFrame)
	if err := n1.Transmit(long); !errors.Is(err, phy.ErrTooLarge) {
		t.Errorf("a burst with a frame of %d bytes: %v, want phy.ErrTooLarge", MaxFrame+7, err)
	}
	// Bytes that are not slided frames go as one transmission, as before.
	raw := []byte{1, 2, 0, 3, 4, 0, 5}
	burst(t, n1, raw, n2)
}

// TestClientOldServer: a server from before version 3 refuses the hello;
// the client says hello again in version 2 and then sends every burst as
// one transmit, as before.
func TestClientOldServer(t *testing.T) {
	checkGoroutines(t)
	got := make(chan message, 8)
	dialFn := func(ctx context.Context) (net.Conn, error) {
		cli, srv := net.Pipe()
		go func() {
			defer srv.Close()
			mr := newMsgReader(srv)
			hello, err := mr.next()
			if err != nil {
				return
			}
			if hello.version > 2 {
				srv.Write(appendMessage(nil, errorMessage(codeVersion, fmt.Sprintf("sim: protocol version %d not supported (want 1 to 2)", hello.version))))
				return
			}
			srv.Write(appendMessage(nil, &message{typ: msgWelcome, version: hello.version, bitRate: 1_000_000, maxFrame: MaxFrame}))
			for {
				m, err := mr.next()
				if err != nil {
					return
				}
				m.data = append([]byte(nil), m.data...)
				got <- m
				if m.typ == msgTransmit {
					srv.Write(appendEmpty(nil, msgTxDone))
				}
			}
		}()
		return cli, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := dialWith(ctx, "old", dialFn, 1, zerolog.Nop(), 10*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("dial an old server: %v", err)
	}
	defer c.Close()
	expect(t, c, phy.Up)
	if info := c.Info(); info.MaxBurstFrames > 1 {
		t.Errorf("Info().MaxBurstFrames = %d on a version 2 server", info.MaxBurstFrames)
	}
	b, _ := slidedBurst(2, 100)
	if err := c.Transmit(b); err != nil {
		t.Fatal(err)
	}
	expect(t, c, phy.TxDone)
	select {
	case m := <-got:
		if m.typ != msgTransmit || !bytes.Equal(m.data, b) {
			t.Errorf("the server got type %d, %d bytes; want one transmit of %d", m.typ, len(m.data), len(b))
		}
	case <-time.After(waitFor):
		t.Fatal("nothing reached the server")
	}
}

func TestSplitter(t *testing.T) {
	b, frames := slidedBurst(3, 20)
	padded := append(append([]byte{0, 0}, b...), 0, 0)
	var s Splitter
	for _, tc := range []struct {
		desc string
		in   []byte
		want [][]byte // nil: not split
	}{
		{"three frames", b, frames},
		{"delimiters around", padded, [][]byte{padded[:2+len(frames[0])], frames[1], padded[2+len(frames[0])+len(frames[1]):]}},
		{"one frame", frames[0], nil},
		{"not slided frames", []byte{0, 1, 2, 0, 3, 4, 0}, nil},
		{"a good frame and garbage", append(append([]byte(nil), frames[0]...), 7, 7, 0), nil},
		{"nothing", nil, nil},
	} {
		got := s.Split(tc.in)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d frames, want %d", tc.desc, len(got), len(tc.want))
			continue
		}
		for i := range got {
			if !bytes.Equal(got[i], tc.want[i]) {
				t.Errorf("%s: frame %d = % x, want % x", tc.desc, i, got[i], tc.want[i])
			}
		}
	}
}

// FuzzSplitter: no input makes Split panic; frames it returns are the
// input cut into pieces, in order, each holding one run of non-zero bytes.
func FuzzSplitter(f *testing.F) {
	b, _ := slidedBurst(3, 20)
	f.Add(b)
	f.Add([]byte{0, 1, 2, 0, 3, 0})
	f.Add([]byte{})
	var s Splitter
	f.Fuzz(func(t *testing.T, in []byte) {
		frames := s.Split(in)
		if frames == nil {
			return
		}
		if len(frames) < 2 {
			t.Fatalf("%d frames", len(frames))
		}
		var joined []byte
		for _, fr := range frames {
			if framing.CountFrames(fr) != 1 {
				t.Fatalf("frame % x holds %d runs", fr, framing.CountFrames(fr))
			}
			joined = append(joined, fr...)
		}
		if !bytes.Equal(joined, in) {
			t.Fatalf("frames join to % x, input % x", joined, in)
		}
	})
}
