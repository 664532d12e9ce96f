package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/slided/slided/phy/sim"
)

// scenarioFlag is `slided sim -scenario FILE`: a topology for the medium,
// reloaded on SIGHUP.
type scenarioFlag struct {
	fs   *flag.FlagSet
	path *string
	sc   *sim.Scenario
}

// simScenarioFlag registers -scenario on fs.
func simScenarioFlag(fs *flag.FlagSet) *scenarioFlag {
	return &scenarioFlag{fs: fs, path: fs.String("scenario", "",
		"TOML file of nodes, positions and links (docs/simulation.md); SIGHUP reloads it")}
}

// apply loads the scenario, if one was given, and takes its bit rate and
// seed into cfg unless -rate or -seed was given on the command line. The
// error names the file, the line and the reason.
func (f *scenarioFlag) apply(cfg *sim.Config) error {
	if *f.path == "" {
		return nil
	}
	sc, err := sim.LoadScenario(*f.path)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if sc.BitRate > 0 && !set["rate"] {
		cfg.BitRate = sc.BitRate
	}
	if sc.HasSeed && !set["seed"] {
		cfg.Seed = sc.Seed
	}
	f.sc = sc
	return nil
}

// watch gives srv the scenario's topology and starts a goroutine that
// reloads the file on SIGHUP and hands the new topology to srv; a file that
// no longer parses is logged and the old topology kept. The goroutine exits
// when ctx is done; pass the context Serve runs under. Without -scenario it
// does nothing.
func (f *scenarioFlag) watch(ctx context.Context, srv *sim.Server, log zerolog.Logger) error {
	if f.sc == nil {
		return nil
	}
	if err := srv.SetTopology(ctx, f.sc.Topology); err != nil {
		return err
	}
	log.Info().Str("scenario", f.sc.Path).Int("nodes", len(f.sc.Topology.Nodes())).Msg("scenario loaded")
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			sc, err := sim.LoadScenario(f.sc.Path)
			if err != nil {
				log.Error().Err(err).Msg("scenario reload failed; keeping the old topology")
				continue
			}
			if err := srv.SetTopology(ctx, sc.Topology); err != nil {
				return
			}
			log.Info().Str("scenario", sc.Path).Int("nodes", len(sc.Topology.Nodes())).
				Msg("scenario reloaded: links apply to transmissions from now on")
		}
	}()
	return nil
}
