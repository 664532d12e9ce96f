package metrics

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slided/slided/status"
)

// Defaults of Server's limits.
const (
	// DefaultMaxConns is how many connections a Server serves at once.
	DefaultMaxConns = 8
	// DefaultHeadTimeout bounds reading a request head.
	DefaultHeadTimeout = 5 * time.Second
	// DefaultConnTimeout bounds a whole connection: request and answer.
	DefaultConnTimeout = 10 * time.Second
)

// Pauses after an accept error that is not a time-out, doubling from the
// first to the last (as net/http does).
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// maxRequestHead is the largest request line plus headers Serve reads.
const maxRequestHead = 8 << 10

// Server answers HTTP scrapes of /metrics. It is a deliberately small
// HTTP/1.0 and 1.1 responder (net/http would add megabytes to the binary;
// see the package comment): each connection gets one request, an answer
// with Connection: close, and is closed. Other paths get 404, other methods
// 405, malformed or oversized requests 400.
//
// Connections are served concurrently, each on its own goroutine, at most
// MaxConns at once. A connection has HeadTimeout to send its request head
// and ConnTimeout in all. When all slots are taken, a new connection takes
// the slot of the one that has waited longest for its request head (a
// client that connects and sends nothing cannot keep scrapes out); if every
// slot is answering, the new connection gets 503.
type Server struct {
	// Get returns the status to expose; it is called once per GET or HEAD
	// /metrics, from the connection's goroutine, so possibly from several
	// goroutines at once. An error is answered with 503 and its text.
	Get func() (*status.Snapshot, error)
	// MaxConns, HeadTimeout and ConnTimeout: 0 means the default.
	MaxConns                 int
	HeadTimeout, ConnTimeout time.Duration
	// OnAcceptError, if set, is told of each accept error that Serve
	// retries (for the log); it is called from Serve's goroutine.
	OnAcceptError func(error)

	mu    sync.Mutex
	conns map[*conn]struct{}
}

// conn is one connection being served; reading is true until its request
// head is read.
type conn struct {
	c       net.Conn
	since   time.Time
	reading bool
}

// Serve answers scrapes with a Server with the default limits; see
// Server.Serve.
func Serve(ctx context.Context, ln net.Listener, get func() (*status.Snapshot, error)) error {
	return (&Server{Get: get}).Serve(ctx, ln)
}

// Serve accepts connections on ln until ctx is done, then closes ln and
// every open connection and returns nil once their goroutines have exited.
// An accept error that is not a time-out is retried after a pause that
// doubles from 5 ms to 1 s; only a closed listener (net.ErrClosed) ends
// Serve early, with that error. Serve may be called once per Server.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	maxConns := cmp.Or(s.MaxConns, DefaultMaxConns)
	headTimeout := cmp.Or(s.HeadTimeout, DefaultHeadTimeout)
	connTimeout := cmp.Or(s.ConnTimeout, DefaultConnTimeout)
	s.mu.Lock()
	s.conns = make(map[*conn]struct{})
	s.mu.Unlock()

	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer func() {
		stop()
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.c.Close()
		}
		s.mu.Unlock()
		wg.Wait() // every connection goroutine has exited
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("metrics: accept: %w", err)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if s.OnAcceptError != nil {
				s.OnAcceptError(err)
			}
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		backoff = 0
		now := time.Now()
		c := &conn{c: nc, since: now, reading: true}
		if !s.admit(c, maxConns) {
			nc.SetDeadline(now.Add(time.Second))
			respond(nc, "503 Service Unavailable", "text/plain; charset=utf-8", []byte("too many connections\n"), true, "")
			nc.Close()
			continue
		}
		nc.SetDeadline(now.Add(connTimeout))
		nc.SetReadDeadline(now.Add(min(headTimeout, connTimeout)))
		wg.Add(1)
		go func() { // exits when the answer is written or the connection fails
			defer wg.Done()
			defer s.drop(c)
			var body bytes.Buffer
			s.serveConn(c, bufio.NewReaderSize(nc, 1024), &body)
		}()
	}
}

// admit registers c, first closing the connection that has waited longest
// for its request head if maxConns are open. It reports false if every
// open connection is past its request head.
func (s *Server) admit(c *conn, maxConns int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) >= maxConns {
		var oldest *conn
		for o := range s.conns {
			if o.reading && (oldest == nil || o.since.Before(oldest.since)) {
				oldest = o
			}
		}
		if oldest == nil {
			return false
		}
		delete(s.conns, oldest)
		oldest.c.Close() // its goroutine's read fails; it then exits
	}
	s.conns[c] = struct{}{}
	return true
}

// drop closes c and forgets it.
func (s *Server) drop(c *conn) {
	c.c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// serveConn reads one request from br and writes the answer to c.
func (s *Server) serveConn(c *conn, br *bufio.Reader, body *bytes.Buffer) {
	method, path, err := readRequest(br)
	s.mu.Lock()
	c.reading = false
	s.mu.Unlock()
	if errors.Is(err, errBadRequest) {
		respond(c.c, "400 Bad Request", "text/plain; charset=utf-8", []byte(err.Error()+"\n"), true, "")
		return
	}
	if err != nil { // the client hung up, timed out or was dropped: no answer
		return
	}
	get := s.Get
	if path != "/metrics" {
		respond(c.c, "404 Not Found", "text/plain; charset=utf-8", []byte("not found: try /metrics\n"), method != "HEAD", "")
		return
	}
	if method != "GET" && method != "HEAD" {
		respond(c.c, "405 Method Not Allowed", "text/plain; charset=utf-8", []byte("method not allowed\n"), true, "Allow: GET, HEAD\r\n")
		return
	}
	st, err := get()
	if err == nil && st == nil {
		err = errors.New("no status")
	}
	if err != nil {
		respond(c.c, "503 Service Unavailable", "text/plain; charset=utf-8",
			[]byte("slided status unavailable: "+err.Error()+"\n"), method == "GET", "")
		return
	}
	body.Reset()
	if err := Write(body, st); err != nil {
		respond(c.c, "500 Internal Server Error", "text/plain; charset=utf-8", []byte(err.Error()+"\n"), method == "GET", "")
		return
	}
	respond(c.c, "200 OK", ContentType, body.Bytes(), method == "GET", "")
}

// errBadRequest marks the errors of readRequest that get 400; the others
// are read errors, which get no answer.
var errBadRequest = errors.New("bad request")

// readRequest reads the request line and skips the headers (a scrape has
// no body). It returns the method and the path without its query.
func readRequest(br *bufio.Reader) (method, path string, err error) {
	n := 0
	var first string
	for {
		line, err := br.ReadSlice('\n')
		n += len(line)
		if n > maxRequestHead {
			return "", "", fmt.Errorf("%w: request head too large", errBadRequest)
		}
		if err != nil {
			return "", "", fmt.Errorf("read request: %w", err)
		}
		s := strings.TrimRight(string(line), "\r\n")
		if first == "" {
			if s == "" { // tolerate a leading empty line (RFC 9112 2.2)
				continue
			}
			first = s
			continue
		}
		if s == "" {
			break
		}
	}
	parts := strings.Split(first, " ")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") || parts[0] == "" || !strings.HasPrefix(parts[1], "/") {
		return "", "", fmt.Errorf("%w: malformed request line %q", errBadRequest, first)
	}
	path, _, _ = strings.Cut(parts[1], "?")
	return parts[0], path, nil
}

// respond writes a whole response; extra is more header lines, each ending
// in CRLF.
func respond(w io.Writer, status, contentType string, body []byte, withBody bool, extra string) {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 " + status + "\r\n")
	b.WriteString("Content-Type: " + contentType + "\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	b.WriteString("Connection: close\r\n")
	b.WriteString(extra)
	b.WriteString("\r\n")
	if withBody {
		b.Write(body)
	}
	w.Write(b.Bytes())
}
