package direwolftest

import (
	"os"
	"sync"
	"testing"
	"time"
)

// heard counts the non-silent bytes a relay plays into a modem's input.
type heard struct {
	mu    sync.Mutex
	loud  int
	total int
}

func (h *heard) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total += len(p)
	for _, b := range p {
		if b != 0 {
			h.loud++
		}
	}
	return len(p), nil
}

func (h *heard) counts() (loud, total int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.loud, h.total
}

// TestRelayHalfDuplex: audio from one side alone reaches the other in
// full; when both sides transmit at once, each is muted while it sends and
// hears (almost) nothing of the other, like two half-duplex radios.
func TestRelayHalfDuplex(t *testing.T) {
	const burst = SampleRate * bytesPerSample / 5 // 200 ms of audio
	// Each relay ticks every 10 ms on its own, so the other side's mute may
	// start a tick late: at most two ticks leak.
	leak := int(2 * relayTick * SampleRate * bytesPerSample / time.Second)
	loud := make([]byte, burst)
	for i := range loud {
		loud[i] = 0x55
	}
	for _, tc := range []struct {
		desc string
		both bool
		minA int // least loud bytes B's audio must bring to A's input
		maxA int // most
		minB int
		maxB int
	}{
		{desc: "A alone: B hears all of it", minB: burst, maxB: burst},
		{desc: "both at once: each hears at most two ticks of the other", both: true, maxA: leak, maxB: leak},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			ar, aw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			br, bw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			var inA, inB heard
			ab, ba := newRelay(ar, &inB), newRelay(br, &inA)
			ab.muted, ba.muted = &ba.sending, &ab.sending
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for _, r := range []*relay{ab, ba} {
				wg.Add(2)
				go func() { defer wg.Done(); r.collect() }()
				go func() { defer wg.Done(); r.play(stop) }()
			}
			// Both modems write their audio at once, faster than real time.
			if _, err := aw.Write(loud); err != nil {
				t.Fatal(err)
			}
			if tc.both {
				if _, err := bw.Write(loud); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(600 * time.Millisecond) // the 200 ms bursts and then some
			close(stop)
			aw.Close()
			bw.Close()
			wg.Wait()
			ar.Close()
			br.Close()
			la, ta := inA.counts()
			lb, tb := inB.counts()
			if ta == 0 || tb == 0 {
				t.Fatalf("relay played nothing: %d and %d bytes", ta, tb)
			}
			if la < tc.minA || la > tc.maxA || lb < tc.minB || lb > tc.maxB {
				t.Fatalf("A heard %d loud bytes (want %d to %d), B heard %d (want %d to %d)",
					la, tc.minA, tc.maxA, lb, tc.minB, tc.maxB)
			}
		})
	}
}
