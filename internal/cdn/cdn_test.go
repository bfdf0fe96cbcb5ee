package cdn

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/problem"
)

const (
	sub = "00000000-0000-0000-0000-000000000001"
	rg  = "rg"
)

type fakeARM struct {
	srv      *httptest.Server
	mux      *http.ServeMux
	mu       sync.Mutex
	purges   []map[string]any // bodies of purge POSTs
	polls    int
	throttle int // answer this many purge POSTs with 429 first
}

func profilePath(p string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.Cdn/profiles/" + p
}

func setup(t *testing.T, sku string) (*fakeARM, *Purger) {
	t.Helper()
	f := &fakeARM{mux: http.NewServeMux()}
	f.srv = httptest.NewServer(http.StripPrefix("/arm", f.mux))
	t.Cleanup(f.srv.Close)
	f.mux.HandleFunc("GET "+profilePath("prof"), func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"sku": map[string]any{"name": sku}})
	})
	f.mux.HandleFunc("GET "+profilePath("prof")+"/endpoints/ep", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"properties": map[string]any{"originPath": "/static"}})
	})
	purge := func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		if f.throttle > 0 {
			f.throttle--
			f.mu.Unlock()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"code":"TooManyRequests","message":"slow down"}}`)
			return
		}
		f.purges = append(f.purges, body)
		n := len(f.purges)
		f.mu.Unlock()
		w.Header().Set("Azure-AsyncOperation", fmt.Sprintf("%s/arm/subscriptions/%s/providers/Microsoft.Cdn/operationresults/op%d?api-version=2024-02-01", f.srv.URL, sub, n))
		w.WriteHeader(http.StatusAccepted)
	}
	f.mux.HandleFunc("POST "+profilePath("prof")+"/endpoints/ep/purge", purge)
	f.mux.HandleFunc("POST "+profilePath("prof")+"/afdEndpoints/ep/purge", purge)
	f.mux.HandleFunc("GET /subscriptions/"+sub+"/providers/Microsoft.Cdn/operationresults/{op}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.polls++
		n := f.polls
		f.mu.Unlock()
		if n%2 == 1 {
			json.NewEncoder(w).Encode(map[string]any{"status": "InProgress"})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "Succeeded"})
	})
	opts, err := azure.Config{ARMEndpoint: f.srv.URL + "/arm"}.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts.Retry.RetryDelay = time.Millisecond
	p, err := New(sub, azure.StaticToken("tok"), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.PollFrequency = time.Millisecond
	return f, p
}

func manyPaths(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("/static/d%d/f%03d.css", i%3, i))
	}
	return out
}

func TestPurgeBatches250PathsInto3Requests(t *testing.T) {
	f, p := setup(t, "Standard_Microsoft")
	res, err := p.Purge(context.Background(), Request{ResourceGroup: rg, Profile: "prof", Endpoint: "ep", Paths: manyPaths(250)})
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if res.Kind != Classic || res.Requests != 3 || res.Collapsed || !res.Waited {
		t.Errorf("result = %+v", res)
	}
	if len(f.purges) != 3 {
		t.Fatalf("purge requests = %d", len(f.purges))
	}
	total := 0
	for _, b := range f.purges {
		n := len(b["contentPaths"].([]any))
		if n > 100 {
			t.Errorf("a request carries %d paths", n)
		}
		if _, ok := b["domains"]; ok {
			t.Error("classic purge sent domains")
		}
		total += n
	}
	if total != 250 {
		t.Errorf("paths sent = %d", total)
	}
	if f.polls < 3 {
		t.Errorf("operations polled %d times; the purge was not waited for", f.polls)
	}
}

func TestFrontDoorPurgeWithDomains(t *testing.T) {
	f, p := setup(t, "Premium_AzureFrontDoor")
	res, err := p.Purge(context.Background(), Request{ResourceGroup: rg, Profile: "prof", Endpoint: "ep",
		Paths: []string{"static/app.css", "/static/app.css?v=2"}, Domains: []string{"www.example.com"}})
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if res.Kind != FrontDoor || len(f.purges) != 1 {
		t.Fatalf("result = %+v, purges = %v", res, f.purges)
	}
	b := f.purges[0]
	if !reflect.DeepEqual(b["contentPaths"], []any{"/static/app.css"}) || !reflect.DeepEqual(b["domains"], []any{"www.example.com"}) {
		t.Errorf("body = %v", b)
	}
}

func TestPurgeNoWait(t *testing.T) {
	f, p := setup(t, "Standard_AzureFrontDoor")
	res, err := p.Purge(context.Background(), Request{ResourceGroup: rg, Profile: "prof", Endpoint: "ep", Paths: []string{"/a.css"}, NoWait: true})
	if err != nil || res.Waited {
		t.Fatalf("Purge: %+v, %v", res, err)
	}
	if f.polls != 0 {
		t.Errorf("polled %d times with --no-wait", f.polls)
	}
}

func TestPurgeRetriesThrottled(t *testing.T) {
	f, p := setup(t, "Standard_Microsoft")
	f.throttle = 1
	if _, err := p.Purge(context.Background(), Request{ResourceGroup: rg, Profile: "prof", Endpoint: "ep", Paths: []string{"/a.css"}}); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if len(f.purges) != 1 {
		t.Errorf("purges = %d", len(f.purges))
	}
}

func TestPurgeCollapsesWhenTooMany(t *testing.T) {
	f, p := setup(t, "Standard_Microsoft")
	res, err := p.Purge(context.Background(), Request{ResourceGroup: rg, Profile: "prof", Endpoint: "ep", Paths: manyPaths(250), MaxRequests: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/static/d0/*", "/static/d1/*", "/static/d2/*"}
	if !res.Collapsed || !reflect.DeepEqual(res.Paths, want) || len(f.purges) != 1 {
		t.Errorf("result = %+v", res)
	}
}

func TestPurgeDomainsOnClassicIsUsage(t *testing.T) {
	_, p := setup(t, "Standard_Microsoft")
	_, err := p.Purge(context.Background(), Request{ResourceGroup: rg, Profile: "prof", Endpoint: "ep", Paths: []string{"/a"}, Domains: []string{"x"}})
	if problem.ExitCode(err) != problem.ExitUsage {
		t.Errorf("err = %v", err)
	}
}

func TestPurgeNotFound(t *testing.T) {
	_, p := setup(t, "Standard_Microsoft")
	_, err := p.Purge(context.Background(), Request{ResourceGroup: rg, Profile: "prof", Endpoint: "nope", Paths: []string{"/a"}})
	pe, ok := problem.As(err)
	if !ok || !strings.Contains(pe.Fix, "endpoint names") {
		t.Errorf("err = %v", err)
	}
}

func TestCollapse(t *testing.T) {
	tests := []struct {
		name  string
		in    []string
		limit int
		want  []string
	}{
		{"under limit", []string{"/a/b.css", "/c.css"}, 5, []string{"/a/b.css", "/c.css"}},
		{"deepest first", []string{"/s/x/1.css", "/s/x/2.css", "/s/y/1.css", "/s/z.css"}, 3, []string{"/s/x/*", "/s/y/*", "/s/z.css"}},
		{"up a level", []string{"/s/x/1", "/s/y/1", "/t/z/1"}, 2, []string{"/s/*", "/t/*"}},
		{"root", []string{"/a/1", "/b/1", "/c/1"}, 2, []string{"/*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Collapse(tt.in, tt.limit); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Collapse = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBlobNamesToPaths(t *testing.T) {
	tests := []struct {
		name, container, origin string
		in, want, skipped       []string
	}{
		{"origin is the container", "static", "/static", []string{"css/a.css"}, []string{"/css/a.css"}, nil},
		{"origin is container and prefix", "static", "/static/v1", []string{"v1/css/a.css", "other/x"}, []string{"/css/a.css"}, []string{"other/x"}},
		{"no origin path", "static", "", []string{"css/a.css"}, []string{"/static/css/a.css"}, nil},
		{"static website", "$web", "", []string{"css/a.css"}, []string{"/css/a.css"}, nil},
		// '#' and '?' once cut the path (".../hash", ".../q"): encoded as
		// the pages link them, the purge names the cached URL.
		{"characters a URL rewrites", "static", "/static", []string{"hash#tag.css", "q?mark.css", "a b.css", "café/x+y.css", "~ok!(1)'.js"},
			[]string{"/hash%23tag.css", "/q%3Fmark.css", "/a%20b.css", "/caf%C3%A9/x%2By.css", "/~ok!(1)'.js"}, nil},
		// Azure refuses '*' but at the end: the folder's wildcard instead.
		{"names Azure cannot purge", "static", "/static", []string{"img/a*b.png", "img/c*d.png", "x*y/z.css", "top*.css"},
			[]string{"/img/*", "/*"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skipped := BlobNamesToPaths(tt.in, tt.container, tt.origin)
			if !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(skipped, tt.skipped) {
				t.Errorf("got %v skipped %v; want %v skipped %v", got, skipped, tt.want, tt.skipped)
			}
		})
	}
}

func TestNormalizePathsRefusesInnerWildcards(t *testing.T) {
	for _, p := range []string{"/static/a*b.css", "/static/*.css", "/st*/x.css"} {
		_, err := NormalizePaths([]string{p})
		if pe, ok := problem.As(err); !ok || !pe.Usage || !strings.Contains(err.Error(), p) {
			t.Errorf("NormalizePaths(%q) = %v, want a usage error naming it", p, err)
		}
	}
	if got, err := NormalizePaths([]string{"/static/*", "/*"}); err != nil || len(got) != 2 {
		t.Errorf("final wildcards: %v %v", got, err)
	}
}

func TestNormalizePaths(t *testing.T) {
	got, err := NormalizePaths([]string{" a.css ", "", "# comment", "/a.css?x=1", "https://cdn.example.net/b/c.js"})
	if err != nil || !reflect.DeepEqual(got, []string{"/a.css", "/b/c.js"}) {
		t.Errorf("NormalizePaths = %v, %v", got, err)
	}
}
