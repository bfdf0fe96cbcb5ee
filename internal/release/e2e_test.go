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
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/djdeploy/djdeploy/internal/cli"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/testenv"
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
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	py := testenv.Python(t)
	testenv.Azurite(t) // skips (or fails in CI) when Azurite is not installed
	emu, err := emulator.Start(context.Background(), emulator.Config{StartAzurite: true, Python: py, Workers: 1, RetryAfter: 1})
	if err != nil {
		t.Fatalf("starting the emulator: %v", err)
	}
	t.Cleanup(func() { emu.Close() })
	h := &harness{emu: emu, py: py, env: emu.Env(), http: &http.Client{Timeout: 30 * time.Second}}
	h.env["DJDEPLOY_PYTHON"] = py
	h.cont, h.prefix = h.env["DJDEPLOY_STATIC_CONTAINER"], h.env["DJDEPLOY_STATIC_PREFIX"]
	if h.blob, err = azblob.NewClientFromConnectionString(emu.StorageConnectionString(), nil); err != nil {
		t.Fatal(err)
	}
	return h
}

// project copies examples/django-app into a fresh folder the test may edit.
func project(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "..", "examples", "django-app")
	dst := filepath.Join(t.TempDir(), "django-app")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		name := d.Name()
		if d.IsDir() && (name == "__pycache__" || name == "staticfiles" || name == ".venv") {
			return filepath.SkipDir
		}
		if name == "db.sqlite3" {
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying the example app: %v", err)
	}
	return dst
}

// edit replaces old with new in a project file, failing when old is absent
// (an edit that changes nothing would make the test prove nothing).
func edit(t *testing.T, dir, rel, old, new string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not contain %q", rel, old)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
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
	code           int
	stdout, stderr string
	rep            *report.Release
}

func (r run) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s\n--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

func (h *harness) djdeploy(t *testing.T, extra map[string]string, args ...string) run {
	t.Helper()
	env := map[string]string{}
	for k, v := range h.env {
		env[k] = v
	}
	for k, v := range extra {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), args, cli.IO{In: strings.NewReader(""), Out: &out, Err: &errb}, func(k string) string { return env[k] })
	return run{code: code, stdout: out.String(), stderr: errb.String()}
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
	r := h.djdeploy(t, extra, releaseArgs(dir, more...)...)
	if strings.TrimSpace(r.stdout) != "" {
		r.rep = &report.Release{}
		if err := json.Unmarshal([]byte(r.stdout), r.rep); err != nil {
			t.Fatalf("stdout is not the JSON report: %v\n%s", err, r)
		}
	}
	return r
}

// mustSucceed fails the test unless the release succeeded.
func mustSucceed(t *testing.T, r run) *report.Release {
	t.Helper()
	if r.code != 0 || r.rep == nil || r.rep.Outcome != report.Succeeded {
		t.Fatalf("release did not succeed: %s", r)
	}
	return r.rep
}

// mustFailAt checks the release failed at step with exit 1 and a report
// that names the step.
func mustFailAt(t *testing.T, r run, step string) *report.Release {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("exit %d, want 1: %s", r.code, r)
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
	if !strings.Contains(r.stderr, "error:") {
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

// page is what production serves at /, and what it links.
type page struct {
	release string
	body    string
	static  []string // absolute URLs of the static files the page links
}

var (
	releaseRE = regexp.MustCompile(`<code id="release-id">([^<]*)</code>`)
	linkRE    = regexp.MustCompile(`(?:href|src)="([^"]+)"`)
	cssURLRE  = regexp.MustCompile(`url\(["']?([^"')]+)["']?\)`)
)

func (h *harness) get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := h.http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// production reads production's home page over HTTP.
func (h *harness) production(t *testing.T) page {
	t.Helper()
	code, _, body := h.get(t, h.emu.ProductionURL(app)+"/")
	if code != 200 {
		t.Fatalf("production answers %d:\n%s", code, body)
	}
	m := releaseRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("production's page names no release:\n%s", body)
	}
	p := page{release: m[1], body: body}
	for _, l := range linkRE.FindAllStringSubmatch(body, -1) {
		p.static = append(p.static, l[1])
	}
	return p
}

// cdnBase is where the pages must link their static files: the CDN
// endpoint of the export block, then the static prefix.
func (h *harness) cdnBase() string {
	return h.emu.CDNURL(h.env["DJDEPLOY_CDN_PROFILE"], h.env["DJDEPLOY_CDN_ENDPOINT"]) + "/"
}

var wantType = map[string]string{".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".png": "image/png"}

// assertServes checks production serves release id (when not "") and that
// every static file its page links (and every url() those css files
// reference) answers 200 through the CDN with the right content type.
func (h *harness) assertServes(t *testing.T, id string) page {
	t.Helper()
	p := h.production(t)
	if id != "" && p.release != id {
		t.Fatalf("production serves release %q, want %q", p.release, id)
	}
	if len(p.static) < 3 {
		t.Fatalf("production's page links %d static files, want css, js and the logo:\n%s", len(p.static), p.body)
	}
	seen := map[string]bool{}
	queue := append([]string{}, p.static...)
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		if seen[u] {
			continue
		}
		seen[u] = true
		if !strings.HasPrefix(u, h.cdnBase()) {
			t.Errorf("static link %s is not on the CDN endpoint %s", u, h.cdnBase())
			continue
		}
		code, hdr, body := h.get(t, u)
		if code != 200 {
			t.Errorf("GET %s through the CDN: %d", u, code)
			continue
		}
		ext := strings.ToLower(filepath.Ext(u))
		mt, _, _ := mime.ParseMediaType(hdr.Get("Content-Type"))
		if want := wantType[ext]; want != "" && mt != want && !(ext == ".js" && mt == "application/javascript") {
			t.Errorf("GET %s: Content-Type %q, want %s", u, hdr.Get("Content-Type"), want)
		}
		if ext == ".css" {
			for _, m := range cssURLRE.FindAllStringSubmatch(body, -1) {
				ref := m[1]
				if strings.HasPrefix(ref, "data:") || strings.Contains(ref, "://") {
					continue
				}
				queue = append(queue, resolve(u, ref))
			}
		}
	}
	return p
}

// resolve resolves a relative url() reference against the css file's URL.
func resolve(base, ref string) string {
	if strings.HasPrefix(ref, "/") {
		i := strings.Index(base, "://")
		j := strings.IndexByte(base[i+3:], '/')
		return base[:i+3+j] + ref
	}
	dir := base[:strings.LastIndexByte(base, '/')+1]
	for strings.HasPrefix(ref, "../") {
		ref = ref[3:]
		dir = dir[:strings.LastIndexByte(strings.TrimSuffix(dir, "/"), '/')+1]
	}
	return dir + strings.TrimPrefix(ref, "./")
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
	dir := project(t)
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
		if !strings.Contains(p.body, "Hello from Django on App Service") {
			t.Errorf("production serves another page:\n%s", p.body)
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
		edit(t, dir, "pages/templates/pages/home.html", "Hello from Django on App Service", "Hello again from Django on App Service")
		edit(t, dir, "pages/static/pages/css/site.css", "--accent: #0b6bcb;", "--accent: #c0392b;")
		h.emu.ResetRequests()
		r := h.release(t, nil, dir)
		second := mustSucceed(t, r)
		if second.ReleaseID == first.ReleaseID {
			t.Fatalf("the edit did not change the release id %s", second.ReleaseID)
		}
		p := h.assertServes(t, second.ReleaseID)
		if !strings.Contains(p.body, "Hello again from Django on App Service") {
			t.Errorf("production does not show the edited template:\n%s", p.body)
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
}
