// Package nethttp serves the metrics of package metrics through net/http,
// for a program that links net/http anyway. slided itself uses
// metrics.Serve, which does not (net/http would add megabytes to the
// binary).
package nethttp

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"

	"github.com/slided/slided/metrics"
	"github.com/slided/slided/status"
)

// Handler serves GET (and HEAD) /metrics from get, which returns the
// current status; it is called once per request, from the request's
// goroutine. An error from get gives 503 with its text. Other paths give
// 404, other methods 405.
func Handler(get func() (*status.Snapshot, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		st, err := get()
		if err == nil && st == nil {
			err = errors.New("no status")
		}
		if err != nil {
			http.Error(w, "slided status unavailable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		var buf bytes.Buffer
		if err := metrics.Write(&buf, st); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", metrics.ContentType)
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		if r.Method == http.MethodGet {
			w.Write(buf.Bytes())
		}
	})
}
