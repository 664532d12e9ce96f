//go:build linux

package tap

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestShaperSocketsOwnBuckets: with the socket classifier, each of 100
// sockets sending to one address and port gets a flow bucket of its own,
// and keeps it for all its packets. With the flow hash (64 buckets then,
// or 128) sockets shared buckets by chance, and the sockets of a shared
// bucket left it one after the other (BenchmarkHostLoss/sockets100: Jain
// over a window 0.48–0.53). The TAP is never read, so the queues hold
// what was sent, but for the credit's first grant.
func TestShaperSocketsOwnBuckets(t *testing.T) {
	f, err := LoadSocketFilter()
	if err != nil {
		t.Fatalf("LoadSocketFilter: %v", err)
	}
	defer f.Close()
	const name = "slt-sock0"
	d := newTAP(t, name, 16)
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	s, err := NewShaper(d.Index(), ShaperConfig{Rate: NoPacing, StallLimit: 1000 * time.Hour, Sockets: f})
	if err != nil {
		t.Fatalf("NewShaper: %v", err)
	}
	defer s.Close()
	if err := s.SocketsErr(); err != nil || !s.SocketBuckets() {
		t.Fatalf("socket classifier not attached: %v", err)
	}
	const sockets, each = 100, 3
	fds := make([]int, sockets)
	for i := range fds {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: peerPort, Addr: peerIP.As4()}); err != nil {
			t.Fatal(err)
		}
		fds[i] = fd
	}
	// In rounds, so that the few packets the credit lets through at
	// first leave no socket without a packet queued.
	for range each {
		for _, fd := range fds {
			if _, err := unix.Write(fd, make([]byte, 100)); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
	}
	used, most, queued := bucketQueues(t, d.Index())
	t.Logf("%d sockets × %d datagrams: %d buckets hold packets, the fullest %d, %d queued", sockets, each, used, most, queued)
	if used != sockets || most > each {
		t.Errorf("%d sockets in %d buckets, the fullest holding %d packets: want a bucket each, at most %d packets in one",
			sockets, used, most, each)
	}
	if queued < sockets*each-2*int(s.GrantSize()+1) {
		t.Errorf("%d packets queued of %d sent: more left than the first grant", queued, sockets*each)
	}
}

// bucketQueues returns how many flow buckets on ifindex hold packets, the
// most one holds, and the packets they hold in all.
func bucketQueues(t *testing.T, ifindex int) (used, most, total int) {
	t.Helper()
	qs, err := listQdiscs(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		a := q.Attrs()
		major := a.Handle >> 16
		if major <= leafMajor || major > leafMajor+flowBuckets || a.Statistics == nil {
			continue
		}
		if n := int(queueStats(a.Statistics).Qlen); n > 0 {
			used++
			most = max(most, n)
			total += n
		}
	}
	return used, most, total
}
