package artifact

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
)

func TestSettingsModuleFromManagePy(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"startproject", `    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")`, "mysite.settings"},
		{"single quotes and spaces", `os.environ.setdefault( 'DJANGO_SETTINGS_MODULE' ,'config.settings.production' )`, "config.settings.production"},
		{"commented out first", "# os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"old.settings\")\nos.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"new.settings\")", "new.settings"},
		{"direct assignment is not a default", `os.environ["DJANGO_SETTINGS_MODULE"] = "x.settings"`, ""},
		{"other variable", `os.environ.setdefault("OTHER", "x.settings")`, ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SettingsModuleFromManagePy([]byte(tt.src)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// writeFiles creates files (path -> content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const managePy = `import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
`

func TestDetectProject(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		override string
		want     string // settings module, or "" when an error is expected
		wantReq  string
		errHas   []string
	}{
		{name: "startproject layout", files: map[string]string{"manage.py": managePy, "mysite/settings.py": "", "requirements.txt": "Django"},
			want: "mysite.settings", wantReq: "requirements.txt"},
		{name: "settings package and pyproject", files: map[string]string{"manage.py": managePy, "mysite/settings/__init__.py": "", "pyproject.toml": ""},
			want: "mysite.settings", wantReq: "pyproject.toml"},
		{name: "override", files: map[string]string{"manage.py": managePy, "conf/prod.py": "", "requirements.txt": ""}, override: "conf.prod",
			want: "conf.prod", wantReq: "requirements.txt"},
		{name: "empty folder", files: map[string]string{"README": ""},
			errHas: []string{"is not a Django project", "no manage.py", "requirements.txt"}},
		{name: "no requirements", files: map[string]string{"manage.py": managePy, "mysite/settings.py": ""},
			errHas: []string{"no requirements.txt (or pyproject.toml)"}},
		{name: "wrong settings module", files: map[string]string{"manage.py": managePy, "requirements.txt": ""},
			errHas: []string{"settings module mysite.settings not found", "mysite/settings.py"}},
		{name: "manage.py without default", files: map[string]string{"manage.py": "import sys\n", "requirements.txt": ""},
			errHas: []string{"does not set DJANGO_SETTINGS_MODULE"}},
		{name: "bad override", files: map[string]string{"manage.py": managePy, "mysite/settings.py": "", "requirements.txt": ""}, override: "my-site/settings",
			errHas: []string{"not a Python module name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			p, err := DetectProject(dir, tt.override)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("want an error, got %+v", p)
				}
				if problem.ExitCode(err) != problem.ExitUsage {
					t.Fatalf("want a usage error (exit 2), got %v", err)
				}
				pe, _ := problem.As(err)
				if pe.Fix == "" {
					t.Fatalf("error has no fix: %v", err)
				}
				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Fatalf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.SettingsModule != tt.want || p.Requirements != tt.wantReq || p.Name != filepath.Base(dir) {
				t.Fatalf("got %+v", p)
			}
		})
	}
}

func TestASGIModule(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"config/asgi.py": "", "config/settings/prod.py": ""})
	if m, ok := asgiModule(dir, "config.settings.prod", ""); m != "config.asgi" || !ok {
		t.Fatalf("got %s %v", m, ok)
	}
	if m, ok := asgiModule(dir, "config.settings.prod", "web.asgi.application"); m != "web.asgi" || !ok {
		t.Fatalf("ASGI_APPLICATION should win, got %s %v", m, ok)
	}
	if m, ok := asgiModule(dir, "other.settings", ""); m != "other.asgi" || ok {
		t.Fatalf("got %s %v", m, ok)
	}
}
