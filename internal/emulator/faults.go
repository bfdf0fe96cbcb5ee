package emulator

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

var discardLog = log.New(io.Discard, "", 0)

// Fault makes requests that match Method and Path fail, Count times.
//
// Path is a pattern over the URL path (no query): '*' matches any run of
// characters, '/' included, and matching ignores case; e.g. "*/slotsswap",
// "/api/publish", "*/purge". Method "" or "*" matches any method.
type Fault struct {
	Method string `json:"method,omitempty"`
	Path   string `json:"path"`
	// Status answers with this HTTP status (409, 429, 500, 503, ...) and an
	// ARM error body (text/plain on Kudu hosts).
	Status int `json:"status,omitempty"`
	// RetryAfter, in seconds, is sent as Retry-After with Status.
	RetryAfter int `json:"retryAfter,omitempty"`
	// Drop hijacks the connection and closes it without a response.
	Drop bool `json:"drop,omitempty"`
	// Delay waits before answering (then Status, Drop, or the real answer).
	Delay time.Duration `json:"delay,omitempty"`
	// Count is how many matching requests fail: 0 means 1, negative means
	// every one until cleared.
	Count int `json:"count,omitempty"`
	// Host limits the fault to one kind of host: arm, scm, site, cdn, auth
	// ("" = any).
	Host string `json:"host,omitempty"`
}

// Faults is the set of pending faults of an emulator.
type Faults struct {
	emu  *Emulator
	mu   sync.Mutex
	list []*activeFault
}

type activeFault struct {
	Fault
	left int // remaining; <0 = unlimited
	re   *regexp.Regexp
	hits int
}

// Add installs a fault.
func (f *Faults) Add(x Fault) {
	left := x.Count
	if left == 0 {
		left = 1
	}
	if x.Method == "*" {
		x.Method = ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = append(f.list, &activeFault{Fault: x, left: left, re: patternRE(x.Path)})
}

// Clear removes every fault.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = nil
}

// Pending lists the faults not yet used up.
func (f *Faults) Pending() []Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Fault
	for _, a := range f.list {
		x := a.Fault
		x.Count = a.left
		out = append(out, x)
	}
	return out
}

// take returns the fault that applies to a request, using one of its counts.
func (f *Faults) take(kind string, r *http.Request) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, a := range f.list {
		if a.Method != "" && !strings.EqualFold(a.Method, r.Method) {
			continue
		}
		if a.Host != "" && !strings.EqualFold(a.Host, kind) {
			continue
		}
		if !a.re.MatchString(r.URL.Path) {
			continue
		}
		x := a.Fault
		a.hits++
		if a.left > 0 {
			a.left--
			if a.left == 0 {
				f.list = append(f.list[:i:i], f.list[i+1:]...)
			}
		}
		return &x
	}
	return nil
}

// patternRE compiles a '*' pattern, anchored at both ends, case-insensitive.
func patternRE(p string) *regexp.Regexp {
	parts := strings.Split(p, "*")
	for i, s := range parts {
		parts[i] = regexp.QuoteMeta(s)
	}
	return regexp.MustCompile("(?i)^" + strings.Join(parts, ".*") + "$")
}

// ParseFault reads the --fault flag form ROUTE=SPEC, where ROUTE is
// "[METHOD ]PATH" and SPEC is comma-separated: a status code or "drop",
// then options count=N, retry-after=S, delay=DURATION, host=KIND.
//
//	POST */slotsswap=429,retry-after=1,count=2
//	/api/publish=drop
//	*/purge=503,count=-1
//	GET */sites/*=delay=3s
func ParseFault(s string) (Fault, error) {
	route, spec, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(route) == "" || spec == "" {
		return Fault{}, fmt.Errorf("fault %q: want ROUTE=SPEC, e.g. 'POST */slotsswap=429,retry-after=1'", s)
	}
	var f Fault
	route = strings.TrimSpace(route)
	if m, p, ok := strings.Cut(route, " "); ok {
		f.Method, f.Path = strings.ToUpper(m), strings.TrimSpace(p)
	} else {
		f.Path = route
	}
	for i, tok := range strings.Split(spec, ",") {
		tok = strings.TrimSpace(tok)
		k, v, hasV := strings.Cut(tok, "=")
		switch {
		case i == 0 && !hasV && tok == "drop":
			f.Drop = true
		case i == 0 && !hasV:
			n, err := strconv.Atoi(tok)
			if err != nil || n < 100 || n > 599 {
				return f, fmt.Errorf("fault %q: %q is not an HTTP status or 'drop'", s, tok)
			}
			f.Status = n
		case k == "count":
			n, err := strconv.Atoi(v)
			if err != nil {
				return f, fmt.Errorf("fault %q: bad count %q", s, v)
			}
			f.Count = n
		case k == "retry-after":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return f, fmt.Errorf("fault %q: bad retry-after %q (seconds)", s, v)
			}
			f.RetryAfter = n
		case k == "delay":
			d, err := time.ParseDuration(v)
			if err != nil {
				return f, fmt.Errorf("fault %q: bad delay %q (e.g. 2s)", s, v)
			}
			f.Delay = d
		case k == "host":
			f.Host = v
		default:
			return f, fmt.Errorf("fault %q: unknown option %q (count, retry-after, delay, host)", s, tok)
		}
	}
	if f.Status == 0 && !f.Drop && f.Delay == 0 {
		return f, fmt.Errorf("fault %q: give a status, 'drop' or delay=", s)
	}
	return f, nil
}

type requestRecord struct {
	Kind   string
	Method string
	Path   string
	Status int
	At     time.Time
}

// Requests counts the requests (on any host) whose method and path match,
// with the pattern rules of Fault.Path ("" or "*" method = any).
func (e *Emulator) Requests(method, pathPattern string) int {
	re := patternRE(pathPattern)
	e.reqMu.Lock()
	defer e.reqMu.Unlock()
	n := 0
	for _, r := range e.reqs {
		if (method == "" || method == "*" || strings.EqualFold(method, r.Method)) && re.MatchString(r.Path) {
			n++
		}
	}
	return n
}

// RequestsBetween is Requests for the requests that arrived in [from, to).
func (e *Emulator) RequestsBetween(method, pathPattern string, from, to time.Time) int {
	re := patternRE(pathPattern)
	e.reqMu.Lock()
	defer e.reqMu.Unlock()
	n := 0
	for _, r := range e.reqs {
		if (method == "" || method == "*" || strings.EqualFold(method, r.Method)) && re.MatchString(r.Path) &&
			!r.At.Before(from) && r.At.Before(to) {
			n++
		}
	}
	return n
}

// ResetRequests forgets the counted requests.
func (e *Emulator) ResetRequests() {
	e.reqMu.Lock()
	e.reqs = nil
	e.reqMu.Unlock()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(c int) {
	if s.status == 0 {
		s.status = c
	}
	s.ResponseWriter.WriteHeader(c)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = 200
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// instrument counts requests and applies faults before the real handler.
// Admin requests are neither counted nor faulted.
func (e *Emulator) instrument(kind string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if kind == "arm" && strings.HasPrefix(r.URL.Path, "/_emulator/") {
			h.ServeHTTP(w, r)
			return
		}
		// Counted on arrival, so a request held by a delay already counts.
		rec := &requestRecord{Kind: kind, Method: r.Method, Path: r.URL.Path, At: time.Now()}
		e.reqMu.Lock()
		e.reqs = append(e.reqs, rec)
		e.reqMu.Unlock()
		if f := e.faults.take(kind, r); f != nil {
			e.logf("fault: %s %s %s -> %s", kind, r.Method, r.URL.Path, describeFault(f))
			if f.Delay > 0 {
				select {
				case <-time.After(f.Delay):
				case <-r.Context().Done():
					return
				}
			}
			switch {
			case f.Drop:
				rec.Status = -1
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						c.Close()
						return
					}
				}
				panic(http.ErrAbortHandler)
			case f.Status != 0:
				rec.Status = f.Status
				if f.RetryAfter > 0 {
					w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
				}
				msg := fmt.Sprintf("emulator fault: %d for %s %s", f.Status, r.Method, r.URL.Path)
				if kind == "arm" {
					armError(w, f.Status, faultCode(f.Status), msg)
				} else {
					textError(w, f.Status, msg)
				}
				return
			}
		}
		sr := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(sr, r)
		rec.Status = sr.status
	})
}

func faultCode(status int) string {
	switch status {
	case 409:
		return "Conflict"
	case 429:
		return "TooManyRequests"
	case 500:
		return "InternalServerError"
	case 502:
		return "BadGateway"
	case 503:
		return "ServiceUnavailable"
	}
	return http.StatusText(status)
}

func describeFault(f *Fault) string {
	var parts []string
	if f.Delay > 0 {
		parts = append(parts, "delay "+f.Delay.String())
	}
	if f.Drop {
		parts = append(parts, "drop")
	}
	if f.Status != 0 {
		parts = append(parts, strconv.Itoa(f.Status))
	}
	return strings.Join(parts, ", ")
}
