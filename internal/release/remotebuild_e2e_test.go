package release_test

import (
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/e2e"
)

// TestReleaseRemoteBuildFailure: in remote mode App Service's build
// installs requirements.txt; a requirement that does not exist fails the
// deployment as BuildFailed, djdeploy shows pip's error from the
// deployment log, and production keeps the previous release.
func TestReleaseRemoteBuildFailure(t *testing.T) {
	h := newHarness(t)
	dir := e2e.Project(t, "django-app")
	first := mustSucceed(t, h.release(t, nil, dir))

	writeFile(t, dir, "requirements.txt", "Django>=5.2,<5.3\ngunicorn>=23\nuvicorn>=0.30\ndjdeploy-surely-no-such-package==1.0\n")
	r := h.release(t, nil, dir, "--dependency-mode", "remote")
	rep := mustFailAt(t, r, "deploy")
	out := r.Stderr + rep.Error
	for _, want := range []string{"BuildFailed", "No matching distribution found for djdeploy-surely-no-such-package"} {
		if !strings.Contains(out, want) {
			t.Errorf("the failed release does not show %q:\n%s", want, out)
		}
	}
	h.assertServes(t, first.ReleaseID)
}
