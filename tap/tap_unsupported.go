//go:build !linux && !freebsd

package tap

import "fmt"

// NoShaperBackpressure says, for `slided status`, what carries
// backpressure where there is no shaping qdisc.
const NoShaperBackpressure = "none: no TAP backend on this system"

// Device is a TAP device; on this system none can be created.
type Device struct{}

// Create fails: slided has TAP backends for Linux and FreeBSD only.
func Create(cfg Config) (*Device, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("tap: %s: slided has TAP backends for Linux and FreeBSD only: %w", cfg.Name, ErrNotSupported)
}

func (d *Device) Read(p []byte) (int, error)  { return 0, ErrNotSupported }
func (d *Device) Write(p []byte) (int, error) { return 0, ErrNotSupported }
func (d *Device) Name() string                { return "" }
func (d *Device) Index() int                  { return 0 }
func (d *Device) Backpressure() bool          { return false }
func (d *Device) GSOLimit() error             { return nil }
func (d *Device) Close() error                { return nil }

// LinkStats fails with ErrNotSupported.
func (d *Device) LinkStats() (LinkStats, error) { return LinkStats{}, ErrNotSupported }
