// Package smoke is the release's load gate: a bounded number of requests at
// a bounded concurrency against a slot before it is swapped in, failing on
// errors or on a p95 latency over a threshold (the talk's advice to load-test
// before committing, built in).
package smoke

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/djdeploy/djdeploy/internal/problem"
)

// Options say what to send.
type Options struct {
	BaseURL     string   // the slot's URL, e.g. https://app-staging.azurewebsites.net
	Paths       []string // requested round-robin ("" : "/")
	Requests    int      // total requests (0: the gate is off)
	Concurrency int      // requests in flight (0: 4)
	MaxP95      time.Duration
	// MaxErrors is how many failed requests are tolerated (default 0).
	MaxErrors int
	// OK decides whether a status counts as a success (nil: 2xx and 3xx).
	OK func(status int) bool
}

// Result is what the gate measured.
type Result struct {
	Requests int           `json:"requests"`
	Errors   int           `json:"errors"`
	P50      time.Duration `json:"p50"`
	P95      time.Duration `json:"p95"`
	Max      time.Duration `json:"max"`
	// FirstError describes one failure, for the message.
	FirstError string `json:"first_error,omitempty"`
}

// Run sends the requests and returns the measurements, and a failure
// (*problem.Error) when the gate is not passed.
func Run(ctx context.Context, client *http.Client, o Options) (*Result, error) {
	if o.Requests <= 0 {
		return &Result{}, nil
	}
	conc := o.Concurrency
	if conc <= 0 {
		conc = 4
	}
	conc = min(conc, o.Requests)
	paths := o.Paths
	if len(paths) == 0 {
		paths = []string{"/"}
	}
	ok := o.OK
	if ok == nil {
		ok = func(s int) bool { return s >= 200 && s < 400 }
	}
	base := strings.TrimRight(o.BaseURL, "/")

	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, o.Requests)
		res       = &Result{Requests: o.Requests}
	)
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				if !strings.HasPrefix(p, "/") {
					p = "/" + p
				}
				d, err := one(ctx, client, base+p, ok)
				mu.Lock()
				latencies = append(latencies, d)
				if err != nil {
					res.Errors++
					if res.FirstError == "" {
						res.FirstError = err.Error()
					}
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < o.Requests; i++ {
		select {
		case jobs <- paths[i%len(paths)]:
		case <-ctx.Done():
			close(jobs)
			wg.Wait()
			return res, ctx.Err()
		}
	}
	close(jobs)
	wg.Wait()

	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	res.P50 = percentile(latencies, 50)
	res.P95 = percentile(latencies, 95)
	res.Max = latencies[len(latencies)-1]

	if res.Errors > o.MaxErrors {
		return res, problem.Failf("look at the slot's logs; production was not touched",
			"smoke gate: %d of %d requests to %s failed (first: %s)", res.Errors, res.Requests, base, res.FirstError)
	}
	if o.MaxP95 > 0 && res.P95 > o.MaxP95 {
		return res, problem.Failf("find what is slow on the slot, or raise smoke-max-p95; production was not touched",
			"smoke gate: p95 latency %s is over the %s threshold (%d requests, %d at once)",
			res.P95.Round(time.Millisecond), o.MaxP95, res.Requests, conc)
	}
	return res, nil
}

func one(ctx context.Context, client *http.Client, url string, ok func(int) bool) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return time.Since(start), fmt.Errorf("GET %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	d := time.Since(start)
	if !ok(resp.StatusCode) {
		return d, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return d, nil
}

// percentile uses the nearest-rank method on sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}
