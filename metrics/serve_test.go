package metrics

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slided/slided/status"
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
func startServe(t *testing.T, get func() (*status.Snapshot, error)) *pipeListener {
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
	okGet := func() (*status.Snapshot, error) { return fullStatus(), nil }
	tests := []struct {
		desc       string
		get        func() (*status.Snapshot, error)
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
		{desc: "status error", get: func() (*status.Snapshot, error) { return nil, errors.New("daemon stopping") },
			raw: "GET /metrics HTTP/1.1\r\n\r\n", method: "GET", wantCode: 503, wantInBody: "daemon stopping"},
		{desc: "nil status", get: func() (*status.Snapshot, error) { return nil, nil },
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

// TestServeStalledClient: a client that connects and sends nothing is
// dropped after the head time-out.
func TestServeStalledClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := &Server{Get: func() (*status.Snapshot, error) { return fullStatus(), nil }, HeadTimeout: time.Second}
		go s.Serve(ctx, ln)
		stalled := ln.dial(t)
		defer stalled.Close()
		start := time.Now()
		if _, err := stalled.Read(make([]byte, 1)); err == nil {
			t.Fatal("a stalled client got an answer")
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("stalled client dropped after %v, want the head time-out, 1s", d)
		}
	})
}

// TestServeSequentialScrapes checks that the reused buffers give the same
// answer each time.
func TestServeSequentialScrapes(t *testing.T) {
	ln := startServe(t, func() (*status.Snapshot, error) { return fullStatus(), nil })
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
	err := Serve(context.Background(), ln, func() (*status.Snapshot, error) { return fullStatus(), nil })
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("got %v, want net.ErrClosed", err)
	}
}

// TestServeConcurrentScrapes: a client that connects and sends nothing does
// not delay another scrape; it is still connected when the scrape is answered.
func TestServeConcurrentScrapes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := startServe(t, func() (*status.Snapshot, error) { return fullStatus(), nil })
		stalled := ln.dial(t)
		defer stalled.Close()
		var hungUp atomic.Bool
		go func() {
			io.Copy(io.Discard, stalled)
			hungUp.Store(true)
		}()
		resp, _ := exchange(t, ln, "GET /metrics HTTP/1.1\r\n\r\n", "GET")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		synctest.Wait()
		if hungUp.Load() {
			t.Error("the scrape was answered only after the stalled client was dropped")
		}
	})
}

// TestServeConnectionCap: with every slot held by clients that send
// nothing, a new scrape is still answered: the client that has waited
// longest without a request is dropped for it.
func TestServeConnectionCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := startServe(t, func() (*status.Snapshot, error) { return fullStatus(), nil })
		var stalled []net.Conn
		for range DefaultMaxConns {
			c := ln.dial(t)
			defer c.Close()
			stalled = append(stalled, c)
			time.Sleep(time.Millisecond) // an order to evict by
		}
		resp, _ := exchange(t, ln, "GET /metrics HTTP/1.1\r\n\r\n", "GET")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		if _, err := stalled[0].Read(make([]byte, 1)); err == nil {
			t.Error("the oldest idle client is still connected")
		}
	})
}

// flakyListener fails its first Accept with a non-timeout error (as
// EMFILE would) and then behaves as the pipeListener it wraps.
type flakyListener struct {
	*pipeListener
	failed atomic.Bool
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if !l.failed.Swap(true) {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.pipeListener.Accept()
}

// TestServeAcceptErrorRetries: a non-timeout accept error is retried after
// a pause instead of ending the endpoint.
func TestServeAcceptErrorRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := &flakyListener{pipeListener: newPipeListener()}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		var errs []error
		s := &Server{Get: func() (*status.Snapshot, error) { return fullStatus(), nil },
			OnAcceptError: func(err error) { errs = append(errs, err) }}
		go func() { done <- s.Serve(ctx, ln) }()
		resp, _ := exchange(t, ln.pipeListener, "GET /metrics HTTP/1.1\r\n\r\n", "GET")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if len(errs) != 1 || !errors.Is(errs[0], syscall.EMFILE) {
			t.Errorf("accept errors reported: %v, want the one EMFILE", errs)
		}
	})
}
