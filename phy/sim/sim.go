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

// The medium's core lives in phy/sim/medium; these names are sim's own API
// too (a client's node id, a server's Config and topology) and keep the
// callers that use the core through sim building.
type (
	NodeID         = medium.NodeID
	Config         = medium.Config
	Medium         = medium.Medium
	MediumStats    = medium.MediumStats
	Link           = medium.Link
	Topology       = medium.Topology
	Position       = medium.Position
	Propagation    = medium.Propagation
	AcousticBudget = medium.AcousticBudget
)

// MaxFrame is the largest burst, in bytes, the medium carries in one
// transmission.
const MaxFrame = medium.MaxFrame

// Propagation speeds, in metres per second.
const (
	SpeedOfSound = medium.SpeedOfSound
	SpeedOfLight = medium.SpeedOfLight
)

// Errors returned by the medium, the server and the client. Callers branch on
// them with errors.Is.
var (
	ErrInvalidNode  = medium.ErrInvalidNode
	ErrNodeInUse    = medium.ErrNodeInUse
	ErrNotAttached  = medium.ErrNotAttached
	ErrTransmitting = medium.ErrTransmitting
	ErrFrameSize    = medium.ErrFrameSize
)

// Constructors of the core.
var (
	NewMedium   = medium.NewMedium
	NewTopology = medium.NewTopology
	FullMesh    = medium.FullMesh
	PlaceNodes  = medium.PlaceNodes
)
