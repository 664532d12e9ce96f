package phytest

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/creack/pty"
)

// PTYBehindLink makes far the far end of a pseudo-terminal reached through
// a symlink named name in a temporary directory, as a USB adapter appears
// under /dev/serial/by-id, and returns the link's path for the modem to
// open. far's OnHangUp closes the master and removes the link; its
// OnReturn makes a new pty behind the same name. The test's cleanup
// unplugs and closes far.
func PTYBehindLink(t testing.TB, far *StreamEnd, name string) string {
	link := filepath.Join(t.TempDir(), name)
	var (
		mu  sync.Mutex
		tty *os.File
	)
	plug := func() {
		master, slave, err := pty.Open()
		if err != nil {
			t.Fatalf("pty: %v", err)
		}
		os.Remove(link)
		if err := os.Symlink(slave.Name(), link); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		tty = slave // kept open: a master reads EIO while no slave is open
		mu.Unlock()
		far.Attach(master)
	}
	unplug := func() {
		os.Remove(link)
		far.Detach() // closes the master: the modem's reads fail
		mu.Lock()
		tty.Close()
		mu.Unlock()
	}
	plug()
	far.OnHangUp, far.OnReturn = unplug, plug
	t.Cleanup(func() { unplug(); far.Close() })
	return link
}

// SyncBuffer is a bytes.Buffer that several goroutines may write (a test's
// log output) while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
