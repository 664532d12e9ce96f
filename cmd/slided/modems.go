package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/slided/slided/auth"
	"github.com/slided/slided/bridge"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/phy/kiss"
	"github.com/slided/slided/phy/serial"
	"github.com/slided/slided/phy/sim"
)

// modemKind is one -phy scheme: check validates its arguments before any
// setup, open connects (blocking until the modem is reachable or ctx is
// done). kiss marks the KISS TNC schemes, which take the KISS options of
// slided run (-station-id, -kiss-server).
type modemKind struct {
	name  string
	kiss  bool
	check func(rest string) error
	open  func(ctx context.Context, rest string, node framing.NodeID, opt modemOptions, log zerolog.Logger) (bridge.PHY, error)
}

// modemOptions are settings of slided run that some modems take on top of
// their -phy URL.
type modemOptions struct {
	// kiss, if set, adjusts a KISS TNC's configuration before it is dialled.
	kiss func(*kiss.Config)
}

// modemKinds is the registry of -phy schemes, in the order the help lists
// them. A new modem is one entry here.
var modemKinds = []modemKind{
	{name: "sim", check: func(string) error { return nil },
		open: func(ctx context.Context, rest string, node framing.NodeID, _ modemOptions, log zerolog.Logger) (bridge.PHY, error) {
			return sim.Dial(ctx, rest, sim.NodeID(node), log.With().Str("phy", "sim").Logger())
		}},
	{name: "sim-udp", check: func(rest string) error {
		_, err := sim.ParseUDPTarget(rest)
		return err
	}, open: func(ctx context.Context, rest string, node framing.NodeID, _ modemOptions, log zerolog.Logger) (bridge.PHY, error) {
		t, err := sim.ParseUDPTarget(rest)
		if err != nil {
			return nil, err
		}
		var key *auth.Key
		if t.KeyFile != "" {
			k, err := auth.LoadKey(t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("-phy sim-udp: %w", err)
			}
			key = &k
		}
		return sim.DialUDP(ctx, t.Addr, sim.NodeID(node), key, log.With().Str("phy", "sim-udp").Logger())
	}},
	{name: "serial", check: func(rest string) error {
		_, err := serial.ParseURL(rest)
		return err
	}, open: func(ctx context.Context, rest string, _ framing.NodeID, _ modemOptions, log zerolog.Logger) (bridge.PHY, error) {
		cfg, err := serial.ParseURL(rest)
		if err != nil {
			return nil, err
		}
		log = log.With().Str("phy", "serial").Str("port", cfg.Path).Logger()
		return retryOpen(ctx, log, func() (*serial.Port, error) { return serial.Open(ctx, cfg, log) })
	}},
	kissKind("kiss-tcp"),
	kissKind("kiss-serial"),
}

func kissKind(kind string) modemKind {
	return modemKind{name: kind, kiss: true, check: func(rest string) error {
		_, err := parseKISS(kind, rest)
		return err
	}, open: func(ctx context.Context, rest string, _ framing.NodeID, opt modemOptions, log zerolog.Logger) (bridge.PHY, error) {
		cfg, err := parseKISS(kind, rest)
		if err != nil {
			return nil, err
		}
		if opt.kiss != nil {
			opt.kiss(&cfg)
		}
		log = log.With().Str("phy", kind).Logger()
		return retryOpen(ctx, log, func() (*kiss.TNC, error) { return kiss.Dial(ctx, cfg, log) })
	}}
}

// splitPHY splits "-phy kind:rest", finds the kind and checks its
// arguments.
func splitPHY(spec string) (modemKind, string, error) {
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok || rest == "" {
		return modemKind{}, "", fmt.Errorf("-phy %q: want KIND:ARGS, e.g. sim:/run/slided/medium.sock", spec)
	}
	var names []string
	for _, k := range modemKinds {
		if k.name == kind {
			if err := k.check(rest); err != nil {
				return modemKind{}, "", fmt.Errorf("-phy %q: %w", spec, err)
			}
			return k, rest, nil
		}
		names = append(names, k.name)
	}
	return modemKind{}, "", fmt.Errorf("-phy %q: unknown modem kind %q (known: %s)", spec, kind, strings.Join(names, ", "))
}

// openPHY opens the modem; it blocks until the modem is reachable or ctx is done.
func openPHY(ctx context.Context, spec string, node framing.NodeID, log zerolog.Logger, opt modemOptions) (bridge.PHY, error) {
	k, rest, err := splitPHY(spec)
	if err != nil {
		return nil, err
	}
	return k.open(ctx, rest, node, opt, log)
}
