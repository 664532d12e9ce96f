package metrics

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/bridge"
	"github.com/slided/slided/capture"
	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/arq"
	"github.com/slided/slided/mac/csma"
	"github.com/slided/slided/phy/kiss"
	"github.com/slided/slided/phy/kiss/kissproto"
	"github.com/slided/slided/status"
	"github.com/slided/slided/tap"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fullStatus has a distinct value in every field, so that a field written
// under the wrong name shows up as a wrong value.
func fullStatus() *status.Snapshot {
	return &status.Snapshot{
		Interface:    "slide0",
		Backpressure: "shaping qdisc paced by the MAC",
		Warnings:     []string{"one", "two"},
		Link: &tap.LinkStats{TxPackets: 101, TxBytes: 102, TxDropped: 103, TxErrors: 104,
			RxPackets: 105, RxBytes: 106, RxDropped: 107, RxErrors: 108},
		Qdisc: &tap.QdiscStats{
			Root: tap.QueueStats{Packets: 201, Bytes: 202, Drops: 203, Overlimits: 204, Backlog: 205, Qlen: 206},
			Forward: &tap.ForwardStats{QueueStats: tap.QueueStats{Packets: 207, Bytes: 208, Drops: 209, Overlimits: 210, Backlog: 211, Qlen: 212},
				Limit: 213},
			Regrants: 214,
		},
		Capture: &capture.Stats{TxFrames: 301, RxFrames: 302, Bytes: 303, Skipped: 304, Dropped: 305, Rotations: 306},
		TNC: &kiss.Stats{Sent: 401, Received: 402, Bursts: 403, Ignored: 404, Deferred: 405, Joined: 406, Answered: 423, Early: 425,
			Connects: 407, Drops: 408, WriteTimeouts: 409, AckSent: 410, Acked: 411, AckTimeouts: 412, AckStray: 413,
			AckUnsupported: 1, OthersSent: 414, OthersLost: 415, OthersHeard: 416, IDSent: 417, SelfStalls: 424,
			Decoder: kissproto.Stats{Frames: 418, TooLong: 419, BadEscape: 420, Empty: 421, Garbage: 422}},
		Bridge: &bridge.Stats{
			Node: 7, Policy: "block", Up: true, BitRate: 9600,
			TAPReads: 1, TxFrames: 2, TxBytes: 3, TxEthBytes: 4,
			RxBursts: 5, RxWireBytes: 6, RxFrames: 7, RxEthBytes: 8, NotForUs: 9,
			QueueDepth: 10, QueueLen: 11, ReadPending: true, Ring: 12, RingDropped: 13, PacingRate: 14,
			ChannelBusy: 1500 * time.Millisecond, PHYDowns: 15, ShaperErrors: 16,
			Drops: bridge.Drops{QueueFull: 21, QueueHead: 22, NoRoute: 23, TooBig: 24, BadFrame: 25,
				PHYError: 26, PHYDown: 27, TAPWrite: 28, Echo: 29, BadCRC: 30, Garbage: 31,
				Unsealed: 32, AuthFailed: 33, Replayed: 34, Sealed: 35, SealFailed: 36, AckQueue: 37,
				PHYBusy: 38, PHYTooLarge: 39, PHYEmpty: 40, StateFailed: 41, Decompress: 85},
			KeyFingerprints: []string{"872d7ed1c48a0e21", "d6016cf91e90d3b1"}, KeyOpened: [2]uint64{82, 83}, OwnIDHeard: 84,
			MAC: csma.Stats{Enqueued: 41, Rejected: 42, Transmitted: 43, Dropped: 44, Deferrals: 45,
				Backoffs: 46, Persisted: 47, CWMaxHits: 48, Urgent: 49, Reserved: 50, BusyTime: 250 * time.Millisecond},
			LinkQueue: 61, WindowWaits: 62, NeighAnswered: 63, NeighKnown: 64, Senders: 65,
			Compressed: 86, CompressSaved: 87, HellosSent: 88, AcksSuperseded: 89, AckRides: 603, TCPAcksThinned: 604, SettledDropped: 605, AgedDropped: 606,
			ARQ: arq.Stats{Packets: 71, Fragments: 72, Retransmissions: 73, Timeouts: 74, GiveUps: 75,
				Acked: 76, AcksSent: 77, Delivered: 78, Duplicates: 79, ReasmTimeouts: 80, ReasmBytes: 81,
				ReorderWaited: 93, ReorderTimeouts: 94, ReorderSkipped: 95, ReorderOverflows: 96, ReorderLate: 97,
				ReorderHeld: 98, ReorderHeldBytes: 99, Riders: 601, AckRecords: 602, Stalls: 605},
			Decoder: framing.DecoderStats{Frames: 51, BadCRC: 52, BadCOBS: 53, TooLong: 54, Short: 55,
				BadVersion: 56, BadAddr: 57, GarbageBytes: 58},
			Peers: []bridge.Peer{
				{Node: 2, SRTT: 412 * time.Millisecond, RTTVar: 30 * time.Millisecond, RTO: 532 * time.Millisecond, Samples: 90,
					Retransmissions: 91, Timeouts: 92, LastHeard: time.Unix(1700000000, 250e6), HeardAgo: time.Second, Version: 2},
				{Node: 9, RTO: 4200 * time.Millisecond, HeardAgo: -1},
			},
		},
	}
}

// exposition is the text format parsed back by parseText.
type exposition struct {
	help    map[string]string
	types   map[string]string
	samples map[string]string // `name{k="v",...}` as written → value text
	order   []string          // sample keys in file order
}

// parseText is a small parser for the subset of the text format that Write
// produces. It fails the test on anything it does not understand, on a
// sample without earlier HELP and TYPE, and on duplicate families.
func parseText(t *testing.T, text string) exposition {
	t.Helper()
	ex := exposition{help: map[string]string{}, types: map[string]string{}, samples: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# HELP "):
			name, help, ok := strings.Cut(line[len("# HELP "):], " ")
			if !ok || help == "" {
				t.Fatalf("line %d: HELP without text: %q", n, line)
			}
			if _, dup := ex.help[name]; dup {
				t.Fatalf("line %d: second HELP for %s", n, name)
			}
			ex.help[name] = help
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, _ := strings.Cut(line[len("# TYPE "):], " ")
			if typ != "counter" && typ != "gauge" {
				t.Fatalf("line %d: type %q", n, typ)
			}
			if _, ok := ex.help[name]; !ok {
				t.Fatalf("line %d: TYPE before HELP for %s", n, name)
			}
			if _, dup := ex.types[name]; dup {
				t.Fatalf("line %d: second TYPE for %s", n, name)
			}
			ex.types[name] = typ
		case line == "" || strings.HasPrefix(line, "#"):
			t.Fatalf("line %d: unexpected %q", n, line)
		default:
			i := strings.LastIndexByte(line, ' ')
			if i < 0 {
				t.Fatalf("line %d: no value: %q", n, line)
			}
			key, val := line[:i], line[i+1:]
			if _, err := strconv.ParseFloat(val, 64); err != nil {
				t.Fatalf("line %d: value %q: %v", n, val, err)
			}
			name, _, _ := strings.Cut(key, "{")
			if _, ok := ex.types[name]; !ok {
				t.Fatalf("line %d: sample of %s before its TYPE", n, name)
			}
			if !strings.HasPrefix(key[len(name):], `{interface="`) || !strings.HasSuffix(key, "}") {
				t.Fatalf("line %d: labels %q lack interface", n, key)
			}
			if _, dup := ex.samples[key]; dup {
				t.Fatalf("line %d: duplicate sample %s", n, key)
			}
			ex.samples[key] = val
			ex.order = append(ex.order, key)
		}
	}
	if !strings.HasSuffix(text, "\n") {
		t.Fatal("output does not end with a newline")
	}
	return ex
}

func TestWriteValues(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, fullStatus()); err != nil {
		t.Fatal(err)
	}
	ex := parseText(t, buf.String())
	const i = `interface="slide0"`
	want := map[string]string{
		`slided_info{` + i + `,node="7",policy="block",backpressure="shaping"}`: "1",
		`slided_up{` + i + `}`:                                         "1",
		`slided_status_warnings{` + i + `}`:                            "2",
		`slided_air_bit_rate_bits_per_second{` + i + `}`:               "9600",
		`slided_tap_reads_total{` + i + `}`:                            "1",
		`slided_tx_frames_total{` + i + `}`:                            "2",
		`slided_tx_bytes_total{` + i + `}`:                             "3",
		`slided_tx_ethernet_bytes_total{` + i + `}`:                    "4",
		`slided_rx_bursts_total{` + i + `}`:                            "5",
		`slided_rx_wire_bytes_total{` + i + `}`:                        "6",
		`slided_rx_frames_total{` + i + `}`:                            "7",
		`slided_rx_ethernet_bytes_total{` + i + `}`:                    "8",
		`slided_rx_not_for_us_total{` + i + `}`:                        "9",
		`slided_queue_depth_frames{` + i + `}`:                         "10",
		`slided_queue_capacity_frames{` + i + `}`:                      "11",
		`slided_tap_read_pending{` + i + `}`:                           "1",
		`slided_tap_ring_packets{` + i + `}`:                           "12",
		`slided_pacing_rate_bytes_per_second{` + i + `}`:               "14",
		`slided_channel_busy_seconds_total{` + i + `}`:                 "1.5",
		`slided_phy_downs_total{` + i + `}`:                            "15",
		`slided_shaper_errors_total{` + i + `}`:                        "16",
		`slided_drops_total{` + i + `,reason="queue_full"}`:            "21",
		`slided_drops_total{` + i + `,reason="queue_head"}`:            "22",
		`slided_drops_total{` + i + `,reason="no_route"}`:              "23",
		`slided_drops_total{` + i + `,reason="too_big"}`:               "24",
		`slided_drops_total{` + i + `,reason="bad_frame"}`:             "25",
		`slided_drops_total{` + i + `,reason="phy_error"}`:             "26",
		`slided_drops_total{` + i + `,reason="phy_down"}`:              "27",
		`slided_drops_total{` + i + `,reason="tap_write"}`:             "28",
		`slided_drops_total{` + i + `,reason="echo"}`:                  "29",
		`slided_drops_total{` + i + `,reason="bad_crc"}`:               "30",
		`slided_drops_total{` + i + `,reason="garbage"}`:               "31",
		`slided_drops_total{` + i + `,reason="unsealed"}`:              "32",
		`slided_drops_total{` + i + `,reason="auth_failed"}`:           "33",
		`slided_drops_total{` + i + `,reason="replayed"}`:              "34",
		`slided_drops_total{` + i + `,reason="sealed"}`:                "35",
		`slided_drops_total{` + i + `,reason="seal_failed"}`:           "36",
		`slided_drops_total{` + i + `,reason="ack_queue"}`:             "37",
		`slided_drops_total{` + i + `,reason="decompress"}`:            "85",
		`slided_link_compressed_total{` + i + `}`:                      "86",
		`slided_link_compress_saved_bytes_total{` + i + `}`:            "87",
		`slided_link_hellos_sent_total{` + i + `}`:                     "88",
		`slided_link_acks_superseded_total{` + i + `}`:                 "89",
		`slided_link_ack_rides_total{` + i + `}`:                       "603",
		`slided_link_tcp_acks_thinned_total{` + i + `}`:                "604",
		`slided_link_settled_dropped_total{` + i + `}`:                 "605",
		`slided_link_aged_dropped_total{` + i + `}`:                    "606",
		`slided_link_peer_version{` + i + `,peer="2"}`:                 "2",
		`slided_link_peer_version{` + i + `,peer="9"}`:                 "0",
		`slided_drops_total{` + i + `,reason="phy_busy"}`:              "38",
		`slided_drops_total{` + i + `,reason="phy_too_large"}`:         "39",
		`slided_drops_total{` + i + `,reason="phy_empty"}`:             "40",
		`slided_mac_urgent_total{` + i + `}`:                           "49",
		`slided_mac_reserved_total{` + i + `}`:                         "50",
		`slided_link_queue_frames{` + i + `}`:                          "61",
		`slided_link_window_waits_total{` + i + `}`:                    "62",
		`slided_neigh_answered_total{` + i + `}`:                       "63",
		`slided_neigh_known{` + i + `}`:                                "64",
		`slided_mac_senders{` + i + `}`:                                "65",
		`slided_arq_packets_total{` + i + `}`:                          "71",
		`slided_arq_fragments_total{` + i + `}`:                        "72",
		`slided_arq_retransmissions_total{` + i + `}`:                  "73",
		`slided_arq_timeouts_total{` + i + `}`:                         "74",
		`slided_arq_give_ups_total{` + i + `}`:                         "75",
		`slided_arq_acked_total{` + i + `}`:                            "76",
		`slided_arq_riders_total{` + i + `}`:                           "601",
		`slided_arq_ack_records_total{` + i + `}`:                      "602",
		`slided_arq_self_stalls_total{` + i + `}`:                      "605",
		`slided_tnc_self_stalls_total{` + i + `}`:                      "424",
		`slided_arq_acks_sent_total{` + i + `}`:                        "77",
		`slided_arq_delivered_total{` + i + `}`:                        "78",
		`slided_arq_duplicates_total{` + i + `}`:                       "79",
		`slided_arq_reassembly_timeouts_total{` + i + `}`:              "80",
		`slided_arq_reassembly_bytes{` + i + `}`:                       "81",
		`slided_mac_enqueued_total{` + i + `}`:                         "41",
		`slided_mac_rejected_total{` + i + `}`:                         "42",
		`slided_mac_transmitted_total{` + i + `}`:                      "43",
		`slided_mac_dropped_total{` + i + `}`:                          "44",
		`slided_mac_deferrals_total{` + i + `}`:                        "45",
		`slided_mac_backoff_slots_total{` + i + `}`:                    "46",
		`slided_mac_persistence_slots_total{` + i + `}`:                "47",
		`slided_mac_cw_max_hits_total{` + i + `}`:                      "48",
		`slided_mac_carrier_busy_seconds_total{` + i + `}`:             "0.25",
		`slided_decoder_frames_total{` + i + `}`:                       "51",
		`slided_decoder_rejects_total{` + i + `,reason="bad_crc"}`:     "52",
		`slided_decoder_rejects_total{` + i + `,reason="bad_cobs"}`:    "53",
		`slided_decoder_rejects_total{` + i + `,reason="too_long"}`:    "54",
		`slided_decoder_rejects_total{` + i + `,reason="short"}`:       "55",
		`slided_decoder_rejects_total{` + i + `,reason="bad_version"}`: "56",
		`slided_decoder_rejects_total{` + i + `,reason="bad_addr"}`:    "57",
		`slided_decoder_garbage_bytes_total{` + i + `}`:                "58",
		`slided_tap_tx_packets_total{` + i + `}`:                       "101",
		`slided_tap_tx_bytes_total{` + i + `}`:                         "102",
		`slided_tap_tx_dropped_total{` + i + `}`:                       "103",
		`slided_tap_tx_errors_total{` + i + `}`:                        "104",
		`slided_tap_rx_packets_total{` + i + `}`:                       "105",
		`slided_tap_rx_bytes_total{` + i + `}`:                         "106",
		`slided_tap_rx_dropped_total{` + i + `}`:                       "107",
		`slided_tap_rx_errors_total{` + i + `}`:                        "108",
		`slided_qdisc_sent_packets_total{` + i + `}`:                   "201",
		`slided_qdisc_sent_bytes_total{` + i + `}`:                     "202",
		`slided_qdisc_drops_total{` + i + `}`:                          "203",
		`slided_qdisc_overlimits_total{` + i + `}`:                     "204",
		`slided_qdisc_backlog_bytes{` + i + `}`:                        "205",
		`slided_qdisc_backlog_packets{` + i + `}`:                      "206",
		`slided_qdisc_forward_sent_packets_total{` + i + `}`:           "207",
		`slided_credit_regrants_total{` + i + `}`:                      "214",
		`slided_qdisc_forward_drops_total{` + i + `}`:                  "209",
		`slided_qdisc_forward_backlog_packets{` + i + `}`:              "212",
		`slided_qdisc_forward_limit_packets{` + i + `}`:                "213",
		`slided_capture_frames_total{` + i + `,direction="tx"}`:        "301",
		`slided_capture_frames_total{` + i + `,direction="rx"}`:        "302",
		`slided_capture_bytes_total{` + i + `}`:                        "303",
		`slided_capture_skipped_total{` + i + `}`:                      "304",
		`slided_capture_dropped_total{` + i + `}`:                      "305",
		`slided_capture_rotations_total{` + i + `}`:                    "306",
		`slided_capture_stopped{` + i + `}`:                            "0",
		`slided_tnc_frames_total{` + i + `,direction="tx"}`:            "401",
		`slided_tnc_frames_total{` + i + `,direction="rx"}`:            "402",
		`slided_tnc_bursts_total{` + i + `}`:                           "403",
		`slided_tnc_ignored_total{` + i + `}`:                          "404",
		`slided_tnc_deferred_total{` + i + `}`:                         "405",
		`slided_tnc_joined_total{` + i + `}`:                           "406",
		`slided_tnc_answered_total{` + i + `}`:                         "423",
		`slided_tnc_early_total{` + i + `}`:                            "425",
		`slided_tnc_connects_total{` + i + `}`:                         "407",
		`slided_tnc_connection_drops_total{` + i + `}`:                 "408",
		`slided_tnc_write_timeouts_total{` + i + `}`:                   "409",
		`slided_tnc_ackmode_total{` + i + `,event="sent"}`:             "410",
		`slided_tnc_ackmode_total{` + i + `,event="answered"}`:         "411",
		`slided_tnc_ackmode_total{` + i + `,event="unanswered"}`:       "412",
		`slided_tnc_ackmode_total{` + i + `,event="stray"}`:            "413",
		`slided_tnc_ackmode_unsupported{` + i + `}`:                    "1",
		`slided_tnc_other_frames_total{` + i + `,event="sent"}`:        "414",
		`slided_tnc_other_frames_total{` + i + `,event="lost"}`:        "415",
		`slided_tnc_other_frames_total{` + i + `,event="heard"}`:       "416",
		`slided_tnc_identifications_total{` + i + `}`:                  "417",
		`slided_tnc_kiss_rejects_total{` + i + `,reason="too_long"}`:   "419",
		`slided_tnc_kiss_rejects_total{` + i + `,reason="bad_escape"}`: "420",
		`slided_tnc_kiss_garbage_bytes_total{` + i + `}`:               "422",
	}
	// With a key.
	want[`slided_drops_total{`+i+`,reason="state_failed"}`] = "41"
	want[`slided_key_opened_total{`+i+`,key="first",fingerprint="872d7ed1c48a0e21"}`] = "82"
	want[`slided_key_opened_total{`+i+`,key="second",fingerprint="d6016cf91e90d3b1"}`] = "83"
	want[`slided_own_id_heard_total{`+i+`}`] = "84"
	// The reorder buffer.
	for k, v := range map[string]string{
		`slided_arq_reorder_waited_total{` + i + `}`:                     "93",
		`slided_arq_reorder_released_total{` + i + `,reason="timeout"}`:  "94",
		`slided_arq_reorder_released_total{` + i + `,reason="skipped"}`:  "95",
		`slided_arq_reorder_released_total{` + i + `,reason="overflow"}`: "96",
		`slided_arq_reorder_late_total{` + i + `}`:                       "97",
		`slided_arq_reorder_held_packets{` + i + `}`:                     "98",
		`slided_arq_reorder_held_bytes{` + i + `}`:                       "99",
	} {
		want[k] = v
	}
	// Per peer: no round trip for a peer never measured, no time for one
	// never heard.
	for k, v := range map[string]string{
		`slided_arq_peer_rtt_seconds{` + i + `,peer="2"}`:                  "0.412",
		`slided_arq_peer_rtt_deviation_seconds{` + i + `,peer="2"}`:        "0.03",
		`slided_arq_peer_ack_timeout_seconds{` + i + `,peer="2"}`:          "0.532",
		`slided_arq_peer_ack_timeout_seconds{` + i + `,peer="9"}`:          "4.2",
		`slided_arq_peer_retransmissions_total{` + i + `,peer="2"}`:        "91",
		`slided_arq_peer_retransmissions_total{` + i + `,peer="9"}`:        "0",
		`slided_arq_peer_timeouts_total{` + i + `,peer="2"}`:               "92",
		`slided_arq_peer_timeouts_total{` + i + `,peer="9"}`:               "0",
		`slided_arq_peer_last_heard_timestamp_seconds{` + i + `,peer="2"}`: "1.70000000025e+09",
	} {
		want[k] = v
	}
	for k, v := range want {
		if got, ok := ex.samples[k]; !ok {
			t.Errorf("missing sample %s", k)
		} else if got != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
	for _, k := range ex.order {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected sample %s = %s", k, ex.samples[k])
		}
	}
	for name, typ := range ex.types {
		if isTotal := strings.HasSuffix(name, "_total"); isTotal != (typ == "counter") {
			t.Errorf("%s is a %s: counters, and only counters, end in _total", name, typ)
		}
	}
}

func TestWritePartial(t *testing.T) {
	tests := []struct {
		desc        string
		st          *status.Snapshot
		wantSamples int
		wantUp      string
		absent      string // a family that must not appear
	}{
		{desc: "modem not reached: no bridge", st: &status.Snapshot{Interface: "t0",
			Backpressure: "off (policy drop-tail)", Warnings: []string{"modem not reached yet"}},
			wantSamples: 3, wantUp: "0", absent: "slided_tx_frames_total"},
		{desc: "bridge down, no link, no qdisc, ring unknown", st: &status.Snapshot{Interface: "t0",
			Bridge: &bridge.Stats{Node: 1, Policy: "block", Ring: -1}},
			wantSamples: 111 - 8 - 7 - 1, wantUp: "0", absent: "slided_tap_ring_packets"},
		{desc: "bridge up, no qdisc", st: &status.Snapshot{Interface: "t0", Link: &tap.LinkStats{},
			Bridge: &bridge.Stats{Node: 1, Up: true}},
			wantSamples: 111 - 7, wantUp: "1", absent: "slided_qdisc_backlog_bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tc.st); err != nil {
				t.Fatal(err)
			}
			ex := parseText(t, buf.String())
			if len(ex.order) != tc.wantSamples {
				t.Errorf("%d samples, want %d:\n%s", len(ex.order), tc.wantSamples, buf.String())
			}
			if got := ex.samples[`slided_up{interface="t0"}`]; got != tc.wantUp {
				t.Errorf("slided_up = %q, want %q", got, tc.wantUp)
			}
			if _, ok := ex.types[tc.absent]; ok {
				t.Errorf("family %s present", tc.absent)
			}
		})
	}
}

func TestWriteNil(t *testing.T) {
	if err := Write(io.Discard, nil); err == nil {
		t.Fatal("Write(nil) succeeded")
	}
}

func TestEscaping(t *testing.T) {
	st := &status.Snapshot{Interface: "a\"b\\c\nd", Backpressure: "degraded: qdisc gone"}
	var buf bytes.Buffer
	if err := Write(&buf, st); err != nil {
		t.Fatal(err)
	}
	ex := parseText(t, buf.String())
	want := `slided_up{interface="a\"b\\c\nd"}`
	if _, ok := ex.samples[want]; !ok {
		t.Errorf("no sample %s in\n%s", want, buf.String())
	}
	wantInfo := `slided_info{interface="a\"b\\c\nd",node="",policy="",backpressure="degraded"}`
	if _, ok := ex.samples[wantInfo]; !ok {
		t.Errorf("no sample %s in\n%s", wantInfo, buf.String())
	}
}

func TestBackpressureMode(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"kernel (IFF_BACKPRESSURE)", "kernel"},
		{"shaping qdisc paced by the MAC", "shaping"},
		{"off (-shaper=false): the TAP ring drops when full", "off"},
		{"degraded: backpressure qdisc unavailable", "degraded"},
		{"", "unknown"},
	} {
		if got := backpressureMode(tc.in); got != tc.want {
			t.Errorf("backpressureMode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, fullStatus()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "full.prom")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("output differs from %s (go test -update rewrites it after review):\n%s", path, buf.String())
	}
}

func BenchmarkWrite(b *testing.B) {
	st := fullStatus()
	b.ReportAllocs()
	for b.Loop() {
		if err := Write(io.Discard, st); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleWrite() {
	st := &status.Snapshot{Interface: "slide0", Backpressure: "kernel (IFF_BACKPRESSURE)"}
	Write(os.Stdout, st)
	fmt.Println("...")
	// Output:
	// # HELP slided_info Constant 1; the labels describe the interface: link node id, queue policy, backpressure mechanism.
	// # TYPE slided_info gauge
	// slided_info{interface="slide0",node="",policy="",backpressure="kernel"} 1
	// # HELP slided_up 1 when the modem is up and the bridge is running, else 0.
	// # TYPE slided_up gauge
	// slided_up{interface="slide0"} 0
	// # HELP slided_status_warnings Number of warnings in the status document (see slided status).
	// # TYPE slided_status_warnings gauge
	// slided_status_warnings{interface="slide0"} 0
	// ...
}
