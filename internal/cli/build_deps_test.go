package cli

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/testenv"
)

// TestBuildDependencyBadInput runs `djdeploy build` on requirements that
// cannot become a release: one message naming the requirement and the
// fix, exit 2 for what the user must change and 1 for an index that does
// not answer, no stack trace, nothing written to --out.
func TestBuildDependencyBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("asks PyPI")
	}
	py := testenv.Python(t)
	// A port nothing listens on: the index that does not answer.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadIndex := "http://" + l.Addr().String() + "/simple/"
	l.Close()
	server := "gunicorn\nuvicorn\n"
	tests := []struct {
		name  string
		files map[string]string // written over a copy of the example app; "" deletes
		args  []string
		code  int
		has   []string
	}{
		{"typo'd package", map[string]string{"requirements.txt": server + "djangorestframwork\n"}, []string{"--dependency-mode", "local"}, 2,
			[]string{"package djangorestframwork was not found on PyPI", "check the spelling in requirements.txt"}},
		{"version that does not exist", map[string]string{"requirements.txt": server + "Django==9.9.9\n"}, []string{"--dependency-mode", "local"}, 2,
			[]string{"django==9.9.9 does not exist on PyPI", "pin a version that exists"}},
		{"sdist only in local mode", map[string]string{"requirements.txt": server + "Django>=5.2,<6\ndocopt==0.6.2\n"}, []string{"--dependency-mode", "local"}, 2,
			[]string{"docopt==0.6.2 has no wheel for App Service (manylinux x86_64, CPython 3.12)", "use dependency-mode remote"}},
		{"unreachable index", nil, []string{"--dependency-mode", "local", "--pip-index-url", deadIndex}, 1,
			[]string{"the package index " + deadIndex + " does not answer", "check the URL and the network"}},
		{"pyproject.toml without requirements.txt", map[string]string{"requirements.txt": "", "pyproject.toml": "[project]\nname = \"site\"\nversion = \"1\"\ndependencies = [\"Django>=5.2\", \"gunicorn\", \"uvicorn\"]\n"},
			nil, 2, []string{"has no requirements.txt, only pyproject.toml", "uv export --no-hashes -o requirements.txt"}},
		{"no uvicorn (remote)", map[string]string{"requirements.txt": "Django>=5.2,<6\ngunicorn\n"}, nil, 2,
			[]string{"requirements.txt lacks uvicorn: the app could not start on App Service", "add uvicorn to requirements.txt"}},
		{"no gunicorn or uvicorn vendored (local)", map[string]string{"requirements.txt": "Django>=5.2,<6\n"}, []string{"--dependency-mode", "local"}, 2,
			[]string{"lacks gunicorn and uvicorn", "add gunicorn and uvicorn to requirements.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			project := filepath.Join(t.TempDir(), "site")
			copyBuildDir(t, buildExampleDir(t), project)
			for name, body := range tt.files {
				p := filepath.Join(project, name)
				if body == "" {
					os.Remove(p)
				} else if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out := filepath.Join(t.TempDir(), "out")
			args := append([]string{"build", "--project", project, "--out", out}, tt.args...)
			code, stdout, stderr := runBuildMain(t, installerEnv(py), args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstderr:\n%s", code, tt.code, stderr)
			}
			for _, s := range append([]string{"error: ", "fix: "}, tt.has...) {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			for _, bad := range []string{"goroutine ", "panic:", ".go:", "Traceback"} {
				if strings.Contains(stderr, bad) {
					t.Errorf("stderr shows internals (%q):\n%s", bad, stderr)
				}
			}
			if stdout != "" {
				t.Errorf("a failed build printed results: %s", stdout)
			}
			for _, f := range []string{"app.zip", "release.json"} {
				if _, err := os.Stat(filepath.Join(out, f)); err == nil {
					t.Errorf("a failed build left %s", f)
				}
			}
		})
	}
}

// installerEnv is the environment a build reaching PyPI needs: the test's
// Python, and the runner's TLS roots and proxies (behind an intercepting
// proxy, uv and pip need them).
func installerEnv(py string) map[string]string {
	env := map[string]string{"DJDEPLOY_PYTHON": py}
	for _, k := range []string{"SSL_CERT_FILE", "SSL_CERT_DIR", "PIP_CERT", "REQUESTS_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"} {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
	}
	return env
}
