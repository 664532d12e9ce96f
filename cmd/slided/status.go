package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/slided/slided/control"
	"github.com/slided/slided/link"
	"github.com/slided/slided/status"
)

func cmdStatus(args []string, out io.Writer) error {
	fs := newFlags("status")
	path := fs.String("control", "", "the daemon's control socket (its -control flag) (required)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usageError("status", "-control PATH is required")
	}
	raw, err := control.Query(*path, "status", 3*time.Second)
	if err != nil {
		return fmt.Errorf("%w (is 'slided run -control %s' running?)", err, *path)
	}
	if *asJSON {
		_, err := fmt.Fprintf(out, "%s", raw)
		return err
	}
	var st status.Snapshot
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	printStatus(out, &st)
	return nil
}

func printStatus(out io.Writer, st *status.Snapshot) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k string, format string, a ...any) { fmt.Fprintf(w, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("interface", "%s", st.Interface)
	row("backpressure", "%s", st.Backpressure)
	if b := st.Bridge; b != nil {
		up := "down"
		if b.Up {
			up = "up"
		}
		row("node", "%d, modem %s, %d bit/s, policy %s", b.Node, up, b.BitRate, b.Policy)
		row("to air", "%d frames read, %d sent, %d bytes on air (%d Ethernet bytes)", b.TAPReads, b.TxFrames, b.TxBytes, b.TxEthBytes)
		row("from air", "%d frames to the TAP, %d bytes received, %d for other nodes", b.RxFrames, b.RxWireBytes, b.NotForUs)
		row("queues", "mac %d/%d, ring ~%d, reading %v", b.QueueDepth, b.QueueLen, b.Ring, b.ReadPending)
		if b.PacingRate > 0 {
			row("pacing", "%d bytes/s", b.PacingRate)
		}
		row("channel busy", "%s", b.ChannelBusy.Round(time.Millisecond))
		row("mac", "%d deferrals, %d backoff slots, %d urgent (Acks), %d other senders heard", b.MAC.Deferrals, b.MAC.Backoffs,
			b.MAC.Urgent, b.Senders)
		a := b.ARQ
		limit := "no frame limit"
		if b.FrameMax > 0 {
			limit = fmt.Sprintf("frames of at most %d bytes", b.FrameMax)
		}
		row("link", "%s; %d packets in %d fragments, %d retransmitted, %d timeouts, %d given up, %d acked; waiting %d; stalled %d times (this process did not run)",
			limit, a.Packets, a.Fragments, a.Retransmissions, a.Timeouts, a.GiveUps, a.Acked, b.LinkQueue, a.Stalls)
		row("reassembly", "%d delivered, %d duplicates suppressed, %d timed out, %d bytes held",
			a.Delivered, a.Duplicates, a.ReasmTimeouts, a.ReasmBytes)
		row("in order", "%d waited for an earlier packet; past a gap: %d by timeout, %d sender moved on, %d for room; %d late; %d packets (%d bytes) held",
			a.ReorderWaited, a.ReorderTimeouts, a.ReorderSkipped, a.ReorderOverflows, a.ReorderLate, a.ReorderHeld, a.ReorderHeldBytes)
		row("neighbours", "%d addresses heard, %d requests answered without airtime", b.NeighKnown, b.NeighAnswered)
		d := b.Drops
		row("drops", "%d in all: queue-full %d, drop-head %d, no-route %d, too-big %d, bad-crc %d, garbage %d, phy %d/%d, tap-write %d",
			d.Total(), d.QueueFull, d.QueueHead, d.NoRoute, d.TooBig, d.BadCRC, d.Garbage, d.PHYError, d.PHYDown, d.TAPWrite)
		if n := d.Unsealed + d.AuthFailed + d.Replayed + d.KeyMode + d.StateFailed + d.Sealed + d.SealFailed; n > 0 {
			row("auth drops", "unsealed %d, forged %d, replayed %d, other key mode %d, state not saved %d, sealed without our key %d, seal failed %d",
				d.Unsealed, d.AuthFailed, d.Replayed, d.KeyMode, d.StateFailed, d.Sealed, d.SealFailed)
		}
		for i, fp := range b.KeyFingerprints {
			row([...]string{"key", "second key"}[i], "%s, %d frames opened", fp, b.KeyOpened[i])
		}
		if b.OwnIDHeard > 0 {
			row("warning", "%d frames with our node id and key that we did not seal: another station uses node %d", b.OwnIDHeard, b.Node)
		}
	}
	if k := st.TNC; k != nil {
		row("tnc", "%d frames sent in %d key-ups of several, %d received; %d deferred behind a busy channel (%d joined the next), %d ended by the answer, %d of Acks done once written; %d connects, %d lost",
			k.Sent, k.Bursts, k.Received, k.Deferred, k.Joined, k.Answered, k.Early, k.Connects, k.Drops)
		if k.AckSent > 0 || k.AckUnsupported > 0 {
			row("tnc ackmode", "%d sent, %d answered, %d unanswered, %d stray, unsupported %v", k.AckSent, k.Acked, k.AckTimeouts, k.AckStray, k.AckUnsupported > 0)
		}
		if k.OthersSent+k.OthersLost+k.OthersHeard+k.IDSent > 0 {
			row("tnc others", "%d frames of other programs sent, %d lost, %d heard; %d identifications", k.OthersSent, k.OthersLost, k.OthersHeard, k.IDSent)
		}
	}
	if q := st.Qdisc; q != nil {
		row("qdisc", "%d packets passed, %d dropped, %d waiting (%d bytes), %d overlimits; %d grants made again by the watchdog (packets that did not reach the daemon)",
			q.Root.Packets, q.Root.Drops, q.Root.Qlen, q.Root.Backlog, q.Root.Overlimits, q.Regrants)
		if f := q.Forward; f != nil {
			row("forward queue", "%d packets passed, %d dropped (oldest first), %d waiting of at most %d: traffic no local socket sends",
				f.Packets, f.Drops, f.Qlen, f.Limit)
		}
	}
	if l := st.Link; l != nil {
		row("tap", "tx %d packets, tx_dropped %d, rx %d packets", l.TxPackets, l.TxDropped, l.RxPackets)
	}
	for _, m := range st.Warnings {
		row("warning", "%s", m)
	}
	w.Flush()
	if st.Bridge != nil && len(st.Bridge.Peers) > 0 {
		printPeers(out, st.Bridge.Peers)
	}
}

// printPeers prints the link ARQ's view of each other node: the round trip
// (smoothed, its deviation, samples), the ack timeout in use, what was sent
// and lost, when the node was last heard, and the highest wire-format
// version heard from it ("-": none yet).
func printPeers(out io.Writer, ps []link.Peer) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "peer\tround trip\tdeviation\tsamples\tack timeout\tpackets\tacked\tgiven up\tresent\ttimeouts\tlast heard\tversion")
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	for _, p := range ps {
		rtt, dev := "-", "-"
		if p.Samples > 0 {
			rtt, dev = ms(p.SRTT), ms(p.RTTVar)
		}
		resent := fmt.Sprint(p.Retransmissions)
		if all := p.Fragments + p.Retransmissions; all > 0 {
			resent = fmt.Sprintf("%d (%.1f%%)", p.Retransmissions, 100*float64(p.Retransmissions)/float64(all))
		}
		heard := "never"
		if p.HeardAgo >= 0 {
			heard = ms(p.HeardAgo) + " ago"
		}
		version := "-"
		if p.Version > 0 {
			version = fmt.Sprint(p.Version)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\t%d\t%d\t%d\t%s\t%d\t%s\t%s\n", p.Node, rtt, dev, p.Samples, ms(p.RTO),
			p.Packets, p.Acked, p.GiveUps, resent, p.Timeouts, heard, version)
	}
	w.Flush()
}
