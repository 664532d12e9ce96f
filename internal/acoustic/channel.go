// Package acoustic emulates transparent underwater acoustic modems that share
// one body of water, for tests and for trying slided by hand without modems.
//
// Each modem has a serial side (in the I/O shell, Water, a pseudo-terminal
// whose slave path a daemon opens as -phy serial:PATH) and an air side: the
// water, shared by all modems, with a propagation delay for every pair, a bit
// error rate, half duplex and collisions. Two modem models exist:
//
//   - Packet (store and forward): bytes from the serial side are collected
//     into a packet, complete when no byte came for Gap or when it reached
//     MaxPacket bytes; then the modem keys up (Preamble) and sends the packet
//     at AirRate. The receiving modem passes a packet to its serial side only
//     once it has arrived in full. This is how most acoustic modems work: the
//     air time starts after the last byte arrived, not while it is written.
//   - Streaming: bytes go on air as they arrive, after one preamble per
//     burst; a burst ends when no byte was waiting for Gap after the last one
//     went out (the modem holds its carrier that long). The receiver passes
//     bytes on as they arrive.
//
// The core, Channel, is sans-I/O: it is fed bytes with their times and
// returns what each modem hands to its serial side and when, so it is tested
// in virtual time. Water (water.go) is the thin shell that runs it in real
// time over ptys. See docs/modems.md, "Acoustic modem emulator".
package acoustic

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/slided/slided/internal/biterr"
)

// Mode is a modem model.
type Mode uint8

const (
	// Packet stores a whole packet before it keys up (store and forward).
	Packet Mode = iota
	// Streaming puts bytes on air as they arrive.
	Streaming
)

func (m Mode) String() string {
	switch m {
	case Packet:
		return "packet"
	case Streaming:
		return "streaming"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode parses "packet" or "streaming".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "packet":
		return Packet, nil
	case "streaming", "stream":
		return Streaming, nil
	}
	return 0, fmt.Errorf("acoustic: mode %q, want packet or streaming", s)
}

// Defaults for ModemConfig fields left zero.
const (
	DefaultBaud      = 19200
	DefaultAirRate   = 2400
	DefaultMaxPacket = 256
	DefaultQueue     = 4
	// DefaultGapBytes is the default Gap in byte times at the serial rate.
	DefaultGapBytes = 20
	// SoundSpeed is the default speed of sound in water, m/s.
	SoundSpeed = 1500.0
	// MaxInBacklog bounds the bytes a modem holds on its serial input line
	// (read by the shell but not yet arrived at the serial rate); bytes
	// beyond it are dropped and counted in Stats.Overrun.
	MaxInBacklog = 4096
)

// ModemConfig describes one modem. Zero fields take the defaults above;
// Preamble zero means none.
type ModemConfig struct {
	Mode Mode
	// Baud is the serial line rate; a byte takes 10 bits (8N1). The modem
	// takes bytes from and hands bytes to its serial side at this rate.
	Baud int
	// AirRate is the rate on air in bit/s.
	AirRate int
	// Preamble is the key-up time before the first byte of a packet (or a
	// streaming burst) is on air.
	Preamble time.Duration
	// Gap: a packet is complete when no byte came for Gap (Packet); a burst
	// ends Gap after its last byte went out (Streaming). Default
	// DefaultGapBytes byte times at Baud; at least one byte time.
	Gap time.Duration
	// MaxPacket is the largest packet (Packet mode): a packet is complete
	// as soon as it holds MaxPacket bytes (the modem's size rule).
	MaxPacket int
	// Queue is how many complete packets the modem holds while it
	// transmits (Packet mode); a packet completed with the queue full is
	// dropped and counted in Stats.Overflow.
	Queue int
}

func (m ModemConfig) withDefaults() ModemConfig {
	if m.Baud == 0 {
		m.Baud = DefaultBaud
	}
	if m.AirRate == 0 {
		m.AirRate = DefaultAirRate
	}
	if m.MaxPacket == 0 {
		m.MaxPacket = DefaultMaxPacket
	}
	if m.Queue == 0 {
		m.Queue = DefaultQueue
	}
	if m.Gap == 0 && m.Baud > 0 {
		m.Gap = DefaultGapBytes * serialByte(m.Baud)
	}
	return m
}

func (m ModemConfig) validate() error {
	switch {
	case m.Mode != Packet && m.Mode != Streaming:
		return fmt.Errorf("unknown mode %d", m.Mode)
	case m.Baud <= 0:
		return fmt.Errorf("baud %d, want > 0", m.Baud)
	case m.AirRate <= 0:
		return fmt.Errorf("air rate %d, want > 0", m.AirRate)
	case m.Preamble < 0:
		return fmt.Errorf("negative preamble %s", m.Preamble)
	case m.Gap < serialByte(m.Baud):
		return fmt.Errorf("gap %s shorter than a byte time at %d baud", m.Gap, m.Baud)
	case m.MaxPacket < 0:
		return fmt.Errorf("max packet %d, want >= 0", m.MaxPacket)
	case m.Queue < 0:
		return fmt.Errorf("queue %d, want >= 0", m.Queue)
	}
	return nil
}

// Point is a modem's position in metres.
type Point struct{ X, Y, Z float64 }

// Config describes the water and its modems.
type Config struct {
	Modems []ModemConfig
	// Delay[i][j] is the propagation delay from modem i to modem j. If nil,
	// it is computed from Positions and SoundSpeed; if both are nil, every
	// pair is 0 apart.
	Delay [][]time.Duration
	// Positions of the modems, metres (used when Delay is nil).
	Positions []Point
	// SoundSpeed in m/s (default 1500).
	SoundSpeed float64
	// BER is the probability that a received bit is flipped.
	BER float64
	// DropRate is the probability that a received byte is lost (the
	// receiving modem passes on the others).
	DropRate float64
	// Seed seeds bit errors and byte drops.
	Seed uint64
}

// UniformDelay returns an n×n delay matrix with d between every pair.
func UniformDelay(n int, d time.Duration) [][]time.Duration {
	m := make([][]time.Duration, n)
	for i := range m {
		m[i] = make([]time.Duration, n)
		for j := range m[i] {
			if i != j {
				m[i][j] = d
			}
		}
	}
	return m
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("acoustic config")

func checkProb(name string, p float64) error {
	if !(p >= 0 && p <= 1) {
		return fmt.Errorf("%w: %s %g, want 0..1", ErrConfig, name, p)
	}
	return nil
}

// delays validates cfg and returns the delay matrix.
func (cfg Config) delays() ([][]time.Duration, error) {
	n := len(cfg.Modems)
	if n == 0 {
		return nil, fmt.Errorf("%w: no modems", ErrConfig)
	}
	if err := checkProb("bit error rate", cfg.BER); err != nil {
		return nil, err
	}
	if err := checkProb("drop rate", cfg.DropRate); err != nil {
		return nil, err
	}
	switch {
	case cfg.Delay != nil:
		if len(cfg.Delay) != n {
			return nil, fmt.Errorf("%w: delay matrix has %d rows for %d modems", ErrConfig, len(cfg.Delay), n)
		}
		for i, row := range cfg.Delay {
			if len(row) != n {
				return nil, fmt.Errorf("%w: delay row %d has %d entries for %d modems", ErrConfig, i, len(row), n)
			}
			for j, d := range row {
				if d < 0 {
					return nil, fmt.Errorf("%w: negative delay %d→%d", ErrConfig, i, j)
				}
			}
		}
		return cfg.Delay, nil
	case cfg.Positions != nil:
		if len(cfg.Positions) != n {
			return nil, fmt.Errorf("%w: %d positions for %d modems", ErrConfig, len(cfg.Positions), n)
		}
		c := cfg.SoundSpeed
		if c == 0 {
			c = SoundSpeed
		}
		if !(c > 0) || math.IsInf(c, 0) {
			return nil, fmt.Errorf("%w: sound speed %g", ErrConfig, c)
		}
		m := UniformDelay(n, 0)
		for i, p := range cfg.Positions {
			for j, q := range cfg.Positions {
				dist := math.Sqrt((p.X-q.X)*(p.X-q.X) + (p.Y-q.Y)*(p.Y-q.Y) + (p.Z-q.Z)*(p.Z-q.Z))
				s := dist / c
				if math.IsNaN(s) || s > 1e6 {
					return nil, fmt.Errorf("%w: modems %d and %d are %g m apart", ErrConfig, i, j, dist)
				}
				m[i][j] = time.Duration(s * float64(time.Second))
			}
		}
		return m, nil
	}
	return UniformDelay(n, 0), nil
}

// Stats are one modem's counters.
type Stats struct {
	BytesIn  uint64 // bytes taken from the serial side
	Overrun  uint64 // bytes lost: serial input backlog or serial output queue full
	Sent     uint64 // packets (Streaming: bursts) put on air in full
	Overflow uint64 // complete packets dropped, the modem's queue full

	Delivered      uint64 // packets (bursts) received and passed to the serial side
	LostHalfDuplex uint64 // packets (bursts) lost because this modem transmitted during them
	LostCollision  uint64 // packets (bursts) lost because another overlapped them here
	BytesOut       uint64 // bytes handed to the serial side, garbage included
	Corrupted      uint64 // delivered bytes with at least one flipped bit
	Dropped        uint64 // received bytes dropped (DropRate)
	Garbage        uint64 // random bytes injected on the serial side
}

// Delivery is bytes a modem hands to its serial side: the first byte starts
// going out at At, the rest follow back to back at the serial rate.
type Delivery struct {
	Modem int
	At    time.Duration
	Data  []byte
}

// A Channel is the sans-I/O core: the modems and the water between them. It
// reads no clock, starts no goroutine and does no I/O; times are durations
// since an origin the caller chooses, and must not go backwards across
// calls. Not safe for concurrent use.
type Channel struct {
	modems []*modem
	delay  [][]time.Duration
	ber    float64
	drop   float64
	rng    *rand.Rand
	flip   biterr.Flipper
	now    time.Duration
	events eventHeap
	seq    uint64
	out    []Delivery
}

type modem struct {
	cfg        ModemConfig
	serialByte time.Duration // 10 bits at Baud
	airByte    time.Duration // 8 bits at AirRate

	inFree  time.Duration // when the last byte read will have arrived
	outFree time.Duration // when the serial output line is free
	asm     []byte        // packet being assembled
	gen     uint64        // invalidates older gap events
	queue   [][]byte      // complete packets waiting to go on air
	tx      *burst        // transmission in progress
	airFree time.Duration // Streaming: when the last byte on air ends
	rx      []*reception  // receptions in progress here
	st      Stats
}

// burst is one transmission: a packet, or a streaming burst.
type burst struct {
	from  int
	start time.Duration
	data  []byte // Packet mode
}

type lossReason uint8

const (
	notLost lossReason = iota
	lostHalfDuplex
	lostCollision
)

type reception struct {
	b      *burst
	lost   lossReason
	missed int // Streaming: bytes lost
}

func serialByte(baud int) time.Duration {
	return time.Duration(10 * int64(time.Second) / int64(baud))
}

func airBytes(n, rate int) time.Duration {
	return time.Duration(int64(n) * 8 * int64(time.Second) / int64(rate))
}

// NewChannel returns a channel at time 0.
func NewChannel(cfg Config) (*Channel, error) {
	for i := range cfg.Modems {
		cfg.Modems[i] = cfg.Modems[i].withDefaults()
		if err := cfg.Modems[i].validate(); err != nil {
			return nil, fmt.Errorf("%w: modem %d: %w", ErrConfig, i, err)
		}
	}
	d, err := cfg.delays()
	if err != nil {
		return nil, err
	}
	c := &Channel{
		delay: d,
		ber:   cfg.BER,
		drop:  cfg.DropRate,
		rng:   rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
	}
	for _, mc := range cfg.Modems {
		c.modems = append(c.modems, &modem{
			cfg:        mc,
			serialByte: serialByte(mc.Baud),
			airByte:    airBytes(1, mc.AirRate),
		})
	}
	return c, nil
}

// N is the number of modems.
func (c *Channel) N() int { return len(c.modems) }

// Modem returns modem i's configuration with defaults filled in.
func (c *Channel) Modem(i int) ModemConfig { return c.modems[i].cfg }

// Delay is the propagation delay from modem i to modem j.
func (c *Channel) Delay(i, j int) time.Duration { return c.delay[i][j] }

// Stats returns modem i's counters.
func (c *Channel) Stats(i int) Stats { return c.modems[i].st }

// SetBER changes the bit error rate for bytes delivered from now on.
func (c *Channel) SetBER(p float64) error {
	if err := checkProb("bit error rate", p); err != nil {
		return err
	}
	c.ber = p
	return nil
}

// SetDropRate changes the byte drop rate for bytes delivered from now on.
func (c *Channel) SetDropRate(p float64) error {
	if err := checkProb("drop rate", p); err != nil {
		return err
	}
	c.drop = p
	return nil
}

// Next returns the time of the next pending event, if any: the caller calls
// Advance then.
func (c *Channel) Next() (time.Duration, bool) {
	if len(c.events) == 0 {
		return 0, false
	}
	return c.events[0].at, true
}

// Advance runs every event up to and including now and returns the
// deliveries they produced, in time order per modem. The caller owns the
// returned slice.
func (c *Channel) Advance(now time.Duration) []Delivery {
	for len(c.events) > 0 && c.events[0].at <= now {
		ev := heap.Pop(&c.events).(*event)
		if ev.at > c.now {
			c.now = ev.at
		}
		c.handle(ev)
	}
	if now > c.now {
		c.now = now
	}
	out := c.out
	c.out = nil
	return out
}

// Write feeds bytes that modem i's serial side received from the daemon;
// the caller read them at now. They arrive one after another at the serial
// rate, starting at now or when the line is free. Bytes beyond MaxInBacklog
// not yet arrived are dropped (Stats.Overrun). It runs events up to now
// first and returns their deliveries, like Advance.
func (c *Channel) Write(i int, now time.Duration, b []byte) []Delivery {
	out := c.Advance(now)
	m := c.modems[i]
	now = c.now
	for _, x := range b {
		if m.inFree > now && int64((m.inFree-now)/m.serialByte) >= MaxInBacklog {
			m.st.Overrun++
			continue
		}
		m.inFree = max(m.inFree, now) + m.serialByte
		c.push(&event{at: m.inFree, kind: evSerialIn, modem: i, b: x})
	}
	return out
}

// InFree is when the last byte written to modem i will have arrived: a
// shell that reads the serial side no faster than this paces the sender at
// the serial rate.
func (c *Channel) InFree(i int) time.Duration { return c.modems[i].inFree }

// Inject hands b (garbage) to modem i's serial side at now, as if the modem
// had answered it; counted in Stats.Garbage. Returns deliveries like Write.
func (c *Channel) Inject(i int, now time.Duration, b []byte) []Delivery {
	out := c.Advance(now)
	m := c.modems[i]
	m.st.Garbage += uint64(len(b))
	c.deliver(i, c.now, append([]byte(nil), b...))
	out = append(out, c.out...)
	c.out = nil
	return out
}

// Event kinds, in the order they run at one instant: arrivals and ends
// before starts, so that intervals are half-open (a packet that ends at t
// does not collide with one that starts at t), and a byte that arrives at
// exactly Gap after the previous one continues the packet.
type evKind uint8

const (
	evRxByte   evKind = iota // Streaming: a byte arrived at receiver modem
	evRxEnd                  // a burst ended at receiver modem
	evTxEnd                  // Packet: modem's transmission ended
	evSerialIn               // a byte arrived from modem's serial side
	evGap                    // modem's gap timer (gen must match)
	evRxStart                // a burst started at receiver modem
)

type event struct {
	at    time.Duration
	kind  evKind
	seq   uint64
	modem int
	b     byte
	gen   uint64
	tx    *burst
}

type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.at != b.at {
		return a.at < b.at
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	return a.seq < b.seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(*event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

func (c *Channel) push(e *event) {
	c.seq++
	e.seq = c.seq
	heap.Push(&c.events, e)
}

func (c *Channel) handle(ev *event) {
	m := c.modems[ev.modem]
	switch ev.kind {
	case evSerialIn:
		m.st.BytesIn++
		if m.cfg.Mode == Packet {
			c.packetByte(ev.modem, ev.b)
		} else {
			c.streamByte(ev.modem, ev.b)
		}
	case evGap:
		if ev.gen != m.gen {
			return
		}
		if m.cfg.Mode == Packet {
			if len(m.asm) > 0 {
				c.complete(ev.modem)
			}
		} else if m.tx != nil {
			c.endStream(ev.modem)
		}
	case evTxEnd:
		m.tx = nil
		m.st.Sent++
		if len(m.queue) > 0 {
			p := m.queue[0]
			m.queue[0] = nil
			m.queue = m.queue[1:]
			c.startPacket(ev.modem, p)
		}
	case evRxStart:
		r := &reception{b: ev.tx}
		if m.tx != nil {
			r.lost = lostHalfDuplex
		}
		for _, o := range m.rx {
			if o.lost == notLost {
				o.lost = lostCollision
			}
			if r.lost == notLost {
				r.lost = lostCollision
			}
		}
		m.rx = append(m.rx, r)
	case evRxByte:
		if r := m.reception(ev.tx); r != nil {
			if r.lost == notLost {
				c.receive(ev.modem, []byte{ev.b})
			} else {
				r.missed++
			}
		}
	case evRxEnd:
		r := m.removeReception(ev.tx)
		if r == nil {
			return
		}
		if ev.tx.data == nil && r.missed == 0 {
			// Streaming: hit only in the carrier's hold after the
			// last byte, so nothing was lost.
			r.lost = notLost
		}
		switch r.lost {
		case lostHalfDuplex:
			m.st.LostHalfDuplex++
		case lostCollision:
			m.st.LostCollision++
		default:
			m.st.Delivered++
			if ev.tx.data != nil {
				c.receive(ev.modem, append([]byte(nil), ev.tx.data...))
			}
		}
	}
}

func (m *modem) reception(b *burst) *reception {
	for _, r := range m.rx {
		if r.b == b {
			return r
		}
	}
	return nil
}

func (m *modem) removeReception(b *burst) *reception {
	for k, r := range m.rx {
		if r.b == b {
			m.rx = append(m.rx[:k], m.rx[k+1:]...)
			return r
		}
	}
	return nil
}

// packetByte adds a byte to the packet being assembled.
func (c *Channel) packetByte(i int, x byte) {
	m := c.modems[i]
	m.asm = append(m.asm, x)
	m.gen++
	if m.cfg.MaxPacket > 0 && len(m.asm) >= m.cfg.MaxPacket {
		c.complete(i)
		return
	}
	c.push(&event{at: c.now + m.cfg.Gap, kind: evGap, modem: i, gen: m.gen})
}

// complete ends the packet being assembled: on air now if the modem is
// idle, else queued.
func (c *Channel) complete(i int) {
	m := c.modems[i]
	p := m.asm
	m.asm = nil
	switch {
	case m.tx == nil:
		c.startPacket(i, p)
	case len(m.queue) < m.cfg.Queue:
		m.queue = append(m.queue, p)
	default:
		m.st.Overflow++
	}
}

// keyUp starts a transmission now: receptions in progress at the modem are
// lost (half duplex), and every other modem hears it start after the
// propagation delay.
func (c *Channel) keyUp(i int, data []byte) *burst {
	m := c.modems[i]
	b := &burst{from: i, start: c.now, data: data}
	m.tx = b
	for _, r := range m.rx {
		if r.lost == notLost {
			r.lost = lostHalfDuplex
		}
	}
	for j := range c.modems {
		if j != i {
			c.push(&event{at: c.now + c.delay[i][j], kind: evRxStart, modem: j, tx: b})
		}
	}
	return b
}

func (c *Channel) startPacket(i int, p []byte) {
	m := c.modems[i]
	b := c.keyUp(i, p)
	end := c.now + m.cfg.Preamble + airBytes(len(p), m.cfg.AirRate)
	c.push(&event{at: end, kind: evTxEnd, modem: i, tx: b})
	for j := range c.modems {
		if j != i {
			c.push(&event{at: end + c.delay[i][j], kind: evRxEnd, modem: j, tx: b})
		}
	}
}

// streamByte puts a byte on air (Streaming mode), keying up first if idle.
func (c *Channel) streamByte(i int, x byte) {
	m := c.modems[i]
	if m.tx == nil {
		c.keyUp(i, nil)
		m.airFree = c.now + m.cfg.Preamble
	}
	m.airFree = max(m.airFree, c.now) + m.airByte
	for j := range c.modems {
		if j != i {
			c.push(&event{at: m.airFree + c.delay[i][j], kind: evRxByte, modem: j, tx: m.tx, b: x})
		}
	}
	m.gen++
	c.push(&event{at: m.airFree + m.cfg.Gap, kind: evGap, modem: i, gen: m.gen})
}

// endStream ends a streaming burst now (Gap after its last byte).
func (c *Channel) endStream(i int) {
	m := c.modems[i]
	b := m.tx
	m.tx = nil
	m.st.Sent++
	for j := range c.modems {
		if j != i {
			c.push(&event{at: c.now + c.delay[i][j], kind: evRxEnd, modem: j, tx: b})
		}
	}
}

// receive applies bit errors and drops to bytes that arrived intact at
// modem j and hands them to its serial side.
func (c *Channel) receive(j int, data []byte) {
	m := c.modems[j]
	if c.drop > 0 {
		k := 0
		for _, x := range data {
			if c.rng.Float64() < c.drop {
				m.st.Dropped++
				continue
			}
			data[k] = x
			k++
		}
		data = data[:k]
	}
	_, changed := c.flip.Flip(data, c.ber, c.rng)
	m.st.Corrupted += uint64(changed)
	if len(data) > 0 {
		c.deliver(j, c.now, data)
	}
}

// deliver queues data on modem j's serial output line at now or when the
// line is free, merging with the previous delivery if back to back.
func (c *Channel) deliver(j int, now time.Duration, data []byte) {
	m := c.modems[j]
	at := max(now, m.outFree)
	m.st.BytesOut += uint64(len(data))
	if n := len(c.out); n > 0 && c.out[n-1].Modem == j && at == m.outFree {
		c.out[n-1].Data = append(c.out[n-1].Data, data...)
	} else {
		c.out = append(c.out, Delivery{Modem: j, At: at, Data: data})
	}
	m.outFree = at + time.Duration(len(data))*m.serialByte
}
