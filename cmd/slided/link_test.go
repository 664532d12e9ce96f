//go:build linux

package main

// The link layer's options through real daemons: a pre-shared key shared by
// both nodes, and one node with another key.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slided/slided/internal/lab"
)

// writeKey writes a key file of 64 hex digits made of b, mode 0600.
func writeKey(t testing.TB, dir, name string, b byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf("%02x", b), 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPreSharedKey: two daemons with the same key file talk (ping and UDP,
// every frame sealed); with node 2 on another key nothing crosses, and node 2
// counts node 1's frames as forged.
func TestPreSharedKey(t *testing.T) {
	keys := t.TempDir()
	k1, k2 := writeKey(t, keys, "net.key", 0x5a), writeKey(t, keys, "other.key", 0xa5)
	for _, tc := range []struct {
		name    string
		key2    string
		talking bool
	}{
		{"same key", k1, true},
		{"another key", k2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, p := startPairConfig(t, lab.PairConfig{Rate: 115200, Subnet: "192.0.2",
				NodeArgs: keyArgs(t.TempDir(), k1, tc.key2)})
			got := pingCount(t, l, p.NS[0], p.Addr[1], 3, 3*time.Second)
			st, err := p.Status(1)
			if err != nil {
				t.Fatal(err)
			}
			d := st.Bridge.Drops
			if tc.talking {
				if got < 2 {
					t.Errorf("ping with the same key: %d of 3 replies", got)
				}
				if d.AuthFailed+d.Unsealed+d.Replayed != 0 {
					t.Errorf("node2 refused frames sealed with its own key: %+v", d)
				}
				exchange(t, p, 5030, 10, 500, 100, 5*time.Second, 30*time.Second)
				return
			}
			if got != 0 {
				t.Errorf("ping across two keys: %d of 3 replies, want none", got)
			}
			if d.AuthFailed == 0 || st.Bridge.RxFrames != 0 {
				t.Errorf("node2: %d frames to its TAP, drops %+v; want node1's frames refused as forged", st.Bridge.RxFrames, d)
			}
		})
	}
}
