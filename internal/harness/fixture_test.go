package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/azurite"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

const app = "demo-app"

// shared is the package's one emulator (with its Azurite) and the built
// binary: starting them is most of the cost, and the tests that use them run
// in sequence (no t.Parallel), so each sees the previous one's releases.
type shared struct {
	root   string // repository root
	bin    string // the built djdeploy
	py     string
	emu    *emulator.Emulator
	emuLog *lockedBuffer // the emulator's event log, scanned for secrets
	tmp    string
}

var (
	once    sync.Once
	fx      *shared
	fxErr   error
	cleanup []func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(cleanup) - 1; i >= 0; i-- {
		cleanup[i]()
	}
	os.Exit(code)
}

// fixture returns the shared binary and emulator, starting them on first
// use. A missing Python with Django or a missing Azurite skips locally and
// fails with CI=true (testenv).
func fixture(t *testing.T) *shared {
	t.Helper()
	if testing.Short() {
		t.Skip("runner harness: builds the binary and runs releases against the emulator")
	}
	py := testenv.Python(t)
	if _, err := azurite.Find(); err != nil {
		testenv.Missing(t, "azurite", err.Error()+" (run 'make deps')")
	}
	once.Do(func() { fx, fxErr = start(py) })
	if fxErr != nil {
		t.Fatalf("harness fixture: %v", fxErr)
	}
	return fx
}

func start(py string) (*shared, error) {
	s := &shared{py: py, emuLog: &lockedBuffer{}}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			s.root = dir
			break
		}
		if filepath.Dir(dir) == dir {
			return nil, fmt.Errorf("no go.mod above %s", wd)
		}
	}
	if s.tmp, err = os.MkdirTemp("", "djdeploy-harness-"); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { os.RemoveAll(s.tmp) })

	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	s.bin = filepath.Join(s.tmp, "djdeploy")
	build := exec.Command(goBin, "build", "-o", s.bin, "./cmd/djdeploy")
	build.Dir = s.root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building djdeploy: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s.emu, err = emulator.Start(ctx, emulator.Config{StartAzurite: true, Python: py, Workers: 1, RetryAfter: 1, Log: s.emuLog})
	if err != nil {
		return nil, fmt.Errorf("starting the emulator: %w", err)
	}
	cleanup = append(cleanup, func() { s.emu.Close() })
	return s, nil
}

// project copies examples/django-app into a fresh folder the test may edit,
// as a checkout would have it (no collected static files, no database).
func (s *shared) project(t *testing.T) string {
	t.Helper()
	src := filepath.Join(s.root, "examples", "django-app")
	dst := filepath.Join(t.TempDir(), "workspace")
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

// edit replaces old with new in a project file; an edit that changes
// nothing would make the test prove nothing, so a missing old fails.
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

// step is one process run of the binary, as a CI runs a step.
type step struct {
	code           int
	stdout, stderr string
}

func (r step) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s\n--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// baseEnv is what any runner's process has besides the CI's own variables;
// nothing else of the test's environment (a developer's DJDEPLOY_* or
// AZURE_*) reaches the binary.
func baseEnv(home string) map[string]string {
	env := map[string]string{"HOME": home, "LANG": "C.UTF-8"}
	for _, k := range []string{"PATH", "TMPDIR"} {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
	}
	return env
}

// run executes the binary in dir with exactly env.
func (s *shared) run(t *testing.T, dir string, env map[string]string, args ...string) step {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Dir = dir
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := step{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running djdeploy %s: %v", strings.Join(args, " "), err)
	}
	return r
}

var releaseRE = regexp.MustCompile(`<code id="release-id">([^<]*)</code>`)

// production is the release id production's home page names, read over
// HTTP as a visitor would.
func (s *shared) production(t *testing.T) string {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(s.emu.ProductionURL(app) + "/")
	if err != nil {
		t.Fatalf("GET production: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("production answers %d:\n%s", resp.StatusCode, b)
	}
	m := releaseRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("production's page names no release:\n%s", b)
	}
	return string(m[1])
}

// lockedBuffer is an io.Writer safe for the emulator's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

func writeFile(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return string(b)
}
