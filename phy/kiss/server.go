package kiss

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/kiss/kissproto"
)

// Shared is what the KISS server needs of a TNC (a *TNC).
type Shared interface {
	// SendOther queues a client's frame for the TNC without blocking; it
	// returns an error wrapping phy.ErrBusy when the clients' frames
	// already hold the channel long enough (a flood), phy.ErrTooLarge,
	// phy.ErrEmpty, phy.ErrDown or phy.ErrClosed.
	SendOther(port byte, data []byte) error
	// SetTap sets (nil: removes) the function that gets every frame
	// received that is not slided's; it is called on the TNC's reader and
	// must not block.
	SetTap(func(port byte, data []byte))
}

// ServerConfig describes the KISS TCP server.
type ServerConfig struct {
	// Addr is host:port to listen on; a bare port listens on loopback.
	Addr string
	// MaxFrame is the largest KISS frame a client may send, FENDs and
	// escapes included (the TNC's Config.MaxFrame; DefaultMaxFrame if 0).
	MaxFrame int
	// MaxClients bounds the connected clients (8 if 0); more are refused.
	MaxClients int
	// ClientQueue bounds the frames waiting to be written to one client
	// (64 if 0); a client that does not read that fast is dropped.
	ClientQueue int
}

// ServerStats counts what the KISS server did.
type ServerStats struct {
	// Accepted, Refused (too many clients), Dropped (for the reasons below
	// or a lost connection), Connected now.
	Accepted, Refused, Dropped, Connected uint64
	// FramesIn: clients' data frames handed to the TNC; FramesOut: frames
	// written to clients (one per client per frame heard).
	FramesIn, FramesOut uint64
	// Reasons to drop a client: Malformed (a bad escape, too much garbage),
	// Oversized (a frame over MaxFrame), Flood (the TNC refused
	// floodRefusals of its frames in a row: the clients' frames hold the
	// channel too long), Slow (its queue of
	// frames to write was full).
	Malformed, Oversized, Flood, Slow uint64
	// Commands: clients' KISS commands other than data (TXDELAY...), not
	// passed on: the TNC's parameters are slided's. LostDown: clients'
	// frames dropped while the TNC was down.
	Commands, LostDown uint64
	// FramesRefused: clients' frames the TNC refused (the clients' frames
	// held the channel long enough); floodRefusals in a row drop the client.
	FramesRefused uint64
}

// Server is a KISS TCP server through which other programs (an APRS client,
// another KISS application) share slided's TNC: their data frames go to the
// TNC through Shared.SendOther, serialised with slided's bursts, and every
// frame the TNC hears that is not slided's goes to every client, untouched
// (same port, same bytes). slided's frames never reach them.
//
// Goroutines: Serve starts an accept loop; each client has a reader (decodes
// the client's KISS, hands frames on) and a writer (writes the frames heard,
// from a bounded queue, with a write deadline). The accept loop exits when
// Close closes the listener; a client's goroutines exit when it is dropped or
// at Close, which waits for all of them.
type Server struct {
	cfg ServerConfig
	tnc Shared
	ln  net.Listener
	log zerolog.Logger

	mu      sync.Mutex
	clients map[*client]struct{}
	closed  bool
	stats   ServerStats
	wg      sync.WaitGroup
}

type client struct {
	c    net.Conn
	name string
	out  chan []byte // KISS frames to write; bounded
	once sync.Once
	stop chan struct{}
}

const (
	clientWriteTimeout = 10 * time.Second
	// maxClientGarbage bounds the bytes outside frames a client may send
	// before it is taken as not speaking KISS.
	maxClientGarbage = 4096
	// floodRefusals is how many of a client's frames in a row the TNC may
	// refuse (phy.ErrBusy: the clients' frames already hold the channel
	// long enough) before the client is taken as flooding and dropped. The
	// frames refused are lost (counted in FramesRefused) and the client learns
	// of it only by their absence, as on air.
	floodRefusals = 8
)

// ListenAddr completes a -kiss-server address: a bare port means loopback.
func ListenAddr(s string) (string, error) {
	if _, err := netip.ParseAddrPort("127.0.0.1:" + s); err == nil && s != "" {
		return "127.0.0.1:" + s, nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return "", fmt.Errorf("kiss server address %q: want HOST:PORT or PORT (loopback): %w", s, err)
	}
	return s, nil
}

// Serve listens on cfg.Addr and serves clients until Close. It sets tnc's
// tap.
func Serve(cfg ServerConfig, tnc Shared, log zerolog.Logger) (*Server, error) {
	addr, err := ListenAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = 8
	}
	if cfg.ClientQueue == 0 {
		cfg.ClientQueue = 64
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("kiss server: %w", err)
	}
	s := &Server{cfg: cfg, tnc: tnc, ln: ln, log: log, clients: map[*client]struct{}{}}
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
		log.Warn().Str("addr", ln.Addr().String()).Msg("kiss server: listening beyond loopback: any host that reaches it can transmit on the radio")
	}
	log.Info().Str("addr", ln.Addr().String()).Msg("kiss server: sharing the tnc with other programs")
	tnc.SetTap(s.heard)
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Stats returns the counters so far.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Connected = uint64(len(s.clients))
	return st
}

func (s *Server) count(f func(*ServerStats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// Close stops listening, drops every client, removes the tap and waits for
// the server's goroutines.
func (s *Server) Close() error {
	s.tnc.SetTap(nil)
	err := s.ln.Close()
	s.mu.Lock()
	s.closed = true
	cs := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		s.drop(c, nil, "")
	}
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn().Err(err).Msg("kiss server: accept failed; no more clients")
			}
			return
		}
		c := &client{c: nc, name: nc.RemoteAddr().String(), out: make(chan []byte, s.cfg.ClientQueue), stop: make(chan struct{})}
		s.mu.Lock()
		if s.closed || len(s.clients) >= s.cfg.MaxClients {
			s.stats.Refused++
			s.mu.Unlock()
			nc.Close()
			s.log.Warn().Str("client", c.name).Int("max", s.cfg.MaxClients).Msg("kiss server: client refused: too many clients")
			continue
		}
		s.clients[c] = struct{}{}
		s.stats.Accepted++
		s.mu.Unlock()
		s.log.Info().Str("client", c.name).Msg("kiss server: client connected")
		s.wg.Add(2)
		go s.read(c)
		go s.write(c)
	}
}

// drop closes c once, counting the reason (nil: a plain disconnect or Close).
func (s *Server) drop(c *client, counter func(*ServerStats), why string) {
	c.once.Do(func() {
		s.mu.Lock() // counted before the client sees its connection closed
		delete(s.clients, c)
		s.stats.Dropped++
		if counter != nil {
			counter(&s.stats)
		}
		s.mu.Unlock()
		close(c.stop)
		c.c.Close()
		if why != "" {
			s.log.Warn().Str("client", c.name).Msg("kiss server: client dropped: " + why)
		} else {
			s.log.Info().Str("client", c.name).Msg("kiss server: client gone")
		}
	})
}

// heard is the TNC's tap: a frame that is not slided's, to every client.
// It never blocks: a client whose queue is full is dropped.
func (s *Server) heard(port byte, data []byte) {
	f := kissproto.AppendFrame(make([]byte, 0, 2*len(data)+4), port, kissproto.CmdData, data)
	s.mu.Lock()
	var slow []*client
	for c := range s.clients {
		select {
		case c.out <- f: // clients share f: nobody writes into it
		default:
			slow = append(slow, c)
		}
	}
	s.mu.Unlock()
	for _, c := range slow {
		s.drop(c, func(st *ServerStats) { st.Slow++ }, fmt.Sprintf("%d frames wait to be written to it (not reading?)", s.cfg.ClientQueue))
	}
}

func (s *Server) write(c *client) {
	defer s.wg.Done()
	for {
		select {
		case f := <-c.out:
			// The deadline is cleared after the write rather than moved
			// later by the next: a pending deadline moved later keeps its
			// old time in the runtime's heap, which wakes the process for
			// nothing, and one left pending fires by itself.
			c.c.SetWriteDeadline(time.Now().Add(clientWriteTimeout))
			if _, err := c.c.Write(f); err != nil {
				s.drop(c, nil, "")
				return
			}
			c.c.SetWriteDeadline(time.Time{})
			s.count(func(st *ServerStats) { st.FramesOut++ })
		case <-c.stop:
			return
		}
	}
}

func (s *Server) read(c *client) {
	defer s.wg.Done()
	dec := kissproto.NewDecoder(s.cfg.MaxFrame)
	var (
		counter func(*ServerStats)
		why     string
		refused int // in a row
	)
	emit := func(port, cmd byte, data []byte) {
		if why != "" {
			return
		}
		if cmd != kissproto.CmdData {
			s.count(func(st *ServerStats) { st.Commands++ })
			return
		}
		err := s.tnc.SendOther(port, data)
		switch {
		case err == nil:
			refused = 0
			s.count(func(st *ServerStats) { st.FramesIn++ })
		case errors.Is(err, phy.ErrBusy):
			refused++
			s.count(func(st *ServerStats) { st.FramesRefused++ })
			if refused >= floodRefusals {
				counter, why = func(st *ServerStats) { st.Flood++ }, fmt.Sprintf("flooding: %d frames in a row refused: %v", refused, err)
			}
		case errors.Is(err, phy.ErrTooLarge):
			counter, why = func(st *ServerStats) { st.Oversized++ }, fmt.Sprintf("oversized frame: %v", err)
		case errors.Is(err, phy.ErrEmpty):
			s.count(func(st *ServerStats) { st.Commands++ })
		default: // down or closed: the frame is lost, the client stays
			s.count(func(st *ServerStats) { st.LostDown++ })
		}
	}
	buf := make([]byte, readBuf)
	for why == "" {
		n, err := c.c.Read(buf)
		if n > 0 {
			dec.Feed(buf[:n], emit)
			st := dec.Stats()
			switch {
			case why != "":
			case st.TooLong > 0:
				counter, why = func(st *ServerStats) { st.Oversized++ }, fmt.Sprintf("a frame longer than %d bytes", s.cfg.MaxFrame)
			case st.BadEscape > 0:
				counter, why = func(st *ServerStats) { st.Malformed++ }, "malformed KISS (a bad escape)"
			case st.Garbage > maxClientGarbage:
				counter, why = func(st *ServerStats) { st.Malformed++ }, fmt.Sprintf("more than %d bytes outside KISS frames", maxClientGarbage)
			}
		}
		if err != nil && why == "" {
			s.drop(c, nil, "")
			return
		}
	}
	s.drop(c, counter, why)
}
