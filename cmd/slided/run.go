package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"os/user"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/bridge"
	"github.com/slided/slided/capture"
	"github.com/slided/slided/config"
	"github.com/slided/slided/control"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/internal/redial"
	"github.com/slided/slided/link"
	"github.com/slided/slided/metrics"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/kiss"
	"github.com/slided/slided/phy/serial"
	"github.com/slided/slided/status"
	"github.com/slided/slided/tap"
)

type runFlags struct {
	tap        string
	node       int
	phy        string
	addr       string
	control    string
	mtu        int
	txqueuelen int
	policy     string
	shaper     bool
	stallLimit time.Duration
	stallAuto  bool // -stall-limit not given: scaled to the link (tap.LazyShaperConfig.StallAuto)
	config     string
	metrics    string
	pcap       string
	pcapMax    byteSize
	fwQueue    byteSize // -forward-queue: memory budget of traffic no local socket sends
	pcapFiles  int
	user       string
	frameMax   int
	arq        bool
	reorder    bool
	propDelay  time.Duration
	key        string
	stateDir   string
	keyMaxAge  time.Duration
	neigh      bool
	cwSenders  bool
	adaptive   bool // -adaptive-mac
	kissServer string
	keyMode    string
	stationID  string
	idInterval time.Duration
	log        logFlags
}

func cmdRun(args []string) error {
	setProcs(os.Getenv("GOMAXPROCS"))
	defer releaseAfterStart(debug.FreeOSMemory).Stop()
	f, err := parseRun(args)
	if err != nil {
		return err
	}
	cfg, err := f.validate()
	if err != nil {
		return usageError("run", "%v", err)
	}
	log, err := f.log.logger(os.Stderr, "run")
	if err != nil {
		return usageError("run", "%v", err)
	}
	if !hasNetAdmin() {
		return usageError("run", "creating a TAP device needs CAP_NET_ADMIN: run as root (sudo slided run ...)")
	}
	if f.user != "" {
		if cfg.creds, err = resolveUser(f.user); err != nil {
			fmt.Fprintf(os.Stderr, "slided run: %v\n", err)
			return exitError{exitPrivileges}
		}
	}
	stopProfile, err := startCPUProfile(os.Getenv("SLIDED_CPUPROFILE"))
	if err != nil {
		return err
	}
	defer stopProfile()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = runDaemon(ctx, f, cfg, log)
	var pe *privilegeError
	if errors.As(err, &pe) {
		fmt.Fprintf(os.Stderr, "slided run: %v\n", err)
		return exitError{exitPrivileges}
	}
	return err
}

// parseRun parses run's command line and the -config file it names (the
// command line wins), and fills in a serial modem's defaults.
func parseRun(args []string) (runFlags, error) {
	var f runFlags
	fs := newFlags("run")
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return f, err
	}
	if f.config != "" {
		file, err := config.Load(f.config)
		if err != nil {
			return f, usageError("run", "%v", err)
		}
		if err := file.Apply(fs); err != nil {
			return f, usageError("run", "%v", err)
		}
	}
	modemDefaults(fs, &f)
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	f.stallAuto = !set["stall-limit"]
	return f, nil
}

// register defines run's flags on fs, bound to f with their defaults.
// slided bench -protocol link takes its defaults from here too, so that the
// simulated engines are configured as a daemon started without flags.
func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.tap, "tap", "", "name of the TAP interface to create (required)")
	fs.IntVar(&f.node, "node", 0, "this node's link id, 1..254 (required)")
	fs.StringVar(&f.phy, "phy", "", "the modem: sim:PATH (a 'slided sim' medium socket), sim-udp:HOST:PORT[?key=FILE] (a medium on another host), serial:/dev/ttyX?baud=N&air=BPS..., kiss-tcp:HOST:PORT?air=BPS..., kiss-serial:/dev/ttyX?baud=N... (see docs/modems.md) (required)")
	fs.StringVar(&f.addr, "addr", "", "addresses for the TAP, comma-separated CIDRs (e.g. 192.0.2.1/24,fd00::1/64)")
	fs.StringVar(&f.control, "control", "", "path of the control socket that 'slided status' reads")
	fs.IntVar(&f.mtu, "mtu", 1500, "MTU of the TAP (a serial modem recommends its own: docs/modems.md, \"Sizes\")")
	fs.IntVar(&f.txqueuelen, "txqueuelen", bridge.DefaultTxQueueLen, "txqueuelen of the TAP (its ring; keep it small)")
	fs.StringVar(&f.policy, "policy", "block", "when the link cannot keep up: block (backpressure), drop-tail, drop-head")
	fs.BoolVar(&f.shaper, "shaper", true, "manage a shaping qdisc on the TAP that carries backpressure (policy block)")
	fs.StringVar(&f.config, "config", "", "TOML file with these settings (flags given on the command line win)")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9469)")
	fs.StringVar(&f.pcap, "pcap", "", "write every frame on air to this pcap file (link type USER0; see docs/operations.md); with -key, received frames only once authenticated")
	f.pcapMax = defaultPcapMaxSize
	fs.Var(&f.pcapMax, "pcap-max-size", "largest size of one pcap file (k, M, G suffixes); then the next file is started (default 16M)")
	fs.IntVar(&f.pcapFiles, "pcap-files", defaultPcapFiles, "number of pcap files in the ring: PATH, PATH.1, ...; the oldest is overwritten (1: stop at -pcap-max-size)")
	fs.StringVar(&f.user, "user", "", "after setup, run as this user, keeping only CAP_NET_ADMIN")
	fs.IntVar(&f.frameMax, "frame-max", 0, "largest frame the modem carries, in bytes on the wire; larger packets are fragmented (0: the modem's own limit)")
	fs.BoolVar(&f.arq, "arq", true, "link ARQ for unicast: acknowledgements and selective retransmission (-arq=false turns it off)")
	fs.BoolVar(&f.reorder, "reorder", false, "with -arq, hand unicast packets from each node to the host in the order they were sent, holding those that overtake a retransmission (off: as soon as each is complete; docs/link-arq.md says why it is off by default)")
	fs.DurationVar(&f.propDelay, "prop-delay", 0, "one-way propagation delay to the farthest node (e.g. 700ms for 1 km of water, up to 10s): the MAC's slot and inter-frame space follow it, and the ARQ's ack timeout; ARQ round trips may lengthen them further (default: a serial modem's prop= or range=; docs/mac.md)")
	fs.BoolVar(&f.neigh, "neigh-answer", true, "answer ARP and IPv6 neighbour solicitations for addresses heard from other nodes locally, without airtime")
	fs.BoolVar(&f.adaptive, "adaptive-mac", true, "the adaptive contention window (Idle Sense) with slot and IFS from the propagation delay and the modem: fair between nodes, a small window for a lone sender, bursts of fragments when the frame limit splits packets; false: the deferral rule of before, faster for one of two senders and unfair; a KISS TNC keeps the deferral rule (docs/mac.md)")
	fs.BoolVar(&f.cwSenders, "cw-senders", false, "size the contention window from the number of other nodes heard sending: fair between nodes sending both ways, slower with short frames (docs/mac.md)")
	fs.StringVar(&f.key, "key", "", "file with the pre-shared key (64 hex digits, mode 0600): frames are authenticated, forged and replayed ones dropped; a second line holds a key also accepted during a changeover")
	fs.StringVar(&f.stateDir, "state-dir", defaultStateDir, "directory where, with -key, the counters that must never repeat are kept across restarts (must be writable)")
	fs.DurationVar(&f.keyMaxAge, "key-max-age", 0, "with -key, refuse frames sealed longer ago than this by the sender's clock (e.g. 10m; only when every node keeps real time; 0: off)")
	fs.StringVar(&f.keyMode, "key-mode", "seal", "with -key: seal (encrypt and authenticate) or sign (authenticate only, the payload readable on air: amateur bands forbid encryption); every node must agree (docs/link-arq.md)")
	fs.StringVar(&f.stationID, "station-id", "", "with a kiss modem: a callsign (CALL or CALL-SSID) sent in clear as an AX.25 UI frame to ID while slided transmits, as amateur-radio rules require (docs/modems.md)")
	fs.DurationVar(&f.idInterval, "station-id-interval", 10*time.Minute, "with -station-id: identify at least this often while transmitting, and once after the last transmission")
	fs.StringVar(&f.kissServer, "kiss-server", "", "with a kiss modem, share the TNC with other programs (APRS clients) through a KISS TCP server at HOST:PORT, or PORT on loopback (off by default; docs/modems.md)")
	fs.DurationVar(&f.stallLimit, "stall-limit", tap.DefaultStallLimit, "how long the daemon may stop reading its TAP (SIGSTOP, a starved CPU) with no packet lost; past it the TAP drops slowly so no sender stays blocked; not given: this, or longer on a link below about 16,000 bit/s (docs/backpressure.md)")
	f.fwQueue = tap.DefaultForwardQueue
	fs.Var(&f.fwQueue, "forward-queue", "memory for traffic that no local socket sends (forwarded from another interface) queued towards the link (k, M, G suffixes); past it the oldest such packet is dropped and counted (default 4M; docs/backpressure.md)")
	f.log.register(fs)
}

// engineConfig is the link engine's configuration of a daemon with these
// flags: the one function that builds it, for slided run and for slided
// bench -protocol link alike.
func (f *runFlags) engineConfig(c runConfig) link.Config {
	return link.Config{
		Node:              c.node,
		MTU:               f.mtu,
		Policy:            c.policy,
		FrameMax:          f.frameMax,
		NoARQ:             !f.arq,
		NoReorder:         !f.reorder,
		PropDelay:         f.propDelay,
		Key:               c.key,
		Key2:              c.key2,
		KeyMaxAge:         f.keyMaxAge,
		KeyMode:           c.mode,
		NoNeighAnswer:     !f.neigh,
		WindowFromSenders: f.cwSenders,
		AdaptiveMAC:       f.adaptive,
	}
}

type runConfig struct {
	node   framing.NodeID
	addrs  []netip.Prefix
	policy bridge.Policy
	key    *auth.Key
	key2   *auth.Key // accepted too, during a changeover
	mode   auth.Mode
	creds  *credentials // -user, resolved
}

// defaultStateDir is -state-dir's default: the unit's StateDirectory.
const defaultStateDir = "/var/lib/slided"

func (f *runFlags) validate() (runConfig, error) {
	var c runConfig
	switch {
	case f.tap == "":
		return c, errors.New("-tap NAME is required")
	case len(f.tap) > 15:
		return c, fmt.Errorf("-tap %q: interface names are at most 15 bytes", f.tap)
	case f.node < 1 || f.node > 254:
		return c, fmt.Errorf("-node %d: want a link id from 1 to 254", f.node)
	case f.phy == "":
		return c, errors.New("-phy is required, e.g. -phy sim:/run/slided/medium.sock")
	case f.txqueuelen < 1:
		return c, fmt.Errorf("-txqueuelen %d: want at least 1", f.txqueuelen)
	case f.stallLimit <= 0:
		return c, fmt.Errorf("-stall-limit %v: want a positive duration", f.stallLimit)
	case f.frameMax < 0:
		return c, fmt.Errorf("-frame-max %d: want a positive size in bytes (0: the modem's own limit)", f.frameMax)
	case f.pcap != "" && int64(f.pcapMax) < capture.MinRingSize:
		return c, fmt.Errorf("-pcap-max-size %d: want at least %d bytes, room for one full record", f.pcapMax, capture.MinRingSize)
	case f.fwQueue < 1:
		return c, fmt.Errorf("-forward-queue %d: want a positive size in bytes", f.fwQueue)
	case f.pcap != "" && f.pcapFiles < 1:
		return c, fmt.Errorf("-pcap-files %d: want at least 1", f.pcapFiles)
	case f.propDelay < 0:
		return c, fmt.Errorf("-prop-delay %v: want a positive duration", f.propDelay)
	}
	if f.key != "" {
		keys, err := auth.LoadKeys(f.key)
		if err != nil {
			return c, fmt.Errorf("-key: %w", err)
		}
		c.key = &keys[0]
		if len(keys) == 2 {
			c.key2 = &keys[1]
		}
		if f.stateDir == "" {
			return c, errors.New("-state-dir: a key needs a state directory, so that no counter is ever reused")
		}
		if c.mode, err = auth.ParseMode(f.keyMode); err != nil {
			return c, fmt.Errorf("-key-mode: %w", err)
		}
		if f.keyMaxAge < 0 {
			return c, fmt.Errorf("-key-max-age %v: want a positive duration (0: off)", f.keyMaxAge)
		}
	}
	if f.key == "" && f.keyMode != "seal" {
		return c, fmt.Errorf("-key-mode %s: only with -key", f.keyMode)
	}
	if err := link.CheckFrameMax(link.Config{FrameMax: f.frameMax, MTU: f.mtu, Key: c.key}); err != nil {
		return c, fmt.Errorf("-%w", err)
	}
	if kind, rest, _ := strings.Cut(f.phy, ":"); kind == "serial" {
		// The modem's largest packet must carry the link's frames too.
		if sc, err := serial.ParseURL(rest); err == nil && sc.MaxFrame > 0 && (f.frameMax == 0 || sc.MaxFrame < f.frameMax) {
			if err := link.CheckFrameMax(link.Config{FrameMax: sc.MaxFrame, MTU: f.mtu, Key: c.key}); err != nil {
				return c, fmt.Errorf("-phy serial: the modem's packet (frame=%d) with -mtu %d: %w", sc.MaxFrame, f.mtu, err)
			}
		}
	}
	c.node = framing.NodeID(f.node)
	if f.addr != "" {
		for _, s := range strings.Split(f.addr, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				return c, fmt.Errorf("-addr %q: want CIDR such as 192.0.2.1/24", s)
			}
			c.addrs = append(c.addrs, p)
		}
	}
	pol, err := bridge.ParsePolicy(f.policy)
	if err != nil {
		return c, fmt.Errorf("-policy: %w", err)
	}
	c.policy = pol
	kind, _, err := splitPHY(f.phy)
	if err != nil {
		return c, err
	}
	if f.stationID != "" {
		if !kind.kiss {
			return c, fmt.Errorf("-station-id: only with a kiss modem (-phy kiss-tcp:... or kiss-serial:...), not %s", kind.name)
		}
		_, rest, _ := splitPHY(f.phy)
		kc, _ := parseKISS(kind.name, rest)
		kc.StationID, kc.StationIDInterval = f.stationID, f.idInterval
		if err := kc.Check(); err != nil {
			return c, fmt.Errorf("-station-id: %w", err)
		}
	}
	if f.kissServer != "" {
		if !kind.kiss {
			return c, fmt.Errorf("-kiss-server: only with a kiss modem (-phy kiss-tcp:... or kiss-serial:...), not %s", kind.name)
		}
		if _, err := kiss.ListenAddr(f.kissServer); err != nil {
			return c, fmt.Errorf("-kiss-server: %w", err)
		}
	}
	return c, nil
}

func parseKISS(kind, rest string) (kiss.Config, error) {
	if kind == "kiss-tcp" {
		return kiss.ParseTCP(rest)
	}
	return kiss.ParseSerial(rest)
}

// serveKISS starts the KISS server that shares the TNC p with other programs.
func serveKISS(f runFlags, p bridge.PHY, log zerolog.Logger) (*kiss.Server, error) {
	tnc, ok := p.(*kiss.TNC)
	if !ok {
		return nil, fmt.Errorf("-kiss-server: the modem is not a kiss TNC")
	}
	kind, rest, _ := splitPHY(f.phy)
	cfg, err := parseKISS(kind.name, rest)
	if err != nil {
		return nil, err
	}
	srv, err := kiss.Serve(kiss.ServerConfig{Addr: f.kissServer, MaxFrame: cfg.MaxFrame}, tnc, log.With().Str("part", "kiss-server").Logger())
	if err != nil {
		return nil, fmt.Errorf("-kiss-server: %w", err)
	}
	return srv, nil
}

// openPolicy is the backoff of a modem's first open (internal/redial, the
// policy the modems use to reconnect): 250 ms doubling to 10 s, each wait
// drawn between its step and twice that, so daemons started together
// against a missing modem do not retry in step.
var openPolicy = redial.Policy{Min: 250 * time.Millisecond, Max: 10 * time.Second}

// retryOpen calls open until it succeeds or ctx is done, waiting
// openPolicy's backoff between attempts and logging "modem cannot connect,
// retrying" when the error changes or the wait grows.
func retryOpen[T any](ctx context.Context, log zerolog.Logger, open func() (T, error)) (T, error) {
	l := redial.New(openPolicy, "modem", log)
	return redial.Redial(ctx, l, 0, func(context.Context) (T, error) { return open() }, nil)
}

func runDaemon(ctx context.Context, f runFlags, c runConfig, log zerolog.Logger) error {
	log = log.With().Str("tap", f.tap).Int("node", f.node).Logger()
	// The key's state first: a second daemon with our key and node id on
	// this host stops here, before it touches the TAP.
	var keyState [2]bridge.AuthState
	for i, k := range []*auth.Key{c.key, c.key2} {
		if k == nil {
			continue
		}
		sf, err := openKeyState(f, k, c.node)
		if err != nil {
			return err
		}
		defer sf.Close()
		// Written on a goroutine of its own: the bridge's loop never
		// waits for the disk (auth.AsyncState); closed before sf.
		as := auth.NewAsyncState(sf)
		defer as.Close()
		keyState[i] = as
	}

	dev, err := tap.Create(tap.Config{
		Name:         f.tap,
		MTU:          f.mtu,
		TxQueueLen:   f.txqueuelen,
		MAC:          framing.MACFor(c.node),
		Addrs:        c.addrs,
		Backpressure: true,
	})
	if err != nil {
		return err
	}
	defer dev.Close()
	log.Info().Str("mac", framing.MACFor(c.node).String()).Int("mtu", f.mtu).
		Int("txqueuelen", f.txqueuelen).Bool("iff_backpressure", dev.Backpressure()).Msg("tap created")
	if err := dev.GSOLimit(); err != nil {
		log.Warn().Err(err).Msg("TCP's GSO packets pass the backpressure qdisc as one each; the TAP ring may drop under TCP")
	}

	var sh *tap.LazyShaper
	if c.policy == bridge.Block && f.shaper && tap.ShaperSupported {
		ring := uint32(f.txqueuelen)
		if ring == 0 {
			ring = bridge.DefaultTxQueueLen
		}
		// The kick socket needs CAP_NET_RAW: open it before -user drops it.
		kick, err := tap.NewKicker(dev.Index(), framing.MACFor(c.node))
		if err != nil {
			log.Error().Err(err).Msg("no kick socket: after a stall the qdisc waits for its own timer or the next packet to resume")
			kick = nil
		}
		// Loading eBPF needs CAP_BPF or CAP_SYS_ADMIN: before -user too.
		fwd, err := tap.LoadForwardFilter()
		if err != nil {
			log.Warn().Err(err).Msg("no forward queue: traffic no local socket sends (forwarded) shares the flow queues, bounded only by their length, not by -forward-queue")
			fwd = nil
		} else {
			defer fwd.Close()
		}
		socks, err := tap.LoadSocketFilter()
		if err != nil {
			log.Warn().Err(err).Msg("no socket classifier: sockets are hashed into the flow queues, and those that share one take turns unfairly")
			socks = nil
		} else {
			defer socks.Close()
		}
		sh = tap.NewLazyShaper(dev, tap.LazyShaperConfig{RingLen: ring, MTU: f.mtu, StallLimit: f.stallLimit,
			StallAuto: f.stallAuto, Kick: kick, Forward: fwd, ForwardLimit: tap.ForwardLimit(uint64(f.fwQueue), f.mtu),
			Sockets: socks}, log)
		defer sh.Close()
		if kick != nil {
			defer kick.Close()
		}
	}
	st := &statusSource{dev: dev, shaper: sh, policy: c.policy, wantShaper: f.shaper}

	var capt *pcapCapture
	if f.pcap != "" {
		capt, err = openPcap(f.pcap, int64(f.pcapMax), f.pcapFiles, log)
		if err != nil {
			return fmt.Errorf("-pcap: %w", err)
		}
		defer capt.Close()
		st.capture = capt
		log.Info().Str("file", f.pcap).Int64("max_size", int64(f.pcapMax)).Int("files", f.pcapFiles).Msg("capturing frames on air")
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if f.control != "" {
		srv, err := control.Listen(f.control, map[string]control.Handler{"status": st.status}, log)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ctx); err != nil {
				log.Error().Err(err).Msg("control socket stopped")
			}
		}()
	}

	if f.metrics != "" {
		ln, err := net.Listen("tcp", f.metrics)
		if err != nil {
			return fmt.Errorf("-metrics: %w", err)
		}
		if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
			log.Warn().Str("addr", f.metrics).Msg("metrics listener is reachable from other hosts")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			get := func() (*status.Snapshot, error) {
				v, err := st.status()
				if err != nil {
					return nil, err
				}
				s := v.(status.Snapshot)
				return &s, nil
			}
			srv := &metrics.Server{Get: get, OnAcceptError: func(err error) {
				log.Warn().Err(err).Msg("metrics listener: accept failed; retrying")
			}}
			if err := srv.Serve(ctx, ln); err != nil {
				log.Error().Err(err).Msg("metrics listener stopped")
			}
		}()
		log.Info().Str("addr", ln.Addr().String()).Msg("serving metrics")
	}

	log.Info().Str("phy", f.phy).Msg("opening modem")
	p, err := openPHY(ctx, f.phy, c.node, log, modemOptions{kiss: func(kc *kiss.Config) {
		if f.stationID != "" {
			kc.StationID, kc.StationIDInterval = f.stationID, f.idInterval
		}
	}})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("open modem: %w", err)
	}
	defer p.Close()
	if f.kissServer != "" {
		srv, err := serveKISS(f, p, log)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	// Neighbour settings now (the 1 MiB queue, and the timers of a slow
	// link by the modem's rate), and again once the link is up if its
	// ARQ's Ack timeout (how late an answer lost once comes, known from
	// then on) changes them.
	frameBytes := f.mtu + 14 + framing.Overhead
	tap.TuneNeighbours(dev.Index(), phy.Airtime(frameBytes, p.Info().BitRate), 0, log)
	tunedAtStart, _ := tap.NeighTimersFor(phy.Airtime(frameBytes, p.Info().BitRate), 0)

	if c.creds != nil {
		if err := c.creds.apply(); err != nil {
			return err
		}
		log.Info().Str("user", f.user).Msg("dropped privileges; keeping CAP_NET_ADMIN for the shaping qdisc")
	}

	var bs bridge.Shaper
	if sh != nil {
		bs = sh
	}
	var bc bridge.Capture
	if capt != nil {
		bc = capt
	}
	bcfg := bridge.Config{Config: f.engineConfig(c), RingLen: f.txqueuelen, PreciseTimer: true}
	bcfg.KeyState = keyState
	bcfg.Log = log
	bcfg.Capture = bc
	bcfg.OnLinkUp = func(u bridge.LinkUp) {
		air := phy.Airtime(frameBytes, u.Info.BitRate)
		if np, _ := tap.NeighTimersFor(air, u.AckTimeout); np == tunedAtStart {
			return // a slow link's, or a quick one without ARQ: set at start
		}
		// One netlink request, off the data path; the goroutine ends
		// with it, and runDaemon waits for it (wg) before it returns.
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ctx.Err() == nil {
				tap.TuneNeighbours(dev.Index(), air, u.AckTimeout, log)
			}
		}()
	}
	br, err := bridge.New(bcfg, tap.CreditTAP{Device: dev, Shaper: sh}, p, bs)
	if err != nil {
		return err
	}
	st.setBridge(br, p)
	log.Info().Str("policy", c.policy.String()).Msg("running")
	err = br.Run(ctx)
	dev.Close() // ends the bridge's pending TAP read
	if err != nil {
		return err
	}
	log.Info().Msg("stopped")
	return nil
}

// modemDefaults takes -mtu and -prop-delay from a serial modem's settings
// (its profile= or air rate, packet size and preamble: see
// serial.Config.RecommendedMTU) when neither the command line nor -config
// gave them. An MTU below 1280 is raised to 1280 if -addr has an IPv6
// prefix, which Linux refuses on a smaller MTU.
func modemDefaults(fs *flag.FlagSet, f *runFlags) {
	kind, rest, _ := strings.Cut(f.phy, ":")
	if kind != "serial" {
		return
	}
	cfg, err := serial.ParseURL(rest)
	if err != nil {
		return // validate reports it
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if !set["mtu"] {
		f.mtu = cfg.RecommendedMTU()
		if f.mtu < 1280 && strings.Contains(f.addr, ":") {
			f.mtu = 1280
		}
	}
	if !set["prop-delay"] {
		f.propDelay = cfg.PropDelay
	}
}

// openKeyState opens the state of key k in -state-dir, checks that it can be
// written (a daemon that could not reserve its counters would refuse to
// send), and gives it to -user, who writes it after the privileges drop.
func openKeyState(f runFlags, k *auth.Key, node framing.NodeID) (*auth.StateFile, error) {
	sf, err := auth.OpenState(f.stateDir, *k, node)
	if err != nil {
		return nil, fmt.Errorf("-state-dir %s: %w", f.stateDir, err)
	}
	st := sf.State()
	if err := sf.Write(&st); err != nil {
		sf.Close()
		return nil, fmt.Errorf("-state-dir %s: %w (a key needs a writable state directory so that no counter is ever reused)", f.stateDir, err)
	}
	if f.user != "" {
		u, err := user.Lookup(f.user)
		if err != nil {
			sf.Close()
			return nil, fmt.Errorf("-user %s: %w", f.user, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := sf.Chown(uid, gid); err != nil {
			sf.Close()
			return nil, fmt.Errorf("-state-dir %s: give it to -user %s: %w", f.stateDir, f.user, err)
		}
	}
	return sf, nil
}

// statusSource answers the control socket's "status".
type statusSource struct {
	dev        *tap.Device
	shaper     *tap.LazyShaper
	policy     bridge.Policy
	wantShaper bool
	capture    *pcapCapture // nil without -pcap

	mu  sync.Mutex
	br  *bridge.Bridge
	tnc *kiss.TNC // the modem, when it is a KISS TNC: its own counters
}

func (s *statusSource) setBridge(b *bridge.Bridge, p bridge.PHY) {
	s.mu.Lock()
	s.br = b
	s.tnc, _ = p.(*kiss.TNC)
	s.mu.Unlock()
}

func (s *statusSource) status() (any, error) {
	st := status.Snapshot{Interface: s.dev.Name()}
	switch {
	case s.dev.Backpressure():
		st.Backpressure = "kernel (IFF_BACKPRESSURE)"
	case s.policy != bridge.Block:
		st.Backpressure = "off (policy " + s.policy.String() + ")"
	case !tap.ShaperSupported:
		st.Backpressure = tap.NoShaperBackpressure
	case !s.wantShaper:
		st.Backpressure = "off (-shaper=false): the TAP ring drops when full"
	default:
		st.Backpressure = "shaping qdisc"
		if s.shaper != nil {
			st.Backpressure = s.shaper.Mode()
		}
	}
	if ls, err := s.dev.LinkStats(); err == nil {
		st.Link = &ls
	} else {
		st.Warnings = append(st.Warnings, "link stats: "+err.Error())
	}
	if s.shaper != nil {
		q, err := s.shaper.Stats()
		if err != nil {
			st.Backpressure = "degraded: " + err.Error()
			st.Warnings = append(st.Warnings, err.Error())
		}
		st.Qdisc = q
		if q != nil && q.Forward == nil {
			st.Warnings = append(st.Warnings, "no forward queue (eBPF classifier missing): traffic no local socket sends shares the flow queues, its memory bounded only by their length")
		}
	}
	if s.capture != nil {
		cs := s.capture.stats()
		st.Capture = &cs
		if cs.Err != nil {
			st.Warnings = append(st.Warnings, "pcap capture stopped: "+cs.Err.Error())
		}
	}
	s.mu.Lock()
	br, tnc := s.br, s.tnc
	s.mu.Unlock()
	if tnc != nil {
		ts := tnc.Stats()
		st.TNC = &ts
	}
	if br != nil {
		bs := br.Stats()
		st.Bridge = &bs
	} else {
		st.Warnings = append(st.Warnings, "modem not reached yet")
	}
	return st, nil
}

// hasNetAdmin reports whether the process has CAP_NET_ADMIN in its effective set.
func hasNetAdmin() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return os.Geteuid() == 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			var caps uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &caps); err != nil {
				return os.Geteuid() == 0
			}
			return caps&(1<<capNetAdmin) != 0
		}
	}
	return os.Geteuid() == 0
}
