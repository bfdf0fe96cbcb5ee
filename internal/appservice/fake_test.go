package appservice

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/progress"
)

const (
	testSub   = "00000000-0000-0000-0000-000000000001"
	testRG    = "rg"
	testApp   = "app"
	testSlot  = "staging"
	testToken = "test-access-token-xyz"
)

// fake is an ARM server (under a base path, to catch absolute-URL bugs)
// and one server for the app's hosts: the SCM site and the slot's default
// host answer on "localhost:port", production's on "127.0.0.1:port".
type fake struct {
	t    *testing.T
	arm  *httptest.Server
	mux  *http.ServeMux // ARM, paths without the /arm prefix
	host *httptest.Server
	hmux *http.ServeMux // SCM and app hosts

	mu       sync.Mutex
	requests []string // "METHOD path" of every request, both servers
	bodies   map[string][]byte
}

func (f *fake) slotHost() string {
	return "localhost:" + f.host.Listener.Addr().String()[strings.LastIndex(f.host.Listener.Addr().String(), ":")+1:]
}
func (f *fake) prodHost() string { return f.host.Listener.Addr().String() }

func setup(t *testing.T) (*fake, *Client, *progress.Lines, *bytes.Buffer) {
	t.Helper()
	f := &fake{t: t, mux: http.NewServeMux(), hmux: http.NewServeMux(), bodies: map[string][]byte{}}
	record := func(next http.Handler, strip string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if got := r.Header.Get("Authorization"); strings.HasPrefix(r.URL.Path, strip+"/subscriptions") || strings.HasPrefix(r.URL.Path, "/api/") {
				if got != "Bearer "+testToken {
					t.Errorf("%s %s: Authorization = %q", r.Method, r.URL.Path, got)
				}
			}
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			f.mu.Lock()
			key := r.Method + " " + strings.TrimPrefix(r.URL.Path, strip)
			f.requests = append(f.requests, key)
			f.bodies[key] = body
			f.mu.Unlock()
			if strip != "" {
				if !strings.HasPrefix(r.URL.Path, strip+"/") {
					t.Errorf("ARM request outside the base path: %s", r.URL.Path)
					http.NotFound(w, r)
					return
				}
				r.URL.Path = strings.TrimPrefix(r.URL.Path, strip)
			}
			next.ServeHTTP(w, r)
		})
	}
	f.arm = httptest.NewServer(record(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }), "/arm"))
	t.Cleanup(f.arm.Close)
	f.host = httptest.NewServer(record(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.hmux.ServeHTTP(w, r) }), ""))
	t.Cleanup(f.host.Close)

	// The site and slot resources.
	site := func(host, scm string) map[string]any {
		return map[string]any{"properties": map[string]any{
			"state":           "Running",
			"defaultHostName": host,
			"serverFarmId":    "/subscriptions/" + testSub + "/resourceGroups/" + testRG + "/providers/Microsoft.Web/serverfarms/plan",
			"hostNameSslStates": []map[string]any{
				{"name": host, "hostType": "Standard"},
				{"name": scm, "hostType": "Repository"},
			},
		}}
	}
	f.handle("GET "+sitePath(""), func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, site(f.prodHost(), f.prodHost()))
	})
	f.handle("GET "+sitePath(testSlot), func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, site(f.slotHost(), f.slotHost()))
	})

	cfg := azure.Config{ARMEndpoint: f.arm.URL + "/arm"}
	opts, err := cfg.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts.Retry.RetryDelay = time.Millisecond
	opts.Retry.MaxRetryDelay = 5 * time.Second
	var out bytes.Buffer
	log := &progress.Lines{W: &syncWriter{w: &out}}
	c, err := New(testSub, azure.StaticToken(testToken), opts, &http.Client{Timeout: 5 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	c.PollInterval = time.Millisecond
	c.MaxPollInterval = 5 * time.Millisecond
	return f, c, log, &out
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func sitePath(slot string) string {
	p := "/subscriptions/" + testSub + "/resourceGroups/" + testRG + "/providers/Microsoft.Web/sites/" + testApp
	if slot != "" {
		p += "/slots/" + slot
	}
	return p
}

// handle registers an ARM handler ("METHOD /path").
func (f *fake) handle(pattern string, h http.HandlerFunc) { f.mux.HandleFunc(pattern, h) }

// handleHost registers a handler on the app hosts.
func (f *fake) handleHost(pattern string, h http.HandlerFunc) { f.hmux.HandleFunc(pattern, h) }

func (f *fake) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if r == key {
			n++
		}
	}
	return n
}

func (f *fake) body(key string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[key]
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// sequence returns a handler answering with each function in turn, the
// last one forever.
func sequence(hs ...http.HandlerFunc) http.HandlerFunc {
	var mu sync.Mutex
	i := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := hs[min(i, len(hs)-1)]
		i++
		mu.Unlock()
		h(w, r)
	}
}

func status(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}
