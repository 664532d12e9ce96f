package metrics

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slided/slided/control"
)

// pipeListener is a net.Listener over in-memory pipes: Serve is tested
// without any socket.
type pipeListener struct {
	conns     chan net.Conn
	closeOnce sync.Once
	closed    chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial connects a client end; Serve accepts the other.
func (l *pipeListener) dial(t *testing.T) net.Conn {
	t.Helper()
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c
	case <-time.After(time.Minute):
		t.Fatal("Serve did not accept within a minute")
		return nil
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// startServe runs Serve until the test ends and returns its listener.
func startServe(t *testing.T, get func() (*control.Status, error)) *pipeListener {
	t.Helper()
	ln := newPipeListener()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, get) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v after cancel, want nil", err)
		}
		select {
		case <-ln.closed:
		default:
			t.Error("listener still open after Serve returned")
		}
	})
	return ln
}

// exchange sends raw on a new connection and reads the response.
func exchange(t *testing.T, ln *pipeListener, raw, method string) (*http.Response, string) {
	t.Helper()
	c := ln.dial(t)
	defer c.Close()
	go func() { io.WriteString(c, raw) }() // a pipe write blocks until read
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(body)
}

func TestServe(t *testing.T) {
	okGet := func() (*control.Status, error) { return fullStatus(), nil }
	tests := []struct {
		desc       string
		get        func() (*control.Status, error)
		raw        string
		method     string
		wantCode   int
		wantType   string
		wantInBody string
		wantEmpty  bool
	}{
		{desc: "get metrics", get: okGet, raw: "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", method: "GET",
			wantCode: 200, wantType: ContentType, wantInBody: `slided_tx_frames_total{interface="slide0"} 2`},
		{desc: "http/1.0 and a query", get: okGet, raw: "GET /metrics?x=1 HTTP/1.0\n\n", method: "GET",
			wantCode: 200, wantType: ContentType, wantInBody: "# TYPE slided_up gauge"},
		{desc: "head", get: okGet, raw: "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", method: "HEAD",
			wantCode: 200, wantType: ContentType, wantEmpty: true},
		{desc: "post refused", get: okGet, raw: "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", method: "POST",
			wantCode: 405, wantInBody: "method not allowed"},
		{desc: "other path", get: okGet, raw: "GET / HTTP/1.1\r\n\r\n", method: "GET",
			wantCode: 404, wantInBody: "/metrics"},
		{desc: "malformed request line", get: okGet, raw: "hello\r\n\r\n", method: "GET",
			wantCode: 400, wantInBody: "malformed"},
		{desc: "oversized head", get: okGet,
			raw:    "GET /metrics HTTP/1.1\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 100)+"\r\n", 100) + "\r\n",
			method: "GET", wantCode: 400, wantInBody: "too large"},
		{desc: "status error", get: func() (*control.Status, error) { return nil, errors.New("daemon stopping") },
			raw: "GET /metrics HTTP/1.1\r\n\r\n", method: "GET", wantCode: 503, wantInBody: "daemon stopping"},
		{desc: "nil status", get: func() (*control.Status, error) { return nil, nil },
			raw: "GET /metrics HTTP/1.1\r\n\r\n", method: "GET", wantCode: 503, wantInBody: "no status"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			ln := startServe(t, tc.get)
			resp, body := exchange(t, ln, tc.raw, tc.method)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d, want %d: %q", resp.StatusCode, tc.wantCode, body)
			}
			if tc.wantType != "" && resp.Header.Get("Content-Type") != tc.wantType {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.wantType)
			}
			if !resp.Close {
				t.Error("response does not say Connection: close")
			}
			if !strings.Contains(body, tc.wantInBody) {
				t.Errorf("body lacks %q:\n%s", tc.wantInBody, body)
			}
			if tc.wantEmpty && body != "" {
				t.Errorf("HEAD returned a %d-byte body", len(body))
			}
			if tc.wantCode == 200 && tc.method == "GET" {
				parseText(t, body)
			}
		})
	}
}

// TestServeStalledClient: a client that connects and sends nothing holds
// Serve for connTimeout at most; the next scrape is then answered.
func TestServeStalledClient(t *testing.T) {
	old := connTimeout
	connTimeout = 50 * time.Millisecond
	t.Cleanup(func() { connTimeout = old })
	ln := startServe(t, func() (*control.Status, error) { return fullStatus(), nil })
	stalled := ln.dial(t)
	defer stalled.Close()
	resp, _ := exchange(t, ln, "GET /metrics HTTP/1.1\r\n\r\n", "GET")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d after a stalled client, want 200", resp.StatusCode)
	}
}

// TestServeSequentialScrapes checks that the reused buffers give the same
// answer each time.
func TestServeSequentialScrapes(t *testing.T) {
	ln := startServe(t, func() (*control.Status, error) { return fullStatus(), nil })
	_, first := exchange(t, ln, "GET /metrics HTTP/1.1\r\n\r\n", "GET")
	for range 3 {
		if _, body := exchange(t, ln, "GET /metrics HTTP/1.1\r\n\r\n", "GET"); body != first {
			t.Fatal("a later scrape differs from the first")
		}
	}
}

func TestServeListenerError(t *testing.T) {
	ln := newPipeListener()
	ln.Close()
	err := Serve(context.Background(), ln, func() (*control.Status, error) { return fullStatus(), nil })
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("got %v, want net.ErrClosed", err)
	}
}
