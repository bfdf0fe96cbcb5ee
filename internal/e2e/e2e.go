// Package e2e is the release fixture that end-to-end tests share: the
// emulator with its own Azurite, a copy of examples/django-app to edit,
// `djdeploy` run in-process through cli.Main, and the check that
// production serves a complete release (its page, and every static file
// the page links).
//
// It is test support: only _test.go files import it. It is not part of
// internal/testenv because it imports internal/emulator and internal/cli,
// whose own tests import testenv (an import cycle).
package e2e

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
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/djdeploy/djdeploy/internal/azurite"
	"github.com/djdeploy/djdeploy/internal/cli"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

// App is the web app of the emulator's default resources.
const App = "demo-app"

// Require skips a test that releases under -short and returns the test
// environment's Python (.tools/py, Django 5.2); a missing Python with
// Django or a missing Azurite skips locally and fails with CI=true
// (testenv).
func Require(t testing.TB, what string) string {
	t.Helper()
	if testing.Short() {
		t.Skip(what)
	}
	py := testenv.Python(t)
	if _, err := azurite.Find(); err != nil {
		testenv.Missing(t, "azurite", err.Error()+" (run 'make deps')")
	}
	return py
}

// StartEmulator starts the emulator a release test uses: a private
// Azurite, the example's app under gunicorn with one worker (the machine
// has two cores), and Retry-After 1 s so retries end fast. log receives
// its event lines (nil discards). The caller closes it.
func StartEmulator(ctx context.Context, py string, log io.Writer) (*emulator.Emulator, error) {
	return emulator.Start(ctx, emulator.Config{StartAzurite: true, Python: py, Workers: 1, RetryAfter: 1, Log: log})
}

// Emulator is StartEmulator for one test, closed at its cleanup.
func Emulator(t testing.TB, py string) *emulator.Emulator {
	t.Helper()
	emu, err := StartEmulator(context.Background(), py, nil)
	if err != nil {
		t.Fatalf("starting the emulator: %v", err)
	}
	t.Cleanup(func() { emu.Close() })
	return emu
}

// Env is the emulator's export block plus DJDEPLOY_PYTHON: the
// environment under which `djdeploy release` releases into it.
func Env(emu *emulator.Emulator, py string) map[string]string {
	env := emu.Env()
	env["DJDEPLOY_PYTHON"] = py
	return env
}

// With is base with extra applied, where an extra value "" deletes the
// variable. base is not changed.
func With(base, extra map[string]string) map[string]string {
	env := make(map[string]string, len(base)+len(extra))
	for k, v := range base {
		env[k] = v
	}
	for k, v := range extra {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	return env
}

// Root is the repository root: the first folder above the working
// directory (a package's folder under go test) with a go.mod.
func Root(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			t.Fatalf("no go.mod above %s", wd)
		}
	}
}

// Project copies examples/django-app into a fresh folder named name under
// the test's temporary folder, as a checkout would have it (no collected
// static files, no database, no caches), and returns it.
func Project(t testing.TB, name string) string {
	t.Helper()
	src := filepath.Join(Root(t), "examples", "django-app")
	dst := filepath.Join(t.TempDir(), name)
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

// Edit replaces old with new in a project file, failing when old is
// absent (an edit that changes nothing would make the test prove nothing).
func Edit(t testing.TB, dir, rel, old, new string) {
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

// Result is one djdeploy invocation.
type Result struct {
	Code           int
	Stdout, Stderr string
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s\n--- stderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// Main runs djdeploy in-process through cli.Main with exactly env as its
// environment and an empty stdin. It does not call t.Fatal, so goroutines
// may call it.
func Main(ctx context.Context, env map[string]string, args ...string) Result {
	var out, errb bytes.Buffer
	code := cli.Main(ctx, args, cli.IO{In: strings.NewReader(""), Out: &out, Err: &errb}, func(k string) string { return env[k] })
	return Result{Code: code, Stdout: out.String(), Stderr: errb.String()}
}

// Page is what production serves at /, and what it links.
type Page struct {
	Release string
	Body    string
	Static  []string // the URLs of the static files the page links
}

var (
	releaseRE = regexp.MustCompile(`<code id="release-id">([^<]*)</code>`)
	linkRE    = regexp.MustCompile(`(?:href|src)="([^"]+)"`)
	cssURLRE  = regexp.MustCompile(`url\(["']?([^"')]+)["']?\)`)
)

// Get fetches url and reads the whole body.
func Get(c *http.Client, url string) (int, http.Header, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header, "", fmt.Errorf("reading the body of %s: %w", url, err)
	}
	return resp.StatusCode, resp.Header, string(b), nil
}

// Production reads an app's production home page over HTTP, as a visitor
// would, and the release id it names.
func Production(c *http.Client, emu *emulator.Emulator, app string) (Page, error) {
	code, _, body, err := Get(c, emu.ProductionURL(app)+"/")
	if err != nil {
		return Page{}, fmt.Errorf("GET production: %w", err)
	}
	if code != 200 {
		return Page{}, fmt.Errorf("production answers %d:\n%s", code, body)
	}
	m := releaseRE.FindStringSubmatch(body)
	if m == nil {
		return Page{}, fmt.Errorf("production's page names no release:\n%s", body)
	}
	p := Page{Release: m[1], Body: body}
	for _, l := range linkRE.FindAllStringSubmatch(body, -1) {
		p.Static = append(p.Static, l[1])
	}
	return p, nil
}

var wantType = map[string]string{".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".png": "image/png"}

// CheckStatic fetches every static file p links, and every url() those css
// files reference, and returns what is wrong: fewer than three links (the
// example links css, js and a logo), a link not under base, an answer
// other than 200, a wrong content type.
func CheckStatic(c *http.Client, p Page, base string) []string {
	var problems []string
	if len(p.Static) < 3 {
		problems = append(problems, fmt.Sprintf("production's page links %d static files, want css, js and the logo:\n%s", len(p.Static), p.Body))
	}
	seen := map[string]bool{}
	queue := append([]string{}, p.Static...)
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		if seen[u] {
			continue
		}
		seen[u] = true
		if !strings.HasPrefix(u, base) {
			problems = append(problems, fmt.Sprintf("static link %s is not on the CDN endpoint %s", u, base))
			continue
		}
		code, hdr, body, err := Get(c, u)
		if err != nil || code != 200 {
			problems = append(problems, fmt.Sprintf("GET %s through the CDN: %d %v", u, code, err))
			continue
		}
		ext := strings.ToLower(filepath.Ext(u))
		mt, _, _ := mime.ParseMediaType(hdr.Get("Content-Type"))
		if want := wantType[ext]; want != "" && mt != want && !(ext == ".js" && mt == "application/javascript") {
			problems = append(problems, fmt.Sprintf("GET %s: Content-Type %q, want %s", u, hdr.Get("Content-Type"), want))
		}
		if ext == ".css" {
			for _, m := range cssURLRE.FindAllStringSubmatch(body, -1) {
				if ref := m[1]; !strings.HasPrefix(ref, "data:") && !strings.Contains(ref, "://") {
					queue = append(queue, Resolve(u, ref))
				}
			}
		}
	}
	return problems
}

// Resolve resolves a url() reference in a css file against its URL.
func Resolve(base, ref string) string {
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

// DecodeResult reads the result of a --json envelope on stdout into v. ok
// is false when there is no result (the command failed before it had
// one); err when stdout is not an envelope.
func DecodeResult(stdout string, v any) (ok bool, err error) {
	env, err := cli.DecodeEnvelope([]byte(stdout), v)
	if err != nil {
		return false, err
	}
	raw, _ := env.Result.(json.RawMessage)
	return len(raw) > 0 && string(raw) != "null", nil
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary builds cmd/djdeploy once per test process and returns its path,
// for tests that run the real binary (exit codes, terminals, signals).
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "djdeploy-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "djdeploy")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/djdeploy")
		cmd.Dir = Root(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}
