package artifact

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

// exampleApp copies examples/django-app into a temporary folder (tests add
// files to it) and returns the copy.
func exampleApp(t *testing.T) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(here), "..", "..", "examples", "django-app")
	dst := filepath.Join(t.TempDir(), "django-app")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && (d.Name() == "__pycache__" || rel == "staticfiles") {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func build(t *testing.T, py, project string, mutate func(*Options)) (*Result, error) {
	t.Helper()
	opt := Options{ProjectDir: project, OutDir: filepath.Join(t.TempDir(), "out"), Python: py}
	if mutate != nil {
		mutate(&opt)
	}
	return Build(context.Background(), opt, progress.Discard)
}

func zipContents(t *testing.T, file string) map[string][]byte {
	t.Helper()
	zr, err := zip.OpenReader(file)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		out[f.Name] = data
	}
	return out
}

// treeDigests maps each file under dir to its sha256.
func treeDigests(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = fmt.Sprintf("%x", sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBuildExampleApp(t *testing.T) {
	py := testenv.Python(t)
	project := exampleApp(t)
	// Things that must stay out of the zip.
	writeFiles(t, project, map[string]string{
		".git/HEAD":                      "ref: refs/heads/main\n",
		"pages/__pycache__/views.pyc":    "bytecode",
		".venv/pyvenv.cfg":               "home = /usr/bin\n",
		".venv/lib/site.py":              "",
		"frontend/node_modules/x/a.js":   "",
		"frontend/src/app.js":            "console.log(1)\n",
		".env":                           "SECRET_KEY=leaked\n",
		"staticfiles/stale.css":          "/* an old local collectstatic */",
		"db.sqlite3":                     "sqlite", // .djdeployignore: *.sqlite3
		"docs/notes.md":                  "notes",  // .djdeployignore: /docs/
		"pages/static/pages/docs/ok.txt": "kept: /docs/ is anchored",
	})
	res, err := build(t, py, project, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest

	// release.json on disk is what Build returned, and valid.
	disk, err := ReadManifest(res.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	if disk.ReleaseID != m.ReleaseID || disk.AppZip.SHA256 != res.Zip.SHA256 {
		t.Fatalf("release.json disagrees with the result")
	}
	zipBytes, _ := os.ReadFile(res.ZipPath)
	if fmt.Sprintf("%x", sha256.Sum256(zipBytes)) != m.AppZip.SHA256 || int64(len(zipBytes)) != m.AppZip.Size {
		t.Fatal("app_zip digest or size does not match app.zip")
	}
	if m.Project != "django-app" || m.SettingsModule != "mysite.settings" || m.StaticRoot != "staticfiles" ||
		m.StaticURL != "/static/" || m.DependencyMode != ModeRemote || m.PythonVersion != "3.12" ||
		m.StartupHint.ASGIModule != "mysite.asgi" || m.StartupHint.PythonPath != "" ||
		m.AppSettings["SCM_DO_BUILD_DURING_DEPLOYMENT"] != "true" || m.AppSettings["DISABLE_COLLECTSTATIC"] != "true" ||
		!strings.HasPrefix(m.DjangoVersion, "3.") && !strings.HasPrefix(m.DjangoVersion, "4.") && !strings.HasPrefix(m.DjangoVersion, "5.") {
		t.Fatalf("manifest: %+v", m)
	}

	// Zip entries: the source, the manifest at STATIC_ROOT, nothing excluded.
	entries := zipContents(t, res.ZipPath)
	for _, want := range []string{"manage.py", "requirements.txt", "mysite/settings.py", "mysite/asgi.py", "pages/views.py",
		"pages/templates/pages/home.html", "pages/static/pages/css/site.css", "frontend/src/app.js",
		"pages/static/pages/docs/ok.txt", "staticfiles/", "staticfiles/staticfiles.json", ".djdeployignore"} {
		if _, ok := entries[want]; !ok {
			t.Errorf("zip lacks %s", want)
		}
	}
	// The release id is baked into the package (the app reads it from
	// there) and covers every byte of the zip before that stamp.
	if got := string(entries[StampName]); got != m.ReleaseID+"\n" {
		t.Errorf("zip's %s = %q, want the release id %s", StampName, got, m.ReleaseID)
	}
	if idx := bytes.LastIndex(zipBytes, []byte("PK\x03\x04")); idx < 0 ||
		releaseID(fmt.Sprintf("%x", sha256.Sum256(zipBytes[:idx])), m.Static) != m.ReleaseID {
		t.Error("the release id is not derived from the zip's bytes before the stamp")
	}
	for name := range entries {
		for _, bad := range []string{".git/", "__pycache__", ".pyc", ".venv", "node_modules", "db.sqlite3", "docs/notes.md", "staticfiles/stale.css", "staticfiles/admin/"} {
			if strings.Contains(name, bad) {
				t.Errorf("zip holds excluded %s", name)
			}
		}
		if name == ".env" {
			t.Error("zip holds .env")
		}
	}
	staticJSON, _ := os.ReadFile(filepath.Join(res.StaticDir, "staticfiles.json"))
	if !bytes.Equal(entries["staticfiles/staticfiles.json"], staticJSON) {
		t.Error("the zip's staticfiles.json is not the one collected")
	}

	// The static listing matches the files, with Content-MD5 digests, and
	// `hashed` follows staticfiles.json.
	var sm staticManifest
	if err := json.Unmarshal(staticJSON, &sm); err != nil {
		t.Fatal(err)
	}
	hashedSet := map[string]bool{}
	for _, h := range sm.Paths {
		hashedSet[h] = true
	}
	cssHashed := sm.Paths["pages/css/site.css"]
	if cssHashed == "" || cssHashed == "pages/css/site.css" {
		t.Fatalf("site.css has no hashed name in staticfiles.json: %q", cssHashed)
	}
	onDisk := treeDigests(t, res.StaticDir)
	if len(onDisk) != len(m.Static) {
		t.Fatalf("%d static files on disk, %d in release.json", len(onDisk), len(m.Static))
	}
	var seenCSS bool
	for _, f := range m.Static {
		data, err := os.ReadFile(filepath.Join(res.StaticDir, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(data)) != f.Size || f.MD5 != md5b64(data) {
			t.Errorf("%s: size/md5 mismatch", f.Path)
		}
		if f.Hashed != hashedSet[f.Path] {
			t.Errorf("%s: hashed=%v, staticfiles.json says %v", f.Path, f.Hashed, hashedSet[f.Path])
		}
		if f.Path == cssHashed {
			seenCSS = true
			if f.ContentType != "text/css; charset=utf-8" || !f.Hashed {
				t.Errorf("%s: %+v", f.Path, f)
			}
			// The url() reference was rewritten to the hashed image.
			if !strings.Contains(string(data), sm.Paths["pages/img/pattern.svg"][len("pages/"):]) {
				t.Errorf("hashed css does not reference the hashed pattern.svg: %s", data)
			}
		}
	}
	if !seenCSS {
		t.Errorf("%s missing from release.json", cssHashed)
	}

	// check --deploy findings were parsed; the placeholder SECRET_KEY must
	// not raise security.W009 or the example's dev-key warning.
	ids := map[string]bool{}
	for _, c := range m.Checks {
		ids[c.ID] = true
		if c.Level == "" || c.Message == "" {
			t.Errorf("incomplete finding %+v", c)
		}
	}
	if !ids["security.W004"] || ids["security.W009"] || ids["pages.W001"] {
		t.Errorf("checks: %+v", m.Checks)
	}

	// Same as Django's own collectstatic, run the plain way in the project.
	plain := exec.Command(py, "manage.py", "collectstatic", "--noinput")
	plain.Dir = project
	plain.Env = []string{"PATH=/usr/bin:/bin", "SECRET_KEY=plain", "PYTHONDONTWRITEBYTECODE=1"}
	if out, err := plain.CombinedOutput(); err != nil {
		t.Fatalf("plain collectstatic: %v\n%s", err, out)
	}
	djangoTree := treeDigests(t, filepath.Join(project, "staticfiles"))
	delete(djangoTree, "stale.css")
	if len(djangoTree) != len(onDisk) {
		t.Fatalf("djdeploy collected %d files, Django %d", len(onDisk), len(djangoTree))
	}
	for p, d := range djangoTree {
		if onDisk[p] != d {
			t.Errorf("%s differs from Django's own collectstatic", p)
		}
	}

	// A second build of the same project is byte-identical, wherever its
	// output goes, and the user's project is left as it was.
	res2, err := build(t, py, project, nil)
	if err != nil {
		t.Fatal(err)
	}
	zip2, _ := os.ReadFile(res2.ZipPath)
	if !bytes.Equal(zipBytes, zip2) || res2.Manifest.ReleaseID != m.ReleaseID {
		t.Fatal("two builds of the same project differ")
	}
	if _, err := os.Stat(filepath.Join(project, "pages", "__pycache__", "checks.cpython-311.pyc")); err == nil {
		t.Error("the build wrote bytecode into the project")
	}
}

func md5b64(data []byte) string {
	h := md5.New()
	h.Write(data)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func TestBuildLocalDependenciesFromWheelDir(t *testing.T) {
	py := testenv.Python(t)
	project := exampleApp(t)
	writeFiles(t, project, map[string]string{"requirements.txt": "tinydep==1.0\n"})
	wheels := t.TempDir()
	writeWheel(t, filepath.Join(wheels, "tinydep-1.0-py3-none-any.whl"))

	// Vendored from the folder alone, but without gunicorn and uvicorn the
	// app could not start: exit 2 with the fix, before anything is written.
	for _, inst := range []string{InstallerUV, InstallerPip} {
		t.Run(inst, func(t *testing.T) {
			if inst == InstallerUV {
				testenv.UV(t)
			}
			_, err := build(t, py, project, func(o *Options) {
				o.DependencyMode = ModeLocal
				o.WheelDir = wheels
				o.Installer = inst
			})
			if err == nil || problem.ExitCode(err) != problem.ExitUsage {
				t.Fatalf("want exit 2, got %v", err)
			}
			pe, _ := problem.As(err)
			if !strings.Contains(pe.What, "lacks gunicorn and uvicorn") || !strings.Contains(pe.Fix, "add gunicorn and uvicorn to requirements.txt") {
				t.Fatalf("message: %s / fix: %s", pe.What, pe.Fix)
			}

			// A requirement missing from the folder is named, exit 2.
			writeFiles(t, project, map[string]string{"requirements.txt": "tinydep==1.0\nnot-there==9\n"})
			defer writeFiles(t, project, map[string]string{"requirements.txt": "tinydep==1.0\n"})
			_, err = build(t, py, project, func(o *Options) { o.DependencyMode = ModeLocal; o.WheelDir = wheels; o.Installer = inst })
			if err == nil || problem.ExitCode(err) != problem.ExitUsage || !strings.Contains(err.Error(), "not-there") || !strings.Contains(err.Error(), "wheel-dir") {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// writeWheel writes a tiny pure-Python wheel by hand (PEP 427).
func writeWheel(t *testing.T, file string) {
	t.Helper()
	files := [][2]string{
		{"tinydep/__init__.py", "VALUE = 42\n"},
		{"tinydep-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n"},
		{"tinydep-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: djdeploy-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, _ := zw.Create(f[0])
		w.Write([]byte(f[1]))
		sum := sha256.Sum256([]byte(f[1]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f[0], base64.RawURLEncoding.EncodeToString(sum[:]), len(f[1]))
	}
	record.WriteString("tinydep-1.0.dist-info/RECORD,,\n")
	w, _ := zw.Create("tinydep-1.0.dist-info/RECORD")
	w.Write([]byte(record.String()))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBuildBadInput(t *testing.T) {
	py := testenv.Python(t)
	tests := []struct {
		name    string
		setup   func(t *testing.T, project string)
		opt     func(o *Options)
		exit    int
		errHas  []string
		noFiles bool
	}{
		{name: "no manage.py", setup: func(t *testing.T, p string) { os.Remove(filepath.Join(p, "manage.py")) },
			exit: problem.ExitUsage, errHas: []string{"is not a Django project", "no manage.py"}},
		{name: "wrong settings module", opt: func(o *Options) { o.SettingsModule = "mysite.production" },
			exit: problem.ExitUsage, errHas: []string{"settings module mysite.production not found"}},
		{name: "settings module that fails to import", setup: func(t *testing.T, p string) {
			writeFiles(t, p, map[string]string{"mysite/broken.py": "from mysite.settings import *\nimport not_a_module_anywhere\n"})
		}, opt: func(o *Options) { o.SettingsModule = "mysite.broken" },
			exit: problem.ExitFailure, errHas: []string{"loading settings mysite.broken", "ModuleNotFoundError", "not_a_module_anywhere"}},
		{name: "css referencing a missing file", setup: func(t *testing.T, p string) {
			writeFiles(t, p, map[string]string{"pages/static/pages/css/broken.css": "body { background: url(\"../img/missing.png\"); }\n"})
		}, exit: problem.ExitFailure, errHas: []string{"collectstatic failed", "missing.png"}},
		{name: "symlink out of the project", setup: func(t *testing.T, p string) {
			if err := os.Symlink("/etc/hostname", filepath.Join(p, "pages", "host.txt")); err != nil {
				t.Fatal(err)
			}
		}, exit: problem.ExitUsage, errHas: []string{"symlink pages/host.txt", "points outside the project"}},
		{name: "STATIC_ROOT outside the project", setup: func(t *testing.T, p string) {
			writeFiles(t, p, map[string]string{"mysite/outside.py": "from mysite.settings import *\nSTATIC_ROOT = '/tmp/elsewhere-static'\n"})
		}, opt: func(o *Options) { o.SettingsModule = "mysite.outside" },
			exit: problem.ExitUsage, errHas: []string{"STATIC_ROOT /tmp/elsewhere-static is not a folder inside the project"}},
		{name: "interpreter without Django", opt: func(o *Options) { o.Python = fakePython(t); o.BuildVenv = "never" },
			exit: problem.ExitUsage, errHas: []string{"cannot import Django", "No module named 'django'"}},
		{name: "fail on check", opt: func(o *Options) { o.FailOnCheck = true },
			exit: problem.ExitFailure, errHas: []string{"check --deploy reported"}},
		{name: "no asgi.py", setup: func(t *testing.T, p string) {
			os.Remove(filepath.Join(p, "mysite", "asgi.py"))
			writeFiles(t, p, map[string]string{"mysite/noasgi.py": "from mysite.settings import *\ndel ASGI_APPLICATION\n"})
		}, opt: func(o *Options) { o.SettingsModule = "mysite.noasgi" },
			exit: problem.ExitUsage, errHas: []string{"has no mysite/asgi.py", "could not start"}},
		{name: "a project file where the release id goes", setup: func(t *testing.T, p string) {
			writeFiles(t, p, map[string]string{StampName: "mine\n"})
		}, exit: problem.ExitUsage, errHas: []string{"has a file DJDEPLOY_RELEASE at its root"}},
		{name: "bad python version", opt: func(o *Options) { o.PythonVersion = "12" },
			exit: problem.ExitUsage, errHas: []string{"python-version"}},
		// A .djdeployignore that leaves the app out built a zip that could
		// not run, with exit 0.
		{name: "ignore file of *", setup: func(t *testing.T, p string) { writeFiles(t, p, map[string]string{".djdeployignore": "*\n"}) }, exit: problem.ExitUsage, errHas: []string{"would not hold manage.py", "settings module mysite.settings"}},
		{name: "ignore file of **", setup: func(t *testing.T, p string) { writeFiles(t, p, map[string]string{".djdeployignore": "**\n"}) }, exit: problem.ExitUsage, errHas: []string{"would not hold manage.py"}},
		{name: "ignore file of /", setup: func(t *testing.T, p string) { writeFiles(t, p, map[string]string{".djdeployignore": "/\n"}) }, exit: problem.ExitUsage, errHas: []string{"would not hold"}},
		{name: "ignore file of manage.py", setup: func(t *testing.T, p string) { writeFiles(t, p, map[string]string{".djdeployignore": "manage.py\n"}) }, exit: problem.ExitUsage, errHas: []string{"would not hold manage.py"}},
		{name: "ignore file of the settings package", setup: func(t *testing.T, p string) { writeFiles(t, p, map[string]string{".djdeployignore": "mysite/\n"}) }, exit: problem.ExitUsage, errHas: []string{"would not hold the settings module mysite.settings"}},
		// collectstatic reads what the zip's walk skips.
		{name: "excluded link out of the project in a static folder", setup: func(t *testing.T, p string) {
			if err := os.Symlink("/etc", filepath.Join(p, "pages", "static", "pages", "etc")); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, p, map[string]string{".djdeployignore": "pages/static/pages/etc\n"})
		}, exit: problem.ExitUsage, errHas: []string{"pages/static/pages/etc/", "leads outside the project"}},
		{name: "excluded static file", setup: func(t *testing.T, p string) {
			writeFiles(t, p, map[string]string{"pages/static/pages/private.txt": "internal notes\n", ".djdeployignore": "private.txt\n"})
		}, exit: problem.ExitUsage, errHas: []string{"static file pages/static/pages/private.txt is excluded"}},
		{name: "backslash in a file name", setup: func(t *testing.T, p string) {
			writeFiles(t, p, map[string]string{"pages/..\\..\\evil.py": "print('x')\n"})
		}, exit: problem.ExitUsage, errHas: []string{"backslash", "evil.py"}},
		{name: "control character in a static file name", setup: func(t *testing.T, p string) {
			writeFiles(t, p, map[string]string{"pages/static/pages/new\nline.css": "body{}\n"})
		}, exit: problem.ExitUsage, errHas: []string{`new\nline.css`, "control character"}},
		{name: "static file name Blob Storage does not keep", setup: func(t *testing.T, p string) {
			writeFiles(t, p, map[string]string{"pages/static/pages/trailing.css.": "body{}\n"})
		}, exit: problem.ExitUsage, errHas: []string{`static file "pages/trailing.css."`, "ending with a dot"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			project := exampleApp(t)
			if tt.setup != nil {
				tt.setup(t, project)
			}
			opt := Options{ProjectDir: project, OutDir: filepath.Join(t.TempDir(), "out"), Python: py}
			if tt.opt != nil {
				tt.opt(&opt)
			}
			_, err := Build(context.Background(), opt, progress.Discard)
			if err == nil {
				t.Fatal("want an error")
			}
			if got := problem.ExitCode(err); got != tt.exit {
				t.Fatalf("exit %d, want %d: %v", got, tt.exit, err)
			}
			pe, ok := problem.As(err)
			if !ok || pe.Fix == "" {
				t.Fatalf("error without a fix: %v", err)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not mention %q:\n%v", s, err)
				}
			}
			if _, err := os.Stat(filepath.Join(opt.OutDir, ManifestName)); err == nil {
				t.Error("a failed build left a release.json")
			}
		})
	}
}

// fakePython is an "interpreter" that cannot import Django.
func fakePython(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "python3")
	script := "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'django'\" >&2\nexit 1\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildOutputFolderSafety(t *testing.T) {
	py := testenv.Python(t)
	project := exampleApp(t)
	out := t.TempDir()
	writeFiles(t, out, map[string]string{"precious.txt": "user data"})
	_, err := build(t, py, project, func(o *Options) { o.OutDir = out })
	if err == nil || problem.ExitCode(err) != problem.ExitUsage || !strings.Contains(err.Error(), "precious.txt") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "precious.txt")); err != nil {
		t.Fatal("user file removed")
	}
	_, err = build(t, py, project, func(o *Options) { o.OutDir = filepath.Dir(project) })
	if err == nil || !strings.Contains(err.Error(), "contains the project") {
		t.Fatalf("got %v", err)
	}
	// An output folder inside the project is allowed and left out of the zip.
	res, err := build(t, py, project, func(o *Options) { o.OutDir = filepath.Join(project, "dist") })
	if err != nil {
		t.Fatal(err)
	}
	for name := range zipContents(t, res.ZipPath) {
		if strings.HasPrefix(name, "dist/") {
			t.Fatalf("zip holds its own output folder: %s", name)
		}
	}
}
