package control

import (
	"github.com/slided/slided/capture"
	"github.com/slided/slided/link"
	"github.com/slided/slided/phy/kiss"
	"github.com/slided/slided/tap"
)

// Status is the answer to "status": what `slided status -json` prints.
type Status struct {
	Interface    string          `json:"interface"`
	Backpressure string          `json:"backpressure"` // the mechanism in effect, or why none is
	Link         *tap.LinkStats  `json:"link,omitempty"`
	Qdisc        *tap.QdiscStats `json:"qdisc,omitempty"`
	Bridge       *link.Stats     `json:"bridge,omitempty"`
	TNC          *kiss.Stats     `json:"tnc,omitempty"`     // a KISS modem's own counters (-phy kiss-tcp:, kiss-serial:)
	Capture      *capture.Stats  `json:"capture,omitempty"` // -pcap
	Warnings     []string        `json:"warnings,omitempty"`
}
