package nethttp

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/slided/slided/bridge"
	"github.com/slided/slided/metrics"
	"github.com/slided/slided/status"
)

func fullStatus() *status.Snapshot {
	return &status.Snapshot{Interface: "slide0", Backpressure: "kernel (IFF_BACKPRESSURE)",
		Bridge: &bridge.Stats{Node: 7, Up: true, TxFrames: 2}}
}

func TestHandler(t *testing.T) {
	okGet := func() (*status.Snapshot, error) { return fullStatus(), nil }
	tests := []struct {
		desc       string
		method     string
		path       string
		get        func() (*status.Snapshot, error)
		wantCode   int
		wantType   string
		wantInBody string
	}{
		{desc: "get metrics", method: "GET", path: "/metrics", get: okGet,
			wantCode: 200, wantType: metrics.ContentType, wantInBody: `slided_tx_frames_total{interface="slide0"} 2`},
		{desc: "head metrics", method: "HEAD", path: "/metrics", get: okGet, wantCode: 200, wantType: metrics.ContentType},
		{desc: "post refused", method: "POST", path: "/metrics", get: okGet, wantCode: 405},
		{desc: "other path", method: "GET", path: "/", get: okGet, wantCode: 404},
		{desc: "status error", method: "GET", path: "/metrics",
			get:      func() (*status.Snapshot, error) { return nil, errors.New("daemon stopping") },
			wantCode: 503, wantInBody: "daemon stopping"},
		{desc: "nil status", method: "GET", path: "/metrics",
			get:      func() (*status.Snapshot, error) { return nil, nil },
			wantCode: 503, wantInBody: "no status"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Handler(tc.get).ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantCode, rec.Body)
			}
			if tc.wantType != "" && rec.Header().Get("Content-Type") != tc.wantType {
				t.Errorf("Content-Type %q, want %q", rec.Header().Get("Content-Type"), tc.wantType)
			}
			if !strings.Contains(rec.Body.String(), tc.wantInBody) {
				t.Errorf("body lacks %q:\n%s", tc.wantInBody, rec.Body)
			}
			if tc.method == "HEAD" && rec.Body.Len() != 0 {
				t.Errorf("HEAD returned a %d-byte body", rec.Body.Len())
			}
		})
	}
}
