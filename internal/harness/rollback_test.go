package harness

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/e2e"
)

// TestCommandRollback: `command: rollback` through the GitHub runner and
// the Azure Pipelines steps template, as users run them (issue 12): two
// releases, a rollback with no release named (back to the first, from its
// kept package, no build: the workspace is empty), then a rollback in
// Pipelines naming the second with rollbackTo.
func TestCommandRollback(t *testing.T) {
	s := fixture(t)
	gh := newFakeGitHub(t, "octo/shop")
	hc := &http.Client{Timeout: 30 * time.Second}
	serves := func(t *testing.T) string {
		t.Helper()
		_, _, body, err := e2e.Get(hc, s.emu.ProductionURL(app)+"/healthz")
		var h struct{ Release string }
		if err != nil || json.Unmarshal([]byte(body), &h) != nil {
			t.Fatalf("production /healthz: %v %s", err, body)
		}
		return h.Release
	}
	base := releaseSettings(s)
	base["github-deployment"] = "false"
	var ids []string
	ws := e2e.Project(t, "workspace")
	for _, text := range []string{"Hello from rollback target", "Hello from the release rolled back"} {
		e2e.Edit(t, ws, "pages/templates/pages/home.html", "Hello from Django on App Service", text)
		r := githubStep(t, s, gh, ws, base, nil)
		if r.Code != 0 || r.outputs["release-id"] == "" {
			t.Fatalf("command: release: %s\noutputs %v", r, r.outputs)
		}
		ids = append(ids, r.outputs["release-id"])
		e2e.Edit(t, ws, "pages/templates/pages/home.html", text, "Hello from Django on App Service")
	}
	if got := serves(t); got != ids[1] {
		t.Fatalf("production serves %s after the releases, want %s", got, ids[1])
	}

	// A fresh runner: no checkout at all.
	empty := t.TempDir()
	in := map[string]string{}
	for k, v := range base {
		in[k] = v
	}
	in["command"] = "rollback"
	r := githubStep(t, s, gh, empty, in, nil)
	if r.Code != 0 || r.outputs["release-id"] != ids[0] || r.outputs["outcome"] != "succeeded" {
		t.Fatalf("command: rollback: %s\noutputs %v", r, r.outputs)
	}
	if got := serves(t); got != ids[0] {
		t.Errorf("production serves %s after command: rollback, want %s", got, ids[0])
	}

	ado := newFakeADO(t)
	set := releaseSettings(s)
	set["command"], set["rollback-to"], set["credential"] = "rollback", ids[1], "azure-pipelines"
	params := pipelineParams(t, set)
	params["serviceConnection"] = ado.conn
	ar := pipelineStep(t, s, ado, empty, params, map[string]string{"BUILD_REASON": "Manual"})
	if ar.Code != 0 || ar.outputs["releaseId"] != ids[1] {
		t.Fatalf("Pipelines command: rollback to %s: %s\noutputs %v", ids[1], ar, ar.outputs)
	}
	if got := serves(t); got != ids[1] {
		t.Errorf("production serves %s after the Pipelines rollback, want %s", got, ids[1])
	}
}
