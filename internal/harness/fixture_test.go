package harness

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
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
// fails with CI=true (e2e.Require).
func fixture(t *testing.T) *shared {
	t.Helper()
	py := e2e.Require(t, "runner harness: builds the binary and runs releases against the emulator")
	root := e2e.Root(t)
	once.Do(func() { fx, fxErr = start(py, root) })
	if fxErr != nil {
		t.Fatalf("harness fixture: %v", fxErr)
	}
	return fx
}

func start(py, root string) (*shared, error) {
	s := &shared{py: py, root: root, emuLog: &lockedBuffer{}}
	var err error
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
	s.emu, err = e2e.StartEmulator(ctx, py, s.emuLog)
	if err != nil {
		return nil, fmt.Errorf("starting the emulator: %w", err)
	}
	cleanup = append(cleanup, func() { s.emu.Close() })
	return s, nil
}

// step is one process run of the binary, as a CI runs a step.
type step = e2e.Result

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
	r := step{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running djdeploy %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// production is the release id production's home page names, read over
// HTTP as a visitor would.
func (s *shared) production(t *testing.T) string {
	t.Helper()
	p, err := e2e.Production(&http.Client{Timeout: 30 * time.Second}, s.emu, app)
	if err != nil {
		t.Fatal(err)
	}
	return p.Release
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
