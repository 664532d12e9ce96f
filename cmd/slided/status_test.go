package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/link"
	"github.com/slided/slided/mac/arq"
	"github.com/slided/slided/phy/kiss"
	"github.com/slided/slided/status"
	"github.com/slided/slided/tap"
)

// TestPrintStatus: the human table shows the link layer, the neighbour
// answers and, only when there are any, the authentication drops.
func TestPrintStatus(t *testing.T) {
	st := &status.Snapshot{Interface: "slided0", Backpressure: "shaping", Bridge: &link.Stats{
		Node: 2, Policy: "block", Up: true, BitRate: 9600, FrameMax: 64, LinkQueue: 3,
		NeighKnown: 4, NeighAnswered: 5,
		ARQ: arq.Stats{Packets: 10, Fragments: 210, Retransmissions: 7, Timeouts: 2, GiveUps: 1, Acked: 9,
			Delivered: 8, Duplicates: 6, ReasmTimeouts: 1, ReasmBytes: 100, Stalls: 4},
	}}
	var out bytes.Buffer
	printStatus(&out, st)
	for _, want := range []string{
		"frames of at most 64 bytes; 10 packets in 210 fragments, 7 retransmitted, 2 timeouts, 1 given up, 9 acked; waiting 3; stalled 4 times (this process did not run)",
		"8 delivered, 6 duplicates suppressed, 1 timed out, 100 bytes held",
		"4 addresses heard, 5 requests answered without airtime",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "auth drops") {
		t.Errorf("auth drops shown without any:\n%s", out.String())
	}
	st.Bridge.Drops = link.Drops{AuthFailed: 3, Replayed: 2}
	out.Reset()
	printStatus(&out, st)
	if !strings.Contains(out.String(), "unsealed 0, forged 3, replayed 2") {
		t.Errorf("auth drops missing:\n%s", out.String())
	}
}

// TestPrintStatusCredit: the qdisc row shows the grants the credit's
// watchdog made again, and the mechanism says what it cannot promise.
func TestPrintStatusCredit(t *testing.T) {
	const mode = "shaping qdisc with a credit granted as the daemon reads (…); it cannot cut UDP_SEGMENT skbs into their segments (…): such a sender's bursts may overflow the TAP ring"
	st := &status.Snapshot{Interface: "slided0", Backpressure: mode,
		Qdisc: &tap.QdiscStats{Root: tap.QueueStats{Packets: 20, Drops: 1, Qlen: 2, Backlog: 300, Overlimits: 4}, Regrants: 5}}
	var out bytes.Buffer
	printStatus(&out, st)
	for _, want := range []string{
		"20 packets passed, 1 dropped, 2 waiting (300 bytes), 4 overlimits; 5 grants made again by the watchdog",
		mode,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}

// TestPrintStatusPeers: the per-peer table shows each node's round trip,
// timeout, losses, when it was last heard and its wire version; a node
// never measured or never heard says so.
func TestPrintStatusPeers(t *testing.T) {
	st := &status.Snapshot{Interface: "slided0", Bridge: &link.Stats{Node: 1, Peers: []link.Peer{
		{Node: 2, SRTT: 412300 * time.Microsecond, RTTVar: 30 * time.Millisecond, RTO: 532 * time.Millisecond, Samples: 40,
			Packets: 41, Fragments: 97, Retransmissions: 3, Timeouts: 1, Acked: 40, HeardAgo: 1200 * time.Millisecond, Version: 2},
		{Node: 7, RTO: 4200 * time.Millisecond, HeardAgo: -1},
	}}}
	var out bytes.Buffer
	printStatus(&out, st)
	lines := strings.Split(out.String(), "\n")
	var rows []string
	for i, l := range lines {
		if strings.HasPrefix(l, "peer ") {
			rows = lines[i:]
			break
		}
	}
	if len(rows) < 3 {
		t.Fatalf("no peer table:\n%s", out.String())
	}
	for i, want := range [][]string{
		{"2", "412ms", "30ms", "40", "532ms", "41", "40", "0", "3", "(3.0%)", "1", "1.2s", "ago", "2"},
		{"7", "-", "-", "0", "4.2s", "0", "0", "0", "0", "0", "never", "-"},
	} {
		if got := strings.Fields(rows[1+i]); !slices.Equal(got, want) {
			t.Errorf("peer row %d: %q, want %q\n%s", i, got, want, out.String())
		}
	}
}

// TestPrintStatusTNC: a KISS modem's own counters (bursts, deferrals,
// ACKMODE, other programs) show in the table; the ACKMODE and other
// programs' rows only when they have counted anything.
func TestPrintStatusTNC(t *testing.T) {
	st := &status.Snapshot{Interface: "slided0", TNC: &kiss.Stats{Sent: 40, Bursts: 5, Received: 12, Deferred: 3, Joined: 2,
		Answered: 4, Early: 6, Connects: 1}}
	var out bytes.Buffer
	printStatus(&out, st)
	want := "40 frames sent in 5 key-ups of several, 12 received; 3 deferred behind a busy channel (2 joined the next), 4 ended by the answer, 6 of Acks done once written; 1 connects, 0 lost"
	if !strings.Contains(out.String(), want) {
		t.Errorf("status lacks %q:\n%s", want, out.String())
	}
	if strings.Contains(out.String(), "ackmode") || strings.Contains(out.String(), "other programs") {
		t.Errorf("empty ACKMODE or other programs' rows shown:\n%s", out.String())
	}
	st.TNC.AckSent, st.TNC.AckUnsupported, st.TNC.OthersHeard = 1, 1, 7
	out.Reset()
	printStatus(&out, st)
	for _, want := range []string{"1 sent, 0 answered, 0 unanswered, 0 stray, unsupported true", "0 lost, 7 heard"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}
