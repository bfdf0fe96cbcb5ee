package outside

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

// depsView imports every top-level module the release vendored, as the
// running app sees them, and reports where each came from.
const depsView = `import importlib, json, os, sys
from django.http import HttpResponse

def deps(request):
    root = next(p for p in sys.path if p.endswith(".python_packages/lib/site-packages"))
    imported, failed = {}, {}
    for name in sorted(os.listdir(root)):
        if name.startswith(".") or name == "bin" or name.endswith((".dist-info", ".libs", ".data", ".pth")):
            continue
        mod = name[:-3] if name.endswith(".py") else name.split(".")[0]
        try:
            imported[mod] = importlib.import_module(mod).__file__
        except Exception as e:
            failed[mod] = repr(e)
    import psycopg
    return HttpResponse(json.dumps({"python": sys.version.split()[0], "root": root,
        "imported": imported, "failed": failed, "psycopg_impl": psycopg.pq.__impl__}),
        content_type="application/json")
`

// TestReleaseLocalModeImportsVendored releases the example app with a
// realistic requirements set (psycopg's binary build, Pillow,
// cryptography) vendored in local mode, to an emulator whose runtime is a
// bare CPython 3.12: the app can only start, and its view can only import
// the packages, from the wheels the release shipped.
func TestReleaseLocalModeImportsVendored(t *testing.T) {
	py := e2e.Require(t, "end-to-end test")
	t.Parallel()
	f := newFixture(t, py, testenv.BasePython(t))
	dir := e2e.Project(t, "django-app")
	reqs, err := os.ReadFile(filepath.Join(e2e.Root(t), "internal", "artifact", "testdata", "requirements-realistic.txt"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "requirements.txt", string(reqs))
	writeFile(t, dir, "pages/depsview.py", depsView)
	e2e.Edit(t, dir, "mysite/urls.py", `    path("healthz", views.healthz, name="healthz"),`,
		`    path("healthz", views.healthz, name="healthz"),
    path("deps", __import__("pages.depsview").depsview.deps),`)

	f.release(t, dir, "/healthz", "--dependency-mode", "local")

	code, _, body, err := e2e.Get(f.http, f.emu.ProductionURL(e2e.App)+"/deps")
	if err != nil || code != 200 {
		t.Fatalf("GET /deps: %d %v\n%s", code, err, body)
	}
	var got struct {
		Python      string            `json:"python"`
		Imported    map[string]string `json:"imported"`
		Failed      map[string]string `json:"failed"`
		PsycopgImpl string            `json:"psycopg_impl"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("/deps: %v\n%s", err, body)
	}
	if !strings.HasPrefix(got.Python, "3.12.") {
		t.Errorf("the app runs on Python %s, want 3.12", got.Python)
	}
	if len(got.Failed) > 0 {
		t.Errorf("vendored modules that do not import on App Service's Python: %v", got.Failed)
	}
	var names []string
	for name, file := range got.Imported {
		names = append(names, name)
		if !strings.Contains(file, "/.python_packages/lib/site-packages/") {
			t.Errorf("%s was imported from %s, not from the vendored packages", name, file)
		}
	}
	sort.Strings(names)
	for _, want := range []string{"django", "gunicorn", "uvicorn", "whitenoise", "psycopg", "psycopg_binary", "PIL", "cryptography"} {
		if got.Imported[want] == "" {
			t.Errorf("%s is not among the imported vendored modules %v", want, names)
		}
	}
	if got.PsycopgImpl != "binary" {
		t.Errorf("psycopg runs its %q implementation, want binary (the manylinux wheel)", got.PsycopgImpl)
	}

	p, err := e2e.Production(f.http, f.emu, e2e.App)
	if err != nil {
		t.Fatal(err)
	}
	for _, problem := range e2e.CheckStatic(f.http, p, f.cdnBase()) {
		t.Error(problem)
	}
}
