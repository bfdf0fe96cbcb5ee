package artifact

import (
	"archive/zip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

// realisticRequirements is the requirement set with compiled packages
// (psycopg's binary build, Pillow, cryptography) that App Service apps
// commonly carry.
func realisticRequirements(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "requirements-realistic.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRequirementNames(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"requirements.txt": "# app\nDjango>=5.2,<6  # web\n-r base/common.txt\n--index-url https://example.net/simple\nuvicorn[standard]==0.30 ; python_version >= '3.9'\nPillow \\\n  >=11\n",
		"base/common.txt":  "Gunicorn\npsycopg[binary]\nzope.interface\n",
		"editable.txt":     "-e .\nDjango\n",
		"url.txt":          "./wheels/x.whl\n",
	})
	for _, tt := range []struct {
		file     string
		want     []string
		complete bool
	}{
		{"requirements.txt", []string{"django", "gunicorn", "pillow", "psycopg", "uvicorn", "zope-interface"}, true},
		{"editable.txt", []string{"django"}, false},
		{"url.txt", nil, false},
	} {
		names, complete, err := requirementNames(dir, tt.file)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for n := range names {
			got = append(got, n)
		}
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(tt.want, " ") || complete != tt.complete {
			t.Errorf("%s: %v complete=%v, want %v complete=%v", tt.file, got, complete, tt.want, tt.complete)
		}
	}
}

// TestBuildLocalFromPyPI vendors the realistic set from PyPI with uv and
// with pip, and imports every package from the zip's site-packages with a
// bare CPython 3.12, as App Service's runtime would.
func TestBuildLocalFromPyPI(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads from PyPI")
	}
	py := testenv.Python(t)
	base := testenv.BasePython(t)
	for _, inst := range []string{InstallerUV, InstallerPip} {
		t.Run(inst, func(t *testing.T) {
			project := exampleApp(t)
			writeFiles(t, project, map[string]string{"requirements.txt": realisticRequirements(t)})
			res, err := build(t, py, project, func(o *Options) {
				o.DependencyMode = ModeLocal
				o.Installer = inst
				if inst == InstallerUV {
					o.UV = testenv.UV(t)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			m := res.Manifest
			if m.AppSettings["SCM_DO_BUILD_DURING_DEPLOYMENT"] != "false" || m.StartupHint.PythonPath != "/home/site/wwwroot/"+LocalPackagesDir || m.PythonVersion != "3.12" {
				t.Fatalf("manifest: %+v", m)
			}
			// Compiled modules for CPython 3.12 on x86_64 Linux, not the
			// build machine's own interpreter's.
			zr, err := zip.OpenReader(res.ZipPath)
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			want := map[string]*regexp.Regexp{
				"psycopg_binary": regexp.MustCompile(`^` + LocalPackagesDir + `/psycopg_binary/.*\.cpython-312-x86_64-linux-gnu\.so$`),
				"Pillow":         regexp.MustCompile(`^` + LocalPackagesDir + `/PIL/_imaging\.cpython-312-x86_64-linux-gnu\.so$`),
				"cryptography":   regexp.MustCompile(`^` + LocalPackagesDir + `/cryptography/hazmat/bindings/_rust\.abi3\.so$`),
			}
			for _, f := range zr.File {
				for k, re := range want {
					if re.MatchString(f.Name) {
						delete(want, k)
					}
				}
				if strings.Contains(f.Name, "__pycache__") || strings.HasSuffix(f.Name, ".pyc") {
					t.Errorf("vendored bytecode %s", f.Name)
				}
			}
			for k := range want {
				t.Errorf("the zip has no CPython 3.12 manylinux binary of %s", k)
			}

			site := filepath.Join(t.TempDir(), "app")
			if out, err := exec.Command("unzip", "-q", res.ZipPath, "-d", site).CombinedOutput(); err != nil {
				t.Fatalf("unzip: %v %s", err, out)
			}
			script := `import sys
import django, gunicorn, uvicorn, whitenoise, psycopg, PIL.Image, cryptography
from cryptography.fernet import Fernet
assert psycopg.pq.__impl__ == "binary", psycopg.pq.__impl__
PIL.Image.new("RGB", (2, 2)).tobytes()
Fernet(Fernet.generate_key()).encrypt(b"x")
for m in (django, gunicorn, uvicorn, psycopg, PIL, cryptography):
    assert "/.python_packages/" in m.__file__, m.__file__
print(django.get_version())
`
			// PYTHONPATH, as the startup command sets it on App Service.
			cmd := exec.Command(base, "-c", script)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "PYTHONPATH=" + filepath.Join(site, LocalPackagesDir), "PYTHONNOUSERSITE=1"}
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), "5.") {
				t.Fatalf("importing the vendored packages with %s: %v\n%s", base, err, out)
			}
		})
	}
}

// TestBuildVenvFromPyPI builds with a Python that has no Django: the build
// virtualenv gets the requirements from PyPI, with uv and with pip.
func TestBuildVenvFromPyPI(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads from PyPI")
	}
	base := testenv.BasePython(t)
	for _, inst := range []string{InstallerUV, InstallerPip} {
		t.Run(inst, func(t *testing.T) {
			project := exampleApp(t)
			writeFiles(t, project, map[string]string{"requirements.txt": "Django>=5.2,<5.3\ngunicorn\nuvicorn\nwhitenoise\n"})
			res, err := build(t, base, project, func(o *Options) {
				o.Installer = inst
				if inst == InstallerUV {
					o.UV = testenv.UV(t)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(res.Manifest.DjangoVersion, "5.2") || res.Python == base || !strings.Contains(res.Python, "djdeploy-build-") {
				t.Fatalf("Django %s from %s", res.Manifest.DjangoVersion, res.Python)
			}
			if res.StaticFiles == 0 {
				t.Fatal("no static files collected")
			}
			// never: the same interpreter is refused with the fix.
			_, err = build(t, base, project, func(o *Options) { o.BuildVenv = "never" })
			if problem.ExitCode(err) != problem.ExitUsage || !strings.Contains(err.Error(), "cannot import Django") {
				t.Fatalf("build-venv never: %v", err)
			}
		})
	}
}

// TestBuildNeedsServerPackages: the auto startup command runs gunicorn
// with uvicorn's worker, so requirements without them cannot start.
func TestBuildNeedsServerPackages(t *testing.T) {
	py := testenv.Python(t)
	for _, tt := range []struct{ reqs, missing string }{
		{"Django\ngunicorn\n", "uvicorn"},
		{"Django\nuvicorn[standard]\n", "gunicorn"},
		{"Django\n", "gunicorn and uvicorn"},
		{"Django\n-r more.txt\n", "uvicorn"},
	} {
		project := exampleApp(t)
		writeFiles(t, project, map[string]string{"requirements.txt": tt.reqs, "more.txt": "gunicorn==23.0.0\n"})
		out := filepath.Join(t.TempDir(), "out")
		_, err := build(t, py, project, func(o *Options) { o.OutDir = out })
		pe, ok := problem.As(err)
		if !ok || problem.ExitCode(err) != problem.ExitUsage || !strings.Contains(pe.Fix, "add "+tt.missing+" to requirements.txt") {
			t.Errorf("%q: got %v", tt.reqs, err)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%q: the refused build made its output folder", tt.reqs)
		}
	}
}

// TestVendorBadRequirements: each requirement that local mode cannot
// vendor is named in one message with its fix, with uv and with pip.
func TestVendorBadRequirements(t *testing.T) {
	if testing.Short() {
		t.Skip("asks PyPI")
	}
	py := testenv.Python(t)
	cases := []struct {
		name, req string
		has       []string
	}{
		{"typo", "djangoo-restframework-typo", []string{"package djangoo-restframework-typo was not found on PyPI", "check the spelling"}},
		{"no such version", "Django==9.9.9", []string{"jango==9.9.9 does not exist on PyPI", "pin a version that exists"}},
		{"sdist only", "docopt==0.6.2", []string{"docopt==0.6.2 has no wheel for App Service (manylinux x86_64, CPython 3.12)", "dependency-mode remote"}},
	}
	for _, inst := range []string{InstallerUV, InstallerPip} {
		for _, tt := range cases {
			t.Run(inst+"/"+tt.name, func(t *testing.T) {
				project := exampleApp(t)
				writeFiles(t, project, map[string]string{"requirements.txt": "gunicorn\nuvicorn\n" + tt.req + "\n"})
				_, err := build(t, py, project, func(o *Options) {
					o.DependencyMode = ModeLocal
					o.Installer = inst
					if inst == InstallerUV {
						o.UV = testenv.UV(t)
					}
				})
				pe, ok := problem.As(err)
				if !ok || problem.ExitCode(err) != problem.ExitUsage {
					t.Fatalf("want exit 2, got %v", err)
				}
				for _, s := range tt.has {
					if !strings.Contains(pe.What+"\n"+pe.Fix, s) {
						t.Errorf("message lacks %q:\n%s\nfix: %s", s, pe.What, pe.Fix)
					}
				}
			})
		}
	}
}
