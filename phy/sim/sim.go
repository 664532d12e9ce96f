// Package sim is a simulated shared half-duplex medium.
//
// It has three layers:
//
//   - the core, package phy/sim/medium: a sans-I/O model of the channel. Time
//     is passed in and events come out of Advance, so the same code runs in
//     real time (Server) and in virtual time (MAC studies, tests). It is
//     deterministic for a seed.
//   - Server, the medium in real time on a Unix stream socket (and UDP), so
//     daemons in different network namespaces share one channel; scenarios
//     (TOML) give it a topology.
//   - Client and UDPClient, the PHYs a daemon uses to reach a Server
//     (bridge.PHY).
//
// The model, its assumptions and the wire protocol are in docs/simulator.md.
package sim

import "github.com/slided/slided/phy/sim/medium"

// Names of the core that are also sim's own API: a client's node id, the
// server's Config, the largest burst, the errors the server and the clients
// return.
type (
	NodeID = medium.NodeID
	Config = medium.Config
)

// MaxFrame is the largest transmission, in bytes, the medium carries: a
// burst the client sends as one, or each frame of a burst it splits
// (Client.Transmit).
const MaxFrame = medium.MaxFrame

// Errors returned by the medium, the server and the client. Callers branch on
// them with errors.Is.
var (
	ErrInvalidNode  = medium.ErrInvalidNode
	ErrNodeInUse    = medium.ErrNodeInUse
	ErrNotAttached  = medium.ErrNotAttached
	ErrTransmitting = medium.ErrTransmitting
	ErrFrameSize    = medium.ErrFrameSize
)
