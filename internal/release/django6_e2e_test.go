package release_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

// TestReleaseDjango6 releases the example app on the newest Django 6.x:
// built (collectstatic, check --deploy) with the Django 6 environment, its
// requirements installed by the emulator's Oryx-like build, and production
// then answering from Django 6 with every static file from the CDN.
func TestReleaseDjango6(t *testing.T) {
	h := newHarness(t)
	py6 := testenv.PythonDjango6(t)
	dir := e2e.Project(t, "django-app")
	writeFile(t, dir, "requirements.txt", "Django>=6,<7\ngunicorn>=23\nuvicorn>=0.30\npsycopg[binary]>=3.2\n")
	// The probe also says which Django answers, so the test knows the
	// build's requirements, not the emulator's Python, serve production.
	e2e.Edit(t, dir, "pages/views.py", `return JsonResponse({"status": "ok", "release": release_id()})`,
		`import django
    return JsonResponse({"status": "ok", "release": release_id(), "django": django.get_version()})`)

	rep := mustSucceed(t, h.release(t, map[string]string{"DJDEPLOY_PYTHON": py6}, dir))
	h.assertServes(t, rep.ReleaseID)
	code, _, body := h.get(t, strings.TrimSuffix(rep.URL, "/")+"/healthz")
	var health struct{ Release, Django string }
	if err := json.Unmarshal([]byte(body), &health); code != 200 || err != nil {
		t.Fatalf("production /healthz answers %d %v: %s", code, err, body)
	}
	if health.Release != rep.ReleaseID || !strings.HasPrefix(health.Django, "6.") {
		t.Errorf("production answers release %q on Django %q; want %s on Django 6", health.Release, health.Django, rep.ReleaseID)
	}
}
