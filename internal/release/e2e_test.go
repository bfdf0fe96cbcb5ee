package release_test

// End-to-end tests of `djdeploy release`: the real CLI wiring (cli.Main),
// the real build (Debian's Django), the emulator's ARM, Kudu, CDN and app
// hosts running the example app under gunicorn, and Azurite for Blob.
//
// Every failure test asserts the promise of the release over HTTP, not
// through our own clients: production still serves the previous release's
// page, and every static file that page links answers through the CDN.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

const (
	app  = "demo-app"
	slot = "staging"
)

// harness is one emulator (with its Azurite) shared by the subtests of one
// test function, run in sequence.
type harness struct {
	emu    *emulator.Emulator
	py     string
	env    map[string]string
	blob   *azblob.Client
	cont   string
	prefix string
	http   *http.Client
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	py := e2e.Require(t, "end-to-end test")
	// Each test function has its own emulator and Azurite, and most of a
	// release is waiting (deploys, retries, timeouts): they overlap well.
	t.Parallel()
	emu := e2e.Emulator(t, py)
	h := &harness{emu: emu, py: py, env: e2e.Env(emu, py), http: &http.Client{Timeout: 30 * time.Second}}
	h.cont, h.prefix = h.env["DJDEPLOY_STATIC_CONTAINER"], h.env["DJDEPLOY_STATIC_PREFIX"]
	var err error
	if h.blob, err = azblob.NewClientFromConnectionString(emu.StorageConnectionString(), nil); err != nil {
		t.Fatal(err)
	}
	return h
}

func writeFile(t *testing.T, dir, rel, body string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// run is one `djdeploy` invocation through cli.Main with the emulator's
// export block (plus extra, where "" deletes a variable) as environment.
type run struct {
	e2e.Result
	rep *report.Release
}

func (h *harness) djdeploy(t *testing.T, extra map[string]string, args ...string) run {
	t.Helper()
	return run{Result: e2e.Main(context.Background(), e2e.With(h.env, extra), args...)}
}

// releaseArgs are the settings every release here uses: short timeouts so
// failure paths end fast (none is asserted on).
func releaseArgs(dir string, more ...string) []string {
	return append([]string{"release", "--project", dir, "--fix-settings", "--json",
		"--health-path", "/healthz", "--warmup-timeout", "20s", "--verify-timeout", "20s",
		"--deploy-timeout", "2m", "--swap-timeout", "2m", "--purge-timeout", "1m", "--lock-timeout", "30s"}, more...)
}

// release runs `djdeploy release --json` and decodes the report.
func (h *harness) release(t *testing.T, extra map[string]string, dir string, more ...string) run {
	t.Helper()
	return withReport(t, h.djdeploy(t, extra, releaseArgs(dir, more...)...))
}

// startBinary starts the djdeploy binary bin with env (and the runner's
// PATH and HOME), its stderr kept: for tests that kill a run.
func startBinary(t *testing.T, bin string, env map[string]string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"), "HOME="+os.Getenv("HOME"))
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stderr
}

// withReport decodes the report a release or rollback printed with --json.
func withReport(t *testing.T, r run) run {
	t.Helper()
	if strings.TrimSpace(r.Stdout) != "" {
		rep := &report.Release{}
		if ok, err := e2e.DecodeResult(r.Stdout, rep); err != nil {
			t.Fatalf("stdout is not the JSON envelope: %v\n%s", err, r)
		} else if ok {
			r.rep = rep
		}
	}
	return r
}

// mustSucceed fails the test unless the release succeeded.
func mustSucceed(t *testing.T, r run) *report.Release {
	t.Helper()
	if r.Code != 0 || r.rep == nil || r.rep.Outcome != report.Succeeded {
		t.Fatalf("release did not succeed: %s", r)
	}
	return r.rep
}

// mustFailAt checks the release failed at step with exit 1 and a report
// that names the step.
func mustFailAt(t *testing.T, r run, step string) *report.Release {
	t.Helper()
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1: %s", r.Code, r)
	}
	if r.rep == nil {
		t.Fatalf("no JSON report on a failed release: %s", r)
	}
	if r.rep.Outcome != report.Failed || r.rep.FailedStep != step {
		t.Fatalf("outcome %q, failed step %q, want failed at %q: %s", r.rep.Outcome, r.rep.FailedStep, step, r)
	}
	if st := stepOf(r.rep, step); st.Status != report.StepFailed || st.Detail == "" {
		t.Errorf("step %s in the report: %+v", step, st)
	}
	if !strings.Contains(r.Stderr, "error:") {
		t.Errorf("no error line on stderr: %s", r)
	}
	return r.rep
}

func stepOf(rep *report.Release, name string) report.Step {
	for _, s := range rep.Steps {
		if s.Name == name {
			return s
		}
	}
	return report.Step{}
}

type page = e2e.Page

func (h *harness) get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	code, hdr, body, err := e2e.Get(h.http, url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return code, hdr, body
}

// production reads production's home page over HTTP.
func (h *harness) production(t *testing.T) page {
	t.Helper()
	p, err := e2e.Production(h.http, h.emu, app)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// cdnBase is where the pages must link their static files: the CDN
// endpoint of the export block, then the static prefix.
func (h *harness) cdnBase() string {
	return h.emu.CDNURL(h.env["DJDEPLOY_CDN_PROFILE"], h.env["DJDEPLOY_CDN_ENDPOINT"]) + "/"
}

// assertServes checks production serves release id (when not "") and that
// every static file its page links (and every url() those css files
// reference) answers 200 through the CDN with the right content type.
func (h *harness) assertServes(t *testing.T, id string) page {
	t.Helper()
	p := h.production(t)
	if id != "" && p.Release != id {
		t.Fatalf("production serves release %q, want %q", p.Release, id)
	}
	for _, problem := range e2e.CheckStatic(h.http, p, h.cdnBase()) {
		t.Error(problem)
	}
	return p
}

// blobs lists the static prefix's blobs (not djdeploy's own state) with
// their ETags.
func (h *harness) blobs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	pager := h.blob.NewListBlobsFlatPager(h.cont, &azblob.ListBlobsFlatOptions{Prefix: &h.prefix})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatalf("listing blobs: %v", err)
		}
		for _, b := range page.Segment.BlobItems {
			name := *b.Name
			if strings.HasPrefix(strings.TrimPrefix(name, h.prefix), ".djdeploy/") {
				continue
			}
			out[name] = string(*b.Properties.ETag)
		}
	}
	return out
}

// allBlobs lists the whole container, djdeploy's state included.
func (h *harness) allBlobs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	pager := h.blob.NewListBlobsFlatPager(h.cont, nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatalf("listing blobs: %v", err)
		}
		for _, b := range page.Segment.BlobItems {
			out[*b.Name] = string(*b.Properties.ETag)
		}
	}
	return out
}

// changedBlobs are the names that are new or have a new ETag.
func changedBlobs(before, after map[string]string) []string {
	var out []string
	for k, v := range after {
		if before[k] != v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func hashedName(name string) bool {
	// Django's ManifestStaticFilesStorage: name.<12 hex>.ext
	return regexp.MustCompile(`\.[0-9a-f]{12}\.[A-Za-z0-9]+$`).MatchString(name)
}

// TestReleaseFirstThenOneChange covers the demo: a first release, then a
// second one after editing one template and one css file that another
// css file references through url().
func TestReleaseFirstThenOneChange(t *testing.T) {
	h := newHarness(t)
	dir := e2e.Project(t, "django-app")
	// theme.css references site.css through url(): editing site.css must
	// re-upload theme.css's hashed copy (its rewritten reference changes)
	// and nothing else of it.
	writeFile(t, dir, "pages/static/pages/css/theme.css", "@import url(\"site.css\");\n.banner h1 { letter-spacing: 0.02em; }\n")

	var first *report.Release
	var firstBlobs map[string]string
	t.Run("first release", func(t *testing.T) {
		r := h.release(t, nil, dir)
		first = mustSucceed(t, r)
		for _, s := range first.Steps {
			if s.Status == report.StepFailed || s.Status == report.StepNotRun {
				t.Errorf("step %s: %s", s.Name, s.Status)
			}
		}
		for _, s := range []string{"lock", "build", "static-sync", "deploy", "warm-up", "swap", "purge", "prune"} {
			if st := stepOf(first, s); st.Status != report.StepDone && !(s == "purge" && st.Status == report.StepSkipped) {
				t.Errorf("step %s: %+v", s, st)
			}
		}
		if first.ReleaseID == "" || first.StaticUploaded == 0 || first.URL == "" || first.DeploymentID == "" {
			t.Errorf("report: %+v", first)
		}
		if !strings.HasPrefix(first.StaticURL, h.cdnBase()) {
			t.Errorf("static URL %q is not on the CDN endpoint %s", first.StaticURL, h.cdnBase())
		}
		p := h.assertServes(t, first.ReleaseID)
		if !strings.Contains(p.Body, "Hello from Django on App Service") {
			t.Errorf("production serves another page:\n%s", p.Body)
		}
		firstBlobs = h.blobs(t)
		for _, want := range []string{"pages/css/site.css", "pages/css/theme.css", "pages/js/site.js", "pages/img/logo.svg", "staticfiles.json", "admin/css/base.css"} {
			if _, ok := firstBlobs[h.prefix+want]; !ok {
				t.Errorf("%s%s is not in the container", h.prefix, want)
			}
		}
		// Fetched through the CDN now, so it is cached there: the second
		// release must purge it for the edit to show.
		if code, _, body := h.get(t, strings.TrimSuffix(first.StaticURL, "/")+"/pages/css/site.css"); code != 200 || !strings.Contains(body, "#0b6bcb") {
			t.Errorf("CDN: pages/css/site.css answers %d:\n%s", code, body)
		}
		if len(firstBlobs) != first.StaticUploaded {
			t.Errorf("%d blobs in the container, report says %d uploaded", len(firstBlobs), first.StaticUploaded)
		}
	})
	if first == nil {
		t.FailNow()
	}

	t.Run("second release with one change", func(t *testing.T) {
		e2e.Edit(t, dir, "pages/templates/pages/home.html", "Hello from Django on App Service", "Hello again from Django on App Service")
		e2e.Edit(t, dir, "pages/static/pages/css/site.css", "--accent: #0b6bcb;", "--accent: #c0392b;")
		h.emu.ResetRequests()
		r := h.release(t, nil, dir)
		second := mustSucceed(t, r)
		if second.ReleaseID == first.ReleaseID {
			t.Fatalf("the edit did not change the release id %s", second.ReleaseID)
		}
		p := h.assertServes(t, second.ReleaseID)
		if !strings.Contains(p.Body, "Hello again from Django on App Service") {
			t.Errorf("production does not show the edited template:\n%s", p.Body)
		}

		// Exactly the collected files whose content changed were uploaded,
		// as the container's ETags show.
		changed := changedBlobs(firstBlobs, h.blobs(t))
		t.Logf("uploaded: %v; purged: %v", changed, second.PurgedPaths)
		var rel []string
		for _, c := range changed {
			rel = append(rel, strings.TrimPrefix(c, h.prefix))
		}
		var unhashed []string
		siteNew, themeNew := 0, 0
		for _, c := range rel {
			switch {
			case c == "pages/css/site.css" || c == "staticfiles.json":
				unhashed = append(unhashed, c)
			case strings.HasPrefix(c, "pages/css/site.") && hashedName(c):
				siteNew++
			case strings.HasPrefix(c, "pages/css/theme.") && hashedName(c):
				themeNew++
			default:
				t.Errorf("uploaded %s, whose content did not change", c)
			}
		}
		if len(unhashed) != 2 || siteNew != 1 || themeNew != 1 {
			t.Errorf("uploaded %v; want site.css, its new hashed copy, theme.css's new hashed copy and staticfiles.json", rel)
		}
		var reported []string
		for _, c := range second.StaticChanged {
			reported = append(reported, strings.TrimPrefix(c, "/"))
		}
		sort.Strings(reported)
		if strings.Join(reported, " ") != strings.Join(changed, " ") {
			t.Errorf("report's changed files %v, the container's %v", second.StaticChanged, changed)
		}
		if second.StaticUploaded != len(changed) {
			t.Errorf("report says %d uploaded, the container changed %d: %v", second.StaticUploaded, len(changed), rel)
		}
		if second.StaticSkipped == 0 {
			t.Errorf("report says nothing was unchanged: %+v", second)
		}

		// Only the changed names without a content hash were purged.
		if len(second.PurgedPaths) != len(unhashed) {
			t.Errorf("purged %v, want the %d changed un-hashed paths %v", second.PurgedPaths, len(unhashed), unhashed)
		}
		sawSite := false
		for _, pp := range second.PurgedPaths {
			if hashedName(pp) {
				t.Errorf("purged hashed name %s (a new URL that nothing cached)", pp)
			}
			if strings.HasSuffix(pp, "/pages/css/site.css") {
				sawSite = true
			}
		}
		if !sawSite {
			t.Errorf("purged %v, not the edited pages/css/site.css", second.PurgedPaths)
		}
		st := h.emu.State()
		var purges [][]string
		for _, ep := range st.CDN {
			purges = append(purges, ep.Purges...)
		}
		if len(purges) == 0 {
			t.Errorf("the CDN saw no purge")
		}
		// The CDN now serves the edited un-hashed css, not its cached copy.
		code, _, body := h.get(t, strings.TrimSuffix(second.StaticURL, "/")+"/pages/css/site.css")
		if code != 200 || !strings.Contains(body, "#c0392b") {
			t.Errorf("CDN serves the old pages/css/site.css (%d):\n%s", code, body)
		}
	})

	// Re-running the first release's job (a common way to roll back) puts
	// it live again, and the CDN must stop serving the second release's
	// un-hashed css, though the first release purged once already.
	t.Run("re-running the first release rolls back, CDN included", func(t *testing.T) {
		e2e.Edit(t, dir, "pages/templates/pages/home.html", "Hello again from Django on App Service", "Hello from Django on App Service")
		e2e.Edit(t, dir, "pages/static/pages/css/site.css", "--accent: #c0392b;", "--accent: #0b6bcb;")
		rep := mustSucceed(t, h.release(t, nil, dir))
		if rep.ReleaseID != first.ReleaseID {
			t.Fatalf("the reverted project built release %s, not the first release %s", rep.ReleaseID, first.ReleaseID)
		}
		h.assertServes(t, first.ReleaseID)
		code, _, body := h.get(t, strings.TrimSuffix(rep.StaticURL, "/")+"/pages/css/site.css")
		if code != 200 || !strings.Contains(body, "#0b6bcb") {
			t.Errorf("CDN serves the second release's pages/css/site.css after the rollback (%d; purge: %+v):\n%s", code, stepOf(rep, "purge"), body)
		}
	})
}

// storageProxy stands between djdeploy and Azurite, so a test can make
// Blob Storage fail the way it does on Azure (ServerBusy storms, a
// firewall or role that refuses deletes) while the CDN keeps reading the
// container directly.
type storageProxy struct {
	srv  *httptest.Server
	mu   sync.Mutex
	fail func(r *http.Request) (status int, code string)
	hits int
}

func newStorageProxy(t *testing.T, blobEndpoint string) *storageProxy {
	t.Helper()
	target, err := url.Parse(blobEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &storageProxy{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		f := p.fail
		p.mu.Unlock()
		if f != nil {
			if status, code := f(r); status != 0 {
				p.mu.Lock()
				p.hits++
				p.mu.Unlock()
				io.Copy(io.Discard, r.Body)
				w.Header().Set("x-ms-error-code", code)
				w.Header().Set("Retry-After", "1")
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(status)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>injected by the test</Message></Error>`, code)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// set installs a failure rule (nil: pass everything through) and resets
// the hit count.
func (p *storageProxy) set(f func(r *http.Request) (int, string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail, p.hits = f, 0
}

func (p *storageProxy) failures() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits
}

// connectionString is the emulator's, with the Blob endpoint moved to the
// proxy (same account path, so Shared Key signatures still verify).
func (p *storageProxy) connectionString(orig string) string {
	var parts []string
	for _, kv := range strings.Split(orig, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(k, "BlobEndpoint") {
			u, _ := url.Parse(v)
			kv = "BlobEndpoint=" + p.srv.URL + u.Path
		}
		parts = append(parts, kv)
	}
	return strings.Join(parts, ";")
}

func blobEndpoint(conn string) string {
	for _, kv := range strings.Split(conn, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(k, "BlobEndpoint") {
			return v
		}
	}
	return ""
}

// bump gives the project a new release id by changing the template only.
func bump(t *testing.T, dir, tag string) {
	t.Helper()
	p := filepath.Join(dir, "pages/templates/pages/home.html")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := regexp.MustCompile(`<!-- variant [^>]*-->\n?`).ReplaceAllString(string(b), "")
	if err := os.WriteFile(p, []byte(s+"<!-- variant "+tag+" -->\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

const viewsHealthz = `def healthz(request):
    """Warm-up and health probe: no database, no templates, always cheap."""
    return JsonResponse({"status": "ok", "release": release_id()})
`

// TestReleaseFailureAtEachStep injects a failure at every step of a
// release and checks, over HTTP, that production still serves the
// previous release and every static file its page links. Then it resumes
// a release that failed at purge.
func TestReleaseFailureAtEachStep(t *testing.T) {
	h := newHarness(t)
	proxy := newStorageProxy(t, blobEndpoint(h.emu.StorageConnectionString()))
	h.env["AZURE_STORAGE_CONNECTION_STRING"] = proxy.connectionString(h.emu.StorageConnectionString())
	dir := e2e.Project(t, "django-app")
	views, err := os.ReadFile(filepath.Join(dir, "pages/views.py"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(views, []byte(viewsHealthz)) {
		t.Fatalf("pages/views.py changed; update viewsHealthz:\n%s", views)
	}
	setHealthz := func(t *testing.T, body string) {
		t.Helper()
		s := strings.Replace(string(views), viewsHealthz, body, 1)
		if err := os.WriteFile(filepath.Join(dir, "pages/views.py"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	live := mustSucceed(t, h.release(t, nil, dir)).ReleaseID
	h.assertServes(t, live)

	// Each case changes the project, injects one failure, releases, and
	// expects the release to fail at step with production untouched.
	cases := []struct {
		name   string
		step   string
		args   []string
		inject func(t *testing.T)
	}{
		{"static sync: Blob Storage busy", "static-sync", nil, func(t *testing.T) {
			// A new file, so there is something to upload.
			writeFile(t, dir, "pages/static/pages/css/extra.css", ".extra { color: red; }\n")
			proxy.set(func(r *http.Request) (int, string) {
				if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/pages/css/extra") {
					return http.StatusServiceUnavailable, "ServerBusy"
				}
				return 0, ""
			})
		}},
		{"deploy: build fails", "deploy", nil, func(t *testing.T) {
			h.emu.FailNextDeployment(app, slot, emulator.AtBuild)
		}},
		{"deploy: app does not start", "deploy", nil, func(t *testing.T) {
			h.emu.FailNextDeployment(app, slot, emulator.AtRuntime)
		}},
		{"warm-up: health check fails", "warm-up", []string{"--warmup-timeout", "5s"}, func(t *testing.T) {
			setHealthz(t, "def healthz(request):\n    return JsonResponse({\"status\": \"broken\"}, status=503)\n")
		}},
		{"smoke: slower than the gate", "smoke", []string{"--smoke-requests", "5", "--smoke-concurrency", "2", "--smoke-max-p95", "50ms"}, func(t *testing.T) {
			h.emu.Faults().Add(emulator.Fault{Method: "GET", Path: "/", Host: "site", Delay: time.Second, Count: -1})
		}},
		{"swap: ARM keeps failing", "swap", nil, func(t *testing.T) {
			h.emu.Faults().Add(emulator.Fault{Method: "POST", Path: "*/slotsswap", Status: 503, RetryAfter: 1, Count: -1})
		}},
		{"swap: verification fails in production, swapped back", "swap", []string{"--verify-timeout", "5s"}, func(t *testing.T) {
			// The new code answers its health check everywhere but on
			// production's host: it passes warm-up and fails only after
			// the swap, which must then be undone.
			prodHost := strings.TrimPrefix(h.emu.ProductionURL(app), "http://")
			setHealthz(t, fmt.Sprintf("def healthz(request):\n    if request.get_host() == %q:\n        return JsonResponse({\"status\": \"broken\"}, status=503)\n    return JsonResponse({\"status\": \"ok\", \"release\": release_id()})\n", prodHost))
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() {
				proxy.set(nil)
				h.emu.Faults().Clear()
				h.emu.FailNextDeployment(app, slot, emulator.NoFailure)
				setHealthz(t, viewsHealthz)
				os.Remove(filepath.Join(dir, "pages/static/pages/css/extra.css"))
			})
			bump(t, dir, fmt.Sprintf("failure-%d", i))
			tc.inject(t)
			swapsBefore := len(h.emu.State().Swaps)
			r := h.release(t, nil, dir, tc.args...)
			rep := mustFailAt(t, r, tc.step)
			t.Logf("%s failed: %s", tc.step, rep.Error)
			if rep.Live {
				t.Errorf("report says production serves the failed release")
			}
			if strings.Count(rep.Error, "swapped back") > 1 {
				t.Errorf("error repeats itself: %s", rep.Error)
			}
			if rep.ReleaseID == live {
				t.Fatalf("the change did not make a new release")
			}
			h.assertServes(t, live)
			// Steps after the failed one did not run.
			after := false
			for _, s := range rep.Steps {
				if after && s.Status != report.StepNotRun {
					t.Errorf("step %s after the failed %s: %s", s.Name, tc.step, s.Status)
				}
				after = after || s.Name == tc.step
			}
			swaps := h.emu.State().Swaps[swapsBefore:]
			switch tc.step {
			case "swap":
				if strings.Contains(tc.name, "swapped back") {
					if len(swaps) != 2 || !swaps[0].Succeeded || !swaps[1].Succeeded || !strings.Contains(rep.Error, "swapped back") {
						t.Errorf("want a swap and a swap back; swaps %+v, error %q", swaps, rep.Error)
					}
				} else if proxyOK := h.emu.Requests("POST", "*/slotsswap"); proxyOK < 2 {
					t.Errorf("the swap was not retried (%d requests)", proxyOK)
				}
			default:
				if len(swaps) != 0 {
					t.Errorf("swapped after a failure at %s: %+v", tc.step, swaps)
				}
			}
			if tc.step == "static-sync" && proxy.failures() < 2 {
				t.Errorf("the upload was not retried (%d failures served)", proxy.failures())
			}
		})
	}

	// A failure after the swap: production already serves the new release
	// and must serve all of its files; a re-run finishes the job without
	// deploying or swapping again.
	e2e.Edit(t, dir, "pages/static/pages/css/site.css", "--accent: #0b6bcb;", "--accent: #2e7d32;")
	bump(t, dir, "purge")
	var purgeFailed *report.Release
	t.Run("purge: CDN fails after the swap", func(t *testing.T) {
		h.emu.Faults().Add(emulator.Fault{Method: "POST", Path: "*/purge", Status: 503, RetryAfter: 1, Count: -1})
		defer h.emu.Faults().Clear()
		purgeFailed = mustFailAt(t, h.release(t, nil, dir), "purge")
		if purgeFailed.ReleaseID == live {
			t.Fatal("the change did not make a new release")
		}
		live = purgeFailed.ReleaseID
		h.assertServes(t, live)
		if st := stepOf(purgeFailed, "swap"); st.Status != report.StepDone {
			t.Errorf("swap: %+v", st)
		}
		if !purgeFailed.Live {
			t.Errorf("report does not say production serves the release that failed at purge")
		}
	})
	if purgeFailed == nil {
		t.FailNow()
	}

	t.Run("resume after the purge failure", func(t *testing.T) {
		h.emu.ResetRequests()
		purgesBefore := cdnPurges(h)
		rep := mustSucceed(t, h.release(t, nil, dir))
		if rep.ReleaseID != purgeFailed.ReleaseID {
			t.Fatalf("re-run built release %s, first run %s", rep.ReleaseID, purgeFailed.ReleaseID)
		}
		for _, s := range []string{"deploy", "warm-up", "swap"} {
			if st := stepOf(rep, s); st.Status != report.StepSkipped || !strings.Contains(st.Detail, "already") {
				t.Errorf("step %s on the re-run: %+v, want skipped as already done", s, st)
			}
		}
		if n := h.emu.Requests("POST", "*/api/publish"); n != 0 {
			t.Errorf("re-run deployed again (%d publish requests)", n)
		}
		if n := h.emu.Requests("POST", "*/slotsswap"); n != 0 {
			t.Errorf("re-run swapped again (%d swap requests)", n)
		}
		if rep.StaticUploaded != 0 {
			t.Errorf("re-run uploaded %d static files again", rep.StaticUploaded)
		}
		// The purge the first run owed was sent, with the edited css.
		if st := stepOf(rep, "purge"); st.Status != report.StepDone {
			t.Errorf("purge on the re-run: %+v", st)
		}
		purged := cdnPurges(h)[len(purgesBefore):]
		found := false
		for _, p := range purged {
			for _, path := range p {
				if strings.HasSuffix(path, "/pages/css/site.css") {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("the owed purge of pages/css/site.css was not sent; purges: %v, report %v", purged, rep.PurgedPaths)
		}
		h.assertServes(t, live)
		code, _, body := h.get(t, strings.TrimSuffix(rep.StaticURL, "/")+"/pages/css/site.css")
		if code != 200 || !strings.Contains(body, "#2e7d32") {
			t.Errorf("CDN serves a stale pages/css/site.css (%d):\n%s", code, body)
		}
	})

	t.Run("prune: Blob Storage refuses deletes", func(t *testing.T) {
		// A file no release references, old enough to prune.
		ctx := context.Background()
		if _, err := h.blob.UploadBuffer(ctx, h.cont, h.prefix+"pages/css/orphan.css", []byte(".orphan{}"), nil); err != nil {
			t.Fatal(err)
		}
		proxy.set(func(r *http.Request) (int, string) {
			if r.Method == http.MethodDelete || r.URL.Query().Get("comp") == "batch" {
				return http.StatusForbidden, "AuthorizationPermissionMismatch"
			}
			return 0, ""
		})
		defer proxy.set(nil)
		bump(t, dir, "prune")
		rep := mustFailAt(t, h.release(t, nil, dir, "--static-grace", "0s", "--static-keep", "1"), "prune")
		if proxy.failures() == 0 {
			t.Fatal("prune deleted nothing through the proxy")
		}
		// The release is live and complete; only the clean-up failed.
		if st := stepOf(rep, "swap"); st.Status != report.StepDone || !rep.Live {
			t.Errorf("swap: %+v, live %v", st, rep.Live)
		}
		live = rep.ReleaseID
		h.assertServes(t, live)
		if _, ok := h.blobs(t)[h.prefix+"pages/css/orphan.css"]; !ok {
			t.Errorf("orphan.css is gone though every delete was refused")
		}
	})

	// A release that uploads a changed un-hashed file and then fails owes
	// the CDN a purge of it; the next release (another id: the fix) must
	// send it, or the CDN serves the old content under that name forever.
	t.Run("a failed release's owed purge is sent by the next release", func(t *testing.T) {
		cssURL := strings.TrimSuffix(h.production(t).Static[0][:strings.Index(h.production(t).Static[0], "/pages/")], "/") + "/pages/css/site.css"
		if code, _, body := h.get(t, cssURL); code != 200 || !strings.Contains(body, "#2e7d32") {
			t.Fatalf("CDN: %s answers %d:\n%s", cssURL, code, body) // now cached
		}
		e2e.Edit(t, dir, "pages/static/pages/css/site.css", "--accent: #2e7d32;", "--accent: #6a1b9a;")
		bump(t, dir, "owed-1")
		h.emu.FailNextDeployment(app, slot, emulator.AtBuild)
		mustFailAt(t, h.release(t, nil, dir), "deploy")
		h.assertServes(t, live)

		bump(t, dir, "owed-2") // the fix: a new release, same static files
		rep := mustSucceed(t, h.release(t, nil, dir))
		live = rep.ReleaseID
		h.assertServes(t, live)
		if code, _, body := h.get(t, cssURL); code != 200 || !strings.Contains(body, "#6a1b9a") {
			t.Errorf("CDN serves a stale %s after the next release (%d; purged %v):\n%s", cssURL, code, rep.PurgedPaths, body)
		}
	})

	// A static file whose name holds "*": Front Door refuses the path (a
	// wildcard only ends a path), so the purge failed after the swap, the
	// path stayed owed, and every later release failed the same way.
	t.Run("a name Azure cannot purge goes through its folder's wildcard", func(t *testing.T) {
		writeFile(t, dir, "pages/static/pages/odd*name.css", "body { color: #111111; }\n")
		bump(t, dir, "star-1")
		rep := mustSucceed(t, h.release(t, nil, dir))
		star := strings.TrimSuffix(rep.StaticURL, "/") + "/pages/odd*name.css"
		if code, _, body := h.get(t, star); code != 200 || !strings.Contains(body, "#111111") {
			t.Fatalf("CDN: %s answers %d:\n%s", star, code, body) // now cached
		}
		writeFile(t, dir, "pages/static/pages/odd*name.css", "body { color: #222222; }\n")
		bump(t, dir, "star-2")
		rep = mustSucceed(t, h.release(t, nil, dir))
		live = rep.ReleaseID
		for _, p := range rep.PurgedPaths {
			if strings.Contains(strings.TrimSuffix(p, "*"), "*") {
				t.Errorf("purged %q: a path with * inside", p)
			}
		}
		if code, _, body := h.get(t, star); code != 200 || !strings.Contains(body, "#222222") {
			t.Errorf("CDN serves a stale %s (%d; purged %v):\n%s", star, code, rep.PurgedPaths, body)
		}
		if _, err := h.stateBlob("purge-owed.json").GetProperties(context.Background(), nil); err == nil {
			t.Errorf("paths are still owed to the CDN after the purge")
		}
		bump(t, dir, "star-3")
		mustSucceed(t, h.release(t, nil, dir))
	})
}

// cdnPurges lists every purge the emulator's CDN endpoints received.
func cdnPurges(h *harness) [][]string {
	var out [][]string
	for _, ep := range h.emu.State().CDN {
		out = append(out, ep.Purges...)
	}
	return out
}

// decode reads a run's JSON report (outside helpers that may run in
// goroutines, which must not call t.Fatal).
func decode(t *testing.T, r *run) {
	t.Helper()
	if r.rep == nil && strings.TrimSpace(r.Stdout) != "" {
		rep := &report.Release{}
		if ok, err := e2e.DecodeResult(r.Stdout, rep); err != nil {
			t.Fatalf("stdout is not the JSON envelope: %v\n%s", err, r)
		} else if ok {
			r.rep = rep
		}
	}
}

// waitLeased waits until someone holds the release lock (the lease on
// <prefix>.djdeploy/lock). It is a wait for a condition, bounded; nothing
// is asserted about how long it took.
func (h *harness) waitLeased(t *testing.T) {
	t.Helper()
	bc := h.stateBlob("lock")
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		p, err := bc.GetProperties(context.Background(), nil)
		if err == nil && p.LeaseState != nil && string(*p.LeaseState) == "leased" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the first release never took the lock")
}

// stateBlob is one of djdeploy's state files for the harness's container
// and prefix, in the private state container.
func (h *harness) stateBlob(name string) *blob.Client {
	return h.blob.ServiceClient().NewContainerClient(staticsync.StateContainer).NewBlobClient(h.cont + "/" + h.prefix + staticsync.MetaDir + name)
}

// emuState is the emulator's state as JSON, for before/after comparisons.
func emuState(t *testing.T, h *harness) string {
	t.Helper()
	b, err := json.MarshalIndent(h.emu.State(), "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestReleaseLockPlanAndBadInput: two releases at once, --plan, and bad
// input, on one emulator.
func TestReleaseLockPlanAndBadInput(t *testing.T) {
	h := newHarness(t)
	base := e2e.Project(t, "django-app")
	first := mustSucceed(t, h.release(t, nil, base))
	h.assertServes(t, first.ReleaseID)

	t.Run("two releases at once", func(t *testing.T) {
		a, c := e2e.Project(t, "django-app"), e2e.Project(t, "django-app")
		bump(t, a, "lock-a")
		bump(t, c, "lock-c")
		// The first release's upload is slow, so it surely holds the lock
		// while the others start.
		h.emu.Faults().Add(emulator.Fault{Method: "POST", Path: "/api/publish", Host: "scm", Delay: 5 * time.Second, Count: 1})
		defer h.emu.Faults().Clear()
		holderA := map[string]string{"GITHUB_RUN_ID": "1111", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "org/site"}
		holderC := map[string]string{"GITHUB_RUN_ID": "3333", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "org/site"}
		var ra, rc run
		doneA, doneC := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(doneA)
			ra = h.djdeploy(t, holderA, releaseArgs(a, "--lock-timeout", "3m")...)
		}()
		h.waitLeased(t)

		// One refuses at once, naming the holder.
		rb := h.djdeploy(t, nil, releaseArgs(c, "--lock-timeout", "0s")...)
		decode(t, &rb)
		if rb.Code != 1 || rb.rep == nil || rb.rep.FailedStep != "lock" {
			t.Errorf("a release with lock-timeout 0 was not refused at the lock: %s", rb)
		}
		if !strings.Contains(rb.Stderr, "actions/runs/1111") {
			t.Errorf("the refusal does not name the holder (actions/runs/1111):\n%s", rb.Stderr)
		}
		if n := h.emu.Requests("POST", "/api/publish"); n > 1 {
			t.Errorf("the refused release deployed (%d publish requests)", n)
		}

		// Another waits its turn, then releases.
		go func() {
			defer close(doneC)
			rc = h.djdeploy(t, holderC, releaseArgs(c, "--lock-timeout", "3m")...)
		}()
		<-doneA
		<-doneC
		decode(t, &ra)
		decode(t, &rc)
		repA, repC := mustSucceed(t, ra), mustSucceed(t, rc)
		if !strings.Contains(rc.Stderr, "waiting for the release lock") || !strings.Contains(rc.Stderr, "actions/runs/1111") {
			t.Errorf("the waiting release did not say it waited for actions/runs/1111:\n%s", rc.Stderr)
		}
		// One after the other: the swaps did not interleave, and the last
		// one to take the lock is live with all of its files.
		var swaps []emulator.SwapRecord
		for _, s := range h.emu.State().Swaps {
			if s.Succeeded {
				swaps = append(swaps, s)
			}
		}
		// (Releases[1] is the deployment production holds after the swap.)
		if len(swaps) != 3 || swaps[1].Releases[1] != repA.DeploymentID || swaps[2].Releases[1] != repC.DeploymentID {
			t.Errorf("want the swaps of the first release, then A (%s), then C (%s); got %+v", repA.DeploymentID, repC.DeploymentID, swaps)
		}
		h.assertServes(t, repC.ReleaseID)
		lb := h.stateBlob("lock")
		if p, err := lb.GetProperties(context.Background(), nil); err != nil || p.LeaseState == nil || string(*p.LeaseState) == "leased" {
			t.Errorf("the lock is still held after both releases: %v", err)
		}
	})

	t.Run("plan changes nothing", func(t *testing.T) {
		dir := e2e.Project(t, "django-app")
		e2e.Edit(t, dir, "pages/static/pages/css/site.css", "--accent: #0b6bcb;", "--accent: #ff8f00;")
		bump(t, dir, "plan")
		stateBefore, blobsBefore := emuState(t, h), h.allBlobs(t)
		h.emu.ResetRequests()
		r := h.djdeploy(t, nil, append(releaseArgs(dir), "--plan")...)
		if r.Code != 0 {
			t.Fatalf("plan: %s", r)
		}
		var p struct {
			ReleaseID  string   `json:"release_id"`
			Production string   `json:"production_release"`
			Upload     []string `json:"upload"`
			Settings   []struct {
				Name string `json:"name"`
			} `json:"settings"`
			PurgePaths []string `json:"purge_paths"`
		}
		if _, err := e2e.DecodeResult(r.Stdout, &p); err != nil {
			t.Fatalf("plan is not JSON: %v\n%s", err, r)
		}
		if after := emuState(t, h); after != stateBefore {
			t.Errorf("the emulator's state changed:\n--- before\n%s\n--- after\n%s", stateBefore, after)
		}
		if after := h.allBlobs(t); !sameMap(after, blobsBefore) {
			t.Errorf("the container changed: %v", changedBlobs(blobsBefore, after))
		}
		for _, m := range []string{"PUT", "PATCH", "DELETE"} {
			if n := h.emu.Requests(m, "*"); n != 0 {
				t.Errorf("plan sent %d %s requests", n, m)
			}
		}
		if n := h.emu.Requests("POST", "*/api/publish") + h.emu.Requests("POST", "*/slotsswap") + h.emu.Requests("POST", "*/purge"); n != 0 {
			t.Errorf("plan deployed, swapped or purged (%d requests)", n)
		}
		// What it would do: upload the edited css (and its hashed copy and
		// the manifest), change the release id setting, purge the css.
		// (URL paths below the container: "/" + blob name)
		up := map[string]bool{}
		hashedSite := 0
		for _, u := range p.Upload {
			name := strings.TrimPrefix(strings.TrimPrefix(u, "/"), h.prefix)
			up[name] = true
			if strings.HasPrefix(name, "pages/css/site.") && hashedName(name) {
				hashedSite++
			}
		}
		if len(up) != 3 || !up["pages/css/site.css"] || !up["staticfiles.json"] || hashedSite != 1 {
			t.Errorf("plan uploads %v; want site.css, its hashed copy and staticfiles.json", p.Upload)
		}
		settingNames := map[string]bool{}
		for _, s := range p.Settings {
			settingNames[s.Name] = true
		}
		if !settingNames["DJDEPLOY_RELEASE_ID"] {
			t.Errorf("plan changes settings %v; want DJDEPLOY_RELEASE_ID among them", p.Settings)
		}
		purgesSite := false
		for _, pp := range p.PurgePaths {
			if hashedName(pp) {
				t.Errorf("plan purges hashed %s", pp)
			}
			purgesSite = purgesSite || strings.HasSuffix(pp, "/pages/css/site.css")
		}
		if !purgesSite {
			t.Errorf("plan purges %v; want pages/css/site.css", p.PurgePaths)
		}
		if p.ReleaseID == "" || p.Production == "" || p.ReleaseID == p.Production {
			t.Errorf("plan: release %q, production %q", p.ReleaseID, p.Production)
		}
		// The human form lists the same.
		r = h.djdeploy(t, nil, "release", "--project", dir, "--plan")
		if r.Code != 0 || !strings.Contains(r.Stdout, "pages/css/site.css") || !strings.Contains(r.Stdout, "DJDEPLOY_RELEASE_ID") || !strings.Contains(r.Stdout, "nothing was changed") {
			t.Errorf("plan as text: %s", r)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		notDjango := t.TempDir()
		writeFile(t, notDjango, "index.html", "<h1>not a Django project</h1>\n")
		stateBefore, blobsBefore := emuState(t, h), h.blobs(t)
		for _, tc := range []struct {
			name  string
			env   map[string]string
			args  []string
			wants []string
		}{
			{"no resource group or app", map[string]string{"DJDEPLOY_RESOURCE_GROUP": "", "DJDEPLOY_APP": ""}, releaseArgs(base), []string{"resource-group", "app"}},
			{"production as the slot", nil, releaseArgs(base, "--slot", "production"), []string{"slot", "production"}},
			{"not a Django project", nil, releaseArgs(notDjango), []string{"manage.py"}},
			{"unknown step to skip", nil, releaseArgs(base, "--skip", "bogus"), []string{"bogus", "static-sync"}},
			// Settings only the last steps use are checked before anything
			// changes, not after the swap.
			{"prune keeping no release", nil, releaseArgs(base, "--static-keep", "0"), []string{"static-keep"}},
			{"domains on a classic CDN profile", nil, releaseArgs(base, "--cdn-profile", "demo-cdn", "--cdn-endpoint", "demo-cdn-ep", "--domain", "www.example.com"), []string{"--domain"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := h.djdeploy(t, tc.env, tc.args...)
				if r.Code != 2 {
					t.Errorf("exit %d, want 2: %s", r.Code, r)
				}
				for _, w := range tc.wants {
					if !strings.Contains(r.Stderr, w) {
						t.Errorf("stderr does not name %q: %s", w, r.Stderr)
					}
				}
				if !strings.Contains(r.Stderr, "fix:") {
					t.Errorf("no fix line: %s", r.Stderr)
				}
				if strings.Contains(r.Stderr, "goroutine ") || strings.Contains(r.Stderr, "panic") {
					t.Errorf("stack trace on bad input: %s", r.Stderr)
				}
			})
		}
		if after := emuState(t, h); after != stateBefore {
			t.Errorf("bad input changed the emulator's state:\n--- before\n%s\n--- after\n%s", stateBefore, after)
		}
		if after := h.blobs(t); !sameMap(after, blobsBefore) {
			t.Errorf("bad input changed the static files: %v", changedBlobs(blobsBefore, after))
		}
		h.assertServes(t, "")
	})
}
