package metrics

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/slided/slided/control"
)

// connTimeout bounds one scrape (reading the request and writing the
// answer), so a client that connects and stalls holds Serve that long at
// most. A variable for tests.
var connTimeout = 10 * time.Second

// maxRequestHead is the largest request line plus headers Serve reads.
const maxRequestHead = 8 << 10

// Serve answers HTTP scrapes of /metrics on ln until ctx is done, then
// closes ln and returns nil; it returns the error if Accept fails for any
// other reason. get is called once per GET or HEAD /metrics, from Serve's
// goroutine; an error from it is answered with 503 and its text.
//
// Serve is a deliberately small HTTP/1.0 and 1.1 responder: it handles one
// connection at a time (scrapes are seconds apart; connTimeout bounds a
// stalled client), reads one request, answers with Connection: close, and
// closes the connection. Other paths get 404, other methods 405, malformed
// or oversized requests 400. Its helper goroutine, which closes ln when ctx
// is done, has exited when Serve returns.
func Serve(ctx context.Context, ln net.Listener, get func() (*control.Status, error)) error {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() { // exits when ctx is done or Serve returns
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-done:
		}
		ln.Close()
	}()
	defer func() {
		close(done)
		<-stopped
	}()

	var body bytes.Buffer
	br := bufio.NewReaderSize(nil, 1024)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("metrics: accept: %w", err)
		}
		c.SetDeadline(time.Now().Add(connTimeout))
		br.Reset(c)
		serveConn(c, br, &body, get)
		c.Close()
	}
}

// serveConn reads one request from br and writes the answer to c. body is
// a buffer reused across scrapes.
func serveConn(c io.Writer, br *bufio.Reader, body *bytes.Buffer, get func() (*control.Status, error)) {
	method, path, err := readRequest(br)
	if err != nil {
		respond(c, "400 Bad Request", "text/plain; charset=utf-8", []byte(err.Error()+"\n"), true, "")
		return
	}
	if path != "/metrics" {
		respond(c, "404 Not Found", "text/plain; charset=utf-8", []byte("not found: try /metrics\n"), method != "HEAD", "")
		return
	}
	if method != "GET" && method != "HEAD" {
		respond(c, "405 Method Not Allowed", "text/plain; charset=utf-8", []byte("method not allowed\n"), true, "Allow: GET, HEAD\r\n")
		return
	}
	st, err := get()
	if err == nil && st == nil {
		err = errors.New("no status")
	}
	if err != nil {
		respond(c, "503 Service Unavailable", "text/plain; charset=utf-8",
			[]byte("slided status unavailable: "+err.Error()+"\n"), method == "GET", "")
		return
	}
	body.Reset()
	if err := Write(body, st); err != nil {
		respond(c, "500 Internal Server Error", "text/plain; charset=utf-8", []byte(err.Error()+"\n"), method == "GET", "")
		return
	}
	respond(c, "200 OK", ContentType, body.Bytes(), method == "GET", "")
}

// readRequest reads the request line and skips the headers (a scrape has
// no body). It returns the method and the path without its query.
func readRequest(br *bufio.Reader) (method, path string, err error) {
	n := 0
	var first string
	for {
		line, err := br.ReadSlice('\n')
		n += len(line)
		if n > maxRequestHead {
			return "", "", errors.New("request head too large")
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
		return "", "", fmt.Errorf("malformed request line %q", first)
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
