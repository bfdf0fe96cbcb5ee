package outside

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

// run runs a command of the outside environment and fails the test on
// error.
func run(t *testing.T, dir, exe string, args ...string) string {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", exe, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// appendFile adds text at the end of a generated file.
func appendFile(t *testing.T, dir, rel, text string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, rel, string(b)+text)
}

// appServiceSettings is what a user adds to a generated project's
// production settings for App Service: the key, hosts and static URL come
// from app settings (djdeploy sets STATIC_URL to the CDN's).
const appServiceSettings = `
# App Service: the app settings decide these.
import os
SECRET_KEY = os.environ.get("SECRET_KEY", "outside-test-only-key-0123456789abcdefghijklmnopqrstuvwxyz")
ALLOWED_HOSTS = ["*"]
STATIC_URL = os.environ.get("STATIC_URL", STATIC_URL)
`

const asgiPy = `import os
from django.core.asgi import get_asgi_application
os.environ.setdefault("DJANGO_SETTINGS_MODULE", %q)
application = get_asgi_application()
`

// TestOutsideWagtail: a site made by 'wagtail start', with its admin's
// large static tree, built and released (local mode, to a bare CPython
// 3.12), and its admin login page checked over HTTP.
func TestOutsideWagtail(t *testing.T) {
	py := e2e.Require(t, "end-to-end test")
	_ = py
	t.Parallel()
	outside := outsidePython(t)
	base := testenv.BasePython(t)
	dir := filepath.Join(t.TempDir(), "cms")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, dir, filepath.Join(filepath.Dir(outside), "wagtail"), "start", "cms", dir)
	appendFile(t, dir, "cms/settings/production.py", appServiceSettings)

	f := newFixture(t, outside, base)
	out := filepath.Join(t.TempDir(), "out")
	build := func() e2e.Result {
		// The build installs the site's own requirements.txt (the Django
		// and Wagtail the app will run) into a build virtualenv.
		return e2e.Main(context.Background(), f.env, "build", "--project", dir, "--out", out, "--python", base,
			"--settings-module", "cms.settings.production", "--dependency-mode", "local")
	}
	// As generated, the site could not start on App Service: no gunicorn
	// or uvicorn in its requirements, and no asgi.py. Each is refused with
	// its fix, exit 2.
	r := build()
	if r.Code != 2 || !strings.Contains(r.Stderr, "add gunicorn and uvicorn to requirements.txt") {
		t.Fatalf("build of the generated site: %s", r)
	}
	appendFile(t, dir, "requirements.txt", "gunicorn>=23\nuvicorn>=0.30\n")
	r = build()
	if r.Code != 2 || !strings.Contains(r.Stderr, "cms/asgi.py") {
		t.Fatalf("build without asgi.py: %s", r)
	}
	writeFile(t, dir, "cms/asgi.py", strings.Replace(asgiPy, "%q", `"cms.settings.production"`, 1))
	if r = build(); r.Code != 0 {
		t.Fatalf("build: %s", r)
	}

	// The site's database (db.sqlite3 beside manage.py, as generated) is
	// migrated where the app runs, before gunicorn starts.
	f.release(t, dir, "/admin/login/", "--python", base, "--settings-module", "cms.settings.production", "--dependency-mode", "local",
		"--pre-swap-where", "slot", "--pre-swap-command", "python manage.py migrate --noinput --settings cms.settings.production")
	f.checkPage(t, "/admin/login/", `name="password"`, 5)
}

// TestOutsideDRFDebugToolbar: a startproject site using Django REST
// framework (its browsable API's static files) and django-debug-toolbar
// (its static files collected, though the toolbar is off in production),
// built with the outside environment's Python and released in local mode.
func TestOutsideDRFDebugToolbar(t *testing.T) {
	e2e.Require(t, "end-to-end test")
	t.Parallel()
	outside := outsidePython(t)
	base := testenv.BasePython(t)
	dir := filepath.Join(t.TempDir(), "api")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, dir, outside, "-m", "django", "startproject", "api", dir)
	versions := run(t, dir, outside, "-c", `import importlib.metadata as m
for d in ("Django", "djangorestframework", "django-debug-toolbar", "gunicorn", "uvicorn"):
    print(f"{d}=={m.version(d)}")`)
	writeFile(t, dir, "requirements.txt", versions)
	appendFile(t, dir, "api/settings.py", appServiceSettings+`
DEBUG = False
STATIC_ROOT = BASE_DIR / "staticfiles"
INSTALLED_APPS += ["rest_framework", "debug_toolbar"]
MIDDLEWARE.insert(0, "debug_toolbar.middleware.DebugToolbarMiddleware")
INTERNAL_IPS = ["127.0.0.1"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "/tmp/djdeploy-outside-drf.sqlite3"}}
REST_FRAMEWORK = {"DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"]}
`)
	appendFile(t, dir, "api/urls.py", `
from django.http import HttpResponse
from rest_framework.decorators import api_view
from rest_framework.response import Response
from debug_toolbar.toolbar import debug_toolbar_urls

@api_view(["GET"])
def ping(request):
    return Response({"pong": True})

urlpatterns += [path("api/ping/", ping), path("healthz", lambda r: HttpResponse("ok"))] + debug_toolbar_urls()
`)

	f := newFixture(t, outside, base)
	f.release(t, dir, "/healthz", "--python", outside, "--dependency-mode", "local")
	f.checkPage(t, "/admin/login/", `name="password"`, 3)
	// The browsable API renders its page with DRF's own css and js.
	f.checkPage(t, "/api/ping/?format=api", `pong`, 3)
	// The toolbar's files are collected and served like any other.
	p := e2e.Page{Body: "debug toolbar assets"}
	for _, rel := range []string{"debug_toolbar/css/toolbar.css", "debug_toolbar/js/toolbar.js", "rest_framework/css/bootstrap.min.css"} {
		p.Static = append(p.Static, f.staticURL(t)+rel)
	}
	for _, problem := range e2e.CheckStatic(f.http, p, f.cdnBase()) {
		t.Error(problem)
	}
}
