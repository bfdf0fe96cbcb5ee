package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/artifact"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

func buildExampleDir(t *testing.T) string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", "examples", "django-app")
}

func runBuildMain(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		if k == "PATH" || k == "HOME" {
			return os.Getenv(k)
		}
		return ""
	}
	code := Main(context.Background(), args, IO{In: strings.NewReader(""), Out: &out, Err: &errb}, getenv)
	return code, out.String(), errb.String()
}

func TestBuildCommand(t *testing.T) {
	py := testenv.Python(t)
	out := filepath.Join(t.TempDir(), "build")
	code, stdout, stderr := runBuildMain(t, map[string]string{"DJDEPLOY_PYTHON": py, "SOURCE_DATE_EPOCH": "1700000000"},
		"build", "--project", buildExampleDir(t), "--out", out, "--json",
		"--build-env", "STATIC_URL=https://cdn.example.net/static/,ALLOWED_HOSTS=a.example,b.example")
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	var sum buildSummary
	if err := decodeResult(stdout, &sum); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, stdout)
	}
	m, err := artifact.ReadManifest(filepath.Join(out, "release.json"))
	if err != nil {
		t.Fatal(err)
	}
	if sum.ReleaseID != m.ReleaseID || sum.AppZip.Files == 0 || sum.Static.Files != len(m.Static) || sum.Static.Hashed == 0 {
		t.Fatalf("summary %+v vs manifest %s", sum, m.ReleaseID)
	}
	// build-env reached manage.py: collectstatic saw the CDN URL.
	if m.StaticURL != "https://cdn.example.net/static/" {
		t.Fatalf("static_url %q", m.StaticURL)
	}
	if !strings.Contains(stderr, "collecting static files") || strings.Contains(stdout, "collecting") {
		t.Fatalf("progress belongs on stderr only:\nstdout %s\nstderr %s", stdout, stderr)
	}
}

func TestParseBuildEnv(t *testing.T) {
	got, err := parseBuildEnv([]string{"ALLOWED_HOSTS=a.example", "b.example", "DEBUG=false", "EMPTY="})
	if err != nil {
		t.Fatal(err)
	}
	if got["ALLOWED_HOSTS"] != "a.example,b.example" || got["DEBUG"] != "false" || len(got) != 3 {
		t.Fatalf("got %v", got)
	}
	if _, err := parseBuildEnv([]string{"no-equals"}); err == nil {
		t.Fatal("want an error")
	}
}

func TestBuildCommandErrors(t *testing.T) {
	py := testenv.Python(t)
	notDjango := t.TempDir()
	broken := t.TempDir()
	// A copy of the example app whose css references a missing file.
	copyBuildDir(t, buildExampleDir(t), broken)
	if err := os.WriteFile(filepath.Join(broken, "pages/static/pages/css/broken.css"), []byte(`a { background: url("nope.png") }`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		errHas string
	}{
		{"no --out", []string{"build", "--project", buildExampleDir(t)}, 2, "missing required setting: --out"},
		{"not a Django project", []string{"build", "--project", notDjango, "--out", filepath.Join(t.TempDir(), "o")}, 2, "is not a Django project"},
		{"bad dependency mode", []string{"build", "--project", buildExampleDir(t), "--out", filepath.Join(t.TempDir(), "o"), "--dependency-mode", "vendored"}, 2, "not an accepted value"},
		{"broken collectstatic", []string{"build", "--project", broken, "--out", filepath.Join(t.TempDir(), "o")}, 1, "collectstatic failed"},
		{"unknown flag", []string{"build", "--nope"}, 2, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runBuildMain(t, map[string]string{"DJDEPLOY_PYTHON": py}, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstderr:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, "error: ") || !strings.Contains(stderr, "fix: ") || !strings.Contains(stderr, tt.errHas) {
				t.Fatalf("stderr lacks error/fix/%q:\n%s", tt.errHas, stderr)
			}
			for _, bad := range []string{"goroutine ", "panic:", ".go:"} {
				if strings.Contains(stderr, bad) {
					t.Fatalf("stderr shows Go internals (%q):\n%s", bad, stderr)
				}
			}
			if stdout != "" {
				t.Fatalf("a failed build printed results: %s", stdout)
			}
		})
	}
}

func copyBuildDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() && (info.Name() == "__pycache__" || rel == "staticfiles") {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}
