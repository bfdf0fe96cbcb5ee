package artifact

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
)

func validManifest() *Manifest {
	return &Manifest{
		Schema: 1, Project: "site", ReleaseID: "0123456789abcdef", PythonVersion: "3.12", DjangoVersion: "4.2.1",
		SettingsModule: "mysite.settings", DependencyMode: ModeRemote, StaticURL: "/static/", StaticRoot: "staticfiles",
		AppZip:      ZipInfo{Path: "app.zip", Size: 10, SHA256: strings.Repeat("a", 64)},
		AppSettings: map[string]string{"SCM_DO_BUILD_DURING_DEPLOYMENT": "true"},
		StartupHint: StartupHint{ASGIModule: "mysite.asgi"},
		Checks:      []Check{{ID: "security.W004", Level: "WARNING", Message: "m"}},
		Static: []StaticFile{
			{Path: "css/a.0123456789ab.css", Size: 3, MD5: "rL0Y20zC+Fzt72VPzMSk2A==", ContentType: "text/css; charset=utf-8", Hashed: true},
			{Path: "staticfiles.json", Size: 3, MD5: "rL0Y20zC+Fzt72VPzMSk2A==", ContentType: "application/json; charset=utf-8"},
		},
	}
}

func TestReadManifest(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m *Manifest)
		errHas string
	}{
		{"valid", func(*Manifest) {}, ""},
		{"schema", func(m *Manifest) { m.Schema = 2 }, "schema"},
		{"release id", func(m *Manifest) { m.ReleaseID = "XYZ" }, "release_id"},
		{"mode", func(m *Manifest) { m.DependencyMode = "vendored" }, "dependency_mode"},
		{"static root escapes", func(m *Manifest) { m.StaticRoot = "../static" }, "static_root"},
		{"unsorted static", func(m *Manifest) { m.Static[0], m.Static[1] = m.Static[1], m.Static[0] }, "sorted"},
		{"bad md5", func(m *Manifest) { m.Static[0].MD5 = "abc" }, "md5"},
		{"absolute static path", func(m *Manifest) { m.Static[0].Path = "/etc/passwd" }, "clean relative path"},
		{"check level", func(m *Manifest) { m.Checks[0].Level = "NOTE" }, "checks[0]"},
		{"zip digest", func(m *Manifest) { m.AppZip.SHA256 = "nope" }, "sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validManifest()
			tt.mutate(m)
			data, _ := json.Marshal(m)
			file := filepath.Join(t.TempDir(), ManifestName)
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadManifest(file)
			if tt.errHas == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got.ReleaseID != m.ReleaseID || len(got.Static) != 2 || !got.Static[0].Hashed {
					t.Fatalf("round trip lost data: %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) || problem.ExitCode(err) != problem.ExitUsage {
				t.Fatalf("got %v, want a usage error about %q", err, tt.errHas)
			}
		})
	}
	if _, err := ReadManifest(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestManifestJSONShape(t *testing.T) {
	data, err := json.Marshal(validManifest())
	if err != nil {
		t.Fatal(err)
	}
	// The field names and order are a contract with static sync and deploy.
	want := []string{`"schema"`, `"project"`, `"release_id"`, `"git_commit"`, `"python_version"`, `"django_version"`,
		`"settings_module"`, `"dependency_mode"`, `"static_url"`, `"static_root"`, `"app_zip"`, `"app_settings"`,
		`"startup_hint"`, `"asgi_module"`, `"pythonpath"`, `"checks"`, `"hint"`, `"static"`, `"md5"`, `"content_type"`, `"hashed"`}
	at := 0
	for _, k := range want {
		i := strings.Index(string(data[at:]), k)
		if i < 0 {
			t.Fatalf("%s missing or out of order in %s", k, data)
		}
		at += i
	}
}
