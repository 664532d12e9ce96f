package sim

import "github.com/slided/slided/bridge"

// The medium's clients are modems the bridge can drive.
var (
	_ bridge.PHY = (*Client)(nil)
	_ bridge.PHY = (*UDPClient)(nil)
)
