package tap

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// rateQdisc records the rates it is set to.
type rateQdisc struct{ rates []uint64 }

func (q *rateQdisc) SetRate(r uint64) error     { q.rates = append(q.rates, r); return nil }
func (q *rateQdisc) Stats() (QdiscStats, error) { return QdiscStats{}, nil }
func (q *rateQdisc) Close() error               { return nil }

// TestBackpressureFallbackToPaced: where the credit cannot be installed (a
// kernel without tbf or size tables), the shaper falls back to the htb paced
// by the MAC, retunes it, and status says which mechanism is in force.
func TestBackpressureFallbackToPaced(t *testing.T) {
	q := &rateQdisc{}
	var cfgs []ShaperConfig
	s := &LazyShaper{log: zerolog.Nop(), install: func(c ShaperConfig) (qdisc, error) {
		cfgs = append(cfgs, c)
		if !c.NoCredit {
			return nil, errors.New("tbf: no such qdisc kind")
		}
		return q, nil
	}}
	if err := s.SetRate(1000); err != nil {
		t.Fatalf("SetRate: %v", err)
	}
	if len(cfgs) != 2 || cfgs[0].NoCredit || !cfgs[1].NoCredit || cfgs[1].Rate != 1000 {
		t.Fatalf("install calls %+v; want the credit, then the paced htb at 1000 B/s", cfgs)
	}
	if err := s.SetRate(2000); err != nil {
		t.Fatalf("SetRate: %v", err)
	}
	if len(q.rates) != 1 || q.rates[0] != 2000 {
		t.Errorf("paced htb retuned to %v; want [2000]", q.rates)
	}
	if m := s.Mode(); !strings.Contains(m, "fallback") {
		t.Errorf("status mode %q does not say it is the fallback", m)
	}
	s.read(false) // no credit: nothing to grant, no panic
}

// creditQdisc is a credit (granter) whose GSO cut failed, as
// Shaper.GSOCut reports it.
type creditQdisc struct {
	rateQdisc
	gsoErr   error
	limitErr error // SetFlowLimit's answer
	limits   []uint32
}

func (q *creditQdisc) Grant() error      { return nil }
func (q *creditQdisc) GrantSize() uint32 { return 2 }
func (q *creditQdisc) SetFlowLimit(n uint32) error {
	if q.limitErr == nil {
		q.limits = append(q.limits, n)
	}
	return q.limitErr
}
func (q *creditQdisc) GSOCut() (uint32, error) { return 0, q.gsoErr }

// TestModeSaysWmemMaxCapped: a wmem_max larger than the flow queues hold
// within their memory bound (FlowLimitFor) was only logged at start; the
// status's mode says it too, with the limit, and not when the queues hold
// it.
func TestModeSaysWmemMaxCapped(t *testing.T) {
	for _, wmem := range []uint64{212_992, 1 << 40} {
		s := &LazyShaper{log: zerolog.Nop(), wmem: func() uint64 { return wmem }, install: func(ShaperConfig) (qdisc, error) { return &creditQdisc{}, nil }}
		if err := s.SetRate(1000); err != nil {
			t.Fatal(err)
		}
		m := s.Mode()
		limit, capped := FlowLimitFor(wmem)
		says := strings.Contains(m, "wmem_max") && strings.Contains(m, strconv.FormatUint(uint64(limit), 10)+" packets")
		if capped != says {
			t.Errorf("wmem_max %d (capped %v): mode %q", wmem, capped, m)
		}
	}
}

// TestModeAfterFailedResize: when wmem_max grows past what the flow
// queues hold and resizing them fails, the old limit holds, and Mode says
// that one, not the one that failed; the next look tries again and, once
// the resize goes through, Mode says the new one.
func TestModeAfterFailedResize(t *testing.T) {
	wmem := uint64(212_992)
	q := &creditQdisc{limitErr: errors.New("netlink: operation not permitted")}
	s := &LazyShaper{log: zerolog.Nop(), wmem: func() uint64 { return wmem }, install: func(ShaperConfig) (qdisc, error) { return q, nil }}
	if err := s.SetRate(1000); err != nil {
		t.Fatal(err)
	}
	look := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.wmemAt = time.Time{} // the next grant looks at wmem_max again
		for range 2 {          // a grant's worth
			s.count()
		}
	}
	wmem = 1 << 40
	look()
	if m := s.Mode(); strings.Contains(m, "wmem_max") {
		t.Errorf("resize failed, the old limit holds; mode %q", m)
	}
	q.limitErr = nil
	look()
	limit, _ := FlowLimitFor(wmem)
	if len(q.limits) != 1 || q.limits[0] != limit {
		t.Errorf("limits set %v, want [%d]: the resize was not tried again", q.limits, limit)
	}
	if m := s.Mode(); !strings.Contains(m, "wmem_max") {
		t.Errorf("resized to a capped limit; mode %q does not say so", m)
	}
}

// TestModeSaysTheGSOCutFailed: status's mechanism says what the credit
// cannot promise when it cannot cut UDP_SEGMENT skbs (a UDP GSO sender's
// bursts may overflow the ring), and nothing of it when it can, beyond the
// small segments it never fully holds.
func TestModeSaysTheGSOCutFailed(t *testing.T) {
	for _, gsoErr := range []error{nil, errors.New("a credit of 40 packets of 1514 bytes is too large for the size table")} {
		s := &LazyShaper{log: zerolog.Nop(), install: func(ShaperConfig) (qdisc, error) { return &creditQdisc{gsoErr: gsoErr}, nil }}
		if err := s.SetRate(1000); err != nil {
			t.Fatal(err)
		}
		m := s.Mode()
		if !strings.HasPrefix(m, "shaping qdisc with a credit") {
			t.Errorf("mode %q: want the credit", m)
		}
		says := strings.Contains(m, "cannot cut UDP_SEGMENT") && strings.Contains(m, "overflow the TAP ring")
		if gsoErr != nil && (!says || !strings.Contains(m, gsoErr.Error())) {
			t.Errorf("GSO cut failed (%v); mode %q does not say what the credit cannot promise and why", gsoErr, m)
		}
		if gsoErr == nil && says {
			t.Errorf("GSO cut works; mode %q says it does not", m)
		}
		// Even when the cut works, segments much smaller than a frame
		// pass the credit several to a packet (docs/backpressure.md,
		// "UDP segmentation offload", what is left): the promise says so.
		if !strings.Contains(m, "segments much smaller than a frame") {
			t.Errorf("mode %q promises zero loss to UDP_SEGMENT senders of small segments", m)
		}
	}
}

// blockingQdisc is a qdisc whose Stats blocks until release is closed, as a
// netlink dump can.
type blockingQdisc struct {
	inStats chan struct{}
	release chan struct{}
}

func (q *blockingQdisc) SetRate(uint64) error { return nil }
func (q *blockingQdisc) Close() error         { return nil }
func (q *blockingQdisc) Stats() (QdiscStats, error) {
	q.inStats <- struct{}{}
	<-q.release
	return QdiscStats{}, nil
}

// TestMetricsScrapeLeavesTheLoopAlone: while a scrape reads the qdisc's
// counters (a netlink dump), the lock the loop's SetRate takes is free.
func TestMetricsScrapeLeavesTheLoopAlone(t *testing.T) {
	q := &blockingQdisc{inStats: make(chan struct{}), release: make(chan struct{})}
	s := &LazyShaper{install: func(ShaperConfig) (qdisc, error) { return q, nil }}
	if err := s.SetRate(1000); err != nil { // installs q
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { // the scrape
		_, err := s.Stats()
		done <- err
	}()
	<-q.inStats
	if !s.mu.TryLock() {
		t.Error("a scrape holds the shaper's lock across the qdisc dump; the loop's SetRate would wait for it")
	} else {
		s.mu.Unlock()
	}
	close(q.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestAutoStallLimit: the default stall limit keeps the leak at most an
// eighth of what the link carries in full-size frames, and is never below
// DefaultStallLimit.
func TestAutoStallLimit(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		ring, mtu int
		bitRate   int
		want      time.Duration // 0: only check the rule
	}{
		{desc: "115200 bit/s", ring: 16, mtu: 1500, bitRate: 115200, want: DefaultStallLimit},
		{desc: "9600 bit/s", ring: 16, mtu: 1500, bitRate: 9600},
		{desc: "acoustic 2400 bit/s, MTU 1500", ring: 16, mtu: 1500, bitRate: 2400},
		{desc: "acoustic 300 bit/s, MTU 576", ring: 16, mtu: 576, bitRate: 300},
		{desc: "rate unknown", ring: 16, mtu: 1500, bitRate: 0, want: DefaultStallLimit},
		{desc: "ring too short for room", ring: 4, mtu: 1500, bitRate: 2400, want: DefaultStallLimit},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			rate := uint64(tc.bitRate) * 9 / 80 // the pacer's start: 90% of the raw rate, bytes/s
			got := autoStallLimit(uint32(tc.ring), tc.mtu, rate)
			if got < DefaultStallLimit {
				t.Fatalf("stall limit %v below the default %v", got, DefaultStallLimit)
			}
			if tc.want != 0 && got != tc.want {
				t.Fatalf("stall limit %v, want %v", got, tc.want)
			}
			room := LeakRoom(uint32(tc.ring), DefaultGrant)
			if rate == 0 || room <= 1 {
				return
			}
			leak := room / got.Seconds()
			frames := float64(rate) / float64(tc.mtu+14)
			if leak > frames/8*1.001 {
				t.Errorf("leak %.3f packets/s against %.3f full frames/s: more than an eighth", leak, frames)
			}
			t.Logf("stall limit %v, leak %.3f packets/s, link %.3f frames/s", got, leak, frames)
		})
	}
}

// grantQdisc is a credit qdisc that counts its grants.
type grantQdisc struct {
	rateQdisc
	grants int
}

func (q *grantQdisc) Grant() error              { q.grants++; return nil }
func (q *grantQdisc) GrantSize() uint32         { return 2 }
func (q *grantQdisc) SetFlowLimit(uint32) error { return nil }

// TestCreditGrantsOnTake: once the bridge reads ahead (GrantOnTake), the
// credit grants per two packets taken, not read; Released still counts the
// packets read, so the bridge's ring estimate includes those read ahead.
func TestCreditGrantsOnTake(t *testing.T) {
	q := &grantQdisc{}
	s := &LazyShaper{log: zerolog.Nop(), install: func(ShaperConfig) (qdisc, error) { return q, nil }}
	if err := s.SetRate(1000); err != nil {
		t.Fatal(err)
	}
	c := CreditTAP{Shaper: s}
	for range 4 {
		s.read(false)
	}
	if q.grants != 2 {
		t.Fatalf("grants after 4 reads: %d, want 2", q.grants)
	}
	if !c.GrantOnTake() {
		t.Fatal("GrantOnTake with a shaper: false")
	}
	for range 4 {
		s.read(false)
	}
	s.read(true) // a kick
	if q.grants != 2 {
		t.Fatalf("grants after 4 reads ahead: %d, want still 2", q.grants)
	}
	for range 3 {
		c.Taken()
	}
	if q.grants != 3 {
		t.Fatalf("grants after 3 taken: %d, want 3", q.grants)
	}
	if sent, _, err := s.Released(); err != nil || sent != 8 {
		t.Fatalf("Released = %d, %v; want the 8 packets read", sent, err)
	}
	if (CreditTAP{}).GrantOnTake() {
		t.Fatal("GrantOnTake without a shaper: true")
	}
}

// TestCreditPaysForWhatItLetIn: a grant that let more packets in than the
// grant (the segments of a GSO skb the credit cut) is paid for by takes
// before the next grant: with 12 packets read ahead, the credit grants
// again only once the read-ahead is back at holdBound (6), and then every
// two takes as before.
func TestCreditPaysForWhatItLetIn(t *testing.T) {
	q := &grantQdisc{}
	s := &LazyShaper{log: zerolog.Nop(), install: func(ShaperConfig) (qdisc, error) { return q, nil }}
	if err := s.SetRate(1000); err != nil {
		t.Fatal(err)
	}
	c := CreditTAP{Shaper: s}
	c.GrantOnTake()
	for range 12 {
		s.read(false)
	}
	s.read(true) // a kick: not read ahead
	for i := range 5 {
		c.Taken()
		if q.grants != 0 {
			t.Fatalf("a grant after %d takes with %d packets read ahead", i+1, 12-i-1)
		}
	}
	c.Taken() // 6 read ahead now
	if q.grants != 1 {
		t.Fatalf("grants with the read-ahead back under the bound: %d, want 1", q.grants)
	}
	s.read(false)
	s.read(false)
	c.Taken()
	c.Taken()
	if q.grants != 2 {
		t.Fatalf("grants after two more takes: %d, want 2", q.grants)
	}
}
