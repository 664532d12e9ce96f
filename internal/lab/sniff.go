//go:build linux

package lab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A Sniffer captures the Ethernet frames one interface in one network
// namespace receives: for a TAP, the frames its user-space side (the daemon)
// wrote into it. Frames the kernel sends out of the interface (PACKET_OUTGOING:
// for a TAP, what the daemon reads) are not seen. It is an AF_PACKET raw
// socket, opened on a thread switched into the namespace, so it stays there
// whichever goroutine reads it.
//
// ReadFrame and Collect are for one goroutine; Close may be called from
// another and unblocks them.
type Sniffer struct {
	NS, Ifname string
	ifindex    int
	f          *os.File
	rc         syscall.RawConn
	closed     atomic.Bool
	buf        []byte
}

// Sniff opens a Sniffer on interface ifname in namespace ns ("" for the
// caller's own namespace).
func Sniff(ns, ifname string) (*Sniffer, error) {
	s := &Sniffer{NS: ns, Ifname: ifname, buf: make([]byte, 1<<16)}
	open := func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		s.ifindex = ifi.Index
		// Protocol 0: nothing is queued until bind names the protocol
		// and the interface, so no frame of another interface slips in.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		// Outgoing frames are skipped by the kernel where it can
		// (Linux 4.20), and by ReadFrame in any case.
		unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
		// Room for a few seconds of bursts while the reader is busy.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20); err != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		}
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
		if err := unix.Bind(fd, sa); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind AF_PACKET socket to %s: %w", ifname, err)
		}
		s.f = os.NewFile(uintptr(fd), "packet:"+ifname)
		return nil
	}
	var err error
	if ns == "" {
		err = open()
	} else {
		err = InNS(ns, open)
	}
	if err != nil {
		return nil, fmt.Errorf("sniff %s in %q: %w", ifname, ns, err)
	}
	if s.rc, err = s.f.SyscallConn(); err != nil {
		s.f.Close()
		return nil, err
	}
	return s, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ErrTruncated is returned (with the frame's first 64 KiB) for a frame
// longer than the Sniffer's buffer.
var ErrTruncated = errors.New("sniff: frame truncated")

// ReadFrame returns the next frame the interface received, a new slice
// holding the whole Ethernet frame. It waits until deadline at most and then
// returns os.ErrDeadlineExceeded; after Close it returns os.ErrClosed.
func (s *Sniffer) ReadFrame(deadline time.Time) ([]byte, error) {
	if err := s.f.SetReadDeadline(deadline); err != nil {
		if s.closed.Load() {
			return nil, os.ErrClosed
		}
		return nil, err
	}
	for {
		var (
			n    int
			from unix.Sockaddr
			rerr error
		)
		err := s.rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), s.buf, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN && rerr != unix.EINTR
		})
		if err != nil {
			if s.closed.Load() {
				// RawConn and SetReadDeadline report a closed
				// file as poll's ErrFileClosing, not os.ErrClosed.
				return nil, os.ErrClosed
			}
			return nil, err
		}
		if rerr != nil {
			return nil, fmt.Errorf("sniff %s: %w", s.Ifname, rerr)
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Ifindex != s.ifindex || ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if n > len(s.buf) {
			return append([]byte(nil), s.buf...), ErrTruncated
		}
		return append([]byte(nil), s.buf[:n]...), nil
	}
}

// Collect reads frames until it has max of them, until no frame has come for
// idle, until deadline, or until the Sniffer is closed, and returns them;
// the error is nil in those cases.
func (s *Sniffer) Collect(max int, idle time.Duration, deadline time.Time) ([][]byte, error) {
	var frames [][]byte
	for len(frames) < max {
		w := time.Now().Add(idle)
		if w.After(deadline) {
			w = deadline
		}
		fr, err := s.ReadFrame(w)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, os.ErrClosed):
			return frames, nil
		case err != nil:
			return frames, err
		}
		frames = append(frames, fr)
	}
	return frames, nil
}

// Stats returns the socket's counters since the last call (PACKET_STATISTICS
// resets them): frames queued to it and frames dropped because its buffer
// was full. Drops mean the capture is incomplete.
func (s *Sniffer) Stats() (packets, drops uint32, err error) {
	var st *unix.TpacketStats
	cerr := s.rc.Control(func(fd uintptr) {
		st, err = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	})
	if cerr != nil {
		return 0, 0, cerr
	}
	if err != nil {
		return 0, 0, err
	}
	return st.Packets, st.Drops, nil
}

// Close closes the socket; a ReadFrame in progress returns os.ErrClosed.
func (s *Sniffer) Close() error {
	s.closed.Store(true)
	return s.f.Close()
}
