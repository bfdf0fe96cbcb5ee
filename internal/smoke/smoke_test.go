package smoke

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/problem"
)

func TestRunCountsEveryRequestAndPasses(t *testing.T) {
	var hits atomic.Int64
	seen := make(chan string, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		seen <- r.URL.Path
	}))
	defer srv.Close()
	res, err := Run(context.Background(), srv.Client(), Options{BaseURL: srv.URL, Paths: []string{"/", "healthz"}, Requests: 20, Concurrency: 3})
	if err != nil {
		t.Fatalf("gate failed on a healthy server: %v", err)
	}
	if hits.Load() != 20 || res.Requests != 20 || res.Errors != 0 {
		t.Fatalf("hits=%d res=%+v, want 20 requests and no errors", hits.Load(), res)
	}
	close(seen)
	paths := map[string]int{}
	for p := range seen {
		paths[p]++
	}
	if paths["/"] != 10 || paths["/healthz"] != 10 {
		t.Fatalf("paths not sent round-robin: %v", paths)
	}
	if res.P95 < res.P50 || res.Max < res.P95 {
		t.Fatalf("percentiles out of order: %+v", res)
	}
}

func TestRunFailsOnErrors(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	res, err := Run(context.Background(), srv.Client(), Options{BaseURL: srv.URL, Requests: 8, Concurrency: 2})
	if err == nil {
		t.Fatal("gate passed although requests failed")
	}
	if p, ok := problem.As(err); !ok || p.Usage {
		t.Fatalf("want a failure (exit 1), got %#v", err)
	}
	if res.Errors != 2 || !strings.Contains(res.FirstError, "503") {
		t.Fatalf("errors=%d first=%q, want 2 and a 503", res.Errors, res.FirstError)
	}
}

// The threshold belongs to the feature under test; the server's delay is
// far above it so the outcome never depends on the machine's speed.
func TestRunFailsOnSlowP95(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
	}))
	defer srv.Close()
	_, err := Run(context.Background(), srv.Client(), Options{BaseURL: srv.URL, Requests: 4, Concurrency: 4, MaxP95: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "p95") {
		t.Fatalf("want a p95 failure, got %v", err)
	}
}

func TestRunOffWhenNoRequests(t *testing.T) {
	res, err := Run(context.Background(), http.DefaultClient, Options{BaseURL: "http://127.0.0.1:1"})
	if err != nil || res.Requests != 0 {
		t.Fatalf("gate with 0 requests should do nothing: %+v %v", res, err)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if percentile(d, 95) != 95 || percentile(d, 50) != 50 || percentile(d[:1], 95) != 1 {
		t.Fatalf("nearest-rank percentile wrong: p95=%d p50=%d", percentile(d, 95), percentile(d, 50))
	}
}
