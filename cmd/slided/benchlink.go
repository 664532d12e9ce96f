package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/link"
	"github.com/slided/slided/phy"
	"github.com/slided/slided/phy/sim"
	"github.com/slided/slided/simbench"
)

// wantsLinkBench says whether bench's arguments ask for -protocol link,
// which takes flags of its own (cmdBenchLink).
func wantsLinkBench(args []string) bool {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == "protocol="+simbench.Link || a == "protocol" && i+1 < len(args) && args[i+1] == simbench.Link {
			return true
		}
		if a == "" || a == "-" {
			return false // the end of the flags
		}
	}
	return false
}

// cmdBenchLink runs slided bench -protocol link: link engines, the code
// slided run runs, configured by the same function from the same defaults
// (runFlags.engineConfig), on the simulated medium in virtual time. The
// daemon's engine flags (-policy, -arq, -reorder, -frame-max, -prop-delay,
// -cw-senders, -adaptive-mac, -mtu) and the MAC's (-slot, -ifs, -cwmin, -cwmax,
// -cw-per-sender, -queue, -persistence, -burst) change the settings; with -compare
// it runs the daemon's defaults too and prints both.
func cmdBenchLink(args []string, out io.Writer) error {
	var rf runFlags
	rf.register(newFlags("run")) // slided run's defaults
	fs := newFlags("bench")
	fs.String("protocol", simbench.Link, "link: slided's link engine with the daemon's defaults")
	nodes := fs.Int("nodes", 0, "number of nodes (0: the highest node a flow names)")
	flows := fs.String("flows", "1:2", "saturated UDP flows FROM:TO, comma-separated (e.g. 1:2,1:2 for two flows from node 1)")
	rate := fs.Int("rate", 115200, "bit rate, bit/s")
	payload := fs.Int("payload", 1000, "UDP payload of every datagram, bytes")
	dur := fs.Duration("duration", time.Minute, "measured span of virtual time")
	seed := fs.Uint64("seed", 1, "seed of every random choice")
	loss := fs.Float64("loss", 0, "chance that a burst is lost at a receiver")
	compare := fs.Bool("compare", false, "run the daemon's defaults too, and print both")
	adaptive := fs.Bool("adaptive", false, "the adaptive MAC (link.Config.AdaptiveMAC: Idle Sense, slot and IFS from the delay), now the daemon's default too")
	fs.StringVar(&rf.policy, "policy", rf.policy, "as slided run -policy")
	fs.BoolVar(&rf.arq, "arq", rf.arq, "as slided run -arq")
	fs.BoolVar(&rf.reorder, "reorder", rf.reorder, "as slided run -reorder")
	fs.IntVar(&rf.frameMax, "frame-max", rf.frameMax, "as slided run -frame-max")
	fs.DurationVar(&rf.propDelay, "prop-delay", rf.propDelay, "as slided run -prop-delay; also the medium's delay between every pair")
	fs.BoolVar(&rf.cwSenders, "cw-senders", rf.cwSenders, "as slided run -cw-senders")
	fs.BoolVar(&rf.adaptive, "adaptive-mac", rf.adaptive, "as slided run -adaptive-mac (false: the deferral rule of before)")
	fs.IntVar(&rf.mtu, "mtu", rf.mtu, "as slided run -mtu")
	slot := fs.Duration("slot", 0, "MAC slot time (default: link.MACFor's)")
	ifs := fs.Duration("ifs", -1, "MAC inter-frame space (default: link.MACFor's)")
	cwmin := fs.Int("cwmin", 0, "MAC minimum contention window (default: link.MACFor's)")
	cwmax := fs.Int("cwmax", 0, "MAC maximum contention window (default: link.MACFor's)")
	perSender := fs.Int("cw-per-sender", 0, "MAC window slots per other sender (default: link.MACFor's)")
	queue := fs.Int("queue", 0, "MAC data queue length (default: link.MACFor's)")
	persist := fs.Float64("persistence", 0, "MAC persistence p in (0,1] (default: link.MACFor's)")
	burst := fs.Int("burst", -1, "MAC data frames per won contention (default: link.MACFor's)")
	ordered := fs.Bool("ordered-turns", false, "MAC: after a turn no other carrier broke into, back off half the window instead of a draw (link.Config.OrderedTurns; docs/mac.md)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var def runFlags
	def.register(newFlags("run"))
	fl, err := parseFlows(*flows)
	if err != nil {
		return usageError("bench", "-flows: %v", err)
	}
	build := func(f runFlags, tuned bool) (simbench.EngineConfig, error) {
		pol, err := link.ParsePolicy(f.policy)
		if err != nil {
			return simbench.EngineConfig{}, err
		}
		// The engines build their MAC from the medium's Info at Up
		// (link.MACFor, as slided run does); the same call here gives the
		// base the MAC flags change.
		info := phy.Info{BitRate: *rate, MaxFrame: sim.MaxFrame, CarrierAtArrival: true}
		engine := func(id framing.NodeID) link.Config {
			c := f.engineConfig(runConfig{node: id, policy: pol})
			c.AdaptiveMAC = c.AdaptiveMAC || tuned && *adaptive
			c.OrderedTurns = tuned && *ordered
			return c
		}
		base, _ := link.MACFor(info, engine(1))
		mac := base
		if tuned {
			if *slot > 0 {
				mac.SlotTime = *slot
			}
			if *ifs >= 0 {
				mac.IFS = *ifs
			}
			if *cwmin > 0 {
				mac.CWMin = *cwmin
			}
			if *cwmax > 0 {
				mac.CWMax = *cwmax
			}
			if *perSender > 0 {
				mac.CWPerSender = *perSender
			}
			if *queue > 0 {
				mac.QueueLen = *queue
			}
			if *persist > 0 {
				mac.Persistence = *persist
			}
			if *burst >= 0 {
				mac.Burst = *burst
			}
		}
		ec := func(id framing.NodeID) link.Config {
			c := engine(id)
			if mac != base {
				c.MAC = mac
			}
			return c
		}
		cfg := simbench.EngineConfig{Nodes: *nodes, Flows: fl, BitRate: *rate, Payload: *payload, Duration: *dur,
			Seed: *seed, PropDelay: f.propDelay, LossRate: *loss, Engine: ec}
		if err := cfg.Validate(); err != nil {
			return cfg, err
		}
		if err := link.CheckFrameMax(ec(1)); err != nil {
			return cfg, err
		}
		if tuned {
			if err := mac.Validate(); err != nil {
				return cfg, err
			}
		}
		return cfg, nil
	}
	type labelled struct {
		Settings string `json:"settings"`
		simbench.EngineResult
	}
	runs := []struct {
		label string
		f     runFlags
		tuned bool
	}{{"given", rf, true}}
	if *compare {
		runs = append([]struct {
			label string
			f     runFlags
			tuned bool
		}{{"daemon defaults", def, false}}, runs...)
	}
	enc := json.NewEncoder(out)
	for _, r := range runs {
		cfg, err := build(r.f, r.tuned)
		if err != nil {
			return usageError("bench", "%v", err)
		}
		res, err := simbench.RunEngine(cfg)
		if err != nil {
			return err
		}
		if err := enc.Encode(labelled{r.label, res}); err != nil {
			return err
		}
	}
	return nil
}

// parseFlows parses "1:2,1:2".
func parseFlows(s string) ([]simbench.Flow, error) {
	var fl []simbench.Flow
	for _, p := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(p), ":")
		from, err1 := strconv.Atoi(a)
		to, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%q: want FROM:TO node ids", p)
		}
		fl = append(fl, simbench.Flow{From: from, To: to})
	}
	return fl, nil
}
