package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/phy/sim"
)

func cmdSim(args []string) error {
	fs := newFlags("sim")
	listen := fs.String("listen", "", "path of the Unix socket to serve the medium on")
	listenUDP := fs.String("listen-udp", "", "HOST:PORT of a UDP socket to serve the medium on, for daemons on other hosts (-phy sim-udp:HOST:PORT)")
	rate := fs.Int("rate", 9600, "the channel's bit rate, bit/s")
	delay := fs.Duration("delay", 0, "propagation delay between every pair of nodes (e.g. 670ms for 1 km under water)")
	loss := fs.Float64("loss", 0, "probability that a reception is lost, 0..1")
	ber := fs.Float64("ber", 0, "bit-error rate applied to each reception, 0..1")
	seed := fs.Uint64("seed", 1, "seed of the medium's random choices")
	udpLinger := fs.Duration("udp-session-timeout", sim.DefaultUDPSessionTimeout, "with -listen-udp: how long a UDP member not heard from keeps its session; after 6 s of silence its node leaves the medium, and it comes back with its next datagram if within this (a daemon stopped or starved) (docs/simulator.md)")
	keyFile := fs.String("key", "", "with -listen-udp: a file holding the pre-shared key (64 hex digits, mode 600, as the daemon's -key) that UDP members must have (-phy 'sim-udp:HOST:PORT?key=FILE')")
	scen := simScenarioFlag(fs)
	var lf logFlags
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *listen == "" && *listenUDP == "" {
		return usageError("sim", "-listen PATH or -listen-udp HOST:PORT (or both) is required")
	}
	if *keyFile != "" && *listenUDP == "" {
		return usageError("sim", "-key applies to -listen-udp only (the Unix socket is guarded by its file mode)")
	}
	if *udpLinger < 6*time.Second {
		return usageError("sim", "-udp-session-timeout %v: want at least 6s (the keep-alive timeout)", *udpLinger)
	}
	cfg := sim.Config{BitRate: *rate, PropDelay: *delay, LossRate: *loss, BitErrorRate: *ber, Seed: *seed}
	if err := scen.apply(&cfg); err != nil {
		return usageError("sim", "%v", err)
	}
	if err := cfg.Validate(); err != nil {
		return usageError("sim", "%v", err)
	}
	log, err := lf.logger(os.Stderr, "sim")
	if err != nil {
		return usageError("sim", "%v", err)
	}
	srv, err := sim.NewServer(cfg, log)
	if err != nil {
		return err
	}
	srv.UsePreciseTimer()
	srv.SetUDPSessionTimeout(*udpLinger)
	if *keyFile != "" {
		key, err := auth.LoadKey(*keyFile)
		if err != nil {
			return err
		}
		srv.SetUDPKey(key)
	}
	var ln net.Listener
	if *listen != "" {
		ln, err = listenUnix(*listen)
		if err != nil {
			return err
		}
		defer os.Remove(*listen)
	}
	var pc *net.UDPConn
	if *listenUDP != "" {
		if pc, err = sim.ListenUDP(*listenUDP); err != nil {
			if ln != nil {
				ln.Close()
			}
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := scen.watch(ctx, srv, log); err != nil {
		return err
	}
	log.Info().Str("listen", *listen).Str("listen_udp", *listenUDP).Int("rate", cfg.BitRate).Dur("delay", cfg.PropDelay).
		Float64("loss", cfg.LossRate).Float64("ber", cfg.BitErrorRate).Msg("medium serving")
	err = srv.ServeAll(ctx, ln, pc)
	s := srv.Stats()
	log.Info().Interface("stats", s).Interface("udp", srv.UDPStats()).Msg("medium stopped")
	return err
}

// listenUnix listens on a Unix socket at path, replacing a stale socket file
// that no server answers on.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another medium is serving it", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}
