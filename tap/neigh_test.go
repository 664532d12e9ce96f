//go:build linux

package tap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSetNeighParams: the settings set over netlink are the ones
// /proc/sys shows, for both families.
func TestSetNeighParams(t *testing.T) {
	d := newTAP(t, "slneigh0", 16)
	p := NeighParams{QueueLenBytes: 1 << 20, RetransTime: 13500 * time.Millisecond,
		BaseReachableTime: 2 * time.Minute, UcastProbes: 5, McastProbes: 6}
	if err := SetNeighParams(d.Index(), p); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"unres_qlen_bytes": "1048576", "retrans_time_ms": "13500",
		"base_reachable_time_ms": "120000", "ucast_solicit": "5", "mcast_solicit": "6"}
	for _, family := range []string{"ipv4", "ipv6"} {
		for k, v := range want {
			path := filepath.Join("/proc/sys/net", family, "neigh", d.Name(), k)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(b)); got != v {
				t.Errorf("%s = %s, want %s", path, got, v)
			}
		}
	}
	if err := SetNeighParams(1<<30, p); err == nil {
		t.Error("no error for an interface that does not exist")
	}
}
