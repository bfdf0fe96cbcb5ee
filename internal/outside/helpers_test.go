package outside

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

// basePython is a CPython 3.12 without Django: App Service's runtime
// before the release's packages.
func basePython(t *testing.T) string {
	t.Helper()
	p := os.Getenv("DJDEPLOY_TEST_BASE_PYTHON")
	if p == "" {
		m, _ := filepath.Glob(filepath.Join(os.Getenv("HOME"), ".pyenv", "versions", "3.12.*", "bin", "python3.12"))
		if len(m) == 0 {
			testenv.Missing(t, "a Python 3.12 without Django", "install Python 3.12 (pyenv install 3.12) or set DJDEPLOY_TEST_BASE_PYTHON")
		}
		p = m[len(m)-1]
	}
	if err := exec.Command(p, "-c", "import django").Run(); err == nil {
		t.Fatalf("%s imports Django; the base Python must not", p)
	}
	return p
}

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
	emu, err := e2e.StartEmulator(context.Background(), appPython, nil)
	if err != nil {
		t.Fatalf("starting the emulator: %v", err)
	}
	t.Cleanup(func() { emu.Close() })
	return &fixture{emu: emu, env: e2e.With(e2e.Env(emu, buildPython), netEnv()), http: &http.Client{Timeout: 60 * time.Second}}
}

// release runs `djdeploy release` on dir and fails the test unless it
// succeeds.
func (f *fixture) release(t *testing.T, dir string, more ...string) e2e.Result {
	t.Helper()
	args := append([]string{"release", "--project", dir, "--fix-settings",
		"--health-path", "/healthz", "--warmup-timeout", "60s", "--verify-timeout", "60s",
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
