package serial

import "github.com/slided/slided/bridge"

// A serial port is a modem the bridge can drive.
var _ bridge.PHY = (*Port)(nil)
