package release_test

import (
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/report"
)

// TestReleaseSettingsSurviveSwaps releases three times in a row to a new
// app with no --fix-settings: each release writes what its package needs
// (SCM_DO_BUILD_DURING_DEPLOYMENT, DISABLE_COLLECTSTATIC, the Python
// version, the startup command) with STATIC_URL and the release id. It
// failed every other release when the release only checked them: the swap
// moved production's previous settings into the slot. --fix-settings=false
// keeps the check for settings managed elsewhere.
func TestReleaseSettingsSurviveSwaps(t *testing.T) {
	h := newHarness(t)
	dir := e2e.Project(t, "django-app")
	args := func(more ...string) []string {
		var out []string
		for _, a := range releaseArgs(dir, more...) {
			if a != "--fix-settings" {
				out = append(out, a)
			}
		}
		return out
	}
	release := func(t *testing.T, more ...string) run {
		t.Helper()
		return withReport(t, h.djdeploy(t, nil, args(more...)...))
	}
	// An explicit false only checks: the new app's slot lacks what the
	// package needs, so the release stops before deploying, naming it.
	r := release(t, "--fix-settings=false")
	if r.Code != 2 || !strings.Contains(r.Stderr+r.Stdout, "DISABLE_COLLECTSTATIC") {
		t.Errorf("--fix-settings=false on a new app: want exit 2 naming DISABLE_COLLECTSTATIC: %s", r)
	}
	if r.rep != nil && stepOf(r.rep, "deploy").Status == report.StepDone {
		t.Errorf("--fix-settings=false deployed: %+v", stepOf(r.rep, "deploy"))
	}

	prev := "Hello from Django on App Service"
	for i, text := range []string{"first", "second", "third"} {
		e2e.Edit(t, dir, "pages/templates/pages/home.html", prev, "Hello from the "+text+" release")
		prev = "Hello from the " + text + " release"
		rep := mustSucceed(t, release(t))
		if p := h.assertServes(t, rep.ReleaseID); !strings.Contains(p.Body, prev) {
			t.Errorf("release %d: production does not say %q", i+1, prev)
		}
		if i == 0 {
			continue
		}
		// From the second release on, the slot holds the settings the swap
		// brought from production: the release wrote its own over them.
		if st := stepOf(rep, "deploy"); st.Status != report.StepDone {
			t.Errorf("release %d: deploy step %+v", i+1, st)
		}
	}
}
