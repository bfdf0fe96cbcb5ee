// Package faults holds djdeploy's fault matrix (matrix_test.go) and the
// pieces it is built from: BlobProxy, a fault-injecting reverse proxy for
// Blob Storage.
//
// Azurite never answers the way Blob Storage does under load (503
// ServerBusy, 500 OperationTimedOut, dropped connections), and the emulator
// only fronts ARM, Kudu and the CDN. BlobProxy stands between djdeploy and
// Azurite on loopback and answers a share, or the next N, of the requests a
// Rule matches with Blob Storage's own error answers: the status, the
// x-ms-error-code header and the XML error body the SDK parses.
package faults

import (
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Rule makes matching requests fail.
type Rule struct {
	// Method matches the HTTP method ("" = any).
	Method string
	// PathContains matches a substring of the URL path ("" = any).
	PathContains string
	// Query matches requests whose raw query contains this ("" = any),
	// e.g. "comp=lease", "comp=blocklist".
	Query string
	// Match, when set, decides instead of the fields above.
	Match func(r *http.Request) bool

	// Status and Code are the answer, e.g. 503 "ServerBusy" or 500
	// "OperationTimedOut"; Retry-After is sent when RetryAfter > 0.
	Status     int
	Code       string
	RetryAfter int
	// ARM answers with Resource Manager's JSON error body instead of Blob
	// Storage's XML (the proxy then fronts ARM, e.g. for the purge load).
	ARM bool
	// Drop closes the connection without an answer.
	Drop bool
	// Delay waits before answering (then the fault, or the real answer).
	Delay time.Duration
	// Before runs once per matching request before anything else (a test
	// kills Azurite from here).
	Before func(r *http.Request)

	// Count is how many matching requests fail: 0 means 1, negative means
	// every one (see Share).
	Count int
	// Share, when > 0, fails only this fraction of matching requests
	// (e.g. 0.05), picked at random; Count still bounds the total.
	Share float64
}

type activeRule struct {
	Rule
	left int
	hits atomic.Int64
}

// BlobProxy is a reverse proxy to a Blob service with injected faults.
type BlobProxy struct {
	target *url.URL
	srv    *http.Server
	ln     net.Listener
	rp     *httputil.ReverseProxy

	mu       sync.Mutex
	rules    []*activeRule
	faults   atomic.Int64 // faulty answers given
	requests atomic.Int64 // requests seen

	outMu    sync.Mutex
	outcomes map[string]int64 // see Outcomes
}

// NewBlobProxy serves a proxy to blobEndpoint (e.g.
// http://127.0.0.1:10000/devstoreaccount1; only scheme and host are used)
// on a free loopback port until Close.
func NewBlobProxy(blobEndpoint string) (*BlobProxy, error) {
	u, err := url.Parse(blobEndpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("blob endpoint %q is not a URL", blobEndpoint)
	}
	p := &BlobProxy{target: &url.URL{Scheme: u.Scheme, Host: u.Host}}
	p.rp = httputil.NewSingleHostReverseProxy(p.target)
	// Keep-alives to Azurite are pooled like a client's; a Blob service
	// that went away is a dropped connection to the client, not a 502
	// from a proxy Azure does not have.
	p.rp.Transport = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	p.rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		p.count("dropped (Blob service unreachable)")
		drop(w)
	}
	p.rp.ModifyResponse = func(resp *http.Response) error {
		p.count(fmt.Sprintf("%s %d", resp.Request.Method, resp.StatusCode))
		return nil
	}
	p.rp.ErrorLog = discardLog()
	if p.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 30 * time.Second, ErrorLog: discardLog()}
	go func() { _ = p.srv.Serve(p.ln) }()
	return p, nil
}

// URL is the proxy's base URL (scheme and host).
func (p *BlobProxy) URL() string { return "http://" + p.ln.Addr().String() }

// Close stops the proxy.
func (p *BlobProxy) Close() error { return p.srv.Close() }

// Add installs a rule; rules are tried in order.
func (p *BlobProxy) Add(r Rule) {
	left := r.Count
	if left == 0 {
		left = 1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &activeRule{Rule: r, left: left})
}

// Clear removes every rule.
func (p *BlobProxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Faults is how many faulty answers (including drops) the proxy gave.
func (p *BlobProxy) Faults() int64 { return p.faults.Load() }

// Requests is how many requests the proxy saw.
func (p *BlobProxy) Requests() int64 { return p.requests.Load() }

// ResetCounts zeroes Faults, Requests and Outcomes.
func (p *BlobProxy) ResetCounts() {
	p.faults.Store(0)
	p.requests.Store(0)
	p.outMu.Lock()
	p.outcomes = nil
	p.outMu.Unlock()
}

// Outcomes counts the answers the proxy gave by kind: "<METHOD> <status>"
// for answers passed on from the Blob service, "injected <status> <code>"
// and "injected drop" for faults, "dropped (Blob service unreachable)"
// when the service did not answer.
func (p *BlobProxy) Outcomes() map[string]int64 {
	p.outMu.Lock()
	defer p.outMu.Unlock()
	out := make(map[string]int64, len(p.outcomes))
	for k, v := range p.outcomes {
		out[k] = v
	}
	return out
}

func (p *BlobProxy) count(kind string) {
	p.outMu.Lock()
	defer p.outMu.Unlock()
	if p.outcomes == nil {
		p.outcomes = map[string]int64{}
	}
	p.outcomes[kind]++
}

// ConnectionString rewrites a storage connection string's BlobEndpoint to
// go through the proxy. The account path is kept, so Shared Key signatures
// (computed over the path) still verify at Azurite.
func (p *BlobProxy) ConnectionString(orig string) string {
	var parts []string
	for _, kv := range strings.Split(orig, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(k, "BlobEndpoint") {
			u, err := url.Parse(v)
			if err == nil {
				kv = "BlobEndpoint=" + p.URL() + u.Path
			}
		}
		parts = append(parts, kv)
	}
	return strings.Join(parts, ";")
}

func (r *activeRule) matches(q *http.Request) bool {
	if r.Match != nil {
		return r.Match(q)
	}
	if r.Method != "" && !strings.EqualFold(r.Method, q.Method) {
		return false
	}
	if r.PathContains != "" && !strings.Contains(q.URL.Path, r.PathContains) {
		return false
	}
	if r.Query != "" && !strings.Contains(q.URL.RawQuery, r.Query) {
		return false
	}
	return true
}

// take returns the rule that fails this request, using one of its counts.
func (p *BlobProxy) take(q *http.Request) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.rules {
		if !r.matches(q) {
			continue
		}
		if r.Share > 0 && rand.Float64() >= r.Share {
			continue
		}
		x := r.Rule
		r.hits.Add(1)
		if r.left > 0 {
			r.left--
			if r.left == 0 {
				p.rules = append(p.rules[:i:i], p.rules[i+1:]...)
			}
		}
		return &x
	}
	return nil
}

func (p *BlobProxy) serve(w http.ResponseWriter, q *http.Request) {
	p.requests.Add(1)
	f := p.take(q)
	if f == nil {
		p.rp.ServeHTTP(w, q)
		return
	}
	if f.Before != nil {
		f.Before(q)
	}
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-q.Context().Done():
			return
		}
	}
	switch {
	case f.Drop:
		p.faults.Add(1)
		p.count("injected drop")
		_, _ = io.Copy(io.Discard, q.Body)
		drop(w)
	case f.Status != 0:
		p.faults.Add(1)
		p.count(fmt.Sprintf("injected %d %s", f.Status, f.Code))
		_, _ = io.Copy(io.Discard, q.Body)
		if f.ARM {
			ARMError(w, f.Status, f.Code, f.RetryAfter)
		} else {
			BlobError(w, f.Status, f.Code, f.RetryAfter)
		}
	default:
		p.rp.ServeHTTP(w, q)
	}
}

// BlobError writes Blob Storage's error answer: status, x-ms-error-code and
// the XML body, e.g. 503 ServerBusy "The server is busy." or 500
// OperationTimedOut.
func BlobError(w http.ResponseWriter, status int, code string, retryAfter int) {
	msg := map[string]string{
		"ServerBusy":        "The server is busy.",
		"OperationTimedOut": "The operation could not be completed within the permitted time.",
		"InternalError":     "The server encountered an internal error. Please retry the request.",
	}[code]
	if msg == "" {
		msg = "Injected by djdeploy's fault proxy."
	}
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("x-ms-error-code", code)
	h.Set("x-ms-request-id", fmt.Sprintf("fault-%d", time.Now().UnixNano()))
	h.Set("x-ms-version", "2023-11-03")
	if retryAfter > 0 {
		h.Set("Retry-After", fmt.Sprint(retryAfter))
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>%s\nRequestId:fault\nTime:%s</Message></Error>",
		code, msg, time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"))
}

// ARMError writes Resource Manager's error answer: status, x-ms-failure-cause
// and {"error":{"code","message"}}, e.g. 429 TooManyRequests.
func ARMError(w http.ResponseWriter, status int, code string, retryAfter int) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("x-ms-failure-cause", "gateway")
	h.Set("x-ms-request-id", fmt.Sprintf("fault-%d", time.Now().UnixNano()))
	if retryAfter > 0 {
		h.Set("Retry-After", fmt.Sprint(retryAfter))
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":"Injected by djdeploy's fault proxy."}}`, code)
}

// drop closes the client's connection without an answer.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
