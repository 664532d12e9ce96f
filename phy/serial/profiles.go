package serial

import (
	"strings"
	"time"
)

// Profile is a named preset for profile=NAME: the figures of a kind of modem
// in transparent mode. Keys given after profile= override its fields. See
// docs/modems.md, "Modem profiles", for where each figure comes from.
type Profile struct {
	Name string
	// Config holds the preset fields; Path is empty.
	Config Config
	// Doc says what the profile stands for, in one line.
	Doc string
}

// Profiles are the presets profile= accepts. Their figures are generic
// (what the deployment and the acoustic emulator use), not one
// vendor's: no vendor's transparent-mode packet size, gap and preamble
// could be confirmed from its published documents (docs/modems.md).
var Profiles = []Profile{
	{
		Name: "acoustic-2400",
		Config: Config{Profile: "acoustic-2400", Baud: 19200, AirRate: 2400, MaxFrame: 256,
			TXDelay: 250 * time.Millisecond, Mode: ModePacket, Carrier: CarrierNone, PropDelay: time.Second},
		Doc: "store-and-forward acoustic modem, 19200 baud, 2400 bit/s, 256-byte packets, 0.25 s preamble, 1.5 km (1 s)",
	},
	{
		Name: "acoustic-300",
		Config: Config{Profile: "acoustic-300", Baud: 9600, AirRate: 300, MaxFrame: 128,
			TXDelay: 750 * time.Millisecond, Mode: ModePacket, Carrier: CarrierNone, PropDelay: 2 * time.Second},
		Doc: "slow store-and-forward acoustic modem, 9600 baud, 300 bit/s, 128-byte packets, 0.75 s preamble, 3 km (2 s)",
	},
	{
		Name: "acoustic-stream-1200",
		Config: Config{Profile: "acoustic-stream-1200", Baud: 9600, AirRate: 1200, MaxFrame: 256,
			TXDelay: 500 * time.Millisecond, Mode: ModeStream, Carrier: CarrierRx, Hangover: time.Second,
			PropDelay: time.Second},
		Doc: "streaming acoustic modem (bytes on air as they arrive), 9600 baud, 1200 bit/s, 0.5 s preamble, carrier from received bytes held 1 s, 1.5 km",
	},
}

// LookupProfile returns the profile called name.
func LookupProfile(name string) (Profile, bool) {
	for _, p := range Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

func profileNames() string {
	names := make([]string, len(Profiles))
	for i, p := range Profiles {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}
