// Package control is the daemon's control socket: a Unix stream socket on
// which a client writes one command line and reads one JSON document back.
// `slided status` is its client.
//
// Protocol: the client sends a line such as "status\n"; the server answers
// with one JSON object and a newline, then closes the connection. An unknown
// command gets {"error": "..."}. A client that sends nothing, junk or more
// than MaxRequest bytes is answered with an error or dropped after a deadline;
// the daemon's data path never waits for a control client.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// MaxRequest is the longest command line the server reads.
const MaxRequest = 256

// Handler answers one command. It is called from the connection's goroutine,
// so it must be safe to call concurrently with the data path.
type Handler func() (any, error)

// Server serves commands on a Unix socket.
type Server struct {
	ln       *net.UnixListener
	path     string
	handlers map[string]Handler
	log      zerolog.Logger
	wg       sync.WaitGroup
}

// Listen creates the socket at path (replacing a stale socket left by a dead
// daemon, refusing to replace anything else) with mode 0660: the socket is not
// world-writable.
func Listen(path string, handlers map[string]Handler, log zerolog.Logger) (*Server, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another daemon is serving it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket: remove stale %s: %w", path, err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: chmod %s: %w", path, err)
	}
	return &Server{ln: ln, path: path, handlers: handlers, log: log}, nil
}

// Serve accepts clients until ctx is done, then closes the listener, removes
// the socket and waits for the connections' goroutines (each ends within its
// deadline).
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		s.ln.Close()
	}()
	defer func() {
		s.wg.Wait()
		os.Remove(s.path)
	}()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("control socket: accept: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReaderSize(io.LimitReader(c, MaxRequest), MaxRequest).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		s.log.Debug().Err(err).Msg("control client gave no command")
		writeJSON(c, map[string]string{"error": "expected one command line, such as \"status\""})
		return
	}
	cmd := strings.TrimSpace(line)
	h, ok := s.handlers[cmd]
	if !ok {
		writeJSON(c, map[string]string{"error": fmt.Sprintf("unknown command %q", truncate(cmd, 32))})
		return
	}
	v, err := h()
	if err != nil {
		writeJSON(c, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(c, v)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func writeJSON(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	w.Write(append(b, '\n'))
}

// Query sends cmd to the daemon at path and returns its JSON answer. An
// answer of the form {"error": "..."} becomes an error.
func Query(path, cmd string, timeout time.Duration) (json.RawMessage, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, fmt.Errorf("connect to control socket: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return nil, fmt.Errorf("send %q: %w", cmd, err)
	}
	b, err := io.ReadAll(io.LimitReader(c, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return nil, fmt.Errorf("daemon: %s", e.Error)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("answer is not JSON: %q", truncate(string(b), 64))
	}
	return json.RawMessage(b), nil
}
