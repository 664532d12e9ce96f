package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/slided/slided/capture"
	"github.com/slided/slided/framing"
)

// Defaults of -pcap-max-size and -pcap-files: at most 32 MiB on disk.
const (
	defaultPcapMaxSize = 16 << 20
	defaultPcapFiles   = 2
)

// pcapCapture is the bridge's Capture: it hands frames to a capture.Queue,
// whose goroutine writes them, so the bridge's loop never waits for the
// disk. Frames the queue has no room for are dropped and counted.
type pcapCapture struct {
	q *capture.Queue
}

// openPcap creates the ring of files files of at most maxSize bytes at
// path and starts its writer goroutine; Close stops it. A write error is
// logged once (the capture then stops; the link keeps running).
func openPcap(path string, maxSize int64, files int, log zerolog.Logger) (*pcapCapture, error) {
	w, err := capture.CreateRing(path, maxSize, files)
	if err != nil {
		return nil, err
	}
	onErr := func(err error) { log.Error().Err(err).Msg("pcap capture stopped; the link keeps running") }
	return &pcapCapture{q: capture.NewQueue(w, 0, onErr)}, nil
}

func (c *pcapCapture) WriteLink(t time.Time, tx bool, h framing.Header, payload []byte) {
	dir := capture.Rx
	if tx {
		dir = capture.Tx
	}
	c.q.WriteLink(t, dir, h, payload)
}

func (c *pcapCapture) stats() capture.Stats { return c.q.Stats() }

// Close writes what is queued and closes the files.
func (c *pcapCapture) Close() error { return c.q.Close() }

// byteSize is a flag value in bytes that takes a k, M or G suffix
// (powers of 1024): 512k, 16M, 1G.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	mult := int64(1)
	num := s
	if n := len(s); n > 0 {
		switch strings.ToLower(s[n-1:]) {
		case "k":
			mult, num = 1<<10, s[:n-1]
		case "m":
			mult, num = 1<<20, s[:n-1]
		case "g":
			mult, num = 1<<30, s[:n-1]
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return fmt.Errorf("want a size in bytes such as 16M, 512k or 1048576")
	}
	*b = byteSize(v * mult)
	return nil
}
