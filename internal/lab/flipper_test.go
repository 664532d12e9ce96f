//go:build linux

package lab

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"net"
	"runtime"
	"testing"
	"time"
)

// flipperRig is a Flipper between two net.Pipes: the test writes into A and
// reads from B (direction 0), and the other way round (direction 1).
type flipperRig struct {
	f    *Flipper
	A, B net.Conn
}

func newFlipperRig(t *testing.T, ctx context.Context, cfg FlipperConfig) *flipperRig {
	t.Helper()
	a1, a2 := net.Pipe()
	b1, b2 := net.Pipe()
	f, err := StartFlipper(ctx, a2, b2, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		a1.Close()
		b1.Close()
	})
	return &flipperRig{f: f, A: a1, B: b1}
}

// pass writes data into w and reads as many bytes from r, concurrently.
func pass(t *testing.T, w io.Writer, r io.Reader, data []byte) []byte {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(data)
		errc <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	return got
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func diffBits(a, b []byte) int {
	n := 0
	for i := range a {
		n += bits.OnesCount8(a[i] ^ b[i])
	}
	return n
}

// waitGoroutines waits up to 2 s for the goroutine count to fall to want.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFlipperBER0PassesBytes(t *testing.T) {
	rig := newFlipperRig(t, context.Background(), FlipperConfig{Seed: 1})
	for d, ends := range [2][2]net.Conn{{rig.A, rig.B}, {rig.B, rig.A}} {
		data := randomBytes(256<<10, uint64(d))
		if got := pass(t, ends[0], ends[1], data); !bytes.Equal(got, data) {
			t.Fatalf("direction %d: %d bits differ at BER 0", d, diffBits(got, data))
		}
	}
	st := rig.f.Stats()
	if st.Bytes != [2]uint64{256 << 10, 256 << 10} || st.Flipped != [2]uint64{} || st.Bursts != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestFlipperBERStatistics: at 1e-2 over 1 MB (8,388,608 bits) the flips
// are binomial, mean 83,886, standard deviation 288; the count must lie
// within 6 standard deviations, agree exactly with the bits that differ,
// and be spread over the whole stream.
func TestFlipperBERStatistics(t *testing.T) {
	const ber, size = 1e-2, 1 << 20
	rig := newFlipperRig(t, context.Background(), FlipperConfig{BER: ber, Seed: 7})
	data := randomBytes(size, 3)
	got := pass(t, rig.A, rig.B, data)
	st := rig.f.Stats()
	n := float64(size * 8)
	mean, sd := n*ber, math.Sqrt(n*ber*(1-ber))
	flips := diffBits(got, data)
	t.Logf("%d bits flipped (expected %.0f ± %.0f), counter %d", flips, mean, sd, st.Flipped[0])
	if math.Abs(float64(flips)-mean) > 6*sd {
		t.Errorf("%d bits flipped, want %.0f ± %.0f", flips, mean, 6*sd)
	}
	if uint64(flips) != st.Flipped[0] || st.Flipped[1] != 0 || st.Bytes[0] != size {
		t.Errorf("stats %+v, but %d bits differ", st, flips)
	}
	// Each eighth of the stream gets its share (mean 10,486, sd 102).
	for i := range 8 {
		part := diffBits(got[i*size/8:(i+1)*size/8], data[i*size/8:(i+1)*size/8])
		if math.Abs(float64(part)-mean/8) > 6*sd/math.Sqrt(8) {
			t.Errorf("eighth %d: %d flips, want %.0f ± %.0f", i, part, mean/8, 6*sd/math.Sqrt(8))
		}
	}
}

func TestFlipperSetBERAtRunTime(t *testing.T) {
	rig := newFlipperRig(t, context.Background(), FlipperConfig{Seed: 2})
	data := randomBytes(4096, 5)
	if got := pass(t, rig.B, rig.A, data); !bytes.Equal(got, data) {
		t.Fatal("changed at BER 0")
	}
	if err := rig.f.SetBER(1); err != nil {
		t.Fatal(err)
	}
	got := pass(t, rig.B, rig.A, data)
	for i := range got {
		if got[i] != ^data[i] {
			t.Fatalf("BER 1: byte %d is %#x, want %#x", i, got[i], ^data[i])
		}
	}
	rig.f.SetBER(0)
	if got := pass(t, rig.B, rig.A, data); !bytes.Equal(got, data) {
		t.Fatal("changed after going back to BER 0")
	}
	if err := rig.f.SetBER(1.5); err == nil {
		t.Error("SetBER(1.5) accepted")
	}
	if st := rig.f.Stats(); st.Flipped[1] != 4096*8 {
		t.Errorf("stats %+v, want %d flips b→a", st, 4096*8)
	}
}

func TestFlipperBursts(t *testing.T) {
	rig := newFlipperRig(t, context.Background(), FlipperConfig{Seed: 4, BurstEvery: 20 * time.Millisecond, BurstMin: 20, BurstMax: 200})
	got := [2]int{}
	errc := make(chan error, 2)
	for i, c := range []net.Conn{rig.A, rig.B} {
		go func() {
			buf := make([]byte, 1024)
			for {
				n, err := c.Read(buf)
				got[i] += n
				if err != nil {
					errc <- nil
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	rig.f.SetBursts(0)
	time.Sleep(50 * time.Millisecond) // a burst being written finishes
	st := rig.f.Stats()
	time.Sleep(100 * time.Millisecond)
	if st2 := rig.f.Stats(); st2 != st {
		t.Errorf("bursts went on after SetBursts(0): %+v, then %+v", st, st2)
	}
	rig.f.Close()
	rig.A.Close()
	rig.B.Close()
	<-errc
	<-errc
	t.Logf("%+v; read %v", st, got)
	if st.Bursts < 5 || st.Bursts > 20 {
		t.Errorf("%d bursts in 300 ms at one per 20 ms", st.Bursts)
	}
	if uint64(got[0]+got[1]) != st.BurstBytes || got[0] < 20*int(st.Bursts) || got[1] < 20*int(st.Bursts) ||
		got[0] > 200*int(st.Bursts) || got[1] > 200*int(st.Bursts) {
		t.Errorf("read %v bytes from the two ends for %d bursts of 20..200 bytes (%d counted)", got, st.Bursts, st.BurstBytes)
	}
	if st.Bytes != [2]uint64{} {
		t.Errorf("bursts counted as relayed bytes: %+v", st)
	}
}

// TestFlipperStops: Close, a cancelled context and a failed end each stop
// the Flipper, and no goroutine is left.
func TestFlipperStops(t *testing.T) {
	before := runtime.NumGoroutine()

	// Close, with a burst timer armed and reads pending.
	a1, a2 := net.Pipe()
	b1, b2 := net.Pipe()
	f, err := StartFlipper(context.Background(), a2, b2, FlipperConfig{BER: 1e-3, BurstEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	f.Close() // twice is fine
	if _, err := a1.Write([]byte{1}); err == nil {
		t.Error("end a still open after Close")
	}
	a1.Close()
	b1.Close()
	waitGoroutines(t, before)

	// The context.
	ctx, cancel := context.WithCancel(context.Background())
	a1, a2 = net.Pipe()
	b1, b2 = net.Pipe()
	if f, err = StartFlipper(ctx, a2, b2, FlipperConfig{}); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-f.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("not stopped 2 s after its context was cancelled")
	}
	if f.Err() != nil {
		t.Errorf("Err after cancel: %v", f.Err())
	}
	a1.Close()
	b1.Close()
	waitGoroutines(t, before)

	// A failed end: the far side of b goes away, then a relayed write fails.
	a1, a2 = net.Pipe()
	b1, b2 = net.Pipe()
	if f, err = StartFlipper(context.Background(), a2, b2, FlipperConfig{}); err != nil {
		t.Fatal(err)
	}
	b1.Close()
	select {
	case <-f.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("not stopped 2 s after an end failed")
	}
	if err := f.Err(); err == nil || !errors.Is(err, io.EOF) {
		t.Errorf("Err = %v, want the read error from b (EOF)", err)
	}
	a1.Close()
	waitGoroutines(t, before)
}
