// Package status holds the daemon's status document: what the control
// socket answers to "status", `slided status` prints, and the metrics
// export. It gathers the parts' own snapshots (the TAP's counters, the
// qdisc's, the link engine's, a KISS TNC's, the capture's) and does no I/O;
// the control socket (package control) carries it as JSON without knowing
// its type.
package status

import (
	"github.com/slided/slided/capture"
	"github.com/slided/slided/link"
	"github.com/slided/slided/phy/kiss"
	"github.com/slided/slided/tap"
)

// Snapshot is the answer to "status": what `slided status -json` prints.
type Snapshot struct {
	Interface    string          `json:"interface"`
	Backpressure string          `json:"backpressure"` // the mechanism in effect, or why none is
	Link         *tap.LinkStats  `json:"link,omitempty"`
	Qdisc        *tap.QdiscStats `json:"qdisc,omitempty"`
	Bridge       *link.Stats     `json:"bridge,omitempty"`
	TNC          *kiss.Stats     `json:"tnc,omitempty"`     // a KISS modem's own counters (-phy kiss-tcp:, kiss-serial:)
	Capture      *capture.Stats  `json:"capture,omitempty"` // -pcap
	Warnings     []string        `json:"warnings,omitempty"`
}
