package outside

import (
	"context"
	"html"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

// netEnv is what a build that reaches PyPI needs from the runner: HOME
// (the installers' caches), TLS roots and proxies.
func netEnv() map[string]string {
	env := map[string]string{}
	for _, k := range []string{"HOME", "PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "PIP_CERT", "REQUESTS_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"} {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
	}
	return env
}

// fixture is one emulator whose apps run on appPython, and the
// environment under which djdeploy (building with buildPython) releases
// into it.
type fixture struct {
	emu  *emulator.Emulator
	env  map[string]string
	http *http.Client
}

func newFixture(t *testing.T, buildPython, appPython string) *fixture {
	t.Helper()
	// App Service waits 230 s for a container to answer
	// (WEBSITES_CONTAINER_START_TIME_LIMIT); Wagtail's ~200 migrations
	// run before gunicorn on a loaded machine can take more than the
	// emulator's default.
	emu, err := emulator.Start(context.Background(), emulator.Config{StartAzurite: true, Python: appPython, Workers: 1, RetryAfter: 1, StartTimeout: 230 * time.Second})
	if err != nil {
		t.Fatalf("starting the emulator: %v", err)
	}
	t.Cleanup(func() { emu.Close() })
	env := e2e.With(e2e.Env(emu, buildPython), netEnv())
	// uv on PATH: builds find it there, as on a runner that installed it.
	if uv := testUV(t); uv != "" {
		env["PATH"] = filepath.Dir(uv) + string(os.PathListSeparator) + env["PATH"]
	}
	return &fixture{emu: emu, env: env, http: &http.Client{Timeout: 60 * time.Second}}
}

// release runs `djdeploy release` on dir and fails the test unless it
// succeeds.
func (f *fixture) release(t *testing.T, dir, health string, more ...string) e2e.Result {
	t.Helper()
	args := append([]string{"release", "--project", dir, "--fix-settings",
		"--health-path", health, "--warmup-timeout", "60s", "--verify-timeout", "60s",
		"--deploy-timeout", "5m", "--swap-timeout", "2m", "--purge-timeout", "1m", "--lock-timeout", "30s"}, more...)
	r := e2e.Main(context.Background(), f.env, args...)
	if r.Code != 0 {
		t.Fatalf("release failed: %s", r)
	}
	return r
}

// cdnBase is where pages must link their static files.
func (f *fixture) cdnBase() string {
	return f.emu.CDNURL(f.env["DJDEPLOY_CDN_PROFILE"], f.env["DJDEPLOY_CDN_ENDPOINT"]) + "/"
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

// outsidePython is the environment the outside projects are generated
// with (.tools/outside, from .ci/python/outside.txt): Wagtail, Django REST
// framework, django-debug-toolbar.
func outsidePython(t *testing.T) string {
	t.Helper()
	p := os.Getenv("DJDEPLOY_TEST_OUTSIDE")
	if p == "" {
		p = filepath.Join(e2e.Root(t), ".tools", "outside", "bin", "python")
	}
	if out, err := exec.Command(p, "-c", "import wagtail, rest_framework, debug_toolbar").CombinedOutput(); err != nil {
		testenv.Missing(t, "the outside projects' environment "+p, "run 'make deps' (it installs .ci/python/outside.txt into .tools/outside): "+string(out))
	}
	return p
}

var (
	stylesheetRE = regexp.MustCompile(`<link[^>]+rel="stylesheet"[^>]*>|<script[^>]+src="[^"]+"[^>]*>`)
	hrefSrcRE    = regexp.MustCompile(`(?:href|src)="([^"]+)"`)
)

// adminLogin reads a login page on production and checks it renders and
// that every stylesheet and script it links answers 200 from the CDN
// host with the right content type (and every url() in those css files).
func (f *fixture) checkPage(t *testing.T, path, mustHave string, minAssets int) {
	t.Helper()
	url := f.emu.ProductionURL(e2e.App) + path
	code, _, body, err := e2e.Get(f.http, url)
	if err != nil || code != 200 || !strings.Contains(body, mustHave) {
		t.Fatalf("GET %s: %d %v (want 200 with %q)\n%s", url, code, err, mustHave, body)
	}
	// Static files are checked on the CDN; what the app itself serves as
	// a script (Django's JavaScript catalog, /admin/jsi18n/) on the app.
	static := f.staticURL(t)
	p := e2e.Page{Body: body}
	for _, tag := range stylesheetRE.FindAllString(body, -1) {
		m := hrefSrcRE.FindStringSubmatch(tag)
		if m == nil {
			continue
		}
		link := html.UnescapeString(m[1])
		switch {
		case strings.HasPrefix(link, static):
			p.Static = append(p.Static, link)
		case strings.HasPrefix(link, "/") && !strings.HasPrefix(link, "//"):
			if code, _, _, err := e2e.Get(f.http, f.emu.ProductionURL(e2e.App)+link); err != nil || code != 200 {
				t.Errorf("%s links %s, which the app answers with %d %v", path, link, code, err)
			}
		default:
			t.Errorf("%s links %s, neither under STATIC_URL %s nor on the app", path, link, static)
		}
	}
	if len(p.Static) < minAssets {
		t.Errorf("%s links %d stylesheets and scripts under STATIC_URL, want at least %d", path, len(p.Static), minAssets)
	}
	for _, problem := range e2e.CheckStatic(f.http, p, f.cdnBase()) {
		t.Errorf("%s: %s", path, problem)
	}
}

// staticURL is the STATIC_URL production runs with (the app setting
// djdeploy set on the slot).
func (f *fixture) staticURL(t *testing.T) string {
	t.Helper()
	for _, a := range f.emu.State().Apps {
		if a.Name != e2e.App {
			continue
		}
		for _, s := range a.Slots {
			if s.Name == "production" && s.AppSettings["STATIC_URL"] != "" {
				return s.AppSettings["STATIC_URL"]
			}
		}
	}
	t.Fatal("production has no STATIC_URL app setting")
	return ""
}

// testUV is uv from the test environment (.tools/py), or "" (pip then).
func testUV(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DJDEPLOY_TEST_UV"); p != "" {
		return p
	}
	if py := os.Getenv("DJDEPLOY_TEST_PYTHON"); py != "" {
		if p := filepath.Join(filepath.Dir(py), "uv"); fileExists(p) {
			return p
		}
	}
	if p := filepath.Join(e2e.Root(t), ".tools", "py", "bin", "uv"); fileExists(p) {
		return p
	}
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
