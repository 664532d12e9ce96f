// Package metrics exposes a daemon's status document (status.Snapshot) in
// the Prometheus text exposition format, version 0.0.4, written by hand:
// prometheus/client_golang would triple the size of the binary for a dozen
// counters.
//
// Every sample carries the label interface="<TAP name>". Names follow the
// Prometheus conventions: counters end in _total, units are base units
// (bytes, seconds, bits per second). The list with the meaning of each is in
// docs/operations.md; HELP lines repeat it.
//
// Serve answers scrapes with a minimal HTTP/1.x responder instead of
// net/http: serving with net/http added 3.4 MiB to a 3.1 MiB stripped
// linux/arm binary, more than doubling it (measured; docs/operations.md).
// Package metrics/nethttp has a net/http Handler for programs that link
// net/http anyway.
package metrics

import (
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/slided/slided/bridge"
	"github.com/slided/slided/status"
)

// ContentType is the media type of the text format Write produces.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Write writes st as Prometheus text. The output is deterministic (same
// status, same bytes); it issues a single Write to w. Parts of st that are
// nil (no bridge before the modem is reached, no qdisc without a shaper)
// produce no samples, except slided_up, which is then 0.
func Write(w io.Writer, st *status.Snapshot) error {
	if st == nil {
		return errors.New("metrics: no status")
	}
	e := encoder{iface: st.Interface, b: make([]byte, 0, 12<<10)}
	e.encode(st)
	_, err := w.Write(e.b)
	return err
}

// encoder appends families to b. iface is the value of the interface label.
type encoder struct {
	b     []byte
	iface string
}

const (
	counter = "counter"
	gauge   = "gauge"
)

// family writes the HELP and TYPE lines of one metric.
func (e *encoder) family(name, typ, help string) {
	e.b = append(e.b, "# HELP "...)
	e.b = append(e.b, name...)
	e.b = append(e.b, ' ')
	e.b = appendEscaped(e.b, help, false)
	e.b = append(e.b, "\n# TYPE "...)
	e.b = append(e.b, name...)
	e.b = append(e.b, ' ')
	e.b = append(e.b, typ...)
	e.b = append(e.b, '\n')
}

// labels writes name{interface="...",k="v"...}; kv holds pairs.
func (e *encoder) labels(name string, kv ...string) {
	e.b = append(e.b, name...)
	e.b = append(e.b, `{interface="`...)
	e.b = appendEscaped(e.b, e.iface, true)
	e.b = append(e.b, '"')
	for i := 0; i+1 < len(kv); i += 2 {
		e.b = append(e.b, ',')
		e.b = append(e.b, kv[i]...)
		e.b = append(e.b, `="`...)
		e.b = appendEscaped(e.b, kv[i+1], true)
		e.b = append(e.b, '"')
	}
	e.b = append(e.b, "} "...)
}

func (e *encoder) uint(name string, v uint64, kv ...string) {
	e.labels(name, kv...)
	e.b = strconv.AppendUint(e.b, v, 10)
	e.b = append(e.b, '\n')
}

func (e *encoder) float(name string, v float64, kv ...string) {
	e.labels(name, kv...)
	switch {
	case math.IsInf(v, 1):
		e.b = append(e.b, "+Inf"...)
	case math.IsInf(v, -1):
		e.b = append(e.b, "-Inf"...)
	case math.IsNaN(v):
		e.b = append(e.b, "NaN"...)
	default:
		e.b = strconv.AppendFloat(e.b, v, 'g', -1, 64)
	}
	e.b = append(e.b, '\n')
}

// one writes a family with a single sample.
func (e *encoder) one(name, typ, help string, v uint64) {
	e.family(name, typ, help)
	e.uint(name, v)
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// appendEscaped escapes \ and newline (HELP text), and " too in label values.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// backpressureMode is the first word of Status.Backpressure ("kernel",
// "shaping", "off", "degraded"): a label value with a bounded set of values,
// where the full text may hold an error message.
func backpressureMode(s string) string {
	w, _, _ := strings.Cut(strings.TrimSpace(s), " ")
	w = strings.TrimRight(w, ":")
	if w == "" {
		return "unknown"
	}
	return strings.ToLower(w)
}

func (e *encoder) encode(st *status.Snapshot) {
	br := st.Bridge
	up := br != nil && br.Up
	e.family("slided_info", gauge, "Constant 1; the labels describe the interface: link node id, queue policy, backpressure mechanism.")
	node, policy := "", ""
	if br != nil {
		node, policy = strconv.Itoa(br.Node), br.Policy
	}
	e.uint("slided_info", 1, "node", node, "policy", policy, "backpressure", backpressureMode(st.Backpressure))
	e.one("slided_up", gauge, "1 when the modem is up and the bridge is running, else 0.", b2u(up))
	e.one("slided_status_warnings", gauge, "Number of warnings in the status document (see slided status).", uint64(len(st.Warnings)))

	if br != nil {
		e.one("slided_air_bit_rate_bits_per_second", gauge, "The modem's air bit rate.", uint64(max(br.BitRate, 0)))

		e.one("slided_tap_reads_total", counter, "Ethernet frames the daemon read from the TAP.", br.TAPReads)
		e.one("slided_tx_frames_total", counter, "Frames put on air in full.", br.TxFrames)
		e.one("slided_tx_bytes_total", counter, "Bytes put on air, framing included.", br.TxBytes)
		e.one("slided_tx_ethernet_bytes_total", counter, "Ethernet bytes carried by the frames put on air.", br.TxEthBytes)
		e.one("slided_rx_bursts_total", counter, "Receive events from the modem.", br.RxBursts)
		e.one("slided_rx_wire_bytes_total", counter, "Bytes received from the modem, framing included.", br.RxWireBytes)
		e.one("slided_rx_frames_total", counter, "Ethernet frames written to the TAP.", br.RxFrames)
		e.one("slided_rx_ethernet_bytes_total", counter, "Ethernet bytes written to the TAP.", br.RxEthBytes)
		e.one("slided_rx_not_for_us_total", counter, "Good frames heard on air that were addressed to another node.", br.NotForUs)

		d := br.Drops
		e.family("slided_drops_total", counter, "Packets and frames lost inside the daemon, by reason.")
		for _, r := range []struct {
			reason string
			n      uint64
		}{
			{"queue_full", d.QueueFull}, {"queue_head", d.QueueHead}, {"no_route", d.NoRoute},
			{"too_big", d.TooBig}, {"bad_frame", d.BadFrame}, {"phy_error", d.PHYError},
			{"phy_down", d.PHYDown}, {"phy_busy", d.PHYBusy}, {"phy_too_large", d.PHYTooLarge},
			{"phy_empty", d.PHYEmpty}, {"tap_write", d.TAPWrite}, {"echo", d.Echo},
			{"bad_crc", d.BadCRC}, {"garbage", d.Garbage}, {"unsealed", d.Unsealed},
			{"auth_failed", d.AuthFailed}, {"replayed", d.Replayed}, {"state_failed", d.StateFailed}, {"sealed", d.Sealed},
			{"seal_failed", d.SealFailed}, {"ack_queue", d.AckQueue}, {"decompress", d.Decompress},
		} {
			e.uint("slided_drops_total", r.n, "reason", r.reason)
		}

		if len(br.KeyFingerprints) > 0 {
			e.family("slided_key_opened_total", counter, "Sealed frames opened with each key: first (the sealing key) and second (accepted during a changeover).")
			for i, fp := range br.KeyFingerprints {
				e.uint("slided_key_opened_total", br.KeyOpened[i], "key", [...]string{"first", "second"}[i], "fingerprint", fp)
			}
			e.one("slided_own_id_heard_total", counter, "Authentic frames with this node's id that it did not seal: another station uses its id and key.", br.OwnIDHeard)
		}

		e.one("slided_queue_depth_frames", gauge, "Frames in the MAC queue, one on air included.", uint64(max(br.QueueDepth, 0)))
		e.one("slided_queue_capacity_frames", gauge, "Capacity of the MAC queue.", uint64(max(br.QueueLen, 0)))
		e.one("slided_tap_read_pending", gauge, "1 when the daemon is ready to read the TAP (the MAC has room).", b2u(br.ReadPending))
		if br.Ring >= 0 {
			e.one("slided_tap_ring_packets", gauge, "Estimated packets waiting in the TAP ring.", uint64(br.Ring))
		}
		e.one("slided_pacing_rate_bytes_per_second", gauge, "Rate of the shaping qdisc (0: not shaping).", br.PacingRate)
		e.family("slided_channel_busy_seconds_total", counter, "Time the channel was busy: carrier sensed or own transmission.")
		e.float("slided_channel_busy_seconds_total", seconds(br.ChannelBusy))
		e.one("slided_phy_downs_total", counter, "Times the modem went down.", br.PHYDowns)
		e.one("slided_shaper_errors_total", counter, "Failed updates of the shaping qdisc.", br.ShaperErrors)

		m := br.MAC
		e.one("slided_mac_enqueued_total", counter, "Frames accepted by the MAC queue.", m.Enqueued)
		e.one("slided_mac_rejected_total", counter, "Frames refused because the MAC queue was full.", m.Rejected)
		e.one("slided_mac_transmitted_total", counter, "Frames the MAC sent to the modem.", m.Transmitted)
		e.one("slided_mac_dropped_total", counter, "Frames removed from the MAC queue by the drop-head policy.", m.Dropped)
		e.one("slided_mac_deferrals_total", counter, "Times the channel was found busy while a frame waited.", m.Deferrals)
		e.one("slided_mac_backoff_slots_total", counter, "Backoff slots counted down, persistence slots included.", m.Backoffs)
		e.one("slided_mac_persistence_slots_total", counter, "Slots waited because the p-persistence draw said not now.", m.Persisted)
		e.one("slided_mac_cw_max_hits_total", counter, "Contention window doublings capped at its maximum.", m.CWMaxHits)
		e.one("slided_mac_urgent_total", counter, "Frames sent without IFS or backoff (link Acks).", m.Urgent)
		e.one("slided_mac_reserved_total", counter, "Busy periods inside a reservation for an expected Ack (not deferrals).", m.Reserved)
		e.family("slided_mac_carrier_busy_seconds_total", counter, "Time the carrier was sensed busy (ended periods, own transmissions excluded).")
		e.float("slided_mac_carrier_busy_seconds_total", seconds(m.BusyTime))

		a := br.ARQ
		e.one("slided_link_queue_frames", gauge, "Fragments and Acks waiting for room in the MAC queue.", uint64(max(br.LinkQueue, 0)))
		e.one("slided_link_window_waits_total", counter, "Packets that waited for their destination's ARQ window.", br.WindowWaits)
		e.one("slided_link_compressed_total", counter, "Packets sent with their IP and UDP headers compressed (wire version 2).", br.Compressed)
		e.one("slided_link_compress_saved_bytes_total", counter, "Header bytes the compression saved.", br.CompressSaved)
		e.one("slided_link_hellos_sent_total", counter, "Hellos sent, announcing wire version 2 to peers not known to speak it.", br.HellosSent)
		e.one("slided_link_acks_superseded_total", counter, "Acks that replaced an older one for the same packet still waiting to be sent.", br.AcksSuperseded)
		e.one("slided_link_ack_rides_total", counter, "Small data frames sent in the same transmission as one of our Acks, right behind it, instead of in a contention round of their own.", br.AckRides)
		e.one("slided_link_tcp_acks_thinned_total", counter, "Pure TCP ACKs from the host that a newer one of the same connection replaced before they were sent.", br.TCPAcksThinned)
		e.one("slided_link_settled_dropped_total", counter, "Data frames taken out of the queues unsent because an Ack settled their packet while they waited.", br.SettledDropped)
		e.one("slided_link_aged_dropped_total", counter, "Data frames taken out of the queues unsent because their packet reached its maximum age (MaxAge) while they waited.", br.AgedDropped)
		e.one("slided_arq_packets_total", counter, "Packets given to the link layer.", a.Packets)
		e.one("slided_arq_fragments_total", counter, "Fragments transmitted the first time.", a.Fragments)
		e.one("slided_arq_retransmissions_total", counter, "Fragments transmitted again.", a.Retransmissions)
		e.one("slided_arq_timeouts_total", counter, "Ack timeouts.", a.Timeouts)
		e.one("slided_arq_give_ups_total", counter, "Unicast packets abandoned after the retry limit.", a.GiveUps)
		e.one("slided_arq_acked_total", counter, "Unicast packets fully acknowledged.", a.Acked)
		e.one("slided_arq_acks_sent_total", counter, "Acks sent.", a.AcksSent)
		e.one("slided_arq_riders_total", counter, "Packets (and retransmission rounds) sent without a poll of their own, acknowledged through a later packet's poll (grouped polls).", a.Riders)
		e.one("slided_arq_ack_records_total", counter, "Records sent in Acks beyond the first of each: packets acknowledged without an Ack of their own.", a.AckRecords)
		e.one("slided_arq_self_stalls_total", counter, "Times the daemon found its own process had not run (SIGSTOP, a starved CPU) and told the link ARQ, so that no Ack timer that ran out meanwhile counted as a time-out.", a.Stalls)
		e.one("slided_arq_delivered_total", counter, "Packets reassembled and delivered.", a.Delivered)
		e.one("slided_arq_duplicates_total", counter, "Fragments of packets already delivered (suppressed).", a.Duplicates)
		e.one("slided_arq_reassembly_timeouts_total", counter, "Partial packets freed by the reassembly time-out.", a.ReasmTimeouts)
		e.one("slided_arq_reassembly_bytes", gauge, "Fragment bytes held for reassembly.", uint64(max(a.ReasmBytes, 0)))
		e.one("slided_arq_reorder_waited_total", counter, "Unicast packets that waited in the reorder buffer for an earlier one from the same sender.", a.ReorderWaited)
		e.family("slided_arq_reorder_released_total", counter, "Held packets handed up past a gap that never filled, by why the wait ended.")
		for _, r := range []struct {
			reason string
			n      uint64
		}{{"timeout", a.ReorderTimeouts}, {"skipped", a.ReorderSkipped}, {"overflow", a.ReorderOverflows}} {
			e.uint("slided_arq_reorder_released_total", r.n, "reason", r.reason)
		}
		e.one("slided_arq_reorder_late_total", counter, "Unicast packets that came after their gap had been passed, handed up out of order.", a.ReorderLate)
		e.one("slided_arq_reorder_held_packets", gauge, "Complete packets the reorder buffer holds.", uint64(max(a.ReorderHeld, 0)))
		e.one("slided_arq_reorder_held_bytes", gauge, "Bytes of the packets the reorder buffer holds.", uint64(max(a.ReorderHeldBytes, 0)))
		e.peers(br.Peers)
		e.one("slided_neigh_answered_total", counter, "ARP requests and IPv6 solicitations answered without airtime.", br.NeighAnswered)
		e.one("slided_neigh_known", gauge, "Addresses of other nodes heard on air.", uint64(max(br.NeighKnown, 0)))
		e.one("slided_mac_senders", gauge, "Other nodes heard sending recently (with -cw-senders they set the contention window).", uint64(max(br.Senders, 0)))

		dec := br.Decoder
		e.one("slided_decoder_frames_total", counter, "Good frames decoded from the modem's byte stream.", dec.Frames)
		e.family("slided_decoder_rejects_total", counter, "Candidate frames the decoder rejected, by reason.")
		for _, r := range []struct {
			reason string
			n      uint64
		}{
			{"bad_crc", dec.BadCRC}, {"bad_cobs", dec.BadCOBS}, {"too_long", dec.TooLong},
			{"short", dec.Short}, {"bad_version", dec.BadVersion}, {"bad_addr", dec.BadAddr},
		} {
			e.uint("slided_decoder_rejects_total", r.n, "reason", r.reason)
		}
		e.one("slided_decoder_garbage_bytes_total", counter, "Stream bytes discarded by the decoder.", dec.GarbageBytes)
	}

	if k := st.TNC; k != nil {
		// A KISS TNC's own counters (phy/kiss Stats).
		e.family("slided_tnc_frames_total", counter, "KISS data frames on the TNC's port, by direction (tx: slided's frames written to the TNC).")
		e.uint("slided_tnc_frames_total", k.Sent, "direction", "tx")
		e.uint("slided_tnc_frames_total", k.Received, "direction", "rx")
		e.one("slided_tnc_bursts_total", counter, "Bursts of several slided frames handed to the TNC for one key-up.", k.Bursts)
		e.one("slided_tnc_deferred_total", counter, "Bursts whose end estimate a frame heard meanwhile pushed back (the TNC waited for the channel).", k.Deferred)
		e.one("slided_tnc_answered_total", counter, "Bursts reported done when the far end's answer was heard before their estimate ended.", k.Answered)
		e.one("slided_tnc_joined_total", counter, "Deferred short bursts (Acks) reported done at once so that the next joins them in the TNC's queue.", k.Joined)
		e.one("slided_tnc_early_total", counter, "Bursts of Acks only reported done once written, so that an answer written next joins their key-up in the TNC's queue.", k.Early)
		e.one("slided_tnc_ignored_total", counter, "Frames from the TNC for other ports or commands, or empty.", k.Ignored)
		e.one("slided_tnc_connects_total", counter, "Successful connections to the TNC, reconnects included.", k.Connects)
		e.one("slided_tnc_connection_drops_total", counter, "Connections to the TNC lost.", k.Drops)
		e.one("slided_tnc_write_timeouts_total", counter, "Connections dropped because a write to the TNC did not finish in time.", k.WriteTimeouts)
		e.family("slided_tnc_ackmode_total", counter, "KISS ACKMODE: bursts sent with an id, answered by the TNC, unanswered within the watchdog, stray answers.")
		e.uint("slided_tnc_ackmode_total", k.AckSent, "event", "sent")
		e.uint("slided_tnc_ackmode_total", k.Acked, "event", "answered")
		e.uint("slided_tnc_ackmode_total", k.AckTimeouts, "event", "unanswered")
		e.uint("slided_tnc_ackmode_total", k.AckStray, "event", "stray")
		e.one("slided_tnc_ackmode_unsupported", gauge, "1 once the TNC was found not to answer ACKMODE.", k.AckUnsupported)
		e.family("slided_tnc_other_frames_total", counter, "Frames of other programs on the shared TNC: sent, lost unsent at a disconnect, heard.")
		e.uint("slided_tnc_other_frames_total", k.OthersSent, "event", "sent")
		e.uint("slided_tnc_other_frames_total", k.OthersLost, "event", "lost")
		e.uint("slided_tnc_other_frames_total", k.OthersHeard, "event", "heard")
		e.one("slided_tnc_identifications_total", counter, "Station identifications sent.", k.IDSent)
		e.one("slided_tnc_self_stalls_total", counter, "Times the ACKMODE watchdog fired late because this process did not run (SIGSTOP, a starved CPU) and gave the TNC a grace period.", k.SelfStalls)
		d := k.Decoder
		e.family("slided_tnc_kiss_rejects_total", counter, "KISS frames from the TNC the decoder dropped, by reason.")
		e.uint("slided_tnc_kiss_rejects_total", d.TooLong, "reason", "too_long")
		e.uint("slided_tnc_kiss_rejects_total", d.BadEscape, "reason", "bad_escape")
		e.one("slided_tnc_kiss_garbage_bytes_total", counter, "Bytes from the TNC outside any KISS frame.", d.Garbage)
	}

	if l := st.Link; l != nil {
		// The kernel's view of the TAP: tx is what the host stack sent into
		// the TAP (towards the air), rx what the daemon injected.
		e.one("slided_tap_tx_packets_total", counter, "Packets the host sent into the TAP (kernel tx).", l.TxPackets)
		e.one("slided_tap_tx_bytes_total", counter, "Bytes the host sent into the TAP (kernel tx).", l.TxBytes)
		e.one("slided_tap_tx_dropped_total", counter, "Packets the TAP ring dropped because it was full (kernel tx_dropped).", l.TxDropped)
		e.one("slided_tap_tx_errors_total", counter, "Kernel tx_errors of the TAP.", l.TxErrors)
		e.one("slided_tap_rx_packets_total", counter, "Packets the daemon injected into the TAP (kernel rx).", l.RxPackets)
		e.one("slided_tap_rx_bytes_total", counter, "Bytes the daemon injected into the TAP (kernel rx).", l.RxBytes)
		e.one("slided_tap_rx_dropped_total", counter, "Kernel rx_dropped of the TAP.", l.RxDropped)
		e.one("slided_tap_rx_errors_total", counter, "Kernel rx_errors of the TAP.", l.RxErrors)
	}

	if q := st.Qdisc; q != nil {
		// The shaper's root qdisc: what it passed to the TAP, and the
		// drops of its per-flow queues.
		r := q.Root
		e.one("slided_qdisc_sent_packets_total", counter, "Packets the shaping qdisc passed to the TAP.", r.Packets)
		e.one("slided_qdisc_sent_bytes_total", counter, "Bytes the shaping qdisc passed to the TAP.", r.Bytes)
		e.one("slided_qdisc_drops_total", counter, "Packets the shaping qdisc dropped, per-flow queues included (32-bit kernel counter, wraps).", uint64(r.Drops))
		e.one("slided_qdisc_overlimits_total", counter, "Times a packet had to wait for the pacer's tokens (32-bit kernel counter, wraps).", uint64(r.Overlimits))
		e.one("slided_qdisc_backlog_bytes", gauge, "Bytes queued in the shaping qdisc.", uint64(r.Backlog))
		e.one("slided_qdisc_backlog_packets", gauge, "Packets queued in the shaping qdisc.", uint64(r.Qlen))
		e.one("slided_credit_regrants_total", counter, "Grants of the credit made again by its watchdog because the last grant's packets did not all reach the daemon (0 without a credit).", q.Regrants)
		if f := q.Forward; f != nil {
			// The queue of traffic no local socket sends (forwarded):
			// bounded, head drop (docs/backpressure.md).
			e.one("slided_qdisc_forward_sent_packets_total", counter, "Packets without a local sending socket (forwarded) the shaping qdisc passed to the TAP.", f.Packets)
			e.one("slided_qdisc_forward_drops_total", counter, "Packets without a local sending socket (forwarded) the forward queue dropped, oldest first; included in slided_qdisc_drops_total (32-bit kernel counter, wraps).", uint64(f.Drops))
			e.one("slided_qdisc_forward_backlog_packets", gauge, "Packets without a local sending socket queued in the shaping qdisc.", uint64(f.Qlen))
			e.one("slided_qdisc_forward_limit_packets", gauge, "Length of the forward queue (-forward-queue over the per-packet cost).", uint64(f.Limit))
		}
	}

	if c := st.Capture; c != nil {
		// -pcap: what reached the files, and what did not.
		e.family("slided_capture_frames_total", counter, "Frames written to the pcap files, by direction.")
		e.uint("slided_capture_frames_total", c.TxFrames, "direction", "tx")
		e.uint("slided_capture_frames_total", c.RxFrames, "direction", "rx")
		e.one("slided_capture_bytes_total", counter, "Bytes written to the pcap files, headers included.", c.Bytes)
		e.one("slided_capture_dropped_total", counter, "Frames not captured because the capture queue was full (the disk was slower than the link).", c.Dropped)
		e.one("slided_capture_skipped_total", counter, "Frames not captured because the capture had stopped (write error, or the size limit with one file).", c.Skipped)
		e.one("slided_capture_rotations_total", counter, "Moves to the next pcap file of the ring.", c.Rotations)
		e.one("slided_capture_stopped", gauge, "1 when the capture has stopped (see slided status), else 0.", b2u(c.Err != nil || c.Error != ""))
	}
}

func seconds(d time.Duration) float64 { return d.Seconds() }

// peers writes the link ARQ's per-peer figures, labelled peer="<node id>":
// at most 254 peers, nothing when there are none. The round trip is only
// written for peers with a sample.
func (e *encoder) peers(ps []bridge.Peer) {
	if len(ps) == 0 {
		return
	}
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = strconv.Itoa(p.Node)
	}
	e.family("slided_arq_peer_rtt_seconds", gauge, "Smoothed round trip from a poll leaving the modem to its Ack, per peer.")
	for i, p := range ps {
		if p.Samples > 0 {
			e.float("slided_arq_peer_rtt_seconds", seconds(p.SRTT), "peer", ids[i])
		}
	}
	e.family("slided_arq_peer_rtt_deviation_seconds", gauge, "Mean deviation of the round trip (RTTVAR), per peer.")
	for i, p := range ps {
		if p.Samples > 0 {
			e.float("slided_arq_peer_rtt_deviation_seconds", seconds(p.RTTVar), "peer", ids[i])
		}
	}
	e.family("slided_arq_peer_ack_timeout_seconds", gauge, "Ack timeout in use towards the peer.")
	for i, p := range ps {
		e.float("slided_arq_peer_ack_timeout_seconds", seconds(p.RTO), "peer", ids[i])
	}
	e.family("slided_link_peer_version", gauge, "Highest wire-format version heard from the peer since it last restarted (0: none yet).")
	for i, p := range ps {
		e.uint("slided_link_peer_version", uint64(max(p.Version, 0)), "peer", ids[i])
	}
	e.family("slided_arq_peer_retransmissions_total", counter, "Fragments transmitted again to the peer.")
	for i, p := range ps {
		e.uint("slided_arq_peer_retransmissions_total", p.Retransmissions, "peer", ids[i])
	}
	e.family("slided_arq_peer_timeouts_total", counter, "Ack timeouts towards the peer.")
	for i, p := range ps {
		e.uint("slided_arq_peer_timeouts_total", p.Timeouts, "peer", ids[i])
	}
	e.family("slided_arq_peer_last_heard_timestamp_seconds", gauge, "When the last frame from the peer arrived (Unix time).")
	for i, p := range ps {
		if !p.LastHeard.IsZero() {
			e.float("slided_arq_peer_last_heard_timestamp_seconds", float64(p.LastHeard.UnixMilli())/1000, "peer", ids[i])
		}
	}
}
